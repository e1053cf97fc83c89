/**
 * Normalises a logits input (a flat Float32Array plus an expert count, or an
 * onnxruntime-node float32 Tensor) into one contiguous array and its shape.
 * @module
 */
import { float32Array, integer, rangeError, typeError } from '../../validate';

/**
 * The part of an onnxruntime-node `Tensor` that gating reads: a float32 tensor whose last
 * dimension is the expert axis (`[tokens, experts]`, or `[batch, seq, experts]` flattened).
 *
 * @example
 * ```ts
 * import { Tensor } from 'onnxruntime-node';
 * const logits: Float32Tensor = new Tensor('float32', new Float32Array(8), [2, 4]);
 * ```
 */
export interface Float32Tensor {
  /** Element type; must be `'float32'`. */
  readonly type: string;
  /** Shape; the last entry is the number of experts. */
  readonly dims: readonly number[];
  /** The elements, row-major. */
  readonly data: unknown;
}

/** Logits accepted by the gating functions. */
export type LogitsInput = Float32Array | Float32Tensor;

export interface Logits {
  data: Float32Array;
  tokens: number;
  experts: number;
}

/** Largest expert count the kernels accept. */
export const MAX_EXPERTS = 1 << 20;

function isTensor(v: unknown): v is Float32Tensor {
  return typeof v === 'object' && v !== null && 'dims' in v && 'type' in v && 'data' in v;
}

/** Resolves a row-major matrix whose row length is named `cols` (e.g. `experts`, `hiddenSize`). */
export function resolveMatrix(name: string, input: unknown, colsValue: unknown, cols: string): Logits {
  if (isTensor(input)) {
    if (input.type !== 'float32') throw typeError(`${name}.type`, "'float32'", input.type);
    const dims = input.dims;
    if (!Array.isArray(dims) || dims.length < 1) throw typeError(`${name}.dims`, 'a non-empty shape', dims);
    const data = float32Array(`${name}.data`, input.data);
    const e = integer(`${name}.dims[${dims.length - 1}] (${cols})`, dims[dims.length - 1], 1, MAX_EXPERTS);
    if (colsValue !== undefined && colsValue !== e) throw rangeError(cols, `${e} (the tensor's last dimension)`, colsValue);
    if (dims.reduce((a: number, b: number) => a * b, 1) !== data.length) {
      throw new RangeError(`Expected ${name}.dims to match ${data.length} elements but received [${dims.join(', ')}]`);
    }
    return { data, tokens: data.length / e, experts: e };
  }
  if (!(input instanceof Float32Array)) throw typeError(name, 'Float32Array or float32 Tensor', input);
  if (colsValue === undefined) throw new TypeError(`Expected ${cols} (the row length of ${name}) when ${name} is a Float32Array`);
  const e = integer(cols, colsValue, 1, MAX_EXPERTS);
  if (input.length % e !== 0) {
    throw new RangeError(`Expected ${name} length to be a multiple of ${cols} (${e}) but received ${input.length}`);
  }
  return { data: input, tokens: input.length / e, experts: e };
}

export function resolveLogits(name: string, input: unknown, experts: unknown): Logits {
  return resolveMatrix(name, input, experts, 'experts');
}
