/**
 * `capibara.config.json`: its types, its check against {@link PIPELINE_CONFIG_SCHEMA}, and
 * building the whole pipeline from it (experts and their backends, router, memory, budgets with
 * an optional Redis, thinking store).
 * @module
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { BudgetForcing, EnforcementLevel, RedisBudgetStore, ResourceType } from '../budget/index';
import { RewiringExperts, RoutingStrategy } from '../experts/routing/index';
import { type Generator, LlamaDecoder, OnnxCausalLM, OpenAICompatibleGenerator } from '../llm/index';
import { MemAgent } from '../memory/index';
import { SqliteThinkingStore } from '../thinking/index';
import * as v from '../validate';
import { ChatTemplate } from './chat-template';
import { PIPELINE_CONFIG_SCHEMA } from './config-schema';
import { OptimizationPipeline } from './pipeline';
import { check, child, type SchemaNode } from './schema-check';
import type { ExpertSpec, PipelineMetrics } from './types';

/**
 * How the router sees an expert (an `ExpertProfile` without its id).
 *
 * @example
 * ```ts
 * const p: ExpertProfileConfig = { domain: 'sql', description: 'SQL queries and indexes', keywords: ['join', 'index'] };
 * ```
 */
export interface ExpertProfileConfig {
  /** Display name. */
  name?: string;
  /** Domain label. */
  domain: string;
  /** What it is good at. */
  description: string;
  /** Typical terms. */
  keywords?: string[];
  /** Requests it serves at once. */
  capacity?: number;
}

/**
 * An expert of the config: a local ONNX model, a Llama-family folder decoded with DuoAttention,
 * or an OpenAI-compatible server.
 *
 * @example
 * ```ts
 * const local: ExpertConfig = { backend: 'onnx', path: './models/tiny', threads: 2 };
 * const duo: ExpertConfig = { backend: 'llama', path: './models/qwen2.5-0.5b', headPattern: './patterns/qwen2.5-0.5b', storage: 'bf16' };
 * const remote: ExpertConfig = { backend: 'openai', baseURL: 'http://127.0.0.1:8001', model: 'Qwen/Qwen3-8B', apiKeyEnv: 'VLLM_KEY' };
 * ```
 */
export type ExpertConfig =
  | {
      /** A local ONNX model. */
      backend: 'onnx';
      /** The model folder, relative to the config file. */
      path: string;
      /** ONNX Runtime threads. */
      threads?: number;
      /** ONNX Runtime execution providers. */
      executionProviders?: string[];
      /** The ONNX file inside the folder. */
      modelFile?: string;
      /** Jinja chat template; default the folder's. */
      chatTemplate?: string;
      /** Context length; default the model's. */
      contextLength?: number;
      /** The router's view of it. */
      profile?: ExpertProfileConfig;
    }
  | {
      /** A Hugging Face Llama-family folder run by {@link LlamaDecoder} (DuoAttention on its KV cache). */
      backend: 'llama';
      /** The model folder (config.json, model.safetensors, tokenizer.json), relative to the config file. */
      path: string;
      /** Threads of ONNX Runtime and of the attention kernel. */
      threads?: number;
      /** DuoAttention pattern files (as `capibara calibrate` writes them), relative to the config file; default every head full. */
      headPattern?: string;
      /** Sink tokens of a streaming head. */
      sink?: number;
      /** Recent tokens of a streaming head. */
      recent?: number;
      /** How the KV cache stores keys and values. */
      storage?: 'float32' | 'float16' | 'bf16' | 'int8';
      /** How the linear layers hold their weights (`LlamaDecoderOptions.weights`). */
      weights?: 'float32' | 'int8' | 'int4';
      /** Most tokens the KV cache holds. */
      maxTokens?: number;
      /** Jinja chat template; default the folder's. */
      chatTemplate?: string;
      /** Context length; default the cache's. */
      contextLength?: number;
      /** The router's view of it. */
      profile?: ExpertProfileConfig;
    }
  | {
      /** An OpenAI-compatible `/v1/completions` server. */
      backend: 'openai';
      /** Its URL. */
      baseURL: string;
      /** The model name it expects. */
      model: string;
      /** API key. */
      apiKey?: string;
      /** Environment variable holding the API key. */
      apiKeyEnv?: string;
      /** Per-request timeout, ms. */
      timeoutMs?: number;
      /** Retries on 429/5xx. */
      maxRetries?: number;
      /** Jinja chat template; default the plain fallback. */
      chatTemplate?: string;
      /** Context length, when known. */
      contextLength?: number;
      /** The router's view of it. */
      profile?: ExpertProfileConfig;
    };

/**
 * The `server` section: what `capibara serve --config` listens with (see {@link CompletionsServerOptions}).
 *
 * @example
 * ```ts
 * const server: ServerConfig = { model: 'capibara', port: 8000, apiKeys: { 'sk-alice': 'alice' } };
 * ```
 */
export interface ServerConfig {
  /** Model name clients send. */
  model?: string;
  /** Interface to bind. */
  host?: string;
  /** TCP port. */
  port?: number;
  /** A key every request must send. */
  apiKey?: string;
  /** API keys mapped to users. */
  apiKeys?: Record<string, string>;
  /** Requests that may wait per expert. */
  maxQueue?: number;
  /** Largest body. */
  maxBodyBytes?: number;
  /** Most prompts per request. */
  maxPromptsPerRequest?: number;
  /** Most tokens per request. */
  maxTokensPerRequest?: number;
  /** Context length. */
  contextLength?: number;
  /** Time to send the headers. */
  headersTimeoutMs?: number;
  /** Time to send the request. */
  requestTimeoutMs?: number;
}

/**
 * The content of `capibara.config.json` ({@link PIPELINE_CONFIG_SCHEMA} describes every key).
 *
 * @example
 * ```ts
 * const config: PipelineConfig = {
 *   experts: { tiny: { backend: 'onnx', path: './models/tiny' } },
 *   memory: { path: './memory.db' },
 *   budgets: { limits: [{ scope: 'daily', limit: 100_000 }] },
 *   server: { port: 8000 },
 * };
 * ```
 */
export interface PipelineConfig {
  /** Where editors find the schema. */
  $schema?: string;
  /** The experts by id. */
  experts: Record<string, ExpertConfig>;
  /** The router (used with several experts). */
  routing?: {
    /** Strategy; default performance_based. */
    strategy?: 'performance_based' | 'load_balanced' | 'adaptive' | 'predictive';
    /** Experts tried per request. */
    fallbackAttempts?: number;
    /** Seed of sampling strategies. */
    seed?: number;
    /** Expert health and outcomes shared with other replicas through Redis. */
    sharedState?: {
      /** Redis URL. */
      url: string;
      /** Key prefix in Redis. */
      prefix?: string;
      /** Longest staleness of the fleet view (ms). */
      syncIntervalMs?: number;
    };
  };
  /** The memory. */
  memory?: {
    /** SQLite file; default in memory. */
    path?: string;
    /** PostgreSQL database instead of a SQLite file. */
    postgres?: {
      /** libpq connection string. */
      connectionString: string;
      /** PostgreSQL schema of the tables. */
      schema?: string;
    };
    /** Capacity in tokens. */
    maxTokens?: number;
    /** Codec. */
    compression?: 'lz4' | 'gzip' | 'none';
    /** Memory tokens per prompt. */
    contextTokens?: number;
    /** Memories per prompt. */
    topK?: number;
    /** Per user or per session. */
    scope?: 'user' | 'session';
    /** Store exchanges. */
    store?: boolean;
    /** Answer before the exchange is stored. */
    deferStore?: boolean;
  };
  /** The token budgets. */
  budgets?: {
    /** Redis URL; default in process. */
    redisUrl?: string;
    /** Redis key prefix. */
    redisPrefix?: string;
    /** Enforcement. */
    enforcementLevel?: 'soft' | 'medium' | 'hard';
    /** When the store is unreachable. */
    onStoreError?: 'fail-open' | 'fail-closed';
    /** The limits, in tokens. */
    limits?: Array<{
      /** Window. */
      scope: 'request' | 'session' | 'daily' | 'weekly' | 'monthly';
      /** Tokens per window. */
      limit: number;
      /** Only this requester. */
      requesterId?: string;
      /** One pool for all. */
      shared?: boolean;
      /** Alert fraction. */
      softThreshold?: number;
      /** Time zone. */
      timeZone?: string;
    }>;
    /** Request priority. */
    priority?: number;
    /** Reservation lifetime, s. */
    estimatedDurationS?: number;
    /** Requester without a user. */
    anonymousRequester?: string;
  };
  /** Thinking settings. */
  thinking?: {
    /** SQLite file of multi-round sessions. */
    storePath?: string;
    /** Rounds. */
    maxRounds?: number;
    /** Thinking tokens. */
    maxThinkingTokens?: number;
    /** Opens the thinking. */
    thinkStart?: string;
    /** Closes it. */
    thinkEnd?: string;
    /** Starts the answer. */
    finalAnswerPrefix?: string;
  };
  /** Request defaults. */
  defaults?: {
    /** Tokens generated. */
    maxTokens?: number;
    /** Temperature. */
    temperature?: number;
    /** Expert of unrouted requests. */
    expert?: string;
  };
  /** The server. */
  server?: ServerConfig;
}

/**
 * A pipeline built from a config, with what it opened.
 *
 * @example
 * ```ts
 * const built = await buildPipeline(await loadPipelineConfig('capibara.config.json'));
 * await built.pipeline.run({ prompt: 'Hi' });
 * await built.close();
 * ```
 */
export interface BuiltPipeline {
  /** The pipeline. */
  pipeline: OptimizationPipeline;
  /** The config's `server` section (defaults not filled in). */
  server: ServerConfig;
  /** Closes the pipeline, then everything the build opened (models, router, memory, budgets and their store, thinking store). */
  close(): Promise<void>;
  /** {@link BuiltPipeline.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Checks a parsed config against {@link PIPELINE_CONFIG_SCHEMA}, then what a schema cannot say:
 * with several experts each needs a `profile` (the router matches queries against it), and
 * `defaults.expert` must be one of them. Errors name the path of the bad key.
 *
 * @param config The parsed JSON.
 * @param name How errors name the root; default `'config'`.
 * @returns The config, typed.
 * @throws TypeError (wrong kind, unknown key, missing key) or RangeError (bad value), as
 * `Expected integer in [1, 256] for config.experts.tiny.threads but received 0 of type number`.
 *
 * @example
 * ```ts
 * checkPipelineConfig({ experts: { tiny: { backend: 'onnx', path: './tiny', threads: 0 } } });
 * // RangeError: Expected integer in [1, 256] for config.experts.tiny.threads but received 0 of type number
 * ```
 */
export function checkPipelineConfig(config: unknown, name = 'config'): PipelineConfig {
  check(PIPELINE_CONFIG_SCHEMA as SchemaNode, config, name);
  const c = config as PipelineConfig;
  const ids = Object.keys(c.experts);
  for (const id of ids) {
    if (id.length > 128) throw v.rangeError(`${name}.experts`, 'expert ids of 1 to 128 characters', id);
    if (ids.length > 1 && c.experts[id]!.profile === undefined) {
      throw new TypeError(`Expected a profile { domain, description } for ${child(child(`${name}.experts`, id), 'profile')} but received undefined (several experts are routed by their profiles)`);
    }
  }
  if (c.memory?.path !== undefined && c.memory.postgres !== undefined) {
    throw new TypeError(`Expected one of ${name}.memory.path and ${name}.memory.postgres but received both`);
  }
  const expert = c.defaults?.expert;
  if (expert !== undefined && !ids.includes(expert)) throw v.rangeError(`${name}.defaults.expert`, `one of ${ids.map((i) => `'${i}'`).join(', ')}`, expert);
  return c;
}

/**
 * Reads, parses and checks a config file ({@link checkPipelineConfig}); relative paths in it
 * are then resolved against the file's folder by {@link buildPipeline}.
 *
 * @param path The file.
 * @returns The config, and the folder relative paths start from.
 * @throws Error naming the file when it cannot be read or is not JSON; the check's errors.
 *
 * @example
 * ```ts
 * const { config, baseDir } = await loadPipelineConfig('./capibara.config.json');
 * ```
 */
export async function loadPipelineConfig(path: string): Promise<{
  /** The checked config. */
  config: PipelineConfig;
  /** The config file's folder. */
  baseDir: string;
}> {
  v.nonEmptyString('path', path);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`Cannot read the config file ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`The config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return { config: checkPipelineConfig(json), baseDir: dirname(resolve(path)) };
}

/**
 * Builds the pipeline a config describes: loads each expert (an {@link OnnxCausalLM} with its
 * folder's chat template, or an {@link OpenAICompatibleGenerator}), a {@link RewiringExperts}
 * over their profiles when there are several, a {@link MemAgent} (counting tokens with the
 * default expert's tokenizer when it is local), a {@link BudgetForcing} with token limits (in a
 * {@link RedisBudgetStore} when `redisUrl` is set), and a {@link SqliteThinkingStore} when
 * `thinking.storePath` is set. On a failure everything opened so far is closed.
 *
 * @param config A checked config.
 * @param options `baseDir` for relative paths (default the working directory); `metrics` for the pipeline.
 * @returns The pipeline, the server section and `close()`.
 * @throws Error naming the expert whose backend could not be loaded, or the missing API-key variable.
 *
 * @example
 * ```ts
 * const { config, baseDir } = await loadPipelineConfig('capibara.config.json');
 * const built = await buildPipeline(config, { baseDir, metrics: new CapibaraMetrics() });
 * ```
 */
export async function buildPipeline(
  config: PipelineConfig,
  options: {
    /** Folder relative paths start from. */
    baseDir?: string;
    /** The pipeline's metrics. */
    metrics?: PipelineMetrics;
  } = {},
): Promise<BuiltPipeline> {
  const c = checkPipelineConfig(config);
  const o = v.options<{ baseDir?: string; metrics?: PipelineMetrics }>('options', options, ['baseDir', 'metrics']);
  const base = o.baseDir === undefined ? process.cwd() : v.nonEmptyString('options.baseDir', o.baseDir);
  const at = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const opened: Array<{ close(): unknown }> = [];
  const closeAll = async () => {
    for (const x of opened.splice(0).reverse()) await Promise.resolve(x.close()).catch(() => undefined);
  };
  try {
    const experts: Record<string, ExpertSpec> = {};
    for (const [id, e] of Object.entries(c.experts)) {
      experts[id] = await loadExpert(id, e, at, opened);
    }
    const ids = Object.keys(experts);
    let router: RewiringExperts | undefined;
    if (ids.length > 1) {
      router = new RewiringExperts({
        strategy: (c.routing?.strategy ?? 'performance_based') as RoutingStrategy,
        experts: ids.map((id) => ({ id, ...c.experts[id]!.profile! })),
        ...(c.routing?.seed === undefined ? {} : { seed: c.routing.seed }),
        ...(c.routing?.sharedState === undefined ? {} : { sharedState: c.routing.sharedState }),
      });
      opened.push(router);
    }
    const defaultExpert = c.defaults?.expert ?? ids[0]!;
    let memory: MemAgent | undefined;
    if (c.memory !== undefined) {
      const m = c.memory;
      const tokenizer = experts[defaultExpert]!.generator;
      memory = await MemAgent.open({
        ...(m.path === undefined ? {} : { path: at(m.path) }),
        ...(m.postgres === undefined ? {} : { postgres: m.postgres }),
        ...(m.maxTokens === undefined ? {} : { maxTokens: m.maxTokens }),
        ...(m.compression === undefined ? {} : { compression: m.compression }),
        // A local tokenizer counts exactly; a remote one would cost a round trip per item.
        ...(tokenizer instanceof OnnxCausalLM ? { tokenizer } : {}),
      });
      opened.push(memory);
    }
    let budgets: BudgetForcing | undefined;
    if (c.budgets !== undefined) {
      const b = c.budgets;
      const store = b.redisUrl === undefined ? undefined : new RedisBudgetStore({ url: b.redisUrl, ...(b.redisPrefix === undefined ? {} : { prefix: b.redisPrefix }) });
      if (store !== undefined) opened.push(store);
      budgets = new BudgetForcing({
        enforcementLevel: (b.enforcementLevel ?? 'hard') as EnforcementLevel,
        onStoreError: b.onStoreError ?? 'fail-closed',
        budgets: (b.limits ?? []).map((l) => ({ resourceType: ResourceType.TOKENS, ...l })),
        ...(store === undefined ? {} : { store }),
      });
      // It closes its store.
      if (store !== undefined) opened.pop();
      opened.push(budgets);
    }
    const t = c.thinking ?? {};
    const thinkingStore = t.storePath === undefined ? undefined : new SqliteThinkingStore({ path: at(t.storePath) });
    if (thinkingStore !== undefined) opened.push(thinkingStore);
    const pipeline = new OptimizationPipeline({
      experts,
      ...(router === undefined ? {} : { router }),
      ...(memory === undefined ? {} : { memory: { agent: memory, ...pick(c.memory!, ['contextTokens', 'topK', 'scope', 'store', 'deferStore']) } }),
      ...(budgets === undefined ? {} : { budgets: { budgets, ...pick(c.budgets!, ['priority', 'estimatedDurationS', 'anonymousRequester']) } }),
      thinking: { ...(thinkingStore === undefined ? {} : { store: thinkingStore }), ...pick(t, ['maxRounds', 'maxThinkingTokens', 'thinkStart', 'thinkEnd', 'finalAnswerPrefix']) },
      defaults: { expert: defaultExpert, ...pick(c.defaults ?? {}, ['maxTokens', 'temperature']), ...pick(c.routing ?? {}, ['fallbackAttempts']) },
      ...(o.metrics === undefined ? {} : { metrics: o.metrics }),
    });
    const owned = [...opened];
    opened.length = 0;
    let closing: Promise<void> | undefined;
    const close = () =>
      (closing ??= (async () => {
        await pipeline.close();
        for (const x of owned.reverse()) await Promise.resolve(x.close());
      })());
    return { pipeline, server: c.server ?? {}, close, [Symbol.asyncDispose]: close };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

async function loadExpert(id: string, e: ExpertConfig, at: (p: string) => string, opened: Array<{ close(): unknown }>): Promise<ExpertSpec> {
  let generator: Generator;
  let chatTemplate: ChatTemplate;
  if (e.backend === 'onnx' || e.backend === 'llama') {
    // A local model folder: loaded (errors naming the expert), closed with the pipeline, its own chat template.
    const dir = at(e.path);
    let model: OnnxCausalLM | LlamaDecoder;
    try {
      model =
        e.backend === 'onnx'
          ? await OnnxCausalLM.load(dir, pick(e, ['threads', 'executionProviders', 'modelFile']))
          : await LlamaDecoder.load(dir, {
              ...pick(e, ['threads', 'sink', 'recent', 'storage', 'weights', 'maxTokens']),
              ...(e.headPattern === undefined ? {} : { headPattern: at(e.headPattern) }),
            });
    } catch (err) {
      throw new Error(`Expert '${id}': ${(err as Error).message}`, { cause: err });
    }
    opened.push(model);
    generator = model;
    const own = ChatTemplate.fromModelDir(dir);
    chatTemplate = e.chatTemplate === undefined ? own : new ChatTemplate(e.chatTemplate, own.specialTokens);
  } else {
    let apiKey = e.apiKey;
    if (e.apiKeyEnv !== undefined) {
      apiKey = process.env[e.apiKeyEnv];
      if (apiKey === undefined || apiKey === '') throw new Error(`Expert '${id}': the environment variable ${e.apiKeyEnv} (config.experts.${id}.apiKeyEnv) is not set`);
    }
    generator = new OpenAICompatibleGenerator({
      baseURL: e.baseURL,
      model: e.model,
      ...(apiKey === undefined ? {} : { apiKey }),
      ...(e.timeoutMs === undefined ? {} : { timeoutMs: e.timeoutMs }),
      ...(e.maxRetries === undefined ? {} : { maxRetries: e.maxRetries }),
    });
    chatTemplate = new ChatTemplate(e.chatTemplate ?? ChatTemplate.FALLBACK_SOURCE);
  }
  return { generator, chatTemplate, ...(e.contextLength === undefined ? {} : { contextLength: e.contextLength }) };
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
