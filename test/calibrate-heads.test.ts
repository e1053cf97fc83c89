import { describe, expect, it } from 'vitest';

import { type CalibrateOptions, type CalibrationSample, calibrateHeads } from '../src/attention/calibrate';
import { referenceAttention } from './support/attention-reference';
import { normal, rng } from './support/random';

const shape = { layers: 2, queryHeads: 8, kvHeads: 4, headDim: 16 };
const D = shape.headDim;

/**
 * One text's Q/K/V for one layer. Local KV heads: each query is 4 × the previous token's key, so
 * its softmax sits inside the recent window. A planted retrieval head: eight "needle" keys at
 * early positions share a direction u with every query of the head (all other keys have u
 * projected out), so its queries look far back, past any sink + recent window used here.
 */
function capture(seed: number, layer: number, n: number, planted?: number): CalibrationSample {
  const { queryHeads: hq, kvHeads: hkv } = shape;
  const rand = rng(seed);
  const k = normal(rand, n * hkv * D);
  const v = normal(rand, n * hkv * D);
  const noise = normal(rand, n * hq * D, 0.1);
  const q = new Float32Array(n * hq * D);
  const group = hq / hkv;
  for (let g = 0; g < hkv; g++) {
    const key = (j: number) => k.subarray((j * hkv + g) * D, (j * hkv + g + 1) * D);
    const u = normal(rand, D);
    const norm = Math.hypot(...u);
    u.forEach((x, e) => (u[e] = x / norm));
    if (g === planted) {
      for (let j = 0; j < n; j++) {
        const kj = key(j);
        const dot = kj.reduce((s, x, e) => s + x * u[e]!, 0);
        kj.forEach((x, e) => (kj[e] = x - dot * u[e]!));
      }
      for (let j = 8; j < 96; j += 11) key(j).forEach((x, e, kj) => (kj[e] = 4 * u[e]! + 0.1 * x));
    }
    for (let t = 0; t < n; t++) {
      for (let h = g * group; h < (g + 1) * group; h++) {
        const at = (t * hq + h) * D;
        const prev = key(Math.max(0, t - 1));
        for (let e = 0; e < D; e++) q[at + e] = (g === planted ? 6 * u[e]! : 4 * prev[e]!) + noise[at + e]!;
      }
    }
  }
  return { layer, q, k, v };
}

/** The TSDoc definitions of both scores, on the float64 reference, averaged as documented. */
function referenceScores(samples: CalibrationSample[], o: { sink: number; recent: number; lastQueries?: number }) {
  const { layers, queryHeads: hq, kvHeads: hkv } = shape;
  const error = new Float64Array(layers * hkv);
  const mass = new Float64Array(layers * hkv);
  const count = new Array<number>(layers).fill(0);
  for (const s of samples) {
    const n = s.k.length / (hkv * D);
    const start = Math.max(o.sink + o.recent, n - (o.lastQueries ?? n));
    const q = s.q.subarray(start * hq * D);
    const base = { queryHeads: hq, kvHeads: hkv, headDim: D, sink: o.sink, recent: o.recent, queryOffset: start };
    const full = referenceAttention(q, s.k, s.v, base);
    const stream = referenceAttention(q, s.k, s.v, { ...base, streaming: new Array<boolean>(hkv).fill(true) });
    const rows = (n - start) * (hq / hkv);
    for (let r = 0; r < (n - start) * hq; r++) {
      const g = Math.floor((r % hq) / (hq / hkv));
      let diff = 0;
      let norm = 0;
      for (let e = 0; e < D; e++) {
        diff += (full.output[r * D + e]! - stream.output[r * D + e]!) ** 2;
        norm += full.output[r * D + e]! ** 2;
      }
      const i = s.layer * hkv + g;
      error[i] = error[i]! + diff / norm / rows;
      mass[i] = mass[i]! + (1 - Math.exp(stream.lse[r]! - full.lse[r]!)) / rows;
    }
    count[s.layer]! += 1;
  }
  return { error: error.map((x, i) => x / count[Math.floor(i / hkv)]!), mass: mass.map((x, i) => x / count[Math.floor(i / hkv)]!) };
}

const argmax = (a: ArrayLike<number>) => Array.from(a).reduce((best, x, i, all) => (x > all[best]! ? i : best), 0);

describe('calibrateHeads', () => {
  // Layer 1's KV head 2 is the planted retrieval head; two texts per layer.
  const samples = [capture(1, 0, 192), capture(2, 1, 192, 2), capture(3, 0, 160), capture(4, 1, 160, 2)];
  const options: CalibrateOptions = { ...shape, sink: 4, recent: 16, retrievalRatio: 1 / 8, threads: 2 };

  it.each(['output-error', 'attention-mass', 'both'] as const)('ranks a planted retrieval head first (%s)', async (method) => {
    const result = await calibrateHeads(samples, { ...options, method, lastQueries: 64 });
    expect(argmax(result.scores)).toBe(1 * 4 + 2);
    expect(result.pattern.retrievalHeads(1)).toEqual([2]);
    expect(result.pattern.retrievalHeads(0)).toEqual([]);
    expect([result.pattern.sink, result.pattern.recent]).toEqual([4, 16]);
    expect(result.method).toBe(method);
    expect([result.samples, result.tokens]).toEqual([4, 4 * 64]);
    // A clear margin, not a near-tie: the planted head loses most of its attention to the window.
    const sorted = Array.from(result.scores).sort((a, b) => b - a);
    expect(sorted[0]! / sorted[1]!).toBeGreaterThan(3);
  });

  it('matches the float64 definitions of both scores', async () => {
    for (const lastQueries of [undefined, 40]) {
      const o = { sink: 4, recent: 16, lastQueries };
      const ref = referenceScores(samples, o);
      const result = await calibrateHeads(samples, { ...options, ...o, method: 'both' });
      for (let i = 0; i < ref.error.length; i++) {
        expect(result.outputError![i]).toBeCloseTo(ref.error[i]!, 4);
        expect(result.attentionMass![i]).toBeCloseTo(ref.mass[i]!, 4);
        const combined = (ref.error[i]! / Math.max(...ref.error) + ref.mass[i]! / Math.max(...ref.mass)) / 2;
        expect(result.scores[i]).toBeCloseTo(combined, 4);
      }
      // Positions before sink + recent are not scored: they see the same keys either way.
      expect(result.tokens).toBe(lastQueries === undefined ? 192 - 20 + 192 - 20 + 160 - 20 + 160 - 20 : 4 * 40);
    }
  });

  it('reads an async iterator and reports progress', async () => {
    async function* stream() {
      yield* samples;
    }
    const seen: Array<[number, number | undefined]> = [];
    const result = await calibrateHeads(stream(), { ...options, method: 'attention-mass', lastQueries: 8, onProgress: (d, t) => seen.push([d, t]) });
    expect(seen).toEqual([[1, undefined], [2, undefined], [3, undefined], [4, undefined]]);
    expect(result.outputError).toBeUndefined();
    expect(argmax(result.attentionMass!)).toBe(6);
    const counted: number[] = [];
    await calibrateHeads(samples, { ...options, lastQueries: 8, onProgress: (d, t) => counted.push(d * 10 + t!) });
    expect(counted).toEqual([14, 24, 34, 44]);
  });

  it('rejects bad samples and options with messages naming them', async () => {
    const s = samples[0]!;
    await expect(calibrateHeads([capture(5, 0, 20)], options)).rejects.toThrow(
      new RangeError('Expected more than sink + recent = 20 tokens in samples[0] (layer 0) but received 20: no position loses keys to the window'),
    );
    await expect(calibrateHeads([s], options)).rejects.toThrow(new RangeError('Expected at least one sample for every layer but layer 1 of 2 has none'));
    await expect(calibrateHeads([{ ...s, layer: 2 }], options)).rejects.toThrow(
      new RangeError('Expected integer in [0, 1] for samples[0].layer but received 2 of type number'),
    );
    await expect(calibrateHeads([{ ...s, q: s.q.subarray(8) }], options)).rejects.toThrow(
      new RangeError(`Expected Float32Array of length ${s.q.length} for samples[0].q but received Float32Array of length ${s.q.length - 8}`),
    );
    await expect(calibrateHeads([{ ...s, k: s.k.subarray(3) }], options)).rejects.toThrow(
      new RangeError(`Expected Float32Array of n × 4 × 16 (n >= 1) for samples[0].k but received Float32Array of length ${s.k.length - 3}`),
    );
    await expect(calibrateHeads([{ ...s, v: Array.from(s.v) as never }], options)).rejects.toThrow(
      new TypeError(`Expected Float32Array for samples[0].v but received Array of length ${s.v.length}`),
    );
    await expect(calibrateHeads([null as never], options)).rejects.toThrow(new TypeError('Expected { layer, q, k, v } object for samples[0] but received null'));
    await expect(calibrateHeads(42 as never, options)).rejects.toThrow(
      new TypeError('Expected an array, iterable or async iterable of samples for samples but received 42 of type number'),
    );
    await expect(calibrateHeads(samples, { ...options, queryHeads: 6 })).rejects.toThrow(
      new RangeError('Expected options.queryHeads to be a multiple of kvHeads (4) but received 6'),
    );
    await expect(calibrateHeads(samples, { ...options, method: 'mass' as never })).rejects.toThrow(
      new RangeError("Expected one of 'output-error', 'attention-mass', 'both' for options.method but received 'mass' of type string"),
    );
    await expect(calibrateHeads(samples, { ...options, recent: 0 })).rejects.toThrow(
      new RangeError('Expected integer >= 1 for options.recent but received 0 of type number'),
    );
    await expect(calibrateHeads(samples, { ...options, lastQueries: 0 })).rejects.toThrow(
      new RangeError('Expected integer >= 1 for options.lastQueries but received 0 of type number'),
    );
    await expect(calibrateHeads(samples, { ...options, ratio: 0.5 } as never)).rejects.toThrow(
      /^Unknown option 'ratio' in options \(expected one of: layers, queryHeads, kvHeads, headDim, sink, recent, retrievalRatio, method, lastQueries, scale, threads, onProgress\)$/,
    );
  });
});
