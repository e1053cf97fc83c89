/**
 * `@capibara/core/testing`: a real causal LM without downloading any weights, for an app's tests,
 * examples and demos. {@link makeTinyModel} writes a tiny, randomly initialised LLaMA-style decoder
 * in the Optimum / transformers.js ("onnx-community") layout that `OnnxCausalLM.load` and
 * `capibara serve --model` read: model.onnx with a KV cache, a byte-level BPE tokenizer.json and
 * the config files. {@link makeTinyHfModel} writes the same model in the Hugging Face layout
 * (safetensors). The weights are seeded noise, so the text is noise; the mechanics are real.
 * @packageDocumentation
 */

/** Shape of the tiny model; every field optional. */
export interface TinyModelOptions {
  /** Seed of the random weights (default 1): same options, byte-identical files. */
  seed?: number;
  /** Decoder layers (default 2). */
  layers?: number;
  /** Hidden size (default 64); a multiple of `heads`. */
  hidden?: number;
  /** Attention heads (default 4). */
  heads?: number;
  /** Key/value heads (default 2, grouped-query attention); divides `heads`. */
  kvHeads?: number;
  /** MLP intermediate size (default 128). */
  intermediate?: number;
  /** Whether model.onnx takes a position_ids input (default true), as most exports do. */
  positionIds?: boolean;
  /** max_position_embeddings in config.json (default 2048). */
  maxPositions?: number;
}

/** What {@link makeTinyModel} wrote. */
export interface TinyModel {
  /** The folder written. */
  dir: string;
  /** config.json's content. */
  config: Record<string, unknown>;
  /** The weights in Hugging Face names and layout (nn.Linear weights [out, in], row-major). */
  weights: Record<string, Float32Array>;
}

/**
 * Writes the tiny model into `dir` (created if missing).
 *
 * @example
 * ```ts
 * import { OnnxCausalLM } from '@capibara/core';
 * import { makeTinyModel } from '@capibara/core/testing';
 * const { dir } = await makeTinyModel('/tmp/tiny');
 * const model = await OnnxCausalLM.load(dir);
 * ```
 */
export function makeTinyModel(dir: string, options?: TinyModelOptions): Promise<TinyModel>;

/** Options of {@link makeTinyHfModel}: the model's shape as {@link TinyModelOptions}, and how it is stored. */
export interface TinyHfModelOptions extends Omit<TinyModelOptions, 'positionIds'> {
  /** Storage type of the weights (default 'float32'). */
  dtype?: 'float32' | 'float16' | 'bfloat16';
  /** Number of safetensors files (default 1); more adds model.safetensors.index.json. */
  shards?: number;
  /** config.json's model type (default 'llama'); qwen2 always has q/k/v biases. */
  architecture?: 'llama' | 'qwen2' | 'mistral';
  /** Adds q/k/v (and, for llama, o) projection biases (default false). */
  attentionBias?: boolean;
  /** Drops lm_head.weight, the embedding serving as lm_head (default false). */
  tieWordEmbeddings?: boolean;
  /** rope_theta in config.json (default 10000). */
  ropeTheta?: number;
  /** rope_scaling in config.json (default null). */
  ropeScaling?: Record<string, unknown> | null;
}

/**
 * Writes the model of {@link makeTinyModel} (same options, same weights) in the Hugging Face
 * layout into `dir`: config.json, model.safetensors (or `shards` files and
 * model.safetensors.index.json), the same tokenizer files and generation_config.json. The
 * returned weights are as stored (rounded to `dtype`), widened to float32.
 *
 * @example
 * ```ts
 * import { makeTinyHfModel } from '@capibara/core/testing';
 * const { dir, config } = await makeTinyHfModel('/tmp/tiny-hf', { dtype: 'bfloat16', shards: 2 });
 * ```
 */
export function makeTinyHfModel(dir: string, options?: TinyHfModelOptions): Promise<TinyModel>;
