/**
 * Scaled dot-product attention in the native kernel: causal or cross, multi-head or grouped-query,
 * with DuoAttention's streaming window (sink + recent) on chosen KV heads. Tiled with a running
 * softmax (no `[queries, keys]` matrix in memory); a streaming head reads only its window, so its
 * cost is O(queries · (sink + recent)) instead of O(queries · keys).
 * @module
 */
import { type AttentionArgs, native } from '../native';
import * as is from '../validate';
import { type CheckedAttention, checkAttentionOptions } from './check';
import type { AttentionOptions } from './types';

/**
 * {@link AttentionOptions} plus where the log-sum-exp of each row goes.
 *
 * @example
 * ```ts
 * const lse = new Float32Array(queries * 32);
 * attention(q, k, v, { queryHeads: 32, kvHeads: 8, headDim: 128, lse });
 * ```
 */
export interface AttentionCallOptions extends AttentionOptions {
  /**
   * Filled with the natural log of each row's softmax normaliser, `[queries, queryHeads]`
   * (`m + ln Σ exp(s − m)` over the keys the row sees; `-Infinity` for a row that sees none).
   * Comparing it between a full and a streaming call gives the attention mass the window misses.
   */
  lse?: Float32Array;
}

/** The segment table of a dense `[keys, kvHeads, headDim]` tensor: one row of 8 per KV head (of `heads`, default all). */
function denseSegments(c: CheckedAttention, heads?: readonly number[]): Float64Array {
  const list = heads ?? Array.from({ length: c.kvHeads }, (_, h) => h);
  const table = new Float64Array(list.length * 8);
  const stride = c.kvHeads * c.headDim;
  list.forEach((h, i) => table.set([h, 0, 1, h * c.headDim, h * c.headDim, stride, c.nk, 0], i * 8));
  return table;
}

function nativeArgs(c: CheckedAttention, q: Float32Array, k: Float32Array | Uint16Array, v: Float32Array | Uint16Array, heads?: readonly number[]): AttentionArgs {
  return [
    q, c.nq, c.queryHeads, c.kvHeads, c.headDim, c.queryOffset, c.causal, c.nk - 1, c.scale, c.sink, c.recent,
    [k, v], denseSegments(c, heads), c.anyStreaming ? c.streaming : null, c.threads,
  ];
}

/**
 * Attention of the query groups of `heads` only, for an already checked call; the other heads'
 * outputs are 0. How DuoAttention runs its head groups as separate calls.
 */
export function attentionOfHeads(
  c: CheckedAttention,
  q: Float32Array,
  k: Float32Array | Uint16Array,
  v: Float32Array | Uint16Array,
  heads: readonly number[],
  onWorker: boolean,
): Float32Array | Promise<Float32Array> {
  const args = nativeArgs(c, q, k, v, heads);
  if (onWorker) return native().attentionRunAsync(...args, false).then((r) => r.output);
  const out = new Float32Array(c.nq * c.queryHeads * c.headDim);
  native().attentionRun(...args, out, null);
  return out;
}

function prepare(q: unknown, k: unknown, v: unknown, options: AttentionCallOptions) {
  if (options === null || typeof options !== 'object') throw is.typeError('options', 'an options object', options);
  const { lse, ...rest } = options;
  const c = checkAttentionOptions(q, k, v, rest);
  const lseOut = lse === undefined ? null : is.float32Array('lse', lse, c.nq * c.queryHeads);
  const args = nativeArgs(c, q as Float32Array, k as Float32Array | Uint16Array, v as Float32Array | Uint16Array);
  return { c, lseOut, args };
}

/**
 * Attention of `q` over `k`/`v` (token-major layouts, see {@link AttentionOptions}), synchronously.
 * Keys and values may be float16 bits in a `Uint16Array`; compute is float32 either way.
 *
 * @returns `[queries, queryHeads, headDim]`.
 * @throws TypeError / RangeError naming the argument for bad tensors or options.
 *
 * @example
 * ```ts
 * import { attention } from '@capibara/core';
 * // 16 tokens of causal self-attention, 4 query heads over 2 KV heads of 64.
 * const q = new Float32Array(16 * 4 * 64).map(Math.random);
 * const k = new Float32Array(16 * 2 * 64).map(Math.random);
 * const v = new Float32Array(16 * 2 * 64).map(Math.random);
 * const out = attention(q, k, v, { queryHeads: 4, kvHeads: 2, headDim: 64 });
 * // The same with KV head 1 streaming: it sees position 0 and the last 4 positions only.
 * const duo = attention(q, k, v, { queryHeads: 4, kvHeads: 2, headDim: 64, sink: 1, recent: 4, streamingHeads: [false, true] });
 * ```
 */
export function attention(q: Float32Array, k: Float32Array | Uint16Array, v: Float32Array | Uint16Array, options: AttentionCallOptions): Float32Array {
  const { c, lseOut, args } = prepare(q, k, v, options);
  const out = new Float32Array(c.nq * c.queryHeads * c.headDim);
  native().attentionRun(...args, out, lseOut);
  return out;
}

/**
 * {@link attention} on a worker thread, for calls that take more than about a millisecond (long
 * contexts, prefill). Inputs on an ordinary ArrayBuffer are copied when called, on the calling
 * thread, so you may reuse them at once; inputs on a `SharedArrayBuffer` are read in place and
 * must not be written until the promise settles. For a decode step (a few queries over a long
 * context) that copy costs about as much as the attention itself: keep long-lived K/V on
 * SharedArrayBuffers (as {@link DuoKVCache} does) or call {@link attention}.
 *
 * @example
 * ```ts
 * const out = await attentionAsync(q, k, v, { queryHeads: 32, kvHeads: 8, headDim: 128, threads: 4 });
 * ```
 */
export async function attentionAsync(
  q: Float32Array,
  k: Float32Array | Uint16Array,
  v: Float32Array | Uint16Array,
  options: AttentionCallOptions,
): Promise<Float32Array> {
  const site = new Error();
  const { lseOut, args } = prepare(q, k, v, options);
  const r = await is.atSite(site, () => native().attentionRunAsync(...args, lseOut !== null));
  if (lseOut !== null && r.lse !== null) lseOut.set(r.lse);
  return r.output;
}
