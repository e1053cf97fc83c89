export { type LlamaConfig, type LlamaFamily, type RopeScaling } from './config';
export { LlamaDecoder, type LlamaDecoderInfo } from './decoder';
export type { LlamaCalibrateOptions, LlamaDecoderOptions, LlamaGenerateResult, LlamaLogitsOptions } from './types';
