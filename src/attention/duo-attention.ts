/**
 * The seed's `DuoAttention`, made real: one object that runs attention with DuoAttention's two
 * head groups — the "primary" mechanism is the retrieval heads (full KV), the "secondary" the
 * streaming heads (sink + recent) — on the native kernels or on ONNX Runtime, and keeps measured metrics.
 * @module
 */
import { performance } from 'node:perf_hooks';
import { CloseGuard } from '../toolkit/closing';
import * as is from '../validate';
import { attentionOfHeads } from './attention';
import { type CheckedAttention, checkAttentionOptions, checkGroup } from './check';
import { DuoCounters, type DuoAttentionMetrics, type RanAs, agreement, kvBytesOfCall } from './duo-metrics';
import { HeadPattern } from './head-pattern';
import { OnnxAttention, runChecked } from './onnx-attention';

/**
 * How the two head groups run.
 * - `PARALLEL`: both groups in one call, their heads spread over the threads together.
 * - `SEQUENTIAL`: the retrieval group, then the streaming group, as two native calls each over
 *   its own heads (the ONNX Runtime backend runs its groups one after the other in either mode).
 * - `ADAPTIVE`: every head full while the context fits in `sink + recent` (the window would hold
 *   every key anyway, so nothing is saved by splitting), the parallel split once it does not.
 *
 * The seed's `HIERARCHICAL` mode is not provided: DuoAttention has no hierarchy of head groups to
 * run it over.
 *
 * @example
 * ```ts
 * new DuoAttention({ numHeads: 32, kvHeads: 8, headDim: 128, mode: AttentionMode.ADAPTIVE });
 * ```
 */
export enum AttentionMode {
  PARALLEL = 'parallel',
  SEQUENTIAL = 'sequential',
  ADAPTIVE = 'adaptive',
}

/**
 * Kinds of attention with a real meaning here.
 * - `SELF`: causal self-attention with the head split (retrieval heads see every earlier position,
 *   streaming heads the sink and the last `recent`).
 * - `CROSS`: non-causal attention to keys from another source (an encoder, retrieved passages);
 *   streaming heads see the first `sink` and the last `recent` keys.
 * - `TEMPORAL`: causal streaming attention on every head (StreamingLLM): constant memory per head.
 *
 * Not provided: the seed's `HIERARCHICAL` and `SPATIAL` types. They name model architectures
 * (multi-scale, 2-D image positions) rather than ways to run a head over a KV cache, and a
 * token-sequence attention engine has no honest version of them.
 *
 * @example
 * ```ts
 * await duo.processAttention({ q, k, v, type: AttentionType.CROSS });
 * ```
 */
export enum AttentionType {
  SELF = 'self',
  CROSS = 'cross',
  TEMPORAL = 'temporal',
}

/**
 * Options of {@link DuoAttention}.
 *
 * @example
 * ```ts
 * const options: DuoAttentionOptions = { numHeads: 32, kvHeads: 8, headDim: 128, headPattern, sink: 64, recent: 256 };
 * ```
 */
export interface DuoAttentionOptions {
  /** Query heads. */
  numHeads: number;
  /** Key/value heads (`numHeads` when absent: multi-head attention). */
  kvHeads?: number;
  /** Elements per head, 1 to 256. */
  headDim: number;
  /** Which KV heads are retrieval heads, per layer; default every head retrieval (full attention). */
  headPattern?: HeadPattern;
  /** Sink positions of streaming heads; default the head pattern's (from its config.json), else 64 (the paper's evaluation setting). */
  sink?: number;
  /** Recent positions of streaming heads, the query's own included; default the head pattern's, else 256. */
  recent?: number;
  /** Default {@link AttentionMode.ADAPTIVE}. */
  mode?: AttentionMode | `${AttentionMode}`;
  /** `'native'` (default, the C++ kernels) or `'onnxruntime'` (graphs run by ONNX Runtime). */
  backend?: 'native' | 'onnxruntime';
  /** ONNX Runtime execution providers, e.g. `['cuda', 'cpu']`; default `['cpu']` (see {@link OnnxAttentionOptions}). */
  executionProviders?: string[];
  /** Threads per call; default `os.availableParallelism()`. */
  threads?: number;
}

/**
 * One call of {@link DuoAttention.processAttention}. Layouts as in {@link AttentionOptions}:
 * q `[queries, numHeads, headDim]`, k and v `[keys, kvHeads, headDim]` (k/v may be float16 bits
 * in a Uint16Array on the native backend).
 *
 * @example
 * ```ts
 * const query: AttentionQuery = { q, k, v, layer: 3, checkQuality: true };
 * ```
 */
export interface AttentionQuery {
  /** Queries `[queries, numHeads, headDim]`. */
  q: Float32Array;
  /** Keys `[keys, kvHeads, headDim]` (after RoPE). */
  k: Float32Array | Uint16Array;
  /** Values `[keys, kvHeads, headDim]`. */
  v: Float32Array | Uint16Array;
  /** Default {@link AttentionType.SELF}. */
  type?: AttentionType | `${AttentionType}`;
  /** Layer whose head split applies (a row of the head pattern); default 0. */
  layer?: number;
  /** Position of the first query (causal types); default `keys - queries`. */
  queryOffset?: number;
  /** Multiplier of `q·k`; default `1 / sqrt(headDim)`. */
  scale?: number;
  /** Also run full attention on the same input and report {@link AttentionResult.quality}. */
  checkQuality?: boolean;
}

/**
 * Result of {@link DuoAttention.processAttention}.
 *
 * @example
 * ```ts
 * const { output, kvBytesSaved, quality } = await duo.processAttention({ q, k, v, checkQuality: true });
 * ```
 */
export interface AttentionResult {
  /** `[queries, numHeads, headDim]`. */
  output: Float32Array;
  /** How the groups ran: `'parallel'`, `'sequential'`, or `'full'` (ADAPTIVE with a context inside the window, or no streaming head). */
  ranAs: 'parallel' | 'sequential' | 'full';
  /** KV heads that saw every key. */
  retrievalHeads: number[];
  /** KV heads limited to sink + recent. */
  streamingHeads: number[];
  /**
   * Bytes of keys and values the call attended to: the key positions each query sees, summed over
   * queries and KV heads, × headDim × 2 (keys and values) × bytes per element. For one decoded
   * token it is the KV the step reads.
   */
  kvBytesAttended: number;
  /** The same count had every head been a retrieval head, minus {@link kvBytesAttended}. */
  kvBytesSaved: number;
  /** Wall time of the call in milliseconds (the quality check excluded). */
  timeMs: number;
  /**
   * With `checkQuality`: agreement with full attention on the same input, defined as
   * `max(0, 1 − ‖o − o_full‖ / ‖o_full‖)` over the whole output (1 = identical). Absent otherwise.
   */
  quality?: number;
}

const KEYS = ['numHeads', 'kvHeads', 'headDim', 'headPattern', 'sink', 'recent', 'mode', 'backend', 'executionProviders', 'threads'];
const QUERY_KEYS = ['q', 'k', 'v', 'type', 'layer', 'queryOffset', 'scale', 'checkQuality'];
// Below this many multiply-adds a call runs synchronously: a worker thread costs more than it saves.
const SYNC_WORK = 1 << 20;

/**
 * DuoAttention: retrieval heads attend over the full context, streaming heads over the first
 * `sink` and last `recent` positions. {@link DuoAttention.processAttention} runs one attention call
 * with the split of the chosen layer; for step-by-step generation use {@link DuoKVCache}, which
 * also stores only what each head needs.
 *
 * Not provided from the seed: `primary_dimension` / `secondary_dimension` (both head groups share
 * the model's head dimension: DuoAttention changes which keys a head reads, not its width), the
 * result cache (an output depends on every element of q, k and v, so a key would cost a full pass
 * over them and hits only come from repeated identical calls), and a fixed quality figure: quality
 * is measured per call on request.
 *
 * @example
 * ```ts
 * import { DuoAttention, HeadPattern } from '@capibara/core';
 * const headPattern = HeadPattern.fromRatio(alphas, { layers: 32, kvHeads: 8, retrievalRatio: 0.5 });
 * const duo = new DuoAttention({ numHeads: 32, kvHeads: 8, headDim: 128, headPattern, sink: 64, recent: 256 });
 * const { output, kvBytesSaved, quality } = await duo.processAttention({ q, k, v, layer: 0, checkQuality: true });
 * await duo.close();
 * ```
 */
export class DuoAttention {
  /** Query heads. */
  readonly numHeads: number;
  /** Key/value heads. */
  readonly kvHeads: number;
  /** Elements per head. */
  readonly headDim: number;
  /** The head split in use. */
  readonly headPattern: HeadPattern;
  /** Sink positions of streaming heads. */
  readonly sink: number;
  /** Recent positions of streaming heads. */
  readonly recent: number;
  /** How the groups run. */
  readonly mode: AttentionMode;
  /** Where attention runs. */
  readonly backend: 'native' | 'onnxruntime';
  readonly #threads: number;
  readonly #providers: string[] | undefined;
  #onnx: Promise<OnnxAttention> | undefined;
  readonly #guard = new CloseGuard('DuoAttention');
  readonly #counters = new DuoCounters();

  /**
   * @param options Heads, head dimension, the head pattern, window, mode and backend.
   * @throws TypeError / RangeError naming the option.
   */
  constructor(options: DuoAttentionOptions) {
    const o = is.options<DuoAttentionOptions>('options', options, KEYS);
    this.numHeads = is.integer('numHeads', o.numHeads, 1, 65536);
    this.kvHeads = o.kvHeads === undefined ? this.numHeads : is.integer('kvHeads', o.kvHeads, 1, 65536);
    checkGroup('numHeads', this.numHeads, this.kvHeads);
    this.headDim = is.integer('headDim', o.headDim, 1, 256);
    const pattern = o.headPattern ?? HeadPattern.allRetrieval(1, this.kvHeads);
    if (!(pattern instanceof HeadPattern)) throw is.typeError('headPattern', 'HeadPattern', pattern);
    // A pattern loaded from DuoAttention's files carries the window it was made for.
    this.sink = o.sink === undefined ? (pattern.sink ?? 64) : is.integer('sink', o.sink, 0);
    this.recent = o.recent === undefined ? (pattern.recent ?? 256) : is.integer('recent', o.recent, 1);
    if (pattern.kvHeads !== this.kvHeads) {
      throw new RangeError(`Expected headPattern with ${this.kvHeads} KV heads per layer (kvHeads) but received ${pattern.kvHeads}`);
    }
    this.headPattern = pattern;
    this.mode = o.mode === undefined ? AttentionMode.ADAPTIVE : (is.oneOf('mode', o.mode, Object.values(AttentionMode)) as AttentionMode);
    this.backend = o.backend === undefined ? 'native' : is.oneOf('backend', o.backend, ['native', 'onnxruntime'] as const);
    this.#threads = is.threads('threads', o.threads);
    if (o.executionProviders !== undefined) {
      if (this.backend !== 'onnxruntime') throw new TypeError("Expected executionProviders only with backend: 'onnxruntime'");
      const p: unknown = o.executionProviders;
      if (!Array.isArray(p) || p.length === 0 || !p.every((x) => typeof x === 'string')) {
        throw is.typeError('executionProviders', 'non-empty array of provider names', p);
      }
    }
    this.#providers = o.executionProviders;
  }

  /**
   * One checked call over the KV heads `heads` (default all). Native calls go to a worker
   * thread when they are big enough to pay for it. An async call copies every input not on a
   * SharedArrayBuffer when it is made (inputs on SharedArrayBuffers are read in place), and for
   * a few queries over a long context that copy costs about what the attention does, so unless
   * q, k and v are all shared, only calls of 8 or more queries go to the worker thread.
   */
  #run(c: CheckedAttention, q: Float32Array, k: Float32Array | Uint16Array, v: Float32Array | Uint16Array, heads?: readonly number[]): Promise<Float32Array> | Float32Array {
    this.#guard.check();
    if (this.backend === 'onnxruntime') {
      this.#onnx ??= OnnxAttention.create(this.#providers ? { executionProviders: this.#providers } : {});
      return this.#onnx.then((ort) => runChecked(ort, q, k, v, c));
    }
    const list = heads ?? Array.from({ length: c.kvHeads }, (_, h) => h);
    let keys = 0;
    for (const h of list) keys += c.streaming[h] ? Math.min(c.nk, c.sink + c.recent + c.nq) : c.nk;
    const work = c.nq * c.group * c.headDim * keys;
    const shared = [q, k, v].every((a) => a.buffer instanceof SharedArrayBuffer);
    return attentionOfHeads(c, q, k, v, list, work >= SYNC_WORK && (shared || c.nq >= 8));
  }

  /**
   * Runs one attention call with the head split of `query.layer`.
   *
   * @returns The output, how it ran, the KV bytes it attended to and saved, its time, and the quality when asked.
   * @throws TypeError / RangeError naming the argument for bad tensors or options; ClosedError after close().
   *
   * @example
   * ```ts
   * const r = await duo.processAttention({ q, k, v, layer: 5 });
   * console.log(r.ranAs, r.kvBytesSaved, r.timeMs);
   * ```
   */
  async processAttention(query: AttentionQuery): Promise<AttentionResult> {
    this.#guard.check();
    const o = is.options<AttentionQuery>('query', query, QUERY_KEYS);
    // Each field read once: what is checked is what runs.
    const { q, k, v, type: givenType, layer: givenLayer, queryOffset, scale, checkQuality: givenCheck } = o;
    const type = givenType === undefined ? AttentionType.SELF : (is.oneOf('type', givenType, Object.values(AttentionType)) as AttentionType);
    const layer = givenLayer === undefined ? 0 : is.integer('layer', givenLayer, 0, this.headPattern.layers - 1);
    const checkQuality = givenCheck === undefined ? false : is.boolean('checkQuality', givenCheck);
    if (type === AttentionType.CROSS && queryOffset !== undefined) {
      throw new TypeError("Expected queryOffset only with a causal type ('self' or 'temporal'): a cross-attention query sees every key");
    }
    const flags = type === AttentionType.TEMPORAL ? new Array<boolean>(this.kvHeads).fill(true) : this.headPattern.streamingFlags(layer);
    // The one check of the call; the unsplit variant (every head full) differs only in its flags.
    const c = checkAttentionOptions(q, k, v, {
      queryHeads: this.numHeads, kvHeads: this.kvHeads, headDim: this.headDim, causal: type !== AttentionType.CROSS,
      ...(queryOffset !== undefined ? { queryOffset } : {}),
      ...(scale !== undefined ? { scale } : {}),
      sink: this.sink, recent: this.recent, threads: this.#threads, streamingHeads: flags,
    }, 'query');
    const full: CheckedAttention = { ...c, streaming: new Uint8Array(c.kvHeads), anyStreaming: false };
    const qa = q!;
    const ka = k!;
    const va = v!;
    const streamingHeads = flags.flatMap((f, h) => (f ? [h] : []));
    const retrievalHeads = flags.flatMap((f, h) => (f ? [] : [h]));
    // Every query's window holds all its keys: the last query sits at queryOffset + nq - 1 (causal) or sees nk keys.
    const fits = (c.causal ? c.queryOffset + c.nq : c.nk) <= this.sink + this.recent;
    const ranAs: RanAs =
      streamingHeads.length === 0 || (this.mode === AttentionMode.ADAPTIVE && fits)
        ? 'full'
        : this.mode === AttentionMode.SEQUENTIAL ? 'sequential' : 'parallel';

    const start = performance.now();
    let output: Float32Array;
    if (ranAs === 'full') {
      output = await this.#run(full, qa, ka, va);
    } else if (ranAs === 'parallel' || this.backend === 'onnxruntime') {
      // ONNX Runtime runs the two groups as separate graphs, one after the other, in either mode.
      output = await this.#run(c, qa, ka, va);
    } else {
      // Two calls, each over its own group's heads only; the streaming group's rows go into the first output.
      output = await this.#run(c, qa, ka, va, retrievalHeads);
      const streaming = await this.#run(c, qa, ka, va, streamingHeads);
      const group = this.numHeads / this.kvHeads;
      for (let t = 0; t < c.nq; t++) {
        for (const h of streamingHeads) {
          const at = (t * this.numHeads + h * group) * this.headDim;
          output.set(streaming.subarray(at, at + group * this.headDim), at);
        }
      }
    }
    const timeMs = performance.now() - start;

    const kv = kvBytesOfCall(c, ranAs === 'full' ? 0 : streamingHeads.length);
    const result: AttentionResult = {
      output, ranAs, retrievalHeads, streamingHeads, kvBytesAttended: kv.attended, kvBytesSaved: kv.full - kv.attended, timeMs,
    };
    if (checkQuality) result.quality = agreement(output, await this.#run(full, qa, ka, va));
    this.#counters.record({
      ranAs, timeMs, kvBytesAttended: kv.attended, kvBytesSaved: kv.full - kv.attended, quality: result.quality,
      retrievalHeads: ranAs === 'full' ? this.kvHeads : retrievalHeads.length, kvHeads: this.kvHeads,
    });
    return result;
  }

  /**
   * Measured counters since creation.
   *
   * @example
   * ```ts
   * console.log(duo.getMetrics().meanQuality);
   * ```
   */
  getMetrics(): DuoAttentionMetrics {
    return this.#counters.snapshot();
  }

  /**
   * Releases the ONNX Runtime sessions (if any). Idempotent; later calls reject with {@link ClosedError}.
   *
   * @example
   * ```ts
   * await duo.close();
   * ```
   */
  close(): Promise<void> {
    return this.#guard.close(async () => {
      const onnx = this.#onnx;
      this.#onnx = undefined;
      // A backend that failed to start has nothing to release (its error went to the call that started it).
      const ort = await onnx?.catch(() => undefined);
      await ort?.close();
    });
  }

  /**
   * Same as {@link DuoAttention.close}, for `await using`.
   *
   * @example
   * ```ts
   * await using duo = new DuoAttention({ numHeads: 32, kvHeads: 8, headDim: 128 });
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
