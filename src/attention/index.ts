export { type AttentionOptions } from './types';
export { type AttentionCallOptions, attention, attentionAsync } from './attention';
export { type CheckedAttention, checkAttentionOptions } from './check';
export { fromFloat16, toFloat16 } from './float16';
export { type CacheAttendOptions, DuoKVCache, type DuoKVCacheOptions } from './kv-cache';
export { type KvCacheStorage } from './kv-format';
export { HeadPattern, type HeadPatternJSON, type HeadPatternShape, type RatioOptions } from './head-pattern';
export { type HeadScores } from './head-split';
export { type BudgetOptions, type KvBytes, type KvDtype, type KvSizeOptions } from './kv-size';
export {
  type LoadOptions, type ModelConfig, type ParsedHeadScores, type SaveOptions, formatFullAttentionHeads, parseFullAttentionHeads,
} from './head-pattern-file';
export { type CalibrateOptions, type CalibrationMethod, type CalibrationResult, type CalibrationSample, calibrateHeads } from './calibrate';
export { OnnxAttention, type OnnxAttentionOptions } from './onnx-attention';
export { AttentionMode, type AttentionQuery, type AttentionResult, AttentionType, DuoAttention, type DuoAttentionOptions } from './duo-attention';
export { type DuoAttentionMetrics } from './duo-metrics';
