/**
 * Data movement of the ONNX Runtime attention backend: picking a head group's queries and keys
 * out of the token-major tensors, folding a query group into rows, the additive mask bias, and
 * scattering results back.
 * @module
 */

/** Token ranges `[from, to)` of absolute key positions, in order. */
export type KeyRanges = ReadonlyArray<readonly [number, number]>;

/** Added to the score of a masked key. Finite, so a fully masked row cannot turn into NaN inside ORT. */
export const MASKED = -1e30;

let halfTable: Float32Array | undefined;
// All 65,536 float16 values: converting a cache is then one table read per element.
function halfToFloat(): Float32Array {
  if (halfTable) return halfTable;
  halfTable = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) halfTable[h] = sign * frac * 2 ** -24;
    else if (exp === 31) halfTable[h] = frac === 0 ? sign * Infinity : NaN;
    else halfTable[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return halfTable;
}

/** Keys or values as one tensor's data: the heads it holds and, when not all, which ones to gather inside the graph. */
export interface KvSlice {
  data: Float32Array;
  tokens: number;
  /** Heads per token in `data`. */
  heads: number;
  /** KV heads of `data` the graph gathers; null: all of them, in order. */
  gather: number[] | null;
}

/**
 * Tokens `ranges` of KV heads `heads` from a token-major `[nk, kvHeads, headDim]` tensor. A single
 * range of float32 data is passed without copying (the graph gathers the heads); several ranges or
 * float16 data are copied, converted and gathered here.
 */
export function kvSlice(src: Float32Array | Uint16Array, kvHeads: number, headDim: number, heads: readonly number[], ranges: KeyRanges): KvSlice {
  const all = heads.length === kvHeads;
  const tokens = ranges.reduce((n, [a, b]) => n + b - a, 0);
  const row = kvHeads * headDim;
  if (src instanceof Float32Array && ranges.length === 1) {
    const [a, b] = ranges[0]!;
    return { data: src.subarray(a * row, b * row), tokens, heads: kvHeads, gather: all ? null : [...heads] };
  }
  const n = heads.length;
  const out = new Float32Array(tokens * n * headDim);
  const table = src instanceof Uint16Array ? halfToFloat() : null;
  let o = 0;
  for (const [a, b] of ranges) {
    for (let j = a; j < b; j++) {
      for (let m = 0; m < n; m++) {
        const s = (j * kvHeads + heads[m]!) * headDim;
        if (table) for (let e = 0; e < headDim; e++) out[o + e] = table[src[s + e]!]!;
        else out.set(src.subarray(s, s + headDim), o);
        o += headDim;
      }
    }
  }
  return { data: out, tokens, heads: n, gather: null };
}

/**
 * How a head group's queries are laid out for the graph. `fold`: `[tokens * group, heads, headDim]`,
 * the query group as extra rows of each KV head (MultiHeadAttention with num_heads = KV heads).
 * `heads`: `[tokens, heads * group, headDim]`, query heads of the group in order (GroupQueryAttention).
 */
export type QueryLayout = 'fold' | 'heads';

/** Whether `layout` of `heads` is the input's own layout (no copy needed). */
function identity(layout: QueryLayout, heads: readonly number[], kvHeads: number, group: number): boolean {
  return heads.length === kvHeads && (layout === 'heads' || group === 1);
}

/** Queries `[t0, t1)` of KV heads `heads`, laid out as `layout`. */
export function gatherQueries(
  q: Float32Array, kvHeads: number, group: number, headDim: number, heads: readonly number[], t0: number, t1: number, layout: QueryLayout,
): Float32Array {
  const qRow = kvHeads * group * headDim;
  if (identity(layout, heads, kvHeads, group)) return q.subarray(t0 * qRow, t1 * qRow);
  const out = new Float32Array((t1 - t0) * heads.length * group * headDim);
  moveQueries(q, out, kvHeads, group, headDim, heads, t0, t1, layout, true);
  return out;
}

/** Writes a graph output `o` (laid out as `layout`) for queries `[t0, t1)` into the full `[nq, queryHeads, headDim]` output. */
export function scatterOutput(
  o: Float32Array, out: Float32Array, kvHeads: number, group: number, headDim: number, heads: readonly number[], t0: number, t1: number, layout: QueryLayout,
): void {
  const qRow = kvHeads * group * headDim;
  if (identity(layout, heads, kvHeads, group)) out.set(o, t0 * qRow);
  else moveQueries(out, o, kvHeads, group, headDim, heads, t0, t1, layout, false);
}

// Copies between the full tensor `full` and a group tensor `part`, in the direction `toPart`.
function moveQueries(
  full: Float32Array, part: Float32Array, kvHeads: number, group: number, headDim: number, heads: readonly number[], t0: number, t1: number,
  layout: QueryLayout, toPart: boolean,
): void {
  const n = heads.length;
  const queryHeads = kvHeads * group;
  for (let t = t0; t < t1; t++) {
    for (let m = 0; m < n; m++) {
      for (let s = 0; s < group; s++) {
        const f = (t * queryHeads + heads[m]! * group + s) * headDim;
        const r = t - t0;
        const p = (layout === 'fold' ? ((r * group + s) * n + m) : (r * n * group + m * group + s)) * headDim;
        if (toPart) for (let e = 0; e < headDim; e++) part[p + e] = full[f + e]!;
        else for (let e = 0; e < headDim; e++) full[f + e] = part[p + e]!;
      }
    }
  }
}

/** Which keys a query at position `i` sees (positions `[from, to)`, one or two intervals). */
function visibleIntervals(i: number, streaming: boolean, sink: number, recent: number): Array<[number, number]> {
  if (!streaming) return [[0, i + 1]];
  return [[0, Math.min(sink, i + 1)], [Math.max(sink, i - recent + 1), i + 1]];
}

/** Keys a query at position `i` sees among `nk` keys, as ranges (sink, then recent); empty when none. */
export function visibleRanges(i: number, nk: number, streaming: boolean, sink: number, recent: number): Array<[number, number]> {
  return mergeRanges(visibleIntervals(i, streaming, sink, recent).map(([a, b]) => [a, Math.min(b, nk)]));
}

/** Keys any of the queries at positions `[i0, i1]` sees: the union of their windows. */
export function chunkRanges(i0: number, i1: number, nk: number, streaming: boolean, sink: number, recent: number): Array<[number, number]> {
  const hi = Math.min(i1 + 1, nk);
  if (!streaming) return mergeRanges([[0, hi]]);
  return mergeRanges([[0, Math.min(sink, hi)], [Math.max(sink, i0 - recent + 1), hi]]);
}

// Drops empty ranges and joins touching ones (sink and recent meet once the window covers everything).
function mergeRanges(ranges: Array<[number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [a, b] of ranges) {
    if (b <= a) continue;
    const last = out[out.length - 1];
    if (last && last[1] === a) last[1] = b;
    else out.push([a, b]);
  }
  return out;
}

/**
 * The additive bias `[rows, keys]` (0 seen, {@link MASKED} not) of folded queries `[t0, t1)` at
 * positions `offset + t` over the keys `ranges`. Rows of the same query are equal. Returns the
 * queries that see no key at all: their bias rows stay 0 and their outputs must be zeroed.
 */
export function maskBias(
  ranges: KeyRanges, t0: number, t1: number, offset: number, group: number, streaming: boolean, sink: number, recent: number,
): { bias: Float32Array; empty: number[] } {
  const keys = ranges.reduce((n, [a, b]) => n + b - a, 0);
  const bias = new Float32Array((t1 - t0) * group * keys);
  const empty: number[] = [];
  for (let t = t0; t < t1; t++) {
    const rowStart = (t - t0) * group * keys;
    const row = bias.subarray(rowStart, rowStart + keys);
    row.fill(MASKED);
    let seen = 0;
    let col = 0;
    for (const [a, b] of ranges) {
      for (const [lo, hi] of visibleIntervals(offset + t, streaming, sink, recent)) {
        const s = Math.max(lo, a);
        const e = Math.min(hi, b);
        if (e > s) {
          row.fill(0, col + s - a, col + e - a);
          seen += e - s;
        }
      }
      col += b - a;
    }
    if (seen === 0) {
      row.fill(0);
      empty.push(t);
    }
    for (let s = 1; s < group; s++) bias.copyWithin(rowStart + s * keys, rowStart, rowStart + keys);
  }
  return { bias, empty };
}

/** Zeroes the outputs of KV heads `heads` for query `t` (a query that sees no key). */
export function zeroQuery(out: Float32Array, kvHeads: number, group: number, headDim: number, heads: readonly number[], t: number): void {
  for (const h of heads) {
    const f = (t * kvHeads * group + h * group) * headDim;
    out.fill(0, f, f + group * headDim);
  }
}
