export { type FieldCondition, MemoryPriority, type MemoryScope, type MemoryTokenizer, MemoryType, type MetadataFilter, type MetadataValue } from './types';
export { MemAgent } from './mem-agent';
export { type CorruptItem, MemAgentCorruptionError } from './corruption';
export type { PostgresMemoryOptions } from './pg-connection';
export type {
  MemAgentMetrics, MemAgentOpenOptions, MemAgentOptions, MemoryEvent, MemoryItem, MemoryQuery, MemoryUpdate, RetrievalResult, RetrievedChunk, StoreOptions,
} from './mem-agent-types';
export { DEFAULT_WEIGHTS, type RankingWeights, type ScoreComponent, type ScoreExplanation } from './retrieval';
export type { Compression } from './pages';
export { compileFilter, MAX_FILTER_DEPTH } from './filter';
export {
  MEMAGENT_NO_MEMORY, memAgentAnswerPrompt, memAgentMemoryPrompt, MemAgentReader, type MemAgentReaderOptions, type ReadOptions,
  type ReaderChunk, type ReaderResult, type ReaderStep,
} from './reader';
