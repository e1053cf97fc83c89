/**
 * LlamaDecoder with a DuoAttention head pattern: streaming heads attend exactly sink + recent
 * (logits at every position and decode step against a float64 reference applying the Λ mask per
 * KV head), rollback and prefix reuse give a fresh run's tokens, calibration on the model scores
 * heads as calibrateHeads does on the reference's captures.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadPattern, LlamaDecoder, calibrateHeads } from '../src/index';
import { makeTinyHfModel } from '../scripts/make-tiny-model.mjs';
import { llamaReference, type ReferenceModel } from './support/llama-reference';

let root: string;
let model: ReferenceModel & { dir: string };
const SINK = 4;
const RECENT = 8;
// Layer 0 streams KV head 1, layer 1 streams KV head 0.
const PATTERN = HeadPattern.fromMask([[true, false], [false, true]], { layers: 2, kvHeads: 2, sink: SINK, recent: RECENT });
const streaming = (l: number, h: number) => !PATTERN.isRetrieval(l, h);
const ids = (n: number, seed = 1) => Array.from({ length: n }, (_, i) => (i * 7919 + seed * 104729) % 350);

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'capibara-llama-duo-'));
  model = (await makeTinyHfModel(join(root, 'tiny'), {})) as never;
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function worstDiff(got: Float32Array, want: Float64Array[], V: number, from = 0): number {
  let m = 0;
  want.slice(from).forEach((row, t) => {
    for (let i = 0; i < V; i++) m = Math.max(m, Math.abs(got[t * V + i]! - row[i]!));
  });
  return m;
}

describe('streaming heads attend exactly sink + recent', () => {
  it.each([40, 5, 1])('at every prompt position, prefill chunk %i', async (chunk) => {
    const d = await LlamaDecoder.load(model.dir, { headPattern: PATTERN, threads: 1, prefillChunk: chunk });
    const seq = ids(40);
    const got = await d.logits(seq, { lastPositions: seq.length });
    const duo = llamaReference(model, seq, { streaming, sink: SINK, recent: RECENT }).logits;
    const full = llamaReference(model, seq).logits;
    const V = d.info.vocabSize;
    expect(worstDiff(got, duo, V)).toBeLessThan(1e-4);
    // The first sink + recent positions see every key either way; later ones lose keys to the window.
    expect(worstDiff(got.subarray(0, (SINK + RECENT) * V), full.slice(0, SINK + RECENT), V)).toBeLessThan(1e-4);
    expect(worstDiff(got.subarray((SINK + RECENT) * V), full.slice(SINK + RECENT), V)).toBeGreaterThan(1e-2);
    await d.close();
  });

  it('at every decode step past the window', async () => {
    const d = await LlamaDecoder.load(model.dir, { headPattern: PATTERN, threads: 1 });
    const seq = ids(16, 2);
    const r = await d.generate(seq, { maxTokens: 30, temperature: 0 });
    const all = [...seq, ...r.tokenIds];
    const ref = llamaReference(model, all, { streaming, sink: SINK, recent: RECENT }).logits;
    // Greedy under the masked reference picks the same token at each step.
    r.tokenIds.forEach((id, i) => {
      const row = ref[seq.length - 1 + i]!;
      expect(id).toBe(row.indexOf(Math.max(...row)));
    });
    await d.close();
  });

  it('stores a streaming head\'s window only: fewer bytes than a full cache', async () => {
    const d = await LlamaDecoder.load(model.dir, { headPattern: PATTERN, threads: 1, maxRollback: 0 });
    await d.logits(ids(200));
    const { used, full } = d.kvBytes();
    // Per layer: one retrieval head of 200 rows, one streaming head of sink + recent rows; 16 dims, k and v, float32.
    expect(full).toBe(2 * 2 * 200 * 16 * 2 * 4);
    expect(used).toBe(2 * (200 + SINK + RECENT) * 16 * 2 * 4);
    await d.close();
  });
});

describe('compact KV storage', () => {
  it.each([['float16', 2e-2], ['bf16', 1e-1]] as const)('a %s cache stays near float32 and holds fewer bytes', async (storage, tolerance) => {
    const seq = ids(60, 6);
    const f32 = await LlamaDecoder.load(model.dir, { headPattern: PATTERN, threads: 1 });
    const small = await LlamaDecoder.load(model.dir, { headPattern: PATTERN, threads: 1, storage });
    const a = await f32.logits(seq, { lastPositions: 20 });
    const b = await small.logits(seq, { lastPositions: 20 });
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThan(tolerance);
    expect(small.kvBytes().used * 2).toBe(f32.kvBytes().used);
    await f32.close();
    await small.close();
  });
});

describe('rollback and prefix reuse with a pattern', () => {
  it('give the tokens of a fresh run', async () => {
    const d = await LlamaDecoder.load(model.dir, { headPattern: PATTERN, threads: 1, maxRollback: 16 });
    const prompt = ids(30, 3);
    const first = await d.generate(prompt, { maxTokens: 20, temperature: 0 });
    const fresh = async (p: number[]) => {
      const f = await LlamaDecoder.load(model.dir, { headPattern: PATTERN, threads: 1 });
      const r = await f.generate(p, { maxTokens: 12, temperature: 0 });
      await f.close();
      return r.tokenIds;
    };
    // Rolled back 10 tokens (within maxRollback), then a different continuation.
    const branch = [...prompt, ...first.tokenIds.slice(0, 9), 7];
    const r = await d.generate(branch, { maxTokens: 12, temperature: 0 });
    expect(r.cachedTokens).toBe(prompt.length + 9);
    expect(r.tokenIds).toEqual(await fresh(branch));
    // truncate, then continue from the cache.
    await d.truncate(prompt.length + 5);
    const cont = [...prompt, ...first.tokenIds.slice(0, 5)];
    const again = await d.generate(cont, { maxTokens: 12, temperature: 0 });
    expect(again.cachedTokens).toBe(cont.length - 1);
    expect(again.tokenIds).toEqual(await fresh(cont));
    await d.close();
  });

  it('runs from the start when streaming heads cannot roll back that far, and truncate says why', async () => {
    const d = await LlamaDecoder.load(model.dir, { headPattern: PATTERN, threads: 1, maxRollback: 2 });
    const prompt = ids(40, 4);
    await d.generate(prompt, { maxTokens: 10, temperature: 0 });
    const early = [...prompt.slice(0, 20), 9, 9, 9];
    const r = await d.generate(early, { maxTokens: 8, temperature: 0 });
    expect(r.cachedTokens).toBe(0);
    const f = await LlamaDecoder.load(model.dir, { headPattern: PATTERN, threads: 1 });
    expect(r.tokenIds).toEqual((await f.generate(early, { maxTokens: 8, temperature: 0 })).tokenIds);
    await f.close();
    await expect(d.truncate(5)).rejects.toThrow(
      new RangeError('Cannot truncate layer 0 from 30 to 5 tokens: its streaming heads no longer hold positions 4 to 19 (raise maxRollback, now 2)'),
    );
    await d.close();
  });
});

describe('calibration on the model', () => {
  it('captures q, k (after RoPE), v per layer and scores heads as calibrateHeads does on the reference captures', async () => {
    const d = await LlamaDecoder.load(model.dir, { threads: 1, prefillChunk: 16 });
    const text = ids(60, 5);
    const progress: number[] = [];
    const options = { retrievalRatio: 0.5, sink: SINK, recent: RECENT, method: 'both' as const };
    const got = await d.calibrate([text], { ...options, onProgress: (done, total) => progress.push(done, total) });
    const caps = llamaReference(model, text).captures;
    const want = await calibrateHeads(
      caps.map((c, layer) => ({ layer, q: Float32Array.from(c.q), k: Float32Array.from(c.k), v: Float32Array.from(c.v) })),
      { ...options, layers: 2, queryHeads: 4, kvHeads: 2, headDim: 16, threads: 1 },
    );
    expect(progress).toEqual([1, 2, 2, 2]);
    expect(got.samples).toBe(2);
    got.scores.forEach((s, i) => expect(s).toBeCloseTo(want.scores[i]!, 4));
    expect(Array.from(got.pattern.retrieval)).toEqual(Array.from(want.pattern.retrieval));
    expect([got.pattern.sink, got.pattern.recent, got.pattern.retrievalCount]).toEqual([SINK, RECENT, 2]);
    // The decoder's own cache is untouched by calibration.
    expect(d.cachedTokens).toBe(0);
    await expect(d.calibrate([ids(10)], options)).rejects.toThrow(RangeError);
    await expect(d.calibrate([], options)).rejects.toThrow(TypeError);
    await d.close();
  });
});
