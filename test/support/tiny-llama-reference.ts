/**
 * Float64 LLaMA forward pass over the weights from scripts/make-tiny-model.mjs, written from
 * the transformers modeling code's math with plain loops and no ONNX: one sequence, no cache,
 * no padding, positions 0..n-1.
 */

export interface TinyLlamaConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  rms_norm_eps: number;
  rope_theta: number;
}

export interface TinyLlama {
  config: TinyLlamaConfig;
  /** Hugging Face names; nn.Linear weights are [out, in], row-major. */
  weights: Record<string, Float32Array>;
}

type Vec = Float64Array;

function rmsNorm(x: Vec, w: Float32Array, eps: number): Vec {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]!);
}

/** y = W x with W stored [out, in]. */
function linear(w: Float32Array, x: Vec, out: number): Vec {
  const inp = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < inp; i++) s += w[o * inp + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

/** HF rotate_half RoPE on one head vector, in place: pairs (i, i + D/2). */
function rope(x: Vec, off: number, d: number, pos: number, theta: number): void {
  const half = d / 2;
  for (let i = 0; i < half; i++) {
    const angle = pos / theta ** ((2 * i) / d);
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    const a = x[off + i]!;
    const b = x[off + i + half]!;
    x[off + i] = a * c - b * s;
    x[off + i + half] = b * c + a * s;
  }
}

/** Logits (length vocab_size) for every position of `ids`. */
export function referenceLogits(model: TinyLlama, ids: number[]): Float64Array[] {
  const c = model.config;
  const w = (name: string): Float32Array => {
    const t = model.weights[name];
    if (!t) throw new Error(`missing weight ${name}`);
    return t;
  };
  const H = c.hidden_size;
  const D = c.head_dim;
  const NH = c.num_attention_heads;
  const KV = c.num_key_value_heads;
  const group = NH / KV;
  const n = ids.length;
  const emb = w('model.embed_tokens.weight');
  let xs: Vec[] = ids.map((id) => Float64Array.from(emb.subarray(id * H, (id + 1) * H)));

  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    const qs: Vec[] = [];
    const ks: Vec[] = [];
    const vs: Vec[] = [];
    for (let t = 0; t < n; t++) {
      const h = rmsNorm(xs[t]!, w(`${p}.input_layernorm.weight`), c.rms_norm_eps);
      const q = linear(w(`${p}.self_attn.q_proj.weight`), h, NH * D);
      const k = linear(w(`${p}.self_attn.k_proj.weight`), h, KV * D);
      for (let hd = 0; hd < NH; hd++) rope(q, hd * D, D, t, c.rope_theta);
      for (let g = 0; g < KV; g++) rope(k, g * D, D, t, c.rope_theta);
      qs.push(q);
      ks.push(k);
      vs.push(linear(w(`${p}.self_attn.v_proj.weight`), h, KV * D));
    }
    xs = xs.map((x, t) => {
      const ctx = new Float64Array(NH * D);
      for (let hd = 0; hd < NH; hd++) {
        const g = Math.floor(hd / group); // the kv head this query head shares
        const scores = new Float64Array(t + 1);
        for (let j = 0; j <= t; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += qs[t]![hd * D + d]! * ks[j]![g * D + d]!;
          scores[j] = s / Math.sqrt(D);
        }
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= t; j++) {
          for (let d = 0; d < D; d++) ctx[hd * D + d] = ctx[hd * D + d]! + (e[j]! / z) * vs[j]![g * D + d]!;
        }
      }
      const attn = linear(w(`${p}.self_attn.o_proj.weight`), ctx, H);
      const r = x.map((v, i) => v + attn[i]!);
      const m = rmsNorm(r, w(`${p}.post_attention_layernorm.weight`), c.rms_norm_eps);
      const gate = linear(w(`${p}.mlp.gate_proj.weight`), m, c.intermediate_size);
      const up = linear(w(`${p}.mlp.up_proj.weight`), m, c.intermediate_size);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
      const down = linear(w(`${p}.mlp.down_proj.weight`), act, H);
      return r.map((v, i) => v + down[i]!);
    });
  }
  return xs.map((x) => linear(w('lm_head.weight'), rmsNorm(x, w('model.norm.weight'), c.rms_norm_eps), c.vocab_size));
}
