/**
 * Parsing and checking of `POST /v1/chat/completions` bodies (OpenAI's chat completions,
 * tool-free).
 * @module
 */
import type { ChatMessage } from '../pipeline/index';
import * as v from '../validate';
import { checkTokenLimits, neutral, openUnitInterval, parseStop, parseStreamOptions, parseTemperature, type RequestLimits } from './completions-request';
import { field, HttpError, knownFields } from './errors';
import { type Extension, parseExtension } from './extension';

/** A checked chat request; sampling fields undefined when unset. */
export interface ChatRequest {
  messages: ChatMessage[];
  /** `max_completion_tokens` or `max_tokens`; undefined: the pipeline's default. */
  maxTokens: number | undefined;
  stop: string[];
  temperature: number | undefined;
  topP: number | undefined;
  seed: number | undefined;
  stream: boolean;
  includeUsage: boolean;
  logprobs: boolean;
  user: string | undefined;
  extension: Extension;
}

const CHAT_FIELDS = [
  'model', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'seed', 'stop', 'stream', 'stream_options', 'logprobs',
  'top_logprobs', 'user',
  // Accepted only at their neutral value, so clients that always send them work.
  'n', 'presence_penalty', 'frequency_penalty', 'logit_bias', 'response_format', 'tools', 'tool_choice', 'parallel_tool_calls', 'store', 'metadata',
  // This server's own.
  'capibara',
] as const;
const MESSAGE_FIELDS = ['role', 'content', 'name'];
const TOOL_FREE = 'this server is tool-free';

export function parseChatRequest(body: Record<string, unknown>, limits: RequestLimits, defaultMaxTokens: number): ChatRequest {
  knownFields(body, CHAT_FIELDS);
  const opt = (k: string) => (body[k] === null ? undefined : body[k]);
  neutral('n', opt('n'), [1], '1', 'one choice per request is supported');
  neutral('presence_penalty', opt('presence_penalty'), [0], '0', 'penalties are not supported');
  neutral('frequency_penalty', opt('frequency_penalty'), [0], '0', 'penalties are not supported');
  neutral('top_logprobs', opt('top_logprobs'), [0], '0', "only the sampled tokens' log-probabilities are reported, no alternatives");
  neutral('parallel_tool_calls', opt('parallel_tool_calls'), [false, true], 'a boolean', TOOL_FREE);
  neutral('store', opt('store'), [false], 'false', 'completions are not stored');
  const tools = opt('tools');
  if (tools !== undefined && !(Array.isArray(tools) && tools.length === 0)) throw new HttpError(400, `${v.rangeError('tools', 'null or []', tools).message} (${TOOL_FREE})`, 'tools');
  neutral('tool_choice', opt('tool_choice'), ['none'], "'none'", TOOL_FREE);
  const bias = opt('logit_bias');
  if (bias !== undefined && (typeof bias !== 'object' || Array.isArray(bias) || Object.keys(bias as object).length > 0)) {
    throw new HttpError(400, `${v.rangeError('logit_bias', 'null or {}', bias).message} (logit bias is not supported)`, 'logit_bias');
  }
  const format = opt('response_format');
  if (format !== undefined && (format === null || typeof format !== 'object' || (format as { type?: unknown }).type !== 'text')) {
    throw new HttpError(400, `${v.rangeError('response_format', "{ type: 'text' }", format).message} (structured output is not supported)`, 'response_format');
  }
  if (opt('metadata') !== undefined) field('metadata', () => (typeof body['metadata'] === 'object' ? body['metadata'] : v.string('metadata', body['metadata'])));
  const user = opt('user') === undefined ? undefined : field('user', () => v.string('user', body['user'])) || undefined;
  const extension = parseExtension(opt('capibara'));

  const messages = field('messages', () => parseMessages(body['messages']));
  const mct = opt('max_completion_tokens');
  const mt = opt('max_tokens');
  if (mct !== undefined && mt !== undefined) throw new HttpError(400, 'Send one of max_tokens and max_completion_tokens, not both', 'max_tokens');
  const key = mct !== undefined ? 'max_completion_tokens' : 'max_tokens';
  const asked = mct ?? mt;
  const maxTokens = asked === undefined ? undefined : field(key, () => v.integer(key, asked, 0));
  checkTokenLimits(1, maxTokens ?? defaultMaxTokens, extension, limits);
  const temperature = opt('temperature') === undefined ? undefined : field('temperature', () => parseTemperature(body['temperature']));
  const topP = opt('top_p') === undefined ? undefined : field('top_p', () => openUnitInterval('top_p', body['top_p']));
  const seed = opt('seed') === undefined ? undefined : field('seed', () => v.integer('seed', body['seed'], 0));
  const stop = opt('stop') === undefined ? [] : field('stop', () => parseStop(body['stop']));
  const stream = opt('stream') === undefined ? false : field('stream', () => v.boolean('stream', body['stream']));
  const logprobs = opt('logprobs') === undefined ? false : field('logprobs', () => v.boolean('logprobs', body['logprobs']));
  const includeUsage = parseStreamOptions(opt('stream_options'), stream);
  if (extension.multiRound !== undefined || extension.thinking !== undefined) {
    if (stop.length > 0) throw new HttpError(400, 'stop is not supported with thinking (capibara.thinking or capibara.multi_round)', 'stop');
    if (logprobs) throw new HttpError(400, 'logprobs are not reported with thinking (capibara.thinking or capibara.multi_round)', 'logprobs');
    if (maxTokens === 0) throw new HttpError(400, `${v.rangeError(key, 'integer >= 1 with thinking', 0).message}`, key);
  }
  return { messages, maxTokens, stop, temperature, topP, seed, stream, includeUsage, logprobs, user, extension };
}

/**
 * The messages: roles system, developer (as system), user and assistant; content a string or
 * an array of text parts (joined). Tool messages and other parts are refused.
 */
function parseMessages(value: unknown): ChatMessage[] {
  if (!Array.isArray(value)) throw v.typeError('messages', 'a non-empty array of messages', value);
  if (value.length === 0) throw v.rangeError('messages', 'a non-empty array of messages', value);
  return value.map((m: unknown, i): ChatMessage => {
    const at = `messages[${i}]`;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw v.typeError(at, 'a message object { role, content }', m);
    const msg = v.options<Record<string, unknown>>(at, m, MESSAGE_FIELDS);
    const role = v.oneOf(`${at}.role`, msg['role'], ['system', 'developer', 'user', 'assistant']);
    if (msg['name'] !== undefined) v.string(`${at}.name`, msg['name']);
    return { role: role === 'developer' ? 'system' : role, content: content(`${at}.content`, msg['content']) };
  });
}

function content(name: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) throw v.typeError(name, 'a string or an array of text parts', value);
  return value
    .map((part: unknown, i) => {
      const at = `${name}[${i}]`;
      if (part === null || typeof part !== 'object' || Array.isArray(part)) throw v.typeError(at, "a text part { type: 'text', text }", part);
      const p = part as { type?: unknown; text?: unknown };
      v.oneOf(`${at}.type`, p.type, ['text']);
      return v.string(`${at}.text`, p.text);
    })
    .join('');
}
