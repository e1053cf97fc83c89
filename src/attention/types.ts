/**
 * Shapes and options shared by the attention kernels, the KV cache and the backends.
 * @module
 */

/**
 * Options of one attention call. Layouts are token-major (batch 1, like Hugging Face's BSHD):
 * queries `[queries, queryHeads, headDim]`, keys and values `[keys, kvHeads, headDim]`, output
 * `[queries, queryHeads, headDim]`. Query head `h` reads KV head `floor(h / (queryHeads / kvHeads))`
 * (grouped-query attention; `queryHeads === kvHeads` is multi-head attention).
 *
 * Positions: key `j` sits at absolute position `j`; query `t` at `queryOffset + t`. A query at
 * position `i` sees key `j` when `j <= i` (`causal`; a non-causal query sees every key, i.e. `i = keys - 1`)
 * and, for a streaming KV head, also `j < sink` or `j > i - recent` (DuoAttention's Λ mask).
 *
 * @example
 * ```ts
 * const options: AttentionOptions = { queryHeads: 32, kvHeads: 8, headDim: 128, sink: 64, recent: 256, streamingHeads: [false, true, true, false, true, true, false, true] };
 * ```
 */
export interface AttentionOptions {
  /** Query heads; a multiple of `kvHeads`. */
  queryHeads: number;
  /** Key/value heads. */
  kvHeads: number;
  /** Elements per head, 1 to 256. */
  headDim: number;
  /** Causal self-attention (default `true`); `false` for cross-attention (keys from another source). */
  causal?: boolean;
  /** Absolute position of the first query; default `keys - queries` (the queries are the last tokens). Causal only. */
  queryOffset?: number;
  /** Multiplier of `q·k` before the softmax; default `1 / sqrt(headDim)`. */
  scale?: number;
  /** First positions every streaming head keeps (attention sinks); default 0. */
  sink?: number;
  /** Most recent positions a streaming head keeps, the query's own included; default 0. */
  recent?: number;
  /** One flag per KV head, `true` (or 1) = streaming (sink + recent window); default: none streaming (full attention). */
  streamingHeads?: readonly boolean[] | Uint8Array;
  /** Worker threads for one call; default `os.availableParallelism()`. */
  threads?: number;
}
