/**
 * The server behind {@link createCompletionsServer} and {@link createPipelineServer}: routes,
 * API keys, the generation line of each expert, the context check, timeouts and metrics.
 * @module
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Generator } from '../llm/index';
import type { CapibaraMetrics } from '../metrics/index';
import type { ChatMessage, OptimizationPipeline } from '../pipeline/index';
import { CloseGuard, ClosedError } from '../toolkit/closing';
import * as v from '../validate';
import { chat } from './chat-handler';
import { type ChatRequest, parseChatRequest } from './chat-request';
import { complete, messageOf, type RunContext, sendJSON } from './completions-handler';
import { checkModel, type CompletionsRequest, parseBody, parseCompletionsRequest, parseTokenizeRequest, type RequestLimits } from './completions-request';
import { HttpError } from './errors';
import { GenerationQueue } from './generation-queue';
import { checkContentType, fail, readBody } from './http';

/** The server's checked options. */
export interface ServerSettings {
  model: string;
  apiKey: string | undefined;
  apiKeys: Map<string, string>;
  maxQueue: number;
  maxBodyBytes: number;
  maxPrompts: number;
  maxTokens: number;
  contextLength: number | undefined;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
}

const ROUTES = new Map<string, readonly string[]>([
  ['/v1/chat/completions', ['POST']],
  ['/v1/completions', ['POST']],
  ['/v1/models', ['GET', 'HEAD']],
  ['/v1/models/{id}', ['GET', 'HEAD']],
  ['/tokenize', ['POST']],
  ['/metrics', ['GET', 'HEAD']],
  ['/health', ['GET', 'HEAD']],
]);
const ROUTE_LIST = 'POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /v1/models/{id}, POST /tokenize, GET /metrics, GET /health';

const sha256 = (s: string) => createHash('sha256').update(s).digest();
const noop = () => {};
const shuttingDown = () => new HttpError(503, 'The server is shutting down', null, null, { connection: 'close' });
/** Abort reason when the client went away: nothing is sent, the connection is gone. */
const clientGone = () => new HttpError(499, 'The client closed the connection');

/** The route pattern of a path (`/v1/models/x` → `/v1/models/{id}`), or undefined. */
function routeOf(path: string): string | undefined {
  if (ROUTES.has(path)) return path;
  if (path.startsWith('/v1/models/') && path.length > '/v1/models/'.length) return '/v1/models/{id}';
  return undefined;
}

export class HttpCompletionsServer {
  readonly httpServer: Server;
  readonly model: string;
  readonly #s: ServerSettings;
  readonly #queues = new Map<string, GenerationQueue>();
  readonly #keys: Array<{ digest: Buffer; user: string | undefined }>;
  readonly #limits: RequestLimits;
  readonly #contextLength: number | undefined;
  readonly #created = Math.floor(Date.now() / 1000);
  readonly #controllers = new Set<AbortController>();
  readonly #pending = new Set<Promise<void>>();
  readonly #guard = new CloseGuard('CompletionsServer');

  constructor(
    readonly pipeline: OptimizationPipeline,
    readonly metrics: CapibaraMetrics,
    s: ServerSettings,
    readonly owns: { pipeline: boolean; metrics: boolean },
  ) {
    this.#s = s;
    this.model = s.model;
    // Compared as digests: equal lengths for timingSafeEqual, and no timing leak of a key's length.
    this.#keys = [...(s.apiKey === undefined ? [] : [{ digest: sha256(s.apiKey), user: undefined }]), ...[...s.apiKeys].map(([k, user]) => ({ digest: sha256(k), user }))];
    this.#limits = { maxPrompts: s.maxPrompts, maxTokens: s.maxTokens, defaultThinkingTokens: pipeline.requestDefaults.maxThinkingTokens };
    const known = pipeline.expertIds.map((id) => pipeline.expert(id).contextLength).filter((c): c is number => c !== undefined);
    this.#contextLength = s.contextLength ?? (known.length > 0 ? Math.min(...known) : undefined);
    for (const id of pipeline.expertIds) this.#queues.set(id, new GenerationQueue(s.maxQueue));
    // Node checks its timeouts every connectionsCheckingInterval ms (default 30 s): check often
    // enough that a timeout is enforced close to its value.
    const interval = Math.max(10, Math.min(1000, Math.floor(s.headersTimeoutMs / 4)));
    this.httpServer = createServer({ headersTimeout: s.headersTimeoutMs, requestTimeout: s.requestTimeoutMs, connectionsCheckingInterval: interval }, (req, res) =>
      this.#onRequest(req, res),
    );
    // An 'error' with no listener would crash the process; listen() reports its own errors.
    this.httpServer.on('error', noop);
    metrics.observeServer(this);
  }

  get url(): string | undefined {
    const a = this.httpServer.address() as AddressInfo | null;
    if (a === null || typeof a !== 'object') return undefined;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  get running(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.running;
    return n;
  }

  get waiting(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.waiting;
    return n;
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
    if (this.owns.pipeline) await this.pipeline.close();
    if (this.owns.metrics) this.metrics.close();
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    req.on('error', noop);
    res.on('error', noop);
    const t0 = performance.now();
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) controller.abort(clientGone());
      const route = routeOf((req.url ?? '/').split('?', 1)[0]!) ?? 'unknown';
      this.metrics.recordHttp(route, req.method ?? 'GET', res.statusCode, (performance.now() - t0) / 1000);
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
    const keyUser = path === '/health' ? undefined : this.#authorize(req);
    const route = routeOf(path);
    if (route === undefined) throw new HttpError(404, `Unknown path ${path} (this server has ${ROUTE_LIST})`, null, 'not_found');
    const methods = ROUTES.get(route)!;
    if (!methods.includes(method)) {
      throw new HttpError(405, `Method ${method} is not allowed on ${path} (allowed: ${methods.join(', ')})`, null, null, { allow: methods.join(', ') });
    }
    if (route === '/health') return void res.writeHead(200, { 'content-length': 0 }).end();
    if (route === '/v1/models') return sendJSON(res, 200, { object: 'list', data: [this.#modelCard()] });
    if (route === '/v1/models/{id}') {
      let id: string;
      try {
        id = decodeURIComponent(path.slice('/v1/models/'.length));
      } catch {
        throw new HttpError(400, `The model id in ${path} is not valid percent-encoding`);
      }
      if (id !== this.model) throw new HttpError(404, `The model '${id}' does not exist; this server serves '${this.model}'`, 'model', 'model_not_found');
      return sendJSON(res, 200, this.#modelCard());
    }
    if (route === '/metrics') {
      const text = await this.metrics.metrics();
      return void res.writeHead(200, { 'content-type': this.metrics.contentType, 'content-length': Buffer.byteLength(text) }).end(method === 'HEAD' ? undefined : text);
    }
    checkContentType(req);
    const body = parseBody(await readBody(req, this.#s.maxBodyBytes, signal));
    checkModel(body, this.model);
    if (route === '/tokenize') return this.#tokenize(parseTokenizeRequest(body), res);

    const ctx = this.#context(signal, keyUser);
    if (route === '/v1/chat/completions') {
      const request = parseChatRequest(body, this.#limits, this.pipeline.requestDefaults.maxTokens);
      ctx.user = keyUser ?? request.user;
      this.#checkExpert(request.extension.expert);
      await this.#fit(request, undefined);
      return chat(ctx, this.model, request, res);
    }
    const request = parseCompletionsRequest(body, this.#limits);
    ctx.user = keyUser ?? request.user;
    this.#checkExpert(request.extension.expert);
    await this.#fit(request, request.prompts);
    await complete(ctx, this.model, request, res);
  }

  #modelCard() {
    const card: Record<string, unknown> = { id: this.model, object: 'model', created: this.#created, owned_by: 'capibara' };
    if (this.#contextLength !== undefined) card['max_model_len'] = this.#contextLength;
    return card;
  }

  /** The turns of one request: each generate call waits for its expert's slot. */
  #context(signal: AbortSignal, user: string | undefined): RunContext {
    let admitted = false;
    const turn = async (expertId: string): Promise<() => void> => {
      const queue = this.#queues.get(expertId)!;
      const entered = queue.enter(signal, admitted);
      if (entered === 'full') {
        throw new HttpError(
          503,
          `The server is busy: 1 generation running and ${queue.waiting} waiting${this.#queues.size > 1 ? ` for expert '${expertId}'` : ''} (maxQueue ${queue.maxQueue}); retry later`,
          null,
          null,
          { 'retry-after': '1' },
        );
      }
      // A request admitted once comes back for its next call: it is never turned away mid-way.
      admitted = true;
      const release = await entered;
      if (release === undefined) throw signal.reason;
      return release;
    };
    return { pipeline: this.pipeline, signal, turn, user };
  }

  #checkExpert(expert: string | undefined): void {
    if (expert === undefined || this.pipeline.expertIds.includes(expert)) return;
    throw new HttpError(400, v.rangeError('capibara.expert', `one of ${this.pipeline.expertIds.map((e) => `'${e}'`).join(', ')}`, expert).message, 'capibara');
  }

  /**
   * vLLM's context check: `max_tokens` past the context, or prompt + `max_tokens` past it → 400.
   * Routing picks the expert after this check, so the request must fit every expert it may be
   * routed to (only the one it names, when it names one), each with its own chat template,
   * tokenizer and context length (or the server's `contextLength` for all).
   */
  async #fit(r: CompletionsRequest | ChatRequest, prompts: ReadonlyArray<string | readonly number[]> | undefined): Promise<void> {
    const ids = r.extension.expert === undefined ? this.pipeline.expertIds : [r.extension.expert];
    const thinking = this.#thinkingTokens(r);
    const what = prompts === undefined ? 'messages' : 'prompt';
    let room = Infinity;
    for (const id of ids) {
      const expert = this.pipeline.expert(id);
      const ctx = this.#s.contextLength ?? expert.contextLength;
      if (ctx === undefined) continue;
      let texts: ReadonlyArray<string | readonly number[]>;
      try {
        texts = prompts ?? [expert.chatTemplate.render((r as ChatRequest).messages as ChatMessage[])];
      } catch (err) {
        throw new HttpError(400, messageOf(err), 'messages');
      }
      for (const text of texts) {
        const tokens = typeof text === 'string' ? await this.#count(expert.generator, text) : text.length;
        // No max_tokens (chat): as much as the context leaves, up to the pipeline's default.
        this.#fits(ctx, tokens, (r.maxTokens ?? 1) + thinking, what);
        room = Math.min(room, ctx - tokens - thinking);
      }
    }
    if (r.maxTokens === undefined && room !== Infinity) r.maxTokens = Math.min(this.pipeline.requestDefaults.maxTokens, room);
  }

  #thinkingTokens(r: CompletionsRequest | ChatRequest): number {
    const t = r.extension.thinking;
    return t === undefined ? 0 : (t.maxThinkingTokens ?? this.pipeline.requestDefaults.maxThinkingTokens);
  }

  #fits(ctx: number, promptTokens: number, completion: number, what: 'prompt' | 'messages'): void {
    if (completion > ctx) {
      throw new HttpError(400, `max_tokens must be at most ${ctx}, this model's maximum context length, but the request asks for ${completion} completion tokens`, 'max_tokens');
    }
    if (promptTokens + completion > ctx) {
      throw new HttpError(
        400,
        `This model's maximum context length is ${ctx} tokens. However, you requested ${promptTokens + completion} tokens (${promptTokens} in the ${what}, ${completion} in the completion). Please reduce the length of the ${what} or completion.`,
        'max_tokens',
      );
    }
  }

  async #count(generator: Generator, text: string): Promise<number> {
    try {
      return v.integer('countTokens() result', await generator.countTokens(text), 0);
    } catch (err) {
      throw new HttpError(500, `Counting the prompt's tokens failed: ${messageOf(err)}`);
    }
  }

  async #tokenize(text: string, res: ServerResponse): Promise<void> {
    const generator = this.pipeline.expert(this.pipeline.defaultExpert).generator;
    let count: number;
    let tokens: number[] | undefined;
    try {
      if (generator.encode) {
        tokens = await generator.encode(text);
        count = tokens.length;
      } else count = await generator.countTokens(text);
    } catch (err) {
      throw new HttpError(500, `Tokenizing failed: ${messageOf(err)}`);
    }
    sendJSON(res, 200, tokens === undefined ? { count } : { count, tokens });
  }

  /** The user the request's API key maps to (undefined for the plain key, or when there are no keys). */
  #authorize(req: IncomingMessage): string | undefined {
    if (this.#keys.length === 0) return undefined;
    const challenge = { 'www-authenticate': 'Bearer' };
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
    if (m === null) throw new HttpError(401, "Missing API key: send it as 'Authorization: Bearer <key>'", null, null, challenge);
    const digest = sha256(m[1]!);
    let found: { user: string | undefined } | undefined;
    // Every key is compared, so the time taken does not tell which one matched.
    for (const k of this.#keys) if (timingSafeEqual(digest, k.digest) && found === undefined) found = k;
    if (found === undefined) throw new HttpError(401, 'Incorrect API key provided', null, 'invalid_api_key', challenge);
    return found.user;
  }
}
