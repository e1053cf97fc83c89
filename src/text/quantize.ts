/**
 * Symmetric per-vector int8 quantisation of embeddings: one float scale per vector, codes in
 * [-127, 127] (-128 is never produced, so the code range is symmetric around 0).
 * @module
 */
import * as v from '../validate';

/**
 * An int8-quantised vector: `vector[i] ≈ codes[i] * scale`.
 *
 * @example
 * ```ts
 * const { codes, scale }: QuantizedVector = quantizeInt8(new Float32Array([0.5, -1]));
 * // codes: [64, -127], scale: 1 / 127 (as a float32)
 * ```
 */
export interface QuantizedVector {
  /** One code per element, in [-127, 127]. */
  codes: Int8Array;
  /**
   * `max |vector[i]| / 127`, rounded to float32 so it can be stored in a `Float32Array` without
   * change; 0 for an all-zero vector (all codes 0 then).
   */
  scale: number;
}

/** Smallest positive float32: the scale of a vector too small for maxAbs / 127 to be one. */
const MIN_SCALE = 2 ** -149;

/**
 * Quantises a vector to int8 with one scale: `scale = max|x| / 127` (rounded to float32),
 * `codes[i] = round(x[i] / scale)` (halves away from zero) clamped to [-127, 127]. The
 * rounding error of each element is at most `scale / 2`, so for a 384-dimensional normal
 * vector the cosine between the original and its reconstruction is about 0.9999.
 *
 * @param vector - Finite values (NaN or ±Infinity is a `RangeError` naming the element).
 * @param out - Receives the codes (length `vector.length`); a new array when omitted.
 *
 * @example
 * ```ts
 * import { quantizeInt8, dequantizeInt8 } from '@capibara/core';
 * const { codes, scale } = quantizeInt8(embedding);      // Float32Array(384)
 * const approx = dequantizeInt8(codes, scale);            // ≈ embedding
 * ```
 */
export function quantizeInt8(vector: Float32Array, out?: Int8Array): QuantizedVector {
  const x = v.float32Array('vector', vector);
  const codes = out === undefined ? new Int8Array(x.length) : v.int8Array('out', out, x.length);
  let maxAbs = 0;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]!);
    if (!(a <= 3.4028234663852886e38)) {
      throw new RangeError(`Expected finite numbers for vector but vector[${i}] is ${x[i]}`);
    }
    if (a > maxAbs) maxAbs = a;
  }
  if (maxAbs === 0) {
    codes.fill(0);
    return { codes, scale: 0 };
  }
  const scale = Math.fround(maxAbs / 127) || MIN_SCALE;
  for (let i = 0; i < x.length; i++) {
    const t = x[i]! / scale;
    const q = Math.min(127, Math.round(Math.abs(t)));
    codes[i] = t < 0 ? -q : q;
  }
  return { codes, scale };
}

/**
 * Reconstructs a quantised vector: `out[i] = codes[i] * scale`.
 *
 * @param codes - Int8 codes, as produced by {@link quantizeInt8}.
 * @param scale - Their scale: a finite number >= 0.
 * @param out - Receives the values (length `codes.length`); a new array when omitted.
 *
 * @example
 * ```ts
 * const approx = dequantizeInt8(new Int8Array([64, -127]), 1 / 127); // ≈ [0.504, -1]
 * ```
 */
export function dequantizeInt8(codes: Int8Array, scale: number, out?: Float32Array): Float32Array {
  if (!(codes instanceof Int8Array)) throw v.typeError('codes', 'Int8Array', codes);
  const s = v.finite('scale', scale, { min: 0 });
  const values = out === undefined ? new Float32Array(codes.length) : v.float32Array('out', out, codes.length);
  for (let i = 0; i < codes.length; i++) values[i] = codes[i]! * s;
  return values;
}
