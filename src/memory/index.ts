export { type FieldCondition, MemoryPriority, type MemoryScope, type MemoryTokenizer, MemoryType, type MetadataFilter, type MetadataValue } from './types';
export {
  MemAgent, type MemAgentMetrics, type MemAgentOptions, type MemoryEvent, type MemoryItem, type MemoryQuery, type MemoryUpdate,
  type RetrievalResult, type RetrievedChunk, type StoreOptions,
} from './mem-agent';
export { DEFAULT_WEIGHTS, type RankingWeights, type ScoreComponent, type ScoreExplanation } from './retrieval';
export type { Compression } from './pages';
export { compileFilter } from './filter';
export {
  MEMAGENT_NO_MEMORY, memAgentAnswerPrompt, memAgentMemoryPrompt, MemAgentReader, type MemAgentReaderOptions, type ReadOptions,
  type ReaderChunk, type ReaderResult, type ReaderStep,
} from './reader';
