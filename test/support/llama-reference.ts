/**
 * Float64 forward pass of a Llama-family model (Llama, Qwen2, Mistral) over Hugging Face weights,
 * written from the transformers modeling code with plain loops and no ONNX: q/k/v biases
 * (Qwen2, or Llama's attention_bias with an o bias), tied lm_head, RoPE with rope_theta and
 * Llama 3 / linear rope_scaling, GQA — and DuoAttention's Λ mask on chosen KV heads (a streaming
 * head's query at position i sees key j when j <= i and (j < sink or j > i - recent)).
 * One sequence, no cache, positions 0..n-1.
 */

export interface ReferenceModel {
  /** config.json's content. */
  config: Record<string, unknown>;
  /** Hugging Face names; nn.Linear weights are [out, in], row-major. */
  weights: Record<string, Float32Array>;
}

export interface ReferenceOptions {
  /** Whether KV head `head` of `layer` is a streaming head; default none. */
  streaming?: (layer: number, head: number) => boolean;
  sink?: number;
  recent?: number;
}

export interface ReferenceResult {
  /** Logits per position. */
  logits: Float64Array[];
  /** Per layer: q [n, queryHeads*D], k and v [n, kvHeads*D] after RoPE, row-major. */
  captures: Array<{ q: Float64Array; k: Float64Array; v: Float64Array }>;
}

type Vec = Float64Array;

/** inv_freq as transformers' rope init functions define it. */
export function referenceInvFreq(config: Record<string, unknown>, d: number): Float64Array {
  const theta = (config['rope_theta'] as number | undefined) ?? 10000;
  const inv = Float64Array.from({ length: d / 2 }, (_, i) => 1 / theta ** ((2 * i) / d));
  const s = config['rope_scaling'] as Record<string, number | string> | null | undefined;
  if (!s) return inv;
  const type = s['rope_type'] ?? s['type'];
  if (type === 'linear') return inv.map((f) => f / (s['factor'] as number));
  if (type !== 'llama3') return inv;
  const factor = s['factor'] as number;
  const low = s['low_freq_factor'] as number;
  const high = s['high_freq_factor'] as number;
  const old = s['original_max_position_embeddings'] as number;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < old / high) return f;
    if (wavelen > old / low) return f / factor;
    const smooth = (old / wavelen - low) / (high - low);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

function rmsNorm(x: Vec, w: Float32Array, eps: number): Vec {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]!);
}

function linear(w: Float32Array, x: Vec, out: number, bias?: Float32Array): Vec {
  const inp = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = bias ? bias[o]! : 0;
    for (let i = 0; i < inp; i++) s += w[o * inp + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

export function llamaReference(model: ReferenceModel, ids: readonly number[], options: ReferenceOptions = {}): ReferenceResult {
  const c = model.config as Record<string, number & boolean & string>;
  const w = (name: string): Float32Array => {
    const t = model.weights[name];
    if (!t) throw new Error(`missing weight ${name}`);
    return t;
  };
  const opt = (name: string): Float32Array | undefined => model.weights[name];
  const H = c['hidden_size'];
  const NH = c['num_attention_heads'];
  const KV = c['num_key_value_heads'] ?? NH;
  const D = c['head_dim'] ?? H / NH;
  const eps = c['rms_norm_eps'];
  const group = NH / KV;
  const n = ids.length;
  const inv = referenceInvFreq(c, D);
  const rope = (x: Vec, off: number, pos: number) => {
    for (let i = 0; i < D / 2; i++) {
      const a = pos * inv[i]!;
      const cs = Math.cos(a);
      const sn = Math.sin(a);
      const x1 = x[off + i]!;
      const x2 = x[off + i + D / 2]!;
      x[off + i] = x1 * cs - x2 * sn;
      x[off + i + D / 2] = x2 * cs + x1 * sn;
    }
  };
  const sink = options.sink ?? 0;
  const recent = options.recent ?? 1;
  const emb = w('model.embed_tokens.weight');
  let xs: Vec[] = ids.map((id) => Float64Array.from(emb.subarray(id * H, (id + 1) * H)));
  const captures: ReferenceResult['captures'] = [];
  for (let l = 0; l < c['num_hidden_layers']; l++) {
    const p = `model.layers.${l}`;
    const a = `${p}.self_attn`;
    const qs: Vec[] = [];
    const ks: Vec[] = [];
    const vs: Vec[] = [];
    for (let t = 0; t < n; t++) {
      const h = rmsNorm(xs[t]!, w(`${p}.input_layernorm.weight`), eps);
      const q = linear(w(`${a}.q_proj.weight`), h, NH * D, opt(`${a}.q_proj.bias`));
      const k = linear(w(`${a}.k_proj.weight`), h, KV * D, opt(`${a}.k_proj.bias`));
      for (let hd = 0; hd < NH; hd++) rope(q, hd * D, t);
      for (let g = 0; g < KV; g++) rope(k, g * D, t);
      qs.push(q);
      ks.push(k);
      vs.push(linear(w(`${a}.v_proj.weight`), h, KV * D, opt(`${a}.v_proj.bias`)));
    }
    const flat = (rows: Vec[], width: number) => {
      const out = new Float64Array(n * width);
      rows.forEach((r, t) => out.set(r, t * width));
      return out;
    };
    captures.push({ q: flat(qs, NH * D), k: flat(ks, KV * D), v: flat(vs, KV * D) });
    xs = xs.map((x, t) => {
      const ctx = new Float64Array(NH * D);
      for (let hd = 0; hd < NH; hd++) {
        const g = Math.floor(hd / group);
        const streaming = options.streaming?.(l, g) ?? false;
        const seen: number[] = [];
        for (let j = 0; j <= t; j++) if (!streaming || j < sink || j > t - recent) seen.push(j);
        const scores = seen.map((j) => {
          let s = 0;
          for (let d = 0; d < D; d++) s += qs[t]![hd * D + d]! * ks[j]![g * D + d]!;
          return s / Math.sqrt(D);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((x1, x2) => x1 + x2, 0);
        seen.forEach((j, i) => {
          for (let d = 0; d < D; d++) ctx[hd * D + d] = ctx[hd * D + d]! + (e[i]! / z) * vs[j]![g * D + d]!;
        });
      }
      const attn = linear(w(`${a}.o_proj.weight`), ctx, H, opt(`${a}.o_proj.bias`));
      const r = x.map((v, i) => v + attn[i]!);
      const m = rmsNorm(r, w(`${p}.post_attention_layernorm.weight`), eps);
      const I = c['intermediate_size'];
      const gate = linear(w(`${p}.mlp.gate_proj.weight`), m, I);
      const up = linear(w(`${p}.mlp.up_proj.weight`), m, I);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
      const down = linear(w(`${p}.mlp.down_proj.weight`), act, H);
      return r.map((v, i) => v + down[i]!);
    });
  }
  const head = c['tie_word_embeddings'] ? emb : w('lm_head.weight');
  const logits = xs.map((x) => linear(head, rmsNorm(x, w('model.norm.weight'), eps), c['vocab_size']));
  return { logits, captures };
}
