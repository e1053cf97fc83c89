/**
 * The device side of `DuoKVCache({ device: 'cuda' })`: every layer's keys and values in CUDA
 * device memory as float16 or bfloat16 (native/cuda/attention.cu), retrieval heads as full rows
 * (grown by doubling up to maxTokens), streaming heads as sink rows + a ring of
 * `recent + maxRollback` rows, and the bookkeeping a rollback needs. Arguments arrive checked by
 * the cache; this file adds what only the device has (a handle, its close).
 * @module
 */
import { type CudaDeviceBinding, type CudaHandle, cudaDevice } from '../cuda-binding';
import { ClosedError } from '../toolkit/closing';

/** What the cache hands over. @internal */
export interface CudaKvShape {
  layers: number;
  kvHeads: number;
  headDim: number;
  sink: number;
  recent: number;
  ring: number;
  maxTokens: number;
  storage: 'float16' | 'bf16';
  /** 1 = streaming, per layer and KV head. */
  streaming: Uint8Array;
}

/** One step as the cache checked it. @internal */
export interface CudaStep {
  layer: number;
  n: number;
  k: Float32Array | Uint16Array;
  v: Float32Array | Uint16Array;
}

/** Device storage and decode attention of one sequence's cache. @internal */
export class CudaKvStore {
  readonly #cuda: CudaDeviceBinding;
  readonly #shape: CudaKvShape;
  #handle: CudaHandle | null;
  readonly #length: number[];
  // Per layer: oldest position whose ring slot still holds it (kv-layer.ts's #ringFloor).
  readonly #ringFloor: number[];
  readonly #streamingCount: number[];

  constructor(shape: CudaKvShape) {
    this.#cuda = cudaDevice("DuoKVCache({ device: 'cuda' })");
    this.#shape = shape;
    const { layers, kvHeads, headDim, sink, ring, maxTokens, storage, streaming } = shape;
    this.#handle = this.#cuda.kvOpen(layers, kvHeads, headDim, sink, ring, maxTokens, storage === 'float16' ? 0 : 1, streaming);
    this.#length = new Array<number>(layers).fill(0);
    this.#ringFloor = new Array<number>(layers).fill(0);
    this.#streamingCount = Array.from({ length: layers }, (_, l) => streaming.subarray(l * kvHeads, (l + 1) * kvHeads).reduce((a, b) => a + b, 0));
  }

  get closed(): boolean {
    return this.#handle === null;
  }

  #open(): CudaHandle {
    if (this.#handle === null) throw new ClosedError('DuoKVCache');
    return this.#handle;
  }

  length(layer: number): number {
    return this.#length[layer]!;
  }

  /** Stores a step's rows at the layer's next positions. */
  append(s: CudaStep): void {
    const h = this.#open();
    this.#cuda.kvStore(h, s.layer, this.#length[s.layer]!, s.n, s.k, s.v);
    this.#length[s.layer]! += s.n;
    this.#ringFloor[s.layer] = Math.max(this.#ringFloor[s.layer]!, this.#length[s.layer]! - this.#shape.ring);
  }

  /**
   * Stores a step and attends its queries (causally, each over what its heads keep). A chunk is
   * taken in pieces of at most `maxRollback + 1` tokens (and 1,024): storing a piece must not
   * overwrite ring slots its first query still reads. The kernel is a decode kernel: a long
   * prompt's queries each scan their positions, correct but not a prefill kernel's speed.
   */
  attend(s: CudaStep, q: Float32Array, queryHeads: number, scale: number, lse: Float32Array | null): Float32Array {
    const h = this.#open();
    const { kvHeads, headDim: d, ring, recent } = this.#shape;
    const out = new Float32Array(s.n * queryHeads * d);
    // At most 1,024 queries a launch (the kernel's grid takes queries in its z dimension).
    const piece = Math.max(1, Math.min(1024, ring - recent + 1));
    for (let t = 0; t < s.n; t += piece) {
      const n = Math.min(piece, s.n - t);
      const pos0 = this.#length[s.layer]!;
      this.append({ layer: s.layer, n, k: s.k.subarray(t * kvHeads * d, (t + n) * kvHeads * d), v: s.v.subarray(t * kvHeads * d, (t + n) * kvHeads * d) });
      const part = out.subarray(t * queryHeads * d, (t + n) * queryHeads * d);
      const partLse = lse === null ? null : lse.subarray(t * queryHeads, (t + n) * queryHeads);
      this.#cuda.kvAttend(h, s.layer, pos0, n, queryHeads, q.subarray(t * queryHeads * d, (t + n) * queryHeads * d), scale, recent, part, partLse);
    }
    return out;
  }

  /** As KvLayer.missingForRollback, per layer. */
  missingForRollback(layer: number, tokens: number): { needed: number; held: number } | undefined {
    const length = this.#length[layer]!;
    if (tokens >= length || this.#streamingCount[layer] === 0) return undefined;
    const { sink, recent } = this.#shape;
    const held = Math.max(sink, this.#ringFloor[layer]!);
    const needed = Math.max(sink, tokens - recent + 1);
    return needed < tokens && needed < held ? { needed, held } : undefined;
  }

  truncate(tokens: number): void {
    this.#open();
    for (let l = 0; l < this.#length.length; l++) {
      this.#length[l] = Math.min(this.#length[l]!, tokens);
      this.#ringFloor[l] = Math.min(this.#ringFloor[l]!, this.#length[l]!);
    }
  }

  /** Bytes held for the stored tokens at 2 bytes an element (as KvLayer.bytesHeld). */
  bytesUsed(): number {
    const { kvHeads, headDim: d, sink, ring } = this.#shape;
    let bytes = 0;
    this.#length.forEach((length, l) => {
      const streaming = this.#streamingCount[l]!;
      bytes += streaming * Math.min(length, sink + ring) * 2 * d * 2 + (kvHeads - streaming) * length * 2 * d * 2;
    });
    return bytes;
  }

  bytesFullCache(): number {
    const { kvHeads, headDim: d } = this.#shape;
    return this.#length.reduce((a, length) => a + kvHeads * length * 2 * d * 2, 0);
  }

  bytesAllocated(): number {
    return this.#handle === null ? 0 : this.#cuda.kvBytes(this.#handle);
  }

  close(): void {
    if (this.#handle === null) return;
    const h = this.#handle;
    this.#handle = null;
    this.#cuda.close(h);
  }
}
