// The device gating kernels against the CPU ones (issue 21): identical indices, weights within
// 1e-6, identical dispatch plans. Needs a CUDA device; skipped with the reason without one.
import { afterAll, describe, expect, it } from 'vitest';
import { CudaGating } from '../src/experts/gating/cuda-gating';
import { dispatchPlan } from '../src/experts/gating/dispatch-plan';
import { topkGating } from '../src/experts/gating/topk-gating';
import { ClosedError } from '../src/toolkit/closing';
import { CUDA_AVAILABLE, CUDA_SKIP } from './support/cuda';
import { GATING_CASES as CASES, caseInputs } from './support/gating-cases';
import { normal, rng } from './support/random';

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe.skipIf(!CUDA_AVAILABLE)(`CudaGating.topk equals topkGating${CUDA_SKIP}`, () => {
  const gate = CUDA_AVAILABLE ? new CudaGating() : (null as unknown as CudaGating);
  afterAll(() => gate?.close());

  it.each(CASES)('$name', (c) => {
    const { logits, options: o } = caseInputs(c);
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
