/**
 * An OpenAI-compatible server over an {@link OptimizationPipeline} (or any {@link Generator},
 * served through a pipeline of one expert): every client that speaks `/v1/chat/completions` or
 * `/v1/completions` (the OpenAI SDKs, vLLM clients, {@link OpenAICompatibleGenerator}). This
 * file holds the public options and the factories; the server itself is in http-server.ts.
 * @module
 */
import type { Server } from 'node:http';
import type { GenerateOptions, GenerateResult, Generator, OpenAICompatibleGenerator } from '../llm/index';
import { CapibaraMetrics } from '../metrics/index';
import { ChatTemplate, OptimizationPipeline } from '../pipeline/index';
import * as v from '../validate';
import { HttpCompletionsServer, type ServerSettings } from './http-server';

/**
 * Options of {@link createCompletionsServer}.
 *
 * @example
 * ```ts
 * const opts: CompletionsServerOptions = { model: 'qwen3-0.6b', apiKey: process.env.CAPIBARA_API_KEY, maxQueue: 32 };
 * ```
 */
export interface CompletionsServerOptions {
  /** The model name the server answers to: listed by `GET /v1/models`; a request naming another model gets 404. */
  model: string;
  /**
   * When set, every request except `GET /health` must send `Authorization: Bearer <apiKey>`,
   * else 401. Default: no authentication.
   */
  apiKey?: string;
  /**
   * How many requests may wait for an expert while it generates, an integer >= 0; one more gets 503 with
   * `Retry-After: 1`. Default `16`.
   */
  maxQueue?: number;
  /** Largest request body accepted, in bytes, an integer >= 1; a larger one gets 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Most prompts one completions request may carry, an integer >= 1; more get 400. Default 16. */
  maxPromptsPerRequest?: number;
  /**
   * Most tokens one completions request may ask for — its prompts × `max_tokens` — an integer
   * >= 1; more get 400 (as vLLM refuses a `max_tokens` past the context). Default 65,536.
   */
  maxTokensPerRequest?: number;
  /**
   * API keys mapped to users: `{ '<key>': '<user>' }`. A request with one of these keys (as
   * `Authorization: Bearer <key>`) is that user's — its budget requester and memory scope — and
   * its body's `user` field is ignored. With `apiKey`, both kinds of key are accepted. Default none.
   */
  apiKeys?: Record<string, string>;
  /**
   * Tokens the model sees at once, an integer >= 1: `max_tokens` past it, or a prompt plus
   * `max_tokens` past it, gets 400 (as vLLM answers). Default: the smallest context length
   * the experts report ({@link OnnxCausalLM} reports its own), else no check.
   */
  contextLength?: number;
  /**
   * Milliseconds a client has to send a request's headers, an integer >= 1 (Node's
   * `server.headersTimeout`; its default, 60 s, lets slow-header connections sit a minute).
   * Past it Node answers 408 and closes the connection. Default 10,000.
   */
  headersTimeoutMs?: number;
  /**
   * Milliseconds a client has to send a whole request, headers and body, an integer >=
   * `headersTimeoutMs` (Node's `server.requestTimeout`, default 300 s). It does not limit the
   * answer: a long generation streams for as long as it takes. Default 30,000.
   */
  requestTimeoutMs?: number;
  /**
   * The chat template of {@link createCompletionsServer}'s generator (with
   * {@link createPipelineServer}, each expert has its own). Default {@link ChatTemplate.FALLBACK_SOURCE}.
   */
  chatTemplate?: ChatTemplate;
  /**
   * Where the server's metrics go (`GET /metrics`). Default: the pipeline's
   * {@link OptimizationPipeline.metrics} when it is a {@link CapibaraMetrics}, else a new one.
   */
  metrics?: CapibaraMetrics;
}

/**
 * A running (or ready) completions server; see {@link createCompletionsServer}.
 *
 * @example
 * ```ts
 * const server = createCompletionsServer(model, { model: 'local' });
 * const { url } = await server.listen(8000);
 * process.once('SIGTERM', () => void server.close());
 * ```
 */
export interface CompletionsServer {
  /**
   * The underlying `node:http` server, for embedding: attach it to your own listener, or
   * observe its `'request'` and `'connection'` events.
   *
   * @example
   * ```ts
   * server.httpServer.keepAliveTimeout = 30_000;
   * ```
   */
  readonly httpServer: Server;
  /**
   * The model name the server answers to.
   *
   * @example
   * ```ts
   * console.log(server.model); // 'local'
   * ```
   */
  readonly model: string;
  /**
   * `http://host:port` once listening, else `undefined`.
   *
   * @example
   * ```ts
   * await server.listen(0);
   * const client = new OpenAICompatibleGenerator({ baseURL: server.url!, model: server.model });
   * ```
   */
  readonly url: string | undefined;
  /**
   * The pipeline requests run through.
   *
   * @example
   * ```ts
   * console.log(server.pipeline.expertIds);
   * ```
   */
  readonly pipeline: OptimizationPipeline;
  /**
   * The metrics `GET /metrics` answers.
   *
   * @example
   * ```ts
   * console.log(await server.metrics.metrics());
   * ```
   */
  readonly metrics: CapibaraMetrics;
  /**
   * Requests generating now: at most one per expert (each expert generates one request at a time).
   *
   * @example
   * ```ts
   * metrics.gauge('generating', server.running);
   * ```
   */
  readonly running: number;
  /**
   * Requests waiting for their turn (at most `maxQueue` per expert).
   *
   * @example
   * ```ts
   * metrics.gauge('queued', server.waiting);
   * ```
   */
  readonly waiting: number;
  /**
   * Starts listening.
   *
   * @param port TCP port, an integer in [0, 65535]; `0` picks a free one.
   * @param host Interface to bind. Default `'127.0.0.1'` (this machine only); `'0.0.0.0'` for every interface.
   * @returns The URL clients reach the server at.
   * @throws Rejects on a bad argument, when already listening or closed, or when the port cannot be bound.
   *
   * @example
   * ```ts
   * const { url } = await server.listen(8000, '0.0.0.0');
   * ```
   */
  listen(
    port: number,
    host?: string,
  ): Promise<{
    /** `http://host:port`, as {@link CompletionsServer.url}. */
    url: string;
  }>;
  /**
   * Stops accepting connections, aborts the generations running and waiting (their clients
   * get 503, or an error event on a stream already open), waits for those to settle, closes
   * idle keep-alive connections, and resolves once the server is closed. Calling it again
   * returns the same promise. After it resolves no generation of this server is running, so
   * the generator can be closed.
   *
   * @example
   * ```ts
   * await server.close();
   * await model.close();
   * ```
   */
  close(): Promise<void>;
  /** {@link CompletionsServer.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

const DEFAULT_MAX_QUEUE = 16;
const DEFAULT_MAX_BODY_BYTES = 1 << 20;
const DEFAULT_MAX_PROMPTS = 16;
const DEFAULT_MAX_TOKENS_PER_REQUEST = 65_536;
const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const OPTION_KEYS = [
  'model', 'apiKey', 'maxQueue', 'maxBodyBytes', 'maxPromptsPerRequest', 'maxTokensPerRequest', 'apiKeys', 'contextLength', 'headersTimeoutMs',
  'requestTimeoutMs', 'chatTemplate', 'metrics',
] as const;

/**
 * Creates an OpenAI-compatible HTTP server over `generator` (not yet listening): a pipeline of
 * one expert, named `options.model`, with no other stage — see {@link createPipelineServer}
 * for the endpoints, errors and load handling, which are the same.
 *
 * **Completions** (`POST /v1/completions`): OpenAI's legacy completions. `prompt` is a
 * string, an array of token ids, or a batch (an array of either), generated one after another
 * as `choices` with their `index`. `max_tokens` (default 16), `temperature`, `top_p`, `seed`,
 * `stop` (a string or an array), `stream` and `stream_options.include_usage` map to
 * {@link Generator.generate}. `finish_reason` is `'length'` at the token cap, else `'stop'`
 * (a stop string or the end-of-sequence token); `stop_reason` (as vLLM sends it) is the
 * matched stop string, or `null`. `logprobs: 0` or `1` asks for the sampled tokens'
 * log-probabilities ({@link GenerateOptions.logprobs}), answered in OpenAI's format as the
 * choice's `logprobs: { tokens, token_logprobs, top_logprobs: null, text_offset: null }`
 * (`tokens` are the ids decoded one by one when the generator can decode, else null; no
 * alternatives, so `top_logprobs` is null); when streaming, the event with the
 * `finish_reason` carries the whole object and the text events `logprobs: null`. A generator
 * that reports none answers `logprobs: null`. `usage.completion_tokens` is the generator's
 * exact {@link GenerateResult.tokens}; `usage.prompt_tokens` is the result's `promptTokens`
 * when the backend reports it (as {@link OnnxCausalLM} does, special tokens included), else
 * the id count, or `generator.countTokens(prompt)`. Streaming sends one `data:` event per
 * piece of text, then an event with the `finish_reason`, then (with `include_usage`) a
 * `choices: []` event with the usage, then `data: [DONE]`.
 *
 * @param generator The model to serve.
 * @param options Model name, API keys, limits, timeouts, chat template and metrics.
 * @returns The server; call {@link CompletionsServer.listen}.
 * @throws TypeError or RangeError naming the bad option.
 *
 * @example
 * ```ts
 * import { ChatTemplate, createCompletionsServer, OnnxCausalLM, OpenAICompatibleGenerator } from '@capibara/core';
 * const model = await OnnxCausalLM.load('./models/tiny');
 * const server = createCompletionsServer(model, { model: 'local', chatTemplate: ChatTemplate.fromModelDir('./models/tiny') });
 * const { url } = await server.listen(8000);
 * const client = new OpenAICompatibleGenerator({ baseURL: url, model: 'local' });
 * console.log((await client.generate('Hello', { maxTokens: 8 })).text);
 * await server.close();
 * ```
 */
export function createCompletionsServer(generator: Generator, options: CompletionsServerOptions): CompletionsServer {
  if (generator === null || typeof generator !== 'object' || typeof generator.generate !== 'function' || typeof generator.countTokens !== 'function') {
    throw v.typeError('generator', 'a Generator (an object with generate and countTokens methods)', generator);
  }
  const s = checkServerOptions(options);
  if (s.chatTemplate !== undefined && !(s.chatTemplate instanceof ChatTemplate)) throw v.typeError('options.chatTemplate', 'a ChatTemplate', s.chatTemplate);
  const metrics = s.metrics ?? new CapibaraMetrics();
  const pipeline = new OptimizationPipeline({
    experts: { [s.model]: s.chatTemplate === undefined ? { generator } : { generator, chatTemplate: s.chatTemplate } },
    metrics,
  });
  return new HttpCompletionsServer(pipeline, metrics, s, { pipeline: true, metrics: s.metrics === undefined });
}

/**
 * Creates an OpenAI-compatible HTTP server over an {@link OptimizationPipeline} (not yet
 * listening): every request runs through the pipeline's stages — routing, memory, budgets,
 * thinking — and the answer can carry the trace.
 *
 * **Endpoints.**
 * - `POST /v1/chat/completions`: OpenAI's chat completions, tool-free. `messages` (roles
 *   `system`, `developer` — taken as system —, `user`, `assistant`; `content` a string or text
 *   parts) are rendered by the routed expert's {@link ChatTemplate}. `max_tokens` or
 *   `max_completion_tokens` (default: the pipeline's `defaults.maxTokens`, cut to what the
 *   context leaves), `temperature`, `top_p`, `seed`, `stop`, `logprobs` (no `top_logprobs`),
 *   `stream` with `stream_options.include_usage`. The answer is a `chat.completion` with
 *   `choices[0].message` (and `reasoning_content` when the request thought); streaming sends
 *   `chat.completion.chunk` events: the role first, then one `delta.content` per piece of
 *   text, then a chunk with the `finish_reason` (and the `logprobs`), then (with
 *   `include_usage`) a `choices: []` chunk with the usage, then `data: [DONE]`.
 * - `POST /v1/completions`: as {@link createCompletionsServer} describes; each prompt of a
 *   batch is one pipeline run.
 * - `GET /v1/models` (the one model) and `GET /v1/models/{id}` (it, or 404 `model_not_found`).
 * - `POST /tokenize` (vLLM's shape): `{ prompt }` → `{ count }`, plus `tokens` when the
 *   default expert's generator has `encode`.
 * - `GET /metrics`: the Prometheus exposition of {@link CompletionsServer.metrics} (see
 *   {@link METRICS}; the API key is needed as for every other path). `GET /health`: 200 while
 *   the server runs, never behind the key.
 *
 * **Who asks.** The request's user — the budget requester and the memory scope — is the user
 * its API key maps to (`options.apiKeys`), else the body's `user` field (trusted as sent: set
 * `apiKeys` when clients must not pick each other's scope), else none.
 *
 * **The `capibara` field** (both POST endpoints; through the OpenAI SDKs pass it in `extra_body`):
 * - `thinking: { max_thinking_tokens?, min_thinking_tokens? }` — think within s1 bounds, then answer in `max_tokens`;
 * - `multi_round: { max_rounds?, thinking_mode?, reasoning_type?, min_thinking_tokens?, max_thinking_tokens?, answer_max_tokens? }`
 *   — a Think Twice session whose token budget is `max_tokens`;
 * - `session_id` (session budgets and memory), `memory: false` (skip the memory stage),
 *   `expert` (skip routing), `priority` (0–10, budget overdrafts);
 * - `trace: true` — the answer (the last event, when streaming) carries
 *   `capibara: { runs: [{ index, expert, trace }] }`, each {@link PipelineTrace}.
 *
 * **Limits.** Like vLLM, `max_tokens` past the context, or prompt + `max_tokens` past it, → 400.
 * `temperature` in [0, 2]. A request may ask for at most `maxTokensPerRequest` tokens (prompts ×
 * (`max_tokens` + thinking tokens)) and carry at most `maxPromptsPerRequest` prompts.
 *
 * **Errors** follow OpenAI: `{ error: { message, type, param, code } }`. Bad JSON, wrong
 * types, out-of-range values, unknown fields and fields asking for what this server lacks
 * (`n` or `best_of` above 1, `echo`, `logprobs` above 1, `top_logprobs`, `suffix`,
 * penalties, `logit_bias`, tools, non-text `response_format`) → 400 naming the field; a
 * budget denial → 429 `budget_exceeded` (type `insufficient_quota`) naming the budget; an
 * unknown `model` → 404 `model_not_found` (an absent `model` means the served one); unknown
 * path → 404; wrong method → 405; a body that is not declared `application/json` → 415; body
 * over `maxBodyBytes` → 413; a missing or wrong API key → 401; a generator's `RangeError`
 * (bad input it caught) → 400, any other generation error → 500, or mid-stream a
 * `data: {"error": …}` event, then the end.
 *
 * **Load.** Each expert generates one request at a time (a local model has one KV cache); up
 * to `maxQueue` requests wait for it in arrival order, more get 503 with `Retry-After: 1`.
 * Every generate call is a turn of its own: the prompts of a batch, and the calls of a
 * thinking request, each go to the back of the line, so no request holds an expert while
 * others wait longer than one call. One call holds it for at most its `max_tokens` (≤
 * `maxTokensPerRequest`) tokens — a turn is never cut inside a generation, so lower
 * `maxTokensPerRequest` to bound the wait. A client that disconnects aborts its generation (or
 * leaves the line) through the {@link GenerateOptions.signal}. Slow clients are cut off by
 * `headersTimeoutMs` and `requestTimeoutMs` (408).
 *
 * @param pipeline The pipeline to serve. The server does not close it.
 * @param options Model name, API keys, limits, timeouts and metrics.
 * @returns The server; call {@link CompletionsServer.listen}.
 * @throws TypeError or RangeError naming the bad option.
 *
 * @example
 * ```ts
 * import OpenAI from 'openai';
 * import { createPipelineServer } from '@capibara/core';
 * const server = createPipelineServer(pipeline, { model: 'capibara', apiKeys: { 'sk-alice': 'alice' } });
 * const { url } = await server.listen(8000);
 * const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-alice' });
 * const chat = await openai.chat.completions.create({ model: 'capibara', messages: [{ role: 'user', content: 'Hi' }] });
 * console.log(chat.choices[0]!.message.content);
 * ```
 */
export function createPipelineServer(pipeline: OptimizationPipeline, options: CompletionsServerOptions): CompletionsServer {
  if (!(pipeline instanceof OptimizationPipeline)) throw v.typeError('pipeline', 'an OptimizationPipeline', pipeline);
  const s = checkServerOptions(options);
  if (s.chatTemplate !== undefined) throw new TypeError('options.chatTemplate is for createCompletionsServer; give each expert of the pipeline its chatTemplate');
  let metrics = s.metrics;
  let owned = false;
  if (metrics === undefined) {
    if (pipeline.metrics instanceof CapibaraMetrics) metrics = pipeline.metrics;
    else {
      metrics = new CapibaraMetrics();
      metrics.observePipeline(pipeline);
      owned = true;
    }
  }
  return new HttpCompletionsServer(pipeline, metrics, s, { pipeline: false, metrics: owned });
}

function checkServerOptions(options: CompletionsServerOptions): ServerSettings & { chatTemplate: ChatTemplate | undefined; metrics: CapibaraMetrics | undefined } {
  if (options === undefined) throw v.typeError('options', 'an options object', options);
  const o = v.options<CompletionsServerOptions>('options', options, OPTION_KEYS);
  const model = v.nonEmptyString('options.model', o.model);
  const apiKey = o.apiKey === undefined ? undefined : v.nonEmptyString('options.apiKey', o.apiKey);
  const apiKeys = new Map<string, string>();
  if (o.apiKeys !== undefined) {
    if (o.apiKeys === null || typeof o.apiKeys !== 'object' || Array.isArray(o.apiKeys)) throw v.typeError('options.apiKeys', 'an object of users by API key', o.apiKeys);
    for (const [key, user] of Object.entries(o.apiKeys)) {
      if (key === '') throw v.rangeError('options.apiKeys', 'non-empty API keys', key);
      apiKeys.set(key, v.nonEmptyString(`options.apiKeys['${key.slice(0, 4)}…']`, user));
    }
  }
  const headersTimeoutMs = o.headersTimeoutMs === undefined ? DEFAULT_HEADERS_TIMEOUT_MS : v.integer('options.headersTimeoutMs', o.headersTimeoutMs, 1);
  const requestTimeoutMs =
    o.requestTimeoutMs === undefined ? Math.max(DEFAULT_REQUEST_TIMEOUT_MS, headersTimeoutMs) : v.integer('options.requestTimeoutMs', o.requestTimeoutMs, headersTimeoutMs);
  if (o.metrics !== undefined && !(o.metrics instanceof CapibaraMetrics)) throw v.typeError('options.metrics', 'a CapibaraMetrics', o.metrics);
  return {
    model,
    apiKey,
    apiKeys,
    maxQueue: o.maxQueue === undefined ? DEFAULT_MAX_QUEUE : v.integer('options.maxQueue', o.maxQueue, 0),
    maxBodyBytes: o.maxBodyBytes === undefined ? DEFAULT_MAX_BODY_BYTES : v.integer('options.maxBodyBytes', o.maxBodyBytes, 1),
    maxPrompts: o.maxPromptsPerRequest === undefined ? DEFAULT_MAX_PROMPTS : v.integer('options.maxPromptsPerRequest', o.maxPromptsPerRequest, 1),
    maxTokens: o.maxTokensPerRequest === undefined ? DEFAULT_MAX_TOKENS_PER_REQUEST : v.integer('options.maxTokensPerRequest', o.maxTokensPerRequest, 1),
    contextLength: o.contextLength === undefined ? undefined : v.integer('options.contextLength', o.contextLength, 1),
    headersTimeoutMs,
    requestTimeoutMs,
    chatTemplate: o.chatTemplate,
    metrics: o.metrics,
  };
}
