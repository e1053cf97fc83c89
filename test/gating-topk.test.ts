import { Tensor } from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';

import { type TopkGatingOptions, topkGating, topkGatingAsync } from '../src/index';
import { rng, normal, ties } from './support/random';
import { type RefTopkOptions, refTopkRow } from './support/reference';

/**
 * Compares a native result with the float64 reference row by row. Indices must match
 * exactly, except where the reference's own selection scores of the swapped experts are
 * within float32 rounding (a genuine near-tie, only possible on the bias/group path).
 */
let nearTies = 0;
afterAll(() => {
  // Near-ties are rare with continuous random inputs; many would mean a real ordering bug.
  expect(nearTies).toBeLessThan(5);
});

function expectMatches(logits: Float32Array, experts: number, opts: RefTopkOptions, nativeOpts: Partial<TopkGatingOptions> = {}) {
  const got = topkGating(logits, { ...opts, experts, ...nativeOpts } as TopkGatingOptions);
  const tokens = logits.length / experts;
  expect(got.tokens).toBe(tokens);
  for (let t = 0; t < tokens; t++) {
    const ref = refTopkRow(logits.subarray(t * experts, (t + 1) * experts), experts, opts);
    const gi = Array.from(got.indices.subarray(t * opts.k, (t + 1) * opts.k));
    const gw = Array.from(got.weights.subarray(t * opts.k, (t + 1) * opts.k));
    for (let j = 0; j < opts.k; j++) {
      if (gi[j] !== ref.indices[j]) {
        nearTies++;
        const a = ref.select[gi[j]!] ?? NaN;
        const b = ref.select[ref.indices[j]!] ?? NaN;
        expect(Math.abs(a - b), `token ${t} slot ${j}: ${gi} vs ${ref.indices}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(b)));
        continue;
      }
      expect(gw[j]!).toBeCloseTo(ref.weights[j]!, 5);
    }
  }
  return got;
}

describe('topkGating against a float64 reference', () => {
  const rand = rng(42);
  const shapes: Array<[number, number]> = [
    [8, 1], [8, 2], [8, 8], [60, 4], [64, 8], [64, 64], [384, 8], [1000, 3], [17, 5], [1, 1],
  ];
  for (const scoring of ['softmax', 'sigmoid'] as const) {
    for (const renormalize of [true, false]) {
      for (const [experts, k] of shapes) {
        it(`${scoring} renormalize=${renormalize} E=${experts} k=${k}`, () => {
          expectMatches(normal(rand, 37 * experts, 2), experts, { k, scoring, renormalize });
        });
      }
    }
  }

  it('breaks ties toward the lower expert index (fast and general paths)', () => {
    for (const experts of [8, 33, 64]) {
      const logits = ties(rand, 50 * experts);
      expectMatches(logits, experts, { k: 4 });
      expectMatches(logits, experts, { k: 4, scoring: 'sigmoid' });
      expectMatches(logits, experts, { k: 4, bias: new Float32Array(experts) });
      expectMatches(logits, experts, { k: 3, scoring: 'sigmoid', bias: new Float32Array(experts), groups: experts % 4 === 0 ? { count: 4, topkGroups: 2 } : undefined });
    }
    const r = topkGating(new Float32Array([1, 1, 1, 1]), { experts: 4, k: 4 });
    expect(Array.from(r.indices)).toEqual([0, 1, 2, 3]);
    expect(Array.from(r.weights)).toEqual([0.25, 0.25, 0.25, 0.25]);
  });

  it('never selects masked experts and marks unfillable slots with -1', () => {
    const experts = 40;
    const logits = normal(rand, 30 * experts);
    for (let i = 0; i < logits.length; i++) if (rand() < 0.6) logits[i] = -Infinity;
    logits.fill(-Infinity, 0, experts); // token 0: everything masked
    for (const opts of [{ k: 8 }, { k: 8, scoring: 'sigmoid' as const }, { k: 8, bias: normal(rand, experts, 0.1) }, { k: 8, renormalize: false }]) {
      const got = expectMatches(logits, experts, opts);
      expect(Array.from(got.indices.subarray(0, 8))).toEqual(new Array(8).fill(-1));
      expect(Array.from(got.weights.subarray(0, 8))).toEqual(new Array(8).fill(0));
      for (let s = 0; s < got.indices.length; s++) {
        const e = got.indices[s]!;
        if (e >= 0) expect(logits[Math.floor(s / 8) * experts + e]).not.toBe(-Infinity);
      }
    }
  });

  it('ranks ties and skips masked experts on the row paths too (many experts, large k)', () => {
    // Shapes past the tile limits go row by row: a threshold from the lane maxima, then a rank
    // over the candidates; ties must still go to the lower index and -Infinity never win.
    for (const [experts, k] of [[256, 8], [200, 6], [2000, 16]] as const) {
      expectMatches(ties(rand, 40 * experts), experts, { k });
      expectMatches(ties(rand, 40 * experts), experts, { k, renormalize: false });
      const logits = normal(rand, 40 * experts);
      for (let i = 0; i < logits.length; i++) if (rand() < 0.97) logits[i] = -Infinity;
      expectMatches(logits, experts, { k, scoring: 'sigmoid' });
      expectMatches(logits, experts, { k, renormalize: false });
    }
    // The general path goes row by row past the tiles' limits (k > 8, or more than 1024 experts).
    const bias = (n: number) => normal(rand, n, 0.1);
    expectMatches(normal(rand, 20 * 1100), 1100, { k: 8, scoring: 'sigmoid', bias: bias(1100), groups: { count: 10, topkGroups: 3 }, routeScale: 2.5 });
    expectMatches(normal(rand, 20 * 1100), 1100, { k: 6, bias: bias(1100), groups: { count: 20, topkGroups: 2, score: 'max' }, renormalize: false });
    expectMatches(ties(rand, 30 * 64), 64, { k: 12, scoring: 'sigmoid', bias: new Float32Array(64), groups: { count: 4, topkGroups: 2 } });
    const masked = normal(rand, 30 * 96);
    for (let i = 0; i < masked.length; i++) if (rand() < 0.9) masked[i] = -Infinity;
    expectMatches(masked, 96, { k: 10, bias: bias(96), groups: { count: 8, topkGroups: 2 } });
  });

  it('selects on score + bias but weighs with the unbiased scores', () => {
    for (const [experts, k] of [[64, 8], [60, 6], [256, 8]] as const) {
      const bias = normal(rand, experts, 0.05);
      for (const scoring of ['softmax', 'sigmoid'] as const) {
        expectMatches(normal(rand, 40 * experts), experts, { k, scoring, bias, routeScale: 2.5 });
        expectMatches(normal(rand, 40 * experts), experts, { k, scoring, bias, renormalize: false });
      }
    }
    // A large bias flips selection, the weight stays the unbiased probability.
    const r = topkGating(new Float32Array([2, 0]), { experts: 2, k: 1, bias: [0, 1], renormalize: false });
    expect(r.indices[0]).toBe(1);
    expect(r.weights[0]).toBeCloseTo(1 / (1 + Math.exp(2)), 6);
  });

  it('does group-limited routing (DeepSeek-V3 shape and others)', () => {
    const cases = [
      { experts: 256, k: 8, groups: { count: 8, topkGroups: 4 } },
      { experts: 64, k: 6, groups: { count: 8, topkGroups: 3, score: 'max' as const } },
      { experts: 60, k: 4, groups: { count: 6, topkGroups: 1 } },
      { experts: 12, k: 12, groups: { count: 3, topkGroups: 3 } },
      { experts: 16, k: 2, groups: { count: 16, topkGroups: 2 } },
    ];
    for (const c of cases) {
      for (const scoring of ['softmax', 'sigmoid'] as const) {
        const bias = normal(rand, c.experts, 0.1);
        expectMatches(normal(rand, 30 * c.experts), c.experts, { k: c.k, groups: c.groups, scoring, bias, routeScale: 2.5 });
        expectMatches(normal(rand, 30 * c.experts), c.experts, { k: c.k, groups: c.groups, scoring });
      }
    }
  });

  it('reports winners outside the expert range as index `experts`', () => {
    const experts = 32;
    for (const range of [[8, 16], [0, 32], [0, 0], [31, 32]] as Array<[number, number]>) {
      const got = expectMatches(normal(rand, 20 * experts), experts, { k: 4, expertRange: range });
      for (const e of got.indices) expect(e === experts || (e >= range[0] && e < range[1])).toBe(true);
    }
  });

  it('handles zero tokens', () => {
    const r = topkGating(new Float32Array(0), { experts: 64, k: 8 });
    expect(r.tokens).toBe(0);
    expect(r.weights.length).toBe(0);
    expect(r.indices.length).toBe(0);
  });

  it('gives the same result with many threads as with one (large batch)', () => {
    const experts = 64;
    const logits = normal(rand, 20_000 * experts);
    const one = topkGating(logits, { experts, k: 8, threads: 1 });
    const many = topkGating(logits, { experts, k: 8, threads: 4 });
    expect(Buffer.compare(Buffer.from(many.indices.buffer), Buffer.from(one.indices.buffer))).toBe(0);
    expect(Buffer.compare(Buffer.from(many.weights.buffer), Buffer.from(one.weights.buffer))).toBe(0);
  });

  it('routes a token the same wherever it sits in the batch (tile or tail), to the last bit', () => {
    // 16-token tiles take one path, the tail another: both must add in the same order.
    for (const [experts, opts] of [
      [64, { k: 8, renormalize: false }],
      [64, { k: 2 }],
      [60, { k: 6, scoring: 'sigmoid' as const }],
      [256, { k: 8, scoring: 'sigmoid' as const, bias: normal(rand, 256, 0.3), groups: { count: 8, topkGroups: 4 }, routeScale: 2.5 }],
      [64, { k: 4, bias: normal(rand, 64, 0.3), renormalize: false }],
      [256, { k: 8, renormalize: false }],
      [1000, { k: 3 }],
    ] as const) {
      const rows = normal(rand, 4 * experts, 2);
      const logits = new Float32Array(20 * experts);
      logits.set(rows, 0); // tokens 0-3: inside the first tile
      logits.set(normal(rand, 12 * experts, 2), 4 * experts);
      logits.set(rows, 16 * experts); // tokens 16-19: the tail
      const r = topkGating(logits, { experts, ...opts } as TopkGatingOptions);
      const k = opts.k;
      expect(Array.from(r.indices.subarray(16 * k))).toEqual(Array.from(r.indices.subarray(0, 4 * k)));
      expect(Array.from(r.weights.subarray(16 * k))).toEqual(Array.from(r.weights.subarray(0, 4 * k)));
    }
  });

  it('names the first bad logit wherever it sits (full tile, padded tail, row path)', () => {
    for (const [experts, k, token, expert] of [[64, 2, 3, 7], [64, 2, 18, 63], [8, 8, 19, 0], [256, 8, 17, 200]] as const) {
      const logits = normal(rand, 20 * experts);
      logits[token * experts + expert] = NaN;
      logits[19 * experts + experts - 1] = Infinity; // a later bad value is not the one named
      expect(() => topkGating(logits, { experts, k })).toThrow(
        new RangeError(`Expected finite or -Infinity (masked) logits but token ${token}, expert ${expert} is NaN`),
      );
    }
  });

  it('accepts an onnxruntime-node float32 Tensor and fills preallocated outputs', () => {
    const data = normal(rand, 6 * 8);
    const tensor = new Tensor('float32', data, [2, 3, 8]);
    const out = { weights: new Float32Array(12), indices: new Int32Array(12) };
    const got = topkGating(tensor, { k: 2, out });
    expect(got.weights).toBe(out.weights);
    expect(got.tokens).toBe(6);
    expect(got.indices).toEqual(topkGating(data, { experts: 8, k: 2 }).indices);
  });

  it('has an async form with the same result', async () => {
    const experts = 64;
    const logits = normal(rand, 3000 * experts);
    const opts = { experts, k: 8, scoring: 'sigmoid' as const, bias: normal(rand, experts, 0.1) };
    const viaWorker = await topkGatingAsync(logits, opts);
    const sync = topkGating(logits, opts);
    expect(Buffer.compare(Buffer.from(viaWorker.indices.buffer), Buffer.from(sync.indices.buffer))).toBe(0);
    expect(Buffer.compare(Buffer.from(viaWorker.weights.buffer), Buffer.from(sync.weights.buffer))).toBe(0);
  });
});

describe('topkGating input errors', () => {
  const logits = new Float32Array([0, 1, 2, 3, 4, 5, 6, 7]);
  const cases: Array<[string, () => unknown, ErrorConstructor, string]> = [
    ['wrong array type', () => topkGating(new Float64Array(8) as never, { experts: 4, k: 1 }), TypeError,
      'Expected Float32Array or float32 Tensor for logits but received Float64Array of length 8'],
    ['missing experts', () => topkGating(logits, { k: 1 }), TypeError,
      'Expected experts (the row length of logits) when logits is a Float32Array'],
    ['length not tokens × experts', () => topkGating(logits, { experts: 3, k: 1 }), RangeError,
      'Expected logits length to be a multiple of experts (3) but received 8'],
    ['k too large', () => topkGating(logits, { experts: 4, k: 5 }), RangeError,
      'Expected integer in [1, 4] for k but received 5 of type number'],
    ['k zero', () => topkGating(logits, { experts: 4, k: 0 }), RangeError,
      'Expected integer in [1, 4] for k but received 0 of type number'],
    ['k fractional', () => topkGating(logits, { experts: 4, k: 1.5 }), RangeError,
      'Expected integer in [1, 4] for k but received 1.5 of type number'],
    ['k string', () => topkGating(logits, { experts: 4, k: '2' as never }), TypeError,
      "Expected integer in [1, 4] for k but received '2' of type string"],
    ['bad scoring', () => topkGating(logits, { experts: 4, k: 1, scoring: 'relu' as never }), RangeError,
      "Expected one of 'softmax', 'sigmoid' for scoring but received 'relu' of type string"],
    ['groups not dividing', () => topkGating(new Float32Array(12), { experts: 6, k: 1, groups: { count: 4, topkGroups: 1 } }), RangeError,
      'Expected groups.count to divide experts (6) but received 4'],
    ['k beyond kept groups', () => topkGating(logits, { experts: 4, k: 3, groups: { count: 2, topkGroups: 1 } }), RangeError,
      'Expected k <= groups.topkGroups * experts / groups.count (2) but received 3'],
    ['bias length', () => topkGating(logits, { experts: 4, k: 1, bias: [1, 2] }), RangeError,
      'Expected length 4 for bias but received Array of length 2'],
    ['bias NaN', () => topkGating(logits, { experts: 4, k: 1, bias: [0, NaN, 0, 0] }), RangeError,
      'Expected finite numbers for bias but bias[1] is NaN'],
    ['NaN logit', () => topkGating(new Float32Array([0, 1, 2, 3, 4, 5, NaN, 7]), { experts: 4, k: 1 }), RangeError,
      'Expected finite or -Infinity (masked) logits but token 1, expert 2 is NaN'],
    ['+Infinity logit', () => topkGating(new Float32Array([0, Infinity, 2, 3]), { experts: 4, k: 2, bias: [0, 0, 0, 0] }), RangeError,
      'Expected finite or -Infinity (masked) logits but token 0, expert 1 is Infinity'],
    ['expert range', () => topkGating(logits, { experts: 4, k: 1, expertRange: [3, 2] }), RangeError,
      'Expected integer in [3, 4] for expertRange[1] but received 2 of type number'],
    ['routeScale', () => topkGating(logits, { experts: 4, k: 1, routeScale: 0 }), RangeError,
      'Expected finite number > 0 for routeScale but received 0 of type number'],
    ['routeScale beyond float32', () => topkGating(logits, { experts: 4, k: 1, routeScale: 1e39 }), RangeError,
      'Expected number within float32 range for routeScale but received 1e+39 of type number'],
    ['threads', () => topkGating(logits, { experts: 4, k: 1, threads: 0 }), RangeError,
      'Expected integer in [1, 256] for threads but received 0 of type number'],
    ['unknown option', () => topkGating(logits, { experts: 4, k: 1, topK: 2 } as never), TypeError,
      "Unknown option 'topK' in options (expected one of: k, experts, scoring, bias, renormalize, routeScale, groups, expertRange, threads, out)"],
    ['out length', () => topkGating(logits, { experts: 4, k: 1, out: { weights: new Float32Array(1), indices: new Int32Array(2) } }), RangeError,
      'Expected Float32Array of length 2 for out.weights but received Float32Array of length 1'],
    ['tensor type', () => topkGating(new Tensor('int32', new Int32Array(4), [1, 4]) as never, { k: 1 }), TypeError,
      "Expected 'float32' for logits.type but received 'int32' of type string"],
    ['tensor experts mismatch', () => topkGating(new Tensor('float32', new Float32Array(8), [2, 4]), { experts: 8, k: 1 }), RangeError,
      "Expected 4 (the tensor's last dimension) for experts but received 8 of type number"],
  ];
  for (const [name, call, Kind, message] of cases) {
    it(name, () => {
      let err: unknown;
      try {
        call();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(Kind);
      expect((err as Error).message).toBe(message);
    });
  }

  it('rejects (not throws) from the async form, with the caller in the stack', async () => {
    const p = topkGatingAsync(new Float32Array([NaN, 0]), { experts: 2, k: 1 });
    await expect(p).rejects.toThrow(new RangeError('Expected finite or -Infinity (masked) logits but token 0, expert 0 is NaN'));
    const err = await p.catch((e: Error) => e);
    expect(err).toBeInstanceOf(RangeError);
    expect(String((err as Error).stack)).toContain('gating-topk.test');
  });
});
