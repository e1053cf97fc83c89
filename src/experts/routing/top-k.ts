/**
 * Top-k of a few scores in plain TypeScript: routing picks among tens of experts, where the
 * token-level gating kernel buys nothing.
 * @module
 */
import * as v from '../../validate';

// Up to this many winners an insertion into the sorted winners is cheaper than a sort.
const INSERTION_MAX = 16;

/**
 * Indices of the `k` largest values, best first; equal values in index order. `k` is clamped
 * to `values.length`.
 *
 * @param values - The scores; NaN is refused.
 * @param k - How many, an integer >= 0 (checked by the caller).
 * @param name - How `values` is named in errors.
 * @returns A new Int32Array of `min(k, values.length)` indices.
 * @throws RangeError - for a NaN value, naming it (`scored.relevance[3]`).
 * @internal
 */
export function topK(values: Float32Array | Float64Array, k: number, name = 'values'): Int32Array {
  const n = values.length;
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(values[i])) throw v.rangeError(`${name}[${i}]`, 'number other than NaN', values[i]);
  }
  const count = Math.min(k, n);
  const out = new Int32Array(count);
  if (count === 0) return out;
  if (count > INSERTION_MAX) {
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[b]! - values[a]! || a - b);
    for (let j = 0; j < count; j++) out[j] = order[j]!;
    return out;
  }
  // out[0, size) holds the best so far, sorted; a later equal value goes after the earlier one.
  let size = 0;
  for (let i = 0; i < n; i++) {
    const x = values[i]!;
    if (size === count && !(x > values[out[count - 1]!]!)) continue;
    let at = size < count ? size : count - 1;
    while (at > 0 && x > values[out[at - 1]!]!) {
      out[at] = out[at - 1]!;
      at--;
    }
    out[at] = i;
    if (size < count) size++;
  }
  return out;
}
