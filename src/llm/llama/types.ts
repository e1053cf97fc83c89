/**
 * Public types of {@link LlamaDecoder}: load options, results and calibration options.
 * @module
 */
import type { CalibrationMethod, HeadPattern, KvCacheStorage } from '../../attention/index';
import type { OnnxGenerateResult } from '../onnx/types';

/**
 * How the decoder holds its linear layers' weights (projections, MLP, `lm_head`; the embedding
 * and norms stay float32): `'float32'` as read, or quantised at load to `'int8'` or `'int4'` —
 * per block of 32 input features, symmetric, one float32 scale mapping the block's largest
 * magnitude to ±127 or ±7 (llama.cpp's Q8_0 / Q4_0) — and run by ONNX Runtime's `MatMulNBits`,
 * which also rounds the activations to 8 bits per block and sums in integers (accuracy level
 * 4). With `'int4'`, `lm_head` is kept at 8 bits, as llama.cpp keeps its output tensor finer.
 * Quantised weights read 3.6× (int8) to 6.4× (int4) fewer bytes per token than float32.
 *
 * @example
 * ```ts
 * const decoder = await LlamaDecoder.load('./models/llama', { weights: 'int8' });
 * ```
 */
export type LlamaWeightType = 'float32' | 'int8' | 'int4';

/**
 * Options of {@link LlamaDecoder.load}.
 *
 * @example
 * ```ts
 * const options: LlamaDecoderOptions = { headPattern: 'patterns/my-model', sink: 64, recent: 256, threads: 1 };
 * ```
 */
export interface LlamaDecoderOptions {
  /**
   * Which KV heads keep the full cache: none (default: every head full, plain attention), a
   * {@link HeadPattern} (from {@link LlamaDecoder.calibrate} or `HeadPattern.load`), or the
   * path of pattern files (a folder holding `full_attention_heads.tsv` and `config.json`, or
   * the TSV itself) that record their split, as `HeadPattern.save` and `capibara calibrate`
   * write them, loaded with `HeadPattern.load` against the model's config.json. DuoAttention's
   * own files record no split: load them with `HeadPattern.load(path, { sparsity })` and pass
   * the pattern. Its shape must be the model's layers × KV heads.
   */
  headPattern?: HeadPattern | string;
  /** Sink tokens of a streaming head; default the pattern's, else 64. */
  sink?: number;
  /** Recent tokens of a streaming head (the query's own included); default the pattern's, else 256. */
  recent?: number;
  /** Threads of ONNX Runtime (intra-op) and of the attention kernel, in [1, 256]; default `os.availableParallelism()`. */
  threads?: number;
  /** Most tokens the KV cache holds (prompt + output); default `max_position_embeddings`. */
  maxTokens?: number;
  /** Tokens a streaming head's ring keeps beyond its window, so `truncate` can go back that far; default 64. */
  maxRollback?: number;
  /** Tokens run per model pass during prefill, in [1, 65536]; default 512. */
  prefillChunk?: number;
  /** How the KV cache stores keys and values (see `DuoKVCacheOptions.storage`); default `'float32'`. */
  storage?: KvCacheStorage;
  /**
   * How the linear layers' weights are held (see {@link LlamaWeightType}); default `'float32'`,
   * the weights as read (fp16 and bf16 widened), whose logits equal the whole-model ONNX run.
   */
  weights?: LlamaWeightType;
}

/**
 * Result of {@link LlamaDecoder.generate}: {@link OnnxGenerateResult} plus where the time went.
 *
 * @example
 * ```ts
 * const r = await decoder.generate(prompt, { maxTokens: 64 });
 * console.log(`attention ${(r.attentionMs / (r.attentionMs + r.denseMs) * 100).toFixed(0)} % of model time`);
 * ```
 */
export interface LlamaGenerateResult extends OnnxGenerateResult {
  /**
   * Wall time of the attention calls on the KV cache of this call, in milliseconds: inline kernel
   * calls, and for prefill chunks past 2^20 query × key pairs a layer the awaited worker-thread call.
   */
  attentionMs: number;
  /** Wall time of the ONNX Runtime runs (projections, MLP, norms, `lm_head`) and the embedding lookup of this call, in milliseconds. */
  denseMs: number;
}

/**
 * Options of {@link LlamaDecoder.logits}.
 *
 * @example
 * ```ts
 * const rows = await decoder.logits(ids, { lastPositions: 2000 }); // [2000, vocab]
 * ```
 */
export interface LlamaLogitsOptions {
  /** Reuse the KV cache for the longest prefix it holds (default `true`); `false` starts from an empty cache. */
  reuseCache?: boolean;
  /**
   * Return the logits of the last `lastPositions` positions, row-major `[lastPositions, vocab]`
   * (default 1: the next-token logits). Those positions are run even when cached.
   */
  lastPositions?: number;
}

/**
 * Options of {@link LlamaDecoder.calibrate}: `calibrateHeads`' options without the model's shape.
 *
 * @example
 * ```ts
 * const options: LlamaCalibrateOptions = { retrievalRatio: 0.5, sink: 64, recent: 256, method: 'both' };
 * ```
 */
export interface LlamaCalibrateOptions {
  /** Share of KV heads kept as retrieval heads, in [0, 1]. */
  retrievalRatio: number;
  /** Sink tokens of a streaming head; default the decoder's. */
  sink?: number;
  /** Recent tokens of a streaming head; default the decoder's. */
  recent?: number;
  /** Scoring method; default `'output-error'`. */
  method?: CalibrationMethod;
  /** Score only the last N query positions of each text; default all. */
  lastQueries?: number;
  /** Called as texts are prefilled and layers scored: samples (layer × text) scored so far, of `total`. */
  onProgress?: (done: number, total: number) => void;
  /** Aborts between model runs with an `AbortError`. */
  signal?: AbortSignal;
}

/**
 * The model's shape as generation sees it.
 *
 * @example
 * ```ts
 * console.log(decoder.info.contextLength, decoder.info.eosTokenIds);
 * ```
 */
export interface LlamaDecoderInfo {
  /** Number of logits per position. */
  vocabSize: number;
  /** Decoder layers. */
  layers: number;
  /** Most tokens of prompt + output: the KV cache's `maxTokens`; generation stops with `'length'` there. */
  contextLength: number;
  /** Ids that end generation (`eos_token_id` of generation_config.json, else of config.json). */
  eosTokenIds: number[];
}

/**
 * KV cache bytes of a {@link LlamaDecoder} ({@link LlamaDecoder.kvBytes}).
 *
 * @example
 * ```ts
 * const { used, full }: KvCacheBytes = decoder.kvBytes();
 * ```
 */
export interface KvCacheBytes {
  /** Bytes of keys and values the cache holds now (`DuoKVCache.bytesUsed`). */
  used: number;
  /** Bytes a cache with every head full would hold for the same tokens (`DuoKVCache.bytesFullCache`). */
  full: number;
}
