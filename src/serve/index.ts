export { type CompletionsServer, type CompletionsServerOptions, createCompletionsServer } from './completions-server';
