import { describe, expect, it } from 'vitest';

import { BiasBalancer, MoEGate, routerLogits, routerStats, topkGating } from '../src/index';
import { normal, rng } from './support/random';

describe('BiasBalancer', () => {
  it('applies the sign rule b_i -= rate * sign(load_i - mean)', () => {
    const b = new BiasBalancer({ experts: 4, rate: 0.5 });
    expect(b.update([10, 0, 5, 5])).toBe(true);
    expect(Array.from(b.bias)).toEqual([-0.5, 0.5, 0, 0]);
    b.update(new Int32Array([10, 0, 5, 5]));
    expect(Array.from(b.bias)).toEqual([-1, 1, 0, 0]);
    expect(b.updates).toBe(2);
  });

  it('applies the proportional rule and optional centring', () => {
    const b = new BiasBalancer({ experts: 4, rate: 0.5, mode: 'proportional', center: true, initialBias: [1, 1, 1, 1] });
    b.update([8, 0, 4, 4]); // mean 4: diffs 4, -4, 0, 0 → -0.5, +0.5, 0, 0, then centred
    expect(Array.from(b.bias)).toEqual([-0.5, 0.5, 0, 0]);
  });

  it('ignores updates while frozen or with no load, and resets', () => {
    const b = new BiasBalancer({ experts: 2 });
    b.frozen = true;
    expect(b.update([3, 1])).toBe(false);
    b.frozen = false;
    expect(b.update([0, 0])).toBe(false);
    b.update([3, 1]);
    expect(b.bias[0]).toBeCloseTo(-0.001, 9);
    b.reset();
    expect(Array.from(b.bias)).toEqual([0, 0]);
  });

  it('returns a copy of the bias', () => {
    const b = new BiasBalancer({ experts: 2 });
    b.bias[0] = 5;
    expect(b.bias[0]).toBe(0);
  });

  it('names bad input', () => {
    expect(() => new BiasBalancer({ experts: 0 })).toThrow(new RangeError('Expected integer in [1, 1048576] for experts but received 0 of type number'));
    expect(() => new BiasBalancer({ experts: 2, mode: 'pid' as never })).toThrow(
      new RangeError("Expected one of 'sign', 'proportional' for mode but received 'pid' of type string"),
    );
    const b = new BiasBalancer({ experts: 2 });
    expect(() => b.update([1])).toThrow(new RangeError('Expected length 2 for loads but received Array of length 1'));
    expect(() => b.update([1, -1])).toThrow(new RangeError('Expected finite non-negative loads but loads[1] is -1'));
    expect(() => b.update('12' as never)).toThrow(TypeError);
  });
});

describe('MoEGate', () => {
  const rand = rng(3);

  it('routes logits like topkGating and counts loads', () => {
    const gate = new MoEGate({ experts: 16, k: 2, stats: true, dispatch: { capacityFactor: 1.5 } });
    const logits = normal(rand, 100 * 16);
    const r = gate.route(logits);
    expect(r.indices).toEqual(topkGating(logits, { experts: 16, k: 2 }).indices);
    expect(r.loads.reduce((a, b) => a + b, 0)).toBe(200);
    expect(r.plan?.capacity).toBe(19);
    expect(r.stats?.loads).toEqual(r.loads);
    expect(r.bias).toBeNull();
  });

  it('projects hidden states with its weight (against a float64 matmul)', async () => {
    const [tokens, hidden, experts] = [37, 70, 12];
    const h = normal(rand, tokens * hidden);
    const w = normal(rand, experts * hidden, 0.1);
    const gate = new MoEGate({ experts, k: 3, weight: w });
    expect(gate.hiddenSize).toBe(hidden);
    const r = gate.route(h);
    for (let t = 0; t < tokens; t++)
      for (let e = 0; e < experts; e++) {
        let ref = 0;
        for (let i = 0; i < hidden; i++) ref += h[t * hidden + i]! * w[e * hidden + i]!;
        expect(r.logits[t * experts + e]).toBeCloseTo(ref, 4);
      }
    const viaWorker = await gate.routeAsync(h);
    expect(viaWorker.indices).toEqual(r.indices);
    expect(routerLogits(h, w, { hiddenSize: hidden, threads: 2 })).toEqual(r.logits);
  });

  it('steers load toward balance with the loss-free bias (next batch only)', () => {
    const experts = 16;
    const skew = normal(rand, experts, 1); // some experts are systematically favoured
    const batch = (tokens = 256) => {
      const x = normal(rand, tokens * experts, 0.5);
      for (let i = 0; i < x.length; i++) x[i]! += skew[i % experts]!;
      return x;
    };
    const plain = new MoEGate({ experts, k: 2, scoring: 'sigmoid' });
    const balanced = new MoEGate({ experts, k: 2, scoring: 'sigmoid', balancer: { rate: 0.003, center: true } });
    const first = balanced.route(batch());
    expect(Array.from(first.bias!)).toEqual(new Array(experts).fill(0)); // first batch is not steered by itself
    for (let i = 0; i < 400; i++) balanced.route(batch());
    balanced.balancer!.frozen = true;
    const x = batch(4096); // large enough that sampling noise is small
    const before = routerStats(x, plain.route(x), { scoring: 'sigmoid' }).maxVio;
    const after = routerStats(x, balanced.route(x), { scoring: 'sigmoid' }).maxVio;
    expect(before).toBeGreaterThan(3); // without the bias a few experts take most tokens
    expect(after).toBeLessThan(0.3); // DeepSeek-V3 reports 0.04 on real training; this is 256-token batches

  });

  it('checks its options at construction', () => {
    expect(() => new MoEGate({ experts: 8, k: 9 })).toThrow(new RangeError('Expected integer in [1, 8] for k but received 9 of type number'));
    expect(() => new MoEGate({ experts: 6, k: 1, groups: { count: 4, topkGroups: 1 } })).toThrow(
      new RangeError('Expected groups.count to divide experts (6) but received 4'),
    );
    expect(() => new MoEGate({ experts: 8, k: 1, weight: new Float32Array(12) })).toThrow(
      new RangeError('Expected weight length to be a positive multiple of experts (8) but received 12'),
    );
    expect(() => new MoEGate({ experts: 8, k: 1, dispatch: { capacity: -2 } })).toThrow(
      new RangeError('Expected integer in [0, 2147483647] for capacity but received -2 of type number'),
    );
  });
});
