import { normal, rng } from './random';
/**
 * Float64 reference of (streaming) scaled dot-product attention, written plainly for the tests.
 * Layouts are token-major: q `[nq, queryHeads, headDim]`, k and v `[nk, kvHeads, headDim]`,
 * output `[nq, queryHeads, headDim]`. Query head h reads KV head floor(h / (queryHeads / kvHeads)).
 * Query t sits at absolute position `queryOffset + t`, key j at position j. A query at position i
 * sees key j when j <= i (causal; non-causal: i is nk - 1 for every query) and, for a streaming
 * KV head, also j < sink or j > i - recent.
 */
export interface ReferenceAttention {
  queryHeads: number;
  kvHeads: number;
  headDim: number;
  causal?: boolean;
  queryOffset?: number;
  scale?: number;
  sink?: number;
  recent?: number;
  /** One flag per KV head: true = streaming (sink + recent window). Absent: none streaming. */
  streaming?: ArrayLike<boolean>;
}

export interface ReferenceResult {
  output: Float64Array;
  /** Natural log of the softmax normaliser per [query, head] (-Infinity when nothing is visible). */
  lse: Float64Array;
}

export function referenceAttention(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  o: ReferenceAttention,
): ReferenceResult {
  const { queryHeads: hq, kvHeads: hkv, headDim: d } = o;
  const nq = q.length / (hq * d);
  const nk = k.length / (hkv * d);
  const causal = o.causal ?? true;
  const offset = o.queryOffset ?? nk - nq;
  const scale = o.scale ?? 1 / Math.sqrt(d);
  const group = hq / hkv;
  const output = new Float64Array(nq * hq * d);
  const lse = new Float64Array(nq * hq);
  for (let t = 0; t < nq; t++) {
    const i = causal ? offset + t : nk - 1;
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / group);
      const streaming = o.streaming?.[kh] ?? false;
      const visible: number[] = [];
      const scores: number[] = [];
      for (let j = 0; j < nk; j++) {
        if (j > i) continue;
        if (streaming && !(j < (o.sink ?? 0) || j > i - (o.recent ?? 0))) continue;
        let s = 0;
        for (let e = 0; e < d; e++) s += q[(t * hq + h) * d + e]! * k[(j * hkv + kh) * d + e]!;
        visible.push(j);
        scores.push(s * scale);
      }
      const m = Math.max(...scores);
      let z = 0;
      const p = scores.map((s) => {
        const x = Math.exp(s - m);
        z += x;
        return x;
      });
      lse[t * hq + h] = visible.length === 0 ? -Infinity : m + Math.log(z);
      for (let n = 0; n < visible.length; n++) {
        const j = visible[n]!;
        for (let e = 0; e < d; e++) {
          const at = (t * hq + h) * d + e;
          output[at] = output[at]! + (p[n]! / z) * v[(j * hkv + kh) * d + e]!;
        }
      }
    }
  }
  return { output, lse };
}

/** Largest |got − want| (equal values, infinities included, count 0; NaN counts as Infinity). */
export function maxAbsDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new RangeError(`length ${got.length} vs ${want.length}`);
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    if (got[i] === want[i]) continue;
    const d = Math.abs(got[i]! - want[i]!);
    worst = Number.isNaN(d) ? Infinity : Math.max(worst, d);
  }
  return worst;
}

/** Seeded standard-normal q `[nq, queryHeads, headDim]`, k and v `[nk, kvHeads, headDim]`. */
export function attentionInputs(nq: number, nk: number, queryHeads: number, kvHeads: number, headDim: number, seed: number) {
  const r = rng(seed);
  return { q: normal(r, nq * queryHeads * headDim), k: normal(r, nk * kvHeads * headDim), v: normal(r, nk * kvHeads * headDim) };
}

// ---------------------------------------------------------------------------------------
// What a DuoKVCache stores, written here independently of the kernel (native/attention/kernels.h
// describes the formats): the values the reference attends over for each storage type.

/** bfloat16 of a float32 value, round to nearest even (NaN/Infinity not needed here). */
export function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] = ((u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) & 0xffff0000) >>> 0;
  return f[0]!;
}

/** Round half to even. */
function roundEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/**
 * KIVI-style int8 of one block of `count` rows (`[count, dim]` in k and v from row `from`), as the
 * cache quantises it, returned dequantised in float64: keys per channel over the block,
 * asymmetric (step = (max - min) / 255, code = round((k - min) / step)), values per row,
 * symmetric (step = max |v| / 127). Every step rounds to float32 as the native code does.
 */
export function kiviBlock(k: ArrayLike<number>, v: ArrayLike<number>, rows: number[], dim: number): { k: number[][]; v: number[][] } {
  const f = Math.fround;
  const outK = rows.map(() => new Array<number>(dim).fill(0));
  const outV = rows.map(() => new Array<number>(dim).fill(0));
  for (let d = 0; d < dim; d++) {
    let mn = Infinity;
    let mx = -Infinity;
    for (const r of rows) {
      mn = Math.min(mn, k[r * dim + d]!);
      mx = Math.max(mx, k[r * dim + d]!);
    }
    const step = f(f(mx - mn) / 255);
    rows.forEach((r, i) => {
      const code = step > 0 ? Math.min(255, Math.max(0, roundEven(f(f(k[r * dim + d]! - mn) / step)))) : 0;
      outK[i]![d] = mn + step * code;
    });
  }
  rows.forEach((r, i) => {
    let amax = 0;
    for (let d = 0; d < dim; d++) amax = Math.max(amax, Math.abs(v[r * dim + d]!));
    const step = f(amax / 127);
    for (let d = 0; d < dim; d++) {
      const code = step > 0 ? Math.min(127, Math.max(-127, roundEven(f(v[r * dim + d]! / step)))) : 0;
      outV[i]![d] = step * code;
    }
  });
  return { k: outK, v: outV };
}

/**
 * The keys and values `[n, kvHeads, dim]` an int8 cache holds for its first `upTo` positions,
 * fed the rows of `k`/`v` in order: positions in complete 64-blocks below `upTo` of retrieval
 * heads (`streaming[h]` false) dequantised, the rest as given (the float32 residual, streaming
 * heads' float32 window).
 */
export function int8Cache(k: Float32Array, v: Float32Array, kvHeads: number, dim: number, upTo: number, streaming: ArrayLike<boolean>): { k: Float64Array; v: Float64Array } {
  const outK = Float64Array.from(k);
  const outV = Float64Array.from(v);
  const blocks = Math.floor(upTo / 64);
  for (let h = 0; h < kvHeads; h++) {
    if (streaming[h]) continue;
    // Head h's rows as a contiguous [positions, dim] view.
    const hk = new Float64Array((blocks * 64) * dim);
    const hv = new Float64Array((blocks * 64) * dim);
    for (let p = 0; p < blocks * 64; p++) {
      for (let d = 0; d < dim; d++) {
        hk[p * dim + d] = k[(p * kvHeads + h) * dim + d]!;
        hv[p * dim + d] = v[(p * kvHeads + h) * dim + d]!;
      }
    }
    for (let b = 0; b < blocks; b++) {
      const rows = Array.from({ length: 64 }, (_, i) => b * 64 + i);
      const q = kiviBlock(hk, hv, rows, dim);
      rows.forEach((p, i) => {
        for (let d = 0; d < dim; d++) {
          outK[(p * kvHeads + h) * dim + d] = q.k[i]![d]!;
          outV[(p * kvHeads + h) * dim + d] = q.v[i]![d]!;
        }
      });
    }
  }
  return { k: outK, v: outV };
}

/** sqrt(Σ (got − want)²) / sqrt(Σ want²): the relative error the README reports. */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  return Math.sqrt(num / den);
}
