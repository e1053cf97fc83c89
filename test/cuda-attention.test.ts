// DuoKVCache({ device: 'cuda' }) against the CPU cache of the same storage type (issue 21):
// outputs within 1e-3 for float16 KV (max absolute difference), through decode, chunked
// prefill, streaming rings, GQA and split-K. Needs a CUDA device; skipped with the reason without one.
import { describe, expect, it } from 'vitest';
import { toFloat16 } from '../src/attention/float16';
import { HeadPattern } from '../src/attention/head-pattern';
import { DuoKVCache, type DuoKVCacheOptions } from '../src/attention/kv-cache';
import { ClosedError } from '../src/toolkit/closing';
import { attentionInputs, maxAbsDiff } from './support/attention-reference';
import { CUDA_AVAILABLE, CUDA_SKIP } from './support/cuda';

/** Runs the same chunks through both caches and returns the largest output and lse differences. */
function compare(options: DuoKVCacheOptions, queryHeads: number, chunks: number[], seed: number) {
  const { kvHeads, headDim: d } = options;
  const total = chunks.reduce((a, b) => a + b, 0);
  const s = attentionInputs(total, total, queryHeads, kvHeads, d, seed);
  const cpu = new DuoKVCache(options);
  const dev = new DuoKVCache({ ...options, device: 'cuda' });
  let worst = 0;
  let worstLse = 0;
  try {
    for (let layer = 0; layer < options.layers; layer++) {
      let t = 0;
      for (const n of chunks) {
        const q = s.q.subarray(t * queryHeads * d, (t + n) * queryHeads * d);
        const k = s.k.subarray(t * kvHeads * d, (t + n) * kvHeads * d);
        const v = s.v.subarray(t * kvHeads * d, (t + n) * kvHeads * d);
        const lseCpu = new Float32Array(n * queryHeads);
        const lseDev = new Float32Array(n * queryHeads);
        const a = cpu.attend(layer, q, k, v, { queryHeads, lse: lseCpu });
        const b = dev.attend(layer, q, k, v, { queryHeads, lse: lseDev });
        worst = Math.max(worst, maxAbsDiff(b, a));
        worstLse = Math.max(worstLse, maxAbsDiff(lseDev, lseCpu));
        t += n;
      }
      expect(dev.length(layer)).toBe(cpu.length(layer));
    }
    expect(dev.bytesUsed()).toBe(cpu.bytesUsed());
    expect(dev.bytesFullCache()).toBe(cpu.bytesFullCache());
  } finally {
    dev.close();
  }
  return { worst, worstLse };
}

const mixed = (layers: number, kvHeads: number) =>
  HeadPattern.fromMask(Array.from({ length: layers }, (_, l) => Array.from({ length: kvHeads }, (_, h) => (h + l) % 2 === 0)));

describe.skipIf(!CUDA_AVAILABLE)(`DuoKVCache on the device equals the CPU cache${CUDA_SKIP}`, () => {
  it('float16, GQA 32 / 8 × 128: a 3,000-token prompt in chunks, then 40 decode steps (several splits)', () => {
    const o: DuoKVCacheOptions = { layers: 1, kvHeads: 8, headDim: 128, headPattern: mixed(1, 8), sink: 64, recent: 256, maxTokens: 4096, storage: 'float16' };
    const { worst, worstLse } = compare(o, 32, [1000, 1500, 500, ...Array<number>(40).fill(1)], 1);
    expect(worst).toBeLessThanOrEqual(1e-3);
    expect(worstLse).toBeLessThanOrEqual(1e-3);
  });

  it('float16, 2 layers, 8 / 2 × 64, small window: the ring wraps many times, prompt chunks longer than the ring', () => {
    const o: DuoKVCacheOptions = { layers: 2, kvHeads: 2, headDim: 64, headPattern: mixed(2, 2), sink: 3, recent: 7, maxTokens: 1024, maxRollback: 4, storage: 'float16' };
    const { worst } = compare(o, 8, [37, 1, 1, 200, 5, ...Array<number>(30).fill(1)], 2);
    expect(worst).toBeLessThanOrEqual(1e-3);
  });

  it('float16, 12 query heads per KV head (two blocks of query heads), all heads streaming or all retrieval', () => {
    for (const streaming of [true, false]) {
      const o: DuoKVCacheOptions = {
        layers: 1, kvHeads: 2, headDim: 32, headPattern: HeadPattern.fromMask([[!streaming, !streaming]]), sink: 16, recent: 100, maxTokens: 2048, storage: 'float16',
      };
      expect(compare(o, 24, [700, 1, 1, 1], 3).worst).toBeLessThanOrEqual(1e-3);
    }
  });

  it('bf16 within 1e-2 (the CPU rounds the query and weights to bfloat16 on AVX-512 BF16; the device keeps them float32)', () => {
    const o: DuoKVCacheOptions = { layers: 1, kvHeads: 4, headDim: 128, headPattern: mixed(1, 4), sink: 8, recent: 64, maxTokens: 2048, storage: 'bf16' };
    expect(compare(o, 16, [900, 1, 1, 1, 1], 4).worst).toBeLessThanOrEqual(1e-2);
  });

  it('float16 keys given as float16 bits (Uint16Array) give the same outputs as the same keys given as float32', () => {
    const o: DuoKVCacheOptions = { layers: 1, kvHeads: 2, headDim: 64, headPattern: mixed(1, 2), sink: 4, recent: 32, maxTokens: 512, storage: 'float16', device: 'cuda' };
    const s = attentionInputs(100, 100, 4, 2, 64, 5);
    const a = new DuoKVCache(o);
    const b = new DuoKVCache(o);
    try {
      const fromF32 = a.attend(0, s.q, s.k, s.v, { queryHeads: 4 });
      const fromBits = b.attend(0, s.q, toFloat16(s.k), toFloat16(s.v), { queryHeads: 4 });
      expect(fromBits).toEqual(fromF32);
    } finally {
      a.close();
      b.close();
    }
  });

  it('truncate rolls back like the CPU cache (same outputs after it), and refuses what the ring no longer holds', () => {
    const o: DuoKVCacheOptions = { layers: 1, kvHeads: 2, headDim: 64, headPattern: mixed(1, 2), sink: 2, recent: 8, maxTokens: 512, maxRollback: 4, storage: 'float16' };
    const s = attentionInputs(120, 120, 4, 2, 64, 6);
    const cpu = new DuoKVCache(o);
    const dev = new DuoKVCache({ ...o, device: 'cuda' });
    const step = (c: DuoKVCache, t: number) =>
      c.attend(0, s.q.subarray(t * 256, (t + 1) * 256), s.k.subarray(t * 128, (t + 1) * 128), s.v.subarray(t * 128, (t + 1) * 128), { queryHeads: 4 });
    for (let t = 0; t < 100; t++) {
      step(cpu, t);
      step(dev, t);
    }
    cpu.truncate(97);
    dev.truncate(97);
    expect(maxAbsDiff(step(dev, 97), step(cpu, 97))).toBeLessThanOrEqual(1e-3);
    let cpuError: unknown;
    try {
      cpu.truncate(50);
    } catch (err) {
      cpuError = err;
    }
    expect(() => dev.truncate(50)).toThrowError(cpuError as Error);
    dev.close();
  });

  it('holds device memory until close(); later calls throw ClosedError', () => {
    const o: DuoKVCacheOptions = { layers: 2, kvHeads: 2, headDim: 64, headPattern: mixed(2, 2), sink: 2, recent: 8, maxTokens: 512, storage: 'float16', device: 'cuda' };
    const cache = new DuoKVCache(o);
    expect(cache.device).toBe('cuda');
    expect(cache.bytesAllocated()).toBeGreaterThan(0);
    cache.close();
    cache.close();
    expect(cache.bytesAllocated()).toBe(0);
    expect(() => cache.append(0, new Float32Array(128), new Float32Array(128))).toThrowError(new ClosedError('DuoKVCache'));
  });
});
