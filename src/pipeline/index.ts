export { type ChatMessage, ChatTemplate, type ChatTemplateOptions } from './chat-template';
export { OptimizationPipeline, type PipelineStats } from './pipeline';
export { MEMORY_HEADING } from './request';
export {
  type AttentionTrace, BudgetRefusedError, type BudgetTrace, type ExpertSpec, type GenerationTrace, type MemoryTrace, type MultiRoundRequest, type OptimizationPipelineOptions,
  type PipelineBudgetOptions, type PipelineDefaults, type PipelineEventSource, type PipelineMemoryOptions, type PipelineMetrics, type PipelineRequest,
  type PipelineResult, type PipelineRunOptions, type PipelineThinkingOptions, type PipelineTrace, type RoutingTrace, type StageTrace, type StoreTrace,
  type ThinkingBoundsRequest,
} from './types';
export { type BuiltPipeline, buildPipeline, checkPipelineConfig, type ExpertConfig, type ExpertProfileConfig, loadPipelineConfig, type PipelineConfig, type ServerConfig } from './config';
export { PIPELINE_CONFIG_SCHEMA } from './config-schema';
