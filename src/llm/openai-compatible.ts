/**
 * A {@link Generator} over an OpenAI-compatible raw-continuation endpoint
 * (`POST {baseURL}/v1/completions`), as served by vLLM, SGLang, llama.cpp's server and
 * Ollama's OpenAI layer. No chat template is applied: the prompt is continued as given.
 * @module
 */
import type { FinishReason, GenerateOptions, GenerateResult, Generator, GeneratorPrompt } from './generator';
import { sleep } from '../toolkit/sleep';
import * as v from '../validate';
import {
  type Attempt, firstChoice, malformed, MalformedError, parseJSON, parseRetryAfter, type RawOutput, readChoice, readEvents, readLogprobs, readUsage,
  serverStopOf,
} from './completions-wire';
import { checkGenerateOptions, checkPrompt } from './generate-options';
import { firstStop, StopStream } from './stop-stream';

/**
 * A local tokenizer for {@link OpenAICompatibleGenerator}: counts tokens without a request,
 * and is the fallback for the token count of a response that carries no `usage`.
 *
 * @example
 * ```ts
 * const tokenizer: CompletionsTokenizer = {
 *   countTokens: (text) => myTokenizer.encode(text).length,
 *   encode: (text) => myTokenizer.encode(text),
 *   decode: (ids) => myTokenizer.decode(ids),
 * };
 * ```
 */
export interface CompletionsTokenizer {
  /** Number of tokens `text` encodes to on its own (no special tokens). */
  countTokens(text: string): number | Promise<number>;
  /** Token ids of `text` on its own (no special tokens); becomes the generator's `encode`. */
  encode?(text: string): number[] | Promise<number[]>;
  /** Text of `ids`; becomes the generator's `decode`. */
  decode?(ids: readonly number[]): string | Promise<string>;
}

/**
 * Options of {@link OpenAICompatibleGenerator}.
 *
 * @example
 * ```ts
 * const opts: OpenAICompatibleGeneratorOptions = {
 *   baseURL: 'http://127.0.0.1:8000',
 *   model: 'Qwen/Qwen3-8B',
 *   apiKey: process.env.VLLM_API_KEY,
 *   timeoutMs: 30_000,
 *   maxRetries: 3,
 * };
 * ```
 */
export interface OpenAICompatibleGeneratorOptions {
  /**
   * The server's root, an `http:` or `https:` URL such as `http://127.0.0.1:8000`. A trailing
   * `/` and a trailing `/v1` (the OpenAI SDK's convention) are removed, so requests go to
   * `{root}/v1/completions` and `{root}/tokenize` either way.
   */
  baseURL: string;
  /** The model name sent as `model` in every request. */
  model: string;
  /** Sent as `Authorization: Bearer <apiKey>`. Default: no authorization header. */
  apiKey?: string;
  /** Extra headers for every request (string values). They override the defaults, `Authorization` included. */
  headers?: Record<string, string>;
  /**
   * Time limit of one attempt in milliseconds, an integer >= 1: from sending the request to
   * the end of the response, streamed output included. Default `60_000`.
   */
  timeoutMs?: number;
  /**
   * Further attempts after a retryable failure (HTTP 429 or 5xx, a connection error, a
   * timeout), an integer >= 0. Default `2`.
   */
  maxRetries?: number;
  /** A local tokenizer; see {@link CompletionsTokenizer}. Default: none (counting uses `/tokenize`). */
  tokenizer?: CompletionsTokenizer;
}

/**
 * An HTTP error answer from the server (after any retries): carries the status and the body.
 *
 * @example
 * ```ts
 * try {
 *   await generator.generate('Hi', { maxTokens: 8 });
 * } catch (err) {
 *   if (err instanceof CompletionsHTTPError && err.status === 401) console.error('bad API key:', err.body);
 * }
 * ```
 */
export class CompletionsHTTPError extends Error {
  /**
   * The HTTP status code.
   *
   * @example
   * ```ts
   * if (err instanceof CompletionsHTTPError) console.log(err.status); // 400
   * ```
   */
  readonly status: number;
  /**
   * The response body as text (empty when it could not be read).
   *
   * @example
   * ```ts
   * if (err instanceof CompletionsHTTPError) console.log(JSON.parse(err.body).error?.message);
   * ```
   */
  readonly body: string;
  /**
   * The URL that answered.
   *
   * @example
   * ```ts
   * if (err instanceof CompletionsHTTPError) console.log(err.url); // http://127.0.0.1:8000/v1/completions
   * ```
   */
  readonly url: string;

  /**
   * @param url The URL that answered.
   * @param status The HTTP status code.
   * @param statusText The HTTP reason phrase.
   * @param body The response body as text.
   *
   * @example
   * ```ts
   * const err = new CompletionsHTTPError('http://h/v1/completions', 503, 'Service Unavailable', 'busy');
   * ```
   */
  constructor(url: string, status: number, statusText: string, body: string) {
    const shown = body.length > 200 ? `${body.slice(0, 200)}…` : body;
    super(`POST ${url} failed with HTTP ${status}${statusText ? ` ${statusText}` : ''}${shown ? `: ${shown}` : ''}`);
    this.name = 'CompletionsHTTPError';
    this.status = status;
    this.body = body;
    this.url = url;
  }
}

const OPTION_KEYS = ['baseURL', 'model', 'apiKey', 'headers', 'timeoutMs', 'maxRetries', 'tokenizer'] as const;
/** Backoff before retry `n` (0-based) when the server gives no Retry-After: 500 ms · 2ⁿ. */
const BACKOFF_MS = 500;


class AbortedError extends Error {}

/**
 * {@link Generator} over `POST {baseURL}/v1/completions` of an OpenAI-compatible server.
 *
 * **Requests.** `generate` sends `{ model, prompt, max_tokens, stop, temperature, top_p,
 * seed }` (unset options left out; `prompt` is the text, or the token-id array when given
 * ids), plus `logprobs: 1` when {@link GenerateOptions.logprobs} is asked for. With `onToken` it streams (`stream: true, stream_options: { include_usage: true }`,
 * server-sent `data:` events ending in `data: [DONE]`); without, it makes one JSON request.
 * `maxTokens: 0` and an already-aborted signal resolve at once with no request.
 *
 * **Result.** `text` is `choices[0].text`, cut before the first stop sequence to complete when the
 * server left one in (some servers do, or ignore `stop`). `tokens` is the server's
 * `usage.completion_tokens`; a server that sends no usage falls back to the `tokenizer`
 * option counting the text received (plus the matched stop sequence when the server removed
 * it), and without a tokenizer the call rejects. `finishReason`:
 * - `'stop'` with `stopSequence` when the text held a stop sequence, or when the server
 *   reports which stop string matched (`stop_reason`, `matched_stop` or `stopping_word` equal
 *   to one of `options.stop`);
 * - `'length'` when the server's `finish_reason` is `'length'`;
 * - `'eos'` for every other end — `finish_reason: 'stop'` with no identified stop string is
 *   read as the end-of-sequence token (OpenAI's format does not tell the two apart; a server
 *   that strips a stop string without naming it is reported as `'eos'`), and so are other
 *   reasons such as `'content_filter'`.
 *
 * `logprobs` (when asked for) is `choices[0].logprobs.token_logprobs` as the server sent it —
 * on a stream, the events' arrays concatenated; left out when the server sent `logprobs: null`
 * or none. Only the sampled tokens' log-probabilities are read, not `top_logprobs`.
 *
 * **Retries.** HTTP 429 and 5xx, connection errors and timeouts are retried up to
 * `maxRetries` times, waiting `Retry-After` (seconds or an HTTP date) when sent, else
 * 500 ms · 2ⁿ; never after any output text arrived on a stream. Other HTTP errors reject at
 * once with {@link CompletionsHTTPError}; a malformed answer (not JSON, no `choices`, a bad
 * event) rejects with an `Error` naming what was wrong, not retried.
 *
 * **Abort and timeout.** Each attempt runs under `AbortSignal.any([options.signal,
 * AbortSignal.timeout(timeoutMs)])`. Aborting cancels the request and resolves with
 * `finishReason: 'abort'` and the text so far (the text passed to `onToken`). Its `tokens`
 * is the latest `usage.completion_tokens` seen on the stream, else the number of events that
 * carried text (vLLM, SGLang, llama.cpp and Ollama send one token per event), at most
 * `maxTokens`; a server may have generated more before it saw the cancel. Aborting a JSON
 * request resolves with no text and `tokens: 0`.
 *
 * @example
 * ```ts
 * import { OpenAICompatibleGenerator, forceThinkingBudget } from '@capibara/core';
 * const model = new OpenAICompatibleGenerator({ baseURL: 'http://127.0.0.1:8000', model: 'Qwen/Qwen3-8B' });
 * const r = await model.generate('The capital of France is', { maxTokens: 8, stop: ['.'], temperature: 0 });
 * console.log(r.text, r.tokens, r.finishReason);
 * await forceThinkingBudget(model, 'How many r in strawberry?', { maxThinkingTokens: 512, answerMaxTokens: 64 });
 * ```
 */
export class OpenAICompatibleGenerator implements Generator {
  /**
   * The server root requests go to (`baseURL` without a trailing `/` or `/v1`).
   *
   * @example
   * ```ts
   * new OpenAICompatibleGenerator({ baseURL: 'http://h:8000/v1/', model: 'm' }).baseURL; // 'http://h:8000'
   * ```
   */
  readonly baseURL: string;
  /**
   * The model name sent in every request.
   *
   * @example
   * ```ts
   * console.log(generator.model); // 'Qwen/Qwen3-8B'
   * ```
   */
  readonly model: string;
  /**
   * The tokenizer option's `encode`, present only when it was given.
   *
   * @example
   * ```ts
   * const ids = await generator.encode?.('Hello');
   * ```
   */
  readonly encode?: (text: string) => number[] | Promise<number[]>;
  /**
   * The tokenizer option's `decode`, present only when it was given.
   *
   * @example
   * ```ts
   * const text = await generator.decode?.([9906]);
   * ```
   */
  readonly decode?: (ids: readonly number[]) => string | Promise<string>;

  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #maxRetries: number;
  readonly #tokenizer: CompletionsTokenizer | undefined;

  /**
   * @param options Server, model, authentication, limits and an optional local tokenizer.
   * @throws TypeError or RangeError naming the bad option.
   *
   * @example
   * ```ts
   * const model = new OpenAICompatibleGenerator({ baseURL: 'http://127.0.0.1:8080', model: 'local', maxRetries: 0 });
   * ```
   */
  constructor(options: OpenAICompatibleGeneratorOptions) {
    if (options === undefined) throw v.typeError('options', 'an options object', options);
    const o = v.options<OpenAICompatibleGeneratorOptions>('options', options, OPTION_KEYS);
    const base = v.nonEmptyString('options.baseURL', o.baseURL);
    let url: URL;
    try {
      url = new URL(base);
    } catch {
      throw v.rangeError('options.baseURL', 'an http(s) URL', base);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw v.rangeError('options.baseURL', 'an http(s) URL', base);
    this.baseURL = `${url.origin}${url.pathname}`.replace(/\/+$/, '').replace(/\/v1$/, '');
    this.model = v.nonEmptyString('options.model', o.model);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (o.apiKey !== undefined) headers['authorization'] = `Bearer ${v.nonEmptyString('options.apiKey', o.apiKey)}`;
    if (o.headers !== undefined) {
      const h: unknown = o.headers;
      if (h === null || typeof h !== 'object' || Array.isArray(h)) throw v.typeError('options.headers', 'an object of string header values', h);
      for (const [k, val] of Object.entries(h)) headers[k.toLowerCase()] = v.string(`options.headers['${k}']`, val);
    }
    this.#headers = headers;
    this.#timeoutMs = o.timeoutMs === undefined ? 60_000 : v.integer('options.timeoutMs', o.timeoutMs, 1);
    this.#maxRetries = o.maxRetries === undefined ? 2 : v.integer('options.maxRetries', o.maxRetries, 0);
    if (o.tokenizer !== undefined) {
      const t: unknown = o.tokenizer;
      if (t === null || typeof t !== 'object' || typeof (t as CompletionsTokenizer).countTokens !== 'function') {
        throw v.typeError('options.tokenizer', 'an object with a countTokens function', t);
      }
      const tok = t as CompletionsTokenizer;
      v.optionalFunction('options.tokenizer.encode', tok.encode);
      v.optionalFunction('options.tokenizer.decode', tok.decode);
      this.#tokenizer = tok;
      if (tok.encode) this.encode = (text) => tok.encode!(text);
      if (tok.decode) this.decode = (ids) => tok.decode!(ids);
    }
  }

  /**
   * Continues `prompt` on the server; see the class description for the request, the result,
   * retries, abort and timeouts.
   *
   * @param prompt Text (sent as is, no chat template) or token ids of the server's model.
   * @param options Cap, stop sequences, sampling, abort and streaming.
   * @returns The generated text, the server's token count and why it ended.
   *
   * @example
   * ```ts
   * const r = await model.generate('Q: 2 + 2?\nA:', {
   *   maxTokens: 8,
   *   stop: ['\n'],
   *   onToken: (piece) => process.stdout.write(piece),
   * });
   * ```
   */
  async generate(prompt: GeneratorPrompt, options: GenerateOptions): Promise<GenerateResult> {
    checkPrompt(prompt);
    const { maxTokens, stop: stops, temperature, topP, seed, signal, onToken, logprobs } = checkGenerateOptions(options);
    const body: Record<string, unknown> = { model: this.model, prompt: typeof prompt === 'string' ? prompt : [...prompt], max_tokens: maxTokens };
    if (stops.length > 0) body['stop'] = stops;
    if (temperature !== undefined) body['temperature'] = temperature;
    if (topP !== undefined) body['top_p'] = topP;
    if (seed !== undefined) body['seed'] = seed;
    // 1 is OpenAI's smallest request that every server reads as "on" (llama.cpp takes 0 as off).
    if (logprobs) body['logprobs'] = 1;

    if (signal?.aborted) return { text: '', tokens: 0, finishReason: 'abort' };
    if (maxTokens === 0) return { text: '', tokens: 0, finishReason: 'length' };
    const url = `${this.baseURL}/v1/completions`;

    if (onToken === undefined) {
      let json: unknown;
      try {
        json = await this.#withRetries(url, body, signal, async (res) => ({ ok: true, value: parseJSON(url, await res.text()) }));
      } catch (err) {
        if (err instanceof AbortedError) return { text: '', tokens: 0, finishReason: 'abort' };
        throw err;
      }
      const raw = readChoice(url, json);
      return this.#finish(raw, stops, maxTokens, url, logprobs);
    }

    body['stream'] = true;
    body['stream_options'] = { include_usage: true };
    const stream = new StopStream(stops, onToken);
    let usage: number | undefined;
    let events = 0;
    let streamedLogprobs: number[] | undefined;
    try {
      const raw = await this.#withRetries(url, body, signal, (res, attemptSignal) =>
        readEvents(url, res, attemptSignal, (event) => {
          const u = readUsage(url, event);
          if (u !== undefined) usage = u;
          const choice = firstChoice(url, event, true);
          if (choice === undefined) return;
          const piece = choice.text;
          if (typeof piece !== 'string') throw malformed(url, `event choices[0].text is ${v.describe(piece)}, expected a string`);
          // Each event carries the log-probabilities of its own tokens: they concatenate.
          const lp = readLogprobs(url, choice, 'event');
          if (lp !== undefined) (streamedLogprobs ??= []).push(...lp);
          if (piece !== '') {
            events++;
            stream.push(piece);
          }
          if (choice.finish_reason !== undefined && choice.finish_reason !== null) {
            return { finishReason: choice.finish_reason, serverStop: serverStopOf(choice) };
          }
          return undefined;
        }),
        () => stream.raw === '',
      );
      const out: RawOutput = { text: stream.raw, finishReason: raw.finishReason, serverStop: raw.serverStop, usage, logprobs: streamedLogprobs };
      return this.#finish(out, stops, maxTokens, url, logprobs, stream);
    } catch (err) {
      if (!(err instanceof AbortedError)) throw err;
      const text = stream.flushOnAbort();
      const aborted: GenerateResult = { text, tokens: Math.min(usage ?? events, maxTokens), finishReason: 'abort' };
      if (logprobs && streamedLogprobs !== undefined) aborted.logprobs = streamedLogprobs;
      return aborted;
    }
  }

  /**
   * Number of tokens `text` encodes to on its own. With the `tokenizer` option, its
   * `countTokens`. Otherwise one request, `POST {baseURL}/tokenize` with body
   * `{ model, prompt: text, content: text, add_special_tokens: false }` — vLLM reads `model`,
   * `prompt` and `add_special_tokens`; llama.cpp's server reads `content` and adds no special
   * tokens by default — and the answer's `count` (vLLM), else the length of its `tokens`
   * array (llama.cpp). Retries as `generate` does. Servers without `/tokenize` (Ollama,
   * hosted APIs) answer 404: give them a `tokenizer`.
   *
   * @param text Text to count.
   * @returns The token count, an integer >= 0.
   *
   * @example
   * ```ts
   * const n = await model.countTokens('Hello, world'); // e.g. 4
   * ```
   */
  async countTokens(text: string): Promise<number> {
    v.string('text', text);
    if (this.#tokenizer) return v.integer('tokenizer.countTokens() result', await this.#tokenizer.countTokens(text), 0);
    const url = `${this.baseURL}/tokenize`;
    const json = await this.#withRetries(url, { model: this.model, prompt: text, content: text, add_special_tokens: false }, undefined, async (res) => ({
      ok: true,
      value: parseJSON(url, await res.text()),
    }));
    if (json === null || typeof json !== 'object') throw malformed(url, `body is ${v.describe(json)}, expected an object`);
    const { count, tokens } = json as { count?: unknown; tokens?: unknown };
    if (typeof count === 'number' && Number.isInteger(count) && count >= 0) return count;
    if (Array.isArray(tokens)) return tokens.length;
    throw malformed(url, "expected an integer 'count' or a 'tokens' array");
  }

  /** Builds the result from the server's output: stop handling, finish reason, token count. */
  async #finish(raw: RawOutput, stops: string[], maxTokens: number, url: string, logprobs: boolean, stream?: StopStream): Promise<GenerateResult> {
    const hit = firstStop(raw.text, stops);
    let text = raw.text;
    let finishReason: FinishReason;
    let stopSequence: string | undefined;
    let strippedByServer = false;
    if (hit) {
      text = raw.text.slice(0, hit.index);
      finishReason = 'stop';
      stopSequence = hit.stop;
    } else if (raw.finishReason === 'length') {
      finishReason = 'length';
    } else if (typeof raw.serverStop === 'string' && stops.includes(raw.serverStop)) {
      finishReason = 'stop';
      stopSequence = raw.serverStop;
      strippedByServer = true;
    } else {
      finishReason = 'eos';
    }
    let tokens = raw.usage;
    if (tokens === undefined) {
      if (!this.#tokenizer) {
        throw new Error(
          `POST ${url} sent no usage.completion_tokens and no tokenizer option was configured to count the output; ` +
            'pass a tokenizer to OpenAICompatibleGenerator or use a server that reports usage',
        );
      }
      const counted = raw.text + (strippedByServer ? stopSequence! : '');
      tokens = v.integer('tokenizer.countTokens() result', await this.#tokenizer.countTokens(counted), 0);
      tokens = Math.min(tokens, maxTokens);
    } else if (tokens > maxTokens) {
      throw malformed(url, `usage.completion_tokens is ${tokens}, more than max_tokens ${maxTokens}`);
    }
    stream?.end(text.length);
    const result: GenerateResult = { text, tokens, finishReason };
    if (stopSequence !== undefined) result.stopSequence = stopSequence;
    if (logprobs && raw.logprobs !== undefined) result.logprobs = raw.logprobs;
    return result;
  }

  /**
   * Posts `body` to `url`, retrying 429 / 5xx / connection errors / timeouts; `read` turns a
   * 2xx answer into a value. Throws AbortedError when `signal` aborts.
   */
  async #withRetries<T>(
    url: string,
    body: unknown,
    signal: AbortSignal | undefined,
    read: (res: Response, attemptSignal: AbortSignal) => Promise<Attempt<T>>,
    canRetry: () => boolean = () => true,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const timeout = AbortSignal.timeout(this.#timeoutMs);
      const attemptSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
      let outcome: Attempt<T>;
      try {
        const res = await fetch(url, { method: 'POST', headers: this.#headers, body: JSON.stringify(body), signal: attemptSignal });
        if (res.ok) {
          outcome = await read(res, attemptSignal);
        } else {
          const text = await res.text().catch(() => '');
          const retryable = res.status === 429 || res.status >= 500;
          outcome = { ok: false, error: new CompletionsHTTPError(url, res.status, res.statusText, text), retryable };
          const after = retryable ? parseRetryAfter(res.headers.get('retry-after')) : undefined;
          if (after !== undefined) outcome.retryAfterMs = after;
        }
      } catch (err) {
        if (signal?.aborted) throw new AbortedError();
        if (timeout.aborted) {
          outcome = { ok: false, error: new Error(`POST ${url} timed out after ${this.#timeoutMs} ms`, { cause: err }), retryable: true };
        } else if (err instanceof MalformedError || err instanceof TypeError === false) {
          throw err;
        } else {
          // fetch and body reads fail with a TypeError ('fetch failed', 'terminated') whose cause is the socket error.
          const cause = (err as Error).cause;
          const detail = cause instanceof Error ? cause.message : (err as Error).message;
          outcome = { ok: false, error: new Error(`POST ${url} failed: ${detail}`, { cause: err }), retryable: true };
        }
      }
      if (outcome.ok) return outcome.value;
      if (!outcome.retryable || attempt >= this.#maxRetries) throw outcome.error;
      if (!canRetry()) {
        throw new Error(`${outcome.error.message} (after output was streamed, so not retried)`, { cause: outcome.error });
      }
      await sleep(outcome.retryAfterMs ?? BACKOFF_MS * 2 ** attempt, signal, () => new AbortedError());
    }
  }
}
