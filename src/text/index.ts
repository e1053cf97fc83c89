export { type Embedder, type SyncEmbedder } from './embedder';
export { tokenize } from './tokenize';
export { Bm25Index, type Bm25Options } from './bm25';
export { HashedEmbedder, type HashedEmbedderOptions } from './hashed-embedder';
export { dequantizeInt8, type QuantizedVector, quantizeInt8 } from './quantize';
export { float32Scores, float32ScoresAsync, int8Scores, int8ScoresAsync, MAX_SCAN_DIMS, type VectorScanOptions } from './vector-scan';
