import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

import { nativeInfo } from '../src/index';

// The ISA is chosen once per process, so each narrower variant runs in a child process on the
// same inputs; every variant must agree with the one this process uses.
const lib = resolve(__dirname, '..', 'lib', 'index.js');
const SCRIPT = `
const { topkGating, routerStats, nativeInfo } = require(${JSON.stringify(lib)});
let a = 12345;
const rand = () => ((a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const out = { isa: nativeInfo().isa, runs: [] };
for (const [E, k, extra] of [[8, 2, {}], [60, 8, {}], [64, 3, { renormalize: false }], [256, 8, { scoring: 'sigmoid', groups: { count: 8, topkGroups: 4 }, bias: 'rand' }], [1000, 12, {}], [33, 5, { scoring: 'sigmoid' }]]) {
  const T = 37;
  const x = Float32Array.from({ length: T * E }, () => (rand() < 0.05 ? -Infinity : rand() * 8 - 4));
  const opts = { experts: E, k, ...extra, ...(extra.bias ? { bias: Array.from({ length: E }, () => rand() * 0.1) } : {}) };
  const r = topkGating(x, opts);
  const s = routerStats(x, r, { scoring: opts.scoring ?? 'softmax' });
  out.runs.push({ indices: Array.from(r.indices), weights: Array.from(r.weights), aux: s.auxLoss, z: s.zLoss, h: s.entropy });
}
console.log(JSON.stringify(out));`;

// Runs a script in a child process with the ISA capped at `isa` (or the best one) and parses its JSON.
function runUnder<T>(script: string, isa?: string): T {
  const env = { ...process.env };
  if (isa) env['CAPIBARA_ISA'] = isa;
  else delete env['CAPIBARA_ISA'];
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { env, encoding: 'utf8' })) as T;
}

// Every narrower ISA this CPU has must give the best ISA's numbers (arrays of runs) within `tolerance`.
function expectIsasAgree(script: string, tolerance: number) {
  const best = runUnder<{ runs: number[][] }>(script);
  for (const isa of ['avx2', 'generic']) {
    const other = runUnder<{ isa: string; runs: number[][] }>(script, isa);
    if (other.isa !== isa) continue; // the CPU lacks it
    best.runs.forEach((b, i) => b.forEach((x, j) => expect(Math.abs(other.runs[i]![j]! - x), `${isa} run ${i} element ${j}`).toBeLessThan(tolerance)));
  }
}

// The widest ISA of this CPU (a child without CAPIBARA_ISA). With only generic there is nothing
// to compare: generic would be compared with itself, so the cross-ISA tests are skipped.
const BEST_ISA = runUnder<{ isa: string }>(`console.log(JSON.stringify({ isa: require(${JSON.stringify(lib)}).nativeInfo().isa }))`).isa;
const ONE_ISA = BEST_ISA === 'generic';
const crossIsa = (title: string) =>
  ONE_ISA ? `${title} (skipped: this CPU has neither AVX2 nor AVX-512, only the generic kernels)` : title;

const run = (isa?: string) =>
  runUnder<{ isa: string; runs: Array<{ indices: number[]; weights: number[]; aux: number; z: number; h: number }> }>(SCRIPT, isa);

describe('ISA variants of the kernels', () => {
  it('reports the ISA in use', () => {
    expect(['avx512', 'avx2', 'generic']).toContain(nativeInfo().isa);
    expect(nativeInfo().napiVersion).toBe(8);
  });

  it.skipIf(ONE_ISA)(crossIsa('gives the same routing on every ISA this CPU has'), () => {
    const best = run();
    for (const isa of ['avx2', 'generic']) {
      const other = run(isa);
      if (other.isa !== isa) continue; // the CPU lacks it
      best.runs.forEach((b, i) => {
        const o = other.runs[i]!;
        expect(o.indices, `${isa} run ${i}`).toEqual(b.indices);
        o.weights.forEach((w, j) => expect(Math.abs(w - b.weights[j]!)).toBeLessThan(1e-6));
        for (const key of ['aux', 'z', 'h'] as const) expect(Math.abs(o[key] - b[key])).toBeLessThan(1e-5 * Math.max(1, Math.abs(b[key])));
      });
    }
  });
});

// The row paths (many experts) add the softmax normaliser over thousands of logits: in a
// width-independent order, or the ISAs would drift apart by several 1e-6 and flip near-ties.
const ROW_SUM_SCRIPT = `
const { topkGating, nativeInfo } = require(${JSON.stringify(lib)});
const runs = [];
for (const E of [513, 2048, 4096]) for (const c of [-7, -9]) {
  const x = new Float32Array(E).fill(c); x[0] = 0; // one clear winner, the mass spread thin
  runs.push(Array.from(topkGating(x, { experts: E, k: 9, renormalize: false }).weights));
  if (E > 1024) runs.push(Array.from(topkGating(x, { experts: E, k: 2, renormalize: false, bias: new Float32Array(E) }).weights));
}
const x = new Float32Array(2048).fill(-9); x[0] = 0; x[1] = -0.5;
const bias = new Float32Array(2048); bias[1] = 0.21165538; // within 2e-6 of a tie with expert 0
runs.push(Array.from(topkGating(x, { experts: 2048, k: 1, bias }).indices));
console.log(JSON.stringify({ isa: nativeInfo().isa, runs }));`;

describe('ISA variants of the row paths', () => {
  it.skipIf(ONE_ISA)(crossIsa('add the softmax normaliser in the same order on every ISA'), () => expectIsasAgree(ROW_SUM_SCRIPT, 1e-6));
});

// Attention on every ISA: decode-sized tiles (dot products) and prefill tiles (transposed keys),
// float32 and float16 KV, head dims that are and are not multiples of the vector width.
const ATTENTION_SCRIPT = `
const { attention, toFloat16 } = require(${JSON.stringify(lib)});
let a = 777;
const rand = () => ((a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const arr = (n) => Float32Array.from({ length: n }, rand);
const out = { isa: require(${JSON.stringify(lib)}).nativeInfo().isa, runs: [] };
for (const [nq, nk, qh, kvh, d, half, window] of [[1, 300, 8, 2, 128, false, false], [70, 70, 4, 2, 80, false, true], [3, 45, 6, 3, 33, true, true], [40, 200, 2, 1, 7, true, false]]) {
  const q = arr(nq * qh * d), k = arr(nk * kvh * d), v = arr(nk * kvh * d);
  const opts = { queryHeads: qh, kvHeads: kvh, headDim: d, ...(window ? { sink: 2, recent: 9, streamingHeads: Array.from({ length: kvh }, (_, h) => h % 2 === 0) } : {}) };
  const r = half ? attention(q, toFloat16(k), toFloat16(v), opts) : attention(q, k, v, opts);
  out.runs.push(Array.from(r));
}
console.log(JSON.stringify(out));`;

describe('ISA variants of the attention kernel', () => {
  it.skipIf(ONE_ISA)(crossIsa('gives the same outputs on every ISA this CPU has'), () => expectIsasAgree(ATTENTION_SCRIPT, 1e-5));
});

// The DuoKVCache formats on every ISA, and on AVX-512 with and without its BF16/VNNI extensions
// (CAPIBARA_ISA=avx512 turns them off): bfloat16 and int8 blocks compute the same roundings and
// integer sums everywhere, so outputs agree to float32 rounding. Decode and a chunk that ends
// inside a block, GQA 4, head dims 80 and 128, a streaming head whose ring wraps.
const ATTENTION_CACHE_SCRIPT = `
const { DuoKVCache, HeadPattern, nativeInfo } = require(${JSON.stringify(lib)});
const b = require(${JSON.stringify(resolve(__dirname, '..', 'lib', 'native.js'))}).native();
let a = 4711;
const rand = () => ((a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const arr = (n) => Float32Array.from({ length: n }, rand);
const out = { isa: nativeInfo().isa, path: b.attentionPath, runs: [] };
for (const storage of ['float32', 'float16', 'bf16', 'int8']) for (const D of [80, 128]) {
  const c = new DuoKVCache({ layers: 1, kvHeads: 2, headDim: D, headPattern: HeadPattern.fromMask([[true, false]]), sink: 4, recent: 40, maxTokens: 400, maxRollback: 4, storage });
  const run = [];
  // Every 61st output element, so the JSON stays small.
  for (const n of [150, 1, 1, 70, 1]) c.attend(0, arr(n * 8 * D), arr(n * 2 * D), arr(n * 2 * D), { queryHeads: 8, threads: 1 }).forEach((x, i) => { if (i % 61 === 0) run.push(x); });
  out.runs.push(run);
}
console.log(JSON.stringify(out));`;

describe('ISA variants of the cache formats', () => {
  it.skipIf(ONE_ISA)(crossIsa('float32, float16, bf16 and int8 caches give the same outputs on every ISA and extension this CPU has'), () => {
    const best = runUnder<{ isa: string; path: string; runs: number[][] }>(ATTENTION_CACHE_SCRIPT);
    let compared = 0;
    for (const isa of ['avx512', 'avx2', 'generic']) {
      const other = runUnder<{ isa: string; path: string; runs: number[][] }>(ATTENTION_CACHE_SCRIPT, isa);
      if (other.isa !== isa || other.path === best.path) continue; // the CPU lacks it, or it is the same path
      compared++;
      best.runs.forEach((r, i) => {
        expect(other.runs[i]!.length).toBe(r.length);
        r.forEach((x, j) => expect(Math.abs(other.runs[i]![j]! - x), `${other.path} run ${i} element ${j}`).toBeLessThan(1e-5));
      });
    }
    expect(compared).toBeGreaterThan(0);
  });
});

// The router projection goes through the same dispatch (common/isa.h) as every kernel, so
// CAPIBARA_ISA narrows it too: tails of tokens (not a multiple of the 4-token tile) and of the
// hidden size (not a multiple of 16), several threads.
const ROUTER_LOGITS_SCRIPT = `
const { routerLogits, nativeInfo } = require(${JSON.stringify(lib)});
let a = 4242;
const rand = () => ((a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const runs = [];
for (const [T, H, E, threads] of [[1, 16, 8, 1], [7, 33, 64, 1], [64, 1024, 60, 2], [130, 200, 256, 2]]) {
  const hidden = Float32Array.from({ length: T * H }, rand), weight = Float32Array.from({ length: E * H }, rand);
  runs.push(Array.from(routerLogits(hidden, weight, { hiddenSize: H, threads })));
}
console.log(JSON.stringify({ isa: nativeInfo().isa, runs }));`;

describe('ISA variants of the router projection', () => {
  it.skipIf(ONE_ISA)(crossIsa('gives the same logits under CAPIBARA_ISA=generic (and avx2) as with the default ISA'), () => {
    const best = runUnder<{ isa: string; runs: number[][] }>(ROUTER_LOGITS_SCRIPT);
    const generic = runUnder<{ isa: string; runs: number[][] }>(ROUTER_LOGITS_SCRIPT, 'generic');
    expect(generic.isa).toBe('generic');
    best.runs.forEach((b, i) => {
      expect(generic.runs[i]!.length).toBe(b.length);
      b.forEach((x, j) => expect(Math.abs(generic.runs[i]![j]! - x), `run ${i} element ${j}`).toBeLessThan(1e-5 * Math.max(1, Math.abs(x))));
    });
    expectIsasAgree(ROUTER_LOGITS_SCRIPT, 1e-3);
  });
});
