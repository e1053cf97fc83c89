// Writes a tiny, randomly initialised LLaMA-style decoder in the Optimum / transformers.js
// ("onnx-community") layout: model.onnx with KV cache, a byte-level BPE tokenizer.json and the
// config files. Tests and examples get a real causal LM without downloading any weights.
// makeTinyHfModel writes the same weights in the Hugging Face layout (config.json, model.safetensors
// or shards with model.safetensors.index.json, fp32/fp16/bf16; the same tokenizer) for LlamaDecoder.
//   node scripts/make-tiny-model.mjs <outDir> [--seed N] [--layers N] [--hidden N] [--heads N]
//     [--kv-heads N] [--intermediate N] [--max-positions N] [--no-position-ids] [--hf]
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { buildModel } from './onnx-graph.mjs';

const ROPE_THETA = 10000;
const RMS_EPS = 1e-5;
const MAX_POSITIONS = 2048;
const DEFAULTS = { seed: 1, layers: 2, hidden: 64, heads: 4, kvHeads: 2, intermediate: 128, positionIds: true, maxPositions: MAX_POSITIONS };
const MERGES = 96; // new BPE tokens learnt from CORPUS
const SPECIALS = [
  { content: '<s>', special: true },
  { content: '</s>', special: true },
  { content: '<pad>', special: true },
  // Not special: they survive skip_special_tokens, as in reasoning models' tokenizers.
  { content: '<think>', special: false },
  { content: '</think>', special: false },
];
// Training text for the merges; any English works, it only has to repeat common pairs.
const CORPUS = `The capybara is the largest rodent in the world. It lives near rivers and lakes in
South America, where it eats grass and water plants. A capybara can stay under the water for a
few minutes, and it sleeps in the water to keep cool. They live in groups of ten or twenty, and
the group shares the work of watching for danger. When one of them sees a threat, it barks, and
the others run to the water. People like the capybara because it is calm and it seems to get on
with every other animal. Birds sit on its back, and monkeys and cats rest next to it.
Before we answer a question, we should think about what the question is asking. First we read
the question again, then we think about the parts of the answer, and then we write the answer in
a short and clear way. If the answer is wrong, we think again and we check each step. It is
better to think for a while and give the right answer than to answer at once and be wrong.
Thinking takes time, and the time we spend thinking is part of the work.
The model reads the text one token at a time. For each token it looks back at the tokens that
came before, and it uses them to predict the next token. This is how the model writes an
answer: it predicts a token, adds it to the text, and then it predicts the next one.`;

/**
 * Generates the model into `dir` (created if missing). Same options → byte-identical files.
 * @param {string} dir
 * @param {{ seed?: number, layers?: number, hidden?: number, heads?: number, kvHeads?: number,
 *   intermediate?: number, positionIds?: boolean, maxPositions?: number }} [options]
 * @returns {Promise<{ dir: string, config: object, weights: Record<string, Float32Array> }>}
 *   config is config.json's content; weights are in Hugging Face names and layout
 *   (nn.Linear weights [out, in], row-major).
 */
export async function makeTinyModel(dir, options = {}) {
  const o = checkOptions(options);
  const tok = buildTokenizer(o.maxPositions);
  const config = baseConfig(o, tok);
  const weights = makeWeights(config, o.seed);
  const model = buildLlamaGraph(config, weights, o.positionIds);
  await mkdir(dir, { recursive: true });
  await Promise.all([writeFile(join(dir, 'model.onnx'), model), writeCommonFiles(dir, config, tok)]);
  return { dir, config, weights };
}

function baseConfig(o, tok) {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: tok.vocabSize,
    hidden_size: o.hidden,
    intermediate_size: o.intermediate,
    num_hidden_layers: o.layers,
    num_attention_heads: o.heads,
    num_key_value_heads: o.kvHeads,
    head_dim: o.hidden / o.heads,
    hidden_act: 'silu',
    max_position_embeddings: o.maxPositions,
    rms_norm_eps: RMS_EPS,
    rope_theta: ROPE_THETA,
    rope_scaling: null,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: tok.ids['<s>'],
    eos_token_id: tok.ids['</s>'],
    pad_token_id: tok.ids['<pad>'],
    tie_word_embeddings: false,
    use_cache: true,
    torch_dtype: 'float32',
  };
}

const json = (v) => `${JSON.stringify(v, null, 2)}\n`;

// config.json, the tokenizer files and generation_config.json, shared by both layouts.
async function writeCommonFiles(dir, config, tok) {
  const generation = { bos_token_id: config.bos_token_id, eos_token_id: config.eos_token_id, pad_token_id: config.pad_token_id, do_sample: false };
  await Promise.all([
    writeFile(join(dir, 'tokenizer.json'), json(tok.tokenizer)),
    writeFile(join(dir, 'tokenizer_config.json'), json(tok.tokenizerConfig)),
    writeFile(join(dir, 'config.json'), json(config)),
    writeFile(join(dir, 'generation_config.json'), json(generation)),
  ]);
}

// ---- Hugging Face layout ----------------------------------------------------------------------

const HF_DEFAULTS = { dtype: 'float32', shards: 1, architecture: 'llama', attentionBias: false, tieWordEmbeddings: false, ropeTheta: ROPE_THETA, ropeScaling: null };
const ARCHITECTURES = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', mistral: 'MistralForCausalLM' };
const DTYPES = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/**
 * Writes the model of {@link makeTinyModel} (same options → same weights) in the Hugging Face
 * layout into `dir`: config.json, model.safetensors (or `shards` files and
 * model.safetensors.index.json), the same tokenizer files and generation_config.json. No
 * model.onnx, unless `dir` is the folder makeTinyModel wrote (both layouts can share one folder:
 * their config.json and tokenizer files are the same for the default options).
 * @param {string} dir
 * @param {{ seed?: number, layers?: number, hidden?: number, heads?: number, kvHeads?: number,
 *   intermediate?: number, maxPositions?: number, dtype?: 'float32' | 'float16' | 'bfloat16', shards?: number,
 *   architecture?: 'llama' | 'qwen2' | 'mistral', attentionBias?: boolean, tieWordEmbeddings?: boolean,
 *   ropeTheta?: number, ropeScaling?: object | null }} [options]
 *   attentionBias adds q/k/v (and, for llama, o) biases; qwen2 always has q/k/v biases.
 *   tieWordEmbeddings drops lm_head.weight (the embedding serves as lm_head).
 * @returns {Promise<{ dir: string, config: object, weights: Record<string, Float32Array> }>}
 *   weights as stored (rounded to dtype), widened to float32, in Hugging Face names.
 */
export async function makeTinyHfModel(dir, options = {}) {
  const { dtype, shards, architecture, attentionBias, tieWordEmbeddings, ropeTheta, ropeScaling, ...rest } = { ...HF_DEFAULTS, ...options };
  const o = checkOptions(rest);
  if (!DTYPES[dtype]) throw new RangeError(`Expected float32, float16 or bfloat16 for dtype but received ${dtype}`);
  if (!ARCHITECTURES[architecture]) throw new RangeError(`Expected llama, qwen2 or mistral for architecture but received ${architecture}`);
  if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`Expected positive integer for shards but received ${shards}`);
  const tok = buildTokenizer(o.maxPositions);
  const config = { ...baseConfig(o, tok), architectures: [ARCHITECTURES[architecture]], model_type: architecture };
  config.rope_theta = ropeTheta;
  config.rope_scaling = ropeScaling;
  config.tie_word_embeddings = tieWordEmbeddings;
  config.torch_dtype = dtype;
  if (architecture === 'llama') config.attention_bias = attentionBias;
  else {
    delete config.attention_bias;
    delete config.mlp_bias;
    config.sliding_window = null;
    if (architecture === 'qwen2') config.use_sliding_window = false;
  }
  const weights = makeWeights(config, o.seed);
  const biased = architecture === 'qwen2' || attentionBias;
  if (biased) {
    const normal = normalSource(o.seed + 7919); // its own stream: the other weights stay those of makeTinyModel
    const D = config.head_dim;
    for (let l = 0; l < config.num_hidden_layers; l++) {
      const p = `model.layers.${l}.self_attn`;
      weights[`${p}.q_proj.bias`] = normal(config.num_attention_heads * D, 0.1);
      weights[`${p}.k_proj.bias`] = normal(config.num_key_value_heads * D, 0.1);
      weights[`${p}.v_proj.bias`] = normal(config.num_key_value_heads * D, 0.1);
      if (architecture === 'llama') weights[`${p}.o_proj.bias`] = normal(config.hidden_size, 0.1);
    }
  }
  if (tieWordEmbeddings) delete weights['lm_head.weight'];
  const stored = {};
  const tensors = {};
  for (const [name, data] of Object.entries(weights)) {
    const bits = dtype === 'float16' ? toFloat16(data) : dtype === 'bfloat16' ? toBfloat16(data) : data;
    tensors[name] = { dtype: DTYPES[dtype], shape: shapeOf(config, name), data: bits };
    stored[name] = dtype === 'float16' ? fromFloat16(bits) : dtype === 'bfloat16' ? fromBfloat16(bits) : data;
  }
  await mkdir(dir, { recursive: true });
  const names = Object.keys(tensors);
  if (shards === 1) await writeFile(join(dir, 'model.safetensors'), encodeSafetensors(names.map((n) => [n, tensors[n]])));
  else {
    const per = Math.ceil(names.length / shards);
    const weightMap = {};
    let total = 0;
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = names.slice(s * per, (s + 1) * per);
      for (const n of part) {
        weightMap[n] = file;
        total += tensors[n].data.byteLength;
      }
      await writeFile(join(dir, file), encodeSafetensors(part.map((n) => [n, tensors[n]])));
    }
    await writeFile(join(dir, 'model.safetensors.index.json'), json({ metadata: { total_size: total }, weight_map: weightMap }));
  }
  await writeCommonFiles(dir, config, tok);
  return { dir, config, weights: stored };
}

/** A tensor's Hugging Face shape under config.json `c`: nn.Linear [out, in]; norms and biases [n]. */
export function shapeOf(c, name) {
  const H = c.hidden_size;
  const D = c.head_dim;
  if (name === 'model.embed_tokens.weight' || name === 'lm_head.weight') return [c.vocab_size, H];
  if (name.endsWith('layernorm.weight') || name === 'model.norm.weight') return [H];
  const kind = name.split('.').at(-2);
  const out = { q_proj: c.num_attention_heads * D, k_proj: c.num_key_value_heads * D, v_proj: c.num_key_value_heads * D, o_proj: H, gate_proj: c.intermediate_size, up_proj: c.intermediate_size, down_proj: H }[kind];
  const inp = { o_proj: c.num_attention_heads * D, down_proj: c.intermediate_size }[kind] ?? H;
  return name.endsWith('.bias') ? [out] : [out, inp];
}

/**
 * A safetensors file's bytes: 8-byte little-endian header length, the JSON header (padded with
 * spaces to 8 bytes), then each tensor's data in order.
 * @param {Array<[string, { dtype: string, shape: number[], data: ArrayBufferView }]>} entries
 * @returns {Buffer}
 */
export function encodeSafetensors(entries) {
  const header = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, t] of entries) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - ((Buffer.byteLength(text) + 8) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
  return Buffer.concat([len, Buffer.from(text), ...entries.map(([, t]) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

// float32 → IEEE half bits, round to nearest even (overflow → ±Infinity, underflow → subnormals / 0).
function toFloat16(src) {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i];
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 31) out[i] = sign | 0x7c00;
    else if (e <= 0) {
      if (e < -10) out[i] = sign;
      else {
        mant |= 0x800000;
        const shift = 14 - e;
        let h = mant >>> shift;
        const rem = mant & ((1 << shift) - 1);
        const halfway = 1 << (shift - 1);
        if (rem > halfway || (rem === halfway && (h & 1))) h++;
        out[i] = sign | h;
      }
    } else {
      let h = (e << 10) | (mant >>> 13);
      const rem = mant & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
      out[i] = sign | h;
    }
  }
  return out;
}

function fromFloat16(bits) {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const f = h & 0x3ff;
    out[i] = e === 0 ? s * 2 ** -14 * (f / 1024) : e === 31 ? (f ? NaN : s * Infinity) : s * 2 ** (e - 15) * (1 + f / 1024);
  }
  return out;
}

// float32 → bfloat16 bits, round to nearest even.
function toBfloat16(src) {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i];
    const x = u32[0];
    out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

function fromBfloat16(bits) {
  const out = new Float32Array(bits.length);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return out;
}

function checkOptions(options) {
  const o = { ...DEFAULTS, ...options };
  const positive = ['layers', 'hidden', 'heads', 'kvHeads', 'intermediate', 'maxPositions'];
  for (const k of positive) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new RangeError(`Expected positive integer for ${k} but received ${o[k]}`);
  }
  if (!Number.isInteger(o.seed)) throw new RangeError(`Expected integer for seed but received ${o.seed}`);
  if (typeof o.positionIds !== 'boolean') throw new TypeError(`Expected boolean for positionIds but received ${o.positionIds}`);
  if (o.hidden % o.heads !== 0 || (o.hidden / o.heads) % 2 !== 0) {
    throw new RangeError(`Expected hidden to be a multiple of 2 * heads (${2 * o.heads}) but received ${o.hidden}`);
  }
  if (o.heads % o.kvHeads !== 0) throw new RangeError(`Expected kvHeads to divide heads (${o.heads}) but received ${o.kvHeads}`);
  return o;
}

// ---- weights ------------------------------------------------------------------------------

// mulberry32 uniform in [0, 1) + Box–Muller: tiny, seedable, and identical on every platform.
function normalSource(seed) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (n, scale, offset = 0) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const r = Math.sqrt(-2 * Math.log(1 - uniform()));
      out[i] = offset + scale * r * Math.cos(2 * Math.PI * uniform());
    }
    return out;
  };
}

function makeWeights(c, seed) {
  const normal = normalSource(seed);
  const H = c.hidden_size;
  const I = c.intermediate_size;
  const D = c.head_dim;
  const w = {};
  // [out, in] like nn.Linear; 1/sqrt(fan_in) keeps activations O(1) through the layers.
  const linear = (name, out, inp) => (w[name] = normal(out * inp, 1 / Math.sqrt(inp)));
  w['model.embed_tokens.weight'] = normal(c.vocab_size * H, 1);
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    w[`${p}.input_layernorm.weight`] = normal(H, 0.05, 1);
    linear(`${p}.self_attn.q_proj.weight`, c.num_attention_heads * D, H);
    linear(`${p}.self_attn.k_proj.weight`, c.num_key_value_heads * D, H);
    linear(`${p}.self_attn.v_proj.weight`, c.num_key_value_heads * D, H);
    linear(`${p}.self_attn.o_proj.weight`, H, c.num_attention_heads * D);
    w[`${p}.post_attention_layernorm.weight`] = normal(H, 0.05, 1);
    linear(`${p}.mlp.gate_proj.weight`, I, H);
    linear(`${p}.mlp.up_proj.weight`, I, H);
    linear(`${p}.mlp.down_proj.weight`, H, I);
  }
  w['model.norm.weight'] = normal(H, 0.05, 1);
  linear('lm_head.weight', c.vocab_size, H);
  return w;
}

// ---- graph --------------------------------------------------------------------------------

function buildLlamaGraph(c, w, positionIds) {
  const { hidden_size: H, intermediate_size: I, num_attention_heads: NH, num_key_value_heads: KV, head_dim: D, vocab_size: V } = c;
  const L = c.num_hidden_layers;
  const rep = NH / KV;
  const nodes = [];
  const initializers = [];
  let count = 0;
  const node = (op, inputs, attrs, out) => {
    out ??= `${op}_${count++}`;
    nodes.push({ op, inputs, outputs: [out], attrs });
    return out;
  };
  const f32 = (name, dims, data) => (initializers.push({ name, type: 'float32', dims, data: Float32Array.from(data) }), name);
  const i64 = (name, dims, data) => (initializers.push({ name, type: 'int64', dims, data: BigInt64Array.from(data, BigInt) }), name);
  // MatMul wants [in, out]: the transpose of nn.Linear's [out, in], as torch.onnx exports it.
  const linear = (x, name, out, inp, result) => {
    const src = w[name];
    const t = new Float32Array(src.length);
    for (let r = 0; r < out; r++) for (let k = 0; k < inp; k++) t[k * out + r] = src[r * inp + k];
    f32(name, [inp, out], t);
    return node('MatMul', [x, name], undefined, result);
  };

  const eps = f32('rms_norm_eps', [], [RMS_EPS]);
  const rmsNorm = (x, name) => {
    f32(name, [H], w[name]);
    const ms = node('ReduceMean', [node('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    const inv = node('Reciprocal', [node('Sqrt', [node('Add', [ms, eps])])]);
    return node('Mul', [node('Mul', [x, inv]), name]);
  };
  const axes = (...a) => i64(`axes_${a.join('_').replace(/-/g, 'm')}`, [a.length], a);
  const ax0 = axes(0);
  const ax1 = axes(1);
  const axLast = axes(-1);
  const ax12 = axes(1, 2);
  const one = i64('one', [], [1]);
  const zero = i64('zero', [], [0]);

  // Lengths as scalars: past from the cache (0 on the first call), total from attention_mask.
  const scalarDim = (x, d) => node('Squeeze', [node('Shape', [x], { start: d, end: d + 1 }), ax0]);
  const pastLen = scalarDim('past_key_values.0.key', 2);
  const seqLen = scalarDim('input_ids', 1);
  const totalLen = scalarDim('attention_mask', 1);
  const qPos = node('Range', [pastLen, node('Add', [pastLen, seqLen]), one]); // [S] absolute positions
  const kPos = node('Range', [zero, totalLen, one]); // [T]

  // allowed[b, 1, i, j] = j <= past + i && attention_mask[b, j] == 1. Masked scores are replaced
  // (not offset) by float32's lowest value, so a fully masked row (a pad query) is uniform, not NaN.
  const causal = node('LessOrEqual', [node('Unsqueeze', [kPos, ax0]), node('Unsqueeze', [qPos, ax1])]);
  const keep = node('Unsqueeze', [node('Equal', ['attention_mask', one]), ax12]);
  const allowed = node('And', [causal, keep]);
  const lowest = f32('mask_lowest', [], [-3.4028234663852886e38]);

  // RoPE tables [B|1, 1, S, D]: HF's emb = cat(freqs, freqs) over the last axis.
  const invFreq = f32('rope_inv_freq', [D / 2], Array.from({ length: D / 2 }, (_, i) => 1 / ROPE_THETA ** ((2 * i) / D)));
  const pos = positionIds ? 'position_ids' : node('Unsqueeze', [qPos, ax0]);
  const freqs = node('Mul', [node('Unsqueeze', [node('Cast', [pos], { to: 1 }), axLast]), invFreq]);
  const emb = node('Concat', [freqs, freqs], { axis: -1 });
  const cos = node('Unsqueeze', [node('Cos', [emb]), ax1]);
  const sin = node('Unsqueeze', [node('Sin', [emb]), ax1]);
  const rope = (x) => {
    const halves = [`${x}_lo`, `${x}_hi`];
    nodes.push({ op: 'Split', inputs: [x], outputs: halves, attrs: { axis: -1 } });
    const rotated = node('Concat', [node('Neg', [halves[1]]), halves[0]], { axis: -1 });
    return node('Add', [node('Mul', [x, cos]), node('Mul', [rotated, sin])]);
  };
  const heads = (x, n) => node('Transpose', [node('Reshape', [x, i64(`shape_heads_${n}`, [4], [0, 0, n, D])])], { perm: [0, 2, 1, 3] });
  // repeat_kv: kv head g serves query heads g*rep .. g*rep+rep-1.
  const repeatKv = (x) =>
    rep === 1
      ? x
      : node('Reshape', [
          node('Expand', [node('Unsqueeze', [x, axes(2)]), i64('repeat_kv', [5], [1, 1, rep, 1, 1])]),
          i64('shape_repeated', [4], [0, NH, -1, D]),
        ]);
  const scale = f32('attn_scale', [], [1 / Math.sqrt(D)]);

  let x = node('Gather', ['model.embed_tokens.weight', 'input_ids'], { axis: 0 });
  f32('model.embed_tokens.weight', [V, H], w['model.embed_tokens.weight']);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    const h = rmsNorm(x, `${p}.input_layernorm.weight`);
    const q = rope(heads(linear(h, `${p}.self_attn.q_proj.weight`, NH * D, H), NH));
    const k = rope(heads(linear(h, `${p}.self_attn.k_proj.weight`, KV * D, H), KV));
    const v = heads(linear(h, `${p}.self_attn.v_proj.weight`, KV * D, H), KV);
    const keys = node('Concat', [`past_key_values.${l}.key`, k], { axis: 2 }, `present.${l}.key`);
    const values = node('Concat', [`past_key_values.${l}.value`, v], { axis: 2 }, `present.${l}.value`);
    const kT = node('Transpose', [repeatKv(keys)], { perm: [0, 1, 3, 2] });
    const scores = node('Mul', [node('MatMul', [q, kT]), scale]);
    const probs = node('Softmax', [node('Where', [allowed, scores, lowest])], { axis: -1 });
    const ctx = node('Transpose', [node('MatMul', [probs, repeatKv(values)])], { perm: [0, 2, 1, 3] });
    const merged = node('Reshape', [ctx, i64('shape_merge', [3], [0, 0, NH * D])]);
    x = node('Add', [x, linear(merged, `${p}.self_attn.o_proj.weight`, H, NH * D)]);
    const m = rmsNorm(x, `${p}.post_attention_layernorm.weight`);
    const gate = linear(m, `${p}.mlp.gate_proj.weight`, I, H);
    const silu = node('Mul', [gate, node('Sigmoid', [gate])]);
    const act = node('Mul', [silu, linear(m, `${p}.mlp.up_proj.weight`, I, H)]);
    x = node('Add', [x, linear(act, `${p}.mlp.down_proj.weight`, H, I)]);
  }
  linear(rmsNorm(x, 'model.norm.weight'), 'lm_head.weight', V, H, 'logits');

  // Shared constants are registered once per name.
  const unique = [...new Map(initializers.map((i) => [i.name, i])).values()];
  const kvShape = (past) => ['batch_size', KV, past, D];
  const inputs = [
    { name: 'input_ids', type: 'int64', shape: ['batch_size', 'sequence_length'] },
    { name: 'attention_mask', type: 'int64', shape: ['batch_size', 'total_sequence_length'] },
    ...(positionIds ? [{ name: 'position_ids', type: 'int64', shape: ['batch_size', 'sequence_length'] }] : []),
  ];
  const outputs = [{ name: 'logits', type: 'float32', shape: ['batch_size', 'sequence_length', V] }];
  for (let l = 0; l < L; l++) {
    for (const kind of ['key', 'value']) {
      inputs.push({ name: `past_key_values.${l}.${kind}`, type: 'float32', shape: kvShape('past_sequence_length') });
      outputs.push({ name: `present.${l}.${kind}`, type: 'float32', shape: kvShape('total_sequence_length') });
    }
  }
  return buildModel({ inputs, outputs, nodes, initializers: unique, opset: 17, name: 'tiny-llama', producer: '@capibara/core make-tiny-model' });
}

// ---- tokenizer ----------------------------------------------------------------------------

// GPT-2's byte ↔ printable-character map; token id b is byte b.
function bytesToUnicode() {
  const printable = [];
  for (let b = 0; b < 256; b++) if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) printable.push(b);
  const map = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) map[b] = String.fromCharCode(printable.includes(b) ? b : 256 + extra++);
  return map;
}

// GPT-2's split pattern, the one the ByteLevel pre-tokenizer applies with use_regex: true.
const SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

// Classic BPE training: repeatedly merge the most frequent adjacent pair (ties: smallest pair in
// code-unit order), so the merge list is exactly what the encoder will replay.
function trainMerges(text, byteChars, target) {
  const utf8 = new TextEncoder();
  const counts = new Map();
  for (const piece of text.match(SPLIT) ?? []) {
    const word = Array.from(utf8.encode(piece), (b) => byteChars[b]).join('');
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  const words = [...counts].map(([word, n]) => ({ symbols: [...word], n }));
  const merges = [];
  const added = [];
  const known = new Set(byteChars);
  while (added.length < target) {
    const pairs = new Map();
    for (const { symbols, n } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`; // byte chars never contain ' '
        pairs.set(key, (pairs.get(key) ?? 0) + n);
      }
    }
    let best = null;
    let bestN = 1;
    for (const [key, n] of pairs) if (n > bestN || (n === bestN && best !== null && key < best)) [best, bestN] = [key, n];
    if (best === null) throw new Error(`BPE corpus too small: ${added.length} of ${target} merges`);
    const [a, b] = best.split(' ');
    merges.push([a, b]);
    if (!known.has(a + b)) {
      known.add(a + b);
      added.push(a + b);
    }
    for (const word of words) {
      const s = word.symbols;
      const next = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) next.push(s[i++] + b);
        else next.push(s[i]);
      }
      word.symbols = next;
    }
  }
  return { merges, added };
}

function buildTokenizer(maxLength) {
  const byteChars = bytesToUnicode();
  const { merges, added } = trainMerges(CORPUS, byteChars, MERGES);
  const vocab = {};
  byteChars.forEach((ch, id) => (vocab[ch] = id));
  added.forEach((tok, i) => (vocab[tok] = 256 + i));
  const first = 256 + added.length;
  const ids = {};
  const addedTokens = SPECIALS.map((s, i) => {
    ids[s.content] = first + i;
    return { id: first + i, content: s.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: s.special };
  });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const bos = '<s>';
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: byteLevel,
    // Llama 3's arrangement: the template prepends <s>, which is what add_bos_token promises.
    post_processor: {
      type: 'Sequence',
      processors: [
        { ...byteLevel, trim_offsets: false },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: bos, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: bos, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [bos]: { id: bos, ids: [ids[bos]], tokens: [bos] } },
        },
      ],
    },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const tokenizerConfig = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: '<s>',
    eos_token: '</s>',
    pad_token: '<pad>',
    unk_token: null,
    // Byte-level decoding is exact; the default clean-up would turn " ." into ".".
    clean_up_tokenization_spaces: false,
    model_max_length: maxLength,
    tokenizer_class: 'PreTrainedTokenizerFast',
    added_tokens_decoder: Object.fromEntries(addedTokens.map(({ id, ...t }) => [String(id), t])),
  };
  return { tokenizer, tokenizerConfig, ids, vocabSize: first + SPECIALS.length };
}

// ---- CLI ----------------------------------------------------------------------------------

function parseArgs(argv) {
  const flags = {
    '--seed': 'seed', '--layers': 'layers', '--hidden': 'hidden', '--heads': 'heads', '--kv-heads': 'kvHeads', '--intermediate': 'intermediate',
    '--max-positions': 'maxPositions',
  };
  const options = {};
  let dir;
  let hf = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--no-position-ids') options.positionIds = false;
    else if (a === '--hf') hf = true;
    else if (flags[a]) {
      const v = argv[++i];
      if (v === undefined || !/^-?\d+$/.test(v)) throw new RangeError(`Expected integer after ${a} but received ${v}`);
      options[flags[a]] = Number(v);
    } else if (a.startsWith('-') || dir !== undefined) throw new RangeError(`Unexpected argument ${a}`);
    else dir = a;
  }
  if (dir === undefined) throw new RangeError('Expected an output directory');
  return { dir, options, hf };
}

// Proves the files load where they will be used: the tokenizer round-trips, ORT runs one step.
async function verify(dir, config) {
  const { readFile } = await import('node:fs/promises');
  const { Tokenizer } = await import('@huggingface/tokenizers');
  const ort = await import('onnxruntime-node');
  const read = async (f) => JSON.parse(await readFile(join(dir, f), 'utf8'));
  const tokenizer = new Tokenizer(await read('tokenizer.json'), await read('tokenizer_config.json'));
  const text = 'Think first, then answer. </think> Ünïcödé 🦫';
  const { ids } = tokenizer.encode(text, { add_special_tokens: false });
  if (tokenizer.decode(ids) !== text) throw new Error('tokenizer round trip failed');
  const session = await ort.InferenceSession.create(join(dir, 'model.onnx'));
  const n = ids.length;
  const feeds = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
  };
  if (session.inputNames.includes('position_ids')) feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(i)), [1, n]);
  for (let l = 0; l < config.num_hidden_layers; l++) {
    for (const kind of ['key', 'value']) {
      feeds[`past_key_values.${l}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [1, config.num_key_value_heads, 0, config.head_dim]);
    }
  }
  const out = await session.run(feeds);
  await session.release();
  if (!out.logits.data.every(Number.isFinite)) throw new Error('model produced non-finite logits');
  return { tokens: n, logits: out.logits.dims };
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    const { dir, options, hf } = parseArgs(process.argv.slice(2));
    const { config } = await makeTinyModel(dir, options);
    if (hf) await makeTinyHfModel(dir, options);
    const check = await verify(dir, config);
    console.log(
      `wrote ${dir}: ${config.num_hidden_layers} layers, hidden ${config.hidden_size}, heads ${config.num_attention_heads}/${config.num_key_value_heads}, ` +
        `vocab ${config.vocab_size}; checked: ${check.tokens} tokens round-trip, logits [${check.logits}]`,
    );
  } catch (err) {
    console.error(`make-tiny-model: ${err.message}`);
    process.exitCode = 1;
  }
}
