export {
  type LinearRopeScaling, type Llama3RopeScaling, type LlamaConfig, type LlamaFamily, type NoRopeScaling, type RopeConfig, type RopeScaling,
} from './config';
export { LlamaDecoder } from './decoder';
export type {
  KvCacheBytes, LlamaCalibrateOptions, LlamaDecoderInfo, LlamaDecoderOptions, LlamaGenerateResult, LlamaLogitsOptions, LlamaWeightType,
} from './types';
/** @internal */
export { readHeader as readSafetensorsHeader, readTensor as readSafetensorsTensor, type TensorEntry as SafetensorsEntry } from './safetensors';
