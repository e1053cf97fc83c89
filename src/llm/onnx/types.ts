/**
 * Public types of {@link OnnxCausalLM}: load options, the model's shape, and its results.
 * @module
 */
import type { GenerateResult } from '../generator';

/**
 * Options of {@link OnnxCausalLM.load}.
 *
 * @example
 * ```ts
 * const opts: OnnxCausalLMOptions = { executionProviders: ['cuda', 'cpu'], threads: 4 };
 * ```
 */
export interface OnnxCausalLMOptions {
  /**
   * ONNX Runtime execution providers in order of preference, such as `['cuda', 'cpu']`.
   * Default `['cpu']`. When the session cannot be created with them (the CUDA provider is
   * not installed: this package sets `onnxruntime-node-install=skip`, so CUDA needs
   * onnxruntime-node installed with its CUDA binaries), a warning is emitted and the model
   * runs on the CPU; {@link OnnxCausalLM.executionProviders} tells which ran.
   */
  executionProviders?: string[];
  /** Intra-op threads of the session, an integer in [1, 256]. Default: ONNX Runtime's (one per core). */
  threads?: number;
  /**
   * The ONNX file, relative to the folder, such as `'onnx/model_q4.onnx'`. Default: the
   * first of `model.onnx` and `onnx/model.onnx` that exists.
   */
  modelFile?: string;
}

/**
 * Result of {@link OnnxCausalLM.generate}: the {@link GenerateResult} plus what the call cost.
 *
 * @example
 * ```ts
 * const r = await model.generate(prompt, { maxTokens: 64 });
 * console.log(`${r.cachedTokens}/${r.promptTokens} prompt tokens from the cache; ` +
 *   `${(r.tokens / (r.decodeMs / 1000)).toFixed(0)} tokens/s decoding`);
 * ```
 */
export interface OnnxGenerateResult extends GenerateResult {
  /** Ids of the generated tokens (always present for this backend), the end-of-sequence token included when generated. */
  tokenIds: number[];
  /** Length of the prompt in tokens (after the tokenizer added its special tokens, such as BOS). */
  promptTokens: number;
  /**
   * The prompt's token ids as run. `[...promptTokenIds, ...tokenIds, ...more]` continues this
   * call exactly, from the cache; a text continuation is re-tokenized and may split differently.
   */
  promptTokenIds: number[];
  /** Prompt tokens whose keys and values came from the KV cache of earlier calls, so were not run. */
  cachedTokens: number;
  /** Wall time of the model runs over the prompt (the prefill), in milliseconds. */
  prefillMs: number;
  /** Wall time of the one-token model runs and sampling after the prefill, in milliseconds. */
  decodeMs: number;
}

/**
 * Options of {@link OnnxCausalLM.logits}.
 *
 * @example
 * ```ts
 * const full = await model.logits(ids, { reuseCache: false }); // recompute every position
 * ```
 */
export interface LogitsOptions {
  /**
   * Reuse the KV cache for the longest prefix of `tokenIds` it holds, running only the
   * rest (default `true`). `false` runs every token from an empty cache (the result still
   * becomes the cache).
   */
  reuseCache?: boolean;
}

/** The model's shape, read from the ONNX graph and `config.json`. */
export interface OnnxCausalLMInfo {
  /** Number of logits per position. */
  vocabSize: number;
  /** Decoder layers (pairs of past key/value inputs). */
  layers: number;
  /** Tokens the model may see at once (`max_position_embeddings`); generation stops with `'length'` there. */
  contextLength: number;
  /** Ids that end generation (`eos_token_id` of generation_config.json, else of config.json). */
  eosTokenIds: number[];
  /** Whether the graph takes `position_ids`. */
  positionIds: boolean;
}
