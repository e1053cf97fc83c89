import { describe, expect, it } from 'vitest';

import { routerStats, routerStatsAsync, topkGating } from '../src/index';
import { normal, rng } from './support/random';
import { refStats } from './support/reference';

describe('routerStats against a float64 reference', () => {
  const rand = rng(11);
  for (const [tokens, experts, k] of [[200, 8, 2], [300, 64, 8], [50, 60, 1], [10, 384, 8]] as const) {
    for (const scoring of ['softmax', 'sigmoid'] as const) {
      it(`T=${tokens} E=${experts} k=${k} ${scoring}`, () => {
        const logits = normal(rand, tokens * experts, 2);
        for (let i = 0; i < logits.length; i += 7) logits[i] = -Infinity;
        const routing = topkGating(logits, { experts, k, scoring });
        const got = routerStats(logits, routing, { scoring });
        const ref = refStats(logits, routing.indices, experts, k, scoring);
        expect(Array.from(got.loads)).toEqual(ref.loads);
        // Loads are integers (exact); probabilities come from float32 kernels summed in float64.
        for (let e = 0; e < experts; e++) {
          expect(got.loadFraction[e]).toBeCloseTo(ref.loadFraction[e]!, 12);
          expect(Math.abs(got.meanProb[e]! - ref.meanProb[e]!)).toBeLessThan(2e-6 * ref.meanProb[e]! + 1e-9);
        }
        expect(got.maxVio).toBeCloseTo(ref.maxVio, 12);
        expect(got.cv2).toBeCloseTo(ref.cv2, 12);
        for (const key of ['auxLoss', 'zLoss', 'entropy'] as const) {
          expect(Math.abs(got[key] - ref[key]), key).toBeLessThan(2e-6 * Math.max(1, Math.abs(ref[key])));
        }
        expect(got.countedTokens).toBe(tokens);
      });
    }
  }

  it('is 1 (aux) and 0 (MaxVio, CV²) at perfect balance, any k', () => {
    const experts = 4;
    const logits = new Float32Array(8 * experts); // uniform probabilities
    const indices = new Int32Array(8 * 2).map((_, s) => s % experts);
    const s = routerStats(logits, indices, { experts, k: 2 });
    expect(s.auxLoss).toBeCloseTo(1, 12);
    expect(s.maxVio).toBe(0);
    expect(s.cv2).toBe(0);
    expect(s.entropy).toBeCloseTo(Math.log(4), 6);
    expect(s.zLoss).toBeCloseTo(Math.log(4) ** 2, 6);
  });

  it('excludes tokens with every expert masked and reports NaN ratios for an empty batch', () => {
    const logits = new Float32Array([-Infinity, -Infinity, 0, 1]);
    const s = routerStats(logits, new Int32Array([-1, 1]), { experts: 2, k: 1 });
    expect(s.countedTokens).toBe(1);
    const empty = routerStats(new Float32Array(0), new Int32Array(0), { experts: 2, k: 1 });
    expect(empty.maxVio).toBeNaN();
    expect(empty.auxLoss).toBeNaN();
  });

  it('names bad input', () => {
    expect(() => routerStats(new Float32Array(4), new Int32Array(3), { experts: 2, k: 1 })).toThrow(
      new RangeError('Expected indices of length tokens * k = 2 but received 3'),
    );
    expect(() => routerStats(new Float32Array([0, NaN]), new Int32Array(1), { experts: 2, k: 1 })).toThrow(
      new RangeError('Expected finite or -Infinity (masked) logits but token 0, expert 1 is NaN'),
    );
    expect(() => routerStats(new Float32Array(2), new Int32Array([5]), { experts: 2, k: 1 })).toThrow(
      new RangeError('Expected expert indices in [-1, experts] but indices[0] is 5'),
    );
  });
});

describe('routerStatsAsync', () => {
  const rand = rng(23);

  it('resolves with what routerStats returns, on every option', async () => {
    for (const [tokens, experts, k] of [[4096, 256, 8], [300, 64, 8], [7, 60, 1], [0, 8, 2]] as const) {
      for (const scoring of ['softmax', 'sigmoid'] as const) {
        const logits = normal(rand, tokens * experts, 2);
        for (let i = 0; i < logits.length; i += 11) logits[i] = -Infinity;
        const routing = topkGating(logits, { experts, k, scoring });
        expect(await routerStatsAsync(logits, routing, { scoring }), `T=${tokens} E=${experts} ${scoring}`).toEqual(
          routerStats(logits, routing, { scoring }),
        );
        // Indices with explicit experts and k.
        expect(await routerStatsAsync(logits, routing.indices, { experts, k, scoring })).toEqual(
          routerStats(logits, routing.indices, { experts, k, scoring }),
        );
      }
    }
  });

  it('returns a promise of the public result, whose arrays are its own', async () => {
    const logits = normal(rand, 64 * 8, 1);
    const routing = topkGating(logits, { experts: 8, k: 2 });
    const p = routerStatsAsync(logits, routing);
    expect(p).toBeInstanceOf(Promise);
    const [a, b] = await Promise.all([p, routerStatsAsync(logits, routing)]);
    expect(Object.keys(a).sort()).toEqual(
      ['auxLoss', 'countedTokens', 'cv2', 'entropy', 'loadFraction', 'loads', 'maxVio', 'meanProb', 'zLoss'],
    );
    expect(a.loads).not.toBe(b.loads);
    expect(a).toEqual(b);
  });

  it('rejects with the messages of routerStats, with the caller in the stack', async () => {
    const cases: Array<[() => unknown, () => Promise<unknown>]> = [
      [() => routerStats(new Float32Array(4), new Int32Array(3), { experts: 2, k: 1 }),
        () => routerStatsAsync(new Float32Array(4), new Int32Array(3), { experts: 2, k: 1 })],
      [() => routerStats(new Float32Array([0, NaN]), new Int32Array(1), { experts: 2, k: 1 }),
        () => routerStatsAsync(new Float32Array([0, NaN]), new Int32Array(1), { experts: 2, k: 1 })],
      [() => routerStats(new Float32Array([0, 1, 2, Infinity]), new Int32Array(2), { experts: 2, k: 1 }),
        () => routerStatsAsync(new Float32Array([0, 1, 2, Infinity]), new Int32Array(2), { experts: 2, k: 1 })],
      [() => routerStats(new Float32Array(2), new Int32Array([5]), { experts: 2, k: 1 }),
        () => routerStatsAsync(new Float32Array(2), new Int32Array([5]), { experts: 2, k: 1 })],
      [() => routerStats(new Float32Array(2), new Int32Array([0]), { experts: 2 }),
        () => routerStatsAsync(new Float32Array(2), new Int32Array([0]), { experts: 2 })],
      [() => routerStats(new Float32Array(2), new Int32Array([0]), { experts: 2, k: 1, scoring: 'relu' as never }),
        () => routerStatsAsync(new Float32Array(2), new Int32Array([0]), { experts: 2, k: 1, scoring: 'relu' as never })],
      [() => routerStats(new Float32Array(2), [0] as never, { experts: 2, k: 1 }),
        () => routerStatsAsync(new Float32Array(2), [0] as never, { experts: 2, k: 1 })],
    ];
    for (const [sync, async] of cases) {
      let want: unknown;
      try {
        sync();
      } catch (e) {
        want = e;
      }
      expect(want).toBeInstanceOf(Error);
      const got = await async().then(() => undefined, (e: unknown) => e);
      expect(got, (want as Error).message).toBeInstanceOf((want as Error).constructor);
      expect((got as Error).message).toBe((want as Error).message);
      expect((got as Error).stack).toContain('gating-stats.test');
    }
  });
});
