export { type AnswerVote, answerKey, answersAgree, normalizeAnswer, parseNumericAnswer } from './answers';
export {
  type AdaptiveChoice, type AdaptiveRule, type AdaptiveState, chooseAdaptiveMode, type ConcreteThinkingMode, MODE_INSTRUCTIONS, REASONING_INSTRUCTIONS,
  ReasoningType, ThinkingMode,
} from './modes';
export { MultiRoundThinking } from './multi-round-thinking';
export { INSIGHTS_INSTRUCTION, insightsMessage, THINK_TWICE_REANSWER, thinkTwiceMessage } from './prompts';
export { SqliteThinkingStore, type SqliteThinkingStoreOptions } from './sqlite-store';
export { MemoryThinkingStore, type ThinkingCompletion, type ThinkingSpend, type ThinkingStore, type ThinkingStoreStats } from './store';
export type { ThinkingInsights, ThinkingMetrics, ThinkingRoundRecord, ThinkingSession, ThinkingStopReason, ThinkingSynthesis } from './records';
export type { MultiRoundThinkingOptions, RoundThinkingBudget, RunSessionOptions, ThinkingChargeInfo, ThinkingRoundOptions, ThinkingSessionOptions } from './types';
