/**
 * Checking a {@link PipelineRequest} against the pipeline's defaults, and the prompt texts the
 * stages build from it: the query routed and searched, and the memory block put into the prompt.
 * @module
 */
import type { GeneratorPrompt } from '../llm/index';
import { ReasoningType, ThinkingMode } from '../thinking/index';
import * as v from '../validate';
import { type ChatMessage, checkMessages } from './chat-template';
import type { MultiRoundRequest, PipelineRequest, ThinkingBoundsRequest } from './types';

const REQUEST_KEYS = [
  'prompt', 'messages', 'user', 'sessionId', 'maxTokens', 'stop', 'temperature', 'topP', 'seed', 'logprobs',
  'thinking', 'multiRound', 'memory', 'expert', 'routingContext', 'priority',
] as const;

/** Most tokens a request generates when it says nothing. */
export const DEFAULT_MAX_TOKENS = 256;
/** Default most thinking tokens per call or round. */
export const DEFAULT_MAX_THINKING_TOKENS = 1024;
/** Default most answer tokens per round of a multi-round request. */
export const DEFAULT_ROUND_ANSWER_TOKENS = 256;

/** What a run needs of the request, checked. */
export interface CheckedRequest {
  prompt: GeneratorPrompt | undefined;
  messages: ChatMessage[] | undefined;
  user: string | undefined;
  sessionId: string | undefined;
  maxTokens: number;
  stop: string[];
  temperature: number | undefined;
  topP: number | undefined;
  seed: number | undefined;
  logprobs: boolean;
  thinking: Required<ThinkingBoundsRequest> | undefined;
  multiRound: MultiRoundChecked | undefined;
  memory: boolean;
  expert: string | undefined;
  routingContext: PipelineRequest['routingContext'];
  priority: number | undefined;
}

/** A multi-round request with its defaults filled in. */
export interface MultiRoundChecked {
  maxRounds: number;
  thinkingMode: ThinkingMode | undefined;
  reasoningType: ReasoningType | undefined;
  minThinkingTokens: number;
  maxThinkingTokens: number;
  answerMaxTokens: number;
}

/** The defaults a request is checked against. */
export interface RequestDefaults {
  maxTokens: number;
  temperature: number | undefined;
  maxRounds: number;
  maxThinkingTokens: number;
}

/** Checks a request, naming the bad field as `request.<field>`. */
export function checkRequest(request: PipelineRequest, d: RequestDefaults, experts: ReadonlySet<string>): CheckedRequest {
  if (request === undefined) throw v.typeError('request', 'a request object', request);
  const r = v.options<PipelineRequest>('request', request, REQUEST_KEYS);
  if ((r.prompt === undefined) === (r.messages === undefined)) {
    throw new TypeError(`Expected exactly one of request.prompt and request.messages but received ${r.prompt === undefined ? 'neither' : 'both'}`);
  }
  let prompt: GeneratorPrompt | undefined;
  if (r.prompt !== undefined) {
    if (typeof r.prompt === 'string') prompt = r.prompt;
    else if (Array.isArray(r.prompt)) {
      if (r.prompt.length === 0) throw v.rangeError('request.prompt', 'string or non-empty array of token ids', r.prompt);
      r.prompt.forEach((id: unknown, i) => v.integer(`request.prompt[${i}]`, id, 0));
      prompt = r.prompt;
    } else throw v.typeError('request.prompt', 'string or non-empty array of token ids', r.prompt);
  }
  const messages = r.messages === undefined ? undefined : checkMessages('request.messages', r.messages);
  const user = r.user === undefined ? undefined : v.nonEmptyString('request.user', r.user);
  const sessionId = r.sessionId === undefined ? undefined : v.nonEmptyString('request.sessionId', r.sessionId);
  const maxTokens = r.maxTokens === undefined ? d.maxTokens : v.integer('request.maxTokens', r.maxTokens, 0);
  const stop: string[] = [];
  if (r.stop !== undefined) {
    if (!Array.isArray(r.stop)) throw v.typeError('request.stop', 'array of non-empty strings', r.stop);
    r.stop.forEach((s: unknown, i) => stop.push(v.nonEmptyString(`request.stop[${i}]`, s)));
  }
  const temperature = r.temperature === undefined ? d.temperature : checkTemperature('request.temperature', r.temperature);
  let topP: number | undefined;
  if (r.topP !== undefined) {
    topP = v.finite('request.topP', r.topP, { positive: true });
    if (topP > 1) throw v.rangeError('request.topP', 'finite number in (0, 1]', topP);
  }
  const seed = r.seed === undefined ? undefined : v.integer('request.seed', r.seed, 0);
  const logprobs = r.logprobs === undefined ? false : v.boolean('request.logprobs', r.logprobs);
  const thinking = r.thinking === undefined ? undefined : checkThinking(r.thinking, d);
  const multiRound = r.multiRound === undefined ? undefined : checkMultiRound(r.multiRound, d);
  if (thinking !== undefined && multiRound !== undefined) throw new TypeError('Expected at most one of request.thinking and request.multiRound but received both');
  if ((thinking !== undefined || multiRound !== undefined) && maxTokens < 1) {
    throw v.rangeError('request.maxTokens', `integer >= 1 with request.${thinking ? 'thinking' : 'multiRound'}`, maxTokens);
  }
  if ((thinking !== undefined || multiRound !== undefined) && prompt !== undefined && typeof prompt !== 'string') {
    throw new TypeError(`Expected a text prompt or messages for request.${thinking ? 'thinking' : 'multiRound'} but received token ids in request.prompt`);
  }
  const memory = r.memory === undefined ? true : v.boolean('request.memory', r.memory);
  let expert: string | undefined;
  if (r.expert !== undefined) {
    expert = v.nonEmptyString('request.expert', r.expert);
    if (!experts.has(expert)) throw v.rangeError('request.expert', `one of ${[...experts].map((e) => `'${e}'`).join(', ')}`, expert);
  }
  if (r.routingContext !== undefined && (r.routingContext === null || typeof r.routingContext !== 'object')) {
    throw v.typeError('request.routingContext', 'a routing context object', r.routingContext);
  }
  const priority = r.priority === undefined ? undefined : v.integer('request.priority', r.priority, 0, 10);
  return { prompt, messages, user, sessionId, maxTokens, stop, temperature, topP, seed, logprobs, thinking, multiRound, memory, expert, routingContext: r.routingContext, priority };
}

/** OpenAI's temperature range, [0, 2]. */
export function checkTemperature(name: string, value: unknown): number {
  const t = v.finite(name, value, { min: 0 });
  if (t > 2) throw v.rangeError(name, 'finite number in [0, 2]', t);
  return t;
}

function checkThinking(value: unknown, d: RequestDefaults): Required<ThinkingBoundsRequest> {
  if (value === null || typeof value !== 'object') throw v.typeError('request.thinking', 'an options object', value);
  const o = v.options<ThinkingBoundsRequest>('request.thinking', value, ['minThinkingTokens', 'maxThinkingTokens']);
  const max = o.maxThinkingTokens === undefined ? d.maxThinkingTokens : v.integer('request.thinking.maxThinkingTokens', o.maxThinkingTokens, 1);
  const min = o.minThinkingTokens === undefined ? 0 : v.integer('request.thinking.minThinkingTokens', o.minThinkingTokens, 0, max);
  return { minThinkingTokens: min, maxThinkingTokens: max };
}

function checkMultiRound(value: unknown, d: RequestDefaults): MultiRoundChecked {
  if (value === null || typeof value !== 'object') throw v.typeError('request.multiRound', 'an options object', value);
  const o = v.options<MultiRoundRequest>('request.multiRound', value, ['maxRounds', 'thinkingMode', 'reasoningType', 'minThinkingTokens', 'maxThinkingTokens', 'answerMaxTokens']);
  const maxThinkingTokens = o.maxThinkingTokens === undefined ? d.maxThinkingTokens : v.integer('request.multiRound.maxThinkingTokens', o.maxThinkingTokens, 1);
  return {
    maxRounds: o.maxRounds === undefined ? d.maxRounds : v.integer('request.multiRound.maxRounds', o.maxRounds, 1, 100),
    thinkingMode: o.thinkingMode === undefined ? undefined : v.oneOf('request.multiRound.thinkingMode', o.thinkingMode, Object.values(ThinkingMode)),
    reasoningType: o.reasoningType === undefined ? undefined : v.oneOf('request.multiRound.reasoningType', o.reasoningType, Object.values(ReasoningType)),
    minThinkingTokens: o.minThinkingTokens === undefined ? 0 : v.integer('request.multiRound.minThinkingTokens', o.minThinkingTokens, 0),
    maxThinkingTokens,
    answerMaxTokens: o.answerMaxTokens === undefined ? DEFAULT_ROUND_ANSWER_TOKENS : v.integer('request.multiRound.answerMaxTokens', o.answerMaxTokens, 1),
  };
}

/**
 * The text routed and searched: the last user message of a chat, or the prompt's text;
 * `undefined` for a token-id prompt (nothing to read without the expert's tokenizer).
 */
export function queryText(r: CheckedRequest): string | undefined {
  if (r.messages !== undefined) {
    for (let i = r.messages.length - 1; i >= 0; i--) if (r.messages[i]!.role === 'user') return r.messages[i]!.content;
    return r.messages.at(-1)!.content;
  }
  return typeof r.prompt === 'string' ? r.prompt : undefined;
}

/** The heading of the memory block put into prompts. */
export const MEMORY_HEADING = 'Relevant memory:';

/**
 * The memory block: the heading, then each memory on a line of its own after `- `. In a chat
 * it is the system message (appended to the first one, after a blank line, when there is
 * one); a text prompt follows it after a blank line.
 */
export function memoryBlock(contents: readonly string[]): string {
  return `${MEMORY_HEADING}\n${contents.map((c) => `- ${c.replace(/\s*\n\s*/g, ' ')}`).join('\n')}`;
}

/** The messages with the memory block as (or in) the system message. */
export function withMemory(messages: readonly ChatMessage[], block: string | undefined): ChatMessage[] {
  if (block === undefined) return [...messages];
  if (messages[0]?.role === 'system') return [{ role: 'system', content: `${messages[0].content}\n\n${block}` }, ...messages.slice(1)];
  return [{ role: 'system', content: block }, ...messages];
}
