import { describe, expect, it } from 'vitest';
import { attention, attentionAsync, float32ScoresAsync, int8ScoresAsync, quantizeInt8 } from '../src/index';
import * as v from '../src/validate';

/** A Float32Array whose buffer was transferred away. */
function detached(n: number): Float32Array {
  const a = new Float32Array(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
}

/** A Float32Array of `real` elements whose own length property claims `claimed`. */
function lying(real: number, claimed: number): Float32Array {
  const a = new Float32Array(real);
  Object.defineProperty(a, 'length', { value: claimed });
  return a;
}

describe('typed-array arguments', () => {
  it('go by the real length and refuse a detached buffer with a TypeError naming the argument', () => {
    expect(() => v.float32Array('out', detached(4), 4)).toThrow(new TypeError('Expected Float32Array for out but received a Float32Array whose buffer is detached'));
    expect(() => v.float32Array('out', lying(2, 4), 4)).toThrow(new RangeError('Expected Float32Array of length 4 for out but received Float32Array of length 2'));
    expect(v.float32Array('out', new Float32Array(0), 0)).toHaveLength(0); // empty, not detached
    expect(() => v.int32Array('rows', new Float32Array(2))).toThrow(new TypeError('Expected Int32Array for rows but received Float32Array of length 2'));
  });

  it("async kernels reject a detached or lying `out` with the argument's name, not a raw V8 error", async () => {
    const q = new Float32Array(4).fill(1);
    const m = new Float32Array(40).fill(1);
    await expect(float32ScoresAsync(q, m, 4, { out: detached(10) })).rejects.toThrow(
      new TypeError('Expected Float32Array for out but received a Float32Array whose buffer is detached'),
    );
    // Before: "RangeError: offset is out of bounds" from copying the scores into the short array.
    await expect(float32ScoresAsync(q, m, 4, { out: lying(2, 10) })).rejects.toThrow(
      new RangeError('Expected Float32Array of length 10 for out but received Float32Array of length 2'),
    );
    const { codes, scale } = quantizeInt8(q);
    const rowCodes = new Int8Array(40).fill(1);
    await expect(int8ScoresAsync(codes, scale, rowCodes, new Float32Array(10).fill(1), 4, { out: lying(3, 10) })).rejects.toThrow(
      new RangeError('Expected Float32Array of length 10 for out but received Float32Array of length 3'),
    );
  });

  it('attention checks q, k and v by their real lengths and refuses detached ones', async () => {
    const o = { queryHeads: 2, kvHeads: 1, headDim: 4 };
    const k = new Float32Array(12);
    // Before: the lie reached the kernel, which answered about its internal segment table.
    expect(() => attention(new Float32Array(8), lying(4, 12), k, o)).toThrow(new RangeError('Expected v length to equal k length (4) but received 12'));
    await expect(attentionAsync(new Float32Array(8), detached(12), k, o)).rejects.toThrow(
      new TypeError('Expected Float32Array for k but received a Float32Array whose buffer is detached'),
    );
    expect(() => attention(lying(4, 8), k, k, o)).toThrow(new RangeError('Expected q length to be a multiple of queryHeads * headDim (8) but received 4'));
  });
});
