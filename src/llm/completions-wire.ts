/**
 * The wire format of OpenAI-compatible `/v1/completions`: JSON bodies, server-sent events and
 * Retry-After, read strictly so that a malformed answer is named, never guessed at.
 * @module
 */
import * as v from '../validate';

/** Why an attempt failed, for the retry loop. */
export type Attempt<T> = { ok: true; value: T } | { ok: false; error: Error; retryable: boolean; retryAfterMs?: number };

/** What a stream or a JSON body gave: the output before stop handling and the server's own stop facts. */
export interface RawOutput {
  text: string;
  finishReason: unknown;
  /** The matched stop the server reported (vLLM `stop_reason`, SGLang `matched_stop`, llama.cpp `stopping_word`). */
  serverStop: unknown;
  usage: number | undefined;
  /** `choices[0].logprobs.token_logprobs`; undefined when the server sent no `logprobs`. */
  logprobs: number[] | undefined;
}

/** An error in what the server sent; never retried. */
export class MalformedError extends Error {}

export function malformed(url: string, what: string): MalformedError {
  return new MalformedError(`Malformed response from POST ${url}: ${what}`);
}

export function parseJSON(url: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw malformed(url, `body is not JSON: ${v.describe(text)}`);
  }
}

export interface Choice {
  text?: unknown;
  finish_reason?: unknown;
  stop_reason?: unknown;
  matched_stop?: unknown;
  stopping_word?: unknown;
  logprobs?: unknown;
}

/** `choices[0]` of a body or event; in an event an empty `choices` (the usage event) gives undefined. */
export function firstChoice(url: string, json: unknown, event: boolean): Choice | undefined {
  const where = event ? 'event' : 'body';
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw malformed(url, `${where} is ${v.describe(json)}, expected an object`);
  const choices = (json as { choices?: unknown }).choices;
  if (event && (choices === undefined || (Array.isArray(choices) && choices.length === 0))) return undefined;
  if (!Array.isArray(choices) || choices.length === 0) throw malformed(url, `${where} has no non-empty 'choices' array`);
  const c: unknown = choices[0];
  if (c === null || typeof c !== 'object') throw malformed(url, `${where} choices[0] is ${v.describe(c)}, expected an object`);
  return c as Choice;
}

export function readUsage(url: string, json: unknown): number | undefined {
  const usage = (json as { usage?: unknown }).usage;
  if (usage === undefined || usage === null) return undefined;
  const n = (usage as { completion_tokens?: unknown }).completion_tokens;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
    throw malformed(url, `usage.completion_tokens is ${v.describe(n)}, expected an integer >= 0`);
  }
  return n;
}

export function serverStopOf(c: Choice): unknown {
  for (const s of [c.stop_reason, c.matched_stop, c.stopping_word]) if (typeof s === 'string' && s !== '') return s;
  return undefined;
}

export function readChoice(url: string, json: unknown): RawOutput {
  const c = firstChoice(url, json, false)!;
  if (typeof c.text !== 'string') throw malformed(url, `body choices[0].text is ${v.describe(c.text)}, expected a string`);
  return { text: c.text, finishReason: c.finish_reason, serverStop: serverStopOf(c), usage: readUsage(url, json), logprobs: readLogprobs(url, c, 'body') };
}

/**
 * The sampled tokens' log-probabilities of a choice, in OpenAI's legacy completions format:
 * `logprobs: { token_logprobs: number[], tokens, top_logprobs, text_offset }` (only
 * `token_logprobs` is read). Undefined when the choice has no `logprobs` (null or absent: a
 * server that does not report them).
 */
export function readLogprobs(url: string, c: Choice, where: 'body' | 'event'): number[] | undefined {
  const lp = c.logprobs;
  if (lp === undefined || lp === null) return undefined;
  if (typeof lp !== 'object' || Array.isArray(lp)) throw malformed(url, `${where} choices[0].logprobs is ${v.describe(lp)}, expected an object or null`);
  const values = (lp as { token_logprobs?: unknown }).token_logprobs;
  if (!Array.isArray(values)) throw malformed(url, `${where} choices[0].logprobs.token_logprobs is ${v.describe(values)}, expected an array of numbers`);
  values.forEach((x: unknown, i) => {
    // A log-probability is <= 0; a little above 0 is float rounding of a certain token.
    if (typeof x !== 'number' || !Number.isFinite(x) || x > 1e-6) {
      throw malformed(url, `${where} choices[0].logprobs.token_logprobs[${i}] is ${v.describe(x)}, expected a finite number <= 0`);
    }
  });
  return values as number[];
}

/** Reads a server-sent-event body, calling `onEvent` per `data:` JSON event until `[DONE]`. */
export async function readEvents(
  url: string,
  res: Response,
  signal: AbortSignal,
  onEvent: (event: unknown) => { finishReason: unknown; serverStop: unknown } | undefined,
): Promise<Attempt<{ finishReason: unknown; serverStop: unknown }>> {
  if (!res.body) throw malformed(url, 'stream has no body');
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let end: { finishReason: unknown; serverStop: unknown } | undefined;
  const onAbort = () => void reader.cancel().catch(() => {});
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (signal.aborted) throw signal.reason;
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      if (done && buffer !== '') buffer += '\n';
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, '');
        buffer = buffer.slice(nl + 1);
        if (line === '' || line.startsWith(':') || !line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') {
          void reader.cancel().catch(() => {});
          if (!end) throw malformed(url, 'stream ended with [DONE] before any choice had a finish_reason');
          return { ok: true, value: end };
        }
        let event: unknown;
        try {
          event = JSON.parse(data);
        } catch {
          throw malformed(url, `stream event is not JSON: ${v.describe(data)}`);
        }
        if (event !== null && typeof event === 'object' && 'error' in event) {
          throw malformed(url, `stream event reports an error: ${JSON.stringify((event as { error: unknown }).error).slice(0, 200)}`);
        }
        end = onEvent(event) ?? end;
      }
      if (done) throw new TypeError('terminated', { cause: new Error('stream ended before data: [DONE]') });
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** Retry-After as milliseconds: delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null, now = Date.now()): number | undefined {
  if (header === null) return undefined;
  const h = header.trim();
  if (/^\d+$/.test(h)) return Number(h) * 1000;
  const at = Date.parse(h);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

