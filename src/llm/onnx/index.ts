export { type LogitsOptions, OnnxCausalLM, type OnnxCausalLMInfo, type OnnxCausalLMOptions, type OnnxGenerateResult } from './onnx-causal-lm';
