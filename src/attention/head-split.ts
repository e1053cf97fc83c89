/**
 * How per-head scores become a retrieval/streaming split: shape and score checks, the ranking
 * every count-based rule shares (score descending, ties to the lower flat index), the rounded
 * count of a ratio, numpy's quantile, and mask flags. Pure functions behind `HeadPattern`.
 * @module
 */
import * as v from '../validate';

/**
 * Per-head scores, row-major `[layers, kvHeads]`, all finite.
 *
 * @example
 * ```ts
 * const scores: HeadScores = new Float64Array([0.9, 0.1, 0.4, 0.7]); // 2 layers × 2 KV heads
 * ```
 */
export type HeadScores = Float64Array | Float32Array | readonly number[];

/** Keys of a shape options object. @internal */
export const SHAPE_KEYS = ['layers', 'kvHeads', 'sink', 'recent'];

/** A checked shape, with the window when known. @internal */
export type Shape = { layers: number; kvHeads: number; sink?: number; recent?: number };

/** Checks a shape read from `name` (`options.layers`, `json.kvHeads`). @internal */
export function readShape(o: Partial<Shape>, name = 'options'): Shape {
  const shape: Shape = { layers: v.integer(`${name}.layers`, o.layers, 1), kvHeads: v.integer(`${name}.kvHeads`, o.kvHeads, 1) };
  if (o.sink !== undefined) shape.sink = v.integer(`${name}.sink`, o.sink, 0);
  if (o.recent !== undefined) shape.recent = v.integer(`${name}.recent`, o.recent, 0);
  return shape;
}

/** Copies scores into a Float64Array, checking length and finiteness. @internal */
export function readScores(scores: HeadScores, shape: Shape, name = 'scores'): Float64Array {
  const n = shape.layers * shape.kvHeads;
  const expected = `Float64Array, Float32Array or number[] of length ${n} (layers × kvHeads)`;
  if (!(scores instanceof Float64Array || scores instanceof Float32Array || Array.isArray(scores))) throw v.typeError(name, expected, scores);
  if (scores.length !== n) throw v.rangeError(name, expected, scores);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const x = scores[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new RangeError(`Expected finite numbers for ${name} but ${name}[${i}] is ${String(x)}`);
    out[i] = x;
  }
  return out;
}

/** Flat indices by score descending, ties to the lower index. @internal */
export function rank(scores: Float64Array): Int32Array {
  const order = Int32Array.from({ length: scores.length }, (_, i) => i);
  return order.sort((a, b) => scores[b]! - scores[a]! || a - b);
}

/** The split keeping the `count` top heads by {@link rank}: 1 = retrieval. @internal */
export function topHeads(scores: Float64Array, count: number): Uint8Array {
  const retrieval = new Uint8Array(scores.length);
  const order = rank(scores);
  for (let i = 0; i < count; i++) retrieval[order[i]!] = 1;
  return retrieval;
}

/**
 * Whether `retrieval` is the top `count` heads by {@link rank}; if not, the first flat index that
 * breaks it. @internal
 */
export function breaksTop(scores: Float64Array, retrieval: Uint8Array, count: number): number | undefined {
  const order = rank(scores);
  for (let i = 0; i < order.length; i++) if ((retrieval[order[i]!] === 1) !== i < count) return order[i]!;
  return undefined;
}

/** round(ratio × total), halves up, with a tolerance for ratios like 0.35 that are not exact in binary. @internal */
export function countOf(ratio: number, total: number): number {
  return Math.min(total, Math.floor(ratio * total + 0.5 + 1e-9));
}

/** numpy.quantile's default ('linear', Hyndman & Fan type 7), bit-for-bit: same index and lerp. @internal */
export function quantile(values: Float64Array, q: number): number {
  const a = values.slice().sort();
  const n = a.length;
  const virtual = (n - 1) * q;
  if (virtual >= n - 1) return a[n - 1]!;
  const lo = Math.floor(virtual);
  const t = virtual - lo;
  const x = a[lo]!;
  const y = a[lo + 1]!;
  const d = y - x;
  return t >= 0.5 ? y - d * (1 - t) : x + d * t;
}

/**
 * A mask as rows of flags or one flat array with `shape`: its checked shape and its flags as
 * scores (1 = retrieval, 0 = streaming). @internal
 */
export function readMask(mask: unknown, shape: unknown): { shape: Shape; scores: Float64Array } {
  const rows = Array.isArray(mask) && mask.length > 0 && typeof mask[0] === 'object' && mask[0] !== null;
  let flat: ArrayLike<unknown>;
  let sh: Partial<Shape>;
  if (rows) {
    const r = mask as ReadonlyArray<ArrayLike<unknown>>;
    const kvHeads = r[0]!.length;
    r.forEach((row, i) => {
      if (row === null || typeof row !== 'object' || typeof row.length !== 'number') throw v.typeError(`mask[${i}]`, 'array of flags', row);
      if (row.length !== kvHeads) throw v.rangeError(`mask[${i}]`, `${kvHeads} flags (as mask[0])`, row);
    });
    sh = { layers: r.length, kvHeads, ...(shape ? v.options<Shape>('shape', shape, SHAPE_KEYS) : {}) };
    if (sh.layers !== r.length || sh.kvHeads !== kvHeads) {
      throw new RangeError(`Expected ${r.length} layers × ${kvHeads} KV heads (the mask's rows) for shape but received ${String(sh.layers)} × ${String(sh.kvHeads)}`);
    }
    flat = r.flatMap((row) => Array.from(row));
  } else {
    if (shape === undefined) throw v.typeError('shape', 'shape options for a flat mask', shape);
    sh = v.options<Shape>('shape', shape, SHAPE_KEYS);
    if (mask === null || typeof mask !== 'object' || typeof (mask as ArrayLike<unknown>).length !== 'number') {
      throw v.typeError('mask', 'array of flags', mask);
    }
    flat = mask as ArrayLike<unknown>;
  }
  const full = readShape(sh);
  if (flat.length !== full.layers * full.kvHeads) {
    throw v.rangeError('mask', `${full.layers * full.kvHeads} flags (layers × kvHeads)`, flat);
  }
  const scores = new Float64Array(flat.length);
  for (let i = 0; i < flat.length; i++) {
    const f = flat[i];
    if (f !== true && f !== false && f !== 0 && f !== 1) throw v.rangeError(`mask[${i}]`, 'boolean or 0/1', f);
    scores[i] = f === true || f === 1 ? 1 : 0;
  }
  return { shape: full, scores };
}

/**
 * One part of a streaming window: the value given (checked, named `name`), else the pattern's
 * own; neither is a TypeError. @internal
 */
export function windowPart(name: string, given: number | undefined, own: number | undefined): number {
  if (given !== undefined) return v.integer(name, given, 0);
  if (own === undefined) throw v.typeError(name, 'integer >= 0 (the pattern has no window)', given);
  return own;
}
