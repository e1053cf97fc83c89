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
