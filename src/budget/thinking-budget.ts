import type { FinishReason, GenerateOptions, GenerateResult, Generator } from '../llm/index';
import * as v from '../validate';

/**
 * Why {@link forceThinkingBudget} stopped forcing before the thinking reached its minimum.
 *
 * - `'max-continuations'`: the model ended its thinking again after
 *   {@link ThinkingBudgetOptions.maxContinuations} continuations had been used.
 * - `'loop'`: after a continuation the model ended its thinking again at once (no new text) or
 *   wrote exactly the text it wrote before the previous continuation; more forcing would only
 *   pad the thinking with continuation strings.
 * - `'no-room'`: the next continuation string alone needs more tokens than the budget has left.
 * - `'stalled'`: the generator hit a cap of its own (`finishReason: 'length'` below the cap
 *   asked for) without generating a single token.
 *
 * @example
 * ```ts
 * const r = await forceThinkingBudget(model, prompt, { minThinkingTokens: 800, maxThinkingTokens: 1000, answerMaxTokens: 64 });
 * if (!r.minReached) console.warn(`thinking stopped at ${r.thinkingTokens} tokens: ${r.minUnmetReason}`);
 * ```
 */
export type MinUnmetReason = 'max-continuations' | 'loop' | 'no-room' | 'stalled';

/**
 * Telemetry of one step of {@link forceThinkingBudget}.
 *
 * @example
 * ```ts
 * const round: ThinkingRound = { kind: 'think', tokens: 412, finishReason: 'stop', textLength: 1630, ms: 2210.5 };
 * ```
 */
export interface ThinkingRound {
  /**
   * `'think'`: a generate call inside the thinking; `'continue'`: a continuation string
   * appended in place of the suppressed end of thinking (no model call); `'answer'`: the
   * generate call that wrote the answer.
   */
  kind: 'think' | 'continue' | 'answer';
  /**
   * Tokens this step added to the count: for `'think'` and `'answer'`, the generator's
   * {@link GenerateResult.tokens}; for `'continue'`, `generator.countTokens(continuation)`.
   */
  tokens: number;
  /** How the generate call ended; absent for `'continue'`. */
  finishReason?: FinishReason;
  /** Length in UTF-16 code units of the text this step added (the generated text, or the continuation string). */
  textLength: number;
  /** Wall-clock milliseconds of the step (the generate or countTokens call). */
  ms: number;
}

/**
 * Options of {@link forceThinkingBudget}.
 *
 * @example
 * ```ts
 * const opts: ThinkingBudgetOptions = {
 *   minThinkingTokens: 1000,
 *   maxThinkingTokens: 4000,
 *   continuations: ['Wait'],
 *   answerMaxTokens: 256,
 *   temperature: 0,
 * };
 * ```
 */
export interface ThinkingBudgetOptions {
  /** Fewest thinking tokens, an integer in [0, maxThinkingTokens]; default 0 (no minimum, never forces a continuation). */
  minThinkingTokens?: number;
  /** Most thinking tokens, an integer >= 1; required. Continuation strings count toward it. */
  maxThinkingTokens: number;
  /**
   * Opens the thinking, appended to the prompt; default `'<think>'`. May be `''` when the
   * prompt (its chat template) already opens it.
   */
  thinkStart?: string;
  /** Closes the thinking: the stop sequence of every thinking call, and written before the answer. Non-empty; default `'</think>'`. */
  thinkEnd?: string;
  /**
   * Strings appended, verbatim, in place of a suppressed end of thinking, used in turn
   * (cycling); default `['Wait']` (s1: "Wait" beats "Hmm" and "Alternatively"). Each must be
   * non-empty; include leading whitespace or a newline if the model needs one.
   */
  continuations?: readonly string[];
  /** The most continuations appended, an integer >= 0; default 8 (s1: too many suppressions make the model loop). */
  maxContinuations?: number;
  /** Written after `thinkEnd + '\n'` to start the answer; default `'Final Answer:'`; may be `''`. */
  finalAnswerPrefix?: string;
  /** The answer's token cap, an integer >= 1; required. */
  answerMaxTokens: number;
  /** Sampling temperature >= 0 for every call; default the generator's. */
  temperature?: number;
  /** Integer seed >= 0 for every call; default unseeded. */
  seed?: number;
  /**
   * Aborts the run, between steps and inside a generate call (it is passed to the
   * generator). The promise then rejects with `signal.reason` — a `DOMException` named
   * `'AbortError'` unless the caller gave its own reason — even if the generator resolved
   * with `finishReason: 'abort'`; steps finished before that have been charged.
   */
  signal?: AbortSignal;
  /** Called after each step, in order, and awaited; a throw rejects the run. */
  onRound?: (round: ThinkingRound) => void | Promise<void>;
  /**
   * Charges tokens to a requester's budget: called after each step that added tokens, with
   * that step's {@link ThinkingRound.tokens}, before the next step starts, and awaited. The
   * charges of a completed run sum to `thinkingTokens + answerTokens`; tokens of an aborted
   * generate call are charged before the abort rejects. Throwing (e.g. budget exhausted)
   * stops the run and rejects with that error.
   */
  charge?: (tokens: number, round: ThinkingRound) => void | Promise<void>;
}

/**
 * Result of {@link forceThinkingBudget}.
 *
 * @example
 * ```ts
 * const { answer, thinkingTokens, minReached, forcedEnd } = await forceThinkingBudget(model, prompt, opts);
 * ```
 */
export interface ThinkingBudgetResult {
  /** The thinking as written between `thinkStart` and `thinkEnd`: generated text with the continuation strings in place. */
  thinking: string;
  /** The generated answer (text after `finalAnswerPrefix`). */
  answer: string;
  /**
   * Thinking tokens: the sum of the generator's `tokens` over the thinking calls plus the
   * counted tokens of the continuations — the sum of {@link ThinkingRound.tokens} over the
   * `'think'` and `'continue'` rounds. Suppressed `thinkEnd` tokens the generator charged are
   * included. Never more than `maxThinkingTokens`; at least `minThinkingTokens` exactly when
   * {@link ThinkingBudgetResult.minReached}.
   */
  thinkingTokens: number;
  /** The generator's `tokens` for the answer call. */
  answerTokens: number;
  /** How the answer call ended: `'length'` means the answer was cut at `answerMaxTokens`. */
  answerFinishReason: FinishReason;
  /** Continuation strings appended. */
  continuationsUsed: number;
  /** The maximum was reached and the thinking was closed by this function, not by the model. */
  forcedEnd: boolean;
  /** `thinkingTokens >= minThinkingTokens`. */
  minReached: boolean;
  /** Why forcing stopped short of the minimum; present exactly when `minReached` is false. */
  minUnmetReason?: MinUnmetReason;
  /** Every step in order: thinking calls, continuations, then the answer call. */
  rounds: ThinkingRound[];
}

const KEYS = [
  'minThinkingTokens', 'maxThinkingTokens', 'thinkStart', 'thinkEnd', 'continuations', 'maxContinuations',
  'finalAnswerPrefix', 'answerMaxTokens', 'temperature', 'seed', 'signal', 'onRound', 'charge',
];
const FINISH: readonly FinishReason[] = ['stop', 'length', 'eos', 'abort'];

function settings(generator: unknown, prompt: unknown, options: unknown) {
  const g = generator as Partial<Generator> | null;
  if (g === null || (typeof g !== 'object' && typeof g !== 'function') || typeof g.generate !== 'function' || typeof g.countTokens !== 'function') {
    throw v.typeError('generator', 'a Generator with generate and countTokens functions', generator);
  }
  v.string('prompt', prompt);
  const o = v.options<ThinkingBudgetOptions>('options', options, KEYS);
  const max = v.integer('maxThinkingTokens', o.maxThinkingTokens, 1);
  const continuations = o.continuations ?? ['Wait'];
  if (!Array.isArray(continuations)) throw v.typeError('continuations', 'non-empty array of non-empty strings', continuations);
  if (continuations.length === 0) throw v.rangeError('continuations', 'non-empty array of non-empty strings', continuations);
  continuations.forEach((c: unknown, i) => v.nonEmptyString(`continuations[${i}]`, c));
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw v.typeError('signal', 'AbortSignal', o.signal);
  return {
    generator: g as Generator,
    prompt: prompt as string,
    max,
    min: o.minThinkingTokens === undefined ? 0 : v.integer('minThinkingTokens', o.minThinkingTokens, 0, max),
    thinkStart: o.thinkStart === undefined ? '<think>' : v.string('thinkStart', o.thinkStart),
    thinkEnd: o.thinkEnd === undefined ? '</think>' : v.nonEmptyString('thinkEnd', o.thinkEnd),
    continuations: continuations as readonly string[],
    maxContinuations: o.maxContinuations === undefined ? 8 : v.integer('maxContinuations', o.maxContinuations, 0),
    finalAnswerPrefix: o.finalAnswerPrefix === undefined ? 'Final Answer:' : v.string('finalAnswerPrefix', o.finalAnswerPrefix),
    answerMaxTokens: v.integer('answerMaxTokens', o.answerMaxTokens, 1),
    temperature: o.temperature === undefined ? undefined : v.finite('temperature', o.temperature, { min: 0 }),
    seed: o.seed === undefined ? undefined : v.integer('seed', o.seed, 0),
    signal: o.signal,
    onRound: v.optionalFunction<ThinkingBudgetOptions['onRound']>('onRound', o.onRound),
    charge: v.optionalFunction<ThinkingBudgetOptions['charge']>('charge', o.charge),
  };
}

/** Rejects a result that breaks the {@link Generator} contract: budgets cannot be kept on numbers that are wrong. */
function checkResult(r: unknown, maxTokens: number): GenerateResult {
  if (r === null || typeof r !== 'object') throw v.typeError('the result of generator.generate()', 'a GenerateResult object', r);
  const { text, tokens, finishReason } = r as Partial<GenerateResult>;
  v.string('generator.generate() result.text', text);
  v.integer('generator.generate() result.tokens', tokens, 0, maxTokens);
  v.oneOf('generator.generate() result.finishReason', finishReason, FINISH);
  return r as GenerateResult;
}

/**
 * s1 budget forcing (Muennighoff et al., arXiv 2501.19393) over any {@link Generator}: keeps
 * the model's thinking within `[minThinkingTokens, maxThinkingTokens]` tokens, then has it answer.
 *
 * The thinking is generated after `prompt + thinkStart` with `thinkEnd` as the stop sequence
 * and the remaining budget as the cap. Each call's `tokens` is subtracted from the budget
 * *before* anything is decided (s1's PR #120 fixed a check made before the subtraction), so
 * the count is exact. Then:
 *
 * - the budget is used up → the thinking is closed here (`forcedEnd`), even mid-sentence;
 * - the model ended its thinking (`thinkEnd` or end of sequence) below the minimum → the end
 *   is suppressed: the next continuation string (default `'Wait'`) is appended, its tokens
 *   (`countTokens`) count as thinking, as in s1, and generation goes on with what is left;
 * - the generator stopped at a cap of its own (`'length'` below the remaining budget, e.g. a
 *   server's per-request limit) → another call continues the same thinking, no continuation;
 * - otherwise the thinking is done.
 *
 * Forcing stops short of the minimum only for a reason given in
 * {@link ThinkingBudgetResult.minUnmetReason} (continuations used up, a loop, no room for the
 * continuation, a stalled generator); `minReached` then says false. Finally
 * `thinkEnd + '\n' + finalAnswerPrefix` is appended and the answer generated with
 * `answerMaxTokens` (no stop sequence): an answer always comes, however the thinking ended.
 *
 * Invalid arguments reject with a `TypeError` or `RangeError` before any call is made; a
 * generator result that breaks the contract (e.g. more `tokens` than `maxTokens`) rejects too.
 *
 * @param generator The model.
 * @param prompt Fully templated text the thinking continues (e.g. ending with the assistant turn's start).
 * @param options Budget, delimiters, continuations, sampling, abort and hooks.
 * @returns The thinking, the answer and an exact account of the tokens spent.
 *
 * @example
 * ```ts
 * import { forceThinkingBudget } from '@capibara/core';
 * const r = await forceThinkingBudget(model, '<|im_start|>user\nHow many r in strawberry?<|im_end|>\n<|im_start|>assistant\n', {
 *   minThinkingTokens: 256,
 *   maxThinkingTokens: 1024,
 *   answerMaxTokens: 32,
 *   temperature: 0,
 *   charge: (tokens) => budget.commit(requestId, tokens),
 * });
 * console.log(r.answer, r.thinkingTokens, r.continuationsUsed, r.minReached);
 * ```
 */
export async function forceThinkingBudget(
  generator: Generator,
  prompt: string,
  options: ThinkingBudgetOptions,
): Promise<ThinkingBudgetResult> {
  const s = settings(generator, prompt, options);
  const { signal } = s;
  const rounds: ThinkingRound[] = [];

  const record = async (round: ThinkingRound) => {
    rounds.push(round);
    if (s.charge && round.tokens > 0) await s.charge(round.tokens, round);
    if (s.onRound) await s.onRound(round);
  };

  const generate = async (kind: 'think' | 'answer', text: string, maxTokens: number, stop?: string[]) => {
    signal?.throwIfAborted();
    const opts: GenerateOptions = { maxTokens };
    if (stop) opts.stop = stop;
    if (s.temperature !== undefined) opts.temperature = s.temperature;
    if (s.seed !== undefined) opts.seed = s.seed;
    if (signal) opts.signal = signal;
    const t0 = performance.now();
    let r: GenerateResult;
    try {
      r = checkResult(await s.generator.generate(text, opts), maxTokens);
    } catch (err) {
      // A backend may reject on abort instead of resolving; the caller sees one abort error either way.
      signal?.throwIfAborted();
      throw err;
    }
    await record({ kind, tokens: r.tokens, finishReason: r.finishReason, textLength: r.text.length, ms: performance.now() - t0 });
    if (r.finishReason === 'abort') {
      signal?.throwIfAborted();
      throw new Error(`generator.generate() finished with 'abort' although the signal was not aborted`);
    }
    return r;
  };

  const continuationTokens = new Map<string, number>();
  const head = s.prompt + s.thinkStart;
  let thinking = '';
  let used = 0;
  let continuationsUsed = 0;
  let forcedEnd = false;
  let minUnmetReason: MinUnmetReason | undefined;
  // Text generated since the last continuation, and the same at the previous forcing decision.
  let segment = '';
  let previousSegment: string | undefined;

  for (;;) {
    const r = await generate('think', head + thinking, s.max - used, [s.thinkEnd]);
    used += r.tokens;
    thinking += r.text;
    segment += r.text;
    if (used >= s.max) {
      forcedEnd = r.finishReason === 'length';
      break;
    }
    if (r.finishReason === 'length') {
      if (r.tokens > 0) continue;
      if (used < s.min) minUnmetReason = 'stalled';
      break;
    }
    if (used >= s.min) break;

    // Ended below the minimum: suppress the end unless forcing has stopped helping.
    if (continuationsUsed > 0 && (segment === '' || segment === previousSegment)) {
      minUnmetReason = 'loop';
      break;
    }
    if (continuationsUsed >= s.maxContinuations) {
      minUnmetReason = 'max-continuations';
      break;
    }
    signal?.throwIfAborted();
    const cont = s.continuations[continuationsUsed % s.continuations.length]!;
    const t0 = performance.now();
    let c = continuationTokens.get(cont);
    if (c === undefined) {
      c = v.integer('generator.countTokens() result', await s.generator.countTokens(cont), 0);
      continuationTokens.set(cont, c);
    }
    if (c > s.max - used) {
      minUnmetReason = 'no-room';
      break;
    }
    used += c;
    thinking += cont;
    continuationsUsed++;
    previousSegment = segment;
    segment = '';
    await record({ kind: 'continue', tokens: c, textLength: cont.length, ms: performance.now() - t0 });
    if (used >= s.max) {
      // The continuation filled the budget exactly: nothing is left for the model to write.
      forcedEnd = true;
      break;
    }
  }

  const a = await generate('answer', `${head}${thinking}${s.thinkEnd}\n${s.finalAnswerPrefix}`, s.answerMaxTokens);
  const result: ThinkingBudgetResult = {
    thinking,
    answer: a.text,
    thinkingTokens: used,
    answerTokens: a.tokens,
    answerFinishReason: a.finishReason,
    continuationsUsed,
    forcedEnd,
    minReached: used >= s.min,
    rounds,
  };
  if (minUnmetReason !== undefined) result.minUnmetReason = minUnmetReason;
  return result;
}
