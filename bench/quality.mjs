// Next-token quality of a decoder against a reference run of the same model: top-1 agreement
// and mean KL divergence over rows of logits (bench/decoder*.bench.mjs).

/** The first `n` ids of `ids` repeated. */
export function repeatTo(ids, n) {
  const out = [];
  while (out.length < n) out.push(...ids.slice(0, n - out.length));
  return out;
}

/** `text` encoded by `model`, repeated to `n` ids. */
export const tokens = (model, text, n) => repeatTo(model.encode(text), n);

/** Top-1 agreement and mean KL(p ‖ q) in float64 over rows of logits (`full` is p). */
export function agreement(full, duo, V) {
  const rows = full.length / V;
  let same = 0;
  let kl = 0;
  for (let r = 0; r < rows; r++) {
    const p = full.subarray(r * V, (r + 1) * V);
    const q = duo.subarray(r * V, (r + 1) * V);
    const lse = (x) => {
      let m = -Infinity;
      for (const v of x) m = Math.max(m, v);
      let s = 0;
      for (const v of x) s += Math.exp(v - m);
      return m + Math.log(s);
    };
    const lp = lse(p);
    const lq = lse(q);
    let sum = 0;
    let ap = 0;
    let aq = 0;
    for (let i = 0; i < V; i++) {
      sum += Math.exp(p[i] - lp) * (p[i] - lp - (q[i] - lq));
      if (p[i] > p[ap]) ap = i;
      if (q[i] > q[aq]) aq = i;
    }
    kl += sum;
    if (ap === aq) same++;
  }
  return { top1: same / rows, kl: kl / rows };
}

