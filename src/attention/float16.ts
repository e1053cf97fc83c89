/**
 * IEEE 754 binary16 ("float16") conversion for KV caches stored at half precision. Node.js 20
 * has no Float16Array, so halves travel as their bits in a Uint16Array.
 * @module
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float16 bits nearest to `x` (round half to even; overflow → ±Infinity; NaN stays NaN). */
function halfBits(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa with its implicit 1 into place, rounding to even.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let out = m >>> shift;
    if (rest > half || (rest === half && (out & 1) !== 0)) out++;
    return sign | out;
  }
  let out = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (out & 1) !== 0)) out++; // may carry into the exponent: still right
  return sign | out;
}

/**
 * Float32 values → float16 bits, rounded to nearest even.
 *
 * @param src Values to convert.
 * @param dst Where to write; default a new Uint16Array of `src.length`.
 * @returns `dst`.
 *
 * @example
 * ```ts
 * const halves = toFloat16(new Float32Array([1, 0.1, 65504]));
 * fromFloat16(halves); // Float32Array [1, 0.0999755859375, 65504]
 * ```
 */
export function toFloat16(src: ArrayLike<number>, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = halfBits(src[i]!);
  return dst;
}

/**
 * Float16 bits → float32 values (exact: every half is a float).
 *
 * @example
 * ```ts
 * fromFloat16(Uint16Array.of(0x3c00, 0xc000)); // Float32Array [1, -2]
 * ```
 */
export function fromFloat16(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  for (let i = 0; i < src.length; i++) {
    const h = src[i]!;
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    dst[i] = exp === 0 ? sign * mant * 2 ** -24 : exp === 0x1f ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return dst;
}
