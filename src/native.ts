/**
 * The only module that loads the C++ addon, and the typed mirror of every raw export. It
 * declares the binding's raw types itself and imports nothing from the parts, which map the raw
 * results to their public types. Order: `CAPIBARA_NATIVE_PATH`, then a local build
 * (`build/Release`, `build/Debug`: made on purpose, by `npm rebuild @capibara/core
 * --build-from-source`, by the install script where no prebuilt addon loads, or in a checkout),
 * then the prebuilt addon the package ships (`prebuilds/<platform>-<arch>/capibara.node`,
 * prebuildify's layout, as node-gyp-build orders them). Each failure is kept, and one error lists
 * them all with how to fix it. (The benchmark floors are in a separate addon,
 * `capibara_bench.node`, that only bench/ loads, from the same folder.)
 * @module
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Raw result of `gatingDispatch`: the arrays of a dispatch plan (the gating part adds the shape
 * and options to make the public `DispatchPlan`).
 */
export interface NativeDispatch {
  loads: Int32Array;
  counts: Int32Array;
  offsets: Int32Array;
  permutation: Int32Array;
  slotPosition: Int32Array;
  dropped: Int32Array;
}

/** Raw result of `gatingStats` and `gatingStatsAsync` (the gating part maps it to its public `RouterStats`). */
export interface NativeStats {
  loadFraction: Float64Array;
  meanProb: Float64Array;
  loads: Int32Array;
  auxLoss: number;
  zLoss: number;
  maxVio: number;
  cv2: number;
  entropy: number;
  countedTokens: number;
}

type TopkArgs = [
  logits: Float32Array,
  tokens: number,
  experts: number,
  k: number,
  scoring: number,
  bias: Float32Array | null,
  renormalize: boolean,
  routeScale: number,
  groups: number,
  topkGroups: number,
  groupScore: number,
  rangeStart: number,
  rangeEnd: number,
  threads: number,
  weightsOut: Float32Array,
  indicesOut: Int32Array,
];

type TopkAsyncArgs = TopkArgs extends [...infer Head, Float32Array, Int32Array] ? Head : never;

type RouterLogitsArgs = [
  hidden: Float32Array,
  weight: Float32Array,
  tokens: number,
  hiddenSize: number,
  experts: number,
  threads: number,
  out: Float32Array,
];

type RouterLogitsAsyncArgs = RouterLogitsArgs extends [...infer Head, Float32Array] ? Head : never;

type Int8ScoresArgs = [
  query: Int8Array,
  queryScale: number,
  codes: Int8Array,
  scales: Float32Array,
  dims: number,
  rows: Int32Array | null,
  threads: number,
  out: Float32Array,
];

type Int8ScoresAsyncArgs = Int8ScoresArgs extends [...infer Head, Float32Array] ? Head : never;

type Float32ScoresArgs = [
  query: Float32Array,
  matrix: Float32Array,
  dims: number,
  rows: Int32Array | null,
  threads: number,
  out: Float32Array,
];

type Float32ScoresAsyncArgs = Float32ScoresArgs extends [...infer Head, Float32Array] ? Head : never;

/** Leading arguments of `attentionRun` and `attentionRunAsync`. */
export type AttentionArgs = [
  q: Float32Array,
  queries: number,
  queryHeads: number,
  kvHeads: number,
  headDim: number,
  pos0: number,
  causal: boolean,
  horizon: number,
  scale: number,
  sink: number,
  recent: number,
  buffers: (Float32Array | Uint16Array)[],
  /** Rows of 8: head, k buffer, v buffer, k offset, v offset, stride, count, first position. */
  segments: Float64Array,
  streaming: Uint8Array | null,
  threads: number,
];

/**
 * Leading arguments of `attentionCacheRun` and `attentionCacheRunAsync`: as {@link AttentionArgs},
 * with buffers of any format's type and rows of 10 in the segment table.
 */
export type CacheRunArgs = [
  q: Float32Array,
  queries: number,
  queryHeads: number,
  kvHeads: number,
  headDim: number,
  pos0: number,
  causal: boolean,
  horizon: number,
  scale: number,
  sink: number,
  recent: number,
  buffers: (Float32Array | Uint16Array | Uint8Array)[],
  /** Rows of 10: head, format, k buffer, v buffer, k offset, v offset, stride, count, first position, lane. */
  segments: Float64Array,
  streaming: Uint8Array | null,
  threads: number,
];

type StatsArgs = [logits: Float32Array, indices: Int32Array, tokens: number, experts: number, k: number, scoring: number];

/**
 * Typed contract of the addon's exports (native/addon.cc and each feature's binding.cc). Every
 * `…Async` export takes its typed-array inputs by one policy (PromiseWorker::Take in
 * native/common/async.h): inputs on an ordinary ArrayBuffer are copied when called, so the caller
 * may reuse, write, transfer or shrink them at once; inputs on a SharedArrayBuffer are pinned and
 * read in place, and must not be written until the promise settles. A copy that cannot be
 * allocated throws a RangeError at the call. Its outputs are allocated by the addon.
 */
export interface NativeBinding {
  abiVersion: number;
  gatingTopk(...args: TopkArgs): void;
  /** Takes its inputs (copied, or read in place on a SharedArrayBuffer) and allocates its outputs. */
  gatingTopkAsync(...args: TopkAsyncArgs): Promise<{ weights: Float32Array; indices: Int32Array }>;
  gatingDispatch(
    indices: Int32Array,
    tokens: number,
    k: number,
    experts: number,
    capacity: number,
    blockSize: number,
    dropPolicy: number,
    weights: Float32Array | null,
  ): NativeDispatch;
  gatingStats(...args: StatsArgs): NativeStats;
  /** Takes its inputs (copied, or read in place on a SharedArrayBuffer) and allocates its outputs. */
  gatingStatsAsync(...args: StatsArgs): Promise<NativeStats>;
  gatingRouterLogits(...args: RouterLogitsArgs): void;
  /** Takes its inputs (copied, or read in place on a SharedArrayBuffer) and allocates its output. */
  gatingRouterLogitsAsync(...args: RouterLogitsAsyncArgs): Promise<Float32Array>;
  /** The instruction set the kernels were dispatched to: 'avx512', 'avx2' or 'generic'. */
  kernelIsa: 'avx512' | 'avx2' | 'generic';
  /** NAPI_VERSION the addon was compiled with. */
  napiVersion: number;
  /** out[j] = queryScale · scales[r] · Σ query·codes[r], r = rows ? rows[j] : j (native/memory). */
  memoryInt8Scores(...args: Int8ScoresArgs): void;
  /** Takes its inputs (copied, or read in place on a SharedArrayBuffer) and allocates its output. */
  memoryInt8ScoresAsync(...args: Int8ScoresAsyncArgs): Promise<Float32Array>;
  /** out[j] = Σ query·matrix[r], r = rows ? rows[j] : j. */
  memoryFloat32Scores(...args: Float32ScoresArgs): void;
  /** Takes its inputs (copied, or read in place on a SharedArrayBuffer) and allocates its output. */
  memoryFloat32ScoresAsync(...args: Float32ScoresAsyncArgs): Promise<Float32Array>;
  /** Attention of q over position-tagged key/value segments (native/attention/kernels.h). */
  attentionRun(...args: [...AttentionArgs, out: Float32Array, lse: Float32Array | null]): void;
  /** Takes its inputs (q, every buffer, streaming: each copied, or read in place on a SharedArrayBuffer) and allocates its outputs. */
  attentionRunAsync(...args: [...AttentionArgs, wantLse: boolean]): Promise<{ output: Float32Array; lse: Float32Array | null }>;
  /** Attention over segments in any of the cache's formats (native/attention/kernels.h), e.g. a DuoKVCache's blocks. */
  attentionCacheRun(...args: [...CacheRunArgs, out: Float32Array, lse: Float32Array | null]): void;
  /** Takes its inputs (q, every buffer, streaming: each copied, or read in place on a SharedArrayBuffer) and allocates its outputs. */
  attentionCacheRunAsync(...args: [...CacheRunArgs, wantLse: boolean]): Promise<{ output: Float32Array; lse: Float32Array | null }>;
  /**
   * Stores rows of keys and values into the cache's formats: rows of 11 (format, src k buffer, src v
   * buffer, src offset, src stride, count, dst k buffer, dst v buffer, dst k offset, dst v offset, lane).
   */
  attentionKvWrite(buffers: (Float32Array | Uint16Array | Uint8Array)[], writes: Float64Array, headDim: number): void;
  /** The attention kernel variant in use (CAPIBARA_ISA=avx512 turns the BF16 + VNNI one off). */
  attentionPath: 'avx512-bf16-vnni' | 'avx512' | 'avx2' | 'generic';
  /** The int8 scan variant in use (VNNI is an AVX-512 extension; CAPIBARA_ISA=avx512 turns it off). */
  memoryInt8Path: 'avx512-vnni' | 'avx512' | 'avx2' | 'generic';
}

/** Bumped with every incompatible change of the binding; checked at load. */
const ABI_VERSION = 4;

/** Package root: both `src/` (tests) and `lib/` (published) sit one level below it. */
const ROOT = path.resolve(__dirname, '..');

let cached: { binding: NativeBinding; file: string } | undefined;

function loadFrom(file: string): NativeBinding {
  if (!fs.existsSync(file)) throw new Error('file not found');
  const mod = { exports: {} as Record<string, unknown> };
  process.dlopen(mod, file);
  const binding = mod.exports as unknown as NativeBinding;
  if (binding.abiVersion !== ABI_VERSION) {
    throw new Error(`binding ABI ${String(binding.abiVersion)} does not match ${ABI_VERSION}: rebuild it`);
  }
  return binding;
}

/**
 * The prebuilt addon's folder for this platform: prebuildify's `<platform>-<arch>`, or several
 * architectures in one (`darwin-x64+arm64`), one architecture first (scripts/install.mjs chooses alike).
 */
function prebuildFolder(): string {
  const tuple = `${process.platform}-${process.arch}`;
  let names: string[] = [];
  try {
    names = fs.readdirSync(path.join(ROOT, 'prebuilds'));
  } catch {
    // No prebuilds/ (a checkout): the path below is reported as not found.
  }
  const fits = names
    .map((name) => ({ name, arches: name.split('-') }))
    .filter(({ arches }) => arches.length === 2 && arches[0] === process.platform && arches[1]!.split('+').includes(process.arch))
    .sort((a, b) => a.arches[1]!.split('+').length - b.arches[1]!.split('+').length);
  return path.join(ROOT, 'prebuilds', fits[0]?.name ?? tuple);
}

function load(): { binding: NativeBinding; file: string } {
  const candidates: string[] = [];
  const override = process.env['CAPIBARA_NATIVE_PATH'];
  if (override) candidates.push(path.resolve(override));
  candidates.push(path.join(ROOT, 'build', 'Release', 'capibara.node'));
  candidates.push(path.join(ROOT, 'build', 'Debug', 'capibara.node'));
  candidates.push(path.join(prebuildFolder(), 'capibara.node'));

  const failures: string[] = [];
  const errors: unknown[] = [];
  for (const file of candidates) {
    try {
      return { binding: loadFrom(file), file };
    } catch (err) {
      errors.push(err);
      failures.push(`  - ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const message = [
    `Could not load the @capibara/core native addon for ${process.platform}-${os.arch()} (Node.js ${process.version}).`,
    'Tried:',
    ...failures,
    'Possible solutions:',
    '  - Run the package\'s install script (npm install --ignore-scripts skips it): npm rebuild @capibara/core (it takes the prebuilt addon where one loads here, else compiles it).',
    '  - Compile it for this machine: npm rebuild @capibara/core --build-from-source, or CAPIBARA_BUILD_FROM_SOURCE=1 npm rebuild @capibara/core (needs CMake >= 3.15 and a C++17 compiler with GCC/Clang vector extensions: g++ 9+ or clang++ 10+; on Windows clang-cl, as MSVC cl cannot compile them); in a checkout of the repository: npm run build:native.',
    '  - Point CAPIBARA_NATIVE_PATH at a built capibara.node.',
    '  - Run Node.js without --no-addons, on Node.js >= 20.19.',
  ].join('\n');
  throw new Error(message, { cause: errors.length === 1 ? errors[0] : new AggregateError(errors, 'load failures') });
}

/** Loads (once per thread) and returns the addon, or throws one error naming every path tried. */
export function native(): NativeBinding {
  cached ??= load();
  return cached.binding;
}

/**
 * The file {@link native} loaded (loading it first): `capibara bench` runs the benchmarks on it,
 * with the bench-only `capibara_bench.node` from the same folder.
 */
export function nativePath(): string {
  cached ??= load();
  return cached.file;
}
