/**
 * IEEE 754 binary16 ("float16") conversion for KV caches stored at half precision. Node.js 20
 * has no Float16Array, so halves travel as their bits in a Uint16Array.
 * @module
 */

/** Round half to even of a non-negative number. */
function roundEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}

/**
 * The float16 bits nearest to `x`, rounded once from the exact value (round half to even;
 * |x| >= 65520 → ±Infinity; NaN → a quiet NaN). Scaling by powers of two is exact in doubles,
 * so the mantissa is rounded straight from x, never through float32 first.
 */
function halfBits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundEven(a * 2 ** 24); // subnormal (1024 carries into the smallest normal)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  return sign | (((e + 15) << 10) + roundEven((a / 2 ** e - 1) * 1024)); // 1024 carries into the exponent
}

/**
 * Numbers → float16 bits, rounded to nearest even (once, from the exact value).
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
