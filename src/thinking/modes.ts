/**
 * The seed's six thinking modes and six reasoning types as what they really are here: short
 * instruction texts appended to a round's prompt. The texts are exported so a user can read
 * them, and replaceable through {@link MultiRoundThinkingOptions}. ADAPTIVE picks one of the
 * other five by the written rules of {@link chooseAdaptiveMode}.
 * @module
 */

/**
 * How a round is asked to think: selects the instruction text in {@link MODE_INSTRUCTIONS}
 * appended to the round's prompt. `ADAPTIVE` is not a text of its own: each round it becomes one
 * of the other five by the rules of {@link chooseAdaptiveMode}.
 *
 * @example
 * ```ts
 * await thinking.executeThinkingRound(sessionId, { thinkingMode: ThinkingMode.CRITICAL });
 * ```
 */
export enum ThinkingMode {
  ANALYTICAL = 'analytical',
  CREATIVE = 'creative',
  CRITICAL = 'critical',
  INTUITIVE = 'intuitive',
  SYSTEMATIC = 'systematic',
  ADAPTIVE = 'adaptive',
}

/**
 * The kind of inference a round is asked to use: selects the instruction text in
 * {@link REASONING_INSTRUCTIONS} appended to the round's prompt after the mode's.
 *
 * @example
 * ```ts
 * await thinking.executeThinkingRound(sessionId, { reasoningType: ReasoningType.DEDUCTIVE });
 * ```
 */
export enum ReasoningType {
  DEDUCTIVE = 'deductive',
  INDUCTIVE = 'inductive',
  ABDUCTIVE = 'abductive',
  ANALOGICAL = 'analogical',
  CAUSAL = 'causal',
  COUNTERFACTUAL = 'counterfactual',
}

/**
 * A mode that has an instruction text: every {@link ThinkingMode} but `ADAPTIVE`.
 *
 * @example
 * ```ts
 * const mode: ConcreteThinkingMode = ThinkingMode.SYSTEMATIC;
 * ```
 */
export type ConcreteThinkingMode = Exclude<ThinkingMode, ThinkingMode.ADAPTIVE>;

/**
 * The instruction appended to a round's prompt for each mode (a paragraph of its own, after
 * the Think Twice re-answer sentence). Replace any of them with
 * {@link MultiRoundThinkingOptions.modeInstructions}.
 *
 * @example
 * ```ts
 * console.log(MODE_INSTRUCTIONS[ThinkingMode.CRITICAL]);
 * ```
 */
export const MODE_INSTRUCTIONS: Readonly<Record<ConcreteThinkingMode, string>> = Object.freeze({
  [ThinkingMode.ANALYTICAL]: 'Think analytically: break the problem into its parts, work through each part carefully, and check every step before you answer.',
  [ThinkingMode.CREATIVE]: 'Think creatively: look for an approach different from the obvious one, consider unusual angles, then check that your answer still fits the problem.',
  [ThinkingMode.CRITICAL]: 'Think critically: question the previous answer and your own assumptions, look for errors or gaps, and correct whatever does not hold.',
  [ThinkingMode.INTUITIVE]: 'Think intuitively: follow the most direct line of reasoning and give your best answer without lengthy elaboration.',
  [ThinkingMode.SYSTEMATIC]: 'Think systematically: go step by step in a fixed order, write each intermediate result once, and keep the reasoning short enough to reach the final answer.',
});

/**
 * The instruction appended to a round's prompt for each reasoning type (a paragraph of its
 * own, after the mode's). Replace any of them with
 * {@link MultiRoundThinkingOptions.reasoningInstructions}.
 *
 * @example
 * ```ts
 * console.log(REASONING_INSTRUCTIONS[ReasoningType.ABDUCTIVE]);
 * ```
 */
export const REASONING_INSTRUCTIONS: Readonly<Record<ReasoningType, string>> = Object.freeze({
  [ReasoningType.DEDUCTIVE]: 'Reason deductively: start from the given facts and general rules, and derive the conclusion that must follow from them.',
  [ReasoningType.INDUCTIVE]: 'Reason inductively: look at specific cases or examples, find the pattern they share, and generalise from it.',
  [ReasoningType.ABDUCTIVE]: 'Reason abductively: consider the possible explanations of what is given, and choose the one that explains it best.',
  [ReasoningType.ANALOGICAL]: 'Reason by analogy: recall a similar problem whose solution you know, and carry that solution over to this one.',
  [ReasoningType.CAUSAL]: 'Reason causally: identify the causes and effects involved, and follow how each one leads to the next.',
  [ReasoningType.COUNTERFACTUAL]: 'Reason counterfactually: ask what would change if a key condition were different, and use that to test your answer.',
});

/** Every mode, in declaration order. @internal */
export const THINKING_MODES: readonly ThinkingMode[] = Object.values(ThinkingMode);
/** Every reasoning type, in declaration order. @internal */
export const REASONING_TYPES: readonly ReasoningType[] = Object.values(ReasoningType);

/**
 * Which rule of {@link chooseAdaptiveMode} picked an ADAPTIVE round's mode.
 *
 * @example
 * ```ts
 * if (round.adaptiveRule === 'last-two-differ') console.log('the answers disagreed: critical round');
 * ```
 */
export type AdaptiveRule = 'budget-limited' | 'first-round' | 'cut-by-budget' | 'three-answers-differ' | 'last-two-differ' | 'default';

/**
 * What {@link chooseAdaptiveMode} looks at: facts of the earlier rounds and of this round's budget.
 *
 * @example
 * ```ts
 * const state: AdaptiveState = { answerKeys: ['n:42', 'n:41'], previousCut: false, budgetLimited: false };
 * ```
 */
export interface AdaptiveState {
  /**
   * The earlier rounds' answers after normalisation ({@link normalizeAnswer}, numbers as
   * parsed), oldest first; `''` for an empty answer.
   */
  answerKeys: readonly string[];
  /**
   * The previous round was cut by its budget: its thinking was closed at its cap
   * (`thinkingForcedEnd`) or its answer reached `answerMaxTokens` (`finishReason: 'length'`).
   */
  previousCut: boolean;
  /** The session's token budget lowers this round's thinking cap below `maxThinkingTokens`. */
  budgetLimited: boolean;
}

/**
 * What {@link chooseAdaptiveMode} decided.
 *
 * @example
 * ```ts
 * const { mode, rule }: AdaptiveChoice = chooseAdaptiveMode({ answerKeys: [], previousCut: false, budgetLimited: false });
 * ```
 */
export interface AdaptiveChoice {
  /** The mode whose instruction the round sends. */
  mode: ConcreteThinkingMode;
  /** The rule that chose it. */
  rule: AdaptiveRule;
}

/**
 * ADAPTIVE's choice of mode for the next round: the first of these rules that holds, in order
 * — no scores, nothing hidden.
 *
 * 1. `'budget-limited'` → INTUITIVE: the session's token budget leaves this round less thinking
 *    room than `maxThinkingTokens`, so the round is asked for a direct answer.
 * 2. `'first-round'` → ANALYTICAL: no earlier round.
 * 3. `'cut-by-budget'` → SYSTEMATIC: the previous round was cut by its budget (thinking forced
 *    to end, or the answer at its cap), so the round is asked for short, ordered steps.
 * 4. `'three-answers-differ'` → CREATIVE: the last three rounds gave three different answers
 *    (the approach is not converging).
 * 5. `'last-two-differ'` → CRITICAL: the last two rounds gave different answers.
 * 6. `'default'` → ANALYTICAL: one round so far, or the last two agree.
 *
 * Two answers are different when their normalised forms differ; an empty answer differs from
 * every answer, itself included.
 *
 * @param state The earlier rounds' answers and cuts, and this round's budget.
 * @returns The mode to use and the rule that chose it.
 *
 * @example
 * ```ts
 * chooseAdaptiveMode({ answerKeys: ['t:paris', 't:lyon'], previousCut: false, budgetLimited: false });
 * // { mode: 'critical', rule: 'last-two-differ' }
 * ```
 */
export function chooseAdaptiveMode(state: AdaptiveState): AdaptiveChoice {
  const keys = state.answerKeys;
  const n = keys.length;
  const differ = (a: string, b: string) => a === '' || b === '' || a !== b;
  if (state.budgetLimited) return { mode: ThinkingMode.INTUITIVE, rule: 'budget-limited' };
  if (n === 0) return { mode: ThinkingMode.ANALYTICAL, rule: 'first-round' };
  if (state.previousCut) return { mode: ThinkingMode.SYSTEMATIC, rule: 'cut-by-budget' };
  if (n >= 3 && differ(keys[n - 3]!, keys[n - 2]!) && differ(keys[n - 3]!, keys[n - 1]!) && differ(keys[n - 2]!, keys[n - 1]!)) {
    return { mode: ThinkingMode.CREATIVE, rule: 'three-answers-differ' };
  }
  if (n >= 2 && differ(keys[n - 2]!, keys[n - 1]!)) return { mode: ThinkingMode.CRITICAL, rule: 'last-two-differ' };
  return { mode: ThinkingMode.ANALYTICAL, rule: 'default' };
}
