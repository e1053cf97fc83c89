/**
 * Brute-force similarity scans over an embedding matrix, natively: int8 codes with a scale per
 * row (the memory's stored form) and float32 rows (the precise path). One score per row, or per
 * row of a candidate subset; ranking is left to the caller.
 * @module
 */
import { native } from '../native';
import * as v from '../validate';

/** Largest row length the kernels take (int8 dot products stay exact in int32 far beyond it). */
export const MAX_SCAN_DIMS = 65536;

/**
 * Options of {@link int8Scores} and {@link float32Scores} and their async forms.
 *
 * @example
 * ```ts
 * const opts: VectorScanOptions = { rows: Int32Array.of(4, 17, 99), threads: 1 };
 * ```
 */
export interface VectorScanOptions {
  /**
   * Score only these rows, in this order (a pre-filtered candidate list): the result then has
   * `rows.length` entries, entry j for row `rows[j]`. Each index must be in [0, rows in the
   * matrix); repeats are allowed. Default: every row in order.
   */
  rows?: Int32Array;
  /**
   * Upper bound on kernel threads; default `os.availableParallelism()`. Only scans of more
   * than about 1 MB of rows per thread use more than one.
   */
  threads?: number;
  /** Preallocated output of length `rows.length` (or the row count), to scan without allocating. */
  out?: Float32Array;
}

const KEYS = ['rows', 'threads', 'out'];

/** Options common to both scans, given the matrix's row count; `allocate` false for the async forms. */
function scanOptions(options: unknown, rowCount: number, allocate: boolean) {
  const o = v.options<VectorScanOptions>('options', options, KEYS);
  const rows = o.rows === undefined ? null : v.int32Array('rows', o.rows);
  const count = rows ? rows.length : rowCount;
  const threads = v.threads('threads', o.threads);
  const given = o.out !== undefined;
  const out = given ? v.float32Array('out', o.out, count) : new Float32Array(allocate ? count : 0);
  return { rows, threads, out, given };
}

function prepareInt8(query: unknown, queryScale: unknown, codes: unknown, scales: unknown, dims: unknown, options: unknown, allocate: boolean) {
  const d = v.integer('dims', dims, 1, MAX_SCAN_DIMS);
  const q = v.int8Array('query', query, d);
  const qs = v.finite('queryScale', queryScale, { min: 0 });
  const s = v.float32Array('scales', scales);
  const c = v.int8Array('codes', codes);
  if (c.length !== s.length * d) throw v.rangeError('codes', `Int8Array of length scales.length * dims (${s.length * d})`, c);
  const { rows, threads, out, given } = scanOptions(options, s.length, allocate);
  return { args: [q, qs, c, s, d, rows, threads, out] as const, out, given };
}

function prepareFloat32(query: unknown, matrix: unknown, dims: unknown, options: unknown, allocate: boolean) {
  const d = v.integer('dims', dims, 1, MAX_SCAN_DIMS);
  const q = v.finiteVector('query', query, d);
  const m = v.float32Array('matrix', matrix);
  if (m.length % d !== 0) throw v.rangeError('matrix', `Float32Array of length a multiple of dims (${d})`, m);
  const { rows, threads, out, given } = scanOptions(options, m.length / d, allocate);
  return { args: [q, m, d, rows, threads, out] as const, out, given };
}

/**
 * Scores int8-quantised rows against an int8-quantised query:
 * `out[j] = queryScale · scales[r] · Σ_d query[d] · codes[r · dims + d]` with `r = rows[j]`
 * (or `r = j`). The dot product is exact (integer); the scaling is rounded once to float32.
 * For L2-normalised embeddings quantised by {@link quantizeInt8} the result approximates their
 * cosine similarity (within about 1e-3). The number of rows is `scales.length`.
 *
 * Runs natively with runtime-selected SIMD (AVX-512 VNNI, AVX-512, AVX2 or portable) on up to
 * `threads` threads; synchronous. A row index outside the matrix, or a scored row whose scale
 * is NaN, infinite or negative, is a `RangeError` naming it.
 *
 * @param query - Int8 codes of the query, length `dims`.
 * @param queryScale - The query's scale (finite, >= 0).
 * @param codes - Row-major `[scales.length, dims]` codes.
 * @param scales - One scale per row.
 * @param dims - Row length, in [1, 65536].
 *
 * @example
 * ```ts
 * import { quantizeInt8, int8Scores } from '@capibara/core';
 * const q = quantizeInt8(queryEmbedding);                        // Float32Array(384)
 * const scores = int8Scores(q.codes, q.scale, codes, scales, 384); // one per row
 * const some = int8Scores(q.codes, q.scale, codes, scales, 384, { rows: Int32Array.of(3, 8) });
 * ```
 */
export function int8Scores(
  query: Int8Array,
  queryScale: number,
  codes: Int8Array,
  scales: Float32Array,
  dims: number,
  options?: VectorScanOptions,
): Float32Array {
  const { args, out } = prepareInt8(query, queryScale, codes, scales, dims, options, true);
  native().memoryInt8Scores(args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7]);
  return out;
}

/**
 * {@link int8Scores} on a worker thread, for large scans that would block the event loop for
 * more than a millisecond. Inputs on an ordinary ArrayBuffer are copied when called, so you may
 * reuse them at once; inputs on a `SharedArrayBuffer` are read in place (no copy: keep a large
 * matrix there) and must not be written until the promise settles. A copy that cannot be
 * allocated throws a RangeError that says so. With `out`, the scores are copied there at the end.
 *
 * @example
 * ```ts
 * const codes = new Int8Array(new SharedArrayBuffer(rows * 384)); // scanned in place
 * const scores = await int8ScoresAsync(q.codes, q.scale, codes, scales, 384);
 * ```
 */
export async function int8ScoresAsync(
  query: Int8Array,
  queryScale: number,
  codes: Int8Array,
  scales: Float32Array,
  dims: number,
  options?: VectorScanOptions,
): Promise<Float32Array> {
  const site = new Error();
  const { args, out, given } = prepareInt8(query, queryScale, codes, scales, dims, options, false);
  const r = await v.atSite(site, () => native().memoryInt8ScoresAsync(args[0], args[1], args[2], args[3], args[4], args[5], args[6]));
  if (!given) return r;
  out.set(r);
  return out;
}

/**
 * Scores float32 rows against a query: `out[j] = Σ_d query[d] · matrix[r · dims + d]` with
 * `r = rows[j]` (or `r = j`); the cosine similarity for L2-normalised rows. The precise path,
 * and the baseline the int8 scan is measured against. The summation order is fixed, so every
 * ISA gives bit-identical scores. Non-finite matrix entries give non-finite scores.
 *
 * @param query - Finite values, length `dims` (a `number[]` is converted).
 * @param matrix - Row-major `[rows, dims]`; its length must be a multiple of `dims`.
 * @param dims - Row length, in [1, 65536].
 *
 * @example
 * ```ts
 * import { float32Scores } from '@capibara/core';
 * const scores = float32Scores(queryEmbedding, embeddings, 384);
 * ```
 */
export function float32Scores(query: Float32Array, matrix: Float32Array, dims: number, options?: VectorScanOptions): Float32Array {
  const { args, out } = prepareFloat32(query, matrix, dims, options, true);
  // Explicit arguments: a spread call costs ~0.8 µs more, a tenth of a routed query's scoring.
  native().memoryFloat32Scores(args[0], args[1], args[2], args[3], args[4], args[5]);
  return out;
}

/**
 * {@link float32Scores} on a worker thread. Inputs on an ordinary ArrayBuffer are copied when
 * called, so you may reuse them at once; inputs on a `SharedArrayBuffer` are read in place and
 * must not be written until the promise settles (see {@link int8ScoresAsync}).
 *
 * @example
 * ```ts
 * const scores = await float32ScoresAsync(queryEmbedding, embeddings, 384, { threads: 2 });
 * ```
 */
export async function float32ScoresAsync(
  query: Float32Array,
  matrix: Float32Array,
  dims: number,
  options?: VectorScanOptions,
): Promise<Float32Array> {
  const site = new Error();
  const { args, out, given } = prepareFloat32(query, matrix, dims, options, false);
  const r = await v.atSite(site, () => native().memoryFloat32ScoresAsync(args[0], args[1], args[2], args[3], args[4]));
  if (!given) return r;
  out.set(r);
  return out;
}
