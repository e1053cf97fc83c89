import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the server received. */
export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  /** The body parsed as JSON (undefined when it is not JSON). */
  body: any;
}

/** Scripts one answer; `n` is the 0-based index of the request. */
export type Handler = (req: RecordedRequest, res: ServerResponse, n: number) => void | Promise<void>;

/**
 * A real HTTP server on 127.0.0.1 (port 0) whose answers each test scripts: handlers are
 * used in order, the last one repeating. Records every request.
 */
export class FakeCompletionsServer {
  readonly requests: RecordedRequest[] = [];
  #handlers: Handler[] = [];
  #server: Server;
  #open = new Set<ServerResponse>();

  private constructor() {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = JSON.parse(raw);
        } catch {
          body = undefined;
        }
        const rec: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
        const n = this.requests.length;
        this.requests.push(rec);
        this.#open.add(res);
        res.on('close', () => this.#open.delete(res));
        const h = this.#handlers[Math.min(n, this.#handlers.length - 1)];
        if (!h) {
          res.writeHead(500).end('no handler scripted');
          return;
        }
        void Promise.resolve(h(rec, res, n)).catch(() => res.destroy());
      });
    });
  }

  static async start(): Promise<FakeCompletionsServer> {
    const s = new FakeCompletionsServer();
    await new Promise<void>((resolve) => s.#server.listen(0, '127.0.0.1', resolve));
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Sets the answers, in order (the last repeats); clears the recorded requests. */
  script(...handlers: Handler[]): this {
    this.#handlers = handlers;
    this.requests.length = 0;
    return this;
  }

  async close(): Promise<void> {
    for (const res of this.#open) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Answers with JSON. */
export const json =
  (body: unknown, status = 200, headers: Record<string, string> = {}): Handler =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
  };

/** Answers with raw text. */
export const text =
  (body: string, status = 200, headers: Record<string, string> = {}): Handler =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(body);
  };

/**
 * Streams server-sent events: each entry is an object (sent as `data: <json>`), a raw line
 * (sent as is), or a number (a pause in ms). `end: 'done'` sends `data: [DONE]` and ends;
 * `'close'` ends without [DONE]; `'destroy'` drops the socket; `'hang'` keeps it open.
 */
export const sse =
  (events: (object | string | number)[], end: 'done' | 'close' | 'destroy' | 'hang' = 'done', afterEvent?: () => void): Handler =>
  async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const e of events) {
      if (res.destroyed) return;
      if (typeof e === 'number') await sleep(e);
      else {
        res.write(typeof e === 'string' ? `${e}\n` : `data: ${JSON.stringify(e)}\n\n`);
        afterEvent?.();
      }
    }
    if (end === 'done') res.end('data: [DONE]\n\n');
    else if (end === 'close') res.end();
    else if (end === 'destroy') res.destroy();
  };

/** Never answers. */
export const hang: Handler = () => {};

/** A completions body as vLLM sends it. */
export function completion(textOut: string, finish: string, completionTokens?: number, extra: object = {}): object {
  const body: Record<string, unknown> = { id: 'cmpl-1', object: 'text_completion', model: 'm', choices: [{ index: 0, text: textOut, finish_reason: finish, ...extra }] };
  if (completionTokens !== undefined) body['usage'] = { prompt_tokens: 3, completion_tokens: completionTokens, total_tokens: 3 + completionTokens };
  return body;
}

/** Stream events for `pieces`, the last carrying `finish`, then a usage event when `completionTokens` is given. */
export function chunks(pieces: string[], finish: string, completionTokens?: number, extra: object = {}): object[] {
  const out: object[] = pieces.map((p, i) => ({
    choices: [{ index: 0, text: p, finish_reason: i === pieces.length - 1 ? finish : null, ...(i === pieces.length - 1 ? extra : {}) }],
  }));
  if (completionTokens !== undefined) out.push({ choices: [], usage: { prompt_tokens: 3, completion_tokens: completionTokens, total_tokens: 3 + completionTokens } });
  return out;
}
