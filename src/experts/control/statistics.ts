/**
 * The statistics the control plane reports: Jensen–Shannon divergence (drift), least-squares
 * slopes (trends), cosine similarity (traffic overlap).
 * @module
 */
import * as v from '../../validate';

/**
 * Jensen–Shannon divergence of two distributions, in bits:
 * `JSD(P, Q) = ½ KL(P ‖ M) + ½ KL(Q ‖ M)` with `M = ½ (P + Q)` and base-2 logarithms, so it
 * lies in [0, 1]: 0 for identical distributions, 1 for distributions with disjoint support.
 * Symmetric, and finite even where one distribution has zeros (unlike KL). Counts are accepted:
 * each side is divided by its sum.
 *
 * @param p Non-negative weights (counts or probabilities) with a positive sum.
 * @param q Same length as `p`.
 * @returns The divergence in bits, in [0, 1].
 * @throws TypeError / RangeError for arrays of different lengths, negative or non-finite values, or a zero sum.
 *
 * @example
 * ```ts
 * import { jensenShannonDivergence } from '@capibara/core';
 * jensenShannonDivergence([50, 50], [50, 50]); // 0
 * jensenShannonDivergence([1, 1], [0, 1]);     // ≈ 0.311
 * ```
 */
export function jensenShannonDivergence(p: ArrayLike<number>, q: ArrayLike<number>): number {
  const a = weights('p', p);
  const b = weights('q', q, a.length);
  const sa = sum('p', a);
  const sb = sum('q', b);
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! / sa;
    const y = b[i]! / sb;
    const m = (x + y) / 2;
    if (x > 0) d += 0.5 * x * Math.log2(x / m);
    if (y > 0) d += 0.5 * y * Math.log2(y / m);
  }
  // Rounding can leave a tiny negative for identical inputs, or a hair above 1.
  return Math.min(1, Math.max(0, d));
}

function weights(name: string, x: unknown, length?: number): ArrayLike<number> {
  if (!Array.isArray(x) && !(ArrayBuffer.isView(x) && !(x instanceof DataView))) throw v.typeError(name, 'array of non-negative numbers', x);
  const a = x as ArrayLike<number>;
  if (length !== undefined && a.length !== length) throw v.rangeError(name, `length ${length} (the length of p)`, x);
  for (let i = 0; i < a.length; i++) {
    const w = a[i];
    if (typeof w !== 'number' || !(w >= 0) || w === Infinity) throw new RangeError(`Expected finite non-negative numbers for ${name} but ${name}[${i}] is ${String(w)}`);
  }
  return a;
}

function sum(name: string, a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  if (!(s > 0)) throw new RangeError(`Expected weights with a positive sum for ${name} but they sum to ${s}`);
  return s;
}

/** Ordinary least-squares slope of y on x; 0 with fewer than two points or no spread in x. */
export function leastSquaresSlope(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  if (n < 2) return 0;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i]! - mx) * (y[i]! - my);
    sxx += (x[i]! - mx) ** 2;
  }
  return sxx === 0 ? 0 : sxy / sxx;
}

/**
 * Cosine similarity of two sparse count vectors (term → count): Σ aₜbₜ / (‖a‖ ‖b‖), in [0, 1]
 * for counts; 0 when either is empty.
 */
export function cosineSimilarity(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (const [t, x] of a) {
    na += x * x;
    const y = b.get(t);
    if (y !== undefined) dot += x * y;
  }
  for (const y of b.values()) nb += y * y;
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}
