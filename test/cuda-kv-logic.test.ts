// DuoKVCache({ device: 'cuda' })'s TypeScript side and the device cache's storage scheme, run
// without a GPU over a JavaScript stand-in of the addon's CUDA entry points
// (test/support/cuda-emulator.ts, written from native/cuda/attention.cu's specification) and
// compared with the CPU cache: sink and ring rows, prompt chunks longer than the ring (taken in
// pieces), rollback. The CUDA code itself is only checked by cuda-attention.test.ts on a GPU.
import { describe, expect, it, vi } from 'vitest';
import { cudaEmulator } from './support/cuda-emulator';

vi.mock('../src/cuda-binding', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/cuda-binding')>();
  const emulator = cudaEmulator();
  return { ...real, cudaDevice: () => emulator };
});

const { DuoKVCache } = await import('../src/attention/kv-cache');
const { HeadPattern } = await import('../src/attention/head-pattern');
const { ClosedError } = await import('../src/toolkit/closing');
const { attentionInputs, maxAbsDiff } = await import('./support/attention-reference');

type Options = ConstructorParameters<typeof DuoKVCache>[0];

function run(options: Options, queryHeads: number, chunks: number[], seed: number, truncateAt?: { after: number; to: number }) {
  const { kvHeads, headDim: d } = options;
  const total = chunks.reduce((a, b) => a + b, 0);
  const s = attentionInputs(total, total, queryHeads, kvHeads, d, seed);
  const cpu = new DuoKVCache(options);
  const dev = new DuoKVCache({ ...options, device: 'cuda' });
  let worst = 0;
  let t = 0;
  for (const [i, n] of chunks.entries()) {
    const q = s.q.subarray(t * queryHeads * d, (t + n) * queryHeads * d);
    const k = s.k.subarray(t * kvHeads * d, (t + n) * kvHeads * d);
    const v = s.v.subarray(t * kvHeads * d, (t + n) * kvHeads * d);
    const lseA = new Float32Array(n * queryHeads);
    const lseB = new Float32Array(n * queryHeads);
    for (let layer = 0; layer < options.layers; layer++) {
      worst = Math.max(worst, maxAbsDiff(dev.attend(layer, q, k, v, { queryHeads, lse: lseB }), cpu.attend(layer, q, k, v, { queryHeads, lse: lseA })));
      worst = Math.max(worst, maxAbsDiff(lseB, lseA));
    }
    t += n;
    if (truncateAt !== undefined && i === truncateAt.after) {
      cpu.truncate(truncateAt.to);
      dev.truncate(truncateAt.to);
      t = truncateAt.to;
    }
  }
  expect(dev.bytesUsed()).toBe(cpu.bytesUsed());
  expect(dev.bytesFullCache()).toBe(cpu.bytesFullCache());
  for (let layer = 0; layer < options.layers; layer++) expect(dev.length(layer)).toBe(cpu.length(layer));
  dev.close();
  return worst;
}

const mixed = (layers: number, kvHeads: number) =>
  HeadPattern.fromMask(Array.from({ length: layers }, (_, l) => Array.from({ length: kvHeads }, (_, h) => (h + l) % 2 === 0)));

describe("DuoKVCache({ device: 'cuda' }) over the emulated device equals the CPU cache", () => {
  it('float16, small ring: decode steps and prompt chunks far longer than the ring', () => {
    const o: Options = { layers: 2, kvHeads: 2, headDim: 16, headPattern: mixed(2, 2), sink: 3, recent: 7, maxTokens: 600, maxRollback: 4, storage: 'float16' };
    expect(run(o, 4, [37, 1, 1, 200, 5, ...Array<number>(20).fill(1), 64], 1)).toBeLessThan(1e-5);
  });

  it('no sink, maxRollback 0 (a piece of one token at a time), GQA 3', () => {
    const o: Options = { layers: 1, kvHeads: 2, headDim: 8, headPattern: mixed(1, 2), sink: 0, recent: 5, maxTokens: 300, maxRollback: 0, storage: 'float16' };
    expect(run(o, 6, [50, 1, 1, 30], 2)).toBeLessThan(1e-5);
  });

  it('bf16 within 1e-2 (the CPU kernel rounds the query and the weights to bfloat16 on AVX-512 BF16)', () => {
    const o: Options = { layers: 1, kvHeads: 2, headDim: 8, headPattern: mixed(1, 2), sink: 2, recent: 5, maxTokens: 300, storage: 'bf16' };
    expect(run(o, 4, [50, 1, 1, 30], 4)).toBeLessThan(1e-2);
  });

  it('rollback, then the same steps again', () => {
    const o: Options = { layers: 1, kvHeads: 2, headDim: 16, headPattern: mixed(1, 2), sink: 2, recent: 8, maxTokens: 400, maxRollback: 6, storage: 'float16' };
    expect(run(o, 2, [40, 1, 1, 1, 1, 1, 3, 1, 1], 3, { after: 5, to: 42 })).toBeLessThan(1e-5);
  });

  it('refuses a rollback past what the ring holds with the CPU message, and ClosedError after close', () => {
    const o: Options = { layers: 1, kvHeads: 2, headDim: 8, headPattern: mixed(1, 2), sink: 1, recent: 4, maxTokens: 100, maxRollback: 2, storage: 'float16' };
    const cpu = new DuoKVCache(o);
    const dev = new DuoKVCache({ ...o, device: 'cuda' });
    const k = new Float32Array(30 * 2 * 8).map((_, i) => Math.sin(i));
    cpu.append(0, k, k);
    dev.append(0, k, k);
    expect(() => dev.truncate(10)).toThrowError(new RangeError('Cannot truncate layer 0 from 30 to 10 tokens: its streaming heads no longer hold positions 7 to 23 (raise maxRollback, now 2)'));
    expect(() => cpu.truncate(10)).toThrowError(new RangeError('Cannot truncate layer 0 from 30 to 10 tokens: its streaming heads no longer hold positions 7 to 23 (raise maxRollback, now 2)'));
    dev.close();
    expect(() => dev.append(0, k, k)).toThrowError(new ClosedError('DuoKVCache'));
  });
});
