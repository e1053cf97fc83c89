// Token-level MoE gating, one thread: softmax over experts -> top-k -> weights = the winners'
// (unrenormalised) probabilities. Contenders run side by side on the same logits:
//   native       topkGating from lib/ with preallocated outputs
//   typescript   the same computation in plain JS, written the way one would for production
//   onnxruntime  a Softmax -> TopK graph on ORT's CPU provider
//   floor        native max + sum pass over the same logits: the bandwidth floor the target
//                refers to; and a max + softmax-normaliser pass, the least any softmax gate
//                that reports probabilities must compute (one exp per logit). Both come from
//                the bench-only addon (native/bench), not the production one.
// Runs standalone (`node bench/gating.bench.mjs [--quick]`) or under bench/run.mjs.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';

import * as ort from 'onnxruntime-node';

import { benchAddon, measure, normalLogits } from './common.mjs';
import { buildModel } from '../scripts/onnx-graph.mjs';

const require = createRequire(import.meta.url);
const { topkGating } = require('../lib/index.js');
const { native } = require('../lib/native.js');

const QUICK = process.argv.includes('--quick');
const TOKENS = 4096;
const EXPERTS = QUICK ? [8, 64] : [8, 64, 256];
const KS = [2, 8];
// Per (E, k): warmup calls per contender, then rounds until both the time budget and the
// minimum round count are met.
const TIMING = QUICK ? { warmup: 2, timeMs: 150, minRounds: 5 } : { warmup: 10, timeMs: 4000, minRounds: 25 };
const TARGETS = { tsOverNative: 10, ortOverNative: 3, nativeOverFloor: 2 };
const WEIGHT_TOL = 1e-5;

// Plain JS contender: one pass for the row max and an insertion top-k on the logits (softmax is
// monotone, so selecting on logits selects on probabilities; strict > keeps ties on the lower
// index), one pass for the normaliser, then exp only for the k winners. No allocation per call.
function makeTsGating(tokens, experts, k) {
  const topV = new Float64Array(k);
  const topI = new Int32Array(k);
  return (x, weights, indices) => {
    for (let t = 0; t < tokens; t++) {
      const row = t * experts;
      let max = -Infinity;
      let filled = 0;
      for (let e = 0; e < experts; e++) {
        const v = x[row + e];
        if (v > max) max = v;
        if (filled < k || v > topV[k - 1]) {
          let pos = filled < k ? filled++ : k - 1;
          while (pos > 0 && topV[pos - 1] < v) {
            topV[pos] = topV[pos - 1];
            topI[pos] = topI[pos - 1];
            pos--;
          }
          topV[pos] = v;
          topI[pos] = e;
        }
      }
      let sum = 0;
      for (let e = 0; e < experts; e++) sum += Math.exp(x[row + e] - max);
      const out = t * k;
      for (let j = 0; j < k; j++) {
        weights[out + j] = Math.exp(topV[j] - max) / sum;
        indices[out + j] = topI[j];
      }
    }
  };
}

function ortModel(experts, k) {
  return buildModel({
    name: `softmax_topk_e${experts}_k${k}`,
    inputs: [{ name: 'logits', type: 'float32', shape: ['tokens', experts] }],
    outputs: [
      { name: 'weights', type: 'float32', shape: ['tokens', k] },
      { name: 'indices', type: 'int64', shape: ['tokens', k] },
    ],
    initializers: [{ name: 'k', type: 'int64', dims: [1], data: BigInt64Array.of(BigInt(k)) }],
    nodes: [
      { op: 'Softmax', inputs: ['logits'], outputs: ['probs'], attrs: { axis: -1 } },
      { op: 'TopK', inputs: ['probs', 'k'], outputs: ['weights', 'indices'], attrs: { axis: -1, largest: 1, sorted: 1 } },
    ],
  });
}

function fail(msg) {
  console.error(`gating bench: contenders disagree: ${msg}`);
  process.exit(2);
}

// Native must match the JS reference exactly on indices. ORT selects on rounded probabilities,
// so two nearly equal logits may round to one probability and swap places: that counts as a tie,
// not a mismatch, when the logits differ by less than float32 rounding of a probability (a logit
// gap d is a relative probability gap of about d).
function verify(label, x, experts, k, ref, got, gotIndex) {
  let ties = 0;
  for (let i = 0; i < ref.indices.length; i++) {
    const t = Math.floor(i / k);
    const want = ref.indices[i];
    const have = gotIndex(i);
    if (have !== want) {
      const a = x[t * experts + want];
      const b = x[t * experts + have];
      if (label === 'native' || !(Math.abs(a - b) <= 1e-6)) {
        fail(`${label} token ${t} slot ${i % k}: expert ${have}, typescript says ${want} (E=${experts}, k=${k})`);
      }
      ties++;
    }
    if (!(Math.abs(got.weights[i] - ref.weights[i]) <= WEIGHT_TOL)) {
      fail(`${label} token ${t} slot ${i % k}: weight ${got.weights[i]}, typescript says ${ref.weights[i]} (E=${experts}, k=${k})`);
    }
  }
  return ties;
}

const ORT_OPTIONS = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' };
const ratio = (value, target, atMost) => ({ value, target, atMost, met: atMost ? value <= target : value >= target });
const fmtRatio = ({ value, target, atMost, met }) =>
  `${value.toFixed(2)}× ${met ? 'met' : 'MISSED'} (${atMost ? '≤' : '≥'}${target})`;

const binding = native();
const floors = benchAddon(binding.kernelIsa);
const rows = [];
let sink = 0;

for (const experts of EXPERTS) {
  const x = normalLogits(TOKENS * experts, 0x9e3779b9 ^ experts);
  const input = new ort.Tensor('float32', x, [TOKENS, experts]);

  for (const k of KS) {
    if (k > experts) continue;
    const nat = { weights: new Float32Array(TOKENS * k), indices: new Int32Array(TOKENS * k) };
    const ts = { weights: new Float32Array(TOKENS * k), indices: new Int32Array(TOKENS * k) };
    const opts = { experts, k, scoring: 'softmax', renormalize: false, threads: 1, out: nat };
    const tsGating = makeTsGating(TOKENS, experts, k);
    const session = await ort.InferenceSession.create(ortModel(experts, k), ORT_OPTIONS);

    // Agreement first: a fast wrong answer is not a result.
    topkGating(x, opts);
    tsGating(x, ts.weights, ts.indices);
    verify('native', x, experts, k, ts, nat, (i) => nat.indices[i]);
    const o = await session.run({ logits: input });
    const ortTies = verify('onnxruntime', x, experts, k, ts, { weights: o.weights.data }, (i) => Number(o.indices.data[i]));

    const timed = await measure([
      ['native', () => topkGating(x, opts)],
      ['typescript', () => tsGating(x, ts.weights, ts.indices)],
      ['onnxruntime', () => session.run({ logits: input }), true],
      ['floor-normaliser', () => (sink += floors.gatingFloor(x, TOKENS, experts, 1))],
      ['floor-maxsum', () => (sink += floors.gatingFloor(x, TOKENS, experts, 0))],
    ], TIMING);
    await session.release();

    const ns = Object.fromEntries(Object.entries(timed).map(([name, t]) => [name, t.median * 1e6 / TOKENS]));
    const samples = Object.fromEntries(Object.entries(timed).map(([name, t]) => [name, t.samples]));
    const ratios = {
      tsOverNative: ratio(ns.typescript / ns.native, TARGETS.tsOverNative, false),
      ortOverNative: ratio(ns.onnxruntime / ns.native, TARGETS.ortOverNative, false),
      nativeOverFloor: ratio(ns.native / ns['floor-maxsum'], TARGETS.nativeOverFloor, true),
      // Not targets: how far the exps alone are from the floor, and native against them.
      normaliserOverFloor: ns['floor-normaliser'] / ns['floor-maxsum'],
      nativeOverNormaliser: ns.native / ns['floor-normaliser'],
    };
    rows.push({ experts, k, tokens: TOKENS, nsPerToken: ns, ratios, samples, ortTies });
    console.error(`gating: E=${experts} k=${k} done${ortTies ? ` (${ortTies} ORT index swaps on tied probabilities)` : ''}`);
  }
}

const table = rows.map((r) => ({
  E: r.experts,
  k: r.k,
  'native ns/tok': r.nsPerToken.native.toFixed(1),
  'ts ns/tok': r.nsPerToken.typescript.toFixed(1),
  'ort ns/tok': r.nsPerToken.onnxruntime.toFixed(1),
  'floor max+sum': r.nsPerToken['floor-maxsum'].toFixed(1),
  'max+normaliser': r.nsPerToken['floor-normaliser'].toFixed(1),
  'ts/native': fmtRatio(r.ratios.tsOverNative),
  'ort/native': fmtRatio(r.ratios.ortOverNative),
  'native/floor': fmtRatio(r.ratios.nativeOverFloor),
  'normaliser/floor': `${r.ratios.normaliserOverFloor.toFixed(2)}×`,
  'native/normaliser': `${r.ratios.nativeOverNormaliser.toFixed(2)}×`,
}));

const result = {
  name: 'gating',
  title: `MoE top-k gating, softmax, unrenormalised, T=${TOKENS}, 1 thread, ${binding.kernelIsa} kernels, median ns/token${QUICK ? ' (quick)' : ''}`,
  meta: {
    tokens: TOKENS,
    threads: 1,
    quick: QUICK,
    timing: TIMING,
    isa: binding.kernelIsa,
    targets: TARGETS,
    onnxruntime: require('onnxruntime-node/package.json').version,
    cpu: os.cpus()[0]?.model,
    checksum: sink,
  },
  rows,
  table,
};

// Under bench/run.mjs the harness prints the table; standalone, print it here.
if (process.env.CAPIBARA_BENCH_OUT) writeFileSync(process.env.CAPIBARA_BENCH_OUT, JSON.stringify(result));
else console.table(table);
