export { type CompletionsServer, type CompletionsServerOptions, createCompletionsServer, createPipelineServer } from './completions-server';
