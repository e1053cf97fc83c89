/**
 * The model's past keys and values between calls, with the token ids they cover, so a call
 * whose prompt shares a prefix with the cached sequence runs only the tokens after it.
 * @module
 */
import type { Tensor } from 'onnxruntime-node';

/** One past input of the model: its name, the output that returns it, its layout. */
export interface PastSlot {
  input: string;
  output: string;
  type: 'float32' | 'float16';
  heads: number;
  headDim: number;
}

type TensorCtor = new (type: PastSlot['type'], data: Float32Array | Uint16Array, dims: readonly number[]) => Tensor;

export class KVCache {
  /** Token ids whose keys and values the tensors hold, in order. */
  ids: number[] = [];
  #tensors: Map<string, Tensor> | null = null;

  constructor(
    readonly slots: readonly PastSlot[],
    private readonly TensorClass: TensorCtor,
  ) {}

  /** Length of the longest prefix of `ids` already cached, keeping one token to run (its logits are needed). */
  reusable(ids: readonly number[]): number {
    const n = Math.min(this.ids.length, ids.length - 1);
    let i = 0;
    while (i < n && this.ids[i] === ids[i]) i++;
    return i;
  }

  /** Past feeds holding the first `length` cached tokens. */
  feeds(length: number): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const s of this.slots) {
      const t = length === 0 || this.#tensors === null ? undefined : this.#tensors.get(s.output);
      out[s.input] = t === undefined ? this.#empty(s) : length === t.dims[2] ? t : this.#slice(s, t, length);
    }
    return out;
  }

  /** Takes the model's present outputs, now covering `ids`. */
  update(ids: number[], outputs: Record<string, Tensor>): void {
    const next = new Map<string, Tensor>();
    for (const s of this.slots) {
      const t = outputs[s.output];
      if (t === undefined || t.dims.length !== 4 || t.dims[2] !== ids.length) {
        throw new Error(`OnnxCausalLM: output ${s.output} has dims [${t?.dims.join(', ')}], expected [1, ${s.heads}, ${ids.length}, ${s.headDim}]`);
      }
      next.set(s.output, t);
    }
    this.#tensors = next;
    this.ids = ids;
  }

  clear(): void {
    this.#tensors = null;
    this.ids = [];
  }

  #empty(s: PastSlot): Tensor {
    return new this.TensorClass(s.type, s.type === 'float16' ? new Uint16Array(0) : new Float32Array(0), [1, s.heads, 0, s.headDim]);
  }

  // [1, heads, T, D] → [1, heads, length, D]: each head's first `length` rows.
  #slice(s: PastSlot, t: Tensor, length: number): Tensor {
    const src = t.data as Float32Array | Uint16Array;
    const [, heads, total, dim] = t.dims as [number, number, number, number];
    const Ctor = src.constructor as new (n: number) => Float32Array | Uint16Array;
    const dst = new Ctor(heads * length * dim);
    for (let h = 0; h < heads; h++) dst.set(src.subarray(h * total * dim, (h * total + length) * dim), h * length * dim);
    return new this.TensorClass(s.type, dst, [1, heads, length, dim]);
  }
}
