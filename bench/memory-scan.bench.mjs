// MemAgent vector search, one thread: one query scored against every row of an embedding
// matrix (N rows x 384 dims). Contenders run side by side on the same rows:
//   int8        int8Scores from lib/ (int8 codes + a scale per row, the memory's stored form)
//   float32     float32Scores from lib/ over the same rows dequantised to float32
//   typescript  the float32 dot products in a plain JS loop
//   floor-int8  native one-pass XOR over the int8 code bytes: the memory-read floor of int8
//   floor-f32   the same over the float32 bytes
// Runs standalone (`node bench/memory-scan.bench.mjs [--quick]`) or under bench/run.mjs.
import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';

import { benchAddon, measure, normalLogits } from './common.mjs';

const require = createRequire(import.meta.url);
const { int8Scores, float32Scores } = require('../lib/text/vector-scan.js');
const { quantizeInt8 } = require('../lib/text/quantize.js');
const { native } = require('../lib/native.js');

const QUICK = process.argv.includes('--quick');
const DIMS = 384;
const SIZES = QUICK ? [5_000, 50_000] : [5_000, 50_000, 1_000_000];
// Per size: warmup calls per contender, then rounds until both the time budget and the minimum
// round count are met (the 1M case's TypeScript loop alone takes about half a second a call).
const TIMING = QUICK ? { warmup: 1, timeMs: 300, minRounds: 3 } : { warmup: 3, timeMs: 4000, minRounds: 7 };
const TARGETS = { float32OverInt8: 3, tsOverInt8: 10 };

// Quantised rows as the memory stores them: random codes in [-127, 127] and a scale per row
// near that of an L2-normalised 384-d embedding (max |x| around 0.15). Values do not change the
// cost of a scan, and random bytes are fast to make for a million rows.
function makeRows(n, seed) {
  const codes = new Int8Array(n * DIMS);
  randomFillSync(codes);
  for (let i = 0; i < codes.length; i++) if (codes[i] === -128) codes[i] = -127;
  const jitter = normalLogits(n, seed);
  const scales = Float32Array.from(jitter, (z) => (0.15 + 0.01 * z) / 127);
  const matrix = new Float32Array(n * DIMS);
  for (let r = 0; r < n; r++) {
    const s = scales[r];
    for (let d = r * DIMS, end = d + DIMS; d < end; d++) matrix[d] = codes[d] * s;
  }
  return { codes, scales, matrix };
}

// Plain JS contender, written as one would for production: no allocation, one pass per row.
function tsScores(query, matrix, n, out) {
  for (let r = 0; r < n; r++) {
    let s = 0;
    const base = r * DIMS;
    for (let d = 0; d < DIMS; d++) s += query[d] * matrix[base + d];
    out[r] = s;
  }
}

function fail(msg) {
  console.error(`memory-scan bench: contenders disagree: ${msg}`);
  process.exit(2);
}

const ratio = (value, target) => ({ value, target, met: value >= target });
const fmtRatio = ({ value, target, met }) => `${value.toFixed(2)}× ${met ? 'met' : 'MISSED'} (≥${target})`;

const binding = native();
const floors = benchAddon(binding.kernelIsa);
const rows = [];
let sink = 0;

for (const n of SIZES) {
  const t0 = performance.now();
  const { codes, scales, matrix } = makeRows(n, 0x51ed ^ n);
  const queryF = normalLogits(DIMS, 0xface ^ n);
  const norm = Math.hypot(...queryF);
  for (let d = 0; d < DIMS; d++) queryF[d] /= norm;
  const q = quantizeInt8(queryF);
  // The float32 contenders score the same quantised query, so all three compute the same numbers.
  const queryDq = Float32Array.from(q.codes, (c) => c * q.scale);
  const outI8 = new Float32Array(n);
  const outF32 = new Float32Array(n);
  const outTs = new Float32Array(n);
  const i8 = { threads: 1, out: outI8 };
  const f32 = { threads: 1, out: outF32 };
  const bytesF32 = new Int8Array(matrix.buffer);
  const setupMs = performance.now() - t0;

  // Agreement first: a fast wrong answer is not a result.
  int8Scores(q.codes, q.scale, codes, scales, DIMS, i8);
  float32Scores(queryDq, matrix, DIMS, f32);
  tsScores(queryDq, matrix, n, outTs);
  for (let r = 0; r < n; r++) {
    // Scores are about 0.1 in size; float32 summation differs from the exact int8 sum by ~1e-7.
    if (!(Math.abs(outI8[r] - outTs[r]) <= 1e-5)) fail(`int8 row ${r}: ${outI8[r]}, typescript says ${outTs[r]} (N=${n})`);
    if (!(Math.abs(outF32[r] - outTs[r]) <= 1e-5)) fail(`float32 row ${r}: ${outF32[r]}, typescript says ${outTs[r]} (N=${n})`);
  }

  const timed = await measure([
    ['int8', () => int8Scores(q.codes, q.scale, codes, scales, DIMS, i8)],
    ['float32', () => float32Scores(queryDq, matrix, DIMS, f32)],
    ['typescript', () => tsScores(queryDq, matrix, n, outTs)],
    ['floor-int8', () => (sink += floors.memoryReadFloor(codes))],
    ['floor-f32', () => (sink += floors.memoryReadFloor(bytesF32))],
  ], TIMING);

  const ms = Object.fromEntries(Object.entries(timed).map(([name, t]) => [name, t.median]));
  const samples = Object.fromEntries(Object.entries(timed).map(([name, t]) => [name, t.samples]));
  const bytes = { int8: n * DIMS, float32: n * DIMS * 4, typescript: n * DIMS * 4, 'floor-int8': n * DIMS, 'floor-f32': n * DIMS * 4 };
  const gbps = Object.fromEntries(Object.keys(ms).map((k) => [k, bytes[k] / (ms[k] * 1e6)]));
  const ratios = {
    float32OverInt8: ratio(ms.float32 / ms.int8, TARGETS.float32OverInt8),
    tsOverInt8: ratio(ms.typescript / ms.int8, TARGETS.tsOverInt8),
  };
  rows.push({ rows: n, dims: DIMS, msPerQuery: ms, gbPerS: gbps, ratios, int8OverFloor: ms.int8 / ms['floor-int8'], samples, setupMs });
  console.error(`memory-scan: N=${n} done (setup ${(setupMs / 1000).toFixed(1)} s)`);
}

const table = rows.map((r) => ({
  N: r.rows,
  'int8 ms': r.msPerQuery.int8.toFixed(3),
  'f32 ms': r.msPerQuery.float32.toFixed(3),
  'ts ms': r.msPerQuery.typescript.toFixed(3),
  'floor i8 ms': r.msPerQuery['floor-int8'].toFixed(3),
  'int8 GB/s': r.gbPerS.int8.toFixed(1),
  'f32 GB/s': r.gbPerS.float32.toFixed(1),
  'ts GB/s': r.gbPerS.typescript.toFixed(1),
  'floor i8 GB/s': r.gbPerS['floor-int8'].toFixed(1),
  'floor f32 GB/s': r.gbPerS['floor-f32'].toFixed(1),
  'f32/int8': fmtRatio(r.ratios.float32OverInt8),
  'ts/int8': fmtRatio(r.ratios.tsOverInt8),
  'int8/floor': `${r.int8OverFloor.toFixed(2)}×`,
}));

const result = {
  name: 'memory-scan',
  title: `MemAgent vector scan, ${DIMS} dims, 1 thread, int8 path ${binding.memoryInt8Path}, median ms per query${QUICK ? ' (quick)' : ''}`,
  meta: {
    dims: DIMS,
    threads: 1,
    quick: QUICK,
    timing: TIMING,
    isa: binding.kernelIsa,
    int8Path: binding.memoryInt8Path,
    targets: TARGETS,
    bytesRead: 'embedding bytes: N·dims for int8 (scales not counted), N·dims·4 for float32',
    cpu: os.cpus()[0]?.model,
    checksum: sink,
  },
  rows,
  table,
};

// Under bench/run.mjs the harness prints the table; standalone, print it here.
if (process.env.CAPIBARA_BENCH_OUT) writeFileSync(process.env.CAPIBARA_BENCH_OUT, JSON.stringify(result));
else console.table(table);
