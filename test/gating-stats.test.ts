import { describe, expect, it } from 'vitest';

import { routerStats, topkGating } from '../src/index';
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
