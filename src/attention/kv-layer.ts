/**
 * Storage of one layer of a `DuoKVCache`: a full cache for the retrieval heads (grown by
 * doubling) and, for the streaming heads, `sink` fixed slots + a ring of `recent + maxRollback`
 * slots, plus the segment table that tells the native kernel where each head's visible keys lie
 * and the write table that stores a step's keys and values.
 *
 * Both live in the kernel's block layout (native/attention/kernels.h): blocks of 64 positions,
 * keys dimension-major so that one vector instruction scores 16 keys. A retrieval head is a run
 * of blocks (position p in block p / 64, lane p % 64); a streaming head has ceil(sink / 64) sink
 * blocks (position p < sink at lane p) and ceil(ring / 64) ring blocks (ring slot r at block r /
 * 64, lane r % 64). An int8 cache quantises a retrieval head's block once its 64 positions are
 * all stored (KIVI's grouping, ../shared/ANCHORS.md); until then they stay float32 in a small
 * per-head ring of rows (`1 + ceil(maxRollback / 64)` blocks of them), which the kernel reads as
 * a dense segment and a rollback restores from. Its streaming heads keep their window in float32
 * blocks: a few hundred positions, and the ring can then be rolled back exactly.
 * Pure bookkeeping: every argument is already checked by the cache.
 * @module
 */
import {
  BLOCK, FORMAT, type Format, type KvCacheStorage, dequantiseBlock, keyBlockElements, valueBlockElements,
} from './kv-format';

/** Keys or values as a step gives them (float16 bits in a Uint16Array). @internal */
export type Storage = Float32Array | Uint16Array;
/** A buffer of the cache: float32, 16-bit words (float16 or bfloat16 bits), or int8 blocks. @internal */
export type KvBuffer = Float32Array | Uint16Array | Uint8Array;

/** What every layer of one cache shares. @internal */
export interface KvGeometry {
  kvHeads: number;
  headDim: number;
  sink: number;
  recent: number;
  /** Ring slots of a streaming head: recent + maxRollback. */
  ring: number;
  maxTokens: number;
  maxRollback: number;
  storage: KvCacheStorage;
  /** Zeroed storage of `elements` elements of a format's type, on a SharedArrayBuffer. */
  alloc(format: Format, elements: number): KvBuffer;
}

/** Rows of the full cache allocated at the first store (then doubled up to maxTokens). */
const FIRST_CAPACITY = 256;

const RETRIEVAL_FORMAT: Record<KvCacheStorage, Format> = {
  float32: FORMAT.blockF32, float16: FORMAT.blockF16, bf16: FORMAT.blockBf16, int8: FORMAT.blockI8,
};
const STREAMING_FORMAT: Record<KvCacheStorage, Format> = {
  float32: FORMAT.blockF32, float16: FORMAT.blockF16, bf16: FORMAT.blockBf16, int8: FORMAT.blockF32,
};

/** Columns of a segment row: head, format, k buffer, v buffer, k offset, v offset, stride, count, first, lane. */
const SEGMENT_COLUMNS = 10;
/** Columns of a write row: format, src k, src v, src offset, src stride, count, dst k, dst v, dst k offset, dst v offset, lane. */
const WRITE_COLUMNS = 11;

/** Buffer indices of the kernel's lists. */
const FULL_K = 0;
const STREAM_K = 2;
const CHUNK_K = 4;
const SHADOW_K = 6;

/**
 * One layer's keys and values. Positions are absolute: position `p` of a streaming head sits in
 * sink slot `p` when `p < sink`, else in ring slot `(p - sink) mod ring`.
 * @internal
 */
export class KvLayer {
  /** KV heads with a full cache, ascending. */
  readonly retrieval: number[] = [];
  /** KV heads with sink + ring, ascending. */
  readonly streaming: number[] = [];
  /** 1 = streaming, per KV head (the kernel's flags). */
  readonly flags: Uint8Array;
  /** Index of each KV head inside its group. */
  readonly #slot: Int32Array;
  readonly #g: KvGeometry;
  readonly #fullFormat: Format;
  readonly #streamFormat: Format;
  /** Blocks each retrieval head has room for. */
  #capacity = 0;
  #fullK: KvBuffer; // [retrieval.length, capacity, key block]
  #fullV: KvBuffer;
  readonly #sinkBlocks: number;
  readonly #streamBlocks: number; // sink blocks + ring blocks, per streaming head
  readonly #streamK: KvBuffer; // [streaming.length, streamBlocks, key block]
  readonly #streamV: KvBuffer;
  /** int8: float32 rows of each retrieval head's latest positions, [retrieval.length, shadowRows, headDim]. */
  readonly #shadowRows: number;
  readonly #shadowK: Float32Array;
  readonly #shadowV: Float32Array;
  /** Tokens stored. */
  length = 0;
  // Oldest position whose ring slot still holds it: writes only ever raise it (a rollback leaves
  // the slots of forgotten positions overwritten), so it is not length - ring after a truncate.
  #ringFloor = 0;
  // The same for the int8 float32 rows.
  #shadowFloor = 0;

  constructor(g: KvGeometry, streamingFlags: readonly boolean[]) {
    this.#g = g;
    this.flags = Uint8Array.from(streamingFlags, (f) => (f ? 1 : 0));
    this.#slot = new Int32Array(g.kvHeads);
    this.flags.forEach((f, h) => {
      const group = f ? this.streaming : this.retrieval;
      this.#slot[h] = group.length;
      group.push(h);
    });
    this.#fullFormat = RETRIEVAL_FORMAT[g.storage];
    this.#streamFormat = STREAMING_FORMAT[g.storage];
    this.#sinkBlocks = Math.ceil(g.sink / BLOCK);
    this.#streamBlocks = this.streaming.length === 0 ? 0 : this.#sinkBlocks + Math.ceil(g.ring / BLOCK);
    const d = g.headDim;
    const blocks = this.streaming.length * this.#streamBlocks;
    this.#fullK = g.alloc(this.#fullFormat, 0);
    this.#fullV = g.alloc(this.#fullFormat, 0);
    this.#streamK = g.alloc(this.#streamFormat, blocks * keyBlockElements(this.#streamFormat, d));
    this.#streamV = g.alloc(this.#streamFormat, blocks * valueBlockElements(this.#streamFormat, d));
    const int8 = g.storage === 'int8' && this.retrieval.length > 0;
    this.#shadowRows = int8 ? BLOCK * (1 + Math.ceil(g.maxRollback / BLOCK)) : 0;
    this.#shadowK = g.alloc(FORMAT.denseF32, this.retrieval.length * this.#shadowRows * d) as Float32Array;
    this.#shadowV = g.alloc(FORMAT.denseF32, this.retrieval.length * this.#shadowRows * d) as Float32Array;
  }

  get #int8(): boolean {
    return this.#shadowRows > 0;
  }

  #grow(need: number): void {
    const { maxTokens, headDim: d } = this.#g;
    // The cache checks room first; past maxTokens the doubling below would never end.
    if (need > maxTokens) throw new RangeError(`KV layer asked to hold ${need} tokens, past maxTokens ${maxTokens}`);
    const blocks = Math.ceil(need / BLOCK);
    if (blocks <= this.#capacity || this.retrieval.length === 0) return;
    const most = Math.ceil(maxTokens / BLOCK);
    let cap = Math.max(this.#capacity, Math.min(FIRST_CAPACITY / BLOCK, most));
    while (cap < blocks) cap = Math.min(most, cap * 2);
    const kb = keyBlockElements(this.#fullFormat, d);
    const vb = valueBlockElements(this.#fullFormat, d);
    const k = this.#g.alloc(this.#fullFormat, this.retrieval.length * cap * kb);
    const v = this.#g.alloc(this.#fullFormat, this.retrieval.length * cap * vb);
    const used = Math.ceil(this.length / BLOCK);
    for (let r = 0; r < this.retrieval.length; r++) {
      k.set(this.#fullK.subarray(r * this.#capacity * kb, (r * this.#capacity + used) * kb), r * cap * kb);
      v.set(this.#fullV.subarray(r * this.#capacity * vb, (r * this.#capacity + used) * vb), r * cap * vb);
    }
    this.#fullK = k;
    this.#fullV = v;
    this.#capacity = cap;
  }

  /** Element offsets of block `b` of retrieval slot `s`. */
  #fullBlock(s: number, b: number): [number, number] {
    const d = this.#g.headDim;
    const at = s * this.#capacity + b;
    return [at * keyBlockElements(this.#fullFormat, d), at * valueBlockElements(this.#fullFormat, d)];
  }

  /** Element offsets of block `b` of streaming slot `s` (sink blocks first, then the ring's). */
  #streamBlock(s: number, b: number): [number, number] {
    const d = this.#g.headDim;
    const at = s * this.#streamBlocks + b;
    return [at * keyBlockElements(this.#streamFormat, d), at * valueBlockElements(this.#streamFormat, d)];
  }

  /** Block and lane of position p of a streaming head (p < sink, or still in the ring). */
  #streamPlace(p: number): { block: number; lane: number } {
    const { sink, ring } = this.#g;
    if (p < sink) return { block: Math.floor(p / BLOCK), lane: p % BLOCK };
    const r = (p - sink) % ring;
    return { block: this.#sinkBlocks + Math.floor(r / BLOCK), lane: r % BLOCK };
  }

  /**
   * The native write table for `n` new token-major rows `[n, kvHeads, headDim]` (buffers: the
   * layer's, then the rows' k and v), in the order the writes must happen.
   */
  #writes(n: number): Float64Array {
    const { kvHeads, headDim: d, sink, ring } = this.#g;
    const rows: number[] = [];
    const add = (format: Format, src: number, srcOffset: number, srcStride: number, count: number, dst: number, dk: number, dv: number, lane: number) => {
      if (count > 0) rows.push(format, src, src + 1, srcOffset, srcStride, count, dst, dst + 1, dk, dv, lane);
    };
    const from = this.length;
    const row = kvHeads * d;
    for (let h = 0; h < kvHeads; h++) {
      const s = this.#slot[h]!;
      const src = (p: number) => (p - from) * row + h * d;
      if (this.flags[h]) {
        // Sink positions, then the ring positions it keeps after this step, in runs of slots.
        let p = from;
        for (; p < Math.min(sink, from + n); ) {
          const { block, lane } = this.#streamPlace(p);
          const count = Math.min(from + n, sink) - p;
          const [dk, dv] = this.#streamBlock(s, block);
          add(this.#streamFormat, CHUNK_K, src(p), row, count, STREAM_K, dk, dv, lane);
          p += count;
        }
        p = Math.max(p, from + n - ring);
        while (p < from + n) {
          const r = (p - sink) % ring;
          const count = Math.min(from + n - p, ring - r);
          const { block, lane } = this.#streamPlace(p);
          const [dk, dv] = this.#streamBlock(s, block);
          add(this.#streamFormat, CHUNK_K, src(p), row, count, STREAM_K, dk, dv, lane);
          p += count;
        }
      } else if (!this.#int8) {
        const [dk, dv] = this.#fullBlock(s, Math.floor(from / BLOCK));
        add(this.#fullFormat, CHUNK_K, src(from), row, n, FULL_K, dk, dv, from % BLOCK);
      } else {
        // Rows into the float32 ring a block's worth at a time; a completed block is quantised
        // from there before later rows can overwrite it.
        const shadow = s * this.#shadowRows * d;
        for (let p = from; p < from + n; ) {
          const end = Math.min(from + n, (Math.floor(p / BLOCK) + 1) * BLOCK);
          add(FORMAT.denseF32, CHUNK_K, src(p), row, end - p, SHADOW_K, shadow, shadow, p % this.#shadowRows);
          if (end % BLOCK === 0) {
            const first = end - BLOCK;
            const [dk, dv] = this.#fullBlock(s, first / BLOCK);
            add(FORMAT.blockI8, SHADOW_K, shadow + (first % this.#shadowRows) * d, d, BLOCK, FULL_K, dk, dv, 0);
          }
          p = end;
        }
      }
    }
    return Float64Array.from(rows);
  }

  /** The retrieval heads' key and value storage, whole buffers (what a decode step reads in place). */
  retrievalBuffers(): KvBuffer[] {
    return [this.#fullK, this.#fullV];
  }

  /** The layer's buffers in the kernel's order, then a step's k and v (and int8's float32 rows). */
  #buffers(k: KvBuffer, v: KvBuffer): KvBuffer[] {
    const list: KvBuffer[] = [this.#fullK, this.#fullV, this.#streamK, this.#streamV, k, v];
    if (this.#int8) list.push(this.#shadowK, this.#shadowV);
    return list;
  }

  /**
   * Appends `n` token-major rows `[n, kvHeads, headDim]` of keys and values: the buffers grow
   * if they must, then `write` (the native attentionKvWrite) stores them.
   */
  store(n: number, k: Storage, v: Storage, write: (buffers: KvBuffer[], table: Float64Array, headDim: number) => void): void {
    this.#grow(this.length + n);
    write(this.#buffers(k, v), this.#writes(n), this.#g.headDim);
    this.length += n;
    this.#ringFloor = Math.max(this.#ringFloor, this.length - this.#g.ring);
    if (this.#int8) this.#shadowFloor = Math.max(this.#shadowFloor, this.length - this.#shadowRows);
  }

  /**
   * The kernel's buffers for a step whose `n` new tokens are `k`/`v` (format `chunkFormat`) and
   * the segment table, 10 numbers per run of keys (head, format, key buffer, value buffer, key
   * offset, value offset, stride, count, first position, lane).
   */
  segments(n: number, k: KvBuffer, v: KvBuffer, chunkFormat: Format): { buffers: KvBuffer[]; table: Float64Array } {
    const { kvHeads, headDim: d, sink, recent, ring } = this.#g;
    const pos0 = this.length;
    const rows: number[] = [];
    const add = (h: number, format: Format, buf: number, offsets: [number, number], stride: number, count: number, first: number, lane: number) => {
      if (count > 0) rows.push(h, format, buf, buf + 1, offsets[0], offsets[1], stride, count, first, lane);
    };
    for (let h = 0; h < kvHeads; h++) {
      const s = this.#slot[h]!;
      if (this.flags[h]) {
        add(h, this.#streamFormat, STREAM_K, this.#streamBlock(s, 0), 0, Math.min(sink, pos0), 0, 0);
        // Ring positions the first query may see: (pos0 - recent, pos0), past the sink.
        let p = Math.max(sink, pos0 - recent + 1);
        while (p < pos0) {
          const r = (p - sink) % ring;
          const count = Math.min(pos0 - p, ring - r);
          const { block, lane } = this.#streamPlace(p);
          add(h, this.#streamFormat, STREAM_K, this.#streamBlock(s, block), 0, count, p, lane);
          p += count;
        }
      } else if (!this.#int8) {
        add(h, this.#fullFormat, FULL_K, this.#fullBlock(s, 0), 0, pos0, 0, 0);
      } else {
        const quantised = Math.floor(pos0 / BLOCK) * BLOCK;
        add(h, FORMAT.blockI8, FULL_K, this.#fullBlock(s, 0), 0, quantised, 0, 0);
        const at = (s * this.#shadowRows + (quantised % this.#shadowRows)) * d;
        add(h, FORMAT.denseF32, SHADOW_K, [at, at], d, pos0 - quantised, quantised, 0);
      }
      add(h, chunkFormat, CHUNK_K, [h * d, h * d], kvHeads * d, n, pos0, 0);
    }
    return { buffers: this.#buffers(k, v), table: Float64Array.from(rows) };
  }

  /**
   * Positions `[needed, held)` a rollback to `tokens` needs but the ring no longer holds, or
   * undefined when it holds them all.
   */
  missingForRollback(tokens: number): { needed: number; held: number } | undefined {
    if (tokens >= this.length || this.streaming.length === 0) return undefined;
    const { sink, recent } = this.#g;
    const held = Math.max(sink, this.#ringFloor);
    const needed = Math.max(sink, tokens - recent + 1);
    // Positions [needed, tokens) must still be in the ring (none when tokens <= sink or recent is 1).
    return needed < tokens && needed < held ? { needed, held } : undefined;
  }

  /**
   * Forgets the positions from `tokens` on (they will be written afresh). An int8 layer's
   * partly kept block becomes float32 rows again: from its float32 copy while the ring of rows
   * still holds it, else dequantised (those positions are then quantised a second time when the
   * block fills up again).
   */
  truncate(tokens: number): void {
    const keep = Math.min(this.length, tokens);
    if (this.#int8 && keep < this.length) {
      const first = Math.floor(keep / BLOCK) * BLOCK;
      if (first < this.#shadowFloor && keep > first) {
        const d = this.#g.headDim;
        for (let s = 0; s < this.retrieval.length; s++) {
          const [dk, dv] = this.#fullBlock(s, first / BLOCK);
          const at = (s * this.#shadowRows + (first % this.#shadowRows)) * d;
          dequantiseBlock(this.#fullK as Uint8Array, dk, this.#fullV as Uint8Array, dv, d, 0, keep - first, this.#shadowK, this.#shadowV, at);
        }
      }
      this.#shadowFloor = Math.min(this.#shadowFloor, first);
    }
    this.length = keep;
    this.#ringFloor = Math.min(this.#ringFloor, this.length);
  }

  /** Bytes of keys and values held for the layer's tokens. */
  bytesHeld(): number {
    const { sink, ring, headDim: d, storage } = this.#g;
    const streamRows = Math.min(this.length, sink + ring);
    const streamBytes = this.streaming.length * streamRows * 2 * d * (this.#streamFormat === FORMAT.blockF32 ? 4 : 2);
    return streamBytes + this.retrieval.length * retrievalBytes(storage, this.length, d);
  }

  /** Bytes of the buffers allocated now. */
  bytesAllocated(): number {
    return [this.#fullK, this.#fullV, this.#streamK, this.#streamV, this.#shadowK, this.#shadowV].reduce((a, b) => a + b.byteLength, 0);
  }
}

/**
 * Bytes of keys and values one retrieval head holds for `tokens` positions: 2 × headDim ×
 * element size per position; int8 counts its complete blocks (codes, key steps and minima,
 * value steps) and its float32 rows. @internal
 */
export function retrievalBytes(storage: KvCacheStorage, tokens: number, headDim: number): number {
  if (storage !== 'int8') return tokens * 2 * headDim * (storage === 'float32' ? 4 : 2);
  const blocks = Math.floor(tokens / BLOCK);
  const block = keyBlockElements(FORMAT.blockI8, headDim) + valueBlockElements(FORMAT.blockI8, headDim);
  return blocks * block + (tokens - blocks * BLOCK) * 2 * headDim * 4;
}
