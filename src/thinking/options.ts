/**
 * Checks of {@link MultiRoundThinking}'s arguments, naming each by its path
 * (`options.thinkingBudget.maxThinkingTokens`), and the settings they resolve to.
 * @module
 */
import type { Generator } from '../llm/index';
import * as v from '../validate';
import { type ConcreteThinkingMode, MODE_INSTRUCTIONS, REASONING_INSTRUCTIONS, REASONING_TYPES, ReasoningType, THINKING_MODES, ThinkingMode } from './modes';
import type { ThinkingStore } from './store';
import type { MultiRoundThinkingOptions, RoundThinkingBudget, RunSessionOptions, ThinkingRoundOptions, ThinkingSessionOptions } from './types';

/** Most rounds a session may ask for: each is a full generation, so more is a mistake, not a plan. */
export const MAX_ROUNDS_LIMIT = 100;

const KEYS = [
  'generator', 'maxRounds', 'thinkingBudget', 'tokenBudget', 'store', 'thinkStart', 'thinkEnd', 'finalAnswerPrefix', 'template', 'temperature', 'seed',
  'logprobs', 'modeInstructions', 'reasoningInstructions', 'insightsMaxTokens', 'charge',
];
const BUDGET_KEYS = ['minThinkingTokens', 'maxThinkingTokens', 'answerMaxTokens', 'continuations', 'maxContinuations'];
const SESSION_KEYS = ['maxRounds', 'tokenBudget', 'thinkingMode', 'reasoningType'];
/** Keys of runSession's options: the session's settings and the run's. */
export const RUN_SESSION_KEYS = [...SESSION_KEYS, 'signal', 'insights'];
const ROUND_KEYS = ['thinkingMode', 'reasoningType', 'signal'];
const STORE_METHODS = ['createSession', 'getSession', 'appendRound', 'addSpend', 'completeSession', 'sessionIds', 'stats', 'close'] as const;
const CONCRETE_MODES = THINKING_MODES.filter((m) => m !== ThinkingMode.ADAPTIVE) as ConcreteThinkingMode[];

/** The instance's settings, checked, defaults applied. */
export interface Settings {
  generator: Generator;
  maxRounds: number;
  tokenBudget: number | null;
  minThinking: number;
  maxThinking: number;
  answerMax: number;
  continuations: readonly string[];
  maxContinuations: number;
  thinkStart: string;
  thinkEnd: string;
  finalAnswerPrefix: string;
  template: (message: string) => string;
  temperature: number | undefined;
  seed: number | undefined;
  logprobs: boolean;
  modeText: Record<ConcreteThinkingMode, string>;
  reasoningText: Record<ReasoningType, string>;
  insightsMaxTokens: number;
  charge: MultiRoundThinkingOptions['charge'];
  store: ThinkingStore | undefined;
}

export function settingsOf(options: unknown): Settings {
  if (options === undefined) throw v.typeError('options', 'an options object', options);
  const o = v.options<MultiRoundThinkingOptions>('options', options, KEYS);
  const g = o.generator as Partial<Generator> | undefined | null;
  if (g === null || (typeof g !== 'object' && typeof g !== 'function') || typeof g.generate !== 'function' || typeof g.countTokens !== 'function') {
    throw v.typeError('options.generator', 'a Generator with generate and countTokens functions', g);
  }
  const b = v.options<RoundThinkingBudget>('options.thinkingBudget', o.thinkingBudget, BUDGET_KEYS);
  const maxThinking = b.maxThinkingTokens === undefined ? 1024 : v.integer('options.thinkingBudget.maxThinkingTokens', b.maxThinkingTokens, 1);
  const continuations = b.continuations ?? ['Wait'];
  const cName = 'options.thinkingBudget.continuations';
  if (!Array.isArray(continuations)) throw v.typeError(cName, 'non-empty array of non-empty strings', continuations);
  if (continuations.length === 0) throw v.rangeError(cName, 'non-empty array of non-empty strings', continuations);
  continuations.forEach((c: unknown, i) => v.nonEmptyString(`${cName}[${i}]`, c));
  let store: ThinkingStore | undefined;
  if (o.store !== undefined) {
    const s = o.store as unknown as Record<string, unknown> | null;
    if (s === null || typeof s !== 'object' || STORE_METHODS.some((m) => typeof s[m] !== 'function')) {
      throw v.typeError('options.store', `a ThinkingStore (an object with ${STORE_METHODS.join(', ')} methods)`, s);
    }
    store = o.store;
  }
  return {
    generator: g as Generator,
    maxRounds: o.maxRounds === undefined ? 5 : v.integer('options.maxRounds', o.maxRounds, 1, MAX_ROUNDS_LIMIT),
    tokenBudget: o.tokenBudget === undefined ? null : v.integer('options.tokenBudget', o.tokenBudget, 1),
    minThinking: b.minThinkingTokens === undefined ? 0 : v.integer('options.thinkingBudget.minThinkingTokens', b.minThinkingTokens, 0, maxThinking),
    maxThinking,
    answerMax: b.answerMaxTokens === undefined ? 256 : v.integer('options.thinkingBudget.answerMaxTokens', b.answerMaxTokens, 1),
    continuations: [...(continuations as string[])],
    maxContinuations: b.maxContinuations === undefined ? 8 : v.integer('options.thinkingBudget.maxContinuations', b.maxContinuations, 0),
    thinkStart: o.thinkStart === undefined ? '<think>' : v.string('options.thinkStart', o.thinkStart),
    thinkEnd: o.thinkEnd === undefined ? '</think>' : v.nonEmptyString('options.thinkEnd', o.thinkEnd),
    finalAnswerPrefix: o.finalAnswerPrefix === undefined ? 'Final Answer:' : v.string('options.finalAnswerPrefix', o.finalAnswerPrefix),
    template: v.optionalFunction<(m: string) => string>('options.template', o.template) ?? ((m) => `${m}\n`),
    temperature: o.temperature === undefined ? undefined : v.finite('options.temperature', o.temperature, { min: 0 }),
    seed: o.seed === undefined ? undefined : v.integer('options.seed', o.seed, 0),
    logprobs: o.logprobs === undefined ? true : v.boolean('options.logprobs', o.logprobs),
    modeText: texts('options.modeInstructions', o.modeInstructions, CONCRETE_MODES, MODE_INSTRUCTIONS),
    reasoningText: texts('options.reasoningInstructions', o.reasoningInstructions, REASONING_TYPES, REASONING_INSTRUCTIONS),
    insightsMaxTokens: o.insightsMaxTokens === undefined ? 256 : v.integer('options.insightsMaxTokens', o.insightsMaxTokens, 1),
    charge: v.optionalFunction<MultiRoundThinkingOptions['charge']>('options.charge', o.charge),
    store,
  };
}

/** The default texts with the caller's replacements. */
function texts<K extends string>(name: string, given: unknown, keys: readonly K[], defaults: Readonly<Record<K, string>>): Record<K, string> {
  const o = v.options<Record<K, string>>(name, given, keys);
  const out: Record<K, string> = { ...defaults };
  for (const k of Object.keys(o) as K[]) out[k] = v.string(`${name}.${k}`, o[k]);
  return out;
}

/** A problem: a string with some non-whitespace text. */
export function checkProblem(problem: unknown): string {
  if (typeof problem !== 'string') throw v.typeError('problem', 'non-blank string', problem);
  if (problem.trim() === '') throw v.rangeError('problem', 'non-blank string', problem);
  return problem;
}

export function checkSessionId(id: unknown): string {
  return v.nonEmptyString('sessionId', id);
}

/** A session's own settings; `keys` also admits the run options. */
export function sessionOptionsOf(options: unknown, s: Settings, keys: readonly string[] = SESSION_KEYS) {
  const o = v.options<RunSessionOptions>('options', options, keys);
  return {
    maxRounds: o.maxRounds === undefined ? s.maxRounds : v.integer('options.maxRounds', o.maxRounds, 1, MAX_ROUNDS_LIMIT),
    tokenBudget: o.tokenBudget === undefined ? s.tokenBudget : v.integer('options.tokenBudget', o.tokenBudget, 1),
    thinkingMode: o.thinkingMode === undefined ? null : v.oneOf('options.thinkingMode', o.thinkingMode, THINKING_MODES),
    reasoningType: o.reasoningType === undefined ? null : v.oneOf('options.reasoningType', o.reasoningType, REASONING_TYPES),
  } satisfies Record<keyof ThinkingSessionOptions, unknown>;
}

/** `signal` and `insights` of runSession / resume / completeSession. */
export function runOptionsOf(options: unknown, keys: readonly string[] = ['signal', 'insights']): { signal: AbortSignal | undefined; insights: boolean } {
  const o = v.options<RunSessionOptions>('options', options, keys);
  return { signal: signalOf(o.signal), insights: o.insights === undefined ? false : v.boolean('options.insights', o.insights) };
}


export function roundOptionsOf(options: unknown) {
  const o = v.options<ThinkingRoundOptions>('options', options, ROUND_KEYS);
  return {
    thinkingMode: o.thinkingMode === undefined ? undefined : v.oneOf('options.thinkingMode', o.thinkingMode, THINKING_MODES),
    reasoningType: o.reasoningType === undefined ? undefined : v.oneOf('options.reasoningType', o.reasoningType, REASONING_TYPES),
    signal: signalOf(o.signal),
  };
}

function signalOf(signal: unknown): AbortSignal | undefined {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw v.typeError('options.signal', 'AbortSignal', signal);
  return signal as AbortSignal | undefined;
}
