/**
 * An OpenAI-compatible completions server over any {@link Generator}: a local model served
 * to every client that speaks `/v1/completions` (the OpenAI SDKs, vLLM clients,
 * {@link OpenAICompatibleGenerator}).
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GenerateOptions, GenerateResult, Generator, OpenAICompatibleGenerator } from '../llm/index';
import { CloseGuard, ClosedError } from '../toolkit/closing';
import * as v from '../validate';
import { complete, messageOf, sendJSON } from './completions-handler';
import { HttpError, checkModel, parseBody, parseCompletionsRequest, parseTokenizeRequest, type RequestLimits } from './completions-request';
import { GenerationQueue } from './generation-queue';

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
   * How many requests may wait while one generates, an integer >= 0; one more gets 503 with
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
   * Requests generating now: `1` or `0` (generations run one at a time).
   *
   * @example
   * ```ts
   * metrics.gauge('generating', server.running);
   * ```
   */
  readonly running: number;
  /**
   * Requests waiting for their turn (at most `maxQueue`).
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
const OPTION_KEYS = ['model', 'apiKey', 'maxQueue', 'maxBodyBytes', 'maxPromptsPerRequest', 'maxTokensPerRequest'] as const;
const ROUTES = new Map<string, readonly string[]>([
  ['/v1/completions', ['POST']],
  ['/v1/models', ['GET', 'HEAD']],
  ['/tokenize', ['POST']],
  ['/health', ['GET', 'HEAD']],
]);
const ROUTE_LIST = 'POST /v1/completions, GET /v1/models, POST /tokenize, GET /health';

/**
 * Creates an OpenAI-compatible HTTP server over `generator` (not yet listening).
 *
 * **Endpoints.**
 * - `POST /v1/completions`: OpenAI's legacy completions. `prompt` is a string, an array of
 *   token ids, or a batch (an array of either), generated one after another as `choices`
 *   with their `index`. `max_tokens` (default 16), `temperature`, `top_p`, `seed`, `stop`
 *   (a string or an array), `stream` and `stream_options.include_usage` map to
 *   {@link Generator.generate}. `finish_reason` is `'length'` at the token cap, else `'stop'`
 *   (a stop string or the end-of-sequence token); `stop_reason` (as vLLM sends it) is the
 *   matched stop string, or `null`. `logprobs: 0` or `1` asks for the sampled tokens'
 *   log-probabilities ({@link GenerateOptions.logprobs}), answered in OpenAI's format as the
 *   choice's `logprobs: { tokens, token_logprobs, top_logprobs: null, text_offset: null }`
 *   (`tokens` are the ids decoded one by one when the generator can decode, else null; no
 *   alternatives, so `top_logprobs` is null); when streaming, the event with the
 *   `finish_reason` carries the whole object and the text events `logprobs: null`. A
 *   generator that reports none answers `logprobs: null`. `usage.completion_tokens` is the
 *   generator's exact {@link GenerateResult.tokens}; `usage.prompt_tokens` is the result's `promptTokens` when
 *   the backend reports it (as {@link OnnxCausalLM} does, special tokens included), else the
 *   id count, or `generator.countTokens(prompt)`. Streaming sends one `data:` event per piece of text,
 *   then an event with the `finish_reason`, then (with `include_usage`) a `choices: []` event
 *   with the usage, then `data: [DONE]`.
 * - `GET /v1/models`: the one model. `GET /health`: 200 while the server runs.
 * - `POST /tokenize` (vLLM's shape, which {@link OpenAICompatibleGenerator.countTokens} uses):
 *   `{ prompt }` → `{ count }`, plus `tokens` when the generator has `encode`.
 *
 * **Errors** follow OpenAI: `{ error: { message, type, param, code } }`. Bad JSON, wrong
 * types, out-of-range values, unknown fields and fields asking for what this server lacks
 * (`n` or `best_of` above 1, `echo`, `logprobs` above 1, `suffix`, penalties, `logit_bias`) → 400
 * naming the field; an unknown `model` → 404 `model_not_found` (an absent `model` means the
 * served one); unknown path → 404; wrong method → 405; body over `maxBodyBytes` → 413; a
 * missing or wrong API key → 401; a generator's `RangeError` (bad input it caught) → 400,
 * any other generator error → 500, or mid-stream a `data: {"error": …}` event, then the end.
 *
 * **Load.** Generations run one at a time (a local model has one KV cache); up to
 * `maxQueue` requests wait their turn in arrival order, more get 503 with `Retry-After: 1`.
 * A client that disconnects aborts its generation (or leaves the queue) through the
 * {@link GenerateOptions.signal}.
 *
 * @param generator The model to serve.
 * @param options Model name, API key and limits.
 * @returns The server; call {@link CompletionsServer.listen}.
 * @throws TypeError or RangeError naming the bad option.
 *
 * @example
 * ```ts
 * import { createCompletionsServer, OpenAICompatibleGenerator } from '@capibara/core';
 * const server = createCompletionsServer(model, { model: 'local' });
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
  if (options === undefined) throw v.typeError('options', 'an options object', options);
  const o = v.options<CompletionsServerOptions>('options', options, OPTION_KEYS);
  const model = v.nonEmptyString('options.model', o.model);
  const apiKey = o.apiKey === undefined ? undefined : v.nonEmptyString('options.apiKey', o.apiKey);
  const maxQueue = o.maxQueue === undefined ? DEFAULT_MAX_QUEUE : v.integer('options.maxQueue', o.maxQueue, 0);
  const maxBodyBytes = o.maxBodyBytes === undefined ? DEFAULT_MAX_BODY_BYTES : v.integer('options.maxBodyBytes', o.maxBodyBytes, 1);
  const limits: RequestLimits = {
    maxPrompts: o.maxPromptsPerRequest === undefined ? DEFAULT_MAX_PROMPTS : v.integer('options.maxPromptsPerRequest', o.maxPromptsPerRequest, 1),
    maxTokens: o.maxTokensPerRequest === undefined ? DEFAULT_MAX_TOKENS_PER_REQUEST : v.integer('options.maxTokensPerRequest', o.maxTokensPerRequest, 1),
  };
  return new HttpCompletionsServer(generator, model, apiKey, maxQueue, maxBodyBytes, limits);
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();
const noop = () => {};
const shuttingDown = () => new HttpError(503, 'The server is shutting down', null, null, { connection: 'close' });
/** Abort reason when the client went away: nothing is sent, the connection is gone. */
const clientGone = () => new HttpError(499, 'The client closed the connection');

class HttpCompletionsServer implements CompletionsServer {
  readonly httpServer: Server;
  readonly #generator: Generator;
  readonly #queue: GenerationQueue;
  readonly #keyDigest: Buffer | undefined;
  readonly #maxBodyBytes: number;
  readonly #limits: RequestLimits;
  readonly #created = Math.floor(Date.now() / 1000);
  readonly #controllers = new Set<AbortController>();
  readonly #pending = new Set<Promise<void>>();
  readonly #guard = new CloseGuard('CompletionsServer');

  constructor(
    generator: Generator,
    readonly model: string,
    apiKey: string | undefined,
    maxQueue: number,
    maxBodyBytes: number,
    limits: RequestLimits,
  ) {
    this.#limits = limits;
    this.#generator = generator;
    this.#queue = new GenerationQueue(maxQueue);
    // Compared as digests: equal lengths for timingSafeEqual, and no timing leak of the key's length.
    this.#keyDigest = apiKey === undefined ? undefined : sha256(apiKey);
    this.#maxBodyBytes = maxBodyBytes;
    this.httpServer = createServer((req, res) => this.#onRequest(req, res));
    // An 'error' with no listener would crash the process; listen() reports its own errors.
    this.httpServer.on('error', noop);
  }

  get url(): string | undefined {
    const a = this.httpServer.address() as AddressInfo | null;
    if (a === null || typeof a !== 'object') return undefined;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  get running(): number {
    return this.#queue.running;
  }

  get waiting(): number {
    return this.#queue.waiting;
  }

  async listen(port: number, host = '127.0.0.1'): Promise<{ url: string }> {
    v.integer('port', port, 0, 65535);
    v.nonEmptyString('host', host);
    if (this.#guard.closed) throw new ClosedError('CompletionsServer.listen: the server');
    if (this.httpServer.listening) throw new Error(`CompletionsServer.listen: already listening on ${this.url}`);
    await new Promise<void>((resolve, reject) => {
      this.httpServer.once('error', reject);
      this.httpServer.listen(port, host, () => {
        this.httpServer.off('error', reject);
        resolve();
      });
    });
    return { url: this.url! };
  }

  close(): Promise<void> {
    return this.#guard.close(() => this.#shutdown());
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.httpServer.close(() => resolve()));
    for (const c of this.#controllers) c.abort(shuttingDown());
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
    this.httpServer.closeAllConnections();
    await stopped;
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    req.on('error', noop);
    res.on('error', noop);
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) controller.abort(clientGone());
    });
    this.#controllers.add(controller);
    const done: Promise<void> = this.#handle(req, res, controller.signal)
      .catch((err: unknown) => fail(res, err))
      .finally(() => {
        this.#controllers.delete(controller);
        this.#pending.delete(done);
      });
    this.#pending.add(done);
  }

  async #handle(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    if (this.#guard.closed) throw shuttingDown();
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?', 1)[0]!;
    if (path !== '/health') this.#authorize(req);
    const methods = ROUTES.get(path);
    if (methods === undefined) throw new HttpError(404, `Unknown path ${path} (this server has ${ROUTE_LIST})`, null, 'not_found');
    if (!methods.includes(method)) {
      throw new HttpError(405, `Method ${method} is not allowed on ${path} (allowed: ${methods.join(', ')})`, null, null, { allow: methods.join(', ') });
    }
    if (path === '/health') return void res.writeHead(200, { 'content-length': 0 }).end();
    if (path === '/v1/models') {
      return sendJSON(res, 200, { object: 'list', data: [{ id: this.model, object: 'model', created: this.#created, owned_by: 'capibara' }] });
    }
    checkContentType(req);
    const body = parseBody(await readBody(req, this.#maxBodyBytes, signal));
    checkModel(body, this.model);
    if (path === '/tokenize') return this.#tokenize(parseTokenizeRequest(body), res);

    const request = parseCompletionsRequest(body, this.#limits);
    let admitted = false;
    const turn = async (): Promise<() => void> => {
      const entered = this.#queue.enter(signal, admitted);
      if (entered === 'full') {
        throw new HttpError(503, `The server is busy: 1 generation running and ${this.#queue.waiting} waiting (maxQueue ${this.#queue.maxQueue}); retry later`, null, null, { 'retry-after': '1' });
      }
      admitted = true;
      const release = await entered;
      if (release === undefined) throw signal.reason;
      return release;
    };
    await complete(this.#generator, this.model, request, res, signal, turn);
  }

  async #tokenize(text: string, res: ServerResponse): Promise<void> {
    let count: number;
    let tokens: number[] | undefined;
    try {
      if (this.#generator.encode) {
        tokens = await this.#generator.encode(text);
        count = tokens.length;
      } else count = await this.#generator.countTokens(text);
    } catch (err) {
      throw new HttpError(500, `Tokenizing failed: ${messageOf(err)}`);
    }
    sendJSON(res, 200, tokens === undefined ? { count } : { count, tokens });
  }

  #authorize(req: IncomingMessage): void {
    if (this.#keyDigest === undefined) return;
    const challenge = { 'www-authenticate': 'Bearer' };
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
    if (m === null) throw new HttpError(401, "Missing API key: send it as 'Authorization: Bearer <key>'", null, null, challenge);
    if (!timingSafeEqual(sha256(m[1]!), this.#keyDigest)) throw new HttpError(401, 'Incorrect API key provided', null, 'invalid_api_key', challenge);
  }
}

/** Answers an error: JSON when nothing was sent yet, an error event on an open stream, nothing to a client that left. */
function fail(res: ServerResponse, err: unknown): void {
  if (res.destroyed || res.writableEnded) return;
  const e = err instanceof HttpError ? err : new HttpError(500, `Internal error: ${messageOf(err)}`);
  try {
    if (!res.headersSent) sendJSON(res, e.status, e.body, e.headers);
    else res.end(`data: ${JSON.stringify(e.body)}\n\n`);
  } catch {
    res.destroy();
  }
}

/**
 * POST bodies must say they are JSON. A web page can make a browser POST text/plain or a form to
 * a local server without asking it first (no CORS preflight); it cannot send application/json.
 */
function checkContentType(req: IncomingMessage): void {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (type === 'application/json') return;
  throw new HttpError(415, `Expected Content-Type application/json but received ${type === '' ? 'none' : type}`, null, 'unsupported_media_type');
}

/** Reads the body as UTF-8, refusing more than `limit` bytes (by Content-Length up front, else as it arrives). */
function readBody(req: IncomingMessage, limit: number, signal: AbortSignal): Promise<string> {
  // Connection: close, so Node does not keep reading an oversized body to reuse the connection.
  const tooLarge = () => new HttpError(413, `The request body is larger than ${limit} bytes`, null, null, { connection: 'close' });
  if (Number(req.headers['content-length']) > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (err: unknown, text?: string) => {
      req.off('data', onData).off('end', onEnd).off('error', settle);
      signal.removeEventListener('abort', onAbort);
      if (err === undefined) resolve(text!);
      else reject(err);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) settle(tooLarge());
      else chunks.push(chunk);
    };
    const onEnd = () => settle(undefined, Buffer.concat(chunks).toString('utf8'));
    const onAbort = () => settle(signal.reason);
    req.on('data', onData).on('end', onEnd).on('error', settle);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
