// What runs without a GPU: nativeInfo().cuda says whether the CUDA part is compiled in and why it
// is off, and asking for the device without one fails with that reason instead of crashing.
import { describe, expect, it } from 'vitest';
import { HeadPattern } from '../src/attention/head-pattern';
import { DuoKVCache } from '../src/attention/kv-cache';
import { cudaProbe } from '../src/cuda-binding';
import { CudaGating } from '../src/experts/gating/cuda-gating';
import { nativeInfo } from '../src/info';
import { native } from '../src/native';
import { ClosedError } from '../src/toolkit/closing';
import { CUDA_AVAILABLE } from './support/cuda';
import { rng } from './support/random';

const info = nativeInfo().cuda;
const pattern = HeadPattern.fromMask([[true, false]]);
const options = { layers: 1, kvHeads: 2, headDim: 16, headPattern: pattern, sink: 2, recent: 4, maxTokens: 64 };

describe('nativeInfo().cuda', () => {
  it('reports a status consistent with its other fields', () => {
    expect(['available', 'not-compiled', 'no-driver', 'no-device', 'error']).toContain(info.status);
    expect(info.compiled).toBe(info.status !== 'not-compiled');
    if (info.compiled) {
      expect(info.architectures).toMatch(/^(sm|compute)_\d+( (sm|compute)_\d+)*$/);
      expect(info.runtimeVersion).toBeGreaterThanOrEqual(12000);
    } else {
      expect(info.architectures).toBeNull();
      expect(info.runtimeVersion).toBeNull();
      expect(info.reason).toMatch(/^not compiled: /);
    }
    if (info.status === 'available') {
      expect(info.reason).toBeNull();
      expect(info.devices.length).toBeGreaterThan(0);
      for (const d of info.devices) expect(d.computeCapability).toMatch(/^\d+\.\d+$/);
    } else {
      expect(info.devices).toEqual([]);
    }
  });

  it('gives cudaGetDeviceCount\'s error name and message as the reason when no driver or device answers', () => {
    if (info.status === 'no-driver') expect(info.reason).toMatch(/^no driver: cudaGetDeviceCount failed with cudaError\w+: .+/);
    if (info.status === 'no-device') expect(info.reason).toMatch(/^no device: cudaGetDeviceCount (failed with cudaError\w+: .+|found 0 devices)$/);
    if (info.status === 'error') expect(info.reason).toMatch(/^CUDA error: cudaGetDeviceCount failed with cudaError\w+: .+/);
  });

  it('keeps the CPU fields and probes once (a copy per call, the same values)', () => {
    const again = nativeInfo();
    expect(again.cuda).toEqual(info);
    expect(again.cuda).not.toBe(info);
    expect(['avx512', 'avx2', 'generic']).toContain(again.isa);
    expect(cudaProbe().status).toBe(info.status);
  });
});

describe.skipIf(CUDA_AVAILABLE)('device: cuda without a usable device', () => {
  it('DuoKVCache throws an Error naming the reason', () => {
    expect(() => new DuoKVCache({ ...options, storage: 'float16', device: 'cuda' })).toThrowError(
      new Error(`DuoKVCache({ device: 'cuda' }) needs a CUDA device, and none is usable: ${info.reason}`),
    );
  });

  it('CudaGating throws an Error naming the reason', () => {
    expect(() => new CudaGating()).toThrowError(new Error(`CudaGating needs a CUDA device, and none is usable: ${info.reason}`));
  });
});

describe("DuoKVCache's device option", () => {
  it('is checked before the device is looked for', () => {
    expect(() => new DuoKVCache({ ...options, device: 'gpu' as 'cuda' })).toThrowError(
      new RangeError("Expected one of 'cpu', 'cuda' for device but received 'gpu' of type string"),
    );
    expect(() => new DuoKVCache({ ...options, device: 'cuda' })).toThrowError(
      new RangeError("Expected 'float16' or 'bf16' with device 'cuda' for storage but received 'float32' of type string"),
    );
    expect(() => new DuoKVCache({ ...options, storage: 'int8', device: 'cuda' })).toThrowError(
      new RangeError("Expected 'float16' or 'bf16' with device 'cuda' for storage but received 'int8' of type string"),
    );
    expect(() => new DuoKVCache({ ...options, headDim: 12, storage: 'bf16', device: 'cuda' })).toThrowError(
      new RangeError("Expected a multiple of 8 with device 'cuda' for headDim but received 12 of type number"),
    );
  });

  it("defaults to 'cpu', and a CPU cache works as before", () => {
    const cache = new DuoKVCache(options);
    expect(cache.device).toBe('cpu');
    expect(new DuoKVCache({ ...options, device: 'cpu' }).device).toBe('cpu');
    cache.append(0, new Float32Array(2 * 16), new Float32Array(2 * 16));
    expect(cache.length()).toBe(1);
  });

  it('close() is idempotent and later changes throw ClosedError (CPU cache)', () => {
    const cache = new DuoKVCache(options);
    expect(cache.closed).toBe(false);
    cache.close();
    cache[Symbol.dispose]();
    expect(cache.closed).toBe(true);
    const k = new Float32Array(2 * 16);
    expect(() => cache.append(0, k, k)).toThrowError(new ClosedError('DuoKVCache'));
    expect(() => cache.attend(0, new Float32Array(4 * 16), k, k, { queryHeads: 4 })).toThrowError(ClosedError);
    expect(() => cache.truncate(0)).toThrowError(ClosedError);
    expect(() => cache.reset()).toThrowError(ClosedError);
    expect(cache.length()).toBe(0);
  });
});

describe('the raw cuda export under bad arguments', () => {
  const JUNK: unknown[] = [undefined, null, 0, -1, 1.5, Number.NaN, 2 ** 60, '', 'x', true, {}, [], () => 0, new Float32Array(3), new Uint16Array(2), new Int32Array(1), new Uint8Array(4), Symbol('s'), 3n];

  it('throws TypeError, RangeError or the not-available Error for every junk call, and never crashes', () => {
    const cuda = (native() as unknown as { cuda: Record<string, (...a: unknown[]) => unknown> }).cuda;
    const names = Object.keys(cuda).filter((k) => typeof cuda[k] === 'function');
    expect(names).toContain('info');
    const r = rng(21);
    const pick = () => JUNK[Math.floor(r() * JUNK.length)];
    for (const name of names.filter((n) => n !== 'info')) {
      for (let call = 0; call < 200; call++) {
        const args = Array.from({ length: Math.floor(r() * 18) }, pick);
        try {
          const handle = cuda[name]!(...args);
          if (handle !== undefined && typeof handle === 'object' && !ArrayBuffer.isView(handle) && name.endsWith('Open')) cuda['close']!(handle);
        } catch (err) {
          const ok = err instanceof TypeError || err instanceof RangeError || (err instanceof Error && /^CUDA is not available: /.test(err.message));
          expect(ok, `${name}(${args.map(String).join(', ')}) threw ${String(err)}`).toBe(true);
        }
      }
    }
  });
});
