/**
 * A Hugging Face `config.json` of the Llama family (Llama 2/3, Qwen2/2.5, Mistral without a
 * sliding window), read into the shapes the decoder builds: layers, heads, GQA, RoPE (with
 * `rope_theta` and Llama 3's `rope_scaling`), biases and a tied or untied `lm_head`.
 * @module
 */

/** The architectures the decoder runs, by `architectures[0]` (else `model_type`). */
const ARCHITECTURES: Record<string, LlamaFamily> = {
  LlamaForCausalLM: 'llama', Qwen2ForCausalLM: 'qwen2', MistralForCausalLM: 'mistral',
  llama: 'llama', qwen2: 'qwen2', mistral: 'mistral',
};

/**
 * The model families {@link LlamaDecoder} runs.
 *
 * @example
 * ```ts
 * const family: LlamaFamily = 'qwen2';
 * ```
 */
export type LlamaFamily = 'llama' | 'qwen2' | 'mistral';

/**
 * No RoPE scaling.
 *
 * @example
 * ```ts
 * const none: NoRopeScaling = { type: 'none' };
 * ```
 */
export interface NoRopeScaling {
  /** `'none'`. */
  type: 'none';
}

/**
 * Linear RoPE scaling: positions divided by `factor` (inverse frequencies divided by it).
 *
 * @example
 * ```ts
 * const linear: LinearRopeScaling = { type: 'linear', factor: 4 };
 * ```
 */
export interface LinearRopeScaling {
  /** `'linear'`. */
  type: 'linear';
  /** The divisor. */
  factor: number;
}

/**
 * Llama 3's RoPE scaling: wavelengths above `originalMaxPositions / lowFreqFactor` divided by
 * `factor`, below `originalMaxPositions / highFreqFactor` kept, a smooth blend between.
 *
 * @example
 * ```ts
 * const llama3: Llama3RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };
 * ```
 */
export interface Llama3RopeScaling {
  /** `'llama3'`. */
  type: 'llama3';
  /** `factor`. */
  factor: number;
  /** `low_freq_factor`. */
  lowFreqFactor: number;
  /** `high_freq_factor`. */
  highFreqFactor: number;
  /** `original_max_position_embeddings`. */
  originalMaxPositions: number;
}

/**
 * RoPE frequency scaling from `rope_scaling`.
 *
 * @example
 * ```ts
 * const scaling: RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };
 * ```
 */
export type RopeScaling = NoRopeScaling | LinearRopeScaling | Llama3RopeScaling;

/**
 * RoPE settings of a model.
 *
 * @example
 * ```ts
 * const rope: RopeConfig = { theta: 500000, scaling: { type: 'none' } };
 * ```
 */
export interface RopeConfig {
  /** `rope_theta` (default 10000). */
  theta: number;
  /** `rope_scaling`. */
  scaling: RopeScaling;
}

/**
 * A Llama-family model's shape, read from `config.json` ({@link LlamaDecoder.config}).
 *
 * @example
 * ```ts
 * console.log(decoder.config.layers, decoder.config.kvHeads, decoder.config.rope.theta);
 * ```
 */
export interface LlamaConfig {
  /** Which family `architectures` names. */
  family: LlamaFamily;
  /** Tokens of the vocabulary (rows of the embedding). */
  vocabSize: number;
  /** Width of the residual stream (`hidden_size`). */
  hidden: number;
  /** Width of the MLP (`intermediate_size`). */
  intermediate: number;
  /** Decoder layers (`num_hidden_layers`). */
  layers: number;
  /** Query heads (`num_attention_heads`). */
  queryHeads: number;
  /** Key/value heads (`num_key_value_heads`, else `num_attention_heads`). */
  kvHeads: number;
  /** Elements per head (`head_dim`, else `hidden_size / num_attention_heads`). */
  headDim: number;
  /** RMSNorm epsilon (`rms_norm_eps`). */
  rmsNormEps: number;
  /** RoPE base (`rope_theta`, default 10000) and scaling (`rope_scaling`). */
  rope: RopeConfig;
  /** Bias on the q, k, v projections (Qwen2 always; Llama with `attention_bias`). */
  qkvBias: boolean;
  /** Bias on the output projection (Llama with `attention_bias`). */
  oBias: boolean;
  /** Bias on the MLP projections (Llama with `mlp_bias`). */
  mlpBias: boolean;
  /** `lm_head` shares the embedding matrix (`tie_word_embeddings`). */
  tiedEmbeddings: boolean;
  /** Positions the model was trained for (`max_position_embeddings`). */
  maxPositions: number;
  /** End-of-sequence ids of config.json (`eos_token_id`). */
  eosTokenIds: number[];
}

/** A config.json error: the file and the key named. */
function bad(path: string, key: string, expected: string, value: unknown): RangeError {
  return new RangeError(`${path}: expected ${expected} for ${key} but received ${JSON.stringify(value) ?? String(value)}`);
}

function positiveInt(path: string, c: Record<string, unknown>, key: string, fallback?: number): number {
  const x = c[key] ?? fallback;
  if (!Number.isInteger(x) || (x as number) < 1) throw bad(path, key, 'a positive integer', c[key]);
  return x as number;
}

function positive(path: string, c: Record<string, unknown>, key: string, fallback?: number): number {
  const x = c[key] ?? fallback;
  if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) throw bad(path, key, 'a positive number', c[key]);
  return x;
}

function flag(path: string, c: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const x = c[key] ?? fallback;
  if (typeof x !== 'boolean') throw bad(path, key, 'true or false', c[key]);
  return x;
}

function ropeScaling(path: string, raw: unknown): RopeScaling {
  if (raw === undefined || raw === null) return { type: 'none' };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad(path, 'rope_scaling', 'null or an object', raw);
  const r = raw as Record<string, unknown>;
  const type = r['rope_type'] ?? r['type'];
  const at = (k: string) => `rope_scaling.${k}`;
  const num = (k: string, fallback?: number) => {
    const x = r[k] ?? fallback;
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) throw bad(path, at(k), 'a positive number', r[k]);
    return x;
  };
  switch (type) {
    case 'default':
      return { type: 'none' };
    case 'linear':
      return { type: 'linear', factor: num('factor') };
    case 'llama3': {
      const s = {
        type: 'llama3' as const, factor: num('factor'), lowFreqFactor: num('low_freq_factor'), highFreqFactor: num('high_freq_factor'),
        originalMaxPositions: num('original_max_position_embeddings'),
      };
      if (s.highFreqFactor <= s.lowFreqFactor) throw bad(path, at('high_freq_factor'), `a number above low_freq_factor (${s.lowFreqFactor})`, s.highFreqFactor);
      return s;
    }
    default:
      throw bad(path, 'rope_scaling.rope_type', "'default', 'linear' or 'llama3' (dynamic, yarn and longrope are not supported)", type);
  }
}

/**
 * Reads a parsed `config.json` (`path` names it in errors).
 *
 * @param json The parsed file.
 * @param path The file, for messages.
 * @returns The model's shape.
 * @throws RangeError naming the file and the key: an unsupported architecture, a sliding
 * window, an activation other than SiLU, a missing or malformed field.
 * @internal
 * @example
 * ```ts
 * const config = parseLlamaConfig(JSON.parse(readFileSync(file, 'utf8')), file);
 * ```
 */
export function parseLlamaConfig(json: unknown, path: string): LlamaConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new RangeError(`${path}: expected a JSON object`);
  const c = json as Record<string, unknown>;
  const archs = c['architectures'];
  const name = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : c['model_type'];
  const family = typeof name === 'string' ? ARCHITECTURES[name] : undefined;
  if (family === undefined) {
    throw new RangeError(
      `${path}: architecture ${JSON.stringify(name) ?? 'undefined'} is not supported; expected LlamaForCausalLM, Qwen2ForCausalLM or MistralForCausalLM (architectures[0] or model_type)`,
    );
  }
  const act = c['hidden_act'] ?? 'silu';
  if (act !== 'silu') throw bad(path, 'hidden_act', "'silu'", act);
  const window = c['sliding_window'];
  const slides = family === 'qwen2' ? c['use_sliding_window'] === true : window !== undefined && window !== null;
  const maxPositions = positiveInt(path, c, 'max_position_embeddings');
  if (slides && !(typeof window === 'number' && window >= maxPositions)) {
    throw bad(path, 'sliding_window', `null (a sliding window is not supported; or at least max_position_embeddings, ${maxPositions})`, window);
  }
  const hidden = positiveInt(path, c, 'hidden_size');
  const queryHeads = positiveInt(path, c, 'num_attention_heads');
  const kvHeads = positiveInt(path, c, 'num_key_value_heads', queryHeads);
  if (queryHeads % kvHeads !== 0) throw bad(path, 'num_key_value_heads', `a divisor of num_attention_heads (${queryHeads})`, kvHeads);
  const headDim = c['head_dim'] === undefined || c['head_dim'] === null ? hidden / queryHeads : positiveInt(path, c, 'head_dim');
  if (!Number.isInteger(headDim) || headDim % 2 !== 0 || headDim > 256) {
    throw bad(path, 'head_dim', 'an even integer of at most 256 (or hidden_size divisible by num_attention_heads)', c['head_dim'] ?? headDim);
  }
  const attentionBias = flag(path, c, 'attention_bias', false);
  const eos = c['eos_token_id'];
  const eosList = (Array.isArray(eos) ? eos : eos === undefined || eos === null ? [] : [eos]).filter((x): x is number => Number.isInteger(x) && x >= 0);
  return {
    family,
    vocabSize: positiveInt(path, c, 'vocab_size'),
    hidden,
    intermediate: positiveInt(path, c, 'intermediate_size'),
    layers: positiveInt(path, c, 'num_hidden_layers'),
    queryHeads,
    kvHeads,
    headDim,
    rmsNormEps: positive(path, c, 'rms_norm_eps', 1e-6),
    rope: { theta: positive(path, c, 'rope_theta', 10000), scaling: ropeScaling(path, c['rope_scaling']) },
    qkvBias: family === 'qwen2' || attentionBias,
    oBias: family === 'llama' && attentionBias,
    mlpBias: family === 'llama' && flag(path, c, 'mlp_bias', false),
    tiedEmbeddings: flag(path, c, 'tie_word_embeddings', false),
    maxPositions,
    eosTokenIds: eosList,
  };
}
