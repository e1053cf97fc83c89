/**
 * DuoAttention's split KV cache: per layer, a full cache for the retrieval heads and sink slots +
 * a ring buffer for the streaming heads, so a streaming head's memory stays fixed however long the
 * context grows and appending never shifts stored rows. Keys are stored as given (after RoPE) with
 * their absolute positions, which is what makes chunked prefill equal one-shot prefill.
 * @module
 */
import { type AttentionArgs, native } from '../native';
import * as is from '../validate';
import { checkGroup, checkKeysValues } from './check';
import { toFloat16 } from './float16';
import type { HeadPattern } from './head-pattern';

/**
 * Options of {@link DuoKVCache}.
 *
 * @example
 * ```ts
 * const options: DuoKVCacheOptions = { layers: 32, kvHeads: 8, headDim: 128, headPattern, sink: 64, recent: 256, maxTokens: 131072 };
 * ```
 */
export interface DuoKVCacheOptions {
  /** Model layers. */
  layers: number;
  /** Key/value heads per layer. */
  kvHeads: number;
  /** Elements per head, 1 to 256. */
  headDim: number;
  /** Which KV heads are retrieval heads (full cache) and which stream; its shape must be layers × kvHeads. */
  headPattern: HeadPattern;
  /** First positions a streaming head keeps (attention sinks); the paper evaluates with 64. */
  sink: number;
  /** Most recent positions a streaming head attends to, the query's own included; the paper uses 256. */
  recent: number;
  /** Most tokens a layer may hold; appending past it is a RangeError. */
  maxTokens: number;
  /** Storage type: `'float32'` (default) or `'float16'` (half the bytes; compute stays float32). */
  dtype?: 'float32' | 'float16';
  /**
   * Extra ring slots per streaming head, so that {@link DuoKVCache.truncate} can roll back this
   * many tokens (speculative decoding, retries). Default 64 (at most maxTokens).
   */
  maxRollback?: number;
}

/**
 * Options of {@link DuoKVCache.attend}.
 *
 * @example
 * ```ts
 * const out = cache.attend(0, q, k, v, { queryHeads: 32, threads: 2 });
 * ```
 */
export interface CacheAttendOptions {
  /** Query heads (a multiple of the cache's kvHeads). */
  queryHeads: number;
  /** Multiplier of `q·k`; default `1 / sqrt(headDim)`. */
  scale?: number;
  /** Worker threads; default `os.availableParallelism()`. */
  threads?: number;
  /** Filled with each row's log-sum-exp, `[tokens, queryHeads]` (see {@link AttentionCallOptions.lse}). */
  lse?: Float32Array;
}

type Storage = Float32Array | Uint16Array;

interface Layer {
  retrieval: number[]; // KV heads with a full cache, in order
  streaming: number[]; // KV heads with sink + ring
  flags: Uint8Array; // 1 = streaming, per KV head
  slot: Int32Array; // index of each KV head inside its group
  capacity: number; // tokens the full cache has room for
  fullK: Storage; // [retrieval.length, capacity, headDim]
  fullV: Storage;
  streamK: Storage; // [streaming.length, sink + ring, headDim]
  streamV: Storage;
  length: number;
  // Oldest position whose ring slot still holds it: writes only ever raise it (a rollback leaves
  // the slots of forgotten positions overwritten), so it is not length - ring after a truncate.
  ringFloor: number;
}

const KEYS = ['layers', 'kvHeads', 'headDim', 'headPattern', 'sink', 'recent', 'maxTokens', 'dtype', 'maxRollback'];
const ATTEND_KEYS = ['queryHeads', 'scale', 'threads', 'lse'];
const FIRST_CAPACITY = 256;

/**
 * The DuoAttention KV cache of one sequence. Memory per layer: retrieval heads hold every token
 * (grown by doubling up to `maxTokens`), streaming heads hold `sink + recent + maxRollback` slots.
 * Buffers live on SharedArrayBuffers so async attention reads them in place.
 *
 * @example
 * ```ts
 * import { DuoKVCache, HeadPattern } from '@capibara/core';
 * const headPattern = HeadPattern.fromRatio(alphas, { layers: 2, kvHeads: 4, retrievalRatio: 0.5 });
 * const cache = new DuoKVCache({ layers: 2, kvHeads: 4, headDim: 64, headPattern, sink: 4, recent: 64, maxTokens: 4096 });
 * // Per layer and step: attend the new tokens' queries over the cache plus themselves, then store their keys.
 * const out = cache.attend(0, q, k, v, { queryHeads: 8 });
 * console.log(cache.bytesUsed() / cache.bytesFullCache());
 * ```
 */
export class DuoKVCache {
  /** Model layers. */
  readonly layers: number;
  /** Key/value heads per layer. */
  readonly kvHeads: number;
  /** Elements per head. */
  readonly headDim: number;
  /** Sink positions of streaming heads. */
  readonly sink: number;
  /** Recent window of streaming heads. */
  readonly recent: number;
  /** Most tokens per layer. */
  readonly maxTokens: number;
  /** Storage type. */
  readonly dtype: 'float32' | 'float16';
  /** Extra ring slots for rollback. */
  readonly maxRollback: number;
  /** The head split in use. */
  readonly headPattern: HeadPattern;
  readonly #ring: number;
  readonly #layers: Layer[];
  #busy = 0;

  /**
   * @param options Shape, head pattern, window, capacity, storage type and rollback slack.
   * @throws TypeError / RangeError naming the option; RangeError when sink + recent exceeds maxTokens.
   */
  constructor(options: DuoKVCacheOptions) {
    const o = is.options<DuoKVCacheOptions>('options', options, KEYS);
    this.layers = is.integer('layers', o.layers, 1, 4096);
    this.kvHeads = is.integer('kvHeads', o.kvHeads, 1, 65536);
    this.headDim = is.integer('headDim', o.headDim, 1, 256);
    this.sink = is.integer('sink', o.sink, 0);
    this.recent = is.integer('recent', o.recent, 1);
    this.maxTokens = is.integer('maxTokens', o.maxTokens, 1, 2 ** 40);
    if (this.sink + this.recent > this.maxTokens) {
      throw new RangeError(`Expected sink + recent (${this.sink} + ${this.recent}) <= maxTokens (${this.maxTokens})`);
    }
    this.dtype = o.dtype === undefined ? 'float32' : is.oneOf('dtype', o.dtype, ['float32', 'float16'] as const);
    this.maxRollback = o.maxRollback === undefined ? Math.min(64, this.maxTokens) : is.integer('maxRollback', o.maxRollback, 0, this.maxTokens);
    const pattern = o.headPattern as HeadPattern | undefined;
    if (pattern === null || typeof pattern !== 'object' || typeof pattern.streamingFlags !== 'function') {
      throw is.typeError('headPattern', 'HeadPattern', pattern);
    }
    if (pattern.layers !== this.layers || pattern.kvHeads !== this.kvHeads) {
      throw new RangeError(
        `Expected headPattern of ${this.layers} layers × ${this.kvHeads} kvHeads but received ${pattern.layers} × ${pattern.kvHeads}`,
      );
    }
    this.headPattern = pattern;
    this.#ring = this.recent + this.maxRollback;
    this.#layers = [];
    for (let l = 0; l < this.layers; l++) {
      const flags = Uint8Array.from(pattern.streamingFlags(l), (f) => (f ? 1 : 0));
      const retrieval: number[] = [];
      const streaming: number[] = [];
      const slot = new Int32Array(this.kvHeads);
      flags.forEach((f, h) => {
        const group = f ? streaming : retrieval;
        slot[h] = group.length;
        group.push(h);
      });
      const slots = this.sink + this.#ring;
      this.#layers.push({
        retrieval, streaming, flags, slot, capacity: 0,
        fullK: this.#alloc(0), fullV: this.#alloc(0),
        streamK: this.#alloc(streaming.length * slots * this.headDim),
        streamV: this.#alloc(streaming.length * slots * this.headDim),
        length: 0,
        ringFloor: 0,
      });
    }
  }

  #alloc(elements: number): Storage {
    const bytes = this.dtype === 'float16' ? 2 : 4;
    let buffer: SharedArrayBuffer;
    try {
      buffer = new SharedArrayBuffer(elements * bytes);
    } catch (err) {
      throw new RangeError(
        `Could not allocate ${elements * bytes} bytes of KV cache (kvHeads ${this.kvHeads} × headDim ${this.headDim} × sink + recent + maxRollback or maxTokens rows)`,
        { cause: err },
      );
    }
    return this.dtype === 'float16' ? new Uint16Array(buffer) : new Float32Array(buffer);
  }

  #layer(layer: unknown): Layer {
    return this.#layers[is.integer('layer', layer, 0, this.layers - 1)]!;
  }

  #idle(what: string): void {
    if (this.#busy > 0) throw new Error(`Cannot ${what} while an attendAsync call is reading the cache: await it first`);
  }

  /** Tokens stored in `layer` (default 0). */
  length(layer = 0): number {
    return this.#layer(layer).length;
  }

  /** The k/v of a step as the cache's storage type, checked against the layer's room. */
  #chunk(l: Layer, layer: number, k: unknown, v: unknown): { n: number; k: Storage; v: Storage } {
    const kv = checkKeysValues(k, v, this.kvHeads, this.headDim);
    if (kv.k instanceof Uint16Array && this.dtype !== 'float16') throw is.typeError('k', 'Float32Array (the cache stores float32)', k);
    const n = kv.tokens;
    if (l.length + n > this.maxTokens) {
      throw new RangeError(
        `Expected at most ${this.maxTokens - l.length} more tokens for layer ${layer} (maxTokens ${this.maxTokens}, ${l.length} stored) but received ${n}`,
      );
    }
    const store = (x: Storage): Storage => (this.dtype === 'float16' && x instanceof Float32Array ? toFloat16(x) : x);
    return { n, k: store(kv.k), v: store(kv.v) };
  }

  #grow(l: Layer, need: number): void {
    if (need <= l.capacity || l.retrieval.length === 0) return;
    let cap = Math.max(l.capacity, Math.min(FIRST_CAPACITY, this.maxTokens));
    while (cap < need) cap = Math.min(this.maxTokens, cap * 2);
    const d = this.headDim;
    const k = this.#alloc(l.retrieval.length * cap * d);
    const v = this.#alloc(l.retrieval.length * cap * d);
    for (let r = 0; r < l.retrieval.length; r++) {
      k.set(l.fullK.subarray(r * l.capacity * d, (r * l.capacity + l.length) * d), r * cap * d);
      v.set(l.fullV.subarray(r * l.capacity * d, (r * l.capacity + l.length) * d), r * cap * d);
    }
    l.fullK = k;
    l.fullV = v;
    l.capacity = cap;
  }

  /** Ring slot of position p of a streaming head (p >= sink). */
  #slot(p: number): number {
    return this.sink + ((p - this.sink) % this.#ring);
  }

  #store(l: Layer, n: number, k: Storage, v: Storage): void {
    const d = this.headDim;
    const row = this.kvHeads * d;
    this.#grow(l, l.length + n);
    const slots = this.sink + this.#ring;
    // Only the positions a ring still holds after this step need copying.
    const firstKept = Math.max(l.length, l.length + n - this.#ring);
    for (let t = 0; t < n; t++) {
      const p = l.length + t;
      for (let h = 0; h < this.kvHeads; h++) {
        const from = t * row + h * d;
        const s = l.slot[h]!;
        if (l.flags[h]) {
          if (p >= this.sink && p < firstKept) continue;
          const at = (s * slots + (p < this.sink ? p : this.#slot(p))) * d;
          l.streamK.set(k.subarray(from, from + d), at);
          l.streamV.set(v.subarray(from, from + d), at);
        } else {
          const at = (s * l.capacity + p) * d;
          l.fullK.set(k.subarray(from, from + d), at);
          l.fullV.set(v.subarray(from, from + d), at);
        }
      }
    }
    l.length += n;
    l.ringFloor = Math.max(l.ringFloor, l.length - this.#ring);
  }

  /**
   * Stores the keys and values of `tokens` new positions of `layer` without attending.
   *
   * @param k Keys `[tokens, kvHeads, headDim]`: Float32Array, or Uint16Array float16 bits for a float16 cache.
   * @param v Values, same shape and type.
   * @throws RangeError when the layer would exceed `maxTokens`.
   *
   * @example
   * ```ts
   * cache.append(0, k, v);
   * ```
   */
  append(layer: number, k: Float32Array | Uint16Array, v: Float32Array | Uint16Array): void {
    this.#idle('append');
    const l = this.#layer(layer);
    const c = this.#chunk(l, layer, k, v);
    this.#store(l, c.n, c.k, c.v);
  }

  /** Native arguments attending a chunk's queries over the stored tokens plus the chunk itself. */
  #args(l: Layer, layer: number, q: unknown, chunk: { n: number; k: Storage; v: Storage }, options: CacheAttendOptions) {
    const o = is.options<CacheAttendOptions>('options', options, ATTEND_KEYS);
    const queryHeads = is.integer('queryHeads', o.queryHeads, 1, 65536);
    checkGroup('queryHeads', queryHeads, this.kvHeads);
    const qa = is.float32Array('q', q, chunk.n * queryHeads * this.headDim);
    const scale = o.scale === undefined ? 1 / Math.sqrt(this.headDim) : is.finite('scale', o.scale, { positive: true });
    const threads = is.threads('threads', o.threads);
    const lse = o.lse === undefined ? null : is.float32Array('lse', o.lse, chunk.n * queryHeads);
    const d = this.headDim;
    const pos0 = l.length;
    const slots = this.sink + this.#ring;
    // Buffers: 0/1 full cache, 2/3 streaming slots, 4/5 the new chunk (token-major).
    const rows: number[][] = [];
    const add = (h: number, buf: number, offset: number, stride: number, count: number, first: number) => {
      if (count > 0) rows.push([h, buf, buf + 1, offset, offset, stride, count, first]);
    };
    for (let h = 0; h < this.kvHeads; h++) {
      const s = l.slot[h]!;
      if (l.flags[h]) {
        const base = s * slots * d;
        add(h, 2, base, d, Math.min(this.sink, pos0), 0);
        // Ring positions the first query may see: (pos0 - recent, pos0), past the sink.
        let p = Math.max(this.sink, pos0 - this.recent + 1);
        while (p < pos0) {
          const slot = this.#slot(p);
          const count = Math.min(pos0 - p, slots - slot);
          add(h, 2, base + slot * d, d, count, p);
          p += count;
        }
      } else {
        add(h, 0, s * l.capacity * d, d, pos0, 0);
      }
      add(h, 4, h * d, this.kvHeads * d, chunk.n, pos0);
    }
    const table = new Float64Array(rows.length * 8);
    rows.forEach((r, i) => table.set(r, i * 8));
    const args: AttentionArgs = [
      qa, chunk.n, queryHeads, this.kvHeads, d, pos0, true, pos0 + chunk.n - 1, scale, this.sink, this.recent,
      [l.fullK, l.fullV, l.streamK, l.streamV, chunk.k, chunk.v], table, l.flags, threads,
    ];
    return { args, lse, rows: chunk.n * queryHeads };
  }

  /**
   * One attention step of `layer`: the queries of `tokens` new positions attend causally to every
   * stored position a head keeps plus the new ones (retrieval heads: all; streaming heads: the
   * sink and the last `recent`), then the new keys and values are stored. Chunked prefill, a
   * whole prompt at once and token-by-token decode give the same outputs.
   *
   * @param q Queries `[tokens, queryHeads, headDim]`.
   * @param k Keys of the new tokens `[tokens, kvHeads, headDim]` (after RoPE).
   * @param v Values, same shape.
   * @returns `[tokens, queryHeads, headDim]`.
   *
   * @example
   * ```ts
   * const out = cache.attend(layer, q, k, v, { queryHeads: 32 });
   * ```
   */
  attend(layer: number, q: Float32Array, k: Float32Array | Uint16Array, v: Float32Array | Uint16Array, options: CacheAttendOptions): Float32Array {
    this.#idle('attend');
    const l = this.#layer(layer);
    const chunk = this.#chunk(l, layer, k, v);
    const { args, lse, rows } = this.#args(l, layer, q, chunk, options);
    const out = new Float32Array(rows * this.headDim);
    native().attentionRun(...args, out, lse);
    this.#store(l, chunk.n, chunk.k, chunk.v);
    return out;
  }

  /**
   * {@link DuoKVCache.attend} on a worker thread. The cache is read in place (its buffers are
   * SharedArrayBuffers), so it refuses every other change until the promise settles; the new
   * tokens' k and v are copied at the call, so the caller may reuse its arrays at once.
   *
   * @example
   * ```ts
   * const out = await cache.attendAsync(layer, q, k, v, { queryHeads: 32, threads: 4 });
   * ```
   */
  async attendAsync(
    layer: number,
    q: Float32Array,
    k: Float32Array | Uint16Array,
    v: Float32Array | Uint16Array,
    options: CacheAttendOptions,
  ): Promise<Float32Array> {
    const site = new Error();
    this.#idle('attend');
    const l = this.#layer(layer);
    const given = this.#chunk(l, layer, k, v);
    // Stored when the promise settles: keep the values of now, as attentionAsync lets callers reuse their arrays.
    const chunk = { n: given.n, k: given.k === k ? given.k.slice() : given.k, v: given.v === v ? given.v.slice() : given.v };
    const { args, lse } = this.#args(l, layer, q, chunk, options);
    this.#busy++;
    let r: { output: Float32Array; lse: Float32Array | null };
    try {
      r = await is.atSite(site, () => native().attentionRunAsync(...args, lse !== null));
    } finally {
      this.#busy--;
    }
    if (lse !== null && r.lse !== null) lse.set(r.lse);
    this.#store(l, chunk.n, chunk.k, chunk.v);
    return r.output;
  }

  /**
   * Rolls every layer back to its first `tokens` positions (those above are forgotten). Streaming
   * heads can only go back as far as their ring still holds the window the next query needs:
   * `maxRollback` tokens past a full window.
   *
   * @throws RangeError when a streaming head no longer holds the positions the rollback needs.
   *
   * @example
   * ```ts
   * const mark = cache.length();
   * // … speculative tokens appended …
   * cache.truncate(mark);
   * ```
   */
  truncate(tokens: number): void {
    this.#idle('truncate');
    const n = is.integer('tokens', tokens, 0);
    this.#layers.forEach((l, i) => {
      if (n >= l.length || l.streaming.length === 0) return;
      const held = Math.max(this.sink, l.ringFloor);
      const needed = Math.max(this.sink, n - this.recent + 1);
      // Positions [needed, n) must still be in the ring (none when n <= sink or recent is 1).
      if (needed < n && needed < held) {
        throw new RangeError(
          `Cannot truncate layer ${i} from ${l.length} to ${n} tokens: its streaming heads no longer hold positions ${needed} to ${held - 1} (raise maxRollback, now ${this.maxRollback})`,
        );
      }
    });
    for (const l of this.#layers) {
      l.length = Math.min(l.length, n);
      // Positions from n on are forgotten and will be written afresh.
      l.ringFloor = Math.min(l.ringFloor, l.length);
    }
  }

  /** Forgets every token (buffers are kept for reuse). */
  reset(): void {
    this.#idle('reset');
    for (const l of this.#layers) {
      l.length = 0;
      l.ringFloor = 0;
    }
  }

  /** Bytes per stored element. */
  get #elementBytes(): number {
    return this.dtype === 'float16' ? 2 : 4;
  }

  /**
   * Bytes of keys and values the cache holds for its tokens: retrieval heads `tokens` rows each,
   * streaming heads at most `sink + recent + maxRollback` rows each.
   *
   * @example
   * ```ts
   * console.log(`${(cache.bytesUsed() / cache.bytesFullCache() * 100).toFixed(1)} % of a full cache`);
   * ```
   */
  bytesUsed(): number {
    let rows = 0;
    for (const l of this.#layers) rows += l.retrieval.length * l.length + l.streaming.length * Math.min(l.length, this.sink + this.#ring);
    return rows * 2 * this.headDim * this.#elementBytes;
  }

  /**
   * Bytes a full cache (every head keeps every token) would hold for the same tokens, at the same dtype.
   *
   * @example
   * ```ts
   * const saved = cache.bytesFullCache() - cache.bytesUsed();
   * ```
   */
  bytesFullCache(): number {
    let rows = 0;
    for (const l of this.#layers) rows += this.kvHeads * l.length;
    return rows * 2 * this.headDim * this.#elementBytes;
  }

  /**
   * Bytes of the buffers allocated now (retrieval caches grow by doubling up to `maxTokens`).
   *
   * @example
   * ```ts
   * console.log(cache.bytesAllocated());
   * ```
   */
  bytesAllocated(): number {
    let bytes = 0;
    for (const l of this.#layers) bytes += l.fullK.byteLength + l.fullV.byteLength + l.streamK.byteLength + l.streamV.byteLength;
    return bytes;
  }
}
