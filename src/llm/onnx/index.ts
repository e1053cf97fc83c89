export { OnnxCausalLM } from './onnx-causal-lm';
export type { LogitsOptions, OnnxCausalLMInfo, OnnxCausalLMOptions, OnnxGenerateResult } from './types';
