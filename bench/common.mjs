// Shared pieces of the benchmarks: seeded inputs, the interleaved timing loop, and the
// bench-only addon with the floors.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Bench } from 'tinybench';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

// capibara_bench.node: the benchmark floors (native/bench), built next to capibara.node by the
// same `npm run build:native` and kept out of the production addon. With CAPIBARA_NATIVE_PATH
// set, the one in the same folder (so floors and kernels come from the same build).
export function benchAddonPath() {
  const override = process.env.CAPIBARA_NATIVE_PATH;
  const dir = override ? path.dirname(path.resolve(override)) : path.join(ROOT, 'build', 'Release');
  return path.join(dir, 'capibara_bench.node');
}

// Loads the bench addon (floors: gatingFloor, memoryReadFloor) and checks that its floors run
// with the ISA the kernels run with, or a floor would not be one.
export function benchAddon(kernelIsa) {
  const file = benchAddonPath();
  if (!existsSync(file)) throw new Error(`${file} missing: run \`npm run build:native\` first`);
  const mod = { exports: {} };
  process.dlopen(mod, file);
  if (kernelIsa !== undefined && mod.exports.floorIsa !== kernelIsa) {
    throw new Error(`bench addon floors run on ${mod.exports.floorIsa} but the kernels on ${kernelIsa}: rebuild both`);
  }
  return mod.exports;
}

// mulberry32: small, seeded, good enough to make reproducible inputs.
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Router logits look roughly normal; Box-Muller over the seeded uniforms.
export function normalLogits(n, seed) {
  const u = prng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - u()));
    const th = 2 * Math.PI * u();
    out[i] = r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

// Interleaved rounds timed by tinybench: each round is a tinybench run of every contender once,
// in a rotating order, instead of one contender's whole run after another — on a shared 2-core
// machine a burst of outside load then hits every contender alike, and the ratios stay honest.
// Round 0 also warms each contender up `timing.warmup` times. Returns median ms per call.
export async function measure(contenders, timing) {
  const times = contenders.map(() => []);
  const start = performance.now();
  for (let round = 0; round < timing.minRounds || performance.now() - start < timing.timeMs; round++) {
    const warm = round === 0 && timing.warmup > 0;
    const bench = new Bench({
      iterations: 1, time: 0, warmup: warm, warmupIterations: timing.warmup, warmupTime: 0,
      retainSamples: true, throws: true,
    });
    const order = contenders.map((_, j) => (round + j) % contenders.length);
    for (const c of order) bench.add(String(c), contenders[c][1], { async: Boolean(contenders[c][2]) });
    await bench.run();
    for (const task of bench.tasks) times[Number(task.name)].push(...task.result.latency.samples);
  }
  return Object.fromEntries(contenders.map(([name], c) => {
    const s = times[c].sort((a, b) => a - b);
    const mid = s.length >> 1;
    return [name, { median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2, samples: s.length }];
  }));
}
