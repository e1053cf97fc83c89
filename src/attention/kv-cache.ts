/**
 * DuoAttention's split KV cache: per layer, a full cache for the retrieval heads and sink slots +
 * a ring buffer for the streaming heads, so a streaming head's memory stays fixed however long the
 * context grows and appending never shifts stored rows. Keys are stored as given (after RoPE) with
 * their absolute positions, which is what makes chunked prefill equal one-shot prefill. Storage is
 * in the decode kernel's block layout (kv-layer.ts), as float32, float16, bfloat16 or int8.
 * With `device: 'cuda'` the same cache lives in CUDA device memory (cuda-kv-cache.ts).
 * @module
 */
import { type CacheRunArgs, native } from '../native';
import { ClosedError } from '../toolkit/closing';
import * as is from '../validate';
import { checkGroup, checkKeysValues } from './check';
import { CudaKvStore } from './cuda-kv-cache';
import { toFloat16 } from './float16';
import { HeadPattern } from './head-pattern';
import { FORMAT, type Format, type KvCacheStorage, roundToBf16 } from './kv-format';
import { type KvBuffer, KvLayer, type Storage, retrievalBytes } from './kv-layer';

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
  /** Storage type: `'float32'` (default) or `'float16'` (half the bytes; compute stays float32). See also {@link storage}. */
  dtype?: 'float32' | 'float16';
  /**
   * Storage type, including the compact ones (give this or `dtype`, not two different ones):
   * - `'float32'`, `'float16'`: as `dtype`.
   * - `'bf16'`: bfloat16 (round to nearest even; float32's range, 8 bits of precision), half
   *   the bytes of float32. Keys and values are given as Float32Array and rounded when stored;
   *   a step's own keys are rounded before it attends to them, so every token is seen at the
   *   precision it is stored in, however the prompt is chunked. Over stored blocks the scores
   *   and weighted sums run on vdpbf16ps on AVX-512 BF16 CPUs (Zen 4, Sapphire Rapids), which
   *   rounds the query and the softmax weights to bfloat16 too; the other ISAs compute the
   *   same numbers. Output error vs float32 storage (relative, RMS over the
   *   output, one decode step over 4,096 cached positions, 128 dims): 0.4 % on random
   *   normal data, 0.7 % on data with outlier key channels.
   * - `'int8'`: KIVI / KVQuant-style (../shared/ANCHORS.md): each retrieval head's keys are
   *   quantised per channel over each block of 64 positions (asymmetric, 8 bits, float32 step
   *   and minimum per channel), values per token (symmetric, 8 bits, float32 step); a block is
   *   quantised once its 64 positions are stored, the newest (up to 63) positions stay float32,
   *   like KIVI's full-precision residual. Streaming heads keep their window in float32. The
   *   kernel quantises each query against a block's key steps to 15 bits and the softmax
   *   weights times the value steps to 16 bits and sums exactly in integers (vpdpbusd on
   *   AVX-512 VNNI). About 3.7× fewer bytes than float32 (1.07 bytes per element at 128
   *   dims). Output error vs float32 (same measure): 0.8 % on random data, 1.0 % with outlier
   *   key channels. Unlike the other types, an int8 cache's outputs depend on when blocks
   *   fill up: a chunk attends to its own keys in float32, later steps to their quantised form.
   */
  storage?: KvCacheStorage;
  /**
   * Extra ring slots per streaming head, so that {@link DuoKVCache.truncate} can roll back this
   * many tokens (speculative decoding, retries). Default 64 (at most maxTokens).
   */
  maxRollback?: number;
  /**
   * Where keys and values live and attention runs: `'cpu'` (default), or `'cuda'`, the CUDA
   * device 0's memory, attended by the addon's CUDA decode kernel (split-K over the positions,
   * query heads of a KV head sharing every key load). A `'cuda'` cache stores `'float16'` or
   * `'bf16'` (given as `storage` or `dtype`) with headDim a multiple of 8, takes the same inputs
   * and returns the same outputs as a CPU cache of that storage type (within float32 rounding of
   * the sums), and holds device memory until {@link DuoKVCache.close}. Without a usable device the
   * constructor throws an Error that says why (see {@link NativeInfo.cuda}). `attendAsync` on a
   * `'cuda'` cache waits for the device on the calling thread.
   */
  device?: 'cpu' | 'cuda';
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

const KEYS = ['layers', 'kvHeads', 'headDim', 'headPattern', 'sink', 'recent', 'maxTokens', 'dtype', 'storage', 'maxRollback', 'device'];
const STORAGES = ['float32', 'float16', 'bf16', 'int8'] as const;
const ATTEND_KEYS = ['queryHeads', 'scale', 'threads', 'lse'];

/** One step's arguments, read once and checked before the cache is looked at. */
interface Step {
  layer: number;
  /** New tokens. */
  n: number;
  /** Their keys and values as the cache stores them from (float16 bits for float16, rounded for bf16). */
  k: Storage;
  v: Storage;
}

/** A step that attends: its queries and options too. */
interface AttendStep extends Step {
  q: Float32Array;
  queryHeads: number;
  scale: number;
  threads: number;
  lse: Float32Array | null;
}

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
  /**
   * Element type of the keys and values the cache takes: its storage type for `'float32'` and
   * `'float16'` caches, `'float32'` for `'bf16'` and `'int8'` ones (see {@link storage}).
   */
  readonly dtype: 'float32' | 'float16';
  /** What keys and values are stored as. */
  readonly storage: KvCacheStorage;
  /** Extra ring slots for rollback. */
  readonly maxRollback: number;
  /** The head split in use. */
  readonly headPattern: HeadPattern;
  /** Where keys and values live: `'cpu'` or `'cuda'` (see {@link DuoKVCacheOptions.device}). */
  readonly device: 'cpu' | 'cuda';
  readonly #layers: KvLayer[];
  /** The device storage of a `'cuda'` cache. */
  readonly #cuda: CudaKvStore | null;
  #busy = 0;
  #closed = false;

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
    const dtype = o.dtype === undefined ? undefined : is.oneOf('dtype', o.dtype, ['float32', 'float16'] as const);
    const storage = o.storage === undefined ? undefined : is.oneOf('storage', o.storage, STORAGES);
    if (dtype !== undefined && storage !== undefined && dtype !== storage) {
      throw new TypeError(`Expected one storage type but received dtype '${dtype}' and storage '${storage}'`);
    }
    this.storage = storage ?? dtype ?? 'float32';
    this.dtype = this.storage === 'float16' ? 'float16' : 'float32';
    this.maxRollback = o.maxRollback === undefined ? Math.min(64, this.maxTokens) : is.integer('maxRollback', o.maxRollback, 0, this.maxTokens);
    const pattern: unknown = o.headPattern;
    if (!(pattern instanceof HeadPattern)) throw is.typeError('headPattern', 'HeadPattern', pattern);
    if (pattern.layers !== this.layers || pattern.kvHeads !== this.kvHeads) {
      throw new RangeError(
        `Expected headPattern of ${this.layers} layers × ${this.kvHeads} kvHeads but received ${pattern.layers} × ${pattern.kvHeads}`,
      );
    }
    this.headPattern = pattern;
    this.device = o.device === undefined ? 'cpu' : is.oneOf('device', o.device, ['cpu', 'cuda'] as const);
    if (this.device === 'cuda') {
      if (this.storage !== 'float16' && this.storage !== 'bf16') throw is.rangeError('storage', "'float16' or 'bf16' with device 'cuda'", this.storage);
      if (this.headDim % 8 !== 0) throw is.rangeError('headDim', "a multiple of 8 with device 'cuda'", this.headDim);
      const streaming = new Uint8Array(this.layers * this.kvHeads);
      for (let l = 0; l < this.layers; l++) streaming.set(pattern.streamingFlags(l).map((f) => (f ? 1 : 0)), l * this.kvHeads);
      this.#cuda = new CudaKvStore({
        layers: this.layers, kvHeads: this.kvHeads, headDim: this.headDim, sink: this.sink, recent: this.recent,
        ring: this.recent + this.maxRollback, maxTokens: this.maxTokens, storage: this.storage, streaming,
      });
      this.#layers = [];
      return;
    }
    this.#cuda = null;
    const geometry = {
      kvHeads: this.kvHeads, headDim: this.headDim, sink: this.sink, recent: this.recent, ring: this.recent + this.maxRollback,
      maxTokens: this.maxTokens, maxRollback: this.maxRollback, storage: this.storage,
      alloc: (format: Format, elements: number) => this.#alloc(format, elements),
    };
    this.#layers = Array.from({ length: this.layers }, (_, l) => new KvLayer(geometry, pattern.streamingFlags(l)));
  }

  #alloc(format: Format, elements: number): KvBuffer {
    const bytes = format === FORMAT.blockI8 ? 1 : format === FORMAT.blockF32 || format === FORMAT.denseF32 ? 4 : 2;
    let buffer: SharedArrayBuffer;
    try {
      buffer = new SharedArrayBuffer(elements * bytes);
    } catch (err) {
      throw new RangeError(
        `Could not allocate ${elements * bytes} bytes of KV cache (kvHeads ${this.kvHeads} × headDim ${this.headDim} × sink + recent + maxRollback or maxTokens rows)`,
        { cause: err },
      );
    }
    return bytes === 4 ? new Float32Array(buffer) : bytes === 2 ? new Uint16Array(buffer) : new Uint8Array(buffer);
  }

  #layer(layer: unknown): KvLayer {
    return this.#layers[is.integer('layer', layer, 0, this.layers - 1)]!;
  }

  #idle(what: string): void {
    if (this.#closed) throw new ClosedError('DuoKVCache');
    if (this.#busy > 0) throw new Error(`Cannot ${what} while an attendAsync call is reading the cache: await it first`);
  }

  /** Tokens stored in `layer` (default 0). */
  length(layer = 0): number {
    if (this.#cuda !== null) return this.#cuda.length(is.integer('layer', layer, 0, this.layers - 1));
    return this.#layer(layer).length;
  }

  /**
   * The k/v of a step, checked and in the cache's storage type. Reads no state of the cache:
   * whatever a caller's code does while its arguments are read comes before the step.
   */
  #step(layer: unknown, k: unknown, v: unknown): Step {
    const index = is.integer('layer', layer, 0, this.layers - 1);
    const kv = checkKeysValues(k, v, this.kvHeads, this.headDim);
    if (kv.k instanceof Uint16Array && this.dtype !== 'float16') {
      throw is.typeError('k', `Float32Array (the cache stores ${this.storage} from float32)`, k);
    }
    const store = (x: Storage): Storage =>
      this.storage === 'float16' && x instanceof Float32Array ? toFloat16(x) : this.storage === 'bf16' ? roundToBf16(x as Float32Array) : x;
    return { layer: index, n: kv.tokens, k: store(kv.k), v: store(kv.v) };
  }

  /** A step plus its queries and every option, each option read once. */
  #attendStep(layer: unknown, q: unknown, k: unknown, v: unknown, options: CacheAttendOptions): AttendStep {
    const o = is.options<CacheAttendOptions>('options', options, ATTEND_KEYS);
    // A snapshot: a getter runs once, here, before anything else (issue 20, item 7).
    const given = { queryHeads: o.queryHeads, scale: o.scale, threads: o.threads, lse: o.lse };
    const step = this.#step(layer, k, v);
    const queryHeads = is.integer('queryHeads', given.queryHeads, 1, 65536);
    checkGroup('queryHeads', queryHeads, this.kvHeads);
    // Fields named one by one: an object spread here cost more than the rest of a decode step's JS.
    return {
      layer: step.layer, n: step.n, k: step.k, v: step.v,
      q: is.float32Array('q', q, step.n * queryHeads * this.headDim),
      queryHeads,
      scale: given.scale === undefined ? 1 / Math.sqrt(this.headDim) : is.finite('scale', given.scale, { positive: true }),
      threads: is.threads('threads', given.threads),
      lse: given.lse === undefined ? null : is.float32Array('lse', given.lse, step.n * queryHeads),
    };
  }

  /** The layer of a checked step (null on the device), once the cache is idle and the layer has room for it. */
  #begin(what: string, step: Step): KvLayer | null {
    this.#idle(what);
    const l = this.#cuda === null ? this.#layers[step.layer]! : null;
    const length = l === null ? this.#cuda!.length(step.layer) : l.length;
    if (length + step.n > this.maxTokens) {
      throw new RangeError(
        `Expected at most ${this.maxTokens - length} more tokens for layer ${step.layer} (maxTokens ${this.maxTokens}, ${length} stored) but received ${step.n}`,
      );
    }
    return l;
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
    const step = this.#step(layer, k, v);
    const l = this.#begin('append', step);
    if (l === null) this.#cuda!.append(step);
    else l.store(step.n, step.k, step.v, write);
  }

  /** Native arguments attending a step's queries over the stored tokens plus the step's own. */
  #args(l: KvLayer, s: AttendStep): CacheRunArgs {
    const { buffers, table } = l.segments(s.n, s.k, s.v, s.k instanceof Uint16Array ? FORMAT.denseF16 : FORMAT.denseF32);
    const pos0 = l.length;
    return [
      s.q, s.n, s.queryHeads, this.kvHeads, this.headDim, pos0, true, pos0 + s.n - 1, s.scale, this.sink, this.recent,
      buffers, table, l.flags, s.threads,
    ];
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
    const step = this.#attendStep(layer, q, k, v, options);
    const l = this.#begin('attend', step);
    if (l === null) return this.#cuda!.attend(step, step.q, step.queryHeads, step.scale, step.lse);
    const out = new Float32Array(step.n * step.queryHeads * this.headDim);
    native().attentionCacheRun(...this.#args(l, step), out, step.lse);
    l.store(step.n, step.k, step.v, write);
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
    const step = this.#attendStep(layer, q, k, v, options);
    if (this.#cuda !== null) {
      this.#begin('attend', step);
      return this.#cuda.attend(step, step.q, step.queryHeads, step.scale, step.lse);
    }
    // Stored when the promise settles: keep the values of now, as attentionAsync lets callers reuse their arrays.
    if (step.k === k) step.k = step.k.slice();
    if (step.v === v) step.v = step.v.slice();
    const l = this.#begin('attend', step)!;
    const args = this.#args(l, step);
    this.#busy++;
    let r: { output: Float32Array; lse: Float32Array | null };
    try {
      r = await is.atSite(site, () => native().attentionCacheRunAsync(...args, step.lse !== null));
    } finally {
      this.#busy--;
    }
    if (step.lse !== null && r.lse !== null) step.lse.set(r.lse);
    l.store(step.n, step.k, step.v, write);
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
    const n = is.integer('tokens', tokens, 0);
    this.#idle('truncate');
    for (let i = 0; i < this.layers; i++) {
      const cuda = this.#cuda;
      const missing = cuda === null ? this.#layers[i]!.missingForRollback(n) : cuda.missingForRollback(i, n);
      if (missing !== undefined) {
        throw new RangeError(
          `Cannot truncate layer ${i} from ${this.length(i)} to ${n} tokens: its streaming heads no longer hold positions ${missing.needed} to ${missing.held - 1} (raise maxRollback, now ${this.maxRollback})`,
        );
      }
    }
    if (this.#cuda !== null) this.#cuda.truncate(n);
    for (const l of this.#layers) l.truncate(n);
  }

  /**
   * The host memory `layer`'s retrieval heads are stored in (keys, then values; whole buffers,
   * empty for a `'cuda'` cache): benchmarks read these very bytes for their bandwidth floor, as
   * equal allocations can read at different speeds on a VM.
   * @internal
   */
  storageOf(layer: number): ArrayBufferView[] {
    return this.#cuda === null ? this.#layer(layer).retrievalBuffers() : [];
  }

  /** Forgets every token (buffers are kept for reuse). */
  reset(): void {
    this.#idle('reset');
    this.#cuda?.truncate(0);
    for (const l of this.#layers) l.truncate(0);
  }

  /**
   * Bytes of keys and values the cache holds for its tokens: retrieval heads `tokens` rows each,
   * streaming heads at most `sink + recent + maxRollback` rows each, at the storage type's size
   * (int8: its quantised blocks with their steps, plus its float32 rows; its streaming heads float32).
   *
   * @example
   * ```ts
   * console.log(`${(cache.bytesUsed() / cache.bytesFullCache() * 100).toFixed(1)} % of a full cache`);
   * ```
   */
  bytesUsed(): number {
    if (this.#cuda !== null) return this.#cuda.bytesUsed();
    let bytes = 0;
    for (const l of this.#layers) bytes += l.bytesHeld();
    return bytes;
  }

  /**
   * Bytes a full cache (every head keeps every token) would hold for the same tokens, at the same storage type.
   *
   * @example
   * ```ts
   * const saved = cache.bytesFullCache() - cache.bytesUsed();
   * ```
   */
  bytesFullCache(): number {
    if (this.#cuda !== null) return this.#cuda.bytesFullCache();
    let bytes = 0;
    for (const l of this.#layers) bytes += this.kvHeads * retrievalBytes(this.storage, l.length, this.headDim);
    return bytes;
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
    if (this.#cuda !== null) return this.#cuda.bytesAllocated();
    let bytes = 0;
    for (const l of this.#layers) bytes += l.bytesAllocated();
    return bytes;
  }

  /** Whether {@link DuoKVCache.close} has run. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Releases the cache: a `'cuda'` cache frees its device memory at once; a CPU cache's buffers
   * go with the garbage collector. Idempotent; later appends, attends, truncates and resets
   * throw {@link ClosedError}.
   *
   * @example
   * ```ts
   * const cache = new DuoKVCache({ ...options, storage: 'float16', device: 'cuda' });
   * try { cache.attend(0, q, k, v, { queryHeads: 32 }); } finally { cache.close(); }
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cuda?.close();
  }

  /** {@link DuoKVCache.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Stores a step's rows (kv-layer.ts builds the table, the native side checks and writes it). */
function write(buffers: KvBuffer[], table: Float64Array, headDim: number): void {
  native().attentionKvWrite(buffers, table, headDim);
}
