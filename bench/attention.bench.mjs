// DuoAttention, one layer of 32 query heads over 8 KV heads of 128 dims. Side by side in one run,
// on the same keys and values:
//   decode (one new token against `context` cached tokens, one thread unless stated), for each
//   storage type of the cache (float32, float16, bf16, int8):
//     full      DuoKVCache with every head a retrieval head (the native kernel reading the full cache)
//     duo-50    DuoKVCache with 50 % retrieval heads (sink 64 + recent 256 on the others)
//     full-2t   full on 2 threads
//     floor     one native read pass over the full cache's own key and value buffers: the
//               memory-bandwidth floor for that storage type
//     floor-2t  the same pass split over 2 threads: what 2 threads can read on this machine
//   and for float32 also
//     ort-mha   ONNX Runtime com.microsoft.MultiHeadAttention (query group folded into rows)
//     ort-gqa   ONNX Runtime com.microsoft.GroupQueryAttention (its own GQA operator)
//     duo-25    DuoKVCache with 25 % retrieval heads
//   prefill (a `prefill`-token prompt at once, every core): full vs duo-50, float32.
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
const STORAGES = ['float32', 'float16', 'bf16', 'int8'];
const PREFILL = QUICK ? 4096 : 16384;
const THREADS = os.availableParallelism();
const TIMING = QUICK ? { warmup: 1, timeMs: 500, minRounds: 3 } : { warmup: 2, timeMs: 3000, minRounds: 7 };
const PREFILL_TIMING = { warmup: 0, timeMs: 0, minRounds: QUICK ? 1 : 2 };
// Issue 17: float32 full decode at 85 % of the read pass (32K, 128K), bf16 1.8× and int8 3× faster
// than float32, 2 threads 1.6× one. Earlier: full 2× ONNX Runtime, 60 % of the floor; Duo 50 %
// 1.8× faster decode at 32K and 1.6× faster prefill.
const TARGETS = {
  fullOfFloor: 0.85, bf16OverFp32: 1.8, int8OverFp32: 3, twoThreads: 1.6,
  fullOverOrt: 2, duo50DecodeAt32K: 1.8, duo50Prefill: 1.6,
};
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

function filledCache(name, storage, context, k, v) {
  const cache = new DuoKVCache({
    layers: 1, kvHeads: KVH, headDim: D, headPattern: patterns[name], sink: SINK, recent: RECENT, maxTokens: context + 1, maxRollback: 1, storage,
  });
  cache.append(0, k, v);
  return cache;
}

function maxDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function relError(a, ref) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / den);
}

const fail = (msg) => {
  console.error(`attention bench: ${msg}`);
  process.exit(2);
};
const ratio = (value, target) => ({ value, target, met: value >= target });
const fmtRatio = ({ value, target, met }) => `${value.toFixed(2)}× ${met ? 'met' : 'MISSED'} (≥${target})`;
const pct = ({ value, target, met }) => `${(value * 100).toFixed(0)} % ${met ? 'met' : 'MISSED'} (≥${(target * 100).toFixed(0)} %)`;

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
  const caches = {};
  for (const storage of STORAGES) {
    for (const name of storage === 'float32' ? ['full', 'duo-50', 'duo-25'] : ['full', 'duo-50']) caches[`${storage} ${name}`] = filledCache(name, storage, context, k, v);
  }
  // ORT attends over the cached tokens plus the new one, as the cache does.
  const kAll = new Float32Array((context + 1) * ROW);
  kAll.set(k);
  kAll.set(k1, context * ROW);
  const vAll = new Float32Array((context + 1) * ROW);
  vAll.set(v);
  vAll.set(v1, context * ROW);
  // Read-pass floors over the very memory each storage type's full cache keeps its keys and values
  // in: on this project's VM, equal allocations read at speeds up to 2x apart, so a floor over
  // another buffer measured the allocation as much as the kernel.
  const held = Object.fromEntries(STORAGES.map((s) => [s, caches[`${s} full`].bytesUsed()]));
  const storage = Object.fromEntries(STORAGES.map((s) => [s, caches[`${s} full`].storageOf(0).map((b) => new Int8Array(b.buffer, b.byteOffset, b.byteLength))]));
  const storageBytes = Object.fromEntries(STORAGES.map((s) => [s, storage[s].reduce((a, b) => a + b.byteLength, 0)]));
  const opts = { queryHeads: QH, kvHeads: KVH, headDim: D, threads: 1 };
  const step = (key, threads = 1) => () => {
    caches[key].attend(0, q1, k1, v1, { queryHeads: QH, threads });
    caches[key].truncate(context);
  };
  const setupMs = performance.now() - t0;

  // Agreement first: ORT and the cache against each other, the compact types against float32.
  const out = (key, threads = 1) => {
    const o = caches[key].attend(0, q1, k1, v1, { queryHeads: QH, threads });
    caches[key].truncate(context);
    return o;
  };
  const fullOut = out('float32 full');
  const mhaOut = await ortMha.run(q1, kAll, vAll, opts);
  const gqaOut = await ortGqa.run(q1, kAll, vAll, opts);
  if (!(maxDiff(fullOut, mhaOut) < 1e-4)) fail(`ort-mha differs from full by ${maxDiff(fullOut, mhaOut)} at ${context}`);
  if (!(maxDiff(fullOut, gqaOut) < 1e-4)) fail(`ort-gqa differs from full by ${maxDiff(fullOut, gqaOut)} at ${context}`);
  if (!(maxDiff(out('float32 full', 2), fullOut) < 1e-5)) fail(`2 threads differ from 1 at ${context}`);
  const errors = {};
  for (const storage of STORAGES.slice(1)) {
    errors[storage] = relError(out(`${storage} full`), fullOut);
    if (!(errors[storage] < 0.05)) fail(`${storage} output differs from float32 by ${errors[storage]} (relative) at ${context}`);
  }

  const contenders = [['ort-mha', () => ortMha.run(q1, kAll, vAll, opts), true], ['ort-gqa', () => ortGqa.run(q1, kAll, vAll, opts), true], ['float32 duo-25', step('float32 duo-25')]];
  for (const s of STORAGES) {
    contenders.push([`${s} full`, step(`${s} full`)], [`${s} duo-50`, step(`${s} duo-50`)], [`${s} full-2t`, step(`${s} full`, 2)]);
    const views = storage[s];
    const read = (threads) => () => {
      for (const view of views) sink += floors.memoryReadFloor(view, threads);
    };
    contenders.push([`${s} floor`, read(1)], [`${s} floor-2t`, read(2)]);
  }
  const timed = await measure(contenders, TIMING);
  const ms = Object.fromEntries(Object.entries(timed).map(([name, t]) => [name, t.median]));
  // KV bytes a step reads: what the cache holds (retrieval heads every position; streaming heads
  // sink + recent + 1 of rollback slack, read sink + recent of it), plus the new token.
  const bytes = (key) => caches[key].bytesUsed();
  const storages = Object.fromEntries(STORAGES.map((s) => {
    const full = ms[`${s} full`];
    const gbps = held[s] / (full * 1e6);
    const floorGbps = storageBytes[s] / (ms[`${s} floor`] * 1e6);
    return [s, {
      msPerStep: { full, 'duo-50': ms[`${s} duo-50`], 'full-2t': ms[`${s} full-2t`], floor: ms[`${s} floor`], 'floor-2t': ms[`${s} floor-2t`] },
      bytes: { full: held[s], 'duo-50': bytes(`${s} duo-50`) },
      gbPerS: { full: gbps, floor: floorGbps },
      relErrorVsFp32: s === 'float32' ? 0 : errors[s],
      ratios: {
        fullOfFloor: ratio(gbps / floorGbps, s === 'float32' && context >= 32768 ? TARGETS.fullOfFloor : 0),
        overFp32: ratio(ms['float32 full'] / full, s === 'bf16' ? TARGETS.bf16OverFp32 : s === 'int8' ? TARGETS.int8OverFp32 : 0),
        duo50OverFull: ratio(full / ms[`${s} duo-50`], s === 'float32' && context === 32768 ? TARGETS.duo50DecodeAt32K : 0),
        twoThreads: ratio(full / ms[`${s} full-2t`], TARGETS.twoThreads),
        // How much faster 2 threads read the same bytes than one: the bound on twoThreads.
        floorTwoThreads: ms[`${s} floor`] / ms[`${s} floor-2t`],
      },
    }];
  }));
  decode.push({
    context, setupMs, storages,
    msPerStep: { 'ort-mha': ms['ort-mha'], 'ort-gqa': ms['ort-gqa'], 'duo-25': ms['float32 duo-25'] },
    samples: Object.fromEntries(Object.entries(timed).map(([name, t]) => [name, t.samples])),
    ratios: {
      fullOverOrt: ratio(Math.min(ms['ort-mha'], ms['ort-gqa']) / ms['float32 full'], TARGETS.fullOverOrt),
      duo25OverFull: ms['float32 full'] / ms['float32 duo-25'],
    },
    kvMemoryRatio: Object.fromEntries(['duo-50', 'duo-25'].map((n) => [n, caches[`float32 ${n}`].bytesUsed() / caches[`float32 ${n}`].bytesFullCache()])),
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
  ...decode.flatMap((r) => STORAGES.map((s) => {
    const x = r.storages[s];
    const f32 = s === 'float32';
    return {
      case: `decode ${r.context / 1024}K ${s}`,
      'full ms': x.msPerStep.full.toFixed(2),
      'duo-50 ms': x.msPerStep['duo-50'].toFixed(2),
      '2 thr ms': x.msPerStep['full-2t'].toFixed(2),
      'full GB/s': x.gbPerS.full.toFixed(1),
      'floor GB/s': x.gbPerS.floor.toFixed(1),
      'full of floor': f32 && r.context >= 32768 ? pct(x.ratios.fullOfFloor) : `${(x.ratios.fullOfFloor.value * 100).toFixed(0)} %`,
      'vs fp32': f32 ? '' : x.ratios.overFp32.target ? fmtRatio(x.ratios.overFp32) : `${x.ratios.overFp32.value.toFixed(2)}×`,
      'duo-50 speed-up': x.ratios.duo50OverFull.target ? fmtRatio(x.ratios.duo50OverFull) : `${x.ratios.duo50OverFull.value.toFixed(2)}×`,
      '2 thr speed-up': fmtRatio(x.ratios.twoThreads),
      '2 thr floor speed-up': `${x.ratios.floorTwoThreads.toFixed(2)}×`,
      'err vs fp32': f32 ? '' : `${(x.relErrorVsFp32 * 100).toFixed(2)} %`,
      'ORT best ms': f32 ? Math.min(r.msPerStep['ort-mha'], r.msPerStep['ort-gqa']).toFixed(2) : '',
      'full/ORT': f32 ? fmtRatio(r.ratios.fullOverOrt) : '',
      'duo-25 speed-up': f32 ? `${r.ratios.duo25OverFull.toFixed(2)}×` : '',
    };
  })),
  {
    case: `prefill ${PREFILL / 1024}K float32 (${THREADS} threads)`,
    'full ms': prefill.msPerPrompt.full.toFixed(0),
    'duo-50 ms': prefill.msPerPrompt['duo-50'].toFixed(0),
    'duo-50 speed-up': fmtRatio(prefill.duo50OverFull),
  },
];

const result = {
  name: 'attention',
  title: `DuoAttention, ${QH} query heads / ${KVH} KV heads × ${D}, sink ${SINK} + recent ${RECENT}, decode on 1 thread unless stated, kernels ${binding.attentionPath}, median ms${QUICK ? ' (quick)' : ''}`,
  meta: {
    queryHeads: QH, kvHeads: KVH, headDim: D, sink: SINK, recent: RECENT, quick: QUICK, timing: TIMING, isa: binding.kernelIsa,
    attentionPath: binding.attentionPath, targets: TARGETS, cpu: os.cpus()[0]?.model, checksum: sink,
    bytesRead: "KV bytes per decode step: the full cache's bytesUsed() (2 × headDim × bytes per element per position; int8 with its steps and float32 tail)",
    floor: 'one native read pass (XOR fold, prefetched) over the full cache\'s own key and value buffers (GB/s over their bytes), in the same run',
    errVsFp32: 'relative RMS difference of the decode output from the float32 cache, on normal data',
  },
  decode,
  prefill,
  table,
};

if (process.env.CAPIBARA_BENCH_OUT) writeFileSync(process.env.CAPIBARA_BENCH_OUT, JSON.stringify(result));
else console.table(table);
