/**
 * One Think Twice round: its budget, its mode (ADAPTIVE's rules), its prompt, and the s1-bounded
 * generation through `forceThinkingBudget`, with the answer's log-probabilities captured.
 * @module
 */
import { forceThinkingBudget } from '../budget/index';
import type { GenerateOptions, GenerateResult, Generator, GeneratorPrompt } from '../llm/index';
import * as v from '../validate';
import { answerKey, answersAgree } from './answers';
import { chooseAdaptiveMode, type ReasoningType, ThinkingMode } from './modes';
import type { Settings } from './options';
import { thinkTwiceMessage } from './prompts';
import type { ThinkingSpend } from './store';
import type { ThinkingRoundRecord, ThinkingSession, ThinkingStopReason } from './records';

/** Tokens the session may still spend (Infinity without a budget). */
export function tokensLeft(session: ThinkingSession): number {
  return session.tokenBudget === null ? Infinity : Math.max(0, session.tokenBudget - session.tokensUsed);
}

/** A round needs its full answer cap and at least one thinking token. */
export function roomForRound(session: ThinkingSession, s: Settings): boolean {
  return tokensLeft(session) >= s.answerMax + 1;
}

/** The stopping rule that holds after the session's last round, checked in the documented order. */
export function stopRuleOf(session: ThinkingSession, s: Settings): Exclude<ThinkingStopReason, 'abort' | 'caller'> | undefined {
  const r = session.rounds;
  const n = r.length;
  if (n >= 2 && answersAgree(r[n - 2]!.answer, r[n - 1]!.answer)) return 'agreement';
  if (n >= session.maxRounds) return 'max-rounds';
  if (!roomForRound(session, s)) return 'budget';
  return undefined;
}

/** What a round is asked for. */
export interface RoundRequest {
  thinkingMode: ThinkingMode | undefined;
  reasoningType: ReasoningType | undefined;
  signal: AbortSignal | undefined;
}

/**
 * Runs the next round of `session` (whose preconditions the caller checked). `spent` collects
 * the tokens charged and the time taken as they happen, so a round that fails midway still
 * reports what it cost.
 */
export async function runRound(session: ThinkingSession, s: Settings, request: RoundRequest, spent: ThinkingSpend): Promise<ThinkingRoundRecord> {
  const roundNo = session.rounds.length + 1;
  const previous = session.rounds.at(-1);
  const thinkingCap = Math.min(s.maxThinking, tokensLeft(session) - s.answerMax);
  const thinkingMode = request.thinkingMode ?? session.thinkingMode;
  const reasoningType = request.reasoningType ?? session.reasoningType;
  let modeUsed = thinkingMode === ThinkingMode.ADAPTIVE ? null : thinkingMode;
  let adaptiveRule: ThinkingRoundRecord['adaptiveRule'];
  if (thinkingMode === ThinkingMode.ADAPTIVE) {
    const choice = chooseAdaptiveMode({
      answerKeys: session.rounds.map((r) => answerKey(r.answer)),
      previousCut: previous !== undefined && (previous.thinkingForcedEnd || previous.finishReason === 'length'),
      budgetLimited: thinkingCap < s.maxThinking,
    });
    modeUsed = choice.mode;
    adaptiveRule = choice.rule;
  }
  const instructions = [modeUsed === null ? '' : s.modeText[modeUsed], reasoningType === null ? '' : s.reasoningText[reasoningType]];
  const message = thinkTwiceMessage(session.problem, previous?.answer, instructions);
  const base = v.string('the result of options.template', s.template(message));

  // The answer call is forceThinkingBudget's last generate call: its result holds the answer's log-probabilities.
  let last: GenerateResult | undefined;
  const generator: Generator = {
    generate: async (prompt: GeneratorPrompt, options: GenerateOptions) => {
      last = await s.generator.generate(prompt, s.logprobs ? { ...options, logprobs: true } : options);
      return last;
    },
    countTokens: (text: string) => s.generator.countTokens(text),
  };
  const startedAt = Date.now();
  const t0 = performance.now();
  try {
    const r = await forceThinkingBudget(generator, base, {
      minThinkingTokens: Math.min(s.minThinking, thinkingCap),
      maxThinkingTokens: thinkingCap,
      thinkStart: s.thinkStart,
      thinkEnd: s.thinkEnd,
      continuations: s.continuations,
      maxContinuations: s.maxContinuations,
      finalAnswerPrefix: s.finalAnswerPrefix,
      answerMaxTokens: s.answerMax,
      ...(s.temperature === undefined ? {} : { temperature: s.temperature }),
      ...(s.seed === undefined ? {} : { seed: s.seed }),
      ...(request.signal === undefined ? {} : { signal: request.signal }),
      charge: async (tokens, step) => {
        spent.tokens += tokens;
        await s.charge?.(tokens, { sessionId: session.id, round: roundNo, kind: step.kind });
      },
    });
    const record: ThinkingRoundRecord = {
      round: roundNo,
      thinkingMode,
      modeUsed,
      reasoningType,
      prompt: base + s.thinkStart,
      thinking: r.thinking,
      answer: r.answer,
      thinkingTokens: r.thinkingTokens,
      answerTokens: r.answerTokens,
      finishReason: r.answerFinishReason,
      thinkingForcedEnd: r.forcedEnd,
      minThinkingReached: r.minReached,
      continuationsUsed: r.continuationsUsed,
      thinkingCap,
      startedAt,
      durationMs: 0,
    };
    if (adaptiveRule !== undefined) record.adaptiveRule = adaptiveRule;
    const lp = last?.logprobs;
    if (Array.isArray(lp) && lp.length > 0) record.answerLogprob = lp.reduce((a, x) => a + x, 0) / lp.length;
    record.durationMs = spent.durationMs = performance.now() - t0;
    return record;
  } catch (err) {
    spent.durationMs = performance.now() - t0;
    throw err;
  }
}
