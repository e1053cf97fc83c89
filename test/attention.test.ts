import { describe, expect, it } from 'vitest';
import { attention, attentionAsync } from '../src/attention/attention';
import { fromFloat16, toFloat16 } from '../src/attention/float16';
import { attentionInputs, maxAbsDiff as maxDiff, referenceAttention, type ReferenceAttention } from './support/attention-reference';

interface Case extends ReferenceAttention {
  nq: number;
  nk: number;
}

function tensors(c: Case, seed: number) {
  return attentionInputs(c.nq, c.nk, c.queryHeads, c.kvHeads, c.headDim, seed);
}

function options(c: Case) {
  return {
    queryHeads: c.queryHeads, kvHeads: c.kvHeads, headDim: c.headDim, causal: c.causal, queryOffset: c.queryOffset,
    scale: c.scale, sink: c.sink, recent: c.recent, streamingHeads: c.streaming ? Array.from(c.streaming) : undefined,
  };
}

const CASES: [string, Case][] = [
  ['MHA causal prefill', { nq: 37, nk: 37, queryHeads: 4, kvHeads: 4, headDim: 64 }],
  ['GQA 32/8 decode, dim 128', { nq: 1, nk: 300, queryHeads: 32, kvHeads: 8, headDim: 128 }],
  ['GQA 4/2 prefill over a cache (queryOffset)', { nq: 70, nk: 200, queryHeads: 4, kvHeads: 2, headDim: 80 }],
  ['odd head dim 33, group 3', { nq: 9, nk: 50, queryHeads: 6, kvHeads: 2, headDim: 33 }],
  ['head dims 24 and 8 (16- and 8-column key transposes)', { nq: 40, nk: 40, queryHeads: 2, kvHeads: 1, headDim: 24 }],
  ['head dim 8 prefill', { nq: 33, nk: 33, queryHeads: 4, kvHeads: 2, headDim: 8 }],
  ['head dim 256 and 1', { nq: 5, nk: 40, queryHeads: 2, kvHeads: 1, headDim: 256 }],
  ['head dim 1', { nq: 5, nk: 40, queryHeads: 2, kvHeads: 2, headDim: 1 }],
  ['cross-attention (non-causal)', { nq: 11, nk: 90, queryHeads: 4, kvHeads: 2, headDim: 48, causal: false }],
  ['streaming heads mixed with retrieval heads', { nq: 150, nk: 150, queryHeads: 8, kvHeads: 4, headDim: 64, sink: 4, recent: 16, streaming: [true, false, true, false] }],
  ['all heads streaming, sink 0, recent 1', { nq: 20, nk: 20, queryHeads: 2, kvHeads: 2, headDim: 16, sink: 0, recent: 1, streaming: [true, true] }],
  ['non-causal streaming window', { nq: 7, nk: 100, queryHeads: 4, kvHeads: 4, headDim: 32, causal: false, sink: 3, recent: 9, streaming: [true, false, true, true] }],
  ['explicit scale', { nq: 16, nk: 64, queryHeads: 4, kvHeads: 1, headDim: 64, scale: 0.3 }],
];

describe('attention vs a float64 reference', () => {
  for (const [name, c] of CASES) {
    it(name, () => {
      const { q, k, v } = tensors(c, name.length);
      const ref = referenceAttention(q, k, v, c);
      const lse = new Float32Array(c.nq * c.queryHeads);
      const out = attention(q, k, v, { ...options(c), lse });
      expect(maxDiff(out, ref.output)).toBeLessThan(1e-4);
      expect(maxDiff(lse, ref.lse)).toBeLessThan(1e-4);
    });
  }

  it('exact window edges: a streaming head sees position sink-1 and i-recent+1 but not sink or i-recent', () => {
    // One-hot values make the output the attention weight of each position.
    const nk = 40;
    const c: Case = { nq: 1, nk, queryHeads: 1, kvHeads: 1, headDim: nk, sink: 3, recent: 5, streaming: [true] };
    const q = new Float32Array(nk);
    const k = new Float32Array(nk * nk);
    const v = new Float32Array(nk * nk);
    for (let j = 0; j < nk; j++) v[j * nk + j] = 1;
    const out = attention(q, k, v, options(c));
    const seen = [...out].map((w, j) => (w > 0 ? j : -1)).filter((j) => j >= 0);
    expect(seen).toEqual([0, 1, 2, 35, 36, 37, 38, 39]);
    for (const j of seen) expect(out[j]).toBeCloseTo(1 / 8, 6);
  });

  it('GQA equals MHA with each KV head repeated for its query group', () => {
    const c: Case = { nq: 12, nk: 12, queryHeads: 6, kvHeads: 2, headDim: 16 };
    const { q, k, v } = tensors(c, 7);
    const rep = (x: Float32Array) => {
      const out = new Float32Array(c.nk * 6 * 16);
      for (let t = 0; t < c.nk; t++) for (let h = 0; h < 6; h++) out.set(x.subarray((t * 2 + Math.floor(h / 3)) * 16, (t * 2 + Math.floor(h / 3) + 1) * 16), (t * 6 + h) * 16);
      return out;
    };
    const gqa = attention(q, k, v, options(c));
    const mha = attention(q, rep(k), rep(v), { queryHeads: 6, kvHeads: 6, headDim: 16 });
    expect(maxDiff(gqa, mha)).toBeLessThan(1e-6);
  });

  it('decode equals the last row of prefill', () => {
    const c: Case = { nq: 64, nk: 64, queryHeads: 4, kvHeads: 2, headDim: 32, sink: 2, recent: 8, streaming: [false, true] };
    const { q, k, v } = tensors(c, 11);
    const full = attention(q, k, v, options(c));
    const row = 4 * 32;
    const last = attention(q.subarray(63 * row), k, v, { ...options(c), queryOffset: 63 });
    expect(maxDiff(last, full.subarray(63 * row))).toBeLessThan(1e-6);
  });

  it('float16 keys and values match the reference on the rounded values', () => {
    const c: Case = { nq: 10, nk: 80, queryHeads: 4, kvHeads: 2, headDim: 40, sink: 2, recent: 10, streaming: [true, false] };
    const { q, k, v } = tensors(c, 5);
    const k16 = toFloat16(k);
    const v16 = toFloat16(v);
    const ref = referenceAttention(q, fromFloat16(k16), fromFloat16(v16), c);
    expect(maxDiff(attention(q, k16, v16, options(c)), ref.output)).toBeLessThan(1e-4);
  });

  it('rounds float16 once, from the exact value', () => {
    expect(toFloat16([1 + 2 ** -11 + 2 ** -30])[0]).toBe(0x3c01); // through float32 it would tie and round to even (0x3c00)
    expect(Array.from(toFloat16([-0, 65504, 65519, 65520, 2 ** -24, 2 ** -25, 1.5 * 2 ** -25, NaN]))).toEqual([0x8000, 0x7bff, 0x7bff, 0x7c00, 1, 0, 1, 0x7e00]);
  });

  it('async equals sync, fills lse, and reads SharedArrayBuffer inputs in place', async () => {
    const c: Case = { nq: 40, nk: 500, queryHeads: 8, kvHeads: 2, headDim: 64 };
    const { q, k, v } = tensors(c, 3);
    const shared = (x: Float32Array) => {
      const s = new Float32Array(new SharedArrayBuffer(x.byteLength));
      s.set(x);
      return s;
    };
    const sync = attention(q, k, v, { ...options(c), threads: 2 });
    const lse = new Float32Array(40 * 8);
    const out = await attentionAsync(shared(q), shared(k), v, { ...options(c), threads: 2, lse });
    expect(maxDiff(out, sync)).toBe(0);
    expect(maxDiff(lse, referenceAttention(q, k, v, c).lse)).toBeLessThan(1e-4);
  });

  it('thread count does not change results', () => {
    const c: Case = { nq: 200, nk: 200, queryHeads: 8, kvHeads: 4, headDim: 64 };
    const { q, k, v } = tensors(c, 9);
    expect(maxDiff(attention(q, k, v, { ...options(c), threads: 1 }), attention(q, k, v, { ...options(c), threads: 2 }))).toBe(0);
  });

  it('a decode step over one KV head splits its keys between threads (split-K) and equals the reference', () => {
    const c: Case = { nq: 1, nk: 12000, queryHeads: 4, kvHeads: 1, headDim: 48, sink: 3, recent: 100, streaming: [false] };
    const { q, k, v } = tensors(c, 12);
    const ref = referenceAttention(q, k, v, c);
    for (const threads of [1, 2, 4]) {
      const lse = new Float32Array(4);
      expect(maxDiff(attention(q, k, v, { ...options(c), threads, lse }), ref.output)).toBeLessThan(1e-4);
      expect(maxDiff(lse, ref.lse)).toBeLessThan(1e-4);
    }
  });
});

describe('attention errors', () => {
  const base = { queryHeads: 4, kvHeads: 2, headDim: 8 };
  const q = new Float32Array(4 * 8);
  const k = new Float32Array(2 * 8);
  it('names the argument', () => {
    expect(() => attention(new Float64Array(32) as never, k, k, base)).toThrow(new TypeError('Expected Float32Array for q but received Float64Array of length 32'));
    expect(() => attention(q, k, k, { ...base, queryHeads: 3 })).toThrow(new RangeError('Expected queryHeads to be a multiple of kvHeads (2) but received 3'));
    expect(() => attention(q, k, k, { ...base, headDim: 300 })).toThrow(new RangeError('Expected integer in [1, 256] for headDim but received 300 of type number'));
    expect(() => attention(q, k, k, { ...base, lse: new Float32Array(3) })).toThrow(new RangeError('Expected Float32Array of length 4 for lse but received Float32Array of length 3'));
    expect(() => attention(q, k, k, null as never)).toThrow(new TypeError('Expected an options object for options but received null'));
  });
  it('async rejects like sync', async () => {
    await expect(attentionAsync(q, k, k, { ...base, kvHeads: 3 })).rejects.toThrow(RangeError);
  });
});
