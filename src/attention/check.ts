/**
 * Validation of one attention call (tensors and {@link AttentionOptions}), shared by the native
 * and ONNX Runtime backends so both reject the same inputs with the same messages.
 * @module
 */
import * as is from '../validate';
import type { AttentionOptions } from './types';

/**
 * One attention call, checked and with every default filled in.
 *
 * @example
 * ```ts
 * const c: CheckedAttention = checkAttentionOptions(q, k, v, { queryHeads: 32, kvHeads: 8, headDim: 128 });
 * console.log(c.nq, c.nk, c.group, c.queryOffset);
 * ```
 */
export interface CheckedAttention {
  /** Query tokens. */
  nq: number;
  /** Key (and value) tokens. */
  nk: number;
  /** Query heads. */
  queryHeads: number;
  /** Key/value heads. */
  kvHeads: number;
  /** Elements per head. */
  headDim: number;
  /** Query heads per KV head (`queryHeads / kvHeads`). */
  group: number;
  /** Causal self-attention. */
  causal: boolean;
  /** Absolute position of the first query (`nk - nq` unless given; 0 and unused when not causal). */
  queryOffset: number;
  /** Multiplier of `q·k`. */
  scale: number;
  /** Sink positions of streaming heads. */
  sink: number;
  /** Recent positions of streaming heads, the query's own included. */
  recent: number;
  /** One byte per KV head: 1 = streaming (sink + recent), 0 = retrieval (every key). */
  streaming: Uint8Array;
  /** Whether any KV head streams. */
  anyStreaming: boolean;
  /** Element type of `k` and `v`: `'float16'` when they are Uint16Arrays of IEEE half-precision bits. */
  kvType: 'float32' | 'float16';
  /** Threads for the call. */
  threads: number;
}

const KEYS = ['queryHeads', 'kvHeads', 'headDim', 'causal', 'queryOffset', 'scale', 'sink', 'recent', 'streamingHeads', 'threads'] as const;
const MAX_HEAD_DIM = 256;
const MAX_HEADS = 65536;
const FLT_MAX = 3.4028234663852886e38;

function kvArray(name: string, value: unknown): Float32Array | Uint16Array {
  // typedArray refuses a detached buffer; lengths below are the real ones (is.viewLength).
  if (value instanceof Float32Array) return is.typedArray(name, value, Float32Array);
  if (value instanceof Uint16Array) return is.typedArray(name, value, Uint16Array);
  throw is.typeError(name, 'Float32Array or Uint16Array (float16 bits)', value);
}

/** Query heads (named `name`) as a whole number of groups per KV head. */
export function checkGroup(name: string, queryHeads: number, kvHeads: number): number {
  if (queryHeads % kvHeads !== 0) {
    throw new RangeError(`Expected ${name} to be a multiple of kvHeads (${kvHeads}) but received ${queryHeads}`);
  }
  return queryHeads / kvHeads;
}

/**
 * Keys and values `[tokens, kvHeads, headDim]`: Float32Arrays, or Uint16Arrays of float16 bits,
 * both of one type and length.
 */
export function checkKeysValues(k: unknown, v: unknown, kvHeads: number, headDim: number): { k: Float32Array | Uint16Array; v: Float32Array | Uint16Array; tokens: number } {
  const ka = kvArray('k', k);
  const va = kvArray('v', v);
  if (va.constructor !== ka.constructor) throw is.typeError('v', `${ka.constructor.name} (the type of k)`, v);
  const kvRow = kvHeads * headDim;
  const kn = is.viewLength(ka);
  const vn = is.viewLength(va);
  if (kn % kvRow !== 0) {
    throw new RangeError(`Expected k length to be a multiple of kvHeads * headDim (${kvRow}) but received ${kn}`);
  }
  if (vn !== kn) throw new RangeError(`Expected v length to equal k length (${kn}) but received ${vn}`);
  return { k: ka, v: va, tokens: kn / kvRow };
}

function streamingFlags(value: unknown, kvHeads: number): Uint8Array {
  const out = new Uint8Array(kvHeads);
  if (value === undefined) return out;
  const expected = `boolean[] or Uint8Array of length ${kvHeads} (kvHeads)`;
  if (!Array.isArray(value) && !(value instanceof Uint8Array)) throw is.typeError('streamingHeads', expected, value);
  if (value.length !== kvHeads) throw is.rangeError('streamingHeads', expected, value);
  for (let h = 0; h < kvHeads; h++) {
    const f: unknown = value[h];
    if (value instanceof Uint8Array) {
      if (f !== 0 && f !== 1) throw is.rangeError(`streamingHeads[${h}]`, '0 or 1', f);
      out[h] = f;
    } else {
      out[h] = is.boolean(`streamingHeads[${h}]`, f) ? 1 : 0;
    }
  }
  return out;
}

/**
 * Checks the tensors and options of one attention call and fills in the defaults.
 * Layouts: q `[nq, queryHeads, headDim]`, k and v `[nk, kvHeads, headDim]` (see {@link AttentionOptions}).
 * Messages name the argument or option as the caller wrote it (`q`, `queryHeads`, `streamingHeads[2]`).
 *
 * @param q Queries, a Float32Array.
 * @param k Keys: a Float32Array, or a Uint16Array of IEEE float16 bits.
 * @param v Values, of the same type and length as `k`.
 * @param options The call's options.
 * @param where The options argument's name in messages about the object itself; default `'options'`.
 * @returns The normalised call.
 * @throws TypeError for a wrong kind of value or an unknown option; RangeError for a bad value.
 *
 * @example
 * ```ts
 * const c = checkAttentionOptions(q, k, v, { queryHeads: 32, kvHeads: 8, headDim: 128, sink: 64, recent: 256, streamingHeads: flags });
 * if (c.anyStreaming) console.log(`window ${c.sink} + ${c.recent}`);
 * ```
 */
export function checkAttentionOptions(q: unknown, k: unknown, v: unknown, options: AttentionOptions, where = 'options'): CheckedAttention {
  if (options === undefined) throw is.typeError(where, 'an options object', options);
  const o = is.options<AttentionOptions>(where, options, KEYS);
  const headDim = is.integer('headDim', o.headDim, 1, MAX_HEAD_DIM);
  const kvHeads = is.integer('kvHeads', o.kvHeads, 1, MAX_HEADS);
  const queryHeads = is.integer('queryHeads', o.queryHeads, 1, MAX_HEADS);
  const group = checkGroup('queryHeads', queryHeads, kvHeads);
  const qa = is.float32Array('q', q);
  const kv = checkKeysValues(k, v, kvHeads, headDim);
  const qRow = queryHeads * headDim;
  const qn = is.viewLength(qa);
  if (qn % qRow !== 0) {
    throw new RangeError(`Expected q length to be a multiple of queryHeads * headDim (${qRow}) but received ${qn}`);
  }
  const nq = qn / qRow;
  const nk = kv.tokens;
  if (nk === 0) throw new RangeError('Expected at least one key token in k but received 0');

  const causal = o.causal === undefined ? true : is.boolean('causal', o.causal);
  let queryOffset = 0;
  if (o.queryOffset !== undefined) {
    if (!causal) throw new TypeError('Expected queryOffset only together with causal: true (a non-causal query sees every key)');
    queryOffset = is.integer('queryOffset', o.queryOffset, 0);
  } else if (causal) {
    if (nk < nq) {
      throw new RangeError(`Expected k to hold at least the ${nq} query tokens (causal, no queryOffset: the queries are the last keys) but received ${nk} key tokens`);
    }
    queryOffset = nk - nq;
  }
  const scale = o.scale === undefined ? 1 / Math.sqrt(headDim) : is.finite('scale', o.scale, { positive: true });
  // The kernels multiply in float32: a larger scale is not representable.
  if (scale > FLT_MAX) throw is.rangeError('scale', `finite number in (0, ${FLT_MAX}]`, scale);
  const sink = o.sink === undefined ? 0 : is.integer('sink', o.sink, 0);
  const recent = o.recent === undefined ? 0 : is.integer('recent', o.recent, 0);
  const streaming = streamingFlags(o.streamingHeads, kvHeads);
  const anyStreaming = streaming.includes(1);
  if (anyStreaming && recent < 1) {
    throw new RangeError(`Expected recent >= 1 when streamingHeads marks a streaming head (its window holds the query's own position) but received ${recent}`);
  }
  const threads = is.threads('threads', o.threads);
  return {
    nq, nk, queryHeads, kvHeads, headDim, group, causal, queryOffset, scale, sink, recent,
    streaming, anyStreaming, kvType: kv.k instanceof Uint16Array ? 'float16' : 'float32', threads,
  };
}
