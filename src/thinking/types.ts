/**
 * The options of {@link MultiRoundThinking} and of its calls.
 * @module
 */
import type { Generator } from '../llm/index';
import type { ConcreteThinkingMode, ReasoningType, ThinkingMode } from './modes';
import type { ThinkingStore } from './store';

/**
 * The per-round thinking bounds, held by `forceThinkingBudget` (s1 budget forcing) in every
 * round. A session's {@link ThinkingSessionOptions.tokenBudget} may lower the maximum of a round.
 *
 * @example
 * ```ts
 * const budget: RoundThinkingBudget = { minThinkingTokens: 256, maxThinkingTokens: 2048, answerMaxTokens: 128 };
 * ```
 */
export interface RoundThinkingBudget {
  /** Fewest thinking tokens per round, an integer >= 0; default 0 (no forcing). Above the round's cap it is lowered to the cap. */
  minThinkingTokens?: number;
  /** Most thinking tokens per round, an integer >= 1; default 1024. */
  maxThinkingTokens?: number;
  /** Most answer tokens per round, an integer >= 1; default 256. */
  answerMaxTokens?: number;
  /** Strings appended in place of a suppressed end of thinking; default `['Wait']`. */
  continuations?: readonly string[];
  /** Most continuations per round, an integer >= 0; default 8. */
  maxContinuations?: number;
}

/**
 * What a charge is for: passed to {@link MultiRoundThinkingOptions.charge} with each amount.
 *
 * @example
 * ```ts
 * const info: ThinkingChargeInfo = { sessionId: 's-1', round: 2, kind: 'think' };
 * ```
 */
export interface ThinkingChargeInfo {
  /** The session the tokens were spent for. */
  sessionId: string;
  /** The 1-based round, or `null` for the insights call. */
  round: number | null;
  /** The step: a thinking call, an appended continuation, the answer call, or the insights call. */
  kind: 'think' | 'continue' | 'answer' | 'insights';
}

/**
 * Options of {@link MultiRoundThinking}.
 *
 * @example
 * ```ts
 * const opts: MultiRoundThinkingOptions = {
 *   generator: model,
 *   maxRounds: 4,
 *   thinkingBudget: { maxThinkingTokens: 2048, answerMaxTokens: 64 },
 *   store: new SqliteThinkingStore({ path: './thinking.db' }),
 *   template: (m) => `<|im_start|>user\n${m}<|im_end|>\n<|im_start|>assistant\n`,
 *   temperature: 0.6,
 * };
 * ```
 */
export interface MultiRoundThinkingOptions {
  /** The model; any {@link Generator}. Required. */
  generator: Generator;
  /** Default most rounds per session, an integer in [1, 100]; default 5. A session may set its own. */
  maxRounds?: number;
  /** Per-round thinking bounds; see {@link RoundThinkingBudget} for the defaults. */
  thinkingBudget?: RoundThinkingBudget;
  /** Default session-wide token budget (see {@link ThinkingSessionOptions.tokenBudget}); default none. */
  tokenBudget?: number;
  /** Where sessions live; default a new {@link MemoryThinkingStore}. A store given here is not closed by {@link MultiRoundThinking.close}. */
  store?: ThinkingStore;
  /** Opens the thinking, appended to the prompt; default `'<think>'`; `''` when the template already opens it. */
  thinkStart?: string;
  /** Closes the thinking (the thinking calls' stop sequence); non-empty; default `'</think>'`. */
  thinkEnd?: string;
  /** Written after the thinking to start the answer; default `'Final Answer:'`. */
  finalAnswerPrefix?: string;
  /**
   * Turns a round's user message ({@link thinkTwiceMessage}) into the text the model
   * continues — your model's chat template up to the assistant turn. Default: the message and
   * a newline. Must return a string.
   */
  template?: (message: string) => string;
  /** Sampling temperature >= 0 of every call; default the generator's. */
  temperature?: number;
  /** Integer seed >= 0 of every call; default unseeded. */
  seed?: number;
  /**
   * Ask the generator for token log-probabilities ({@link GenerateOptions.logprobs}) so
   * {@link ThinkingRoundRecord.answerLogprob} can be measured; default `true`. Set `false` for
   * a server that rejects the field.
   */
  logprobs?: boolean;
  /** Replacements for {@link MODE_INSTRUCTIONS}, by mode; `''` appends nothing for that mode. */
  modeInstructions?: Partial<Record<ConcreteThinkingMode, string>>;
  /** Replacements for {@link REASONING_INSTRUCTIONS}, by reasoning type; `''` appends nothing. */
  reasoningInstructions?: Partial<Record<ReasoningType, string>>;
  /** Most tokens of the insights call, an integer >= 1; default 256. */
  insightsMaxTokens?: number;
  /**
   * Charges tokens as they are spent — each step of a round (as `forceThinkingBudget`'s
   * `charge`) and the insights call — awaited before the next step; e.g. commit them to a
   * {@link BudgetForcing} allocation. A throw stops the round, which rejects with that error;
   * the step's tokens still count in the session.
   */
  charge?: (tokens: number, info: ThinkingChargeInfo) => void | Promise<void>;
}

/**
 * Settings of one session, kept in the store with it (so {@link MultiRoundThinking.resume}
 * continues with them after a restart).
 *
 * @example
 * ```ts
 * const id = await thinking.startThinkingSession('What is 17 x 23?', { maxRounds: 3, tokenBudget: 8000, thinkingMode: ThinkingMode.ADAPTIVE });
 * ```
 */
export interface ThinkingSessionOptions {
  /** Most rounds, an integer in [1, 100]; default the instance's `maxRounds`. */
  maxRounds?: number;
  /**
   * Tokens the whole session may spend, an integer >= 1: thinking, continuations and answers
   * of every round (aborted ones included) and the insights call. A round starts only when at
   * least `answerMaxTokens + 1` are left, and its thinking cap is then
   * `min(maxThinkingTokens, left - answerMaxTokens)`, so no round can overspend. Default the
   * instance's `tokenBudget`, else none.
   */
  tokenBudget?: number;
  /** Mode of rounds that name none; default none (no mode instruction). */
  thinkingMode?: ThinkingMode;
  /** Reasoning type of rounds that name none; default none. */
  reasoningType?: ReasoningType;
}

/**
 * Options of {@link MultiRoundThinking.executeThinkingRound}.
 *
 * @example
 * ```ts
 * await thinking.executeThinkingRound(id, { thinkingMode: ThinkingMode.ANALYTICAL, reasoningType: ReasoningType.DEDUCTIVE, signal });
 * ```
 */
export interface ThinkingRoundOptions {
  /** This round's mode; default the session's. */
  thinkingMode?: ThinkingMode;
  /** This round's reasoning type; default the session's. */
  reasoningType?: ReasoningType;
  /** Aborts the round (inside a generate call too); it then rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * Options of {@link MultiRoundThinking.runSession} and {@link MultiRoundThinking.resume}.
 *
 * @example
 * ```ts
 * const s = await thinking.runSession('What is 17 x 23?', { maxRounds: 3, insights: true, signal: AbortSignal.timeout(60_000) });
 * ```
 */
export interface RunSessionOptions extends ThinkingSessionOptions {
  /** Stops the session between or inside rounds; the result's `stopReason` is then `'abort'`. */
  signal?: AbortSignal;
  /** Make the insights call after the last round ({@link ThinkingSynthesis.insights}); default false. */
  insights?: boolean;
}
