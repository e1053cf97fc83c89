export {
  type LinearRopeScaling, type Llama3RopeScaling, type LlamaConfig, type LlamaFamily, type NoRopeScaling, type RopeConfig, type RopeScaling,
} from './config';
export { type KvCacheBytes, LlamaDecoder, type LlamaDecoderInfo } from './decoder';
export type { LlamaCalibrateOptions, LlamaDecoderOptions, LlamaGenerateResult, LlamaLogitsOptions } from './types';
