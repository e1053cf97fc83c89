// The rest of an MoE layer's routing, one thread, side by side with plain JS on the same data:
//   deepseek-gate  sigmoid scores + selection bias + 8 groups (top-4) + top-8 of 256, route scale 2.5
//   dispatch       capacity-limited dispatch plan (capacity factor 1.25, block 16) of that routing
//   stats          router statistics (load fractions, mean probabilities, aux and z losses, MaxVio)
// Runs standalone (`node bench/gating-routed.bench.mjs [--quick]`) or under bench/run.mjs.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { measure, normalLogits, prng } from './common.mjs';

const require = createRequire(import.meta.url);
const { topkGating, dispatchPlan, routerStats } = require('../lib/index.js');
const { native } = require('../lib/native.js');

const QUICK = process.argv.includes('--quick');
const TOKENS = 4096;
const [E, K, GROUPS, TOPK_GROUPS, SCALE] = [256, 8, 8, 4, 2.5];
const TIMING = QUICK ? { warmup: 2, timeMs: 150, minRounds: 5 } : { warmup: 5, timeMs: 3000, minRounds: 15 };

// Plain JS DeepSeek-V3 gate, written for speed (preallocated, no closures in the loop).
function makeTsDeepSeek(bias) {
  const s = new Float64Array(E), sel = new Float64Array(E), gScore = new Float64Array(GROUPS), gOn = new Uint8Array(GROUPS);
  const topV = new Float64Array(K), topI = new Int32Array(K);
  const size = E / GROUPS;
  return (x, weights, indices) => {
    for (let t = 0; t < TOKENS; t++) {
      for (let e = 0; e < E; e++) {
        s[e] = 1 / (1 + Math.exp(-x[t * E + e]));
        sel[e] = s[e] + bias[e];
      }
      for (let g = 0; g < GROUPS; g++) {
        let a = -Infinity, b = -Infinity;
        for (let e = g * size; e < (g + 1) * size; e++) {
          if (sel[e] > a) { b = a; a = sel[e]; } else if (sel[e] > b) b = sel[e];
        }
        gScore[g] = a + b;
        gOn[g] = 0;
      }
      for (let r = 0; r < TOPK_GROUPS; r++) {
        let best = -1;
        for (let g = 0; g < GROUPS; g++) if (!gOn[g] && (best < 0 || gScore[g] > gScore[best])) best = g;
        gOn[best] = 1;
      }
      let filled = 0;
      for (let e = 0; e < E; e++) {
        if (!gOn[(e / size) | 0]) continue;
        const v = sel[e];
        if (filled < K || v > topV[K - 1]) {
          let pos = filled < K ? filled++ : K - 1;
          while (pos > 0 && topV[pos - 1] < v) { topV[pos] = topV[pos - 1]; topI[pos] = topI[pos - 1]; pos--; }
          topV[pos] = v;
          topI[pos] = e;
        }
      }
      let sum = 0;
      for (let j = 0; j < K; j++) sum += s[topI[j]];
      for (let j = 0; j < K; j++) {
        weights[t * K + j] = (s[topI[j]] / sum) * SCALE;
        indices[t * K + j] = topI[j];
      }
    }
  };
}

// Plain JS dispatch plan with the same outputs as dispatchPlan: loads, kept counts, offsets,
// padded permutation, each slot's position and the dropped slots (position priority).
function tsDispatch(indices, capacity, block) {
  const slots = indices.length;
  const loads = new Int32Array(E), counts = new Int32Array(E), keep = new Uint8Array(slots);
  for (let s = 0; s < slots; s++) loads[indices[s]]++;
  let dropped = 0;
  for (let j = 0; j < K; j++)
    for (let s = j; s < slots; s += K) {
      const e = indices[s];
      if (counts[e] < capacity) { counts[e]++; keep[s] = 1; } else dropped++;
    }
  const offsets = new Int32Array(E + 1);
  for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e] + Math.ceil(counts[e] / block) * block;
  const permutation = new Int32Array(offsets[E]).fill(-1), cursor = offsets.slice(0, E);
  const slotPosition = new Int32Array(slots).fill(-1), droppedSlots = new Int32Array(dropped);
  let d = 0;
  for (let s = 0; s < slots; s++) {
    if (keep[s]) { slotPosition[s] = cursor[indices[s]]; permutation[cursor[indices[s]]++] = s; } else droppedSlots[d++] = s;
  }
  return { loads, counts, offsets, permutation, slotPosition, dropped: droppedSlots };
}

// Plain JS router statistics (float64): f, P, aux loss, z-loss, MaxVio.
function tsStats(x, indices) {
  const P = new Float64Array(E), loads = new Float64Array(E);
  let z = 0;
  for (let t = 0; t < TOKENS; t++) {
    let m = -Infinity, norm = 0, se = 0;
    for (let e = 0; e < E; e++) if (x[t * E + e] > m) m = x[t * E + e];
    for (let e = 0; e < E; e++) { se += Math.exp(x[t * E + e] - m); norm += 1 / (1 + Math.exp(-x[t * E + e])); }
    z += (m + Math.log(se)) ** 2;
    for (let e = 0; e < E; e++) P[e] += 1 / (1 + Math.exp(-x[t * E + e])) / norm / TOKENS;
  }
  for (const e of indices) loads[e]++;
  let aux = 0, max = 0;
  for (let e = 0; e < E; e++) { aux += (loads[e] / (TOKENS * K)) * P[e]; max = Math.max(max, loads[e]); }
  return { aux: aux * E, z: z / TOKENS, maxVio: (max - (TOKENS * K) / E) / ((TOKENS * K) / E) };
}

const x = normalLogits(TOKENS * E, 0xdeed);
const rand = prng(7);
const bias = Float32Array.from({ length: E }, () => (rand() - 0.5) * 0.02);
const opts = { experts: E, k: K, scoring: 'sigmoid', bias, routeScale: SCALE, groups: { count: GROUPS, topkGroups: TOPK_GROUPS }, threads: 1 };
const nat = topkGating(x, opts);
const ts = { weights: new Float32Array(TOKENS * K), indices: new Int32Array(TOKENS * K) };
const tsGate = makeTsDeepSeek(bias);
tsGate(x, ts.weights, ts.indices);
for (let i = 0; i < TOKENS * K; i++) {
  if (nat.indices[i] !== ts.indices[i] || Math.abs(nat.weights[i] - ts.weights[i]) > 1e-5) {
    console.error(`gating-routed: native and JS disagree at slot ${i}: ${nat.indices[i]}/${nat.weights[i]} vs ${ts.indices[i]}/${ts.weights[i]}`);
    process.exit(2);
  }
}
const capacity = Math.ceil(((TOKENS * K) / E) * 1.25);
const plan = dispatchPlan(nat, { capacity, blockSize: 16 });
const tsPlan = tsDispatch(nat.indices, capacity, 16);
if (['loads', 'counts', 'offsets', 'permutation', 'slotPosition', 'dropped'].some((key) => plan[key].join() !== tsPlan[key].join())) {
  console.error('gating-routed: dispatch plans disagree');
  process.exit(2);
}
const stats = routerStats(x, nat, { scoring: 'sigmoid' });
const tsS = tsStats(x, nat.indices);
if (Math.abs(stats.auxLoss - tsS.aux) > 1e-6 * tsS.aux || Math.abs(stats.zLoss - tsS.z) > 1e-6 * tsS.z) {
  console.error(`gating-routed: stats disagree: aux ${stats.auxLoss} vs ${tsS.aux}, z ${stats.zLoss} vs ${tsS.z}`);
  process.exit(2);
}

const rows = [];
let sink = 0;
const out = { weights: new Float32Array(TOKENS * K), indices: new Int32Array(TOKENS * K) };
for (const [op, nativeFn, tsFn] of [
  ['deepseek-gate', () => topkGating(x, { ...opts, out }), () => tsGate(x, ts.weights, ts.indices)],
  ['dispatch', () => (sink += dispatchPlan(nat, { capacity, blockSize: 16 }).permutation.length), () => (sink += tsDispatch(nat.indices, capacity, 16).permutation.length)],
  ['stats', () => (sink += routerStats(x, nat, { scoring: 'sigmoid' }).auxLoss), () => (sink += tsStats(x, nat.indices).aux)],
]) {
  const t = await measure([['native', nativeFn], ['typescript', tsFn]], TIMING);
  const ns = { native: (t.native.median * 1e6) / TOKENS, typescript: (t.typescript.median * 1e6) / TOKENS };
  rows.push({ op, nsPerToken: ns, speedup: ns.typescript / ns.native });
}

const result = {
  name: 'gating-routed',
  title: `MoE routing beyond top-k: E=${E}, k=${K}, T=${TOKENS}, 1 thread, ${native().kernelIsa} kernels, median ns/token${QUICK ? ' (quick)' : ''}`,
  meta: { tokens: TOKENS, experts: E, k: K, groups: GROUPS, topkGroups: TOPK_GROUPS, routeScale: SCALE, capacity, checksum: sink },
  rows,
  table: rows.map((r) => ({
    op: r.op,
    'native ns/tok': r.nsPerToken.native.toFixed(1),
    'ts ns/tok': r.nsPerToken.typescript.toFixed(1),
    'ts/native': `${r.speedup.toFixed(1)}×`,
  })),
};
if (process.env.CAPIBARA_BENCH_OUT) writeFileSync(process.env.CAPIBARA_BENCH_OUT, JSON.stringify(result));
else console.table(result.table);
