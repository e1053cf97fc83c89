import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPipeline, CapibaraMetrics, checkPipelineConfig, ClosedError, HeadPattern, LlamaDecoder, loadPipelineConfig, OnnxCausalLM, PIPELINE_CONFIG_SCHEMA, type PipelineTrace } from '../src/index';
import { makeTinyHfModel, makeTinyModel } from '../scripts/make-tiny-model.mjs';
import { hasPostgres, type PostgresServer, startPostgres } from './support/postgres-server';
import { hasRedisServer, type RedisServer, startRedisServer } from './support/redis-server';

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-config-'));
  await makeTinyModel(join(dir, 'models', 'tiny'));
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tiny = { backend: 'onnx', path: './models/tiny', threads: 1 };

describe('the config schema', () => {
  it('ships as schema/capibara.config.schema.json', () => {
    const file = JSON.parse(readFileSync(resolve(__dirname, '..', 'schema', 'capibara.config.schema.json'), 'utf8'));
    // Regenerate after changing the schema: npm run build:ts, then write PIPELINE_CONFIG_SCHEMA from lib/ to the file.
    expect(file).toEqual(PIPELINE_CONFIG_SCHEMA);
  });

  it.each<[string, unknown, Error]>([
    ['not an object', [], new TypeError('Expected an object for config but received Array of length 0')],
    ['no experts', {}, new TypeError('Expected an object for config.experts but received undefined')],
    ['empty experts', { experts: {} }, new RangeError('Expected an object with at least 1 entry for config.experts but received object')],
    ['an unknown top-level key', { experts: { tiny }, memroy: {} }, new TypeError("Unknown option 'memroy' in config (expected one of: $schema, experts, routing, memory, budgets, thinking, defaults, server)")],
    ['no backend', { experts: { tiny: { path: 'x' } } }, new TypeError("Expected one of 'onnx', 'llama', 'openai' for config.experts.tiny.backend but received undefined")],
    ['an unknown backend', { experts: { tiny: { backend: 'llamacpp' } } }, new RangeError("Expected one of 'onnx', 'llama', 'openai' for config.experts.tiny.backend but received 'llamacpp' of type string")],
    ['threads out of range', { experts: { tiny: { ...tiny, threads: 0 } } }, new RangeError('Expected integer in [1, 256] for config.experts.tiny.threads but received 0 of type number')],
    ['an option of the other backend', { experts: { tiny: { ...tiny, baseURL: 'http://x' } } }, new TypeError("Unknown option 'baseURL' in config.experts.tiny (expected one of: backend, path, threads, executionProviders, modelFile, chatTemplate, contextLength, profile)")],
    ['an openai expert without a model', { experts: { remote: { backend: 'openai', baseURL: 'http://x' } } }, new TypeError('Expected non-empty string for config.experts.remote.model but received undefined')],
    ['an expert id that is not an identifier', { experts: { 'qwen-3b': { ...tiny, contextLength: 1.5 } } }, new RangeError("Expected integer >= 1 for config.experts['qwen-3b'].contextLength but received 1.5 of type number")],
    ['a bad limit', { experts: { tiny }, budgets: { limits: [{ scope: 'daily', limit: 10 }, { scope: 'yearly', limit: 10 }] } }, new RangeError("Expected one of 'request', 'session', 'daily', 'weekly', 'monthly' for config.budgets.limits[1].scope but received 'yearly' of type string")],
    ['a soft threshold of 0', { experts: { tiny }, budgets: { limits: [{ scope: 'daily', limit: 10, softThreshold: 0 }] } }, new RangeError('Expected number in (0, 1] for config.budgets.limits[0].softThreshold but received 0 of type number')],
    ['a string port', { experts: { tiny }, server: { port: '8000' } }, new TypeError("Expected integer in [0, 65535] for config.server.port but received '8000' of type string")],
    ['a bad user of an API key (the key itself is not printed)', { experts: { tiny }, server: { apiKeys: { 'sk-secret-123': '' } } }, new RangeError("Expected non-empty string for config.server.apiKeys['sk-s…'] but received '' of type string")],
    ['a temperature past 2', { experts: { tiny }, defaults: { temperature: 2.5 } }, new RangeError('Expected number in [0, 2] for config.defaults.temperature but received 2.5 of type number')],
    ['several experts without profiles', { experts: { a: tiny, b: tiny } }, new TypeError('Expected a profile { domain, description } for config.experts.a.profile but received undefined (several experts are routed by their profiles)')],
    ['a profile without a description', { experts: { a: { ...tiny, profile: { domain: 'sql' } } } }, new TypeError('Expected non-empty string for config.experts.a.profile.description but received undefined')],
    ['memory in a file and in PostgreSQL', { experts: { tiny }, memory: { path: 'm.db', postgres: { connectionString: 'postgres://db/x' } } }, new TypeError('Expected one of config.memory.path and config.memory.postgres but received both')],
    ['PostgreSQL without a connection string', { experts: { tiny }, memory: { postgres: { schema: 'agents' } } }, new TypeError('Expected non-empty string for config.memory.postgres.connectionString but received undefined')],
    ['a string deferStore', { experts: { tiny }, memory: { deferStore: 'no' } }, new TypeError("Expected boolean for config.memory.deferStore but received 'no' of type string")],
    ['shared routing state without a URL', { experts: { tiny }, routing: { sharedState: { prefix: 'x' } } }, new TypeError('Expected non-empty string for config.routing.sharedState.url but received undefined')],
    ['a default expert that does not exist', { experts: { tiny }, defaults: { expert: 'big' } }, new RangeError("Expected one of 'tiny' for config.defaults.expert but received 'big' of type string")],
  ])('%s: names the key', (_name, config, error) => {
    expect(() => checkPipelineConfig(config)).toThrow(error);
  });

  it('a file that is not JSON names the file', async () => {
    const path = join(dir, 'broken.json');
    writeFileSync(path, '{ "experts": ');
    await expect(loadPipelineConfig(path)).rejects.toThrow(`The config file ${path} is not valid JSON: `);
  });
});

describe('building from a config', () => {
  it('builds every stage from the file, relative paths from its folder; close() releases the files', async () => {
    const path = join(dir, 'capibara.config.json');
    const config = {
      $schema: './node_modules/@capibara/core/schema/capibara.config.schema.json',
      experts: {
        sql: { ...tiny, profile: { domain: 'sql', description: 'SQL queries and joins', keywords: ['sql', 'join'] } },
        chat: { ...tiny, profile: { domain: 'general', description: 'Greetings and small talk', keywords: ['hello'] } },
      },
      routing: { strategy: 'load_balanced', fallbackAttempts: 2 },
      memory: { path: './memory.db', contextTokens: 64 },
      budgets: { limits: [{ scope: 'daily', limit: 1000 }], priority: 2 },
      thinking: { storePath: './thinking.db', maxRounds: 2, maxThinkingTokens: 8 },
      defaults: { maxTokens: 6, temperature: 0 },
      server: { model: 'capibara', port: 0 },
    };
    writeFileSync(path, JSON.stringify(config));
    const { config: checked, baseDir } = await loadPipelineConfig(path);
    expect(baseDir).toBe(dir);
    const built = await buildPipeline(checked, { baseDir });
    try {
      expect(built.server).toEqual({ model: 'capibara', port: 0 });
      const { pipeline } = built;
      expect(pipeline.expertIds).toEqual(['sql', 'chat']);
      expect(pipeline.router?.strategy).toBe('load_balanced');
      expect(pipeline.expert('sql').generator).toBeInstanceOf(OnnxCausalLM);
      expect(pipeline.requestDefaults).toEqual({ maxTokens: 6, temperature: 0, maxRounds: 2, maxThinkingTokens: 8 });
      const traces: PipelineTrace[] = [];
      pipeline.on('trace', (t: PipelineTrace) => traces.push(t));
      const r = await pipeline.run({ prompt: 'sql join', user: 'u1' });
      expect(r.tokens).toBeLessThanOrEqual(6);
      // The exchange is stored after the answer; the trace event comes once it is.
      expect(r.trace.stages[4]!.status).toBe('deferred');
      expect(await r.stored).toMatchObject({ status: 'done' });
      expect(traces[0]!.stages.map((s) => s.status)).toEqual(['done', 'done', 'done', 'done', 'done']);
      const mr = await pipeline.run({ prompt: 'hello there', user: 'u1', maxTokens: 40, multiRound: { answerMaxTokens: 4 } });
      expect(mr.trace.stages[3]).toMatchObject({ mode: 'multi-round', status: 'done' });
    } finally {
      await built.close();
    }
    // The SQLite files were closed: they open again.
    {
      // Symbol.asyncDispose closes as close() does: the files open once more afterwards.
      await using again = await buildPipeline(checked, { baseDir });
      expect(again.pipeline.memory!.getMetrics().items).toBe(2);
    }
    const third = await buildPipeline(checked, { baseDir });
    await third.close();
  });

  it('a missing API-key variable names the expert and the key', async () => {
    const config = checkPipelineConfig({ experts: { remote: { backend: 'openai', baseURL: 'http://127.0.0.1:9', model: 'm', apiKeyEnv: 'CAPIBARA_TEST_NO_SUCH_VAR' } } });
    await expect(buildPipeline(config)).rejects.toThrow(new Error("Expert 'remote': the environment variable CAPIBARA_TEST_NO_SUCH_VAR (config.experts.remote.apiKeyEnv) is not set"));
  });

  it('a model folder that does not load names the expert', async () => {
    const config = checkPipelineConfig({ experts: { tiny: { backend: 'onnx', path: './nowhere' } } });
    await expect(buildPipeline(config, { baseDir: dir })).rejects.toThrow(`Expert 'tiny': OnnxCausalLM.load: model folder ${join(dir, 'nowhere')} does not exist`);
  });
});

describe.skipIf(!hasPostgres || !hasRedisServer)('building a replica from a config', () => {
  let pg: PostgresServer;
  let redis: RedisServer;
  beforeAll(async () => {
    [pg, redis] = await Promise.all([startPostgres({ fsync: false }), startRedisServer()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([pg?.stop(), redis?.stop()]);
  });

  it('memory in PostgreSQL and routing shared through Redis: a second replica sees the first one’s memory', async () => {
    const connectionString = await pg.createDatabase('replicas');
    const config = checkPipelineConfig({
      experts: {
        sql: { ...tiny, profile: { domain: 'sql', description: 'SQL queries and joins' } },
        chat: { ...tiny, profile: { domain: 'general', description: 'Small talk' } },
      },
      routing: { sharedState: { url: redis.url, syncIntervalMs: 100 } },
      memory: { postgres: { connectionString, schema: 'agents' }, deferStore: false },
      defaults: { maxTokens: 4, temperature: 0 },
    });
    const [one, two] = [await buildPipeline(config, { baseDir: dir }), await buildPipeline(config, { baseDir: dir })];
    try {
      const r = await one.pipeline.run({ prompt: 'sql join on orders', user: 'u1' });
      // deferStore off: the exchange is stored before run() resolves.
      expect(r.trace.stages[4]).toMatchObject({ stage: 'store', status: 'done' });
      await two.pipeline.memory!.refresh();
      expect(two.pipeline.memory!.getMetrics().items).toBe(1);
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  }, 60_000);
});

describe('a Llama-family expert decoded with DuoAttention', () => {
  it('builds from the config with its pattern files; the trace reports the attention inside decoding', async () => {
    const root = mkdtempSync(join(tmpdir(), 'capibara-pipeline-llama-'));
    try {
      await makeTinyHfModel(join(root, 'tiny-hf'), {});
      // Layer 0 streams KV head 1, layer 1 streams KV head 0: half the cache streams.
      await HeadPattern.fromMask([[true, false], [false, true]], { layers: 2, kvHeads: 2, sink: 4, recent: 8 }).save(join(root, 'pattern'));
      const config = checkPipelineConfig({
        experts: { duo: { backend: 'llama', path: './tiny-hf', headPattern: './pattern', threads: 1, storage: 'float16' } },
        defaults: { maxTokens: 24, temperature: 0 },
      });
      const metrics = new CapibaraMetrics();
      const built = await buildPipeline(config, { baseDir: root, metrics });
      try {
        const duo = built.pipeline.expert('duo').generator as LlamaDecoder;
        expect(duo).toBeInstanceOf(LlamaDecoder);
        expect([duo.sink, duo.recent, duo.headPattern.retrievalCount]).toEqual([4, 8, 2]);
        const r = await built.pipeline.run({ prompt: Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ') });
        const a = r.trace.stages[3]!.stage === 'generation' ? r.trace.stages[3]!.attention : undefined;
        expect(a).toBeDefined();
        expect(a!.ms).toBeGreaterThan(0);
        expect(a!.denseMs).toBeGreaterThan(0);
        // Past sink + recent tokens the streaming heads hold 12 positions each, the others all of them.
        expect(a!.kvBytes).toEqual(duo.kvBytes().used);
        expect(a!.kvBytes).toBeLessThan(a!.kvBytesFull);
        const text = await metrics.metrics();
        expect(text).toContain(`capibara_attention_kv_cache_bytes{expert="duo",heads="duo"} ${a!.kvBytes}\n`);
        expect(text).toContain(`capibara_attention_kv_cache_bytes{expert="duo",heads="full"} ${a!.kvBytesFull}\n`);
        expect(text).toContain(`capibara_attention_decode_seconds_total{expert="duo"} ${a!.ms / 1000}\n`);
      } finally {
        await built.close();
        metrics[Symbol.dispose]();
        expect(() => metrics.observePipeline(built.pipeline)).toThrow(ClosedError);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 60_000);

  it('a bad storage names the key', () => {
    expect(() => checkPipelineConfig({ experts: { duo: { backend: 'llama', path: 'x', storage: 'fp8' } } })).toThrow(
      new RangeError("Expected one of 'float32', 'float16', 'bf16', 'int8' for config.experts.duo.storage but received 'fp8' of type string"),
    );
  });
});
