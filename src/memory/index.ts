export { type Embedder, type FieldCondition, MemoryPriority, type MemoryScope, type MemoryTokenizer, MemoryType, type MetadataFilter, type MetadataValue } from './types';
export {
  MemAgent, type MemAgentMetrics, type MemAgentOptions, type MemoryEvent, type MemoryItem, type MemoryQuery, type MemoryUpdate,
  type RetrievalResult, type RetrievedChunk, type StoreOptions,
} from './mem-agent';
export { DEFAULT_WEIGHTS, type RankingWeights, type ScoreComponent, type ScoreExplanation } from './retrieval';
export type { Compression } from './pages';
export { HashedEmbedder, type HashedEmbedderOptions } from './hashed-embedder';
export { Bm25Index, type Bm25Options, tokenize } from './bm25';
export { compileFilter } from './filter';
export {
  MEMAGENT_NO_MEMORY, memAgentAnswerPrompt, memAgentMemoryPrompt, MemAgentReader, type MemAgentReaderOptions, type ReadOptions,
  type ReaderChunk, type ReaderResult, type ReaderStep,
} from './reader';
export { dequantizeInt8, type QuantizedVector, quantizeInt8 } from './quantize';
export { float32Scores, float32ScoresAsync, int8Scores, int8ScoresAsync, MAX_SCAN_DIMS, type VectorScanOptions } from './vector-scan';
