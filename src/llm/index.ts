export type { FinishReason, GenerateOptions, GenerateResult, Generator, GeneratorPrompt } from './generator';
export { CompletionsHTTPError, type CompletionsTokenizer, OpenAICompatibleGenerator, type OpenAICompatibleGeneratorOptions } from './openai-compatible';
export * from './onnx/index';
export * from './llama/index';
