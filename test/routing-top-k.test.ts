import { describe, expect, it } from 'vitest';

import { topK } from '../src/experts/routing/top-k';

// Reference: every index sorted by value descending, equal values by index, in float64.
function reference(values: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: values.length }, (_, i) => i)
    .sort((a, b) => (values[b]! > values[a]! ? 1 : values[b]! < values[a]! ? -1 : a - b))
    .slice(0, k);
}

function lcg(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
}

describe('topK', () => {
  it('matches a sort for every k, on both the insertion and the sort path', () => {
    const r = lcg(7);
    for (const n of [1, 2, 5, 16, 17, 32, 100]) {
      // Few distinct values: many ties.
      const values = Float32Array.from({ length: n }, () => Math.floor(r() * 6) / 5);
      for (let k = 0; k <= n + 2; k++) expect([...topK(values, k)]).toEqual(reference(values, k));
    }
  });

  it('breaks ties by the lower index and clamps k', () => {
    expect([...topK(new Float32Array([0.5, 0.9, 0.5, 0.9]), 3)]).toEqual([1, 3, 0]);
    expect([...topK(new Float32Array([0, 0, 0]), 10)]).toEqual([0, 1, 2]);
    expect(topK(new Float32Array(0), 3)).toEqual(new Int32Array(0));
    expect(topK(new Float32Array([1]), 0)).toEqual(new Int32Array(0));
  });

  it('ranks infinities and takes float64 values', () => {
    expect([...topK(new Float32Array([0, -Infinity, Infinity, 1]), 4)]).toEqual([2, 3, 0, 1]);
    expect([...topK(new Float64Array([1 + 1e-12, 1, 1 + 2e-12]), 2)]).toEqual([2, 0]);
  });

  it('refuses NaN, naming the element', () => {
    expect(() => topK(new Float32Array([0, Number.NaN]), 1, 'scored.relevance')).toThrow(
      new RangeError('Expected number other than NaN for scored.relevance[1] but received NaN of type number'),
    );
  });
});
