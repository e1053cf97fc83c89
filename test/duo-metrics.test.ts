/** The figures DuoAttention reports, from their definitions, and the facade's one check per call and its closing. */
import { describe, expect, it } from 'vitest';
import type { CheckedAttention } from '../src/attention/check';
import { DuoAttention } from '../src/attention/duo-attention';
import { DuoCounters, agreement, keysSeen, kvBytesOfCall } from '../src/attention/duo-metrics';
import { HeadPattern } from '../src/attention/head-pattern';
import { OnnxAttention } from '../src/attention/onnx-attention';
import { ClosedError } from '../src/toolkit/closing';
import { attentionInputs } from './support/attention-reference';

function call(extra: Partial<CheckedAttention>): CheckedAttention {
  return {
    nq: 1, nk: 1, queryHeads: 2, kvHeads: 2, headDim: 4, group: 1, causal: true, queryOffset: 0, scale: 0.5, sink: 0, recent: 0,
    streaming: new Uint8Array(2), anyStreaming: false, kvType: 'float32', threads: 1, ...extra,
  };
}

/** Keys query position i sees, counted one by one (the Λ mask, written out). */
function visible(i: number, nk: number, sink: number, recent: number, streaming: boolean): number {
  let n = 0;
  for (let j = 0; j < nk && j <= i; j++) if (!streaming || j < sink || j > i - recent) n++;
  return n;
}

describe('duo-metrics', () => {
  it('counts the keys each query sees, causal with an offset and cross', () => {
    for (const [nq, nk, queryOffset, sink, recent] of [[5, 40, 35, 4, 8], [3, 10, 20, 2, 3], [6, 6, 0, 1, 2], [1, 100, 99, 0, 5]] as const) {
      const c = call({ nq, nk, queryOffset, sink, recent });
      for (const streaming of [false, true]) {
        let want = 0;
        for (let t = 0; t < nq; t++) want += visible(queryOffset + t, nk, sink, recent, streaming);
        expect(keysSeen(c, streaming)).toBe(want);
      }
    }
    // Cross-attention: every query sits past the last key.
    const cross = call({ nq: 3, nk: 50, causal: false, sink: 4, recent: 10 });
    expect(keysSeen(cross, false)).toBe(3 * 50);
    expect(keysSeen(cross, true)).toBe(3 * 14);
  });

  it('turns keys seen into bytes: keys and values, per element size', () => {
    const c = call({ nq: 2, nk: 30, queryOffset: 28, sink: 2, recent: 4, kvHeads: 4, headDim: 8, kvType: 'float16' });
    const per = 2 * 8 * 2; // K and V, float16
    expect(kvBytesOfCall(c, 0)).toEqual({ attended: 4 * (29 + 30) * per, full: 4 * (29 + 30) * per });
    expect(kvBytesOfCall(c, 3)).toEqual({ attended: (1 * (29 + 30) + 3 * (6 + 6)) * per, full: 4 * (29 + 30) * per });
  });

  it('measures agreement as 1 - relative L2 error, floored at 0', () => {
    expect(agreement(Float32Array.of(1, 2), Float32Array.of(1, 2))).toBe(1);
    expect(agreement(Float32Array.of(3, 4), Float32Array.of(3, 0))).toBe(0); // error 4/3 of the norm
    expect(agreement(Float32Array.of(0.9, 0), Float32Array.of(1, 0))).toBeCloseTo(0.9, 6);
    expect(agreement(Float32Array.of(0, 0), Float32Array.of(0, 0))).toBe(1);
    expect(agreement(Float32Array.of(1, 0), Float32Array.of(0, 0))).toBe(0);
  });

  it('sums calls into counters', () => {
    const m = new DuoCounters();
    expect(m.snapshot()).toEqual({
      calls: 0, totalTimeMs: 0, meanTimeMs: 0, kvBytesAttended: 0, kvBytesSaved: 0, ranAs: { parallel: 0, sequential: 0, full: 0 },
      qualityChecks: 0, meanQuality: null, retrievalShare: 0,
    });
    m.record({ ranAs: 'parallel', timeMs: 2, kvBytesAttended: 10, kvBytesSaved: 30, quality: 0.5, retrievalHeads: 1, kvHeads: 4 });
    m.record({ ranAs: 'full', timeMs: 4, kvBytesAttended: 40, kvBytesSaved: 0, retrievalHeads: 4, kvHeads: 4 });
    const s = m.snapshot();
    expect(s).toEqual({
      calls: 2, totalTimeMs: 6, meanTimeMs: 3, kvBytesAttended: 50, kvBytesSaved: 30, ranAs: { parallel: 1, sequential: 0, full: 1 },
      qualityChecks: 1, meanQuality: 0.5, retrievalShare: 5 / 8,
    });
    s.ranAs.full = 9; // a copy
    expect(m.snapshot().ranAs.full).toBe(1);
  });
});

describe('DuoAttention, once per call', () => {
  const t = attentionInputs(40, 40, 4, 2, 8, 7);
  const headPattern = HeadPattern.fromMask([[false, true]]);

  for (const backend of ['native', 'onnxruntime'] as const) {
    it(`reads each field of a query once (${backend}): what was checked is what runs`, async () => {
      await using duo = new DuoAttention({ numHeads: 4, kvHeads: 2, headDim: 8, headPattern, sink: 2, recent: 4, backend, mode: 'sequential' });
      const reads: Record<string, number> = {};
      const query = {};
      for (const [key, value] of Object.entries({ ...t, layer: 0, checkQuality: true })) {
        Object.defineProperty(query, key, {
          enumerable: true,
          get() {
            reads[key] = (reads[key] ?? 0) + 1;
            return value;
          },
        });
      }
      const r = await duo.processAttention(query as never);
      expect(r.quality).toBeGreaterThan(0);
      expect(reads).toEqual({ q: 1, k: 1, v: 1, layer: 1, checkQuality: 1 });
    });
  }

  it('closes with ClosedError, idempotently, and through Symbol.asyncDispose', async () => {
    const duo = new DuoAttention({ numHeads: 4, kvHeads: 2, headDim: 8, headPattern, backend: 'onnxruntime' });
    await duo.processAttention({ ...t, layer: 0 });
    const first = duo.close();
    expect(duo.close()).toBe(first);
    await first;
    await expect(duo.processAttention(t)).rejects.toBeInstanceOf(ClosedError);
    let disposed: DuoAttention;
    {
      await using d = new DuoAttention({ numHeads: 4, kvHeads: 2, headDim: 8 });
      disposed = d;
    }
    await expect(disposed.processAttention(t)).rejects.toThrow(new ClosedError('DuoAttention'));

    const ort = await OnnxAttention.create();
    const pending = ort.run(t.q, t.k, t.v, { queryHeads: 4, kvHeads: 2, headDim: 8 });
    await ort[Symbol.asyncDispose]();
    await expect(pending).resolves.toHaveLength(t.q.length); // a call made before close finishes
    expect(ort.closed).toBe(true);
    expect(ort.sessions).toBe(0);
    await expect(ort.run(t.q, t.k, t.v, { queryHeads: 4, kvHeads: 2, headDim: 8 })).rejects.toThrow(new ClosedError('OnnxAttention'));
    await expect(ort.close()).resolves.toBeUndefined();
  });
});
