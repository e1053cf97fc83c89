import { describe, expect, it } from 'vitest';

import { DISPATCH_PAD, type DispatchPlan, dispatchPlan, topkGating } from '../src/index';
import { normal, rng } from './support/random';
import { refDispatch } from './support/reference';

/** Conservation: every kept slot appears exactly once, in its expert's segment; dropped ones never. */
function checkConservation(plan: DispatchPlan, indices: Int32Array) {
  const seen = new Set<number>();
  for (let e = 0; e < plan.experts; e++) {
    const begin = plan.offsets[e]!;
    const end = plan.offsets[e + 1]!;
    expect((end - begin) % plan.blockSize).toBe(0);
    expect(end - begin).toBe(Math.ceil(plan.counts[e]! / plan.blockSize) * plan.blockSize);
    let last = -1;
    for (let p = begin; p < end; p++) {
      const s = plan.permutation[p]!;
      if (p - begin >= plan.counts[e]!) {
        expect(s).toBe(DISPATCH_PAD);
        continue;
      }
      expect(indices[s]).toBe(e);
      expect(s).toBeGreaterThan(last); // token order inside a segment
      last = s;
      expect(seen.has(s)).toBe(false);
      seen.add(s);
      expect(plan.slotPosition[s]).toBe(p);
    }
    if (plan.capacity !== null) expect(plan.counts[e]).toBeLessThanOrEqual(plan.capacity);
  }
  for (const s of plan.dropped) {
    expect(seen.has(s)).toBe(false);
    expect(plan.slotPosition[s]).toBe(-1);
  }
  const routed = Array.from(indices).filter((e) => e >= 0 && e < plan.experts).length;
  expect(seen.size + plan.dropped.length).toBe(routed);
}

function randomIndices(rand: () => number, tokens: number, k: number, experts: number, skew = 0): Int32Array {
  const out = new Int32Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    const chosen = new Set<number>();
    while (chosen.size < k) chosen.add(Math.min(experts - 1, Math.floor(rand() ** (1 + skew) * experts)));
    Array.from(chosen).forEach((e, j) => (out[t * k + j] = e));
  }
  return out;
}

describe('dispatchPlan against a reference', () => {
  const rand = rng(7);
  for (const [tokens, k, experts] of [[100, 2, 8], [257, 8, 64], [64, 1, 60], [33, 3, 3], [0, 2, 4], [1000, 6, 384]] as const) {
    for (const cap of [null, 0, 1, 5, 40]) {
      for (const policy of ['position', 'probability'] as const) {
        for (const blockSize of [1, 4, 16]) {
          it(`T=${tokens} k=${k} E=${experts} capacity=${cap} ${policy} block=${blockSize}`, () => {
            const indices = randomIndices(rand, tokens, k, experts, 2);
            const weights = normal(rand, tokens * k).map(Math.abs);
            const plan = dispatchPlan(indices, { experts, k, ...(cap === null ? {} : { capacity: cap }), dropPolicy: policy, blockSize, weights });
            const ref = refDispatch(indices, k, experts, cap, policy, weights);
            expect(Array.from(plan.loads)).toEqual(ref.loads);
            expect(Array.from(plan.counts)).toEqual(ref.counts);
            expect(Array.from(plan.dropped)).toEqual(ref.dropped);
            for (let s = 0; s < indices.length; s++) expect(plan.slotPosition[s]! >= 0).toBe(ref.kept.has(s));
            checkConservation(plan, indices);
          });
        }
      }
    }
  }

  it('keeps first choices before second choices under position priority', () => {
    // Expert 0 is the second choice of tokens 0-2 and token 3's first: token 3 keeps it,
    // although its slot comes last in token order.
    const indices = new Int32Array([1, 0, 2, 0, 3, 0, 0, 1]);
    const plan = dispatchPlan(indices, { experts: 4, k: 2, capacity: 1 });
    expect(plan.permutation[plan.offsets[0]!]).toBe(6);
    expect(Array.from(plan.dropped)).toEqual([1, 3, 5, 7]);
  });

  it('derives capacity from capacityFactor with a floor', () => {
    const indices = randomIndices(rand, 512, 2, 16);
    expect(dispatchPlan(indices, { experts: 16, k: 2, capacityFactor: 1.25 }).capacity).toBe(80);
    expect(dispatchPlan(indices, { experts: 16, k: 2, capacityFactor: 0.01 }).capacity).toBe(8);
    expect(dispatchPlan(indices, { experts: 16, k: 2, capacityFactor: 0.01, minCapacity: 2 }).capacity).toBe(2);
  });

  it('ignores masked (-1) and non-local (experts) entries', () => {
    const indices = new Int32Array([0, -1, 4, 1, 4, 4]);
    const plan = dispatchPlan(indices, { experts: 4, k: 2, capacity: 1 });
    expect(Array.from(plan.loads)).toEqual([1, 1, 0, 0]);
    expect(plan.dropped.length).toBe(0);
    checkConservation(plan, indices);
  });

  it('takes k, experts and weights from a gating result', () => {
    const logits = normal(rand, 300 * 16);
    const routing = topkGating(logits, { experts: 16, k: 4 });
    const plan = dispatchPlan(routing, { capacityFactor: 1, dropPolicy: 'probability' });
    expect(plan.k).toBe(4);
    const ref = refDispatch(routing.indices, 4, 16, plan.capacity, 'probability', routing.weights);
    expect(Array.from(plan.dropped)).toEqual(ref.dropped);
    checkConservation(plan, routing.indices);
  });
});

describe('dispatchPlan input errors', () => {
  const indices = new Int32Array([0, 1, 2, 3]);
  const cases: Array<[string, () => unknown, ErrorConstructor, string]> = [
    ['wrong type', () => dispatchPlan(new Float32Array(4) as never, { experts: 4, k: 2 }), TypeError,
      'Expected Int32Array of expert indices or a topkGating result for routing but received Float32Array of length 4'],
    ['missing k', () => dispatchPlan(indices, { experts: 4 }), TypeError, 'Expected options.k when routing is an Int32Array of indices'],
    ['negative capacity', () => dispatchPlan(indices, { experts: 4, k: 2, capacity: -1 }), RangeError,
      'Expected integer in [0, 2147483647] for capacity but received -1 of type number'],
    ['both capacities', () => dispatchPlan(indices, { experts: 4, k: 2, capacity: 1, capacityFactor: 1 }), TypeError,
      'Expected either capacity or capacityFactor, not both'],
    ['bad factor', () => dispatchPlan(indices, { experts: 4, k: 2, capacityFactor: -1 }), RangeError,
      'Expected finite number > 0 for capacityFactor but received -1 of type number'],
    ['length not multiple of k', () => dispatchPlan(indices, { experts: 4, k: 3 }), RangeError,
      'Expected indices length to be a multiple of k (3) but received 4'],
    ['index out of range', () => dispatchPlan(new Int32Array([0, 9]), { experts: 4, k: 2 }), RangeError,
      'Expected expert indices in [-1, experts] but indices[1] is 9'],
    ['probability needs weights', () => dispatchPlan(indices, { experts: 4, k: 2, capacity: 1, dropPolicy: 'probability' }), TypeError,
      "Expected weights (or a topkGating result) for dropPolicy 'probability'"],
    ['weights length', () => dispatchPlan(indices, { experts: 4, k: 2, weights: new Float32Array(3) }), RangeError,
      'Expected Float32Array of length 4 for weights but received Float32Array of length 3'],
    ['block size', () => dispatchPlan(indices, { experts: 4, k: 2, blockSize: 0 }), RangeError,
      'Expected integer in [1, 65536] for blockSize but received 0 of type number'],
  ];
  for (const [name, call, Kind, message] of cases) {
    it(name, () => {
      expect(call).toThrow(Kind);
      expect(call).toThrow(message);
    });
  }
});
