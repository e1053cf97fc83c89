/**
 * Parsing and checking of `POST /v1/completions` and `POST /tokenize` bodies, and the error
 * type every answer other than 2xx is built from.
 * @module
 */
import type { GeneratorPrompt } from '../llm/index';
import * as v from '../validate';
import { HttpError, field, knownFields } from './errors';
import { type Extension, parseExtension } from './extension';

export { HttpError } from './errors';

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
  /** The `user` field, when non-empty. */
  user: string | undefined;
  /** The `capibara` extension field. */
  extension: Extension;
}

const COMPLETIONS_FIELDS = [
  'model', 'prompt', 'max_tokens', 'temperature', 'top_p', 'seed', 'stop', 'stream', 'stream_options', 'logprobs',
  // OpenAI fields accepted only at their neutral value, so clients that always send them work.
  'n', 'best_of', 'echo', 'suffix', 'presence_penalty', 'frequency_penalty', 'logit_bias', 'user',
  // This server's own: thinking, memory, tracing (see extension.ts).
  'capibara',
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
  /** Most tokens one request may ask for: prompts × max_tokens (plus thinking tokens). */
  maxTokens: number;
  /** The thinking tokens a request asking for s1 thinking without `max_thinking_tokens` gets. */
  defaultThinkingTokens: number;
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
  const user = opt('user') === undefined ? undefined : field('user', () => v.string('user', body['user'])) || undefined;
  const extension = parseExtension(opt('capibara'));

  const prompts = field('prompt', () => parsePrompt(body['prompt']));
  const maxTokens = opt('max_tokens') === undefined ? DEFAULT_MAX_TOKENS : field('max_tokens', () => v.integer('max_tokens', body['max_tokens'], 0));
  if (prompts.length > limits.maxPrompts) {
    throw new HttpError(400, `${v.rangeError('prompt', `at most ${limits.maxPrompts} prompts (this server's maxPromptsPerRequest)`, body['prompt']).message}`, 'prompt');
  }
  checkTokenLimits(prompts.length, maxTokens, extension, limits);
  const temperature = opt('temperature') === undefined ? undefined : field('temperature', () => parseTemperature(body['temperature']));
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
  const includeUsage = parseStreamOptions(opt('stream_options'), stream);
  if (extension.multiRound !== undefined || extension.thinking !== undefined) {
    if (prompts.some((p) => typeof p !== 'string')) throw new HttpError(400, 'Thinking (capibara.thinking or capibara.multi_round) needs text prompts, not token ids', 'capibara');
    if (stop.length > 0) throw new HttpError(400, 'stop is not supported with thinking (capibara.thinking or capibara.multi_round)', 'stop');
    if (lp !== undefined) throw new HttpError(400, 'logprobs are not reported with thinking (capibara.thinking or capibara.multi_round)', 'logprobs');
  }
  return { prompts, maxTokens, stop, temperature, topP, seed, stream, includeUsage, logprobs: lp !== undefined, user, extension };
}

/**
 * What one request may ask for: `count` generations of `max_tokens` each, plus the thinking
 * tokens of each when it thinks within s1 bounds: more than `maxTokensPerRequest` → 400.
 */
export function checkTokenLimits(count: number, maxTokens: number, extension: Extension, limits: RequestLimits): void {
  const thinking = extension.thinking === undefined ? 0 : (extension.thinking.maxThinkingTokens ?? limits.defaultThinkingTokens);
  const each = maxTokens + thinking;
  if (count * each <= limits.maxTokens) return;
  const one = thinking > 0 ? `max_tokens ${maxTokens} + max_thinking_tokens ${thinking}` : `max_tokens ${maxTokens}`;
  const asked = count === 1 ? one : `${count} prompts × ${thinking > 0 ? `(${one})` : one} = ${count * each}`;
  throw new HttpError(400, `The request asks for up to ${asked} tokens; this server allows ${limits.maxTokens} per request (maxTokensPerRequest)`, 'max_tokens');
}

/** OpenAI's range of `temperature`: [0, 2]. */
export function parseTemperature(value: unknown): number {
  const t = v.finite('temperature', value, { min: 0 });
  if (t > 2) throw v.rangeError('temperature', 'finite number in [0, 2]', t);
  return t;
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

/** A field this server accepts only at a value that asks for nothing it lacks. */
export function neutral(param: string, value: unknown, allowed: unknown[], expected: string, why: string): void {
  if (value === undefined || allowed.includes(value)) return;
  throw new HttpError(400, `${v.rangeError(param, expected, value).message} (${why})`, param);
}

export function openUnitInterval(name: string, value: unknown): number {
  const x = v.finite(name, value, { positive: true });
  if (x > 1) throw v.rangeError(name, 'finite number in (0, 1]', x);
  return x;
}

export function parseStop(value: unknown): string[] {
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

/** `stream_options` (only with `stream: true`): whether a last chunk carries the usage. */
export function parseStreamOptions(so: unknown, stream: boolean): boolean {
  if (so === undefined) return false;
  if (!stream) throw new HttpError(400, 'stream_options is only allowed when stream is true', 'stream_options');
  const o = field('stream_options', () => {
    if (typeof so !== 'object' || Array.isArray(so)) throw v.typeError('stream_options', 'an object', so);
    return v.options<{ include_usage?: unknown }>('stream_options', so, ['include_usage']);
  });
  if (o.include_usage === undefined || o.include_usage === null) return false;
  return field('stream_options', () => v.boolean('stream_options.include_usage', o.include_usage));
}
