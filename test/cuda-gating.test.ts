// The device gating kernels against the CPU ones (issue 21): identical indices, weights within
// 1e-6, identical dispatch plans. Needs a CUDA device; skipped with the reason without one.
import { afterAll, describe, expect, it } from 'vitest';
import { CudaGating } from '../src/experts/gating/cuda-gating';
import { dispatchPlan } from '../src/experts/gating/dispatch-plan';
import { type TopkGatingOptions, topkGating } from '../src/experts/gating/topk-gating';
import { ClosedError } from '../src/toolkit/closing';
import { CUDA_AVAILABLE, CUDA_SKIP } from './support/cuda';
import { normal, rng, ties } from './support/random';

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** Cases over the CPU kernel's paths: token tiles and rows, fast and general, groups, masks, ranges. */
const CASES: { name: string; tokens: number; experts: number; options: Omit<TopkGatingOptions, 'experts'>; bias?: boolean; mask?: number }[] = [
  { name: 'softmax E=8 k=2', tokens: 4096, experts: 8, options: { k: 2 } },
  { name: 'softmax E=64 k=8 (tiles)', tokens: 4096, experts: 64, options: { k: 8 } },
  { name: 'softmax E=64 k=6 not renormalised', tokens: 3000, experts: 64, options: { k: 6, renormalize: false } },
  { name: 'softmax E=160 k=6 (rows: the normaliser in 16 partials)', tokens: 2048, experts: 160, options: { k: 6, renormalize: false } },
  { name: 'softmax E=600 k=2 (rows)', tokens: 1024, experts: 600, options: { k: 2 } },
  { name: 'sigmoid E=64 k=4', tokens: 2048, experts: 64, options: { k: 4, scoring: 'sigmoid' } },
  {
    name: 'DeepSeek-V3: sigmoid, bias, 8 groups top-4, route scale 2.5',
    tokens: 4096, experts: 256, bias: true, options: { k: 8, scoring: 'sigmoid', routeScale: 2.5, groups: { count: 8, topkGroups: 4 } },
  },
  { name: 'softmax with bias E=128 k=8, groups scored by max', tokens: 2048, experts: 128, bias: true, options: { k: 8, groups: { count: 16, topkGroups: 3, score: 'max' } } },
  { name: 'softmax + bias E=2048 k=16 (rows)', tokens: 512, experts: 2048, bias: true, options: { k: 16, renormalize: false } },
  { name: 'k=32, expert range [16, 48)', tokens: 1024, experts: 64, options: { k: 32, expertRange: [16, 48] } },
  { name: 'masked experts (-Infinity), some rows all masked', tokens: 1024, experts: 32, options: { k: 4 }, mask: 0.6 },
  { name: 'ties (small integer logits)', tokens: 2048, experts: 16, options: { k: 3, scoring: 'sigmoid' }, bias: false },
];

describe.skipIf(!CUDA_AVAILABLE)(`CudaGating.topk equals topkGating${CUDA_SKIP}`, () => {
  const gate = CUDA_AVAILABLE ? new CudaGating() : (null as unknown as CudaGating);
  afterAll(() => gate?.close());

  it.each(CASES)('$name', ({ tokens, experts, options, bias, mask, name }) => {
    const r = rng(tokens * 31 + experts);
    const logits = name.startsWith('ties') ? ties(r, tokens * experts, 4) : normal(r, tokens * experts, 2);
    if (mask !== undefined) {
      for (let i = 0; i < logits.length; i++) if (r() < mask) logits[i] = -Infinity;
      logits.fill(-Infinity, 0, experts); // token 0: every expert masked
    }
    const o = { ...options, experts, ...(bias ? { bias: normal(r, experts, 0.05) } : {}) };
    const cpu = topkGating(logits, o);
    const dev = gate.topk(logits, o);
    expect(dev.indices).toEqual(cpu.indices);
    expect(maxAbsDiff(dev.weights, cpu.weights)).toBeLessThanOrEqual(1e-6);
    expect([dev.tokens, dev.experts, dev.k]).toEqual([cpu.tokens, cpu.experts, cpu.k]);
  });

  it('rejects NaN and +Infinity logits with the CPU message', () => {
    const logits = normal(rng(5), 64 * 8);
    logits[3 * 8 + 5] = Number.NaN;
    let cpuError: unknown;
    try {
      topkGating(logits, { experts: 8, k: 2 });
    } catch (err) {
      cpuError = err;
    }
    expect(() => gate.topk(logits, { experts: 8, k: 2 })).toThrowError(cpuError as Error);
  });

  it('refuses k > 32 and more than 64 groups on the device', () => {
    const logits = normal(rng(6), 4 * 128);
    expect(() => gate.topk(logits, { experts: 128, k: 33 })).toThrowError(
      new RangeError('Expected integer in [1, 32] on the device for k but received 33 of type number'),
    );
    expect(() => gate.topk(logits, { experts: 128, k: 2, groups: { count: 128, topkGroups: 2 } })).toThrowError(
      new RangeError('Expected integer in [1, 64] on the device for groups.count but received 128 of type number'),
    );
  });
});

describe.skipIf(!CUDA_AVAILABLE)(`CudaGating.dispatchPlan equals dispatchPlan${CUDA_SKIP}`, () => {
  const gate = CUDA_AVAILABLE ? new CudaGating() : (null as unknown as CudaGating);
  afterAll(() => gate?.close());

  it.each([
    { name: 'dropless, block 1', options: {} },
    { name: 'dropless, block 64', options: { blockSize: 64 } },
    { name: 'capacity factor 1.0 (position drops)', options: { capacityFactor: 1.0, blockSize: 16 } },
    { name: 'capacity 0', options: { capacity: 0 } },
    { name: 'capacity 3', options: { capacity: 3, blockSize: 4 } },
  ])('$name: from the routing still on the device, and from host indices', ({ options }) => {
    const logits = normal(rng(11), 5000 * 64, 2);
    const routing = gate.topk(logits, { experts: 64, k: 6 });
    const cpu = dispatchPlan(routing, options);
    expect(gate.dispatchPlan(routing, options)).toEqual(cpu);
    expect(gate.dispatchPlan(routing.indices.slice(), { ...options, k: 6, experts: 64 })).toEqual(cpu);
  });

  it('skips -1 and out-of-range (experts) entries like the CPU, and names an invalid one', () => {
    const r = rng(12);
    const indices = Int32Array.from({ length: 3000 }, () => Math.floor(r() * 18) - 1); // -1 .. 16, experts = 16
    const options = { k: 3, experts: 16, capacity: 40, blockSize: 8 };
    expect(gate.dispatchPlan(indices, options)).toEqual(dispatchPlan(indices, options));
    indices[77] = 17;
    expect(() => gate.dispatchPlan(indices, options)).toThrowError(new RangeError('Expected expert indices in [-1, experts] but indices[77] is 17'));
  });

  it("refuses dropPolicy 'probability' with a capacity", () => {
    const routing = gate.topk(normal(rng(13), 64 * 8), { experts: 8, k: 2 });
    expect(() => gate.dispatchPlan(routing, { capacity: 4, dropPolicy: 'probability' })).toThrowError(
      new RangeError("Expected 'position' on the device (the CPU dispatchPlan drops by probability) for dropPolicy but received 'probability' of type string"),
    );
  });
});

describe.skipIf(!CUDA_AVAILABLE)(`CudaGating lifecycle${CUDA_SKIP}`, () => {
  it('close() frees once; later calls throw ClosedError', () => {
    const gate = new CudaGating();
    gate.topk(normal(rng(1), 8 * 4), { experts: 4, k: 1 });
    gate.close();
    gate[Symbol.dispose]();
    expect(gate.closed).toBe(true);
    expect(() => gate.topk(normal(rng(1), 8 * 4), { experts: 4, k: 1 })).toThrowError(new ClosedError('CudaGating'));
  });
});
