/**
 * KV cache sizing of a head split: the bytes one sequence keeps under a pattern
 * ({@link HeadPattern.kvBytes}) and the most retrieval heads a byte budget allows
 * ({@link HeadPattern.fromBudget}). A retrieval head holds `2 × tokens × headDim × bytesPerElement`
 * bytes (keys and values); a streaming head `min(tokens, sink + recent + maxRollback)` positions.
 * @module
 */
import * as v from '../validate';
import { windowPart } from './head-split';

/**
 * KV cache element types and their sizes: `float32` 4 bytes, `float16` 2 bytes.
 *
 * @example
 * ```ts
 * const dtype: KvDtype = 'float16';
 * ```
 */
export type KvDtype = 'float32' | 'float16';

/**
 * Size of the KV cache of one sequence: element size by `dtype` (default `float32`) or by
 * `bytesPerElement` (e.g. 1 for 8-bit, 0.5 for 4-bit), not both.
 *
 * @example
 * ```ts
 * const size: KvSizeOptions = { tokens: 32_768, headDim: 128, dtype: 'float16', sink: 64, recent: 256 };
 * ```
 */
export interface KvSizeOptions {
  /** Context length, in tokens. */
  tokens: number;
  /** Elements per head. */
  headDim: number;
  /** Element type; default `float32`. */
  dtype?: KvDtype;
  /** Bytes per element, instead of `dtype`. */
  bytesPerElement?: number;
  /** Sink tokens of a streaming head; default the pattern's. */
  sink?: number;
  /** Recent tokens of a streaming head; default the pattern's. */
  recent?: number;
  /**
   * Extra ring slots a streaming head keeps for rollback ({@link DuoKVCacheOptions.maxRollback});
   * default 0 (the paper's sink + recent). Give the cache's value to size a {@link DuoKVCache} exactly.
   */
  maxRollback?: number;
}

/**
 * Options of {@link HeadPattern.fromBudget}.
 *
 * @example
 * ```ts
 * const options: BudgetOptions = { layers: 32, kvHeads: 8, bytes: 2 ** 30, tokens: 32_768, headDim: 128, dtype: 'float16', sink: 64, recent: 256 };
 * ```
 */
export interface BudgetOptions extends KvSizeOptions {
  /** Layers, >= 1. */
  layers: number;
  /** KV heads per layer, >= 1. */
  kvHeads: number;
  /** KV bytes allowed for one sequence of `tokens` tokens (keys and values, all layers). */
  bytes: number;
  /** Sink tokens of a streaming head. */
  sink: number;
  /** Recent tokens of a streaming head. */
  recent: number;
}

/**
 * KV cache size of a pattern at a context length, next to the full cache's.
 *
 * @example
 * ```ts
 * const { bytes, fullBytes, ratio } = pattern.kvBytes({ tokens: 32_768, headDim: 128 });
 * ```
 */
export interface KvBytes {
  /** Bytes kept: retrieval heads hold `tokens`, streaming heads `min(tokens, sink + recent + maxRollback)` positions, keys and values. */
  bytes: number;
  /** Bytes of the full cache (every head holds `tokens` positions). */
  fullBytes: number;
  /** `bytes / fullBytes` (1 when the context fits in the window). */
  ratio: number;
}

const BYTES: Record<KvDtype, number> = { float32: 4, float16: 2 };
const SIZE_KEYS = ['tokens', 'headDim', 'dtype', 'bytesPerElement', 'sink', 'recent', 'maxRollback'];
/** Keys of {@link BudgetOptions}. @internal */
export const BUDGET_KEYS = ['layers', 'kvHeads', 'bytes', ...SIZE_KEYS];

/** KV bytes of one retrieval head and one streaming head (keys + values). @internal */
export function headBytes(o: Partial<KvSizeOptions>, sink: number, recent: number): { full: number; streaming: number } {
  const tokens = v.integer('options.tokens', o.tokens, 0);
  const headDim = v.integer('options.headDim', o.headDim, 1);
  if (o.dtype !== undefined && o.bytesPerElement !== undefined) {
    throw new TypeError('Expected one of dtype and bytesPerElement in options but received both');
  }
  const bpe =
    o.bytesPerElement !== undefined
      ? v.finite('options.bytesPerElement', o.bytesPerElement, { positive: true })
      : BYTES[v.oneOf('options.dtype', o.dtype ?? 'float32', ['float32', 'float16'])];
  const rollback = o.maxRollback === undefined ? 0 : v.integer('options.maxRollback', o.maxRollback, 0);
  const per = 2 * headDim * bpe;
  return { full: per * tokens, streaming: per * Math.min(tokens, sink + recent + rollback) };
}

/**
 * {@link HeadPattern.kvBytes} of a split with `retrieval` retrieval heads out of `heads`; the
 * window from `options`, else `own` (the pattern's). @internal
 */
export function kvBytesOf(retrieval: number, heads: number, options: KvSizeOptions, own: { sink: number | undefined; recent: number | undefined }): KvBytes {
  const o = v.options<KvSizeOptions>('options', options, SIZE_KEYS);
  const sink = windowPart('options.sink', o.sink, own.sink);
  const recent = windowPart('options.recent', o.recent, own.recent);
  const { full, streaming } = headBytes(o, sink, recent);
  const bytes = retrieval * full + (heads - retrieval) * streaming;
  const fullBytes = heads * full;
  return { bytes, fullBytes, ratio: fullBytes === 0 ? 1 : bytes / fullBytes };
}

/**
 * The most of `heads` heads that can be retrieval heads within `o.bytes`, the others streaming
 * with the window `sink + recent`. A budget below the all-streaming size is a RangeError. @internal
 */
export function retrievalWithin(o: Partial<BudgetOptions>, sink: number, recent: number, heads: number): number {
  const bytes = v.finite('options.bytes', o.bytes, { min: 0 });
  const { full, streaming } = headBytes(o, sink, recent);
  const floor = streaming * heads;
  if (bytes < floor) {
    throw v.rangeError('options.bytes', `at least ${floor} (every head streaming at ${o.tokens} tokens)`, bytes);
  }
  // Equal costs (context within the window): every head fits once the floor does.
  return full === streaming ? heads : Math.min(heads, Math.floor((bytes - floor) / (full - streaming)));
}
