export type { FinishReason, GenerateOptions, GenerateResult, Generator, GeneratorPrompt } from './generator';
