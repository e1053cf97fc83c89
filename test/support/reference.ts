/**
 * Float64 references for the gating kernels, written from the papers' definitions and kept
 * deliberately simple (no shared code with src/).
 */

export interface RefTopkOptions {
  k: number;
  scoring?: 'softmax' | 'sigmoid';
  bias?: ArrayLike<number>;
  renormalize?: boolean;
  routeScale?: number;
  groups?: { count: number; topkGroups: number; score?: 'top2-sum' | 'max' };
  expertRange?: [number, number];
}

export interface RefRow {
  weights: number[];
  indices: number[];
  /** Selection score of every expert (for near-tie checks). */
  select: number[];
}

export function refScores(row: ArrayLike<number>, scoring: 'softmax' | 'sigmoid'): number[] {
  const x = Array.from(row, Number);
  if (scoring === 'sigmoid') return x.map((v) => (v === -Infinity ? 0 : 1 / (1 + Math.exp(-v))));
  const m = Math.max(...x);
  if (m === -Infinity) return x.map(() => 0);
  const e = x.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** Sorts candidate ids by score descending, ties to the lower id. */
function best(ids: number[], score: (i: number) => number): number[] {
  return ids.slice().sort((a, b) => score(b) - score(a) || a - b);
}

export function refTopkRow(row: ArrayLike<number>, experts: number, o: RefTopkOptions): RefRow {
  const scoring = o.scoring ?? 'softmax';
  const s = refScores(row, scoring);
  const select = s.map((v, e) => (row[e] === -Infinity ? -Infinity : v + (o.bias ? Number(o.bias[e]) : 0)));
  let allowed = select.map((v) => v > -Infinity);
  if (o.groups && o.groups.count > 1) {
    const size = experts / o.groups.count;
    const gscore: number[] = [];
    for (let g = 0; g < o.groups.count; g++) {
      const members = select.slice(g * size, (g + 1) * size).filter((v) => v > -Infinity).sort((a, b) => b - a);
      if (members.length === 0) gscore.push(-Infinity);
      else if ((o.groups.score ?? 'top2-sum') === 'max' || members.length === 1) gscore.push(members[0]!);
      else gscore.push(members[0]! + members[1]!);
    }
    const ids = gscore.map((_, g) => g).filter((g) => gscore[g]! > -Infinity);
    const keep = new Set(best(ids, (g) => gscore[g]!).slice(0, o.groups.topkGroups));
    allowed = allowed.map((a, e) => a && keep.has(Math.floor(e / size)));
  }
  const candidates = select.map((_, e) => e).filter((e) => allowed[e]);
  const winners = best(candidates, (e) => select[e]!).slice(0, o.k);
  let w = winners.map((e) => s[e]!);
  const sum = w.reduce((a, b) => a + b, 0);
  if ((o.renormalize ?? true) && sum > 0) w = w.map((v) => v / sum);
  w = w.map((v) => v * (o.routeScale ?? 1));
  const [start, end] = o.expertRange ?? [0, experts];
  const indices = winners.map((e) => (e >= start && e < end ? e : experts));
  while (indices.length < o.k) {
    indices.push(-1);
    w.push(0);
  }
  return { weights: w, indices, select };
}

export interface RefPlan {
  loads: number[];
  counts: number[];
  kept: Set<number>;
  dropped: number[];
}

export function refDispatch(
  indices: ArrayLike<number>,
  k: number,
  experts: number,
  capacity: number | null,
  policy: 'position' | 'probability',
  weights?: ArrayLike<number>,
): RefPlan {
  const slots = indices.length;
  const tokens = slots / k;
  const loads = new Array<number>(experts).fill(0);
  const routed: number[] = [];
  for (let s = 0; s < slots; s++) {
    const e = indices[s]!;
    if (e >= 0 && e < experts) {
      loads[e]!++;
      routed.push(s);
    }
  }
  const kept = new Set<number>();
  const counts = new Array<number>(experts).fill(0);
  let order: number[];
  if (capacity === null) order = routed;
  else if (policy === 'position') {
    const isRouted = new Set(routed);
    order = [];
    for (let j = 0; j < k; j++) for (let t = 0; t < tokens; t++) if (isRouted.has(t * k + j)) order.push(t * k + j);
  } else {
    order = routed.slice().sort((a, b) => weights![b]! - weights![a]! || a - b);
  }
  const dropped: number[] = [];
  for (const s of order) {
    const e = indices[s]!;
    if (capacity === null || counts[e]! < capacity) {
      counts[e]!++;
      kept.add(s);
    } else dropped.push(s);
  }
  dropped.sort((a, b) => a - b);
  return { loads, counts, kept, dropped };
}

export interface RefStats {
  loadFraction: number[];
  meanProb: number[];
  loads: number[];
  auxLoss: number;
  zLoss: number;
  maxVio: number;
  cv2: number;
  entropy: number;
}

export function refStats(
  logits: Float32Array,
  indices: Int32Array,
  experts: number,
  k: number,
  scoring: 'softmax' | 'sigmoid',
): RefStats {
  const tokens = logits.length / experts;
  const meanProb = new Array<number>(experts).fill(0);
  let z = 0;
  let h = 0;
  let counted = 0;
  for (let t = 0; t < tokens; t++) {
    const row = Array.from(logits.subarray(t * experts, (t + 1) * experts));
    if (row.every((v) => v === -Infinity)) continue;
    counted++;
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
    z += lse * lse;
    const raw = refScores(row, scoring);
    const norm = raw.reduce((a, b) => a + b, 0);
    const p = raw.map((v) => v / norm);
    p.forEach((v, e) => {
      meanProb[e]! += v;
      if (v > 0) h -= v * Math.log(v);
    });
  }
  const loads = new Array<number>(experts).fill(0);
  for (const e of indices) if (e >= 0 && e < experts) loads[e]!++;
  const slots = tokens * k;
  const loadFraction = loads.map((l) => l / slots);
  const mp = meanProb.map((v) => v / counted);
  const aux = experts * loadFraction.reduce((a, f, e) => a + f * mp[e]!, 0);
  const mean = loads.reduce((a, b) => a + b, 0) / experts;
  const variance = loads.reduce((a, l) => a + (l - mean) ** 2, 0) / experts;
  return {
    loadFraction,
    meanProb: mp,
    loads,
    auxLoss: aux,
    zLoss: z / counted,
    maxVio: (Math.max(...loads) - mean) / mean,
    cv2: variance / mean ** 2,
    entropy: h / counted,
  };
}
