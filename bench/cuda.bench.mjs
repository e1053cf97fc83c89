// The CUDA kernels on the device, each against a floor or a baseline measured in the same run
// (issue 21). Without a usable CUDA device it prints "skipped: <reason>" (nativeInfo().cuda.reason)
// and exits 0.
//   copy    the copy kernel over 1 GiB: the card's memory bandwidth as this run measures it
//           ((read + written bytes) / time), the floor every row below is compared with
//   decode  one decode step of DuoKVCache({ device: 'cuda' }) at 32K and 128K cached positions,
//           32 query / 8 KV heads × 128, float16 KV, every head a retrieval head (full attention):
//           GB/s of KV read per step, as a share of the copy bandwidth (target >= 70 %)
//   gating  fused top-k (softmax, E=64 k=8; DeepSeek-V3 sigmoid + bias + groups, E=256 k=8) at
//           T = 4,096 to 65,536 tokens, vs a plain CUDA baseline (softmax written out, then a full
//           bitonic sort per row): time, and the share of the copy bandwidth that reading the
//           logits once in that time would be (target >= 50 %)
// Device times come from CUDA events around back-to-back reruns (the inputs already on the device).
// Runs standalone (`node bench/cuda.bench.mjs [--quick]`) or under bench/run.mjs.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { normalLogits } from './common.mjs';

const require = createRequire(import.meta.url);
const { topkGating, nativeInfo, toFloat16 } = require('../lib/index.js');
const { native } = require('../lib/native.js');

const QUICK = process.argv.includes('--quick');
const ITER = QUICK ? 5 : 50;
const info = nativeInfo().cuda;

function finish(result) {
  if (process.env.CAPIBARA_BENCH_OUT) writeFileSync(process.env.CAPIBARA_BENCH_OUT, JSON.stringify(result));
  else if (result.table.length > 0) console.table(result.table);
}

if (info.status !== 'available') {
  const reason = info.reason ?? info.status;
  console.log(`skipped: ${reason}`);
  finish({ name: 'cuda', title: `CUDA kernels: skipped: ${reason}`, meta: { cuda: info }, rows: [], table: [] });
  process.exit(0);
}

const b = native().cuda;
const device = info.devices[0];
const rows = [];

// ---- copy: the bandwidth floor.
const COPY_BYTES = 1 << 30;
const copyMs = b.copyTime(COPY_BYTES, ITER);
const copyGBs = (2 * COPY_BYTES) / (copyMs * 1e6);
rows.push({ op: 'copy 1 GiB', ms: copyMs, gbs: copyGBs, ofCopy: 1 });

// ---- decode at 32K and 128K.
const [QH, KVH, D] = [32, 8, 128];
const CHUNK = 4096;
const kvChunk = toFloat16(normalLogits(CHUNK * KVH * D, 7));
for (const context of QUICK ? [32768] : [32768, 131072]) {
  const handle = b.kvOpen(1, KVH, D, 0, 1, context + 1, 0, new Uint8Array(KVH));
  try {
    for (let at = 0; at < context; at += CHUNK) b.kvStore(handle, 0, at, Math.min(CHUNK, context - at), kvChunk.subarray(0, Math.min(CHUNK, context - at) * KVH * D), kvChunk.subarray(0, Math.min(CHUNK, context - at) * KVH * D));
    const step = normalLogits(KVH * D, 8);
    b.kvStore(handle, 0, context, 1, toFloat16(step), toFloat16(step));
    const out = new Float32Array(QH * D);
    b.kvAttend(handle, 0, context, 1, QH, normalLogits(QH * D, 9), 1 / Math.sqrt(D), 1, out, null);
    if (!out.every(Number.isFinite)) throw new Error('cuda bench: decode output is not finite');
    const ms = b.kvTime(handle, ITER);
    const bytes = (context + 1) * KVH * D * 2 * 2; // keys and values, float16
    const gbs = bytes / (ms * 1e6);
    rows.push({ op: `decode ${context / 1024}K, ${QH}/${KVH}×${D} fp16`, ms, gbs, ofCopy: gbs / copyGBs });
  } finally {
    b.close(handle);
  }
}

// ---- gating vs softmax-then-sort.
const gate = b.gatingOpen();
const SCORING = { softmax: 0, sigmoid: 1 };
try {
  for (const [label, E, K, opts] of [
    ['softmax top-k', 64, 8, { scoring: 'softmax' }],
    ['DeepSeek-V3 gate', 256, 8, { scoring: 'sigmoid', groups: 8, topkGroups: 4, routeScale: 2.5, bias: true }],
  ]) {
    for (const T of QUICK ? [4096, 65536] : [4096, 16384, 65536]) {
      const logits = normalLogits(T * E, T + E);
      const bias = opts.bias ? normalLogits(E, 3).map((x) => 0.05 * x) : null;
      const weights = new Float32Array(T * K);
      const indices = new Int32Array(T * K);
      const groups = opts.groups ?? 1;
      const general = bias !== null || groups > 1;
      const sum16 = !(K <= 8 && groups <= 64 && E <= (general ? 1024 : K <= 4 ? 512 : 128));
      b.gatingTopk(gate, logits, T, E, K, SCORING[opts.scoring], bias, true, opts.routeScale ?? 1, groups, opts.topkGroups ?? 1, 0, 0, E, sum16, weights, indices);
      // The device result is the CPU kernel's (cuda-gating.test.ts checks it; a mismatch here stops the run).
      const cpu = topkGating(logits, { experts: E, k: K, scoring: opts.scoring, ...(bias ? { bias } : {}), routeScale: opts.routeScale ?? 1, ...(groups > 1 ? { groups: { count: groups, topkGroups: opts.topkGroups } } : {}) });
      const differ = cpu.indices.findIndex((x, i) => x !== indices[i]);
      if (differ >= 0) throw new Error(`cuda bench: device and CPU gating differ at slot ${differ}`);
      const ms = b.gatingTime(gate, 0, ITER);
      const floorMs = (T * E * 4) / (copyGBs * 1e6); // reading the logits once at the copy bandwidth
      const row = { op: `${label} E=${E} k=${K} T=${T}`, ms, gbs: (T * E * 4) / (ms * 1e6), ofCopy: floorMs / ms };
      if (opts.scoring === 'softmax') {
        row.baselineMs = b.gatingTime(gate, 1, ITER);
        row.speedup = row.baselineMs / ms;
      }
      rows.push(row);
    }
  }
} finally {
  b.close(gate);
}

finish({
  name: 'cuda',
  title: `CUDA kernels on ${device.name} (sm ${device.computeCapability}), device ms per call (CUDA events, ${ITER} reruns)${QUICK ? ' (quick)' : ''}`,
  meta: { cuda: info, iterations: ITER, copyGBs },
  rows,
  table: rows.map((r) => ({
    op: r.op,
    'device ms': r.ms.toFixed(4),
    'GB/s': r.gbs.toFixed(0),
    'of copy bandwidth': `${(r.ofCopy * 100).toFixed(0)} %`,
    'softmax+sort ms': r.baselineMs === undefined ? '' : r.baselineMs.toFixed(4),
    'baseline/fused': r.speedup === undefined ? '' : `${r.speedup.toFixed(1)}×`,
  })),
});
