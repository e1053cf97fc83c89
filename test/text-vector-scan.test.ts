import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';

import { dequantizeInt8, quantizeInt8 } from '../src/text/quantize';
import { float32Scores, float32ScoresAsync, int8Scores, int8ScoresAsync } from '../src/text/vector-scan';
import { native } from '../src/native';
import { normal, rng } from './support/random';

// ---------------------------------------------------------------------------------------
// Float64 references, written for the test

/** Exact integer dot products (|dot| <= 2^30: exact in a double), times the scales. */
function refInt8(q: Int8Array, qs: number, codes: Int8Array, scales: Float32Array, dims: number, rows?: Int32Array) {
  const order = rows ? Array.from(rows) : Array.from({ length: scales.length }, (_, i) => i);
  return order.map((r) => {
    let dot = 0;
    for (let d = 0; d < dims; d++) dot += q[d]! * codes[r * dims + d]!;
    return { dot, value: qs * scales[r]! * dot };
  });
}

/** Dot products in float64, with Σ|q·x| to scale the float32 tolerance. */
function refFloat32(q: Float32Array, m: Float32Array, dims: number, rows?: Int32Array) {
  const order = rows ? Array.from(rows) : Array.from({ length: m.length / dims }, (_, i) => i);
  return order.map((r) => {
    let value = 0;
    let magnitude = 0;
    for (let d = 0; d < dims; d++) {
      const p = q[d]! * m[r * dims + d]!;
      value += p;
      magnitude += Math.abs(p);
    }
    return { value, magnitude };
  });
}

function randomInt8(rand: () => number, n: number): Int8Array {
  const out = new Int8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rand() * 256) - 128;
  return out;
}

function expectInt8Matches(got: Float32Array, ref: ReturnType<typeof refInt8>, label: string) {
  expect(got.length, label).toBe(ref.length);
  ref.forEach(({ value }, j) => {
    // The kernel sums exactly and rounds the scaled product once, so it equals the rounded reference.
    expect(got[j], `${label} output ${j}`).toBe(Math.fround(value));
    expect(Math.abs(got[j]! - value)).toBeLessThanOrEqual(1e-6 * Math.abs(value));
  });
}

function expectFloat32Matches(got: Float32Array, ref: ReturnType<typeof refFloat32>, label: string) {
  expect(got.length, label).toBe(ref.length);
  ref.forEach(({ value, magnitude }, j) => {
    expect(Math.abs(got[j]! - value), `${label} output ${j}`).toBeLessThanOrEqual(1e-5 * magnitude + 1e-30);
  });
}

/** A random subset of n rows: unsorted, with repeats. */
function randomRows(rand: () => number, n: number): Int32Array {
  return Int32Array.from({ length: Math.floor(n / 2) + 1 }, () => Math.floor(rand() * n));
}

// ---------------------------------------------------------------------------------------

describe('int8Scores and float32Scores against float64 references', () => {
  const rand = rng(7);
  for (const dims of [1, 3, 17, 384, 4096]) {
    for (const n of [0, 1, 15, 16, 17, 1000]) {
      it(`dims ${dims}, ${n} rows: every row and a subset`, () => {
        const q = randomInt8(rand, dims);
        const codes = randomInt8(rand, n * dims);
        const scales = Float32Array.from({ length: n }, () => rand() / 127);
        const qs = 0.75 / 127;
        expectInt8Matches(int8Scores(q, qs, codes, scales, dims), refInt8(q, qs, codes, scales, dims), 'int8');
        const qf = normal(rand, dims);
        const m = normal(rand, n * dims);
        expectFloat32Matches(float32Scores(qf, m, dims), refFloat32(qf, m, dims), 'float32');
        if (n > 0) {
          const rows = randomRows(rand, n);
          expectInt8Matches(int8Scores(q, qs, codes, scales, dims, { rows }), refInt8(q, qs, codes, scales, dims, rows), 'int8 subset');
          expectFloat32Matches(float32Scores(qf, m, dims, { rows }), refFloat32(qf, m, dims, rows), 'float32 subset');
        }
      });
    }
  }

  it('stays exact at the extremes of int8 and of dims (65536)', () => {
    const dims = 65536;
    // Rows: all -128, all 127, alternating; against queries of -128, 127 and mixed signs: dot
    // products up to 2^30 and the VNNI path's biased sum near 2^31 (the bias is the query's sum).
    const codes = new Int8Array(3 * dims);
    codes.fill(-128, 0, dims);
    codes.fill(127, dims, 2 * dims);
    for (let d = 0; d < dims; d++) codes[2 * dims + d] = d % 2 ? 127 : -128;
    const scales = Float32Array.of(1, 1, 0.5);
    for (const fill of [-128, 127]) {
      const q = new Int8Array(dims).fill(fill);
      const got = int8Scores(q, 1, codes, scales, dims);
      expectInt8Matches(got, refInt8(q, 1, codes, scales, dims), `query ${fill}`);
    }
    const mixed = Int8Array.from({ length: dims }, (_, d) => (d % 3 ? -128 : 127));
    expectInt8Matches(int8Scores(mixed, 2, codes, scales, dims), refInt8(mixed, 2, codes, scales, dims), 'mixed');
    expect(int8Scores(new Int8Array(dims).fill(-128), 1, codes, scales, dims)[0]).toBe(2 ** 30);
  });

  it('scores rows near the end of the matrix without reading past it (offset views)', () => {
    const rand2 = rng(11);
    for (const dims of [3, 17, 63, 65]) {
      // The matrix is an offset view ending where its buffer ends: a read past the last row shows up under ASan.
      const buf = new Int8Array(5 * dims + 7);
      const codes = buf.subarray(7, 7 + 5 * dims);
      codes.set(randomInt8(rand2, 5 * dims));
      const q = randomInt8(rand2, dims);
      const scales = new Float32Array(5).fill(1);
      const rows = Int32Array.of(4, 4, 0, 3);
      expectInt8Matches(int8Scores(q, 1, codes, scales, dims, { rows }), refInt8(q, 1, codes, scales, dims, rows), `dims ${dims}`);
    }
  });

  it('gives the same scores on any number of threads', () => {
    const rand2 = rng(3);
    const dims = 384;
    const n = 20000; // 7.7 MB of int8 rows: enough for several threads
    const q = randomInt8(rand2, dims);
    const codes = randomInt8(rand2, n * dims);
    const scales = Float32Array.from({ length: n }, () => rand2());
    const qf = normal(rand2, dims);
    const m = normal(rand2, n * dims);
    const rows = randomRows(rand2, n);
    const one = int8Scores(q, 0.01, codes, scales, dims, { threads: 1 });
    const oneF = float32Scores(qf, m, dims, { threads: 1 });
    for (const threads of [2, 3, 8]) {
      expect(int8Scores(q, 0.01, codes, scales, dims, { threads })).toEqual(one);
      expect(float32Scores(qf, m, dims, { threads })).toEqual(oneF);
      expect(int8Scores(q, 0.01, codes, scales, dims, { threads, rows })).toEqual(Float32Array.from(rows, (r) => one[r]!));
    }
  });

  it('writes into out, and accepts an empty subset', () => {
    const codes = Int8Array.of(1, 2, 3, 4);
    const scales = Float32Array.of(1, 0.5);
    const out = new Float32Array(2);
    expect(int8Scores(Int8Array.of(1, 1), 1, codes, scales, 2, { out })).toBe(out);
    expect(Array.from(out)).toEqual([3, 3.5]);
    expect(int8Scores(Int8Array.of(1, 1), 1, codes, scales, 2, { rows: new Int32Array(0) })).toEqual(new Float32Array(0));
    const fout = new Float32Array(1);
    expect(float32Scores(Float32Array.of(1, 2), Float32Array.of(1, 1, 2, 2), 2, { rows: Int32Array.of(1), out: fout })).toBe(fout);
    expect(fout[0]).toBe(6);
    expect(float32Scores([0.5, 0.25] as unknown as Float32Array, Float32Array.of(4, 4), 2)[0]).toBe(3); // number[] query
  });
});

describe('ISA variants of the scans', () => {
  // The ISA is chosen once per process: each variant runs in a child on the same inputs and
  // must give bit-identical scores (int8 sums are exact; float32 sums keep one order on every ISA).
  const lib = resolve(__dirname, '..', 'lib');
  const SCRIPT = `
const { int8Scores, float32Scores } = require(${JSON.stringify(resolve(lib, 'text', 'vector-scan.js'))});
const { native } = require(${JSON.stringify(resolve(lib, 'native.js'))});
let a = 99;
const rand = () => ((a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const b64 = (x) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64');
const out = { path: native().memoryInt8Path, runs: [] };
for (const dims of [1, 3, 17, 64, 384, 4096]) {
  for (const n of [0, 1, 17, 1000]) {
    const q = Int8Array.from({ length: dims }, () => Math.floor(rand() * 256) - 128);
    const codes = Int8Array.from({ length: n * dims }, () => Math.floor(rand() * 256) - 128);
    const scales = Float32Array.from({ length: n }, () => rand());
    const qf = Float32Array.from({ length: dims }, () => rand() * 2 - 1);
    const m = Float32Array.from({ length: n * dims }, () => rand() * 2 - 1);
    const rows = Int32Array.from({ length: n ? 9 : 0 }, () => Math.floor(rand() * n));
    for (const threads of [1, 2]) {
      out.runs.push(b64(int8Scores(q, 0.01, codes, scales, dims, { threads })), b64(int8Scores(q, 0.01, codes, scales, dims, { rows, threads })));
      out.runs.push(b64(float32Scores(qf, m, dims, { threads })), b64(float32Scores(qf, m, dims, { rows, threads })));
    }
  }
}
console.log(JSON.stringify(out));`;

  function run(isa?: string): { path: string; runs: string[] } {
    const env = { ...process.env };
    if (isa) env['CAPIBARA_ISA'] = isa;
    else delete env['CAPIBARA_ISA'];
    return JSON.parse(execFileSync(process.execPath, ['-e', SCRIPT], { env, encoding: 'utf8', maxBuffer: 64 << 20 }));
  }

  it('gives bit-identical scores on every variant this CPU has', () => {
    const best = run();
    expect(best.path).toBe(native().memoryInt8Path);
    // avx512 here means AVX-512 without VNNI.
    const tried = [best.path];
    for (const isa of ['avx512', 'avx2', 'generic']) {
      const other = run(isa);
      if (other.path !== isa) continue; // the CPU lacks it
      tried.push(isa);
      other.runs.forEach((r, i) => expect(r, `${isa} run ${i}`).toBe(best.runs[i]));
    }
    console.info(`memory scan variants compared: ${tried.join(', ')}`);
  });
});

describe('async scans', () => {
  const rand = rng(21);
  const dims = 384;
  const n = 3000;
  const q = randomInt8(rand, dims);
  const codes = randomInt8(rand, n * dims);
  const scales = Float32Array.from({ length: n }, () => rand());
  const qf = normal(rand, dims);
  const m = normal(rand, n * dims);
  const rows = randomRows(rand, n);

  /** A copy of `a` on a SharedArrayBuffer (read in place by the async scans). */
  function shared<T extends Int8Array | Float32Array | Int32Array>(a: T): T {
    const Ctor = a.constructor as new (b: SharedArrayBuffer) => T;
    const s = new Ctor(new SharedArrayBuffer(a.byteLength));
    s.set(a as never);
    return s;
  }

  it('match the sync scans, with inputs copied or read in place', async () => {
    const want = int8Scores(q, 0.5, codes, scales, dims, { rows });
    const wantF = float32Scores(qf, m, dims);
    expect(await int8ScoresAsync(q, 0.5, codes, scales, dims, { rows })).toEqual(want);
    expect(await int8ScoresAsync(shared(q), 0.5, shared(codes), shared(scales), dims, { rows: shared(rows) })).toEqual(want);
    expect(await float32ScoresAsync(qf, m, dims)).toEqual(wantF);
    expect(await float32ScoresAsync(shared(qf), shared(m), dims, { threads: 2 })).toEqual(wantF);
    const out = new Float32Array(rows.length);
    expect(await int8ScoresAsync(q, 0.5, codes, scales, dims, { rows, out })).toBe(out);
    expect(out).toEqual(want);
  });

  it('copy non-shared inputs when called: later writes do not change the result', async () => {
    const c = codes.slice();
    const p = int8ScoresAsync(q, 0.5, c, scales, dims);
    c.fill(0);
    expect(await p).toEqual(int8Scores(q, 0.5, codes, scales, dims));
  });

  it('reject with the kernel error, at the caller', async () => {
    const bad = scales.slice();
    bad[7] = NaN;
    const err = await int8ScoresAsync(q, 0.5, codes, bad, dims).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(RangeError);
    expect((err as Error).message).toBe('Expected finite scales >= 0 but scales[7] is NaN');
    expect((err as Error).stack).toContain('text-vector-scan.test');
    await expect(float32ScoresAsync(qf, m, dims, { rows: Int32Array.of(0, 3000) })).rejects.toThrow(
      new RangeError('Expected row indices in [0, 3000) for rows but rows[1] is 3000'),
    );
    await expect(int8ScoresAsync(new Uint8Array(dims) as never, 0.5, codes, scales, dims)).rejects.toThrow(
      new TypeError('Expected Int8Array for query but received Uint8Array of length 384'),
    );
  });
});

describe('in worker threads', () => {
  it('scans sync and async in several workers at once, as on the main thread', async () => {
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const { int8Scores, int8ScoresAsync, float32ScoresAsync } = require(workerData.lib);
      const dims = 384, n = 4000;
      const codes = Int8Array.from({ length: n * dims }, (_, i) => ((i * 7919) % 255) - 127);
      const scales = Float32Array.from({ length: n }, (_, i) => (i % 13) / 1000);
      const q = Int8Array.from({ length: dims }, (_, i) => ((i * 31) % 255) - 127);
      const m = Float32Array.from(codes, (c) => c / 127);
      const a = int8Scores(q, 0.5, codes, scales, dims);
      Promise.all([int8ScoresAsync(q, 0.5, codes, scales, dims), float32ScoresAsync(Float32Array.from(q), m, dims)])
        .then(([b, f]) => parentPort.postMessage({ a, b, f }));`;
    const lib = resolve(__dirname, '..', 'lib', 'text', 'vector-scan.js');
    const runWorker = () =>
      new Promise<{ a: Float32Array; b: Float32Array; f: Float32Array }>((ok, fail) => {
        const w = new Worker(code, { eval: true, workerData: { lib } });
        w.once('message', ok);
        w.once('error', fail);
      });
    const results = await Promise.all([runWorker(), runWorker(), runWorker()]);
    const dims = 384;
    const n = 4000;
    const codes = Int8Array.from({ length: n * dims }, (_, i) => ((i * 7919) % 255) - 127);
    const scales = Float32Array.from({ length: n }, (_, i) => (i % 13) / 1000);
    const q = Int8Array.from({ length: dims }, (_, i) => ((i * 31) % 255) - 127);
    const want = int8Scores(q, 0.5, codes, scales, dims);
    const wantF = float32Scores(Float32Array.from(q), Float32Array.from(codes, (c) => c / 127), dims);
    for (const r of results) {
      expect(r.a).toEqual(want);
      expect(r.b).toEqual(want);
      expect(r.f).toEqual(wantF);
    }
  });
});

describe('quantizeInt8 and dequantizeInt8', () => {
  const rand = rng(5);

  it('keeps the cosine of random 384-d normals at or above 0.999', () => {
    let worst = 1;
    for (let t = 0; t < 200; t++) {
      const x = normal(rand, 384);
      const { codes, scale } = quantizeInt8(x);
      const y = dequantizeInt8(codes, scale);
      let dot = 0;
      let nx = 0;
      let ny = 0;
      for (let i = 0; i < 384; i++) {
        dot += x[i]! * y[i]!;
        nx += x[i]! * x[i]!;
        ny += y[i]! * y[i]!;
        // Each element is off by at most half a step (the scale is rounded to float32 first).
        expect(Math.abs(x[i]! - codes[i]! * scale)).toBeLessThanOrEqual(scale / 2 + 1e-7 * Math.abs(x[i]!));
      }
      worst = Math.min(worst, dot / Math.sqrt(nx * ny));
    }
    expect(worst).toBeGreaterThanOrEqual(0.999);
  });

  it('uses scale = max|x| / 127 (as a float32) and codes in [-127, 127], halves away from zero', () => {
    const x = Float32Array.of(127, 2.5, -2.5, 0.49, -0.5, -127);
    expect(quantizeInt8(x)).toEqual({ codes: Int8Array.of(127, 3, -3, 0, -1, -127), scale: 1 });
    const y = normal(rand, 384);
    const { codes, scale } = quantizeInt8(y);
    const maxAbs = Math.max(...Array.from(y, Math.abs));
    expect(scale).toBe(Math.fround(maxAbs / 127));
    expect(Math.max(...Array.from(codes, Math.abs))).toBe(127);
    expect(quantizeInt8(new Float32Array(4))).toEqual({ codes: new Int8Array(4), scale: 0 });
    expect(quantizeInt8(new Float32Array(0))).toEqual({ codes: new Int8Array(0), scale: 0 });
    // Too small for max|x| / 127 to be a float32: the smallest positive one instead.
    expect(quantizeInt8(Float32Array.of(1e-45, -1e-45))).toEqual({ codes: Int8Array.of(1, -1), scale: 2 ** -149 });
  });

  it('reuses out and reconstructs codes · scale', () => {
    const out = new Int8Array(3).fill(9);
    expect(quantizeInt8(Float32Array.of(0, 0, 0), out).codes).toBe(out);
    expect(Array.from(out)).toEqual([0, 0, 0]);
    const f = new Float32Array(2);
    expect(dequantizeInt8(Int8Array.of(-127, 64), 0.5, f)).toBe(f);
    expect(Array.from(f)).toEqual([-63.5, 32]);
  });

  it('makes int8Scores approximate the cosine of unit vectors', () => {
    const dims = 384;
    const n = 200;
    const unit = (v: Float32Array) => {
      const norm = Math.hypot(...v);
      return v.map((x) => x / norm);
    };
    const qv = unit(normal(rand, dims));
    const m = new Float32Array(n * dims);
    const codes = new Int8Array(n * dims);
    const scales = new Float32Array(n);
    for (let r = 0; r < n; r++) {
      const v = unit(normal(rand, dims).map((x, d) => x + 2 * qv[d]! * (r / n) * Math.sqrt(dims))); // a spread of similarities
      m.set(v, r * dims);
      scales[r] = quantizeInt8(v, codes.subarray(r * dims, (r + 1) * dims)).scale;
    }
    const q = quantizeInt8(qv);
    const approx = int8Scores(q.codes, q.scale, codes, scales, dims);
    const exact = refFloat32(qv, m, dims);
    exact.forEach(({ value }, r) => expect(Math.abs(approx[r]! - value), `row ${r}`).toBeLessThan(5e-3));
  });
});

describe('argument errors', () => {
  const q = Int8Array.of(1, 2);
  const codes = Int8Array.of(1, 2, 3, 4);
  const scales = Float32Array.of(1, 1);
  const cases: Array<[string, () => unknown, typeof TypeError | typeof RangeError, string]> = [
    ['query type', () => int8Scores([1, 2] as unknown as Int8Array, 1, codes, scales, 2), TypeError,
      'Expected Int8Array for query but received Array of length 2'],
    ['query length', () => int8Scores(Int8Array.of(1), 1, codes, scales, 2), RangeError,
      'Expected Int8Array of length 2 for query but received Int8Array of length 1'],
    ['queryScale NaN', () => int8Scores(q, NaN, codes, scales, 2), RangeError,
      'Expected finite number >= 0 for queryScale but received NaN of type number'],
    ['queryScale negative', () => int8Scores(q, -1, codes, scales, 2), RangeError,
      'Expected finite number >= 0 for queryScale but received -1 of type number'],
    ['queryScale type', () => int8Scores(q, '1' as unknown as number, codes, scales, 2), TypeError,
      "Expected finite number >= 0 for queryScale but received '1' of type string"],
    ['dims 0', () => int8Scores(q, 1, codes, scales, 0), RangeError, 'Expected integer in [1, 65536] for dims but received 0 of type number'],
    ['dims fraction', () => int8Scores(q, 1, codes, scales, 1.5), RangeError,
      'Expected integer in [1, 65536] for dims but received 1.5 of type number'],
    ['dims too large', () => float32Scores(new Float32Array(1), new Float32Array(0), 65537), RangeError,
      'Expected integer in [1, 65536] for dims but received 65537 of type number'],
    ['codes type', () => int8Scores(q, 1, new Uint8Array(4) as unknown as Int8Array, scales, 2), TypeError,
      'Expected Int8Array for codes but received Uint8Array of length 4'],
    ['codes length', () => int8Scores(q, 1, Int8Array.of(1, 2, 3), scales, 2), RangeError,
      'Expected Int8Array of length scales.length * dims (4) for codes but received Int8Array of length 3'],
    ['scales type', () => int8Scores(q, 1, codes, Float64Array.of(1, 1) as unknown as Float32Array, 2), TypeError,
      'Expected Float32Array for scales but received Float64Array of length 2'],
    ['rows type', () => int8Scores(q, 1, codes, scales, 2, { rows: [0] as unknown as Int32Array }), TypeError,
      'Expected Int32Array for rows but received Array of length 1'],
    ['row out of range', () => int8Scores(q, 1, codes, scales, 2, { rows: Int32Array.of(1, 0, 2, -1) }), RangeError,
      'Expected row indices in [0, 2) for rows but rows[2] is 2'],
    ['negative row', () => float32Scores(Float32Array.of(1), Float32Array.of(1, 2), 1, { rows: Int32Array.of(-1) }), RangeError,
      'Expected row indices in [0, 2) for rows but rows[0] is -1'],
    ['scale NaN', () => int8Scores(q, 1, codes, Float32Array.of(1, NaN), 2), RangeError, 'Expected finite scales >= 0 but scales[1] is NaN'],
    ['scale negative', () => int8Scores(q, 1, codes, Float32Array.of(-0.5, 1), 2), RangeError,
      'Expected finite scales >= 0 but scales[0] is -0.5'],
    ['scale infinite, in the subset', () => int8Scores(q, 1, codes, Float32Array.of(1, Infinity), 2, { rows: Int32Array.of(0, 1) }),
      RangeError, 'Expected finite scales >= 0 but scales[1] is Infinity'],
    ['threads 0', () => int8Scores(q, 1, codes, scales, 2, { threads: 0 }), RangeError,
      'Expected integer in [1, 256] for threads but received 0 of type number'],
    ['out length', () => int8Scores(q, 1, codes, scales, 2, { out: new Float32Array(3) }), RangeError,
      'Expected Float32Array of length 2 for out but received Float32Array of length 3'],
    ['unknown option', () => int8Scores(q, 1, codes, scales, 2, { row: 1 } as never), TypeError,
      "Unknown option 'row' in options (expected one of: rows, threads, out)"],
    ['options type', () => float32Scores(Float32Array.of(1), Float32Array.of(1), 1, 5 as never), TypeError,
      'Expected an options object for options but received 5 of type number'],
    ['matrix length', () => float32Scores(Float32Array.of(1, 2), new Float32Array(3), 2), RangeError,
      'Expected Float32Array of length a multiple of dims (2) for matrix but received Float32Array of length 3'],
    ['matrix type', () => float32Scores(Float32Array.of(1), [1] as unknown as Float32Array, 1), TypeError,
      'Expected Float32Array for matrix but received Array of length 1'],
    ['float32 query NaN', () => float32Scores(Float32Array.of(1, NaN), new Float32Array(4), 2), RangeError,
      'Expected finite numbers for query but query[1] is NaN'],
    ['float32 query length', () => float32Scores(Float32Array.of(1), new Float32Array(4), 2), RangeError,
      'Expected length 2 for query but received Float32Array of length 1'],
    ['quantize vector type', () => quantizeInt8([1, 2] as unknown as Float32Array), TypeError,
      'Expected Float32Array for vector but received Array of length 2'],
    ['quantize NaN', () => quantizeInt8(Float32Array.of(1, NaN)), RangeError, 'Expected finite numbers for vector but vector[1] is NaN'],
    ['quantize Infinity', () => quantizeInt8(Float32Array.of(-Infinity)), RangeError,
      'Expected finite numbers for vector but vector[0] is -Infinity'],
    ['quantize out length', () => quantizeInt8(Float32Array.of(1, 2), new Int8Array(3)), RangeError,
      'Expected Int8Array of length 2 for out but received Int8Array of length 3'],
    ['quantize out type', () => quantizeInt8(Float32Array.of(1), new Uint8Array(1) as unknown as Int8Array), TypeError,
      'Expected Int8Array for out but received Uint8Array of length 1'],
    ['dequantize codes type', () => dequantizeInt8(new Float32Array(1) as unknown as Int8Array, 1), TypeError,
      'Expected Int8Array for codes but received Float32Array of length 1'],
    ['dequantize scale', () => dequantizeInt8(new Int8Array(1), -1), RangeError,
      'Expected finite number >= 0 for scale but received -1 of type number'],
    ['dequantize out', () => dequantizeInt8(new Int8Array(2), 1, new Float32Array(1)), RangeError,
      'Expected Float32Array of length 2 for out but received Float32Array of length 1'],
  ];
  for (const [label, call, Kind, message] of cases) {
    it(`${label}: ${Kind.name}`, () => {
      expect(call).toThrow(new Kind(message));
      expect(call).toThrow(Kind);
    });
  }

  it('are thrown by the binding too when TypeScript is bypassed', () => {
    const b = native();
    const out = new Float32Array(2);
    expect(() => b.memoryInt8Scores(q, 1, Int8Array.of(1, 2, 3), scales, 2, null, 1, out)).toThrow(
      new RangeError('Expected codes of length scales.length * dims = 4 but received 3'),
    );
    expect(() => b.memoryInt8Scores(q, -1, codes, scales, 2, null, 1, out)).toThrow(new RangeError('Expected queryScale >= 0 but received -1'));
    expect(() => b.memoryInt8Scores(q, 1, codes, scales, 0, null, 1, out)).toThrow(new RangeError('Expected integer in [1, 65536] for dims'));
    expect(() => b.memoryFloat32Scores(Float32Array.of(1), new Float32Array(3), 2, null, 1, out)).toThrow(
      new RangeError('Expected matrix of length a multiple of dims = 2 but received 3'),
    );
    expect(() => b.memoryFloat32Scores(Float32Array.of(1, 2), new Float32Array(4), 2, null, 1, new Float32Array(1))).toThrow(
      new RangeError('Expected out of length 2 but received 1'),
    );
    expect(() => b.memoryInt8Scores(q, 1, codes, scales, 2, [0] as never, 1, out)).toThrow(new TypeError('Expected Int32Array for rows'));
  });
});
