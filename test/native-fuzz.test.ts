/**
 * Randomized bad-input test of the raw binding: every export of `native()` is called with
 * wrong types, wrong typed-array kinds, wrong lengths, non-finite and out-of-range numbers,
 * odd buffer layouts (shared, resizable, detached, offset views) and too few arguments, and
 * with valid argument lists changed one argument at a time. The contract (DESIGN.md,
 * convention 1): a call returns normally or throws a TypeError/RangeError; an async export
 * returns a promise that settles, rejecting only with a TypeError/RangeError (a synchronous
 * TypeError/RangeError from argument checks is accepted too); nothing crashes, hangs, or
 * writes outside its arrays (each typed array sits between canary bytes, checked after the
 * call; under ASan the arrays are exact-size so its redzones catch reads as well).
 *
 * Reproducible: `CAPIBARA_FUZZ_SEED=<n>` picks the seed (the default is fixed), and
 * `CAPIBARA_FUZZ_TRACE=<file>` appends every call to <file>, as a line of JavaScript against
 * the binding `b`, before it runs: after a crash the last line is the call to replay.
 * `npm run test:sanitize` runs this file against the AddressSanitizer + UBSan build.
 *
 * Crashes it found are replayed at the end in child processes: fixed ones as regression tests,
 * open ones as `it.fails` until the binding is fixed.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { native } from '../src/native';
import { underAsan } from './support/sanitizer';

const SEED = Number(process.env['CAPIBARA_FUZZ_SEED'] ?? 0x5eed) >>> 0;
const TRACE = process.env['CAPIBARA_FUZZ_TRACE'];
/**
 * The mutation campaigns make thousands of calls: a few seconds, about ten times that under ASan.
 * This is the harness's limit on a test, not a bound on any call: no call is timed. A hang (a
 * call that never returns, a promise that never settles) runs into it, and afterAll then names
 * the calls whose promises were still pending.
 */
const CAMPAIGN_TIMEOUT_MS = 120_000;

// ---------------------------------------------------------------------------------------
// Seeded PRNG (mulberry32)

class Rng {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  /** A fresh seed for a sub-generator, so a call's arguments can be rebuilt exactly. */
  fork(): number {
    return Math.floor(this.next() * 2 ** 32);
  }
}

// ---------------------------------------------------------------------------------------
// Typed arrays between canaries

type AnyTypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;
type TypedCtor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): AnyTypedArray; BYTES_PER_ELEMENT: number; name: string };

/** Preloaded ASan runtime (npm run test:sanitize). */
/**
 * Canary bytes on each side of an array. None under ASan: there the buffer must be exactly the
 * array, so that its redzones catch out-of-bounds reads as well as writes.
 */
const PAD_BYTES = underAsan ? 0 : 64;
const CANARY = 0xa5;

interface Guard {
  begin: number;
  end: number;
  label: string;
}

/** Canary layout of every buffer built by guarded(), looked up from the arguments of a call. */
const GUARDS = new WeakMap<ArrayBufferLike, Guard>();

/** A typed array of `n` elements with PAD_BYTES of canary on both sides inside its buffer. */
function guarded<T extends AnyTypedArray>(Ctor: TypedCtor, n: number, label: string, shared = false): T {
  const bytes = n * Ctor.BYTES_PER_ELEMENT;
  const buf = shared ? new SharedArrayBuffer(bytes + 2 * PAD_BYTES) : new ArrayBuffer(bytes + 2 * PAD_BYTES);
  new Uint8Array(buf).fill(CANARY);
  GUARDS.set(buf, { begin: PAD_BYTES, end: PAD_BYTES + bytes, label });
  return new Ctor(buf, PAD_BYTES, n) as T;
}

function f32(values: ArrayLike<number>, label: string): Float32Array {
  const a = guarded<Float32Array>(Float32Array, values.length, label);
  a.set(values);
  return a;
}

function i32(values: ArrayLike<number>, label: string): Int32Array {
  const a = guarded<Int32Array>(Int32Array, values.length, label);
  a.set(values);
  return a;
}

function i8(values: ArrayLike<number>, label: string): Int8Array {
  const a = guarded<Int8Array>(Int8Array, values.length, label);
  a.set(values);
  return a;
}

function u8(values: ArrayLike<number>, label: string, shared = false): Uint8Array {
  const a = guarded<Uint8Array>(Uint8Array as unknown as TypedCtor, values.length, label, shared);
  a.set(values);
  return a;
}

function f64(values: ArrayLike<number>, label: string, shared = false): Float64Array {
  const a = guarded<Float64Array>(Float64Array as unknown as TypedCtor, values.length, label, shared);
  a.set(values);
  return a;
}

/**
 * Labels of the arguments whose canaries were overwritten (detached buffers have none left),
 * typed arrays inside an Array argument (attention's buffer list) included.
 */
function brokenCanaries(args: unknown[]): string[] {
  const broken: string[] = [];
  const views = args.flatMap((a) => (Array.isArray(a) ? [...a] : [a]));
  for (const a of views) {
    if (!ArrayBuffer.isView(a)) continue;
    const g = GUARDS.get(a.buffer);
    if (!g || a.buffer.byteLength < g.end + PAD_BYTES) continue;
    const u8 = new Uint8Array(a.buffer);
    let ok = true;
    for (let i = 0; i < g.begin && ok; i++) ok = u8[i] === CANARY;
    for (let i = g.end; i < g.end + PAD_BYTES && ok; i++) ok = u8[i] === CANARY;
    if (!ok) broken.push(g.label);
  }
  return broken;
}

// ---------------------------------------------------------------------------------------
// Argument kinds, valid argument lists and their mutations

type Kind =
  | 'f32' // Float32Array input
  | 'f32?' // Float32Array input or null/undefined
  | 'f32out' // Float32Array output
  | 'i32' // Int32Array of expert indices
  | 'i32out' // Int32Array output
  | 'i32?' // Int32Array of row indices or null/undefined
  | 'i8' // Int8Array input
  | 'kv' // Array of Float32Array or Uint16Array (attention keys/values, one type)
  | 'segments' // Float64Array of rows of 8 (attention segment table)
  | 'cachekv' // Array of Float32Array, Uint16Array or Uint8Array (the cache's buffers, any formats)
  | 'cachesegments' // Float64Array of rows of 10 (the cache's segment table)
  | 'writes' // Float64Array of rows of 11 (the cache's write table)
  | 'u8?' // Uint8Array of flags or null/undefined
  | 'int'
  | 'num'
  | 'bool';

interface Spec {
  name: string;
  async: boolean;
  params: ReadonlyArray<readonly [name: string, kind: Kind]>;
  /** A valid argument list; arrays are built with guarded(). */
  valid(r: Rng): unknown[];
  /** Checks on a normal return (whatever the arguments were); returns a problem or null. */
  check?(args: unknown[], result: unknown): string | null;
  /** Outcomes the export can reach at all (default all three): one that accepts every array of its type has no RangeError. */
  reaches?: readonly Outcome[];
}

function randomLogits(r: Rng, n: number, label: string, maskRate = 0.1): Float32Array {
  const v = new Array<number>(n);
  for (let i = 0; i < n; i++) v[i] = r.bool(maskRate) ? -Infinity : (r.next() - 0.5) * 8;
  return f32(v, label);
}

function divisors(n: number): number[] {
  const d: number[] = [];
  for (let i = 1; i <= n; i++) if (n % i === 0) d.push(i);
  return d;
}

const EXPERT_CHOICES = [1, 2, 3, 4, 6, 8, 16, 17, 33] as const;

function validTopk(r: Rng): unknown[] {
  const E = r.pick(EXPERT_CHOICES);
  const T = r.int(0, 5);
  const groups = r.pick(divisors(E));
  const topkGroups = r.int(1, groups);
  const k = r.int(1, groups > 1 ? topkGroups * (E / groups) : E);
  const bias = r.bool(0.4) ? f32(Array.from({ length: E }, () => r.next() - 0.5), 'bias') : r.pick([null, undefined]);
  const rangeStart = r.int(0, E);
  return [
    randomLogits(r, T * E, 'logits'),
    T,
    E,
    k,
    r.int(0, 1),
    bias,
    r.bool(),
    r.pick([1, 2.5, 0.5, 1e-3]), // routeScale must be > 0
    groups,
    topkGroups,
    r.int(0, 1),
    rangeStart,
    r.int(rangeStart, E),
    r.int(1, 3),
    guarded(Float32Array, T * k, 'weightsOut'),
    guarded(Int32Array, T * k, 'indicesOut'),
  ];
}

function checkIndices(idx: Int32Array, args: unknown[]): string | null {
  const E = Number(args[2]);
  if (idx.length !== Number(args[1]) * Number(args[3])) return `indices of length ${idx.length}, not tokens * k`;
  for (let i = 0; i < idx.length; i++) if (!(idx[i]! >= -1 && idx[i]! <= E)) return `indices[${i}] = ${idx[i]} outside [-1, ${E}]`;
  return null;
}

function checkTopk(args: unknown[], result: unknown): string | null {
  if (result !== undefined) return `returned ${show(result)} instead of undefined`;
  return checkIndices(args[15] as Int32Array, args);
}

/** gatingTopkAsync takes no outputs: it resolves with arrays it allocated. */
const validTopkAsync = (r: Rng) => validTopk(r).slice(0, 14);

function checkTopkAsync(args: unknown[], result: unknown): string | null {
  const o = result as { weights?: unknown; indices?: unknown } | null;
  if (!o || !(o.weights instanceof Float32Array) || !(o.indices instanceof Int32Array)) return `resolved with ${show(result)}`;
  if (o.weights.length !== o.indices.length) return 'weights and indices differ in length';
  return checkIndices(o.indices, args);
}

function validDispatch(r: Rng): unknown[] {
  const E = r.pick(EXPERT_CHOICES);
  const T = r.int(0, 6);
  const k = r.int(1, Math.min(E, 4));
  const indices = Array.from({ length: T * k }, () => (r.bool(0.1) ? r.pick([-1, E]) : r.int(0, E - 1)));
  const capacity = r.pick([-1, 0, 1, 2, T]);
  const policy = r.int(0, 1);
  const needWeights = policy === 1 && capacity >= 0;
  const weights =
    needWeights || r.bool(0.3) ? f32(Array.from({ length: T * k }, () => r.next()), 'weights') : r.pick([null, undefined]);
  return [i32(indices, 'indices'), T, k, E, capacity, r.pick([1, 2, 4, 16]), policy, weights];
}

function checkDispatch(args: unknown[], result: unknown): string | null {
  const d = result as Record<string, Int32Array>;
  if (typeof d !== 'object' || d === null) return `returned ${show(result)}`;
  for (const key of ['loads', 'counts', 'offsets', 'permutation', 'slotPosition', 'dropped'])
    if (!(d[key] instanceof Int32Array)) return `${key} is ${show(d[key])}, not an Int32Array`;
  const E = Number(args[3]);
  const slots = Number(args[1]) * Number(args[2]);
  const { offsets, permutation, slotPosition } = d as Record<string, Int32Array>;
  if (offsets!.length !== E + 1 || offsets![E] !== permutation!.length) return 'offsets do not end at permutation.length';
  for (const s of permutation!) if (s < -1 || s >= slots) return `permutation entry ${s} outside [-1, ${slots})`;
  for (const p of slotPosition!) if (p < -1 || p >= permutation!.length) return `slotPosition entry ${p} out of range`;
  return null;
}

function validStats(r: Rng): unknown[] {
  const E = r.pick(EXPERT_CHOICES);
  const T = r.int(0, 6);
  const k = r.int(1, Math.min(E, 4));
  const indices = Array.from({ length: T * k }, () => (r.bool(0.1) ? r.pick([-1, E]) : r.int(0, E - 1)));
  return [randomLogits(r, T * E, 'logits', 0.05), i32(indices, 'indices'), T, E, k, r.int(0, 1)];
}

function checkStats(args: unknown[], result: unknown): string | null {
  const s = result as Record<string, unknown>;
  if (typeof s !== 'object' || s === null) return `returned ${show(result)}`;
  const loads = s['loads'];
  if (!(loads instanceof Int32Array) || loads.length !== Number(args[3])) return `loads is ${show(loads)}`;
  const total = loads.reduce((a, b) => a + b, 0);
  if (total > Number(args[2]) * Number(args[4])) return `loads sum ${total} exceeds tokens * k`;
  return null;
}

function validRouterLogits(r: Rng): unknown[] {
  const T = r.int(0, 9);
  const H = r.pick([1, 3, 8, 16, 19]);
  const E = r.pick(EXPERT_CHOICES);
  const rand = (n: number) => Array.from({ length: n }, () => r.next() - 0.5);
  return [f32(rand(T * H), 'hidden'), f32(rand(E * H), 'weight'), T, H, E, r.int(1, 3), guarded(Float32Array, T * E, 'out')];
}

/** gatingRouterLogitsAsync takes no output: it resolves with a Float32Array it allocated. */
const validRouterLogitsAsync = (r: Rng) => validRouterLogits(r).slice(0, 6);

function checkRouterLogitsAsync(args: unknown[], result: unknown): string | null {
  if (!(result instanceof Float32Array)) return `resolved with ${show(result)}`;
  const want = Number(args[2]) * Number(args[4]);
  return result.length === want ? null : `resolved with ${result.length} logits, not tokens * experts = ${want}`;
}

/** Int8 codes over the whole range, -128 included (the kernels must stay exact there too). */
const randomCodes = (r: Rng, n: number, label: string) => i8(Array.from({ length: n }, () => r.int(-128, 127)), label);
const SCAN_DIMS = [1, 3, 16, 17, 64, 65] as const;

/** Row indices of a matrix with n rows, or null/undefined (every row). */
function randomRows(r: Rng, n: number): Int32Array | null | undefined {
  if (n === 0 || r.bool(0.4)) return r.pick([null, undefined]);
  return i32(Array.from({ length: r.int(0, 5) }, () => r.int(0, n - 1)), 'rows');
}

function validInt8Scores(r: Rng): unknown[] {
  const dims = r.pick(SCAN_DIMS);
  const n = r.int(0, 6);
  const rows = randomRows(r, n);
  const scales = f32(Array.from({ length: n }, () => (r.bool(0.1) ? 0 : r.next())), 'scales');
  return [randomCodes(r, dims, 'query'), r.pick([0, 0.5, 1 / 127]), randomCodes(r, n * dims, 'codes'), scales, dims, rows,
    r.int(1, 3), guarded(Float32Array, rows ? rows.length : n, 'out')];
}

function validFloat32Scores(r: Rng): unknown[] {
  const dims = r.pick(SCAN_DIMS);
  const n = r.int(0, 6);
  const rows = randomRows(r, n);
  const rand = (k: number) => Array.from({ length: k }, () => r.next() - 0.5);
  return [f32(rand(dims), 'query'), f32(rand(n * dims), 'matrix'), dims, rows, r.int(1, 3), guarded(Float32Array, rows ? rows.length : n, 'out')];
}

/** The async scans take no output: they resolve with a Float32Array of one score per scored row. */
function checkScoresAsync(count: (args: unknown[]) => number) {
  return (args: unknown[], result: unknown): string | null => {
    if (!(result instanceof Float32Array)) return `resolved with ${show(result)}`;
    return result.length === count(args) ? null : `resolved with ${result.length} scores, not ${count(args)}`;
  };
}
const scoredRows = (rowsAt: number, rowCount: (args: unknown[]) => number) => (args: unknown[]) =>
  args[rowsAt] instanceof Int32Array ? (args[rowsAt] as Int32Array).length : rowCount(args);

const INT8_SCORES_PARAMS = [
  ['query', 'i8'],
  ['queryScale', 'num'],
  ['codes', 'i8'],
  ['scales', 'f32'],
  ['dims', 'int'],
  ['rows', 'i32?'],
  ['threads', 'int'],
  ['out', 'f32out'],
] as const;

const FLOAT32_SCORES_PARAMS = [
  ['query', 'f32'],
  ['matrix', 'f32'],
  ['dims', 'int'],
  ['rows', 'i32?'],
  ['threads', 'int'],
  ['out', 'f32out'],
] as const;

const TOPK_PARAMS = [
  ['logits', 'f32'],
  ['tokens', 'int'],
  ['experts', 'int'],
  ['k', 'int'],
  ['scoring', 'int'],
  ['bias', 'f32?'],
  ['renormalize', 'bool'],
  ['routeScale', 'num'],
  ['groups', 'int'],
  ['topkGroups', 'int'],
  ['groupScore', 'int'],
  ['rangeStart', 'int'],
  ['rangeEnd', 'int'],
  ['threads', 'int'],
  ['weightsOut', 'f32out'],
  ['indicesOut', 'i32out'],
] as const;

const ROUTER_LOGITS_PARAMS = [
  ['hidden', 'f32'],
  ['weight', 'f32'],
  ['tokens', 'int'],
  ['hiddenSize', 'int'],
  ['experts', 'int'],
  ['threads', 'int'],
  ['out', 'f32out'],
] as const;

// ---------------------------------------------------------------------------------------
// attentionRun / attentionRunAsync: keys and values as rows of 8 in a segment table
// [head, kBuf, vBuf, kOffset, vOffset, stride, count, first] over a list of buffers.

const ATTENTION_DIMS = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 127, 128, 129, 255, 256] as const;

/** Float16 bits of a finite value: normal halves in ±[2^-5, 4), with zeros and subnormals now and then. */
function randomHalf(r: Rng): number {
  const sign = r.bool() ? 0x8000 : 0;
  if (r.bool(0.03)) return sign;
  if (r.bool(0.05)) return sign | r.int(1, 0x3ff);
  return sign | (r.int(10, 16) << 10) | r.int(0, 0x3ff);
}

/** The value of float16 bits (written here, independent of src/attention/float16.ts). */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return exp === 0 ? sign * mant * 2 ** -24 : sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * A valid attentionRun argument list (out and lse included): small random shapes, grouped query
 * heads, causal or a fixed horizon, streaming heads, 1-4 buffers of float32 or float16 bits,
 * some on a SharedArrayBuffer, and 0-3 segments per KV head in a shuffled table (not sorted by
 * head), strided or dense, ending exactly at their buffer's end more often than not (so that
 * under ASan a read past a segment's last row hits a redzone).
 */
function validAttention(r: Rng): unknown[] {
  const kvHeads = r.int(1, 4);
  const group = r.pick([1, 1, 2, 3, 4, 8].filter((g) => g * kvHeads <= 16));
  const queryHeads = kvHeads * group;
  const dim = r.bool(0.7) ? r.pick(ATTENTION_DIMS) : r.int(1, 256);
  const queries = r.bool(0.1) ? 0 : r.int(1, 20);
  const pos0 = r.int(0, 30);
  const causal = r.bool(0.7);
  const horizon = r.int(-1, 50);
  const f16 = r.bool(0.35);
  const nbuf = r.int(1, 4);
  const need = new Array<number>(nbuf).fill(0);
  const rows: number[][] = [];
  for (let h = 0; h < kvHeads; h++) {
    for (let s = r.int(0, 3); s > 0; s--) {
      // More than 32 rows (a key block) now and then; padded strides mostly just past headDim.
      const count = r.bool(0.1) ? 0 : r.int(1, r.bool(0.2) ? 40 : 12);
      const stride = r.bool(0.5) ? dim : r.bool(0.8) ? dim + r.int(1, 3) : 2 * dim + 1;
      const kb = r.int(0, nbuf - 1);
      const vb = r.int(0, nbuf - 1);
      const ko = r.int(0, 40);
      const vo = r.int(0, 40);
      const span = count === 0 ? 0 : (count - 1) * stride + dim;
      need[kb] = Math.max(need[kb]!, ko + span);
      need[vb] = Math.max(need[vb]!, vo + span);
      const first = r.bool(0.05) ? 2 ** 40 - count : r.int(0, pos0 + queries + 5);
      rows.push([h, kb, vb, ko, vo, stride, count, first]);
    }
  }
  for (let i = rows.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [rows[i], rows[j]] = [rows[j]!, rows[i]!];
  }
  const buffers = need.map((n, i) => {
    const length = n + (r.bool(0.6) ? 0 : r.int(1, 5));
    const shared = r.bool(0.3);
    if (f16) return u16(Array.from({ length }, () => randomHalf(r)), `buffers[${i}]`, shared);
    const a = guarded<Float32Array>(Float32Array, length, `buffers[${i}]`, shared);
    for (let e = 0; e < length; e++) a[e] = r.next() * 2 - 1;
    return a;
  });
  const qn = queries * queryHeads * dim;
  const q = guarded<Float32Array>(Float32Array, qn, 'q', r.bool(0.2));
  for (let e = 0; e < qn; e++) q[e] = r.next() * 2 - 1;
  const streaming = r.bool(0.5) ? u8(Array.from({ length: kvHeads }, () => r.pick([0, 1, 255])), 'streaming') : r.pick([null, undefined]);
  const outRows = queries * queryHeads;
  return [
    q, queries, queryHeads, kvHeads, dim, pos0, causal, horizon, r.pick([1 / Math.sqrt(dim), 0.125, r.next() + 0.01]),
    r.int(0, 4), r.int(0, 10), buffers, f64(rows.flat(), 'segments'), streaming, r.int(1, 4),
    guarded(Float32Array, outRows * dim, 'out'), r.bool() ? guarded(Float32Array, outRows, 'lse') : r.pick([null, undefined]),
  ];
}

const validAttentionAsync = (r: Rng) => [...validAttention(r).slice(0, 15), r.bool()];

function u16(values: ArrayLike<number>, label: string, shared = false): Uint16Array {
  const a = guarded<Uint16Array>(Uint16Array as unknown as TypedCtor, values.length, label, shared);
  a.set(values);
  return a;
}

/** Accepted attention calls whose outputs were compared with the float64 reference (printed at the end). */
let attentionCompared = 0;

interface AttentionReference {
  output: Float64Array;
  lse: Float64Array;
  /** Per row: what float32 rounding may move the output (scaled by the largest |v|) and lse. */
  tolOut: Float64Array;
  tolLse: Float64Array;
}

/**
 * Float64 attention over the segment table of an accepted argument list, or null when the inputs
 * are outside what float32 must reproduce closely (non-finite, or large enough that score rounding
 * grows past a useful tolerance). Same semantics as native/attention/kernels.h: query token t of
 * query head g looks at KV head floor(g / group), up to position pos0 + t (causal) or horizon;
 * a streaming head sees only positions < sink or > horizon - recent; a row that sees nothing is
 * zero with lse -Infinity. Overlapping segments count their rows twice, as the kernel does.
 */
function attentionReference(args: readonly unknown[]): AttentionReference | null {
  const q = args[0] as Float32Array;
  const [queries, queryHeads, kvHeads, dim, pos0] = args.slice(1, 6) as number[];
  const causal = args[6] as boolean;
  const horizon = args[7] as number;
  const scale = Math.fround(args[8] as number);
  const sink = args[9] as number;
  const recent = args[10] as number;
  const list = args[11] as (Float32Array | Uint16Array)[];
  const table = args[12] as Float64Array;
  const streaming = args[13] as Uint8Array | null | undefined;
  const LIMIT = 8;
  if (!(scale <= 4)) return null;
  for (let e = 0; e < q.length; e++) if (!(Math.abs(q[e]!) <= LIMIT)) return null;
  let vmax = 0;
  const values = [...list].map((b) => {
    // A detached buffer that no row reads is accepted: it has nothing to convert.
    const x = b.byteLength === 0 ? new Float64Array(0) : b instanceof Uint16Array ? Float64Array.from(b, halfValue) : Float64Array.from(b);
    for (const y of x) {
      if (!(Math.abs(y) <= LIMIT)) vmax = Infinity;
      else vmax = Math.max(vmax, Math.abs(y));
    }
    return x;
  });
  if (vmax === Infinity) return null;
  const group = queryHeads! / kvHeads!;
  const segs = [];
  for (let s = 0; s + 8 <= table.length; s += 8) segs.push(Array.from({ length: 8 }, (_, c) => table[s + c]!));
  const rows = queries! * queryHeads!;
  const output = new Float64Array(rows * dim!);
  const lse = new Float64Array(rows).fill(-Infinity);
  const tolOut = new Float64Array(rows);
  const tolLse = new Float64Array(rows);
  for (let t = 0; t < queries!; t++) {
    const i = causal ? pos0! + t : horizon;
    for (let g = 0; g < queryHeads!; g++) {
      const h = Math.floor(g / group);
      const row = t * queryHeads! + g;
      const qo = row * dim!;
      const windowed = streaming != null && streaming[h] !== 0;
      const scores: number[] = [];
      const vrows: [Float64Array, number][] = [];
      let bound = 0;
      for (const [head, kb, vb, ko, vo, stride, count, first] of segs) {
        if (head !== h) continue;
        for (let j = 0; j < count!; j++) {
          const pos = first! + j;
          if (!(pos <= i && (!windowed || pos < sink || pos > i - recent))) continue;
          const k = values[kb!]!;
          let dot = 0;
          let abs = 0;
          for (let e = 0; e < dim!; e++) {
            const x = q[qo + e]! * k[ko! + j * stride! + e]!;
            dot += x;
            abs += Math.abs(x);
          }
          scores.push(dot * scale);
          bound = Math.max(bound, abs * scale);
          vrows.push([values[vb!]!, vo! + j * stride!]);
        }
      }
      // Float32 dot products and accumulations of the kernel, bounded loosely (4x the worst case).
      const ds = 5e-7 * dim! * (1 + bound);
      tolOut[row] = (1 + vmax) * (2 * ds + 5e-7 * scores.length + 1e-5);
      if (scores.length === 0) continue;
      const m = Math.max(...scores);
      let l = 0;
      for (let j = 0; j < scores.length; j++) {
        const w = Math.exp(scores[j]! - m);
        l += w;
        const [v, at] = vrows[j]!;
        for (let e = 0; e < dim!; e++) output[qo + e]! += w * v[at + e]!;
      }
      for (let e = 0; e < dim!; e++) output[qo + e]! /= l;
      lse[row] = m + Math.log(l);
      tolLse[row] = ds + 1e-5 * (1 + Math.abs(lse[row]!));
    }
  }
  return { output, lse, tolOut, tolLse };
}

/** Where out / lse leave the float64 reference by more than float32 rounding explains; null if nowhere. */
function compareAttention(args: readonly unknown[], out: Float32Array, lse: Float32Array | null): string | null {
  const dim = args[4] as number;
  const rows = (args[1] as number) * (args[2] as number);
  if (out.length !== rows * dim) return `output of length ${out.length}, not queries * queryHeads * headDim = ${rows * dim}`;
  if (lse !== null && lse.length !== rows) return `lse of length ${lse.length}, not queries * queryHeads = ${rows}`;
  const ref = attentionReference(args);
  if (ref === null) return null;
  attentionCompared++;
  for (let e = 0; e < out.length; e++) {
    const row = Math.floor(e / dim);
    if (!(Math.abs(out[e]! - ref.output[e]!) <= ref.tolOut[row]!)) {
      return `output[${e}] (row ${row}) = ${out[e]} but the float64 reference gives ${ref.output[e]} (tolerance ${ref.tolOut[row]!.toExponential(2)})`;
    }
  }
  if (lse !== null) {
    for (let row = 0; row < rows; row++) {
      const want = ref.lse[row]!;
      const ok = want === -Infinity ? lse[row] === -Infinity : Math.abs(lse[row]! - want) <= ref.tolLse[row]!;
      if (!ok) return `lse[${row}] = ${lse[row]} but the float64 reference gives ${want}`;
    }
  }
  return null;
}

function checkAttention(args: unknown[], result: unknown): string | null {
  if (result !== undefined) return `returned ${show(result)} instead of undefined`;
  const lse = args[16] instanceof Float32Array ? args[16] : null;
  return compareAttention(args, args[15] as Float32Array, lse);
}

function checkAttentionAsync(args: unknown[], result: unknown): string | null {
  const o = result as { output?: unknown; lse?: unknown } | null;
  if (!o || !(o.output instanceof Float32Array)) return `resolved with ${show(result)}`;
  if (args[15] === true ? !(o.lse instanceof Float32Array) : o.lse !== null) return `lse is ${show(o.lse)} with wantLse ${show(args[15])}`;
  return compareAttention(args, o.output, o.lse instanceof Float32Array ? o.lse : null);
}

const ATTENTION_PARAMS = [
  ['q', 'f32'],
  ['queries', 'int'],
  ['queryHeads', 'int'],
  ['kvHeads', 'int'],
  ['headDim', 'int'],
  ['pos0', 'int'],
  ['causal', 'bool'],
  ['horizon', 'int'],
  ['scale', 'num'],
  ['sink', 'int'],
  ['recent', 'int'],
  ['buffers', 'kv'],
  ['segments', 'segments'],
  ['streaming', 'u8?'],
  ['threads', 'int'],
  ['out', 'f32out'],
  ['lse', 'f32?'],
] as const;

const ATTENTION_ASYNC_PARAMS = [...ATTENTION_PARAMS.slice(0, 15), ['wantLse', 'bool']] as const;

/**
 * Mutations of attention's buffer list: not an array, holes, wrong element kinds, mixed float32
 * and float16, one buffer emptied, shortened, detached, poisoned, or moved to another layout.
 */
function bufferListMutations(v: unknown, r: Rng): unknown[] {
  const isKv = (x: unknown) =>
    ArrayBuffer.isView(x) && (x instanceof Float32Array || x instanceof Uint16Array || x instanceof Uint8Array) && GUARDS.has(x.buffer);
  // Array.from: a list with holes (one of the mutations below, mutated again) is not a list of buffers.
  const list = (Array.isArray(v) && v.length > 0 && Array.from(v).every(isKv) ? v : [f32([0.5, -0.5], 'stand-in buffer')]) as (
    | Float32Array
    | Uint16Array
    | Uint8Array
  )[];
  const i = r.int(0, list.length - 1);
  const b = list[i]!;
  const Own = b.constructor as unknown as TypedCtor;
  const Other = (b instanceof Uint16Array ? Float32Array : b instanceof Uint8Array ? Float32Array : Uint16Array) as unknown as TypedCtor;
  const swap = (x: unknown) => list.map((y, j) => (j === i ? x : y));
  const copy = (C: TypedCtor, n: number, label: string, shared = false) => {
    const a = guarded<NumberArray>(C, n, label, shared);
    a.set((b as NumberArray).subarray(0, Math.min(n, b.length)));
    return a;
  };
  const out: unknown[] = [
    [],
    b,
    { ...list, length: list.length },
    new Proxy(list, {}),
    [...list, undefined],
    [null, ...list],
    Object.assign(new Array(list.length + 1), { [list.length]: list[0] }), // holes first
    [...list, ...list], // extra buffers nobody references: fine
    list.map((x) => Array.from(x)),
    list.map((x) => new (x.constructor as unknown as TypedCtor)(new ArrayBuffer(0), 0, 0)),
    swap(null),
    swap(b.buffer),
    swap(new DataView(new ArrayBuffer(b.byteLength))),
    swap(copy(Other, b.length, 'buffer of the other type')), // mixed types (or all the other type, bits reinterpreted)
    swap(copy(Own, 0, 'empty buffer')),
    swap(copy(Own, Math.max(0, b.length - 1), 'buffer one short')),
    swap(copy(Own, b.length + 1, 'buffer one long')),
    swap(copy(Own, b.length, 'shared buffer', true)),
    swap(resizable(Own, b as unknown as ArrayLike<number>)),
    swap(detached(Own, b.length)),
  ];
  for (const C of WRONG_KINDS) if (C !== Own && C !== Other) out.push(swap(guarded(C, b.length, `buffer of ${C.name}`)));
  {
    const big = guarded<NumberArray>(Own, b.length + 3, 'buffer offset view');
    big.set(b as NumberArray, 3);
    out.push(swap(big.subarray(3)));
  }
  const poisons =
    b instanceof Uint16Array ? [0x7c00, 0xfc00, 0x7e00, 0x7bff, 0x0001, 0x7f80, 0xff80, 0x7fc0] : b instanceof Uint8Array ? [0, 255, 0x7f, 0x80] : [NaN, Infinity, -Infinity, FLT_MAX, 1e-45];
  for (const x of poisons) {
    if (b.length === 0) break;
    const a = copy(Own, b.length, `buffer with ${x}`);
    a[r.int(0, b.length - 1)] = x;
    out.push(swap(a));
    out.push(swap(copy(Own, b.length, `buffer all ${x}`).fill(x)));
  }
  return out;
}

/**
 * Mutations of attention's segment table: the table as an array (kinds, lengths, layouts), then
 * single cells of one row (NaN, fractions, negatives, huge values; heads and buffers one past the
 * end; offsets and counts that reach one row past the buffer; strides below headDim), and
 * (count, stride) pairs whose (count - 1) * stride wraps around 2^64 when formed in int64.
 */
function segmentMutations(v: unknown, r: Rng, args: readonly unknown[]): unknown[] {
  const table = ArrayBuffer.isView(v) && v instanceof Float64Array && GUARDS.has(v.buffer) ? v : f64([0, 0, 0, 0, 0, 1, 1, 0], 'stand-in segments');
  const out = arrayMutations(table, 'segments', r, 8);
  const list = Array.isArray(args[11]) ? (args[11] as unknown[]) : [];
  const dim = typeof args[4] === 'number' && Number.isSafeInteger(args[4]) ? args[4] : 1;
  const kvHeads = typeof args[3] === 'number' && Number.isSafeInteger(args[3]) ? args[3] : 1;
  const rows = Math.floor(table.length / 8);
  if (rows === 0) {
    out.push(f64([0, 0, 0, 0, 0, dim, 1, 0], 'one row'), f64([0, 0, 0, 0, 0, dim, 0, 0], 'one empty row'));
    return out;
  }
  const row = r.int(0, rows - 1);
  const at = row * 8;
  const [, kb, vb, ko, vo, stride, count] = Array.from(table.subarray(at, at + 8)) as number[];
  const len = (b: number) => {
    const x = list[b];
    return ArrayBuffer.isView(x) ? (x as NumberArray).length : 0;
  };
  const span = (c: number, s: number) => (c - 1) * s + dim;
  const set = (cells: [col: number, x: number][]) => {
    const a = f64(table, `segments row ${row} ${cells.map(([c, x]) => `[${c}] = ${x}`).join(', ')}`);
    for (const [c, x] of cells) a[at + c] = x;
    out.push(a);
  };
  // Every column gets NaN, a negative, a fraction and a huge value, plus 3 more picked at random.
  const anyCell = [Infinity, -Infinity, -0, 1e-300, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 40 + 1, 2 ** 53, 1e300, -(2 ** 53)];
  for (let c = 0; c < 8; c++) for (const x of [NaN, -1, 0.5, 2 ** 40 + 1, r.pick(anyCell), r.pick(anyCell), r.pick(anyCell)]) set([[c, x]]);
  set([[0, kvHeads]]);
  set([[0, kvHeads - 1]]);
  set([[1, list.length]]);
  set([[2, list.length]]);
  set([[1, Math.max(0, list.length - 1)]]);
  for (const [col, b, o] of [[3, kb!, ko!], [4, vb!, vo!]] as const) {
    const fit = len(b) - span(count!, stride!);
    set([[col, fit]]); // last row ends at the buffer's end: fine
    set([[col, fit + 1]]);
    set([[col, len(b)]]);
    set([[col, o + len(b)]]);
  }
  set([[5, dim - 1]]);
  set([[5, 0]]);
  set([[5, stride! + 1]]);
  set([[5, 2 ** 27]]);
  set([[5, 2 ** 27 + 1]]);
  set([[5, 143165577]]); // 15 * stride passes 2^31 (32-bit gather indices)
  set([[6, count! + 1]]);
  set([[6, 0]]);
  set([[6, Math.floor((Math.min(len(kb!) - ko!, len(vb!) - vo!) - dim) / stride!) + 2]]);
  set([[7, 2 ** 40]]);
  set([[7, 2 ** 40 - 1]]);
  // (count - 1) * stride = 2^64 (or a multiple): wraps to 0 in int64, and the row would then "fit".
  set([[5, 2 ** 40], [6, 2 ** 24 + 1]]);
  set([[5, 2 ** 27], [6, 2 ** 37 + 1]]);
  set([[5, 2 ** 26], [6, 2 ** 38 + 1]]);
  set([[5, 2 ** 27], [6, 2 ** 40]]);
  set([[3, 2 ** 40], [6, 1]]);
  // Many rows: the same row again and again (keys counted once per row).
  out.push(f64(Array.from({ length: 50 }, () => Array.from(table.subarray(at, at + 8))).flat(), 'one row 50 times'));
  return out;
}

// ---------------------------------------------------------------------------------------
// attentionCacheRun / attentionCacheRunAsync: segments of any format (dense rows, or the cache's
// blocks of 64 positions: native/attention/kernels.h) as rows of 10 [head, format, kBuf, vBuf,
// kOffset, vOffset, stride, count, first, lane]; attentionKvWrite: rows of 11 [format, srcK,
// srcV, srcOffset, srcStride, count, dstK, dstV, dstKOffset, dstVOffset, lane].

const BLOCK = 64;
/** Element counts of one block's keys / values per format (written here from kernels.h's table). */
function blockElements(format: number, dim: number): [number, number] {
  const dim4 = Math.ceil(dim / 4) * 4;
  if (format === 4) return [Math.ceil(dim / 2) * 2 * BLOCK, dim * BLOCK];
  if (format === 5) return [dim4 * (8 + BLOCK), 4 * BLOCK + dim * BLOCK];
  return [dim * BLOCK, dim * BLOCK];
}
/** The typed array a format is stored in: 0, 2 Float32Array; 1, 3, 4 Uint16Array; 5 Uint8Array. */
const formatCtor = (format: number): TypedCtor =>
  (format === 0 || format === 2 ? Float32Array : format === 5 ? Uint8Array : Uint16Array) as unknown as TypedCtor;

/** Random contents of a format's buffer: finite values (int8 blocks with finite steps and minima). */
function fillFormat(r: Rng, a: NumberArray, format: number, dim: number, offset: number, blocks: number, isKey: boolean): void {
  if (format === 0 || format === 2) {
    for (let e = 0; e < a.length; e++) a[e] = r.next() * 2 - 1;
  } else if (format === 1 || format === 3) {
    for (let e = 0; e < a.length; e++) a[e] = randomHalf(r);
  } else if (format === 4) {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let e = 0; e < a.length; e++) {
      f[0] = r.next() * 4 - 2;
      a[e] = u[0]! >>> 16;
    }
  } else {
    for (let e = 0; e < a.length; e++) a[e] = r.int(0, 255);
    // Steps and minima (keys) or per-token steps (values) as small finite floats.
    const view = new DataView(a.buffer, a.byteOffset, a.byteLength);
    const dim4 = Math.ceil(dim / 4) * 4;
    const [kb, vb] = blockElements(5, dim);
    for (let b = 0; b < blocks; b++) {
      const base = offset + b * (isKey ? kb : vb);
      const floats = isKey ? 2 * dim4 : BLOCK;
      for (let i = 0; i < floats; i++) if (base + 4 * i + 4 <= a.length) view.setFloat32(base + 4 * i, r.next() * 0.05, true);
    }
  }
}

/**
 * A valid attentionCacheRun argument list: shapes as validAttention's, each KV head with 0-3
 * segments of random formats, dense (any row stride) or blocked (any first lane, running over
 * block boundaries), each on buffers of its own kind, some on SharedArrayBuffers.
 */
function validCacheRun(r: Rng): unknown[] {
  const kvHeads = r.int(1, 3);
  const group = r.pick([1, 1, 2, 3, 4, 8].filter((g) => g * kvHeads <= 16));
  const queryHeads = kvHeads * group;
  const dim = r.bool(0.7) ? r.pick(ATTENTION_DIMS) : r.int(1, 256);
  const queries = r.bool(0.1) ? 0 : r.int(1, 12);
  const pos0 = r.int(0, 200);
  const causal = r.bool(0.7);
  const horizon = r.int(-1, 260);
  const buffers: unknown[] = [];
  const rows: number[][] = [];
  for (let h = 0; h < kvHeads; h++) {
    for (let s = r.int(0, 3); s > 0; s--) {
      const format = r.int(0, 5);
      const blocked = format >= 2;
      const count = r.bool(0.1) ? 0 : r.int(1, r.bool(0.3) ? 150 : 40);
      const lane = blocked ? r.int(0, 63) : 0;
      const stride = blocked ? 0 : r.bool(0.5) ? dim : dim + r.int(1, 3);
      const [kb, vb] = blocked ? blockElements(format, dim) : [0, 0];
      const blocks = blocked ? Math.ceil((lane + count) / BLOCK) : 0;
      const ko = r.int(0, 8);
      const vo = r.int(0, 8);
      const kLen = ko + (blocked ? blocks * kb : count === 0 ? 0 : (count - 1) * stride + dim) + (r.bool(0.6) ? 0 : r.int(1, 5));
      const vLen = vo + (blocked ? blocks * vb : count === 0 ? 0 : (count - 1) * stride + dim) + (r.bool(0.6) ? 0 : r.int(1, 5));
      const C = formatCtor(format);
      const k = guarded<NumberArray>(C, kLen, `buffers[${buffers.length}]`, r.bool(0.3));
      const v = guarded<NumberArray>(C, vLen, `buffers[${buffers.length + 1}]`, r.bool(0.3));
      fillFormat(r, k, format, dim, ko, blocks, true);
      fillFormat(r, v, format, dim, vo, blocks, false);
      const first = r.bool(0.05) ? 2 ** 40 - count : r.int(0, pos0 + queries + 5);
      rows.push([h, format, buffers.length, buffers.length + 1, ko, vo, stride, count, first, lane]);
      buffers.push(k, v);
    }
  }
  for (let i = rows.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [rows[i], rows[j]] = [rows[j]!, rows[i]!];
  }
  const qn = queries * queryHeads * dim;
  const q = guarded<Float32Array>(Float32Array, qn, 'q', r.bool(0.2));
  for (let e = 0; e < qn; e++) q[e] = r.next() * 2 - 1;
  const streaming = r.bool(0.5) ? u8(Array.from({ length: kvHeads }, () => r.pick([0, 1, 255])), 'streaming') : r.pick([null, undefined]);
  const outRows = queries * queryHeads;
  return [
    q, queries, queryHeads, kvHeads, dim, pos0, causal, horizon, r.pick([1 / Math.sqrt(dim), 0.125, r.next() + 0.01]),
    r.int(0, 70), r.int(0, 80), buffers, f64(rows.flat(), 'segments'), streaming, r.int(1, 4),
    guarded(Float32Array, outRows * dim, 'out'), r.bool() ? guarded(Float32Array, outRows, 'lse') : r.pick([null, undefined]),
  ];
}

const validCacheRunAsync = (r: Rng) => [...validCacheRun(r).slice(0, 15), r.bool()];

/**
 * The float64 reference of an accepted attentionCacheRun whose segments are all float32 or
 * float16 (dense or blocked), read with the block layouts written here: key j of a blocked
 * segment in lane (lane + j) % 64 of block (lane + j) / 64, keys [dim][64], values in chunks of
 * 64 columns [chunk][64][width]. Other formats (bfloat16, int8) round or quantise on the way
 * (attention-kv-storage.test.ts holds them to their own references): null.
 */
function cacheRunAsDense(args: readonly unknown[]): unknown[] | null {
  const dim = args[4] as number;
  const list = args[11] as NumberArray[];
  const table = args[12] as Float64Array;
  // An async call's inputs may be gone by now (detached, shrunk: it read its copies): no reference then.
  const gone = (x: unknown) => !ArrayBuffer.isView(x) || (x as NumberArray).buffer.byteLength === 0;
  if (gone(table) || !Array.isArray(list) || list.some(gone)) return null;
  const rows: number[][] = [];
  const buffers: Float32Array[] = [];
  for (let i = 0; i + 10 <= table.length; i += 10) {
    const [h, format, kb, vb, ko, vo, stride, count, first, lane] = Array.from(table.subarray(i, i + 10)) as number[];
    if (format !== 0 && format !== 1 && format !== 2 && format !== 3) return null;
    const read = (x: number) => (format === 1 || format === 3 ? halfValue(x) : x);
    const k = new Float32Array(count! * dim);
    const v = new Float32Array(count! * dim);
    const [kbl, vbl] = blockElements(format, dim);
    for (let j = 0; j < count!; j++) {
      const at = lane! + j;
      const block = Math.floor(at / BLOCK);
      const l = at % BLOCK;
      for (let d = 0; d < dim; d++) {
        if (format! <= 1) {
          k[j * dim + d] = read(list[kb!]![ko! + j * stride! + d]!);
          v[j * dim + d] = read(list[vb!]![vo! + j * stride! + d]!);
        } else {
          const start = Math.floor(d / 64) * 64;
          const width = Math.min(64, dim - start);
          k[j * dim + d] = read(list[kb!]![ko! + block * kbl + d * BLOCK + l]!);
          v[j * dim + d] = read(list[vb!]![vo! + block * vbl + start * BLOCK + l * width + (d - start)]!);
        }
      }
    }
    rows.push([h!, buffers.length, buffers.length + 1, 0, 0, dim, count!, first!]);
    buffers.push(k, v);
  }
  const dense = [...args];
  dense[11] = buffers;
  dense[12] = Float64Array.from(rows.flat());
  return dense;
}

function checkCacheRun(args: unknown[], result: unknown): string | null {
  if (result !== undefined) return `returned ${show(result)} instead of undefined`;
  const dense = cacheRunAsDense(args);
  const lse = args[16] instanceof Float32Array ? args[16] : null;
  return dense === null ? null : compareAttention(dense, args[15] as Float32Array, lse);
}

function checkCacheRunAsync(args: unknown[], result: unknown): string | null {
  const o = result as { output?: unknown; lse?: unknown } | null;
  if (!o || !(o.output instanceof Float32Array)) return `resolved with ${show(result)}`;
  if (args[15] === true ? !(o.lse instanceof Float32Array) : o.lse !== null) return `lse is ${show(o.lse)} with wantLse ${show(args[15])}`;
  const dense = cacheRunAsDense(args);
  return dense === null ? null : compareAttention(dense, o.output, o.lse instanceof Float32Array ? o.lse : null);
}

/**
 * A valid attentionKvWrite argument list: 0-4 writes of random formats (dense float32 rows,
 * float32 / float16 / bfloat16 blocks at any lane, int8 blocks of up to 64 rows), from float32
 * rows (float16 blocks also from float16 bits), into buffers of the right kinds.
 */
function validKvWrite(r: Rng): unknown[] {
  const dim = r.bool(0.7) ? r.pick(ATTENTION_DIMS) : r.int(1, 256);
  const buffers: unknown[] = [];
  const rows: number[][] = [];
  for (let w = r.int(0, 4); w > 0; w--) {
    const format = r.pick([0, 2, 3, 4, 5]);
    const count = r.bool(0.1) ? 0 : r.int(1, format === 5 ? 64 : 100);
    const lane = format === 5 ? 0 : format === 0 ? r.int(0, 20) : r.int(0, 63);
    const stride = r.bool(0.5) ? dim : dim + r.int(1, 3);
    const so = r.int(0, 8);
    const srcLen = so + (count === 0 ? 0 : (count - 1) * stride + dim) + r.int(0, 3);
    const Src = format === 3 && r.bool() ? (Uint16Array as unknown as TypedCtor) : (Float32Array as unknown as TypedCtor);
    const sk = guarded<NumberArray>(Src, srcLen, `buffers[${buffers.length}]`, r.bool(0.3));
    const sv = guarded<NumberArray>(Src, srcLen, `buffers[${buffers.length + 1}]`);
    for (let e = 0; e < srcLen; e++) {
      sk[e] = Src === (Uint16Array as unknown as TypedCtor) ? randomHalf(r) : r.next() * 4 - 2;
      sv[e] = Src === (Uint16Array as unknown as TypedCtor) ? randomHalf(r) : r.next() * 4 - 2;
    }
    const [kb, vb] = format === 0 ? [0, 0] : blockElements(format, dim);
    const blocks = Math.ceil((lane + count) / BLOCK);
    const dko = r.int(0, 8);
    const dvo = r.int(0, 8);
    const kLen = dko + (format === 0 ? (lane + count) * dim : blocks * kb) + r.int(0, 3);
    const vLen = dvo + (format === 0 ? (lane + count) * dim : blocks * vb) + r.int(0, 3);
    const D = formatCtor(format);
    const dk = guarded<NumberArray>(D, kLen, `buffers[${buffers.length + 2}]`, r.bool(0.3));
    const dv = guarded<NumberArray>(D, vLen, `buffers[${buffers.length + 3}]`);
    rows.push([format, buffers.length, buffers.length + 1, so, stride, count, buffers.length + 2, buffers.length + 3, dko, dvo, lane]);
    buffers.push(sk, sv, dk, dv);
  }
  return [buffers, f64(rows.flat(), 'writes'), dim];
}

/**
 * Mutations of a table of `cols` columns: the table as an array (kinds, lengths), single cells
 * of one row (NaN, fractions, negatives, huge values, and `targeted` values per column), and the
 * row repeated.
 */
function tableMutations(v: unknown, r: Rng, cols: number, label: string, standIn: number[], targeted: (row: number[]) => [number, number][]): unknown[] {
  const table = ArrayBuffer.isView(v) && v instanceof Float64Array && GUARDS.has(v.buffer) ? v : f64(standIn, `stand-in ${label}`);
  const out = arrayMutations(table, 'segments', r, cols);
  const rows = Math.floor(table.length / cols);
  if (rows === 0) {
    out.push(f64(standIn, `one ${label} row`));
    return out;
  }
  const row = r.int(0, rows - 1);
  const at = row * cols;
  const cells = Array.from(table.subarray(at, at + cols));
  const set = (c: number, x: number) => {
    const a = f64(table, `${label} row ${row} [${c}] = ${x}`);
    a[at + c] = x;
    out.push(a);
  };
  const anyCell = [Infinity, -Infinity, -0, 1e-300, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 40 + 1, 2 ** 53, 1e300, -(2 ** 53)];
  for (let c = 0; c < cols; c++) for (const x of [NaN, -1, 0.5, 2 ** 40 + 1, r.pick(anyCell), r.pick(anyCell)]) set(c, x);
  for (const [c, x] of targeted(cells)) set(c, x);
  out.push(f64(Array.from({ length: 30 }, () => cells).flat(), `${label} row 30 times`));
  return out;
}

function cacheSegmentMutations(v: unknown, r: Rng, args: readonly unknown[]): unknown[] {
  const dim = typeof args[4] === 'number' && Number.isSafeInteger(args[4]) ? args[4] : 1;
  const list = Array.isArray(args[11]) ? (args[11] as unknown[]) : [];
  return tableMutations(v, r, 10, 'segments', [0, 2, 0, 0, 0, 0, 0, 1, 0, 0], (c) => [
    [1, 6], [1, c[1] === 2 ? 3 : 2], [1, 5], [1, 0], [1, 4],
    [2, list.length], [3, list.length],
    [6, c[6] === 0 ? 1 : 0], [6, dim - 1], [6, 2 ** 27 + 1],
    [7, c[7]! + 1], [7, c[7]! + BLOCK], [7, 2 ** 40],
    [8, 2 ** 40], [8, 2 ** 40 - 1],
    [9, 63], [9, 64], [9, c[9]! + 1],
    [4, (list[c[2]!] as NumberArray | undefined)?.length ?? 1], [5, (list[c[3]!] as NumberArray | undefined)?.length ?? 1],
  ]);
}

function writeMutations(v: unknown, r: Rng, args: readonly unknown[]): unknown[] {
  const dim = typeof args[2] === 'number' && Number.isSafeInteger(args[2]) ? args[2] : 1;
  const list = Array.isArray(args[0]) ? (args[0] as unknown[]) : [];
  return tableMutations(v, r, 11, 'writes', [2, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0], (c) => [
    [0, 1], [0, 6], [0, 5], [0, 0], [0, 3], [0, 4],
    [1, list.length], [6, list.length], [7, list.length], [6, c[1]!],
    [4, dim - 1], [4, 0],
    [5, c[5]! + 1], [5, 65], [5, 2 ** 40],
    [8, (list[c[6]!] as NumberArray | undefined)?.length ?? 1], [9, (list[c[7]!] as NumberArray | undefined)?.length ?? 1],
    [3, (list[c[1]!] as NumberArray | undefined)?.length ?? 1],
    [10, 63], [10, 64], [10, c[10]! + 1], [10, 2 ** 40],
  ]);
}

const CACHE_RUN_PARAMS = [
  ...ATTENTION_PARAMS.slice(0, 11),
  ['buffers', 'cachekv'],
  ['segments', 'cachesegments'],
  ...ATTENTION_PARAMS.slice(13),
] as const;

const CACHE_RUN_ASYNC_PARAMS = [...CACHE_RUN_PARAMS.slice(0, 15), ['wantLse', 'bool']] as const;

const KV_WRITE_PARAMS = [
  ['buffers', 'cachekv'],
  ['writes', 'writes'],
  ['headDim', 'int'],
] as const;

const STATS_PARAMS: Spec['params'] = [
  ['logits', 'f32'],
  ['indices', 'i32'],
  ['tokens', 'int'],
  ['experts', 'int'],
  ['k', 'int'],
  ['scoring', 'int'],
];

const SPECS: readonly Spec[] = [
  { name: 'gatingTopk', async: false, params: TOPK_PARAMS, valid: validTopk, check: checkTopk },
  { name: 'gatingTopkAsync', async: true, params: TOPK_PARAMS.slice(0, 14), valid: validTopkAsync, check: checkTopkAsync },
  {
    name: 'gatingDispatch',
    async: false,
    params: [
      ['indices', 'i32'],
      ['tokens', 'int'],
      ['k', 'int'],
      ['experts', 'int'],
      ['capacity', 'int'],
      ['blockSize', 'int'],
      ['dropPolicy', 'int'],
      ['weights', 'f32?'],
    ],
    valid: validDispatch,
    check: checkDispatch,
  },
  {
    name: 'gatingStats',
    async: false,
    params: STATS_PARAMS,
    valid: validStats,
    check: checkStats,
  },
  {
    name: 'gatingStatsAsync',
    async: true,
    params: STATS_PARAMS,
    valid: validStats,
    check: checkStats,
  },
  { name: 'gatingRouterLogits', async: false, params: ROUTER_LOGITS_PARAMS, valid: validRouterLogits },
  {
    name: 'gatingRouterLogitsAsync',
    async: true,
    params: ROUTER_LOGITS_PARAMS.slice(0, 6),
    valid: validRouterLogitsAsync,
    check: checkRouterLogitsAsync,
  },
  { name: 'memoryInt8Scores', async: false, params: INT8_SCORES_PARAMS, valid: validInt8Scores },
  {
    name: 'memoryInt8ScoresAsync',
    async: true,
    params: INT8_SCORES_PARAMS.slice(0, 7),
    valid: (r) => validInt8Scores(r).slice(0, 7),
    check: checkScoresAsync(scoredRows(5, (args) => (args[3] as Float32Array).length)),
  },
  { name: 'memoryFloat32Scores', async: false, params: FLOAT32_SCORES_PARAMS, valid: validFloat32Scores },
  {
    name: 'memoryFloat32ScoresAsync',
    async: true,
    params: FLOAT32_SCORES_PARAMS.slice(0, 5),
    valid: (r) => validFloat32Scores(r).slice(0, 5),
    check: checkScoresAsync(scoredRows(3, (args) => (args[1] as Float32Array).length / Number(args[2]))),
  },
  { name: 'attentionRun', async: false, params: ATTENTION_PARAMS, valid: validAttention, check: checkAttention },
  { name: 'attentionRunAsync', async: true, params: ATTENTION_ASYNC_PARAMS, valid: validAttentionAsync, check: checkAttentionAsync },
  { name: 'attentionCacheRun', async: false, params: CACHE_RUN_PARAMS, valid: validCacheRun, check: checkCacheRun },
  { name: 'attentionCacheRunAsync', async: true, params: CACHE_RUN_ASYNC_PARAMS, valid: validCacheRunAsync, check: checkCacheRunAsync },
  { name: 'attentionKvWrite', async: false, params: KV_WRITE_PARAMS, valid: validKvWrite },
];

const FLT_MAX = 3.4028234663852886e38;

/** Values that are wrong for any parameter (or right only by accident). */
function junk(): unknown[] {
  return [
    undefined,
    null,
    '',
    'abc',
    '3',
    {},
    { length: 4 },
    [],
    [1, 2, 3],
    () => 0,
    Symbol('fuzz'),
    3n,
    true,
    false,
    new Date(0),
    new Map(),
    new Proxy(new Float32Array(4), {}),
    Object.create(Float32Array.prototype),
  ];
}

function intMutations(value: unknown): unknown[] {
  // The value may already be a mutation (random phase): fall back to a plain integer.
  const v = typeof value === 'number' && Number.isSafeInteger(value) ? value : 3;
  return [
    NaN,
    Infinity,
    -Infinity,
    v + 0.5,
    v - 0.5,
    1e-300,
    -1,
    -v - 1,
    0,
    -0,
    v + 1,
    v - 1,
    2 ** 31 - 1,
    2 ** 31,
    -(2 ** 31),
    2 ** 32,
    2 ** 32 + 1,
    2 ** 53,
    2 ** 53 + 2,
    -(2 ** 53),
    1e300,
    -1e300,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    2 ** 20,
    2 ** 20 + 1,
    65536,
    65537,
    256,
    257,
    String(v),
    BigInt(v),
    new Number(v),
    [v],
    new Float32Array([v]),
    true,
    null,
    undefined,
  ];
}

function numMutations(value: unknown): unknown[] {
  const v = typeof value === 'number' && Number.isFinite(value) ? value : 1.5;
  return [
    NaN,
    Infinity,
    -Infinity,
    1e300,
    -1e300,
    Number.MAX_VALUE,
    FLT_MAX * 2,
    -FLT_MAX * 2,
    -0,
    0,
    Number.MIN_VALUE,
    -v,
    String(v),
    new Number(v),
    3n,
    null,
    undefined,
    true,
  ];
}

function boolMutations(value: unknown): unknown[] {
  const v = value === true;
  return [0, 1, 'true', '', NaN, new Boolean(v), [v], {}, null, undefined, Symbol('b')];
}

const WRONG_KINDS: readonly TypedCtor[] = [
  Float64Array,
  Float32Array,
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  BigInt64Array,
  BigUint64Array,
] as unknown as TypedCtor[];

/** A view of `n` elements whose buffer is detached (transferred away) before the call. */
function detached(Ctor: TypedCtor, n: number): AnyTypedArray {
  const a = new Ctor(new ArrayBuffer(n * Ctor.BYTES_PER_ELEMENT), 0, n);
  structuredClone(a.buffer, { transfer: [a.buffer as ArrayBuffer] });
  return a;
}

/** A length-tracking view over a resizable buffer (room to grow). */
function resizable(Ctor: TypedCtor, values: ArrayLike<number>): AnyTypedArray {
  const bytes = values.length * Ctor.BYTES_PER_ELEMENT;
  const Buf = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer;
  const a = new (Ctor as unknown as new (b: ArrayBuffer) => AnyTypedArray)(new Buf(bytes, { maxByteLength: 2 * bytes + 64 }));
  (a as unknown as { set(v: ArrayLike<number>): void }).set(values);
  return a;
}

type NumberArray = Float32Array | Float64Array | Int32Array | Int8Array | Uint8Array | Uint16Array;

/** Mutations of a typed-array parameter: other kinds, lengths, contents and buffer layouts. */
function arrayMutations(v: NumberArray, kind: Kind, r: Rng, experts: number): unknown[] {
  const Own = v.constructor as unknown as TypedCtor;
  const n = v.length;
  const label = `mutated ${kind}`;
  const out: unknown[] = [];
  for (const Ctor of WRONG_KINDS) {
    if (Ctor === Own) continue;
    out.push(guarded(Ctor, n, `${label} ${Ctor.name}`));
  }
  out.push(Array.from(v), new DataView(new ArrayBuffer(n * 4)), v.buffer, Buffer.alloc(n * 4));
  const resized = (m: number) => {
    const a = guarded<NumberArray>(Own, m, `${label} length ${m}`);
    a.set(v.subarray(0, Math.min(m, n)));
    return a;
  };
  if (n > 0) out.push(resized(n - 1), resized(0));
  out.push(resized(n + 1), resized(2 * n + 3));
  // Same length and kind, but another buffer layout.
  const shared = guarded<NumberArray>(Own, n, `${label} shared`, true);
  shared.set(v);
  out.push(shared, resizable(Own, v), detached(Own, n));
  {
    const big = guarded<NumberArray>(Own, n + 3, `${label} offset view`);
    big.set(v, 3);
    out.push(big.subarray(3));
  }
  // Same layout, bad contents.
  const poisoned = (values: number[], all = false) => {
    for (const x of values) {
      if (n === 0) break;
      const a = guarded<NumberArray>(Own, n, `${label} with ${x}`);
      a.set(v);
      if (all) a.fill(x);
      else a[r.int(0, n - 1)] = x;
      out.push(a);
    }
  };
  if (Own === (Float32Array as unknown as TypedCtor)) {
    poisoned([NaN, Infinity, -Infinity, FLT_MAX, -FLT_MAX, 1e-45, 88.8, -104]);
    poisoned([NaN, -Infinity, FLT_MAX], true);
  } else if (kind === 'i32') {
    poisoned([-2, experts + 1, 2 ** 31 - 1, -(2 ** 31), 65536]);
    poisoned([-1, experts, 0], true);
  } else if (kind === 'i32?') {
    // Row indices: experts stands in for the row count (8 when the spec has no experts).
    poisoned([-1, experts, experts + 1, 2 ** 31 - 1, -(2 ** 31)]);
    poisoned([-1, 0], true);
  } else if (kind === 'i8') {
    poisoned([-128, 127]);
    poisoned([-128, 127], true);
  } else {
    poisoned([-(2 ** 31)], true);
  }
  return out;
}

/** Mutations of `kind` for the value v; `args` is the list v came from (attention's table needs its shapes). */
function mutationsFor(kind: Kind, v: unknown, r: Rng, experts: number, args: readonly unknown[] = []): unknown[] {
  switch (kind) {
    case 'kv':
      return bufferListMutations(v, r);
    case 'segments':
      return segmentMutations(v, r, args);
    case 'cachekv':
      return bufferListMutations(v, r);
    case 'cachesegments':
      return cacheSegmentMutations(v, r, args);
    case 'writes':
      return writeMutations(v, r, args);
    case 'u8?': {
      const base = ArrayBuffer.isView(v) && v instanceof Uint8Array && GUARDS.has(v.buffer) ? v : u8([1, 0], 'stand-in flags');
      return [null, undefined, u8(new Array(base.length).fill(255), 'flags of 255'), ...arrayMutations(base, kind, r, experts)];
    }
    case 'int':
      return intMutations(v);
    case 'num':
      return numMutations(v);
    case 'bool':
      return boolMutations(v);
    default: {
      // The value may be null (optional bias) or already a mutation: mutate a stand-in then.
      const Own = kind === 'i32' || kind === 'i32out' || kind === 'i32?' ? Int32Array : kind === 'i8' ? Int8Array : Float32Array;
      // isView first: a junk Object.create(Float32Array.prototype) passes instanceof but has no buffer.
      const base =
        ArrayBuffer.isView(v) && v instanceof Own && GUARDS.has(v.buffer)
          ? v
          : guarded<Float32Array | Int32Array | Int8Array>(Own as unknown as TypedCtor, experts, 'stand-in');
      const nullish = kind === 'f32?' || kind === 'i32?' ? [null, undefined] : [];
      return [...nullish, ...arrayMutations(base, kind, r, experts)];
    }
  }
}

/** The experts count of a valid argument list (for index contents such as experts + 1). */
function expertsOf(spec: Spec, args: unknown[]): number {
  const i = spec.params.findIndex(([name]) => name === 'experts');
  return i >= 0 ? Number(args[i]) : 8;
}

// ---------------------------------------------------------------------------------------
// Running calls

function show(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'symbol' || typeof v === 'function') return typeof v;
  if (v instanceof Number || v instanceof Boolean || v instanceof String) return `new ${v.constructor.name}(${show(v.valueOf())})`;
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    const a = v as unknown as ArrayLike<number | bigint> & { buffer: ArrayBufferLike; byteOffset: number };
    const notes: string[] = [];
    if (typeof SharedArrayBuffer !== 'undefined' && a.buffer instanceof SharedArrayBuffer) notes.push('shared');
    if ((a.buffer as { resizable?: boolean }).resizable) notes.push('resizable');
    if ((a.buffer as { detached?: boolean }).detached || a.buffer.byteLength === 0) notes.push('empty buffer');
    if (a.byteOffset > 0 && !GUARDS.has(a.buffer)) notes.push(`offset ${a.byteOffset}`);
    const items = Array.from({ length: Math.min(a.length, 8) }, (_, i) => show(a[i]));
    return `${v.constructor.name}(${a.length})[${items.join(', ')}${a.length > 8 ? ', …' : ''}]${notes.length ? ` (${notes.join(', ')})` : ''}`;
  }
  if (Array.isArray(v)) return `[${v.slice(0, 8).map(show).join(', ')}${v.length > 8 ? ', …' : ''}]`;
  if (v instanceof Map || v instanceof Date || v instanceof DataView || v instanceof ArrayBuffer) return Object.prototype.toString.call(v);
  try {
    return `object ${Object.prototype.toString.call(v)} ${JSON.stringify(v)}`;
  } catch {
    return 'object';
  }
}

/** The value as JavaScript source, to paste a call into a REPL (layout notes as comments). */
function js(v: unknown): string {
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || v === undefined || typeof v === 'boolean') return String(v);
  if (typeof v === 'symbol') return 'Symbol()';
  if (typeof v === 'function') return '() => 0';
  if (v instanceof Number || v instanceof Boolean || v instanceof String) return `new ${v.constructor.name}(${js(v.valueOf())})`;
  if (v instanceof DataView) return `new DataView(new ArrayBuffer(${v.byteLength}))`;
  if (v instanceof ArrayBuffer) return `new ArrayBuffer(${v.byteLength})`;
  if (ArrayBuffer.isView(v)) {
    const a = v as unknown as ArrayLike<number | bigint> & { buffer: ArrayBufferLike };
    const note = show(v).match(/ \((.*)\)$/);
    const items = Array.from({ length: a.length }, (_, i) => js(a[i]));
    return `new ${v.constructor.name}([${items.join(', ')}])${note ? ` /* ${note[1]} */` : ''}`;
  }
  if (Array.isArray(v)) return `[${v.map(js).join(', ')}]`;
  return `/* ${show(v)} */ {}`;
}

type Outcome = 'ok' | 'TypeError' | 'RangeError';

interface Finding {
  id: number;
  call: string;
  problem: string;
}

interface Campaign {
  binding: Record<string, unknown>;
  calls: number;
  outcomes: Map<string, Record<Outcome, number>>;
  findings: Finding[];
  pending: Promise<void>[];
  /** Async calls whose promise has not settled yet, by call id. */
  unsettled: Map<number, string>;
  traceFd?: number;
}

/** The call as a line of JavaScript against the binding `b`. */
function callSource(name: string, args: unknown[], note: string): string {
  return `b.${name}(${args.map(js).join(', ')}); // ${note}`;
}

function errorOutcome(e: unknown): Outcome | string {
  if (e instanceof TypeError) return 'TypeError';
  if (e instanceof RangeError) return 'RangeError';
  if (e instanceof Error) return `${e.constructor.name}: ${e.message}`;
  return `non-Error thrown: ${show(e)}`;
}

function tally(c: Campaign, name: string, o: Outcome): void {
  let t = c.outcomes.get(name);
  if (!t) c.outcomes.set(name, (t = { ok: 0, TypeError: 0, RangeError: 0 }));
  t[o]++;
}

/**
 * Calls `name(...args)` and records anything outside the contract. `expectOk` marks a valid
 * argument list, which must succeed. Async results are settled later (see settle()).
 */
function run(c: Campaign, spec: Spec | undefined, name: string, args: unknown[], note: string, expectOk = false): void {
  const id = c.calls++;
  if (c.traceFd !== undefined) fs.writeSync(c.traceFd, `/* #${id} */ ${callSource(name, args, note)}\n`);
  const fail = (problem: string) => c.findings.push({ id, call: callSource(name, args, note), problem });
  const fn = c.binding[name] as (...a: unknown[]) => unknown;

  const finish = (outcome: Outcome | string, result?: unknown) => {
    const broken = brokenCanaries(args);
    if (broken.length) fail(`wrote outside its arrays: canaries of ${broken.join(', ')} overwritten`);
    if (outcome !== 'ok' && outcome !== 'TypeError' && outcome !== 'RangeError') return fail(`threw ${outcome}`);
    tally(c, name, outcome);
    if (expectOk && outcome !== 'ok') return fail(`valid call threw a ${outcome}`);
    if (outcome === 'ok' && spec?.check) {
      const problem = spec.check(args, result);
      if (problem) fail(problem);
    }
  };

  let result: unknown;
  try {
    result = fn(...args);
  } catch (e) {
    finish(errorOutcome(e));
    return;
  }

  if (!(result instanceof Promise)) {
    if (spec?.async) fail(`returned ${show(result)} instead of a promise`);
    finish('ok', result);
    return;
  }
  c.unsettled.set(id, callSource(name, args, note));
  c.pending.push(
    result.then(
      (value) => {
        c.unsettled.delete(id);
        finish('ok', value);
      },
      (e) => {
        c.unsettled.delete(id);
        finish(errorOutcome(e));
      },
    ),
  );
}

async function settle(c: Campaign): Promise<void> {
  const pending = c.pending;
  c.pending = [];
  await Promise.all(pending);
}

const campaigns: Campaign[] = [];

function newCampaign(): Campaign {
  const c: Campaign = {
    binding: native() as unknown as Record<string, unknown>,
    calls: 0,
    outcomes: new Map(),
    findings: [],
    pending: [],
    unsettled: new Map(),
  };
  if (TRACE) c.traceFd = fs.openSync(TRACE, 'a');
  campaigns.push(c);
  return c;
}

function report(c: Campaign): string {
  const shown = c.findings.slice(0, 25).map((f) => `#${f.id} ${f.problem}\n    ${f.call}`);
  const more = c.findings.length > 25 ? [`… and ${c.findings.length - 25} more`] : [];
  return [`seed ${SEED}: ${c.findings.length} finding(s) in ${c.calls} calls`, ...shown, ...more].join('\n');
}

/** Exported functions without a spec (built from the export list; data exports such as abiVersion are skipped). */
function unknownExports(binding: Record<string, unknown>): string[] {
  return Object.keys(binding).filter((k) => typeof binding[k] === 'function' && !SPECS.some((s) => s.name === k));
}

// ---------------------------------------------------------------------------------------
// Tests

describe(`native binding under bad input (seed ${SEED})`, () => {
  afterAll(() => {
    const by = new Map<string, Record<Outcome, number>>();
    for (const c of campaigns)
      for (const [name, t] of c.outcomes) {
        const s = by.get(name) ?? { ok: 0, TypeError: 0, RangeError: 0 };
        for (const o of ['ok', 'TypeError', 'RangeError'] as const) s[o] += t[o];
        by.set(name, s);
      }
    const calls = campaigns.reduce((n, c) => n + c.calls, 0);
    const lines = [...by].map(([name, t]) => `  ${name}: ${t.ok} ok, ${t.TypeError} TypeError, ${t.RangeError} RangeError`);
    console.info(`native fuzz, seed ${SEED}: ${calls} calls\n${lines.join('\n')}\n  attention results checked against the float64 reference: ${attentionCompared}`);
    // A test that ran into its timeout because a promise never settled: name the calls.
    const unsettled = campaigns.flatMap((c) => [...c.unsettled].map(([id, call]) => `  #${id} ${call}`));
    if (unsettled.length) console.error(`native fuzz: ${unsettled.length} promise(s) never settled:\n${unsettled.slice(0, 25).join('\n')}`);
    for (const c of campaigns) if (c.traceFd !== undefined) fs.closeSync(c.traceFd);
  });

  it('every exported function has an argument spec here', () => {
    const binding = native() as unknown as Record<string, unknown>;
    expect(unknownExports(binding), 'add a Spec to SPECS in test/native-fuzz.test.ts').toEqual([]);
    for (const s of SPECS) expect(typeof binding[s.name], s.name).toBe('function');
  });

  it('the production addon exports no benchmark floors (they are in capibara_bench.node)', () => {
    const binding = native() as unknown as Record<string, unknown>;
    expect(Object.keys(binding).filter((k) => /floor/i.test(k))).toEqual([]);
  });

  it('valid argument lists succeed and keep to their arrays', async () => {
    const c = newCampaign();
    const r = new Rng(SEED);
    for (const spec of SPECS) for (let i = 0; i < 40; i++) run(c, spec, spec.name, spec.valid(r), 'valid', true);
    await settle(c);
    expect(c.findings.length, report(c)).toBe(0);
  });

  it('too few arguments, and undefined in place of each missing one', async () => {
    const c = newCampaign();
    const r = new Rng(SEED ^ 0x1);
    for (const spec of SPECS) {
      const args = spec.valid(r);
      for (let n = 0; n < args.length; n++) {
        run(c, spec, spec.name, args.slice(0, n), `first ${n} arguments`);
        run(c, spec, spec.name, [...args.slice(0, n), ...new Array(args.length - n).fill(undefined)], `undefined from ${n}`);
      }
    }
    await settle(c);
    expect(c.findings.length, report(c)).toBe(0);
  });

  it('one argument at a time mutated from a valid list', async () => {
    const c = newCampaign();
    const r = new Rng(SEED ^ 0x2);
    const BASELINES = 3;
    for (const spec of SPECS) {
      for (let b = 0; b < BASELINES; b++) {
        const baseSeed = r.fork();
        const probe = spec.valid(new Rng(baseSeed));
        const experts = expertsOf(spec, probe);
        for (let p = 0; p < spec.params.length; p++) {
          const [pname, kind] = spec.params[p]!;
          for (const value of mutationsFor(kind, probe[p], new Rng(baseSeed + p), experts, probe)) {
            // A fresh list for every call: async calls must not share arrays.
            const args = spec.valid(new Rng(baseSeed));
            args[p] = value;
            run(c, spec, spec.name, args, `${pname} := ${show(value)}`);
          }
        }
        if (c.pending.length > 500) await settle(c);
      }
      // Settle each export's promises before the next export's calls, so that a hang is caught
      // with the export that caused it still named in c.unsettled.
      await settle(c);
    }
    expect(c.findings.length, report(c)).toBe(0);
    expect(c.calls).toBeGreaterThan(2000);
  }, CAMPAIGN_TIMEOUT_MS);

  it('random combinations of bad arguments', async () => {
    const c = newCampaign();
    const r = new Rng(SEED ^ 0x3);
    const CALLS_PER_EXPORT = 300;
    for (const spec of SPECS) {
      for (let i = 0; i < CALLS_PER_EXPORT; i++) {
        const args = spec.valid(r);
        const experts = expertsOf(spec, args);
        const changed: string[] = [];
        const positions = r.bool(0.05) ? 0 : r.int(1, 3);
        for (let m = 0; m < positions; m++) {
          const p = r.int(0, args.length - 1);
          const [pname, kind] = spec.params[p]!;
          args[p] = r.bool(0.15) ? r.pick(junk()) : r.pick(mutationsFor(kind, args[p], r, experts, args));
          changed.push(pname);
        }
        if (r.bool(0.1)) args.length = r.int(0, args.length);
        else if (r.bool(0.05)) args.push(r.pick(junk()), r.pick(junk()));
        run(c, spec, spec.name, args, `random: ${changed.join(', ') || 'none'}`);
      }
      await settle(c);
    }
    // Exports without a spec get junk of every arity.
    for (const name of unknownExports(c.binding)) {
      for (let i = 0; i < 100; i++) run(c, undefined, name, Array.from({ length: r.int(0, 10) }, () => r.pick(junk())), 'junk');
    }
    await settle(c);
    expect(c.findings.length, report(c)).toBe(0);
    // The campaign is only worth something if it reaches every outcome of every export.
    for (const spec of SPECS) {
      const t = c.outcomes.get(spec.name);
      expect(t, spec.name).toBeDefined();
      for (const o of spec.reaches ?? (['ok', 'TypeError', 'RangeError'] as const)) expect(t![o], `${spec.name} ${o}`).toBeGreaterThan(0);
    }
  }, CAMPAIGN_TIMEOUT_MS);

  it.runIf(process.env['CAPIBARA_EXPECT_SANITIZER'] === '1')('runs the sanitizer build of the addon', () => {
    native();
    const objects = loadedSharedObjects();
    expect(objects.some((o) => /libasan\.so/.test(o)), 'libasan is not loaded in this worker').toBe(true);
    const addon = objects.find((o) => o.endsWith('.node') && path.basename(o) === 'capibara.node');
    expect(addon && fs.realpathSync(addon)).toBe(fs.realpathSync(process.env['CAPIBARA_NATIVE_PATH'] ?? ''));
  });
});

// ---------------------------------------------------------------------------------------
// Reproductions that need a child process: ones that crashed the process once (regression
// tests now) and ones that still do (`knownCrash`, i.e. `it.fails`: each passes while the bug
// is there; when the binding is fixed it starts failing, and must become a plain `it`).
// CAPIBARA_FUZZ_KNOWN=run runs the known crashes as plain tests, to see each child's output.
const knownCrash = process.env['CAPIBARA_FUZZ_KNOWN'] === 'run' ? it : it.fails;

function loadedSharedObjects(): string[] {
  const report = process.report?.getReport() as unknown as { sharedObjects?: string[] } | undefined;
  return report?.sharedObjects ?? [];
}

/** The capibara.node this process loaded (the child loads the same file). */
function addonPath(): string {
  native();
  const loaded = loadedSharedObjects().find((o) => path.basename(o) === 'capibara.node');
  if (loaded) return loaded;
  const env = process.env['CAPIBARA_NATIVE_PATH'];
  const root = path.resolve(__dirname, '..');
  const candidates = [env ? path.resolve(env) : '', path.join(root, 'build', 'Release', 'capibara.node'), path.join(root, 'build', 'Debug', 'capibara.node')];
  return candidates.find((f) => f && fs.existsSync(f)) ?? '';
}

interface ChildOptions {
  node?: string[];
  /** Extra ASAN_OPTIONS (sanitizer run only). */
  asan?: string;
  /** Address-space cap (`ulimit -v`, KiB) when not under ASan, whose shadow memory needs more. */
  ulimitKb?: number;
  timeoutMs?: number;
  /** Extra environment variables (CAPIBARA_ISA to narrow the kernels). */
  env?: Record<string, string>;
}

/** Runs `body` in a fresh node with the addon bound to `b`; sanitizer reports go to its stderr. */
function child(body: string, opts: ChildOptions = {}) {
  const script = `const m = { exports: {} }; process.dlopen(m, ${JSON.stringify(addonPath())}); const b = m.exports;\n${body}`;
  const env = { ...process.env, ...opts.env };
  // Sanitizer reports from these children belong to the test, not to the test:sanitize log dir.
  env['ASAN_OPTIONS'] = `${env['ASAN_OPTIONS'] ?? ''}:log_path=stderr${opts.asan ? `:${opts.asan}` : ''}`;
  env['UBSAN_OPTIONS'] = `${env['UBSAN_OPTIONS'] ?? ''}:log_path=stderr`;
  const argv = [...(opts.node ?? []), '-e', script];
  const spawnOpts = { env, encoding: 'utf8' as const, timeout: opts.timeoutMs ?? 20_000 };
  const res =
    opts.ulimitKb && !underAsan
      ? spawnSync('/bin/sh', ['-c', `ulimit -v ${opts.ulimitKb} && exec "$0" "$@"`, process.execPath, ...argv], spawnOpts)
      : spawnSync(process.execPath, argv, spawnOpts);
  const summary = `status ${res.status}, signal ${res.signal}\n--- stdout\n${res.stdout}\n--- stderr\n${(res.stderr ?? '').slice(0, 4000)}`;
  return { ...res, summary };
}

/** A machine that cannot allocate many GiB: 3 GB of address space, or ASan's allocation cap. */
const MEMORY_CAPPED: ChildOptions = { ulimitKb: 3_000_000, asan: 'allocator_may_return_null=1:max_allocation_size_mb=2048' };

/**
 * Child body (after `fn` and `sabotage` are defined): start an async call on large inputs,
 * sabotage one input right away while the worker runs, and await the outcome. Async kernels copy
 * every input not on a SharedArrayBuffer when the call is made (PromiseWorker::Take in
 * native/common/async.h), so whatever the caller then does to its arrays the promise resolves
 * with the synchronous result on the inputs as they were at the call: drop every JS reference to
 * them and collect garbage ('collect'), transfer an input's buffer away and collect it
 * ('detach'), transfer it and keep the new owner alive ('transfer'), shrink its resizable buffer
 * to 0 ('resize'), or overwrite its elements ('overwrite').
 */
const RACE_SCRIPT = String.raw`
function build(target) {
  const mk = (name, n, C = Float32Array) => {
    const bytes = n * C.BYTES_PER_ELEMENT;
    return name === target && sabotage === 'resize' ? new C(new ArrayBuffer(bytes, { maxByteLength: bytes })) : new C(n);
  };
  if (fn === 'memoryInt8ScoresAsync') {
    const N = 200000, D = 384;
    const a = { codes: mk('codes', N * D, Int8Array), scales: mk('scales', N) };
    a.codes.fill(3); a.scales.fill(0.5);
    return [a, [new Int8Array(D).fill(1), 1, a.codes, a.scales, D, null, 1], N];
  }
  if (fn === 'memoryFloat32ScoresAsync') {
    const N = 50000, D = 384;
    const a = { query: mk('query', D), matrix: mk('matrix', N * D) };
    a.query.fill(1); a.matrix.fill(0.5);
    return [a, [a.query, a.matrix, D, null, 1], N];
  }
  if (fn === 'gatingRouterLogitsAsync') {
    const T = 2048, H = 1024, E = 64;
    const a = { hidden: mk('hidden', T * H), weight: mk('weight', E * H) };
    a.hidden.fill(0.5); a.weight.fill(0.25);
    return [a, [a.hidden, a.weight, T, H, E, 1], T * E];
  }
  const T = 16384, E = 256, k = 8;
  const a = { logits: mk('logits', T * E), bias: mk('bias', E) };
  for (let i = 0; i < a.logits.length; i++) a.logits[i] = (i * 7919) % 1000 / 100;
  // bias + groups take the general path, slow enough for the sabotage to land mid-run.
  return [a, [a.logits, T, E, k, 0, a.bias, true, 1, 8, 4, 0, 0, E, 1], T * k];
}
const targets = {
  gatingRouterLogitsAsync: ['hidden', 'weight'],
  gatingTopkAsync: ['logits', 'bias'],
  memoryInt8ScoresAsync: ['codes', 'scales'],
  memoryFloat32ScoresAsync: ['matrix', 'query'],
}[fn];
// The synchronous kernel's result on the same inputs (indices for top-k).
function syncResult(args, outLength) {
  if (fn === 'gatingTopkAsync') {
    const w = new Float32Array(outLength), i = new Int32Array(outLength);
    b.gatingTopk(...args, w, i);
    return i;
  }
  const out = new Float32Array(outLength);
  b[fn.replace('Async', '')](...args, out);
  return out;
}
(async () => {
  for (const target of targets) {
    let [arrays, args, outLength] = build(target);
    const want = syncResult(args, outLength);
    const p = b[fn](...args);
    let kept;
    if (sabotage === 'resize') arrays[target].buffer.resize(0);
    else if (sabotage === 'detach') { const buf = arrays[target].buffer; structuredClone(buf, { transfer: [buf] }); gc(); gc(); }
    else if (sabotage === 'transfer') { const buf = arrays[target].buffer; kept = structuredClone(buf, { transfer: [buf] }); }
    else if (sabotage === 'overwrite') { const a = arrays[target]; for (let i = 0; i < a.length; i++) a[i] = i % 3; }
    else if (sabotage === 'collect') {
      arrays = args = undefined;
      gc(); gc();
      for (let i = 0; i < 4; i++) new Uint8Array(1 << 24).fill(0x7f);
    }
    try {
      const r = await p;
      const out = r instanceof Float32Array ? r : r.indices;
      const same = out.length === want.length && out.every((x, i) => Object.is(x, want[i]));
      console.log(target, 'resolved', same ? 'full' : out.length === outLength ? 'with other values' : 'length ' + out.length);
    } catch (e) { console.log(target, 'rejected', e && e.name, e && e.message); }
  }
  console.log('SURVIVED');
})();
`;

/**
 * Child body for attentionRunAsync (after `sabotage` is defined): for each of q, k and v, run the
 * call synchronously for the expected result, start it async, then right away drop every JS
 * reference to the inputs, on ordinary buffers ('collect': copied at the call) or on
 * SharedArrayBuffers ('collect-shared': pinned and read in place), or grow the target's growable
 * SharedArrayBuffer ('grow'), or do to the target's ordinary buffer what the copy made at the
 * call allows: transfer it away and let it be collected ('detach'), transfer it and keep the new
 * owner alive ('transfer'), shrink it to 0 ('resize'), or overwrite it ('overwrite'). Then
 * collect garbage, churn the heap, and compare the resolved output and lse bit for bit with the
 * synchronous result.
 */
const ATTENTION_RACE_SCRIPT = String.raw`
const Q = 32, H = 8, D = 128, N = 4096;
const shared = sabotage === 'collect-shared' || sabotage === 'grow';
function mk(name, n, target) {
  const bytes = n * 4;
  const buf = shared
    ? new SharedArrayBuffer(bytes, sabotage === 'grow' ? { maxByteLength: 2 * bytes } : undefined)
    : name === target && sabotage === 'resize' ? new ArrayBuffer(bytes, { maxByteLength: bytes }) : new ArrayBuffer(bytes);
  const a = new Float32Array(buf);
  for (let i = 0; i < Math.min(n, 1999); i++) a[i] = ((i * 7919) % 1999) / 1999 - 0.5;
  for (let m = 1999; m < n; m *= 2) a.copyWithin(m, 0, Math.min(m, n - m));
  return a;
}
function build(target) {
  const a = { q: mk('q', Q * H * D, target), k: mk('k', N * H * D, target), v: mk('v', N * H * D, target) };
  // Dense [N, H, D] keys, one row per head, heads listed last to first.
  const seg = new Float64Array(H * 8);
  for (let i = 0; i < H; i++) { const h = H - 1 - i; seg.set([h, 0, 1, h * D, h * D, H * D, N, 0], i * 8); }
  const args = [a.q, Q, H, H, D, N - Q, true, 0, 1 / Math.sqrt(D), 0, 0, [a.k, a.v], seg, null, 2];
  const out = new Float32Array(Q * H * D), lse = new Float32Array(Q * H);
  b.attentionRun(...args, out, lse);
  return [a, [...args, true], out, lse];
}
const same = (x, y) => x instanceof Float32Array && x.length === y.length && x.every((e, i) => Object.is(e, y[i]));
(async () => {
  for (const target of ['q', 'k', 'v']) {
    let [arrays, args, want, wantLse] = build(target);
    const p = b.attentionRunAsync(...args);
    let kept;
    {
      const buf = arrays[target].buffer;
      if (sabotage === 'resize') buf.resize(0);
      else if (sabotage === 'detach') structuredClone(buf, { transfer: [buf] });
      else if (sabotage === 'transfer') kept = structuredClone(buf, { transfer: [buf] });
      else if (sabotage === 'overwrite') arrays[target].fill(0.25);
      else if (sabotage === 'grow') buf.grow(buf.maxByteLength);
    }
    arrays = args = undefined;
    gc(); gc();
    for (let i = 0; i < 4; i++) new Uint8Array(N * H * D * 4).fill(0x7f);
    try {
      const r = await p;
      console.log(target, 'resolved', same(r.output, want) && same(r.lse, wantLse) ? 'full' : 'with other values');
    } catch (e) { console.log(target, 'rejected', e && e.name, e && e.message); }
  }
  console.log('SURVIVED');
})();
`;

/**
 * Child body (run with UV_THREADPOOL_SIZE=1 and --expose-gc) that checks the input policy of
 * every async export without racing the worker: the only libuv thread is held in an fs.open of
 * a FIFO, which returns when the FIFO is opened for writing, so a kernel queued meanwhile starts
 * only after the test has changed its inputs. Modes: on ordinary buffers, overwrite every input
 * ('overwrite'), transfer every input away and collect it ('detach'), or shrink every input's
 * resizable buffer to 0 ('resize'), and the promise must resolve with the synchronous result on
 * the inputs as they were at the call (they were copied then); on SharedArrayBuffers, overwrite
 * every input ('shared'), and the promise must resolve with the synchronous result on the new
 * values (they are read in place: no copy was made). Prints `<fn> <mode> same|differs`, and
 * `changed` when the writes changed the synchronous result (so that `same` means something).
 */
const GATE_SCRIPT = String.raw`
const fs = require('node:fs'), os = require('node:os'), path = require('node:path');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capibara-gate-'));
const fifo = path.join(dir, 'gate');
require('node:child_process').execFileSync('mkfifo', [fifo]);
const hold = () => new Promise((ok, fail) => fs.open(fifo, 'r', (e, fd) => (e ? fail(e) : (fs.closeSync(fd), ok()))));
const release = () => fs.closeSync(fs.openSync(fifo, 'w'));
const enc = (x) => JSON.stringify(x, (_, v) => (ArrayBuffer.isView(v) ? Array.from(v) : v));
const wave = (s) => (i) => Math.sin(i * s) * 2;
// Each input: [constructor, length, values at the call, values written later].
const CASES = {
  gatingTopkAsync: () => {
    const T = 64, E = 16, k = 2;
    return {
      inputs: { logits: [Float32Array, T * E, wave(0.37), wave(0.91)], bias: [Float32Array, E, (i) => (i % 5) / 10, (i) => (i % 3) / 2] },
      args: (a) => [a.logits, T, E, k, 0, a.bias, true, 1, 4, 2, 0, 0, E, 1],
      sync: (args) => { const w = new Float32Array(T * k), i = new Int32Array(T * k); b.gatingTopk(...args, w, i); return { weights: w, indices: i }; },
    };
  },
  gatingStatsAsync: () => {
    const T = 32, E = 8, k = 2;
    return {
      inputs: { logits: [Float32Array, T * E, wave(0.37), wave(0.91)], indices: [Int32Array, T * k, (i) => (i * 5 + 1) % E, (i) => (i * 3) % E] },
      args: (a) => [a.logits, a.indices, T, E, k, 0],
      sync: (args) => b.gatingStats(...args),
    };
  },
  gatingRouterLogitsAsync: () => {
    const T = 8, H = 16, E = 4;
    return {
      inputs: { hidden: [Float32Array, T * H, wave(0.37), wave(0.91)], weight: [Float32Array, E * H, wave(0.53), wave(0.29)] },
      args: (a) => [a.hidden, a.weight, T, H, E, 1],
      sync: (args) => { const out = new Float32Array(T * E); b.gatingRouterLogits(...args, out); return out; },
    };
  },
  memoryInt8ScoresAsync: () => {
    const N = 50, D = 32, R = 10;
    return {
      inputs: {
        query: [Int8Array, D, (i) => ((i * 7) % 11) - 5, (i) => ((i * 5) % 13) - 6],
        codes: [Int8Array, N * D, (i) => ((i * 13) % 9) - 4, (i) => ((i * 11) % 7) - 3],
        scales: [Float32Array, N, (i) => (i % 7) / 8, (i) => (i % 4) / 3],
        rows: [Int32Array, R, (i) => (i * 7) % N, (i) => (i * 3 + 1) % N],
      },
      args: (a) => [a.query, 0.5, a.codes, a.scales, D, a.rows, 1],
      sync: (args) => { const out = new Float32Array(R); b.memoryInt8Scores(...args, out); return out; },
    };
  },
  memoryFloat32ScoresAsync: () => {
    const N = 50, D = 32, R = 10;
    return {
      inputs: {
        query: [Float32Array, D, wave(0.37), wave(0.91)],
        matrix: [Float32Array, N * D, wave(0.53), wave(0.29)],
        rows: [Int32Array, R, (i) => (i * 7) % N, (i) => (i * 3 + 1) % N],
      },
      args: (a) => [a.query, a.matrix, D, a.rows, 1],
      sync: (args) => { const out = new Float32Array(R); b.memoryFloat32Scores(...args, out); return out; },
    };
  },
  attentionRunAsync: () => {
    const Q = 2, H = 4, KV = 2, D = 8, N = 16;
    const seg = new Float64Array(KV * 8);
    for (let h = 0; h < KV; h++) seg.set([h, 0, 1, h * D, h * D, KV * D, N, 0], h * 8);
    return {
      inputs: {
        q: [Float32Array, Q * H * D, wave(0.37), wave(0.91)],
        k: [Float32Array, N * KV * D, wave(0.53), wave(0.29)],
        v: [Float32Array, N * KV * D, wave(0.71), wave(0.13)],
        streaming: [Uint8Array, KV, (i) => i % 2, (i) => 1 - (i % 2)],
      },
      args: (a) => [a.q, Q, H, KV, D, N - Q, true, 0, 1 / Math.sqrt(D), 1, 4, [a.k, a.v], seg, a.streaming, 1],
      sync: (args) => { const output = new Float32Array(Q * H * D), lse = new Float32Array(Q * H); b.attentionRun(...args, output, lse); return { output, lse }; },
    };
  },
  attentionCacheRunAsync: () => {
    // A float32 cache block layout (any floats are a valid block): 2 blocks per KV head, from lane 5.
    const Q = 2, H = 4, KV = 2, D = 8, N = 100, BLOCKS = 2, E = 64 * D;
    const seg = new Float64Array(KV * 10);
    for (let h = 0; h < KV; h++) seg.set([h, 2, 0, 1, h * BLOCKS * E, h * BLOCKS * E, 0, N, 0, 5], h * 10);
    return {
      inputs: {
        q: [Float32Array, Q * H * D, wave(0.37), wave(0.91)],
        k: [Float32Array, KV * BLOCKS * E, wave(0.53), wave(0.29)],
        v: [Float32Array, KV * BLOCKS * E, wave(0.71), wave(0.13)],
        streaming: [Uint8Array, KV, (i) => i % 2, (i) => 1 - (i % 2)],
      },
      args: (a) => [a.q, Q, H, KV, D, N - Q, true, 0, 1 / Math.sqrt(D), 1, 4, [a.k, a.v], seg, a.streaming, 1],
      sync: (args) => { const output = new Float32Array(Q * H * D), lse = new Float32Array(Q * H); b.attentionCacheRun(...args, output, lse); return { output, lse }; },
    };
  },
};
const asyncArgs = (fn, args) => (fn === 'attentionRunAsync' || fn === 'attentionCacheRunAsync' ? [...args, true] : args);
(async () => {
  for (const fn of Object.keys(CASES)) {
    for (const mode of ['overwrite', 'detach', 'resize', 'shared']) {
      const c = CASES[fn]();
      const arrays = {};
      for (const [name, [C, n, at]] of Object.entries(c.inputs)) {
        const bytes = n * C.BYTES_PER_ELEMENT;
        const buf = mode === 'shared' ? new SharedArrayBuffer(bytes) : mode === 'resize' ? new ArrayBuffer(bytes, { maxByteLength: bytes }) : new ArrayBuffer(bytes);
        const a = (arrays[name] = new C(buf));
        for (let i = 0; i < n; i++) a[i] = at(i);
      }
      const args = c.args(arrays);
      const atCall = enc(c.sync(args));
      const held = hold();
      const p = b[fn](...asyncArgs(fn, args));
      for (const [name, [, , , later]] of Object.entries(c.inputs)) {
        const a = arrays[name];
        if (mode === 'overwrite' || mode === 'shared') for (let i = 0; i < a.length; i++) a[i] = later(i);
        else if (mode === 'detach') structuredClone(a.buffer, { transfer: [a.buffer] });
        else a.buffer.resize(0);
      }
      gc(); gc();
      const written = mode === 'overwrite' || mode === 'shared' ? enc(c.sync(args)) : null;
      release();
      await held;
      let got;
      try { got = enc(await p); } catch (e) { got = 'rejected ' + e.name + ': ' + e.message; }
      const want = mode === 'shared' ? written : atCall;
      console.log(fn, mode, got === want ? 'same' : 'differs', written !== null && written !== atCall ? 'changed' : '');
      if (got !== want) console.log('  got', got.slice(0, 200), '\n  want', want.slice(0, 200));
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  console.log('SURVIVED');
})();
`;

/**
 * Child body (after `shared` is defined, run under an address-space cap of `capKb` KiB): one
 * memoryFloat32ScoresAsync call over a matrix of 60 % of the address space left, on a
 * SharedArrayBuffer (read in place: resolves) or an ordinary ArrayBuffer (its copy does not fit:
 * a RangeError, thrown by the call, that suggests a SharedArrayBuffer).
 */
const HUGE_INPUT_SCRIPT = String.raw`
const vm = () => Number(/VmSize:\s*(\d+)/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
const D = 1024, rowBytes = D * 4;
const N = Math.floor(((capKb * 1024 - vm()) * 0.6) / rowBytes);
const matrix = new Float32Array(shared ? new SharedArrayBuffer(N * rowBytes) : new ArrayBuffer(N * rowBytes));
console.log('matrix', N * rowBytes, 'bytes');
// The copy is made when the call is made, so its failure is thrown there.
new Promise((ok) => ok(b.memoryFloat32ScoresAsync(new Float32Array(D).fill(1), matrix, D, null, 1))).then(
  (r) => console.log('resolved', r.length === N && r.every((x) => x === 0) ? 'full' : 'wrong'),
  (e) => console.log('rejected', e.name, e.message)).finally(() => console.log('SURVIVED'));
`;

function expectSurvived(res: ReturnType<typeof child>): void {
  expect(res.status, res.summary).toBe(0);
  expect(res.stdout, res.summary).toContain('SURVIVED');
  expect(res.stdout, res.summary).not.toMatch(/rejected (?!TypeError|RangeError)/);
}

describe('crashes found by this test, replayed in a child process', () => {
  it('control: a capped child still runs a modest allocation', () => {
    const res = child(
      `const r = b.gatingDispatch(new Int32Array([0, 1, 2, 3, 4, 5, 6, 7]), 8, 1, 8, -1, 65536, 0, null);
       console.log('returned', r.permutation.length); console.log('SURVIVED');`,
      MEMORY_CAPPED,
    );
    expectSurvived(res);
    expect(res.stdout, res.summary).toContain(`returned ${8 * 65536}`);
  });

  // Fixed (async kernels copy every input not on a SharedArrayBuffer when the call is made:
  // PromiseWorker::Take in native/common/async.h): an input detached and collected, or shrunk,
  // mid-run was a heap-use-after-free / SEGV in the worker thread, both when the async kernels
  // first read their inputs in place and again when they borrowed them (pinned, read in place).
  const ASYNC_RACES = ['gatingRouterLogitsAsync', 'gatingTopkAsync', 'memoryInt8ScoresAsync', 'memoryFloat32ScoresAsync'];
  const RACE_SABOTAGES = {
    none: 'with nothing sabotaged (control)',
    collect: 'with no JS reference left to its inputs and garbage collected mid-run',
    detach: 'with an input transferred away (structuredClone) and collected mid-run',
    resize: 'with an input on a resizable buffer shrunk to 0 mid-run',
    transfer: 'with an input transferred away mid-run, its new owner kept alive',
    overwrite: 'with an input overwritten mid-run',
  };
  for (const fn of ASYNC_RACES) {
    for (const [sabotage, how] of Object.entries(RACE_SABOTAGES)) {
      it(`${fn} ${how} resolves with the synchronous result on the inputs as called`, () => {
        const res = child(`const [fn, sabotage] = ${JSON.stringify([fn, sabotage])};\n${RACE_SCRIPT}`, { node: ['--expose-gc'] });
        expectSurvived(res);
        expect(res.stdout.match(/resolved full/g)?.length, res.summary).toBe(2);
      });
    }
  }

  // The policy itself, without racing the worker: each kernel is held back (GATE_SCRIPT) until its
  // inputs were overwritten, transferred away or shrunk (ordinary buffers: copied at the call, so
  // no effect), or overwritten (SharedArrayBuffers: read in place, so the new values count).
  it.skipIf(process.platform === 'win32')(
    'every async export: ordinary-buffer inputs are copied when called, SharedArrayBuffer inputs read in place',
    () => {
      const res = child(GATE_SCRIPT, { node: ['--expose-gc'], env: { UV_THREADPOOL_SIZE: '1' }, timeoutMs: 60_000 });
      expectSurvived(res);
      const fns = ['gatingTopkAsync', 'gatingStatsAsync', 'gatingRouterLogitsAsync', 'memoryInt8ScoresAsync', 'memoryFloat32ScoresAsync', 'attentionRunAsync', 'attentionCacheRunAsync'];
      for (const fn of fns) {
        for (const mode of ['detach', 'resize']) expect(res.stdout, res.summary).toMatch(new RegExp(`^${fn} ${mode} same $`, 'm'));
        // 'changed': the writes changed the synchronous result, so 'same' tells which values were read.
        for (const mode of ['overwrite', 'shared']) expect(res.stdout, res.summary).toMatch(new RegExp(`^${fn} ${mode} same changed$`, 'm'));
      }
    },
    90_000,
  );

  // No copy is made of a SharedArrayBuffer input: a matrix whose copy would not fit in the
  // address space is scanned in place on a SharedArrayBuffer, and refused with a RangeError
  // naming the way out on an ordinary ArrayBuffer (thrown by the call, which makes the copy).
  // ulimit -v: not under ASan, whose shadow memory needs far more address space.
  for (const shared of [true, false]) {
    it.skipIf(underAsan || process.platform !== 'linux')(
      `memoryFloat32ScoresAsync: a matrix too large to copy, on ${shared ? 'a SharedArrayBuffer, is read in place' : 'an ordinary ArrayBuffer, throws a RangeError'}`,
      () => {
        const capKb = 3_000_000;
        const res = child(`const shared = ${shared}, capKb = ${capKb};\n${HUGE_INPUT_SCRIPT}`, { ulimitKb: capKb, timeoutMs: 60_000 });
        expectSurvived(res);
        if (shared) expect(res.stdout, res.summary).toContain('resolved full');
        else expect(res.stdout, res.summary).toMatch(/rejected RangeError Could not copy \d+ bytes for memory\.float32Scores: put the array on a SharedArrayBuffer to have it read in place/);
      },
      90_000,
    );
  }

  // Fixed (plans capped at 2^28 entries): 32767 one-slot experts padded to blockSize 65536
  // turned a 128 KiB input into an 8 GiB permutation, and V8 aborts (FatalProcessOutOfMemory
  // in napi_create_arraybuffer) instead of throwing when it cannot allocate that.
  it('gatingDispatch: a padded plan too large to allocate throws a RangeError', () => {
    const res = child(
      `const E = 32767;
       try { b.gatingDispatch(new Int32Array(E).map((_, i) => i), E, 1, E, -1, 65536, 0, null); console.log('returned'); }
       catch (e) { console.log('threw', e.name, e.message); }
       console.log('SURVIVED');`,
      MEMORY_CAPPED,
    );
    expectSurvived(res);
    expect(res.stdout, res.summary).toMatch(/threw RangeError/);
  });

  // Fixed (addon-allocated outputs capped at 2^28 entries): the async router projection
  // allocated its tokens x experts output with no bound, so 8 MiB of input (2^20 tokens and
  // 2^20 experts, hiddenSize 1) asked for a 4 TiB Float32Array and V8 aborted the process.
  it('gatingRouterLogitsAsync: an output too large to allocate rejects or throws a RangeError', () => {
    const res = child(
      `const n = 2 ** 20;
       try {
         b.gatingRouterLogitsAsync(new Float32Array(n), new Float32Array(n), n, 1, n, 1)
           .then((o) => console.log('resolved', o.length), (e) => console.log('rejected', e.name, e.message))
           .finally(() => console.log('SURVIVED'));
       } catch (e) { console.log('threw', e.name, e.message); console.log('SURVIVED'); }`,
      MEMORY_CAPPED,
    );
    expectSurvived(res);
    expect(res.stdout, res.summary).toMatch(/(threw|rejected) RangeError/);
  });
  // The same races against attentionRunAsync, every input in turn, with the outputs compared bit
  // for bit to a synchronous run on the same inputs.
  for (const sabotage of ['none', 'collect', 'collect-shared', 'grow', 'detach', 'resize', 'transfer', 'overwrite'] as const) {
    const how = {
      none: 'with nothing sabotaged (control)',
      collect: 'with no JS reference left to its inputs mid-run',
      'collect-shared': 'with every input on a SharedArrayBuffer and no JS reference left to them mid-run',
      grow: 'with an input on a growable SharedArrayBuffer grown mid-run',
      detach: 'with an input transferred away (structuredClone) and collected mid-run',
      resize: 'with an input on a resizable buffer shrunk to 0 mid-run',
      transfer: 'with an input transferred away mid-run, its new owner kept alive',
      overwrite: 'with an input overwritten mid-run',
    }[sabotage];
    it(`attentionRunAsync ${how} resolves with the synchronous result`, () => {
      const res = child(`const sabotage = ${JSON.stringify(sabotage)};\n${ATTENTION_RACE_SCRIPT}`, { node: ['--expose-gc'], timeoutMs: 120_000 });
      expectSurvived(res);
      expect(res.stdout.match(/resolved full/g)?.length, res.summary).toBe(3);
    }, 150_000);
  }

  // Fixed (rows checked as count - 1 <= (length - offset - headDim) / stride): the binding formed
  // (count - 1) * stride + headDim in int64, so 2^24 + 1 rows 2^40 apart (or 2^37 + 1 rows 2^27
  // apart) wrapped to headDim, passed the bounds check, and the kernel read row 1 terabytes past
  // a 4-element buffer: SEGV.
  it('attentionRun: a segment whose (count - 1) * stride wraps around 2^64 throws a RangeError', () => {
    const res = child(
      `for (const [stride, count] of [[2 ** 40, 2 ** 24 + 1], [2 ** 27, 2 ** 37 + 1], [2 ** 26, 2 ** 38 + 1]]) {
         const seg = new Float64Array([0, 0, 0, 0, 0, stride, count, 0]);
         try {
           b.attentionRun(new Float32Array([1]), 1, 1, 1, 1, 0, false, 1, 1, 0, 0, [new Float32Array(4)], seg, null, 1, new Float32Array(1), null);
           console.log('returned');
         } catch (e) { console.log('threw', e.name, e.message); }
       }
       console.log('SURVIVED');`,
    );
    expectSurvived(res);
    expect(res.stdout.match(/threw RangeError/g)?.length, res.summary).toBe(3);
  });

  // Fixed (each segment keeps its own buffer indices): the async form moved its segments onto
  // the copies of their buffers pairing them with buffer indices in table order while walking
  // them head by head, so a table not sorted by head (legal) gave segments pointers computed
  // against another buffer: wild reads on the worker thread.
  it('attentionRunAsync: a segment table not sorted by head, on copied buffers, resolves with the synchronous result', () => {
    const res = child(
      `const D = 4, N = 1 << 20;
       const bufs = [new Float32Array(D).fill(1), new Float32Array(D).fill(2), new Float32Array(N).fill(3), new Float32Array(N).fill(4)];
       const seg = new Float64Array([1, 0, 1, 0, 0, D, 1, 0, /* head 0 after head 1 */ 0, 2, 3, N - D, N - D, D, 1, 0]);
       const q = new Float32Array(2 * D).fill(0.5), out = new Float32Array(2 * D);
       b.attentionRun(q, 1, 2, 2, D, 0, true, 0, 1, 0, 0, bufs, seg, null, 1, out, null);
       console.log('sync', out.join(' '));
       b.attentionRunAsync(q, 1, 2, 2, D, 0, true, 0, 1, 0, 0, bufs, seg, null, 1, false).then(
         (r) => console.log(r.output.every((x, i) => x === out[i]) ? 'async same' : 'async differs: ' + r.output.join(' ')),
         (e) => console.log('rejected', e.name, e.message)).finally(() => console.log('SURVIVED'));`,
    );
    expectSurvived(res);
    expect(res.stdout, res.summary).toContain('sync 4 4 4 4 2 2 2 2');
    expect(res.stdout, res.summary).toContain('async same');
  });

  // Fixed (the buffer list is read before any typed array argument): reading buffers[i] runs an
  // index getter, which ran after q and the earlier buffers had been taken (data pointer and
  // length), so it could transfer or shrink them and the kernel read freed or decommitted memory.
  it('attentionRun / attentionRunAsync: a getter on buffers that detaches or shrinks an input taken before it cannot make the kernel read it', () => {
    const res = child(
      `const D = 64, N = 1 << 18;
       for (const fn of ['attentionRun', 'attentionRunAsync']) for (const how of ['resize', 'detach']) for (const target of ['q', 'k']) {
         const mk = (name, n) => new Float32Array(name === target && how === 'resize' ? new ArrayBuffer(n * 4, { maxByteLength: n * 4 }) : new ArrayBuffer(n * 4)).fill(0.01);
         const q = mk('q', D), k = mk('k', N), v = mk('v', N);
         const list = [k];
         Object.defineProperty(list, 1, { enumerable: true, get() {
           const buf = (target === 'q' ? q : k).buffer;
           if (how === 'resize') buf.resize(0); else { structuredClone(buf, { transfer: [buf] }); gc(); gc(); }
           return v;
         } });
         const args = [q, 1, 1, 1, D, N / D - 1, true, 0, 1, 0, 0, list, new Float64Array([0, 0, 1, 0, 0, D, N / D, 0]), null, 1];
         try {
           const r = fn === 'attentionRun' ? b.attentionRun(...args, new Float32Array(D), null) : b.attentionRunAsync(...args, false);
           console.log(fn, how, target, 'returned', r);
         } catch (e) { console.log(fn, how, target, 'threw', e.name, e.message); }
       }
       console.log('SURVIVED');`,
      { node: ['--expose-gc'] },
    );
    expectSurvived(res);
    expect(res.stdout.match(/threw RangeError/g)?.length, res.summary).toBe(8);
  });

  // Fixed in the binding (row strides capped at 2^27 elements): with more than 8 query rows per
  // tile the kernel transposes key rows W at a time, gathering a column with 32-bit indices
  // lane * stride (LoadColumn in common/isa_avx512.inc and isa_avx2.inc), so a stride with
  // (W - 1) * stride >= 2^31 wrapped negative: SEGV 8 GiB before the buffer. The buffer it needs
  // (2^31 floats) is reserved lazily: only a few rows are touched.
  for (const isa of ['avx512', 'avx2'] as const) {
    it(`attentionRun (${isa} or narrower): a row stride whose gather offsets pass 2^31 throws a RangeError`, () => {
      const res = child(
        `const W = b.kernelIsa === 'avx512' ? 16 : b.kernelIsa === 'avx2' ? 8 : 4;
         const call = (stride, k) => {
           try {
             b.attentionRun(new Float32Array(16).fill(1), 1, 16, 1, 1, W - 1, true, 0, 1, 0, 0, [k], new Float64Array([0, 0, 0, 0, 0, stride, W, 0]), null, 1, new Float32Array(16), null);
             console.log('returned');
           } catch (e) { console.log('threw', e.name, e.message); }
         };
         call(2 ** 27 + 1, new Float32Array(4));
         const stride = Math.ceil(2 ** 31 / (W - 1));
         let k = null;
         // Not under ASan, whose shadow memory makes the reservation take many seconds (the
         // stride is refused before any buffer is looked at either way).
         if (${!underAsan}) try { k = new Float32Array((W - 1) * stride + 1); } catch (e) { console.log('could not reserve', e.message); }
         if (k) call(stride, k);
         console.log('SURVIVED');`,
        { env: isa === 'avx2' ? { CAPIBARA_ISA: 'avx2' } : {} },
      );
      expectSurvived(res);
      expect(res.stdout, res.summary).not.toContain('returned');
      expect(res.stdout, res.summary).toContain('threw RangeError Expected stride in [1, 134217728] in segments row 0');
    });
  }

  // Fixed in native/attention/attend.cc (the thread estimate is formed in double, saturated): it
  // was `keys * p.dim * p.group * max(1, queries)` in int64, and 2^16 segment rows of 2^25 keys
  // for 4096 query heads of 1024 tokens made it 2^63, a signed overflow UBSan aborts on (the plain
  // build only got a wrong thread count). Nothing is visible (horizon -1), so the call is cheap.
  it('attentionRun: a thread estimate past 2^63 (many long segments) returns normally', () => {
    const res = child(
      `const L = 2 ** 25, R = 2 ** 16, G = 4096, Q = 1024;
       const seg = new Float64Array(R * 8);
       for (let i = 0; i < R; i++) seg.set([0, 0, 0, 0, 0, 1, L, 0], i * 8);
       try {
         b.attentionRun(new Float32Array(Q * G), Q, G, 1, 1, 0, false, -1, 1, 0, 0, [new Float32Array(L)], seg, null, 1, new Float32Array(Q * G), null);
         console.log('returned');
       } catch (e) { console.log('threw', e.name, e.message); }
       console.log('SURVIVED');`,
      { timeoutMs: 60_000 },
    );
    expectSurvived(res);
    expect(res.stdout, res.summary).toContain('returned');
  }, 90_000);
});
