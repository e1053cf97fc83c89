/**
 * Storage of one layer of a `DuoKVCache`: a full cache for the retrieval heads (grown by
 * doubling) and, for the streaming heads, `sink` fixed slots + a ring of `recent + maxRollback`
 * slots, plus the segment table that tells the native kernel where each head's visible keys lie.
 * Pure bookkeeping: every argument is already checked by the cache.
 * @module
 */

/** Keys or values as stored: float32, or float16 bits. @internal */
export type Storage = Float32Array | Uint16Array;

/** What every layer of one cache shares. @internal */
export interface KvGeometry {
  kvHeads: number;
  headDim: number;
  sink: number;
  recent: number;
  /** Ring slots of a streaming head: recent + maxRollback. */
  ring: number;
  maxTokens: number;
  /** Zeroed storage of `elements` elements, on a SharedArrayBuffer. */
  alloc(elements: number): Storage;
}

/** Rows of the full cache allocated at the first store (then doubled up to maxTokens). */
const FIRST_CAPACITY = 256;

/**
 * One layer's keys and values. Positions are absolute: position `p` of a streaming head sits in
 * sink slot `p` when `p < sink`, else in ring slot `sink + (p - sink) mod ring`.
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
  /** Tokens the full cache has room for. */
  #capacity = 0;
  #fullK: Storage; // [retrieval.length, capacity, headDim]
  #fullV: Storage;
  readonly #streamK: Storage; // [streaming.length, sink + ring, headDim]
  readonly #streamV: Storage;
  /** Tokens stored. */
  length = 0;
  // Oldest position whose ring slot still holds it: writes only ever raise it (a rollback leaves
  // the slots of forgotten positions overwritten), so it is not length - ring after a truncate.
  #ringFloor = 0;

  constructor(g: KvGeometry, streamingFlags: readonly boolean[]) {
    this.#g = g;
    this.flags = Uint8Array.from(streamingFlags, (f) => (f ? 1 : 0));
    this.#slot = new Int32Array(g.kvHeads);
    this.flags.forEach((f, h) => {
      const group = f ? this.streaming : this.retrieval;
      this.#slot[h] = group.length;
      group.push(h);
    });
    const elements = this.streaming.length * (g.sink + g.ring) * g.headDim;
    this.#fullK = g.alloc(0);
    this.#fullV = g.alloc(0);
    this.#streamK = g.alloc(elements);
    this.#streamV = g.alloc(elements);
  }

  /** Ring slot of position p of a streaming head (p >= sink). */
  #ringSlot(p: number): number {
    return this.#g.sink + ((p - this.#g.sink) % this.#g.ring);
  }

  #grow(need: number): void {
    if (need <= this.#capacity || this.retrieval.length === 0) return;
    const { maxTokens, headDim: d } = this.#g;
    // The cache checks room first; past maxTokens the doubling below would never end.
    if (need > maxTokens) throw new RangeError(`KV layer asked to hold ${need} tokens, past maxTokens ${maxTokens}`);
    let cap = Math.max(this.#capacity, Math.min(FIRST_CAPACITY, maxTokens));
    while (cap < need) cap = Math.min(maxTokens, cap * 2);
    const k = this.#g.alloc(this.retrieval.length * cap * d);
    const v = this.#g.alloc(this.retrieval.length * cap * d);
    for (let r = 0; r < this.retrieval.length; r++) {
      const from = r * this.#capacity * d;
      k.set(this.#fullK.subarray(from, from + this.length * d), r * cap * d);
      v.set(this.#fullV.subarray(from, from + this.length * d), r * cap * d);
    }
    this.#fullK = k;
    this.#fullV = v;
    this.#capacity = cap;
  }

  /** Appends `n` token-major rows `[n, kvHeads, headDim]` of keys and values. */
  store(n: number, k: Storage, v: Storage): void {
    const { kvHeads, headDim: d, sink, ring } = this.#g;
    const row = kvHeads * d;
    this.#grow(this.length + n);
    const slots = sink + ring;
    // Only the positions a ring still holds after this step need copying.
    const firstKept = Math.max(this.length, this.length + n - ring);
    for (let t = 0; t < n; t++) {
      const p = this.length + t;
      for (let h = 0; h < kvHeads; h++) {
        const from = t * row + h * d;
        const s = this.#slot[h]!;
        if (this.flags[h]) {
          if (p >= sink && p < firstKept) continue;
          const at = (s * slots + (p < sink ? p : this.#ringSlot(p))) * d;
          this.#streamK.set(k.subarray(from, from + d), at);
          this.#streamV.set(v.subarray(from, from + d), at);
        } else {
          const at = (s * this.#capacity + p) * d;
          this.#fullK.set(k.subarray(from, from + d), at);
          this.#fullV.set(v.subarray(from, from + d), at);
        }
      }
    }
    this.length += n;
    this.#ringFloor = Math.max(this.#ringFloor, this.length - ring);
  }

  /**
   * The kernel's buffers for a step whose `n` new tokens are `k`/`v`: 0/1 the full cache, 2/3 the
   * streaming slots, 4/5 the new chunk; and the segment table, 8 numbers per contiguous run of
   * keys (head, key buffer, value buffer, key offset, value offset, stride, count, first position).
   */
  segments(n: number, k: Storage, v: Storage): { buffers: Storage[]; table: Float64Array } {
    const { kvHeads, headDim: d, sink, recent, ring } = this.#g;
    const pos0 = this.length;
    const slots = sink + ring;
    const rows: number[][] = [];
    const add = (h: number, buf: number, offset: number, stride: number, count: number, first: number) => {
      if (count > 0) rows.push([h, buf, buf + 1, offset, offset, stride, count, first]);
    };
    for (let h = 0; h < kvHeads; h++) {
      const s = this.#slot[h]!;
      if (this.flags[h]) {
        const base = s * slots * d;
        add(h, 2, base, d, Math.min(sink, pos0), 0);
        // Ring positions the first query may see: (pos0 - recent, pos0), past the sink.
        let p = Math.max(sink, pos0 - recent + 1);
        while (p < pos0) {
          const slot = this.#ringSlot(p);
          const count = Math.min(pos0 - p, slots - slot);
          add(h, 2, base + slot * d, d, count, p);
          p += count;
        }
      } else {
        add(h, 0, s * this.#capacity * d, d, pos0, 0);
      }
      add(h, 4, h * d, kvHeads * d, n, pos0);
    }
    const table = new Float64Array(rows.length * 8);
    rows.forEach((r, i) => table.set(r, i * 8));
    return { buffers: [this.#fullK, this.#fullV, this.#streamK, this.#streamV, k, v], table };
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

  /** Forgets the positions from `tokens` on (they will be written afresh). */
  truncate(tokens: number): void {
    this.length = Math.min(this.length, tokens);
    this.#ringFloor = Math.min(this.#ringFloor, this.length);
  }

  /** Rows of keys (or of values) held: retrieval heads every token, streaming heads at most their slots. */
  rowsHeld(): number {
    const { sink, ring } = this.#g;
    return this.retrieval.length * this.length + this.streaming.length * Math.min(this.length, sink + ring);
  }

  /** Bytes of the buffers allocated now. */
  bytesAllocated(): number {
    return this.#fullK.byteLength + this.#fullV.byteLength + this.#streamK.byteLength + this.#streamV.byteLength;
  }
}
