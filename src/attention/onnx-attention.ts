/**
 * The ONNX Runtime attention backend: DuoAttention's two head groups as ONNX Runtime graphs.
 * @module
 */
import type * as Ort from 'onnxruntime-node';
import * as is from '../validate';
import { createSession, executionProviderNames, loadOrt } from '../onnx/session';
import { buildModel } from '../onnx/graph';
import { CloseGuard } from '../toolkit/closing';
import { SerialQueue } from '../toolkit/serial-queue';
import { type CheckedAttention, checkAttentionOptions } from './check';
import { attentionModel, type GraphSignature } from './onnx-graphs';
import { chunkRanges, gatherQueries, type KeyRanges, kvSlice, maskBias, scatterOutput, visibleRanges, zeroQuery } from './onnx-layout';
import type { AttentionOptions } from './types';

/**
 * Options of {@link OnnxAttention.create}.
 *
 * @example
 * ```ts
 * const options: OnnxAttentionOptions = { executionProviders: ['cuda', 'cpu'], operator: 'MultiHeadAttention' };
 * ```
 */
export interface OnnxAttentionOptions {
  /**
   * ONNX Runtime execution providers in order of preference: `['cpu']` (default) or
   * `['cuda', 'cpu']`. When a provider is not available (ORT's CUDA provider is not installed:
   * this package sets `onnxruntime-node-install=skip`), a warning named `OnnxAttentionWarning`
   * is emitted and the graphs run on the CPU; {@link OnnxAttention.executionProviders} tells which run.
   */
  executionProviders?: string[];
  /**
   * Operator of the retrieval heads' causal attention while the queries lie within the keys:
   * `'MultiHeadAttention'` (default; see {@link OnnxAttention}) or `'GroupQueryAttention'`, which
   * takes the earlier keys as a BNSH past (transposed inside the graph) and needs a head dimension
   * that is a multiple of 8. Every other case (streaming heads, cross-attention, queries past the
   * last key, other head dimensions) runs on MultiHeadAttention.
   */
  operator?: 'MultiHeadAttention' | 'GroupQueryAttention';
  /**
   * Most floats of the score matrix (heads × query rows × keys) one masked run may materialise;
   * longer prefills run in more, smaller query chunks. Default 2^25 (128 MiB).
   */
  scoreBudget?: number;
  /**
   * Most sessions kept (one per graph signature and thread count; see {@link OnnxAttention});
   * past it the least recently used one is released. Default 32: a model's layers share
   * signatures, but each distinct subset of streaming heads is its own graph.
   */
  maxSessions?: number;
}

const CREATE_KEYS = ['executionProviders', 'operator', 'scoreBudget', 'maxSessions'] as const;

/**
 * Runs an already checked call on `attn` (queued, refused once closed): for DuoAttention, which
 * checks each call once. Set by the class's static block, which alone can reach its private run.
 * @internal
 */
export let runChecked: (
  attn: OnnxAttention, q: Float32Array, k: Float32Array | Uint16Array, v: Float32Array | Uint16Array, c: CheckedAttention,
) => Promise<Float32Array>;
/** Queries per chunk of streaming heads in prefill, at least (a chunk reads sink + recent + chunk keys). */
const MIN_STREAMING_CHUNK = 64;

/**
 * Scaled dot-product attention with DuoAttention's two head groups, run by ONNX Runtime on
 * graphs built at run time ({@link AttentionOptions} gives layouts, positions and masks). Results
 * match the native kernels to within 1e-4.
 *
 * **Head groups.** KV heads are split into retrieval heads (every visible key) and streaming heads
 * (`sink` first + `recent` last positions, the Λ mask). Each group is gathered (heads made
 * contiguous, as DuoAttention deploys them), computed by its own graph, and scattered back.
 *
 * **Graphs.** com.microsoft.MultiHeadAttention with `num_heads` = the group's KV heads and the
 * query group folded into rows: the `queryHeads / kvHeads` query heads of a KV head become extra
 * query rows of that head, so each KV head is read once for its whole group (ORT's own
 * GroupQueryAttention re-reads it per query head). The fold is exact: rows only meet keys through
 * the scores, and where rows of one head need different masks an additive bias says so.
 * Keys are passed in place (a zero-copy subarray of `k` when one token range is used); a subset of
 * heads is gathered inside the graph. Sequence dimensions are symbolic, and sessions are cached per
 * signature (kind, heads, head dimension, scale, bias or not, threads), so one session serves every length.
 * - Decode (one query) and cross-attention (`causal: false`): every row sees the same keys, so the
 *   keys are sliced to what the query sees (a prefix for retrieval heads; sink + recent window for
 *   streaming heads, copied into one tensor) and the op runs without a mask, on ORT's flash
 *   attention path on the CPU.
 * - Prefill (several causal queries): queries run in chunks; each chunk reads the keys its queries
 *   can see (the prefix up to its last query; for streaming heads the union of their windows,
 *   O(chunk · (sink + recent))) with an additive bias `[1, 1, rows, keys]` of 0 / -1e30 for the
 *   causal-with-offset and Λ masks. Chunks bound ORT's score matrix, which it materialises when a
 *   bias is present, to `scoreBudget` floats (128 MiB by default). (MultiHeadAttention's `unidirectional` is not used: in ORT 1.30 it
 *   does not mask correctly when there are more keys than queries.)
 * - A query that sees no key at all (a streaming head with `sink` 0 far past the last key) gets a zero output.
 *
 * KV given as float16 bits (Uint16Array) is converted to float32 for the keys each run reads.
 * Calls run one at a time, in call order. onnxruntime-node runs a session synchronously on the
 * main thread, so a call blocks the event loop while ORT computes.
 *
 * @example
 * ```ts
 * import { OnnxAttention } from '@capibara/core';
 * const attn = await OnnxAttention.create();
 * const out = await attn.run(q, k, v, { queryHeads: 32, kvHeads: 8, headDim: 128, sink: 64, recent: 256,
 *   streamingHeads: [false, true, true, false, true, true, false, true], threads: 1 });
 * await attn.close();
 * ```
 */
export class OnnxAttention {
  /** The execution providers the sessions run with (`['cpu']` after a fallback). */
  readonly executionProviders: readonly string[];
  /** Operator of the retrieval heads' causal attention (see {@link OnnxAttentionOptions.operator}). */
  readonly operator: 'MultiHeadAttention' | 'GroupQueryAttention';
  /** Most floats of one masked run's score matrix (see {@link OnnxAttentionOptions.scoreBudget}). */
  readonly scoreBudget: number;
  /** Most sessions kept (see {@link OnnxAttentionOptions.maxSessions}). */
  readonly maxSessions: number;

  readonly #ort: typeof Ort;
  readonly #sessions = new Map<string, Promise<Ort.InferenceSession>>();
  readonly #queue = new SerialQueue();
  readonly #guard = new CloseGuard('OnnxAttention');

  static {
    // DuoAttention has checked its call already: it runs it without a second check.
    runChecked = (attn, q, k, v, c) => attn.#runChecked(q, k, v, c);
  }

  private constructor(ort: typeof Ort, providers: string[], operator: OnnxAttention['operator'], scoreBudget: number, maxSessions: number) {
    this.#ort = ort;
    this.executionProviders = providers;
    this.operator = operator;
    this.scoreBudget = scoreBudget;
    this.maxSessions = maxSessions;
  }

  /**
   * Creates the backend. Requested providers are tried once here, so a missing one is reported
   * (one warning) before the first call.
   *
   * @param options Execution providers and the retrieval heads' operator.
   * @returns The backend; sessions are created on first use of each graph.
   * @throws TypeError / RangeError for bad options.
   *
   * @example
   * ```ts
   * const attn = await OnnxAttention.create({ executionProviders: ['cuda', 'cpu'] });
   * console.log(attn.executionProviders); // ['cpu'] where ORT's CUDA provider is not installed
   * ```
   */
  static async create(options: OnnxAttentionOptions = {}): Promise<OnnxAttention> {
    const o = is.options<OnnxAttentionOptions>('options', options, CREATE_KEYS);
    let providers = executionProviderNames('options.executionProviders', o.executionProviders);
    const operator = o.operator === undefined ? 'MultiHeadAttention' : is.oneOf('options.operator', o.operator, ['MultiHeadAttention', 'GroupQueryAttention'] as const);
    const scoreBudget = o.scoreBudget === undefined ? 2 ** 25 : is.integer('options.scoreBudget', o.scoreBudget, 1);
    const maxSessions = o.maxSessions === undefined ? 32 : is.integer('options.maxSessions', o.maxSessions, 1);
    const ort = loadOrt();
    if (!providers.every((p) => p === 'cpu')) {
      const probe = await createSession(ort, identityModel(), { providers, threads: 1, warningType: 'OnnxAttentionWarning', what: 'the attention graphs' });
      providers = probe.providers;
      await probe.session.release();
    }
    return new OnnxAttention(ort, providers, operator, scoreBudget, maxSessions);
  }

  /** Whether {@link OnnxAttention.close} was called. */
  get closed(): boolean {
    return this.#guard.closed;
  }

  /** Sessions held now (one per graph signature and thread count, at most {@link OnnxAttention.maxSessions}). */
  get sessions(): number {
    return this.#sessions.size;
  }

  /**
   * Attention of `q` over `k`/`v` (see the class description for how each head group runs).
   *
   * @param q Queries `[nq, queryHeads, headDim]`, a Float32Array (read in place).
   * @param k Keys `[nk, kvHeads, headDim]`: Float32Array (read in place), or Uint16Array of float16 bits.
   * @param v Values, the same type and shape as `k`.
   * @param options Heads, head dimension, causality and positions, scale, the streaming window and
   * which KV heads stream, and `threads` (ONNX Runtime's intra-op threads for the call).
   * @returns The output `[nq, queryHeads, headDim]`.
   * @throws TypeError / RangeError (as a rejection) naming a bad argument or option; ClosedError when closed.
   *
   * @example
   * ```ts
   * // One decode step over a 32K-token cache, GQA 32/8, one thread:
   * const out = await attn.run(q, k, v, { queryHeads: 32, kvHeads: 8, headDim: 128, threads: 1 });
   * ```
   */
  async run(q: Float32Array, k: Float32Array | Uint16Array, v: Float32Array | Uint16Array, options: AttentionOptions): Promise<Float32Array> {
    const c = checkAttentionOptions(q, k, v, options);
    return this.#runChecked(q, k, v, c);
  }

  #runChecked(q: Float32Array, k: Float32Array | Uint16Array, v: Float32Array | Uint16Array, c: CheckedAttention): Promise<Float32Array> {
    if (this.#guard.closed) return Promise.reject(this.#guard.error());
    return this.#queue.run(() => this.#compute(q, k, v, c));
  }

  /**
   * Releases the sessions after the calls already made finish. Idempotent; later calls reject with {@link ClosedError}.
   *
   * @example
   * ```ts
   * await attn.close();
   * ```
   */
  close(): Promise<void> {
    return this.#guard.close(async () => {
      await this.#queue.idle();
      const sessions = [...this.#sessions.values()];
      this.#sessions.clear();
      for (const s of await Promise.allSettled(sessions)) if (s.status === 'fulfilled') await s.value.release();
    });
  }

  /**
   * Same as {@link OnnxAttention.close}, for `await using`.
   *
   * @example
   * ```ts
   * await using attn = await OnnxAttention.create();
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #compute(q: Float32Array, k: Float32Array | Uint16Array, v: Float32Array | Uint16Array, c: CheckedAttention): Promise<Float32Array> {
    const out = new Float32Array(c.nq * c.queryHeads * c.headDim);
    if (c.nq === 0) return out;
    const retrieval: number[] = [];
    const streaming: number[] = [];
    for (let h = 0; h < c.kvHeads; h++) (c.streaming[h] ? streaming : retrieval).push(h);
    const call: Call = { q, k, v, c, out };
    if (retrieval.length > 0) await this.#retrievalHeads(call, retrieval);
    if (streaming.length > 0) await this.#streamingHeads(call, streaming);
    return out;
  }

  async #retrievalHeads(call: Call, heads: number[]): Promise<void> {
    const { c } = call;
    const position = (t: number) => (c.causal ? c.queryOffset + t : c.nk - 1);
    if (this.operator === 'GroupQueryAttention' && c.causal && c.headDim % 8 === 0) {
      // GQA's causal mask is bottom-right aligned: it fits queries whose own key is present.
      const inside = Math.max(0, Math.min(c.nq, c.nk - c.queryOffset));
      const size = this.#chunk(heads.length * c.group, Math.min(c.nk, position(inside - 1) + 1));
      for (let t0 = 0; t0 < inside; t0 += size) await this.#gqa(call, heads, t0, Math.min(inside, t0 + size));
      if (inside < c.nq) await this.#mha(call, heads, inside, c.nq, [[0, c.nk]], false, false);
      return;
    }
    if (!c.causal || c.nq === 1 || c.queryOffset >= c.nk - 1) {
      // Every query sees the same keys: a prefix, no mask.
      await this.#mha(call, heads, 0, c.nq, visibleRanges(position(0), c.nk, false, 0, 0), false, false);
      return;
    }
    const size = this.#chunk(heads.length * c.group, Math.min(c.nk, position(c.nq - 1) + 1));
    for (let t0 = 0; t0 < c.nq; t0 += size) {
      const t1 = Math.min(c.nq, t0 + size);
      await this.#mha(call, heads, t0, t1, chunkRanges(position(t0), position(t1 - 1), c.nk, false, 0, 0), true, false);
    }
  }

  async #streamingHeads(call: Call, heads: number[]): Promise<void> {
    const { c } = call;
    const position = (t: number) => (c.causal ? c.queryOffset + t : c.nk - 1);
    if (!c.causal || c.nq === 1) {
      const ranges = visibleRanges(position(0), c.nk, true, c.sink, c.recent);
      if (ranges.length > 0) await this.#mha(call, heads, 0, c.nq, ranges, false, true);
      return;
    }
    const first = Math.max(MIN_STREAMING_CHUNK, Math.min(c.recent, c.nq));
    const size = Math.min(first, this.#chunk(heads.length * c.group, Math.min(c.nk, c.sink + c.recent + first)));
    for (let t0 = 0; t0 < c.nq; t0 += size) {
      const t1 = Math.min(c.nq, t0 + size);
      const ranges = chunkRanges(position(t0), position(t1 - 1), c.nk, true, c.sink, c.recent);
      if (ranges.length > 0) await this.#mha(call, heads, t0, t1, ranges, true, true);
    }
  }

  /** Queries per chunk so that heads × rows × keys stays within the score budget (`rowsPerQuery` = heads × group). */
  #chunk(rowsPerQuery: number, keys: number): number {
    return Math.max(1, Math.floor(this.scoreBudget / (rowsPerQuery * Math.max(1, keys))));
  }

  // MultiHeadAttention over the group's KV heads with its query group folded into rows.
  async #mha(call: Call, heads: number[], t0: number, t1: number, ranges: KeyRanges, bias: boolean, streaming: boolean): Promise<void> {
    const { c } = call;
    const T = this.#ort.Tensor;
    const d = c.headDim;
    const keys = kvSlice(call.k, c.kvHeads, d, heads, ranges);
    const values = kvSlice(call.v, c.kvHeads, d, heads, ranges);
    const rows = (t1 - t0) * c.group;
    const feeds: Record<string, Ort.Tensor> = {
      query: new T('float32', gatherQueries(call.q, c.kvHeads, c.group, d, heads, t0, t1, 'fold'), [1, rows, heads.length * d]),
      key: new T('float32', keys.data, [1, keys.tokens, keys.heads * d]),
      value: new T('float32', values.data, [1, keys.tokens, keys.heads * d]),
    };
    let empty: number[] = [];
    if (bias) {
      const mask = maskBias(ranges, t0, t1, c.queryOffset, c.group, streaming, c.sink, c.recent);
      feeds['bias'] = new T('float32', mask.bias, [1, 1, rows, keys.tokens]);
      empty = mask.empty;
    }
    const sig: GraphSignature = { kind: 'mha', kvHeadsIn: keys.heads, gather: keys.gather, headDim: d, group: 1, scale: c.scale, bias };
    const output = await this.#run(sig, c.threads, feeds);
    scatterOutput(output, call.out, c.kvHeads, c.group, d, heads, t0, t1, 'fold');
    for (const t of empty) zeroQuery(call.out, c.kvHeads, c.group, d, heads, t);
  }

  // GroupQueryAttention for causal queries [t0, t1) whose positions lie within the keys.
  async #gqa(call: Call, heads: number[], t0: number, t1: number): Promise<void> {
    const { c } = call;
    const T = this.#ort.Tensor;
    const d = c.headDim;
    const total = c.queryOffset + t1;
    const past = c.queryOffset + t0;
    const pastKeys = kvSlice(call.k, c.kvHeads, d, heads, [[0, past]]);
    const pastValues = kvSlice(call.v, c.kvHeads, d, heads, [[0, past]]);
    const newKeys = kvSlice(call.k, c.kvHeads, d, heads, [[past, total]]);
    const newValues = kvSlice(call.v, c.kvHeads, d, heads, [[past, total]]);
    const width = newKeys.heads * d;
    const feeds: Record<string, Ort.Tensor> = {
      query: new T('float32', gatherQueries(call.q, c.kvHeads, c.group, d, heads, t0, t1, 'heads'), [1, t1 - t0, heads.length * c.group * d]),
      key: new T('float32', newKeys.data, [1, t1 - t0, width]),
      value: new T('float32', newValues.data, [1, t1 - t0, width]),
      past_key: new T('float32', pastKeys.data, [1, past, width]),
      past_value: new T('float32', pastValues.data, [1, past, width]),
      seqlens_k: new T('int32', Int32Array.of(total - 1), [1]),
      total_sequence_length: new T('int32', Int32Array.of(total), []),
    };
    // ORT's CUDA GroupQueryAttention takes float16 only: the graph casts around it there.
    const precision = this.executionProviders.includes('cuda') ? 'float16' : 'float32';
    const sig: GraphSignature = { kind: 'gqa', kvHeadsIn: newKeys.heads, gather: newKeys.gather, headDim: d, group: c.group, scale: c.scale, bias: false, precision };
    const output = await this.#run(sig, c.threads, feeds);
    scatterOutput(output, call.out, c.kvHeads, c.group, d, heads, t0, t1, 'heads');
  }

  async #run(sig: GraphSignature, threads: number, feeds: Record<string, Ort.Tensor>): Promise<Float32Array> {
    const session = await this.#session(sig, threads);
    const result = await session.run(feeds);
    return result['output']!.data as Float32Array;
  }

  #session(sig: GraphSignature, threads: number): Promise<Ort.InferenceSession> {
    const key = `${JSON.stringify(sig)}/${threads}`;
    let session = this.#sessions.get(key);
    // The map's order is the use order: a hit moves to the end, the front is evicted.
    this.#sessions.delete(key);
    if (session === undefined) {
      const request = { providers: [...this.executionProviders], threads, warningType: 'OnnxAttentionWarning', what: 'the attention graphs' };
      const created = createSession(this.#ort, attentionModel(sig), request).then((s) => s.session);
      // A failed creation is not cached: the next call tries again.
      created.catch(() => {
        if (this.#sessions.get(key) === created) this.#sessions.delete(key);
      });
      session = created;
    }
    this.#sessions.set(key, session);
    if (this.#sessions.size > this.maxSessions) {
      // Calls run one at a time and each awaits its runs, so no run holds the evicted session.
      const [oldest, evicted] = this.#sessions.entries().next().value!;
      this.#sessions.delete(oldest);
      evicted.then((s) => s.release()).catch(() => undefined);
    }
    return session;
  }
}

/** One call's inputs, checked options and output. */
interface Call {
  q: Float32Array;
  k: Float32Array | Uint16Array;
  v: Float32Array | Uint16Array;
  c: CheckedAttention;
  out: Float32Array;
}

// The smallest graph, to find out whether the requested providers load.
function identityModel(): Uint8Array {
  const x = { name: 'x', type: 'float32' as const, shape: [1] };
  return buildModel({ inputs: [x], outputs: [{ ...x, name: 'y' }], nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }], name: 'probe' });
}
