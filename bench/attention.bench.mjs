// DuoAttention, one layer of 32 query heads over 8 KV heads of 128 dims, fp32. Side by side in
// one run, on the same keys and values:
//   decode (one new token against `context` cached tokens, one thread):
//     full      DuoKVCache with every head a retrieval head (the native kernel reading the full cache)
//     ort-mha   ONNX Runtime com.microsoft.MultiHeadAttention (query group folded into rows)
//     ort-gqa   ONNX Runtime com.microsoft.GroupQueryAttention (its own GQA operator)
//     duo-50    DuoKVCache with 50 % retrieval heads (sink 64 + recent 256 on the others)
//     duo-25    DuoKVCache with 25 % retrieval heads
//     floor     one native read pass over the full cache's bytes: the memory-bandwidth floor
//   prefill (a `prefill`-token prompt at once, every core): full vs duo-50.
// Each decode step appends its token and is rolled back with truncate(), so every round sees
// the same context. Runs standalone (`node bench/attention.bench.mjs [--quick]`) or under bench/run.mjs.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';

import { benchAddon, measure, normalLogits } from './common.mjs';

const require = createRequire(import.meta.url);
const { DuoKVCache, HeadPattern, OnnxAttention } = require('../lib/index.js');
const { native } = require('../lib/native.js');

const QUICK = process.argv.includes('--quick');
const QH = 32;
const KVH = 8;
const D = 128;
const SINK = 64;
const RECENT = 256;
const CONTEXTS = QUICK ? [4096, 32768] : [4096, 32768, 131072];
const PREFILL = QUICK ? 4096 : 16384;
const THREADS = os.availableParallelism();
const TIMING = QUICK ? { warmup: 1, timeMs: 500, minRounds: 3 } : { warmup: 2, timeMs: 3000, minRounds: 7 };
const PREFILL_TIMING = { warmup: 0, timeMs: 0, minRounds: QUICK ? 1 : 2 };
const TARGETS = { fullOverOrt: 2, fullOfFloor: 0.6, duo50DecodeAt32K: 1.8, duo50Prefill: 1.6 };
const ROW = KVH * D;

// Keys and values: a seeded normal block repeated (values do not change the cost; making 2^28
// normals would take longer than the benchmark).
function tokens(n, seed) {
  const out = new Float32Array(n * ROW);
  const block = normalLogits(Math.min(out.length, 1 << 20), seed);
  for (let i = 0; i < out.length; i += block.length) out.set(block.subarray(0, Math.min(block.length, out.length - i)), i);
  return out;
}

// Every other KV head retrieval (50 %), or every fourth (25 %).
const pattern = (every) => HeadPattern.fromMask([Array.from({ length: KVH }, (_, h) => h % every === 0)]);
const patterns = { full: HeadPattern.allRetrieval(1, KVH), 'duo-50': pattern(2), 'duo-25': pattern(4) };

function filledCache(name, context, k, v) {
  const cache = new DuoKVCache({ layers: 1, kvHeads: KVH, headDim: D, headPattern: patterns[name], sink: SINK, recent: RECENT, maxTokens: context + 1, maxRollback: 1 });
  cache.append(0, k, v);
  return cache;
}

function maxDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const fail = (msg) => {
  console.error(`attention bench: ${msg}`);
  process.exit(2);
};
const ratio = (value, target) => ({ value, target, met: value >= target });
const fmtRatio = ({ value, target, met }) => `${value.toFixed(2)}× ${met ? 'met' : 'MISSED'} (≥${target})`;

const binding = native();
const floors = benchAddon(binding.kernelIsa);
const ortMha = await OnnxAttention.create();
const ortGqa = await OnnxAttention.create({ operator: 'GroupQueryAttention' });
let sink = 0;
const decode = [];

for (const context of CONTEXTS) {
  const t0 = performance.now();
  const k = tokens(context, 1 ^ context);
  const v = tokens(context, 2 ^ context);
  const q1 = normalLogits(QH * D, 3);
  const k1 = normalLogits(ROW, 4);
  const v1 = normalLogits(ROW, 5);
  const caches = Object.fromEntries(Object.keys(patterns).map((name) => [name, filledCache(name, context, k, v)]));
  // ORT attends over the cached tokens plus the new one, as the cache does.
  const kAll = new Float32Array((context + 1) * ROW);
  kAll.set(k);
  kAll.set(k1, context * ROW);
  const vAll = new Float32Array((context + 1) * ROW);
  vAll.set(v);
  vAll.set(v1, context * ROW);
  const floorBytes = [new Int8Array(kAll.buffer), new Int8Array(vAll.buffer)];
  const opts = { queryHeads: QH, kvHeads: KVH, headDim: D, threads: 1 };
  const step = (name) => () => {
    caches[name].attend(0, q1, k1, v1, { queryHeads: QH, threads: 1 });
    caches[name].truncate(context);
  };
  const setupMs = performance.now() - t0;

  // Agreement first: ORT and the cache against each other on this input.
  const fullOut = caches.full.attend(0, q1, k1, v1, { queryHeads: QH, threads: 1 });
  caches.full.truncate(context);
  const mhaOut = await ortMha.run(q1, kAll, vAll, opts);
  const gqaOut = await ortGqa.run(q1, kAll, vAll, opts);
  if (!(maxDiff(fullOut, mhaOut) < 1e-4)) fail(`ort-mha differs from full by ${maxDiff(fullOut, mhaOut)} at ${context}`);
  if (!(maxDiff(fullOut, gqaOut) < 1e-4)) fail(`ort-gqa differs from full by ${maxDiff(fullOut, gqaOut)} at ${context}`);

  const timed = await measure([
    ['full', step('full')],
    ['ort-mha', () => ortMha.run(q1, kAll, vAll, opts), true],
    ['ort-gqa', () => ortGqa.run(q1, kAll, vAll, opts), true],
    ['duo-50', step('duo-50')],
    ['duo-25', step('duo-25')],
    ['floor', () => (sink += floors.memoryReadFloor(floorBytes[0]) + floors.memoryReadFloor(floorBytes[1]))],
  ], TIMING);
  const ms = Object.fromEntries(Object.entries(timed).map(([name, t]) => [name, t.median]));
  // KV bytes each contender reads per step (2 = keys and values, 4 = bytes per float).
  const rows = (share) => KVH * share * (context + 1) + KVH * (1 - share) * (SINK + RECENT);
  const bytes = { full: rows(1), 'ort-mha': rows(1), 'ort-gqa': rows(1), 'duo-50': rows(0.5), 'duo-25': rows(0.25), floor: rows(1) };
  const gbps = Object.fromEntries(Object.keys(ms).map((name) => [name, (bytes[name] * 2 * D * 4) / (ms[name] * 1e6)]));
  const memory = Object.fromEntries(Object.keys(patterns).map((name) => [name, caches[name].bytesUsed() / caches[name].bytesFullCache()]));
  decode.push({
    context, msPerStep: ms, gbPerS: gbps, kvMemoryRatio: memory, setupMs,
    samples: Object.fromEntries(Object.entries(timed).map(([name, t]) => [name, t.samples])),
    ratios: {
      fullOverOrt: ratio(Math.min(ms['ort-mha'], ms['ort-gqa']) / ms.full, TARGETS.fullOverOrt),
      fullOfFloor: ratio(gbps.full / gbps.floor, TARGETS.fullOfFloor),
      duo50OverFull: ratio(ms.full / ms['duo-50'], context === 32768 ? TARGETS.duo50DecodeAt32K : 0),
      duo25OverFull: ms.full / ms['duo-25'],
    },
  });
  console.error(`attention: decode at ${context} done (setup ${(setupMs / 1000).toFixed(1)} s)`);
}

// Prefill: the whole prompt through an empty cache, every core.
const pq = tokens(PREFILL * 4, 6); // [PREFILL, 32, 128] = 4 × the KV row
const pk = tokens(PREFILL, 7);
const pv = tokens(PREFILL, 8);
const prefillStep = (name) => async () => {
  const cache = new DuoKVCache({ layers: 1, kvHeads: KVH, headDim: D, headPattern: patterns[name], sink: SINK, recent: RECENT, maxTokens: PREFILL });
  await cache.attendAsync(0, pq, pk, pv, { queryHeads: QH, threads: THREADS });
};
const prefillTimed = await measure([['full', prefillStep('full'), true], ['duo-50', prefillStep('duo-50'), true]], PREFILL_TIMING);
const prefill = {
  tokens: PREFILL, threads: THREADS,
  msPerPrompt: { full: prefillTimed.full.median, 'duo-50': prefillTimed['duo-50'].median },
  duo50OverFull: ratio(prefillTimed.full.median / prefillTimed['duo-50'].median, TARGETS.duo50Prefill),
};
await ortMha.close();
await ortGqa.close();

const table = [
  ...decode.map((r) => ({
    case: `decode ${r.context / 1024}K`,
    'full ms': r.msPerStep.full.toFixed(2),
    'ort-mha ms': r.msPerStep['ort-mha'].toFixed(2),
    'ort-gqa ms': r.msPerStep['ort-gqa'].toFixed(2),
    'duo-50 ms': r.msPerStep['duo-50'].toFixed(2),
    'duo-25 ms': r.msPerStep['duo-25'].toFixed(2),
    'full GB/s': r.gbPerS.full.toFixed(1),
    'floor GB/s': r.gbPerS.floor.toFixed(1),
    'full/ORT': fmtRatio(r.ratios.fullOverOrt),
    'full of floor': fmtRatio(r.ratios.fullOfFloor),
    'duo-50 speed-up': r.context === 32768 ? fmtRatio(r.ratios.duo50OverFull) : `${r.ratios.duo50OverFull.value.toFixed(2)}×`,
    'duo-25 speed-up': `${r.ratios.duo25OverFull.toFixed(2)}×`,
    'KV mem 50/25': `${(r.kvMemoryRatio['duo-50'] * 100).toFixed(0)} % / ${(r.kvMemoryRatio['duo-25'] * 100).toFixed(0)} %`,
  })),
  {
    case: `prefill ${PREFILL / 1024}K (${THREADS} threads)`,
    'full ms': prefill.msPerPrompt.full.toFixed(0),
    'duo-50 ms': prefill.msPerPrompt['duo-50'].toFixed(0),
    'duo-50 speed-up': fmtRatio(prefill.duo50OverFull),
  },
];

const result = {
  name: 'attention',
  title: `DuoAttention, ${QH} query heads / ${KVH} KV heads × ${D}, fp32, sink ${SINK} + recent ${RECENT}, decode on 1 thread, ISA ${binding.kernelIsa}, median ms${QUICK ? ' (quick)' : ''}`,
  meta: {
    queryHeads: QH, kvHeads: KVH, headDim: D, sink: SINK, recent: RECENT, quick: QUICK, timing: TIMING, isa: binding.kernelIsa,
    targets: TARGETS, cpu: os.cpus()[0]?.model, checksum: sink,
    bytesRead: 'KV bytes per decode step: 2 (K, V) × 4 × 128 × (retrieval heads × (context + 1) + streaming heads × (sink + recent))',
    seedClaim: "the seed's '3× faster attention' compares with duo-25 / duo-50 decode speed-ups at long context",
  },
  decode,
  prefill,
  table,
};

if (process.env.CAPIBARA_BENCH_OUT) writeFileSync(process.env.CAPIBARA_BENCH_OUT, JSON.stringify(result));
else console.table(table);
