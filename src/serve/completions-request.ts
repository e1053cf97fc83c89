/**
 * Parsing and checking of `POST /v1/completions` and `POST /tokenize` bodies, and the error
 * type every answer other than 2xx is built from.
 * @module
 */
import type { GeneratorPrompt } from '../llm/index';
import * as v from '../validate';

/** An answer other than 2xx, sent as OpenAI's `{ error: { message, type, param, code } }`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  /** OpenAI's error types: the client's fault, or the server's. */
  get type(): string {
    return this.status >= 500 ? 'server_error' : 'invalid_request_error';
  }

  get body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A checked completions request: one prompt per choice, sampling fields undefined when unset. */
export interface CompletionsRequest {
  prompts: GeneratorPrompt[];
  maxTokens: number;
  stop: string[];
  temperature: number | undefined;
  topP: number | undefined;
  seed: number | undefined;
  stream: boolean;
  includeUsage: boolean;
  /** `logprobs` was 0 or 1: answer the sampled tokens' log-probabilities. */
  logprobs: boolean;
}

const COMPLETIONS_FIELDS = [
  'model', 'prompt', 'max_tokens', 'temperature', 'top_p', 'seed', 'stop', 'stream', 'stream_options', 'logprobs',
  // OpenAI fields accepted only at their neutral value, so clients that always send them work.
  'n', 'best_of', 'echo', 'suffix', 'presence_penalty', 'frequency_penalty', 'logit_bias', 'user',
] as const;
const TOKENIZE_FIELDS = ['model', 'prompt', 'content', 'add_special_tokens'] as const;
const DEFAULT_MAX_TOKENS = 16;

/** Parses the raw body: not JSON or not an object → 400. */
export function parseBody(raw: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw new HttpError(400, `The request body is not valid JSON: ${(err as Error).message}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new HttpError(400, v.typeError('the request body', 'a JSON object', json).message);
  }
  return json as Record<string, unknown>;
}

/** Checks `model` against the served one (absent means the served one, as vLLM does): else 404. */
export function checkModel(body: Record<string, unknown>, served: string): void {
  const model = body['model'];
  if (model === undefined || model === null) return;
  field('model', () => v.nonEmptyString('model', model));
  if (model !== served) throw new HttpError(404, `The model '${String(model)}' does not exist; this server serves '${served}'`, 'model', 'model_not_found');
}

/** What one request may ask for: the server's fairness bounds. */
export interface RequestLimits {
  /** Most prompts in one request. */
  maxPrompts: number;
  /** Most tokens one request may ask for: prompts × max_tokens. */
  maxTokens: number;
}

export function parseCompletionsRequest(body: Record<string, unknown>, limits: RequestLimits): CompletionsRequest {
  knownFields(body, COMPLETIONS_FIELDS);
  const opt = (k: string) => (body[k] === null ? undefined : body[k]);
  neutral('n', opt('n'), [1], '1', 'one choice per prompt is supported');
  neutral('best_of', opt('best_of'), [1], '1', 'one choice per prompt is supported');
  neutral('echo', opt('echo'), [false], 'false', 'echoing the prompt is not supported');
  neutral('suffix', opt('suffix'), [''], 'null', 'suffixes are not supported');
  neutral('presence_penalty', opt('presence_penalty'), [0], '0', 'penalties are not supported');
  neutral('frequency_penalty', opt('frequency_penalty'), [0], '0', 'penalties are not supported');
  const bias = opt('logit_bias');
  if (bias !== undefined && (typeof bias !== 'object' || Array.isArray(bias) || Object.keys(bias as object).length > 0)) {
    throw new HttpError(400, `${v.rangeError('logit_bias', 'null or {}', bias).message} (logit bias is not supported)`, 'logit_bias');
  }
  if (opt('user') !== undefined) field('user', () => v.string('user', body['user']));

  const prompts = field('prompt', () => parsePrompt(body['prompt']));
  const maxTokens = opt('max_tokens') === undefined ? DEFAULT_MAX_TOKENS : field('max_tokens', () => v.integer('max_tokens', body['max_tokens'], 0));
  if (prompts.length > limits.maxPrompts) {
    throw new HttpError(400, `${v.rangeError('prompt', `at most ${limits.maxPrompts} prompts (this server's maxPromptsPerRequest)`, body['prompt']).message}`, 'prompt');
  }
  if (prompts.length * maxTokens > limits.maxTokens) {
    const asked = prompts.length === 1 ? `max_tokens ${maxTokens}` : `${prompts.length} prompts × max_tokens ${maxTokens} = ${prompts.length * maxTokens}`;
    throw new HttpError(400, `The request asks for up to ${asked} tokens; this server allows ${limits.maxTokens} per request (maxTokensPerRequest)`, 'max_tokens');
  }
  const temperature = opt('temperature') === undefined ? undefined : field('temperature', () => v.finite('temperature', body['temperature'], { min: 0 }));
  const topP = opt('top_p') === undefined ? undefined : field('top_p', () => openUnitInterval('top_p', body['top_p']));
  const seed = opt('seed') === undefined ? undefined : field('seed', () => v.integer('seed', body['seed'], 0));
  const stop = opt('stop') === undefined ? [] : field('stop', () => parseStop(body['stop']));
  const stream = opt('stream') === undefined ? false : field('stream', () => v.boolean('stream', body['stream']));
  // OpenAI's logprobs N also asks for the N most likely alternatives; a Generator reports only
  // the sampled token's, so N above 1 would be answered with less than it asks for.
  const lp = opt('logprobs');
  if (lp !== undefined) {
    if (typeof lp !== 'number') throw new HttpError(400, v.typeError('logprobs', 'null, 0 or 1', lp).message, 'logprobs');
    if (lp !== 0 && lp !== 1) {
      throw new HttpError(400, `${v.rangeError('logprobs', 'null, 0 or 1', lp).message} (only the sampled tokens' log-probabilities are reported, no alternatives)`, 'logprobs');
    }
  }
  let includeUsage = false;
  const so = opt('stream_options');
  if (so !== undefined) {
    if (!stream) throw new HttpError(400, 'stream_options is only allowed when stream is true', 'stream_options');
    const o = field('stream_options', () => {
      if (typeof so !== 'object' || Array.isArray(so)) throw v.typeError('stream_options', 'an object', so);
      return v.options<{ include_usage?: unknown }>('stream_options', so, ['include_usage']);
    });
    if (o.include_usage !== undefined && o.include_usage !== null) includeUsage = field('stream_options', () => v.boolean('stream_options.include_usage', o.include_usage));
  }
  return { prompts, maxTokens, stop, temperature, topP, seed, stream, includeUsage, logprobs: lp !== undefined };
}

/** `POST /tokenize` (vLLM's and llama.cpp's shape): the text to count, from `prompt` or `content`. */
export function parseTokenizeRequest(body: Record<string, unknown>): string {
  knownFields(body, TOKENIZE_FIELDS);
  const special = body['add_special_tokens'];
  if (special !== undefined && special !== null && special !== false) {
    throw new HttpError(400, `${v.rangeError('add_special_tokens', 'false', special).message} (tokens are counted without special tokens)`, 'add_special_tokens');
  }
  const key = body['prompt'] === undefined && body['content'] !== undefined ? 'content' : 'prompt';
  return field(key, () => v.string(key, body[key]));
}

/** Runs a check, turning its TypeError/RangeError into a 400 naming `param`. */
function field<T>(param: string, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw new HttpError(400, err.message, param);
    throw err;
  }
}

function knownFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw new HttpError(400, `Unknown field '${key}' in the request body (supported: ${allowed.join(', ')})`, key);
  }
}

/** A field this server accepts only at a value that asks for nothing it lacks. */
function neutral(param: string, value: unknown, allowed: unknown[], expected: string, why: string): void {
  if (value === undefined || allowed.includes(value)) return;
  throw new HttpError(400, `${v.rangeError(param, expected, value).message} (${why})`, param);
}

function openUnitInterval(name: string, value: unknown): number {
  const x = v.finite(name, value, { positive: true });
  if (x > 1) throw v.rangeError(name, 'finite number in (0, 1]', x);
  return x;
}

function parseStop(value: unknown): string[] {
  if (typeof value === 'string') return [v.nonEmptyString('stop', value)];
  if (!Array.isArray(value)) throw v.typeError('stop', 'non-empty string or array of non-empty strings', value);
  return value.map((s: unknown, i) => v.nonEmptyString(`stop[${i}]`, s));
}

const PROMPT = 'non-empty string, non-empty array of token ids, or a non-empty array of those';

/** A text, a token-id array, or a batch of either: one prompt per choice. */
function parsePrompt(value: unknown): GeneratorPrompt[] {
  if (typeof value === 'string') {
    if (value === '') throw v.rangeError('prompt', PROMPT, value);
    return [value];
  }
  if (!Array.isArray(value)) throw v.typeError('prompt', PROMPT, value);
  if (value.length === 0) throw v.rangeError('prompt', PROMPT, value);
  if (typeof value[0] === 'number') return [tokenIds('prompt', value)];
  return value.map((item: unknown, i) => {
    const name = `prompt[${i}]`;
    if (typeof item === 'string' && item !== '') return item;
    if (Array.isArray(item) && item.length > 0) return tokenIds(name, item);
    const err = typeof item === 'string' || Array.isArray(item) ? v.rangeError : v.typeError;
    throw err(name, 'non-empty string or non-empty array of token ids', item);
  });
}

function tokenIds(name: string, ids: unknown[]): number[] {
  ids.forEach((id, i) => v.integer(`${name}[${i}]`, id, 0));
  return ids as number[];
}
