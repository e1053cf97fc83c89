import { afterAll, describe, expect, it } from 'vitest';
import { AttentionMode, AttentionType, DuoAttention } from '../src/attention/duo-attention';
import { HeadPattern } from '../src/attention/head-pattern';
import { ClosedError } from '../src/toolkit/closing';
import { attentionInputs, maxAbsDiff as maxDiff, referenceAttention } from './support/attention-reference';

const H = 8;
const KVH = 4;
const D = 32;
// Layer 0: heads 1 and 2 stream; layer 1: none.
const headPattern = HeadPattern.fromMask([[true, false, false, true], [true, true, true, true]]);

function tensors(nq: number, nk: number, seed: number) {
  return attentionInputs(nq, nk, H, KVH, D, seed);
}

const made: DuoAttention[] = [];
function duo(options: Partial<ConstructorParameters<typeof DuoAttention>[0]> = {}) {
  const d = new DuoAttention({ numHeads: H, kvHeads: KVH, headDim: D, headPattern, sink: 4, recent: 16, ...options });
  made.push(d);
  return d;
}
afterAll(async () => {
  for (const d of made) await d.close();
});

describe('DuoAttention.processAttention', () => {
  const nk = 100;
  const t = tensors(nk, nk, 1);
  const split = referenceAttention(t.q, t.k, t.v, { queryHeads: H, kvHeads: KVH, headDim: D, sink: 4, recent: 16, streaming: [false, true, true, false] }).output;
  const full = referenceAttention(t.q, t.k, t.v, { queryHeads: H, kvHeads: KVH, headDim: D }).output;

  for (const mode of Object.values(AttentionMode)) {
    it(`${mode} mode gives the split attention of the layer's pattern`, async () => {
      const r = await duo({ mode }).processAttention({ q: t.q, k: t.k, v: t.v, layer: 0 });
      expect(maxDiff(r.output, split)).toBeLessThan(1e-4);
      expect(r.ranAs).toBe(mode === AttentionMode.SEQUENTIAL ? 'sequential' : 'parallel');
      expect(r.retrievalHeads).toEqual([0, 3]);
      expect(r.streamingHeads).toEqual([1, 2]);
    });
  }

  it('counts the KV bytes attended and saved', async () => {
    const r = await duo().processAttention({ q: t.q, k: t.k, v: t.v });
    // Query i sees i + 1 positions on a retrieval head, min(i + 1, 20) on a streaming head (sink 4 + recent 16).
    const bytes = 2 * D * 4;
    let full = 0;
    let stream = 0;
    for (let i = 0; i < 100; i++) {
      full += i + 1;
      stream += Math.min(i + 1, 20);
    }
    expect(r.kvBytesAttended).toBe((2 * full + 2 * stream) * bytes);
    expect(r.kvBytesSaved).toBe(2 * (full - stream) * bytes);
    // Decode: one query at position 99 sees 4 + 16 positions on a streaming head.
    const d = await duo().processAttention({ q: t.q.subarray(99 * H * D), k: t.k, v: t.v });
    expect(d.kvBytesAttended).toBe((2 * 100 + 2 * 20) * bytes);
    expect(d.kvBytesSaved).toBe(2 * 80 * bytes);
  });

  it('ADAPTIVE splits when the queries sit past sink + recent, however few the keys', async () => {
    const s = tensors(2, 10, 5);
    const r = await duo().processAttention({ q: s.q, k: s.k, v: s.v, queryOffset: 30 });
    expect(r.ranAs).toBe('parallel');
    const want = referenceAttention(s.q, s.k, s.v, { queryHeads: H, kvHeads: KVH, headDim: D, queryOffset: 30, sink: 4, recent: 16, streaming: [false, true, true, false] }).output;
    expect(maxDiff(r.output, want)).toBeLessThan(1e-4);
    // Streaming heads see the 4 sink keys only (the window 15..31 holds no key); retrieval heads all 10.
    expect(r.kvBytesAttended).toBe(2 * (2 * 10 + 2 * 4) * 2 * D * 4);
  });

  it('uses the head pattern\'s own window unless told otherwise', () => {
    const withWindow = HeadPattern.fromJSON({ ...headPattern.toJSON(), sink: 8, recent: 32 });
    const d = duo({ headPattern: withWindow, sink: undefined, recent: undefined });
    expect([d.sink, d.recent]).toEqual([8, 32]);
  });

  it('ADAPTIVE runs every head full while the context fits in sink + recent', async () => {
    const s = tensors(20, 20, 2);
    const r = await duo().processAttention({ q: s.q, k: s.k, v: s.v });
    expect(r.ranAs).toBe('full');
    expect(maxDiff(r.output, referenceAttention(s.q, s.k, s.v, { queryHeads: H, kvHeads: KVH, headDim: D }).output)).toBeLessThan(1e-4);
  });

  it('a layer without streaming heads is full attention, quality exactly 1', async () => {
    const r = await duo().processAttention({ q: t.q, k: t.k, v: t.v, layer: 1, checkQuality: true });
    expect(r.ranAs).toBe('full');
    expect(maxDiff(r.output, full)).toBeLessThan(1e-4);
    expect(r.quality).toBe(1);
  });

  it('quality is the measured agreement with full attention', async () => {
    const r = await duo().processAttention({ q: t.q, k: t.k, v: t.v, checkQuality: true });
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < full.length; i++) {
      diff += (split[i]! - full[i]!) ** 2;
      norm += full[i]! ** 2;
    }
    expect(r.quality).toBeCloseTo(1 - Math.sqrt(diff / norm), 4);
    expect(r.quality).toBeLessThan(1);
  });

  it('TEMPORAL streams every head; CROSS is non-causal', async () => {
    const d = duo({ mode: AttentionMode.PARALLEL });
    const temporal = await d.processAttention({ q: t.q, k: t.k, v: t.v, type: AttentionType.TEMPORAL });
    expect(temporal.streamingHeads).toEqual([0, 1, 2, 3]);
    const want = referenceAttention(t.q, t.k, t.v, { queryHeads: H, kvHeads: KVH, headDim: D, sink: 4, recent: 16, streaming: [true, true, true, true] }).output;
    expect(maxDiff(temporal.output, want)).toBeLessThan(1e-4);
    const c = tensors(5, 60, 3);
    const cross = await d.processAttention({ q: c.q, k: c.k, v: c.v, type: 'cross' });
    const wantCross = referenceAttention(c.q, c.k, c.v, { queryHeads: H, kvHeads: KVH, headDim: D, causal: false, sink: 4, recent: 16, streaming: [false, true, true, false] }).output;
    expect(maxDiff(cross.output, wantCross)).toBeLessThan(1e-4);
  });

  it('the onnxruntime backend gives the native results within 1e-4', async () => {
    const native = await duo({ mode: AttentionMode.PARALLEL }).processAttention({ q: t.q, k: t.k, v: t.v });
    const ort = await duo({ mode: AttentionMode.PARALLEL, backend: 'onnxruntime' }).processAttention({ q: t.q, k: t.k, v: t.v });
    expect(maxDiff(ort.output, native.output)).toBeLessThan(1e-4);
  });

  it('keeps measured metrics', async () => {
    const d = duo();
    await d.processAttention({ q: t.q, k: t.k, v: t.v, checkQuality: true });
    await d.processAttention({ q: t.q, k: t.k, v: t.v, layer: 1 });
    const m = d.getMetrics();
    expect(m.calls).toBe(2);
    expect(m.ranAs).toEqual({ parallel: 1, sequential: 0, full: 1 });
    expect(m.qualityChecks).toBe(1);
    expect(m.retrievalShare).toBe(6 / 8);
    expect(m.meanTimeMs).toBeCloseTo(m.totalTimeMs / 2, 10);
  });
});

describe('DuoAttention errors', () => {
  it('checks options and queries', async () => {
    expect(() => duo({ numHeads: 6 })).toThrow(new RangeError('Expected numHeads to be a multiple of kvHeads (4) but received 6'));
    expect(() => duo({ headPattern: HeadPattern.allRetrieval(1, 2) })).toThrow(new RangeError('Expected headPattern with 4 KV heads per layer (kvHeads) but received 2'));
    expect(() => duo({ mode: 'hierarchical' as never })).toThrow(new RangeError("Expected one of 'parallel', 'sequential', 'adaptive' for mode but received 'hierarchical' of type string"));
    expect(() => duo({ executionProviders: ['cuda'] })).toThrow(new TypeError("Expected executionProviders only with backend: 'onnxruntime'"));
    expect(() => duo({ backend: 'onnxruntime', executionProviders: [] })).toThrow(new TypeError('Expected non-empty array of provider names for executionProviders but received Array of length 0'));
    const d = duo();
    const t = tensors(2, 2, 4);
    await expect(d.processAttention({ ...t, layer: 2 })).rejects.toThrow(new RangeError('Expected integer in [0, 1] for layer but received 2 of type number'));
    await expect(d.processAttention({ ...t, type: 'spatial' as never })).rejects.toThrow(new RangeError("Expected one of 'self', 'cross', 'temporal' for type but received 'spatial' of type string"));
    await expect(d.processAttention({ ...t, q: t.q.subarray(1) })).rejects.toThrow(RangeError);
    await expect(d.processAttention({ ...t, type: 'cross', queryOffset: 1 })).rejects.toThrow(
      new TypeError("Expected queryOffset only with a causal type ('self' or 'temporal'): a cross-attention query sees every key"),
    );
    await d.close();
    // A ClosedError (vitest compares the name too): the message is still 'DuoAttention is closed'.
    await expect(d.processAttention(t)).rejects.toThrow(new ClosedError('DuoAttention'));
    await expect(d.close()).resolves.toBeUndefined(); // idempotent
  });
});
