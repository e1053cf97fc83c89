/**
 * The HTTP plumbing of the server: error answers, the JSON content-type check and a bounded body read.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { messageOf, sendJSON } from './completions-handler';
import { HttpError } from './errors';

/** Answers an error: JSON when nothing was sent yet, an error event on an open stream, nothing to a client that left. */
export function fail(res: ServerResponse, err: unknown): void {
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
export function checkContentType(req: IncomingMessage): void {
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (type === 'application/json') return;
  throw new HttpError(415, `Expected Content-Type application/json but received ${type === '' ? 'none' : type}`, null, 'unsupported_media_type');
}

/** Reads the body as UTF-8, refusing more than `limit` bytes (by Content-Length up front, else as it arrives). */
export function readBody(req: IncomingMessage, limit: number, signal: AbortSignal): Promise<string> {
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
