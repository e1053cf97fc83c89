/**
 * What sessions are made of, as stored and reported: rounds, the synthesis, the session and
 * the metrics, each figure with its definition.
 * @module
 */
import type { FinishReason } from '../llm/index';
import type { AnswerVote } from './answers';
import type { AdaptiveRule, ConcreteThinkingMode, ReasoningType, ThinkingMode } from './modes';

/**
 * Why a session stopped, checked after every round in this order:
 * - `'agreement'`: the last two rounds' answers agree ({@link answersAgree});
 * - `'max-rounds'`: the session ran its `maxRounds` rounds;
 * - `'budget'`: the session's `tokenBudget` has fewer than `answerMaxTokens + 1` tokens left;
 * - `'abort'`: the signal aborted (the session stays active: it can be resumed);
 * - `'caller'`: {@link MultiRoundThinking.completeSession} was called.
 *
 * @example
 * ```ts
 * if (session.stopReason === 'agreement') console.log('two rounds in a row agreed');
 * ```
 */
export type ThinkingStopReason = 'agreement' | 'max-rounds' | 'budget' | 'abort' | 'caller';

/**
 * One round of a session, as stored.
 *
 * @example
 * ```ts
 * const r = await thinking.executeThinkingRound(id);
 * console.log(r.round, r.answer, r.thinkingTokens, r.answerTokens, r.durationMs);
 * ```
 */
export interface ThinkingRoundRecord {
  /** 1-based number of the round in its session. */
  round: number;
  /** The mode asked for (`null`: none). */
  thinkingMode: ThinkingMode | null;
  /** The mode whose instruction was sent: the one asked for, or ADAPTIVE's choice (`null`: none). */
  modeUsed: ConcreteThinkingMode | null;
  /** The rule that chose `modeUsed`, present when ADAPTIVE was asked for. */
  adaptiveRule?: AdaptiveRule;
  /** The reasoning type asked for (`null`: none). */
  reasoningType: ReasoningType | null;
  /**
   * The exact text of the round's first generate call: the template applied to the message,
   * then `thinkStart`. Every later call of the round continues it (thinking so far, `thinkEnd`,
   * `finalAnswerPrefix`). It holds the previous round's answer, never its thinking.
   */
  prompt: string;
  /** The thinking, continuations included. */
  thinking: string;
  /** The answer as generated (after `finalAnswerPrefix`). */
  answer: string;
  /** Thinking tokens, exact: the generator's counts plus the counted continuations. */
  thinkingTokens: number;
  /** Answer tokens: the generator's count for the answer call. */
  answerTokens: number;
  /** How the answer call ended (`'length'`: cut at `answerMaxTokens`). */
  finishReason: FinishReason;
  /** The thinking was closed at its cap, not by the model. */
  thinkingForcedEnd: boolean;
  /** The thinking reached the round's minimum. */
  minThinkingReached: boolean;
  /** Continuation strings appended. */
  continuationsUsed: number;
  /** The round's thinking cap: `maxThinkingTokens`, or less when the session budget lowered it. */
  thinkingCap: number;
  /**
   * Mean natural-log probability of the answer call's tokens (every token the generator
   * reported one for), present when the generator reported log-probabilities.
   */
  answerLogprob?: number;
  /** Start of the round, milliseconds since the epoch. */
  startedAt: number;
  /** Wall-clock milliseconds of the round. */
  durationMs: number;
}

/**
 * The optional insights call of a session: one generate call, shown in full.
 *
 * @example
 * ```ts
 * const { insights, followUpQuestions, prompt } = session.synthesis!.insights!;
 * ```
 */
export interface ThinkingInsights {
  /** The exact text sent (the template applied to {@link insightsMessage}). */
  prompt: string;
  /** The reply as generated. */
  text: string;
  /** The `- ` items under the reply's `Insights:` heading. */
  insights: string[];
  /** The `- ` items under the reply's `Follow-up questions:` heading. */
  followUpQuestions: string[];
  /** Tokens the call generated. */
  tokens: number;
  /** How the call ended. */
  finishReason: FinishReason;
  /** Wall-clock milliseconds of the call. */
  durationMs: number;
}

/**
 * What a session settles on, computed from its rounds' answers.
 *
 * @example
 * ```ts
 * const { finalAnswer, confidence, answerLogprob } = session.synthesis!;
 * ```
 */
export interface ThinkingSynthesis {
  /**
   * The majority answer: answers are grouped by {@link answersAgree} (empty answers take no
   * part); the largest group wins, a tie going to the group whose latest round is latest; the
   * text is that group's latest answer, trimmed. `''` when no round gave a non-empty answer.
   */
  finalAnswer: string;
  /** The round whose answer is `finalAnswer` (the group's latest), or `null`. */
  finalRound: number | null;
  /** Share of all the session's rounds whose answer is the final answer, in [0, 1]; 0 with no answer. */
  confidence: number;
  /**
   * {@link ThinkingRoundRecord.answerLogprob} of `finalRound`: the mean log-probability of the
   * final answer's tokens, reported apart from `confidence`; absent when not measured.
   */
  answerLogprob?: number;
  /** Every answer group, largest first (ties: latest first). */
  votes: AnswerVote[];
  /** The insights call, when it was asked for and the budget had a token left. */
  insights?: ThinkingInsights;
}

/**
 * A session as stored.
 *
 * @example
 * ```ts
 * const s = await thinking.getSession(id);
 * console.log(s?.status, s?.rounds.length, s?.tokensUsed);
 * ```
 */
export interface ThinkingSession {
  /** The session id. */
  id: string;
  /** The problem, as given. */
  problem: string;
  /** `'active'` until it completes (agreement, max rounds, budget, or the caller). */
  status: 'active' | 'completed';
  /** Most rounds. */
  maxRounds: number;
  /** Session-wide token budget, or `null` for none. */
  tokenBudget: number | null;
  /** Default mode of its rounds, or `null`. */
  thinkingMode: ThinkingMode | null;
  /** Default reasoning type of its rounds, or `null`. */
  reasoningType: ReasoningType | null;
  /** The rounds, in order. */
  rounds: ThinkingRoundRecord[];
  /** Tokens spent: every round's steps, aborted rounds' steps, and the insights call. */
  tokensUsed: number;
  /** Milliseconds spent in rounds (aborted ones included) and the insights call: the session's thinking time. */
  durationMs: number;
  /** Creation time, milliseconds since the epoch. */
  createdAt: number;
  /** Completion time, milliseconds since the epoch; present when completed. */
  completedAt?: number;
  /** Why it stopped: present when completed, and in the result of an aborted run. */
  stopReason?: ThinkingStopReason;
  /** The synthesis: present when completed, and in every result of `runSession` / `resume`. */
  synthesis?: ThinkingSynthesis;
}

/**
 * Figures of the sessions in a store, from {@link MultiRoundThinking.getMetrics}.
 *
 * @example
 * ```ts
 * const m = await thinking.getMetrics();
 * console.log(m.sessionsCompleted, m.meanRoundsPerSession, m.meanConfidence, m.modesUsed);
 * ```
 */
export interface ThinkingMetrics {
  /** Sessions with status `'completed'`. */
  sessionsCompleted: number;
  /** Sessions still active (never completed, or stopped by an abort). */
  sessionsActive: number;
  /** Rounds of the completed sessions divided by their number; 0 when none. */
  meanRoundsPerSession: number;
  /** Mean {@link ThinkingSynthesis.confidence} of the completed sessions; 0 when none. */
  meanConfidence: number;
  /** Mean {@link ThinkingSynthesis.answerLogprob} of the completed sessions that have one; `null` when none has. */
  meanAnswerLogprob: number | null;
  /**
   * Rounds of every stored session (active ones too) by the mode whose instruction was sent
   * ({@link ThinkingRoundRecord.modeUsed}); `'none'` counts rounds sent without one.
   */
  modesUsed: Record<string, number>;
  /** Completed sessions by {@link ThinkingStopReason}. */
  stopReasons: Record<string, number>;
  /**
   * Mean {@link ThinkingSession.durationMs} of the completed sessions — time spent in generator
   * calls, not the time from start to completion, which a restart would stretch; 0 when none.
   */
  meanSessionMs: number;
}
