import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyModel } from '../scripts/make-tiny-model.mjs';
import { encodeSafetensors } from '../src/cli/safetensors';

// Every subcommand of the built `capibara`, run with small sizes.
const root = resolve(__dirname, '..');
const bin = resolve(root, 'lib/cli/capibara.js');
const capibara = (...args: string[]) => {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, CAPIBARA_API_KEY: '' }, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

let dir: string;
let modelDir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-cli-'));
  ({ dir: modelDir } = await makeTinyModel(join(dir, 'tiny')));
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('capibara demo', () => {
  it('runs the pipeline end to end and prints each request with its stages, then the metrics', () => {
    const r = capibara('demo', '--max-tokens', '4');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toContain('[1] alice asks a SQL question');
    expect(out).toMatch(/ {4}routing +done .* chose sql/);
    expect(out).toMatch(/\[2\] alice asks again[^\n]*\n[^\n]*\n[^\n]*\n {4}memory +done .* 1 memories/);
    expect(out).toMatch(/\[3\] bob asks the same[^\n]*\n[^\n]*\n[^\n]*\n {4}memory +done .* 0 memories/);
    expect(out).toMatch(/ {4}generation done .*general: \d+ thinking tokens/);
    expect(out).toMatch(/ {4}generation done .*general: \d+ rounds, stopped by/);
    expect(out).toContain("refused: Budget denied for 'frank'");
    expect(out).toContain('capibara demo: 6 answered, 1 refused, 0 failed');
    expect(out).toContain('capibara_pipeline_requests_total{outcome="ok"} 6');
  });

  it('--json prints each trace as JSON', () => {
    const r = capibara('demo', '--max-tokens', '2', '--json');
    const traces = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { outcome: string });
    expect(traces.map((t) => t.outcome)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'refused']);
  });
});

describe('capibara think', () => {
  it('streams the rounds of one session, then the majority answer', () => {
    const r = capibara('think', 'What is 2 + 2?', '--model', modelDir, '--rounds', '2', '--max-thinking-tokens', '6', '--answer-tokens', '3');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`capibara think: the model in ${modelDir}; at most 2 rounds of 6 thinking + 3 answer tokens`);
    expect(lines[1]).toMatch(/^round 1: \d+ thinking tokens, \d+ answer tokens, /);
    expect(lines[2]).toMatch(/^ {2}answer: /);
    expect(r.stdout).toMatch(/\nfinal answer: .* \(round \d; confidence (0\.50|1\.00): the share of rounds that gave it; mean answer log-probability -?\d+\.\d+\); stopped by (agreement|max-rounds); \d+ tokens; session /);
  });

  it('keeps the session in a SQLite file with --store', () => {
    const store = join(dir, 'thinking.db');
    const r = capibara('think', 'Hi', '--model', modelDir, '--rounds', '1', '--max-thinking-tokens', '4', '--answer-tokens', '2', '--store', store);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(` in ${store}\n`);
    expect(existsSync(store)).toBe(true);
  });
});

describe('capibara memory', () => {
  it('imports text files (chunked by paragraphs) and queries them', () => {
    const db = join(dir, 'memory.db');
    const a = join(dir, 'capybara.txt');
    const b = join(dir, 'postgres.txt');
    writeFileSync(a, 'Capybaras are the largest rodents.\n\nThey live near rivers and lakes in South America.\n');
    writeFileSync(b, 'A slow Postgres join usually wants an index on the join key.\n\nEXPLAIN ANALYZE shows the plan.\n');
    const imported = capibara('memory', 'import', a, b, '--db', db, '--user', 'u1', '--chunk-chars', '64', '--tags', 'docs');
    expect(imported.code).toBe(0);
    expect(imported.stdout).toMatch(/^capibara memory import: 4 chunks from 2 files → 4 new items \(0 merged as duplicates\); 4 items, \d+ tokens in .*memory\.db/);
    const q = capibara('memory', 'query', 'which index for a slow join?', '--db', db, '--user', 'u1', '--top-k', '2');
    expect(q.code).toBe(0);
    const lines = q.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^capibara memory query: 2 of 4 candidates, \d+ tokens, /);
    expect(lines[1]).toMatch(/^1\. \[\d\.\d{3}\] A slow Postgres join usually wants an index on the join key\. {2}\(postgres\.txt\)$/);
    const other = capibara('memory', 'query', 'index', '--db', db, '--user', 'u2', '--json');
    expect(JSON.parse(other.stdout)).toMatchObject({ chunks: [], candidates: 0 });
  });

  it('a file that cannot be read: exit 1', () => {
    const r = capibara('memory', 'import', join(dir, 'missing.txt'), '--db', join(dir, 'm2.db'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`capibara memory import: cannot read ${join(dir, 'missing.txt')}: `);
  });
});

describe('capibara calibrate', () => {
  it('chooses retrieval heads from safetensors captures and writes the pattern files', () => {
    const n = 48;
    const [queryHeads, kvHeads, headDim] = [4, 2, 8];
    const captures = join(dir, 'captures');
    mkdirSync(captures, { recursive: true });
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    const files = [0, 1].map((layer) => {
      const t = (heads: number) => ({ data: Float32Array.from({ length: n * heads * headDim }, rand), shape: [n, heads, headDim] });
      const path = join(captures, `layer${layer}.safetensors`);
      writeFileSync(path, encodeSafetensors({ q: t(queryHeads), k: t(kvHeads), v: t(kvHeads) }, { layer: String(layer) }));
      return path;
    });
    const out = join(dir, 'pattern');
    const r = capibara('calibrate', ...files, '--out', out, '--sink', '4', '--recent', '8', '--ratio', '0.5', '--method', 'both', '--threads', '1');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `capibara calibrate: 2 samples, ${2 * (n - 12)} query positions scored (both); 2 of 4 KV heads are retrieval heads (per layer: ${r.stdout.match(/per layer: (\d, \d)/)![1]}); saved ${out}/full_attention_heads.tsv and config.json (sink 4, recent 8)\n`,
    );
    expect(readFileSync(join(out, 'full_attention_heads.tsv'), 'utf8').trim().split('\n')).toHaveLength(2);
    // The progress bar went to stderr (not a terminal here: a line per quarter).
    expect(r.stderr).toMatch(/^calibrate \[\.+\] 0\/2 /);
    expect(r.stderr).toMatch(/\ncalibrate \[#+\] 2\/2 /);
  });

  it('a capture without its layer: exit 1 naming the file', () => {
    const path = join(dir, 'nolayer.safetensors');
    const t = { data: new Float32Array(4 * 2 * 2), shape: [4, 2, 2] };
    writeFileSync(path, encodeSafetensors({ q: t, k: t, v: t }));
    const r = capibara('calibrate', path, '--out', join(dir, 'x'));
    expect([r.code, r.stderr]).toEqual([1, `capibara calibrate: ${path} has no __metadata__.layer (an integer >= 0 as a string)\n`]);
  });
});

describe('capibara bench', () => {
  it('runs the matching benchmarks, printing each table as it ends', () => {
    const r = capibara('bench', 'pipeline', '--quick');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('OptimizationPipeline overhead per request');
    expect(r.stdout).toContain('pipeline, every stage (routing, memory, budget, store)');
    expect(r.stdout).toMatch(/\nbench: results written to bench\/results\/bench-.*\.json\n$/);
    expect(r.stderr).toMatch(/^bench \[\.+\] 0\/1 /);
    expect(r.stderr).toMatch(/bench \[#+\] 1\/1 .*1 done\n$/);
  }, 120_000);

  it('an unknown filter: exit 1', () => {
    const r = capibara('bench', 'no-such-bench');
    expect([r.code, r.stderr]).toEqual([1, 'bench: no bench/*.bench.mjs matches no-such-bench\n']);
  });
});

describe('capibara serve --config', () => {
  let child: ChildProcess;
  let url: string;
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('serves the pipeline of a config file: chat through the openai SDK, budgets per API key, /metrics', async () => {
    const config = join(dir, 'capibara.config.json');
    writeFileSync(
      config,
      JSON.stringify({
        experts: { tiny: { backend: 'onnx', path: './tiny', threads: 1 } },
        memory: { path: './serve-memory.db' },
        budgets: { limits: [{ scope: 'daily', limit: 500 }] },
        defaults: { temperature: 0, maxTokens: 8 },
        server: { model: 'capibara', port: 0, apiKeys: { 'sk-alice': 'alice' } },
      }),
    );
    child = spawn(process.execPath, [bin, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    url = await new Promise<string>((done, fail) => {
      let out = '';
      let err = '';
      child.stdout!.on('data', (c: Buffer) => {
        out += c;
        const m = /^capibara serve: pipeline capibara \(experts: tiny\) on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(out);
        if (m) done(m[1]!);
      });
      child.stderr!.on('data', (c: Buffer) => (err += c));
      child.once('exit', (code) => fail(new Error(`capibara serve exited with ${code}: ${err}`)));
    });
    const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-alice', maxRetries: 0 });
    const chat = await openai.chat.completions.create({ model: 'capibara', messages: [{ role: 'user', content: 'Hello' }] });
    expect(chat.usage!.completion_tokens).toBeLessThanOrEqual(8);
    const denied = (await openai.completions.create({ model: 'capibara', prompt: 'Hello', max_tokens: 600 }).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(denied.status).toBe(429);
    const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer sk-alice' } })).text();
    expect(metrics).toContain('capibara_pipeline_requests_total{outcome="ok"} 1');
    expect(metrics).toContain('capibara_pipeline_requests_total{outcome="refused"} 1');
    expect(metrics).toMatch(/^process_cpu_user_seconds_total /m);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('a config with a bad key: exit 2 naming it', () => {
    const config = join(dir, 'bad.config.json');
    writeFileSync(config, JSON.stringify({ experts: { tiny: { backend: 'onnx', path: './tiny', threads: 0 } } }));
    const r = capibara('serve', '--config', config);
    expect(r.code).toBe(2);
    expect(r.stderr.startsWith(`capibara: --config ${config}: Expected integer in [1, 256] for config.experts.tiny.threads but received 0 of type number\n\nUsage: capibara serve `)).toBe(true);
  });
});
