/**
 * The `capibara` field of a request body: what a client asks of the pipeline beyond OpenAI's
 * fields (thinking, memory, the expert, the trace). Keys are snake_case, as OpenAI's are.
 * @module
 */
import type { MultiRoundRequest, ThinkingBoundsRequest } from '../pipeline/index';
import { ReasoningType, ThinkingMode } from '../thinking/index';
import * as v from '../validate';
import { field } from './errors';

/** The `capibara` field, checked (camelCase, as the pipeline takes it). */
export interface Extension {
  thinking: ThinkingBoundsRequest | undefined;
  multiRound: MultiRoundRequest | undefined;
  sessionId: string | undefined;
  memory: boolean | undefined;
  expert: string | undefined;
  priority: number | undefined;
  /** Answer with the trace of every run. */
  trace: boolean;
}

const KEYS = ['thinking', 'multi_round', 'session_id', 'memory', 'expert', 'priority', 'trace'];
const THINKING_KEYS = ['min_thinking_tokens', 'max_thinking_tokens'];
const MULTI_KEYS = ['max_rounds', 'thinking_mode', 'reasoning_type', 'min_thinking_tokens', 'max_thinking_tokens', 'answer_max_tokens'];

/** Checks the field (absent or null: nothing asked), naming the bad key as `capibara.thinking.max_thinking_tokens`. */
export function parseExtension(value: unknown): Extension {
  const out: Extension = { thinking: undefined, multiRound: undefined, sessionId: undefined, memory: undefined, expert: undefined, priority: undefined, trace: false };
  if (value === undefined || value === null) return out;
  return field('capibara', () => {
    const o = object('capibara', value, KEYS);
    if (o['thinking'] !== undefined && o['thinking'] !== null) {
      const t = object('capibara.thinking', o['thinking'], THINKING_KEYS);
      const max = t['max_thinking_tokens'] === undefined ? undefined : v.integer('capibara.thinking.max_thinking_tokens', t['max_thinking_tokens'], 1);
      const min = t['min_thinking_tokens'] === undefined ? undefined : v.integer('capibara.thinking.min_thinking_tokens', t['min_thinking_tokens'], 0, max);
      out.thinking = { ...(max === undefined ? {} : { maxThinkingTokens: max }), ...(min === undefined ? {} : { minThinkingTokens: min }) };
    }
    if (o['multi_round'] !== undefined && o['multi_round'] !== null) {
      if (out.thinking !== undefined) throw new TypeError('Expected at most one of capibara.thinking and capibara.multi_round but received both');
      const m = object('capibara.multi_round', o['multi_round'], MULTI_KEYS);
      const r: MultiRoundRequest = {};
      if (m['max_rounds'] !== undefined) r.maxRounds = v.integer('capibara.multi_round.max_rounds', m['max_rounds'], 1, 100);
      if (m['thinking_mode'] !== undefined) r.thinkingMode = v.oneOf('capibara.multi_round.thinking_mode', m['thinking_mode'], Object.values(ThinkingMode));
      if (m['reasoning_type'] !== undefined) r.reasoningType = v.oneOf('capibara.multi_round.reasoning_type', m['reasoning_type'], Object.values(ReasoningType));
      if (m['min_thinking_tokens'] !== undefined) r.minThinkingTokens = v.integer('capibara.multi_round.min_thinking_tokens', m['min_thinking_tokens'], 0);
      if (m['max_thinking_tokens'] !== undefined) r.maxThinkingTokens = v.integer('capibara.multi_round.max_thinking_tokens', m['max_thinking_tokens'], 1);
      if (m['answer_max_tokens'] !== undefined) r.answerMaxTokens = v.integer('capibara.multi_round.answer_max_tokens', m['answer_max_tokens'], 1);
      out.multiRound = r;
    }
    if (o['session_id'] !== undefined) out.sessionId = v.nonEmptyString('capibara.session_id', o['session_id']);
    if (o['memory'] !== undefined) out.memory = v.boolean('capibara.memory', o['memory']);
    if (o['expert'] !== undefined) out.expert = v.nonEmptyString('capibara.expert', o['expert']);
    if (o['priority'] !== undefined) out.priority = v.integer('capibara.priority', o['priority'], 0, 10);
    if (o['trace'] !== undefined) out.trace = v.boolean('capibara.trace', o['trace']);
    return out;
  });
}

function object(name: string, value: unknown, keys: readonly string[]): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw v.typeError(name, 'an object', value);
  for (const k of Object.keys(value)) {
    if (!keys.includes(k)) throw new TypeError(`Unknown field '${k}' in ${name} (expected one of: ${keys.join(', ')})`);
  }
  return value as Record<string, unknown>;
}
