/**
 * DuoAttention head patterns: per KV head, a score (higher = more retrieval-like, e.g.
 * DuoAttention's learned gate α or a calibration score) and the split it induces — retrieval
 * heads keep the full KV cache, streaming heads keep `sink` first + `recent` last tokens.
 * @module
 */
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import * as v from '../validate';
import type { DuoKVCache, DuoKVCacheOptions } from './kv-cache';
import {
  CONFIG_NAME,
  type ModelConfig,
  TSV_NAME,
  checkModelShape,
  formatFullAttentionHeads,
  formatPythonJson,
  parseFullAttentionHeads,
  parseJson,
  readFileOrIn,
  readModelConfig,
} from './head-pattern-file';

export type { ModelConfig } from './head-pattern-file';

/**
 * Per-head scores, row-major `[layers, kvHeads]`, all finite.
 *
 * @example
 * ```ts
 * const scores: HeadScores = new Float64Array([0.9, 0.1, 0.4, 0.7]); // 2 layers × 2 KV heads
 * ```
 */
export type HeadScores = Float64Array | Float32Array | readonly number[];

/**
 * KV cache element types and their sizes: `float32` 4 bytes, `float16` 2 bytes.
 *
 * @example
 * ```ts
 * const dtype: KvDtype = 'float16';
 * ```
 */
export type KvDtype = 'float32' | 'float16';

/**
 * Shape of a pattern, and optionally the streaming window it was made for (DuoAttention's
 * `sink_size` / `recent_size`), kept for {@link HeadPattern.save} and {@link HeadPattern.kvBytes}.
 *
 * @example
 * ```ts
 * const shape: HeadPatternShape = { layers: 32, kvHeads: 8, sink: 64, recent: 256 };
 * ```
 */
export interface HeadPatternShape {
  /** Layers, >= 1. */
  layers: number;
  /** KV heads per layer, >= 1. */
  kvHeads: number;
  /** Sink tokens of a streaming head. */
  sink?: number;
  /** Recent tokens of a streaming head. */
  recent?: number;
}

/**
 * Options of {@link HeadPattern.fromRatio}.
 *
 * @example
 * ```ts
 * const options: RatioOptions = { layers: 32, kvHeads: 8, retrievalRatio: 0.5 };
 * ```
 */
export interface RatioOptions extends HeadPatternShape {
  /** Share of KV heads, over all layers, that become retrieval heads, in [0, 1]. */
  retrievalRatio: number;
}

/**
 * Size of the KV cache of one sequence: element size by `dtype` (default `float32`) or by
 * `bytesPerElement` (e.g. 1 for 8-bit, 0.5 for 4-bit), not both.
 *
 * @example
 * ```ts
 * const size: KvSizeOptions = { tokens: 32_768, headDim: 128, dtype: 'float16', sink: 64, recent: 256 };
 * ```
 */
export interface KvSizeOptions {
  /** Context length, in tokens. */
  tokens: number;
  /** Elements per head. */
  headDim: number;
  /** Element type; default `float32`. */
  dtype?: KvDtype;
  /** Bytes per element, instead of `dtype`. */
  bytesPerElement?: number;
  /** Sink tokens of a streaming head; default the pattern's. */
  sink?: number;
  /** Recent tokens of a streaming head; default the pattern's. */
  recent?: number;
  /**
   * Extra ring slots a streaming head keeps for rollback ({@link DuoKVCacheOptions.maxRollback});
   * default 0 (the paper's sink + recent). Give the cache's value to size a {@link DuoKVCache} exactly.
   */
  maxRollback?: number;
}

/**
 * Options of {@link HeadPattern.fromBudget}.
 *
 * @example
 * ```ts
 * const options: BudgetOptions = { layers: 32, kvHeads: 8, bytes: 2 ** 30, tokens: 32_768, headDim: 128, dtype: 'float16', sink: 64, recent: 256 };
 * ```
 */
export interface BudgetOptions extends KvSizeOptions {
  /** Layers, >= 1. */
  layers: number;
  /** KV heads per layer, >= 1. */
  kvHeads: number;
  /** KV bytes allowed for one sequence of `tokens` tokens (keys and values, all layers). */
  bytes: number;
  /** Sink tokens of a streaming head. */
  sink: number;
  /** Recent tokens of a streaming head. */
  recent: number;
}

/**
 * KV cache size of a pattern at a context length, next to the full cache's.
 *
 * @example
 * ```ts
 * const { bytes, fullBytes, ratio } = pattern.kvBytes({ tokens: 32_768, headDim: 128 });
 * ```
 */
export interface KvBytes {
  /** Bytes kept: retrieval heads hold `tokens`, streaming heads `min(tokens, sink + recent + maxRollback)` positions, keys and values. */
  bytes: number;
  /** Bytes of the full cache (every head holds `tokens` positions). */
  fullBytes: number;
  /** `bytes / fullBytes` (1 when the context fits in the window). */
  ratio: number;
}

/**
 * A pattern as JSON-safe data ({@link HeadPattern.toJSON}).
 *
 * @example
 * ```ts
 * const json: HeadPatternJSON = { version: 1, layers: 1, kvHeads: 2, scores: [0.9, 0.1], retrieval: [1, 0] };
 * ```
 */
export interface HeadPatternJSON {
  /** Layout version, 1. */
  version: 1;
  /** Layers. */
  layers: number;
  /** KV heads per layer. */
  kvHeads: number;
  /** Row-major scores. */
  scores: number[];
  /** Row-major split: 1 = retrieval, 0 = streaming. */
  retrieval: number[];
  /** Sink tokens, when known. */
  sink?: number;
  /** Recent tokens, when known. */
  recent?: number;
}

/**
 * Options of {@link HeadPattern.load}. At most one split rule (`sparsity`, `retrievalRatio`,
 * `threshold`); with none, the count saved by {@link HeadPattern.save} in `config.json`
 * (`num_full_attention_heads`) is used, and a file without one is refused.
 *
 * @example
 * ```ts
 * const options: LoadOptions = { modelConfig: '/models/Llama-3.1-8B-Instruct/config.json', sparsity: 0.5 };
 * ```
 */
export interface LoadOptions {
  /** A Hugging Face model config (object, `config.json` path, or model directory) to check the shape against. */
  modelConfig?: ModelConfig | string;
  /** DuoAttention's rule: share of streaming heads as a quantile ({@link HeadPattern.fromQuantile}). */
  sparsity?: number;
  /** Exact share of retrieval heads ({@link HeadPattern.fromRatio}). */
  retrievalRatio?: number;
  /** Heads scoring at least this are retrieval ({@link HeadPattern.fromThreshold}). */
  threshold?: number;
  /** Clip scores to [0, 1] as DuoAttention's loader does (trained gates can end slightly below 0); default `false`. */
  clip?: boolean;
}

/**
 * Options of {@link HeadPattern.save}.
 *
 * @example
 * ```ts
 * await pattern.save('patterns/llama-3.1-8b', { sink: 64, recent: 256 });
 * ```
 */
export interface SaveOptions {
  /** `sink_size` to write; default the pattern's. */
  sink?: number;
  /** `recent_size` to write; default the pattern's. */
  recent?: number;
}

const BYTES: Record<KvDtype, number> = { float32: 4, float16: 2 };

/**
 * Which KV heads keep the full cache (retrieval) and which a sink + recent window (streaming),
 * with the per-head scores the split came from. Immutable; every constructor is static.
 *
 * Ordering rule, shared by every count-based constructor: heads are ranked by score, highest
 * first, ties broken by the lower flat index `layer * kvHeads + head` (earlier layer, then
 * lower head), so the same scores always give the same split. Threshold rules (`fromThreshold`,
 * `fromQuantile`) keep every head scoring at or above the threshold, ties included.
 *
 * @example
 * ```ts
 * const pattern = HeadPattern.fromRatio(alphas, { layers: 32, kvHeads: 8, retrievalRatio: 0.5 });
 * const attention = { queryHeads: 32, kvHeads: 8, headDim: 128, sink: 64, recent: 256, streamingHeads: pattern.streamingFlags(0) };
 * ```
 */
export class HeadPattern {
  /** Layers. */
  readonly layers: number;
  /** KV heads per layer. */
  readonly kvHeads: number;
  /** Sink tokens of the window the pattern was made for, when known. */
  readonly sink: number | undefined;
  /** Recent tokens of the window the pattern was made for, when known. */
  readonly recent: number | undefined;
  readonly #scores: Float64Array;
  readonly #retrieval: Uint8Array;
  readonly #count: number;

  private constructor(shape: Shape, scores: Float64Array, retrieval: Uint8Array) {
    this.layers = shape.layers;
    this.kvHeads = shape.kvHeads;
    this.sink = shape.sink;
    this.recent = shape.recent;
    this.#scores = scores;
    this.#retrieval = retrieval;
    let count = 0;
    for (const r of retrieval) count += r;
    this.#count = count;
  }

  /**
   * The `round(retrievalRatio × layers × kvHeads)` highest-scoring heads become retrieval heads,
   * over all layers at once (as DuoAttention ranks α globally). Halves round up — toward more
   * retrieval heads, the side that keeps quality — with a 1e-9 tolerance so that, e.g.,
   * 0.35 × 10 counts as 3.5. Ties: lower `(layer, head)` first.
   *
   * @param scores - `[layers, kvHeads]`, higher = more retrieval-like.
   * @param options - Shape and ratio.
   * @returns The pattern.
   * @example
   * ```ts
   * HeadPattern.fromRatio([0.9, 0.5, 0.5, 0.1], { layers: 2, kvHeads: 2, retrievalRatio: 0.5 }).retrievalHeads(1); // [0]
   * ```
   */
  static fromRatio(scores: HeadScores, options: RatioOptions): HeadPattern {
    const o = v.options<RatioOptions>('options', options, ['layers', 'kvHeads', 'sink', 'recent', 'retrievalRatio']);
    const shape = readShape(o);
    const s = readScores(scores, shape);
    const ratio = v.unitInterval('options.retrievalRatio', o.retrievalRatio);
    return HeadPattern.#top(shape, s, countOf(ratio, s.length));
  }

  /**
   * DuoAttention's rule (`sparsify_attention_heads`): the threshold is the `q`-quantile of all
   * scores (numpy's default linear interpolation), and heads scoring at or above it are
   * retrieval heads — so `q` is the share of streaming heads ("sparsity"), e.g. 0.5 for the
   * median. Not a fixed 0.5 on α: gates of GQA models sit mostly above 0.5. `q = 0` makes
   * every head retrieval, `q = 1` every head streaming, as in DuoAttention. Ties at the
   * threshold all become retrieval (DuoAttention breaks them with random noise instead); use
   * {@link HeadPattern.fromRatio} for an exact count.
   *
   * @param scores - `[layers, kvHeads]`.
   * @param shape - Shape (and window).
   * @param q - Quantile in [0, 1].
   * @returns The pattern.
   * @example
   * ```ts
   * const pattern = HeadPattern.fromQuantile(alphas, { layers: 32, kvHeads: 8 }, 0.5);
   * ```
   */
  static fromQuantile(scores: HeadScores, shape: HeadPatternShape, q: number): HeadPattern {
    const sh = readShape(v.options<HeadPatternShape>('shape', shape, ['layers', 'kvHeads', 'sink', 'recent']));
    const s = readScores(scores, sh);
    v.unitInterval('q', q);
    if (q >= 1) return HeadPattern.#masked(sh, s, () => false);
    if (q <= 0) return HeadPattern.#masked(sh, s, () => true);
    const t = quantile(s, q);
    return HeadPattern.#masked(sh, s, (x) => x >= t);
  }

  /**
   * Heads scoring at or above `threshold` are retrieval heads (DuoAttention's `>=`).
   *
   * @param scores - `[layers, kvHeads]`.
   * @param shape - Shape (and window).
   * @param threshold - A finite number.
   * @returns The pattern.
   * @example
   * ```ts
   * HeadPattern.fromThreshold([0.9, 0.5, 0.2], { layers: 1, kvHeads: 3 }, 0.5).retrievalHeads(0); // [0, 1]
   * ```
   */
  static fromThreshold(scores: HeadScores, shape: HeadPatternShape, threshold: number): HeadPattern {
    const sh = readShape(v.options<HeadPatternShape>('shape', shape, ['layers', 'kvHeads', 'sink', 'recent']));
    const s = readScores(scores, sh);
    v.finite('threshold', threshold);
    return HeadPattern.#masked(sh, s, (x) => x >= threshold);
  }

  /**
   * The most retrieval heads whose KV cache at `tokens` context fits in `bytes`, chosen by
   * score (same ranking and ties as {@link HeadPattern.fromRatio}). A retrieval head holds
   * `2 × tokens × headDim × bytesPerElement` bytes (keys and values); a streaming head holds
   * `min(tokens, sink + recent)` positions instead. A budget below the all-streaming size is a
   * `RangeError`.
   *
   * @param scores - `[layers, kvHeads]`.
   * @param options - Shape, budget and cache geometry.
   * @returns The pattern (with `sink` and `recent`).
   * @example
   * ```ts
   * const pattern = HeadPattern.fromBudget(alphas, { layers: 32, kvHeads: 8, bytes: 2 * 2 ** 30, tokens: 131_072, headDim: 128, dtype: 'float16', sink: 64, recent: 256 });
   * ```
   */
  static fromBudget(scores: HeadScores, options: BudgetOptions): HeadPattern {
    const o = v.options<BudgetOptions>('options', options, ['layers', 'kvHeads', 'bytes', 'tokens', 'headDim', 'dtype', 'bytesPerElement', 'sink', 'recent', 'maxRollback']);
    const sink = v.integer('options.sink', o.sink, 0);
    const recent = v.integer('options.recent', o.recent, 0);
    const shape = readShape({ layers: o.layers, kvHeads: o.kvHeads, sink, recent });
    const s = readScores(scores, shape);
    const bytes = v.finite('options.bytes', o.bytes, { min: 0 });
    const { full, streaming } = headBytes(o, sink, recent);
    const floor = streaming * s.length;
    if (bytes < floor) {
      throw v.rangeError('options.bytes', `at least ${floor} (every head streaming at ${o.tokens} tokens)`, bytes);
    }
    // Equal costs (context within the window): every head fits once the floor does.
    const count = full === streaming ? s.length : Math.min(s.length, Math.floor((bytes - floor) / (full - streaming)));
    return HeadPattern.#top(shape, s, count);
  }

  /**
   * A pattern from an explicit split: per layer an array of flags (`true`/1 = retrieval), or
   * one flat row-major array with `shape`. Scores are the flags themselves (1 or 0).
   *
   * @param mask - Rows of flags, or a flat array of `layers × kvHeads` flags.
   * @param shape - Required for a flat mask; checked against rows otherwise.
   * @returns The pattern.
   * @example
   * ```ts
   * HeadPattern.fromMask([[true, false], [false, true]]).retrievalRatio; // 0.5
   * ```
   */
  static fromMask(mask: ArrayLike<boolean | number> | ReadonlyArray<ArrayLike<boolean | number>>, shape?: HeadPatternShape): HeadPattern {
    const rows = Array.isArray(mask) && mask.length > 0 && typeof mask[0] === 'object' && mask[0] !== null;
    let flat: ArrayLike<unknown>;
    let sh: HeadPatternShape;
    if (rows) {
      const r = mask as ReadonlyArray<ArrayLike<boolean | number>>;
      const kvHeads = r[0]!.length;
      r.forEach((row, i) => {
        if (row === null || typeof row !== 'object' || typeof row.length !== 'number') throw v.typeError(`mask[${i}]`, 'array of flags', row);
        if (row.length !== kvHeads) throw v.rangeError(`mask[${i}]`, `${kvHeads} flags (as mask[0])`, row);
      });
      sh = { layers: r.length, kvHeads, ...(shape ? v.options<HeadPatternShape>('shape', shape, ['layers', 'kvHeads', 'sink', 'recent']) : {}) };
      if (sh.layers !== r.length || sh.kvHeads !== kvHeads) {
        throw new RangeError(`Expected ${r.length} layers × ${kvHeads} KV heads (the mask's rows) for shape but received ${String(sh.layers)} × ${String(sh.kvHeads)}`);
      }
      flat = r.flatMap((row) => Array.from(row));
    } else {
      if (shape === undefined) throw v.typeError('shape', 'shape options for a flat mask', shape);
      sh = v.options<HeadPatternShape>('shape', shape, ['layers', 'kvHeads', 'sink', 'recent']) as HeadPatternShape;
      if (mask === null || typeof mask !== 'object' || typeof (mask as ArrayLike<unknown>).length !== 'number') {
        throw v.typeError('mask', 'array of flags', mask);
      }
      flat = mask as ArrayLike<unknown>;
    }
    const full = readShape(sh);
    if (flat.length !== full.layers * full.kvHeads) {
      throw v.rangeError('mask', `${full.layers * full.kvHeads} flags (layers × kvHeads)`, flat);
    }
    const scores = new Float64Array(flat.length);
    for (let i = 0; i < flat.length; i++) {
      const f = flat[i];
      if (f !== true && f !== false && f !== 0 && f !== 1) throw v.rangeError(`mask[${i}]`, 'boolean or 0/1', f);
      scores[i] = f === true || f === 1 ? 1 : 0;
    }
    return HeadPattern.#masked(full, scores, (x) => x === 1);
  }

  /**
   * Every head a retrieval head: full attention everywhere (scores all 1).
   *
   * @param layers - Layers.
   * @param kvHeads - KV heads per layer.
   * @returns The pattern.
   * @example
   * ```ts
   * HeadPattern.allRetrieval(32, 8).retrievalRatio; // 1
   * ```
   */
  static allRetrieval(layers: number, kvHeads: number): HeadPattern {
    const shape = readShape({ layers, kvHeads });
    return HeadPattern.#masked(shape, new Float64Array(layers * kvHeads).fill(1), () => true);
  }

  /**
   * Every head a streaming head (scores all 0): StreamingLLM.
   *
   * @param layers - Layers.
   * @param kvHeads - KV heads per layer.
   * @returns The pattern.
   * @example
   * ```ts
   * HeadPattern.allStreaming(32, 8).retrievalRatio; // 0
   * ```
   */
  static allStreaming(layers: number, kvHeads: number): HeadPattern {
    const shape = readShape({ layers, kvHeads });
    return HeadPattern.#masked(shape, new Float64Array(layers * kvHeads), () => false);
  }

  /** Top `count` heads by the module's ranking rule. */
  static #top(shape: Shape, scores: Float64Array, count: number): HeadPattern {
    const retrieval = new Uint8Array(scores.length);
    const order = rank(scores);
    for (let i = 0; i < count; i++) retrieval[order[i]!] = 1;
    return new HeadPattern(shape, scores, retrieval);
  }

  static #masked(shape: Shape, scores: Float64Array, keep: (score: number) => boolean): HeadPattern {
    return new HeadPattern(shape, scores, Uint8Array.from(scores, (x) => (keep(x) ? 1 : 0)));
  }

  /**
   * A copy of the scores, row-major `[layers, kvHeads]`.
   *
   * @example
   * ```ts
   * const alphas = pattern.scores;
   * ```
   */
  get scores(): Float64Array {
    return this.#scores.slice();
  }

  /**
   * A copy of the split, row-major: 1 = retrieval head, 0 = streaming head.
   *
   * @example
   * ```ts
   * const kept = pattern.retrieval.reduce((a, b) => a + b, 0);
   * ```
   */
  get retrieval(): Uint8Array {
    return this.#retrieval.slice();
  }

  /**
   * Number of retrieval heads over all layers.
   *
   * @example
   * ```ts
   * pattern.retrievalCount; // 128 of 256
   * ```
   */
  get retrievalCount(): number {
    return this.#count;
  }

  /**
   * Share of retrieval heads over all layers, in [0, 1].
   *
   * @example
   * ```ts
   * HeadPattern.fromRatio(alphas, { layers: 32, kvHeads: 8, retrievalRatio: 0.25 }).retrievalRatio; // 0.25
   * ```
   */
  get retrievalRatio(): number {
    return this.#count / this.#retrieval.length;
  }

  /**
   * The score of one head.
   *
   * @param layer - Layer index.
   * @param head - KV head index.
   * @returns Its score.
   * @example
   * ```ts
   * pattern.score(3, 1);
   * ```
   */
  score(layer: number, head: number): number {
    return this.#scores[this.#index(layer, head)]!;
  }

  /**
   * Whether a head keeps the full cache.
   *
   * @param layer - Layer index.
   * @param head - KV head index.
   * @returns `true` for a retrieval head.
   * @example
   * ```ts
   * if (pattern.isRetrieval(0, 2)) console.log('layer 0 head 2 keeps every token');
   * ```
   */
  isRetrieval(layer: number, head: number): boolean {
    return this.#retrieval[this.#index(layer, head)] === 1;
  }

  /**
   * Retrieval heads of a layer, ascending.
   *
   * @param layer - Layer index.
   * @returns KV head indices.
   * @example
   * ```ts
   * pattern.retrievalHeads(0); // [1, 4, 6]
   * ```
   */
  retrievalHeads(layer: number): number[] {
    return this.#heads(layer, 1);
  }

  /**
   * Streaming heads of a layer, ascending.
   *
   * @param layer - Layer index.
   * @returns KV head indices.
   * @example
   * ```ts
   * pattern.streamingHeads(0); // [0, 2, 3, 5, 7]
   * ```
   */
  streamingHeads(layer: number): number[] {
    return this.#heads(layer, 0);
  }

  /**
   * One flag per KV head of a layer, `true` = streaming: the `streamingHeads` option of the
   * attention kernels.
   *
   * @param layer - Layer index.
   * @returns `kvHeads` flags.
   * @example
   * ```ts
   * const out = await attentionAsync(q, k, v, { queryHeads: 32, kvHeads: 8, headDim: 128, sink: 64, recent: 256, streamingHeads: pattern.streamingFlags(layer) });
   * ```
   */
  streamingFlags(layer: number): boolean[] {
    const base = this.#index(layer, 0);
    return Array.from(this.#retrieval.subarray(base, base + this.kvHeads), (r) => r === 0);
  }

  /**
   * KV cache bytes of one sequence under this pattern, next to the full cache's. Window from
   * the options, else the pattern's.
   *
   * @param options - Context length, head size, element size, window.
   * @returns Bytes kept, full-cache bytes and their ratio.
   * @example
   * ```ts
   * const { ratio } = pattern.kvBytes({ tokens: 32_768, headDim: 128, dtype: 'float16', sink: 64, recent: 256 });
   * ```
   */
  kvBytes(options: KvSizeOptions): KvBytes {
    const o = v.options<KvSizeOptions>('options', options, ['tokens', 'headDim', 'dtype', 'bytesPerElement', 'sink', 'recent', 'maxRollback']);
    const sink = windowPart('options.sink', o.sink, this.sink);
    const recent = windowPart('options.recent', o.recent, this.recent);
    const { full, streaming } = headBytes(o, sink, recent);
    const total = this.#retrieval.length;
    const bytes = this.#count * full + (total - this.#count) * streaming;
    const fullBytes = total * full;
    return { bytes, fullBytes, ratio: fullBytes === 0 ? 1 : bytes / fullBytes };
  }

  /**
   * Checks the shape against a Hugging Face model config: `num_hidden_layers` must equal
   * `layers`, `num_key_value_heads` (or `num_attention_heads` when absent) must equal `kvHeads`.
   *
   * @param modelConfig - The parsed `config.json`.
   * @throws RangeError - "Expected 32 layers (num_hidden_layers in modelConfig) but the head pattern has 28".
   * @example
   * ```ts
   * pattern.checkModelConfig(JSON.parse(readFileSync('/models/llama/config.json', 'utf8')));
   * ```
   */
  checkModelConfig(modelConfig: ModelConfig): void {
    if (modelConfig === null || typeof modelConfig !== 'object' || Array.isArray(modelConfig)) {
      throw v.typeError('modelConfig', 'a Hugging Face config object', modelConfig);
    }
    checkModelShape(modelConfig, this.layers, this.kvHeads, 'modelConfig', 'the head pattern');
  }

  /**
   * The pattern as JSON-safe data.
   *
   * @returns Shape, scores, split and window.
   * @example
   * ```ts
   * writeFileSync('pattern.json', JSON.stringify(pattern));
   * ```
   */
  toJSON(): HeadPatternJSON {
    const json: HeadPatternJSON = {
      version: 1,
      layers: this.layers,
      kvHeads: this.kvHeads,
      scores: Array.from(this.#scores),
      retrieval: Array.from(this.#retrieval),
    };
    if (this.sink !== undefined) json.sink = this.sink;
    if (this.recent !== undefined) json.recent = this.recent;
    return json;
  }

  /**
   * Rebuilds a pattern from {@link HeadPattern.toJSON} output, split included as saved.
   *
   * @param json - Saved data (validated; a bad field throws naming it).
   * @returns The pattern.
   * @example
   * ```ts
   * const pattern = HeadPattern.fromJSON(JSON.parse(readFileSync('pattern.json', 'utf8')));
   * ```
   */
  static fromJSON(json: unknown): HeadPattern {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw v.typeError('json', 'HeadPatternJSON object', json);
    const j = json as Partial<HeadPatternJSON>;
    if (j.version !== 1) throw v.rangeError('json.version', '1', j.version);
    const shape = readShape({ layers: j.layers, kvHeads: j.kvHeads, sink: j.sink, recent: j.recent } as HeadPatternShape, 'json');
    const scores = readScores(j.scores as HeadScores, shape, 'json.scores');
    if (!Array.isArray(j.retrieval)) throw v.typeError('json.retrieval', 'Array of 0/1', j.retrieval);
    if (j.retrieval.length !== scores.length) throw v.rangeError('json.retrieval', `Array of length ${scores.length}`, j.retrieval);
    const retrieval = new Uint8Array(scores.length);
    j.retrieval.forEach((r: unknown, i) => {
      if (r !== 0 && r !== 1) throw v.rangeError(`json.retrieval[${i}]`, '0 or 1', r);
      retrieval[i] = r;
    });
    return new HeadPattern(shape, scores, retrieval);
  }

  /**
   * The scores as a DuoAttention `full_attention_heads.tsv` text (`np.savetxt` format: `%.18e`,
   * tab-separated, one line per layer).
   *
   * @returns The file's content.
   * @example
   * ```ts
   * process.stdout.write(pattern.toTsv());
   * ```
   */
  toTsv(): string {
    return formatFullAttentionHeads(this.#scores, this.kvHeads);
  }

  /**
   * Reads a DuoAttention pattern: `path` is a directory holding `full_attention_heads.tsv` (and
   * usually `config.json`), or the TSV file itself (its `config.json`, if any, sits beside it).
   * `config.json`'s `sink_size` and `recent_size` become the pattern's window. The split comes
   * from the one rule given in `options`, else from `num_full_attention_heads` written by
   * {@link HeadPattern.save}. With `modelConfig`, the shape is checked against it.
   *
   * @param path - Pattern directory or TSV file.
   * @param options - Model config to check against, split rule, clipping.
   * @returns The pattern.
   * @throws RangeError - a malformed TSV (line and column named), a shape that does not match the model, no split rule.
   * @example
   * ```ts
   * const pattern = await HeadPattern.load('attn_patterns/Meta-Llama-3.1-8B-Instruct/lr=0.02-reg=0.05-ctx=1000_128000-multi_passkey10', { modelConfig: '/models/Meta-Llama-3.1-8B-Instruct', sparsity: 0.5 });
   * ```
   */
  static async load(path: string, options?: LoadOptions): Promise<HeadPattern> {
    v.nonEmptyString('path', path);
    const o = v.options<LoadOptions>('options', options, ['modelConfig', 'sparsity', 'retrievalRatio', 'threshold', 'clip']);
    const rules = (['sparsity', 'retrievalRatio', 'threshold'] as const).filter((k) => o[k] !== undefined);
    if (rules.length > 1) throw new TypeError(`Expected at most one of sparsity, retrievalRatio, threshold in options but received ${rules.join(' and ')}`);
    const clip = o.clip === undefined ? false : v.boolean('options.clip', o.clip);

    const { path: tsvPath, text } = await readFileOrIn(path, TSV_NAME);
    const name = basename(tsvPath);
    const parsed = parseFullAttentionHeads(text, name);
    if (clip) for (let i = 0; i < parsed.scores.length; i++) parsed.scores[i] = Math.min(1, Math.max(0, parsed.scores[i]!));

    const configPath = join(dirname(tsvPath), CONFIG_NAME);
    const config = await readDuoConfig(configPath);
    const shape: HeadPatternShape = { layers: parsed.layers, kvHeads: parsed.kvHeads };
    const sink = config?.['sink_size'];
    const recent = config?.['recent_size'];
    if (sink !== undefined && sink !== null) shape.sink = v.integer(`sink_size in ${configPath}`, sink, 0);
    if (recent !== undefined && recent !== null) shape.recent = v.integer(`recent_size in ${configPath}`, recent, 0);

    if (o.modelConfig !== undefined) {
      const { config: model, label } = await readModelConfig(o.modelConfig);
      checkModelShape(model, parsed.layers, parsed.kvHeads, label, name);
    }

    if (o.sparsity !== undefined) return HeadPattern.fromQuantile(parsed.scores, shape, v.unitInterval('options.sparsity', o.sparsity));
    if (o.retrievalRatio !== undefined) return HeadPattern.fromRatio(parsed.scores, { ...shape, retrievalRatio: o.retrievalRatio });
    if (o.threshold !== undefined) return HeadPattern.fromThreshold(parsed.scores, shape, v.finite('options.threshold', o.threshold));
    const saved = config?.['num_full_attention_heads'];
    if (saved === undefined || saved === null) {
      throw new RangeError(`No split rule for ${name}: pass sparsity, retrievalRatio or threshold (${CONFIG_NAME} has no num_full_attention_heads)`);
    }
    const count = v.integer(`num_full_attention_heads in ${configPath}`, saved, 0, parsed.scores.length);
    return HeadPattern.#top(readShape(shape), parsed.scores, count);
  }

  /**
   * Writes the pattern as DuoAttention does, into directory `dir` (created if missing):
   * `full_attention_heads.tsv` (the scores, `np.savetxt` format) and `config.json` in
   * `json.dump` style: `{"sink_size": S, "recent_size": R, "sparsity": <share of streaming heads>,
   * "num_full_attention_heads": <retrieval heads>}` — DuoAttention's loader reads the first two;
   * {@link HeadPattern.load} restores the split from the last. Each file is written to a
   * temporary name and renamed, so a reader never sees half a file. Only a split that is the
   * top heads by score (as every score-based constructor makes) can be stored, since the files
   * hold scores only; anything else is a `RangeError`.
   *
   * @param dir - Output directory.
   * @param options - Window to record, when the pattern has none.
   * @returns Resolves once both files are in place.
   * @example
   * ```ts
   * await pattern.save('patterns/llama-3.1-8b-50');
   * ```
   */
  async save(dir: string, options?: SaveOptions): Promise<void> {
    v.nonEmptyString('dir', dir);
    const o = v.options<SaveOptions>('options', options, ['sink', 'recent']);
    const sink = windowPart('options.sink', o.sink, this.sink);
    const recent = windowPart('options.recent', o.recent, this.recent);
    const top = rank(this.#scores);
    for (let i = 0; i < top.length; i++) {
      if ((this.#retrieval[top[i]!] === 1) !== i < this.#count) {
        throw new RangeError(
          `Expected a split of the top ${this.#count} heads by score (ties to the lower index) for save, but layer ${Math.floor(top[i]! / this.kvHeads)} head ${top[i]! % this.kvHeads} breaks it (${TSV_NAME} stores scores only)`,
        );
      }
    }
    const config = formatPythonJson({
      sink_size: sink,
      recent_size: recent,
      sparsity: 1 - this.retrievalRatio,
      num_full_attention_heads: this.#count,
    });
    await mkdir(dir, { recursive: true });
    await writeAtomic(join(dir, TSV_NAME), this.toTsv());
    await writeAtomic(join(dir, CONFIG_NAME), config);
  }

  #index(layer: number, head: number): number {
    v.integer('layer', layer, 0, this.layers - 1);
    v.integer('head', head, 0, this.kvHeads - 1);
    return layer * this.kvHeads + head;
  }

  #heads(layer: number, want: 0 | 1): number[] {
    const base = this.#index(layer, 0);
    const out: number[] = [];
    for (let h = 0; h < this.kvHeads; h++) if (this.#retrieval[base + h] === want) out.push(h);
    return out;
  }
}

type Shape = { layers: number; kvHeads: number; sink?: number; recent?: number };

function readShape(o: Partial<HeadPatternShape>, name = 'options'): Shape {
  const shape: Shape = { layers: v.integer(`${name}.layers`, o.layers, 1), kvHeads: v.integer(`${name}.kvHeads`, o.kvHeads, 1) };
  if (o.sink !== undefined) shape.sink = v.integer(`${name}.sink`, o.sink, 0);
  if (o.recent !== undefined) shape.recent = v.integer(`${name}.recent`, o.recent, 0);
  return shape;
}

/** Copies scores into a Float64Array, checking length and finiteness. */
function readScores(scores: HeadScores, shape: Shape, name = 'scores'): Float64Array {
  const n = shape.layers * shape.kvHeads;
  const expected = `Float64Array, Float32Array or number[] of length ${n} (layers × kvHeads)`;
  if (!(scores instanceof Float64Array || scores instanceof Float32Array || Array.isArray(scores))) throw v.typeError(name, expected, scores);
  if (scores.length !== n) throw v.rangeError(name, expected, scores);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const x = scores[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new RangeError(`Expected finite numbers for ${name} but ${name}[${i}] is ${String(x)}`);
    out[i] = x;
  }
  return out;
}

/** Flat indices by score descending, ties to the lower index. */
function rank(scores: Float64Array): Int32Array {
  const order = Int32Array.from({ length: scores.length }, (_, i) => i);
  return order.sort((a, b) => scores[b]! - scores[a]! || a - b);
}

/** round(ratio × total), halves up, with a tolerance for ratios like 0.35 that are not exact in binary. */
function countOf(ratio: number, total: number): number {
  return Math.min(total, Math.floor(ratio * total + 0.5 + 1e-9));
}

/** numpy.quantile's default ('linear', Hyndman & Fan type 7), bit-for-bit: same index and lerp. */
function quantile(values: Float64Array, q: number): number {
  const a = values.slice().sort();
  const n = a.length;
  const virtual = (n - 1) * q;
  if (virtual >= n - 1) return a[n - 1]!;
  const lo = Math.floor(virtual);
  const t = virtual - lo;
  const x = a[lo]!;
  const y = a[lo + 1]!;
  const d = y - x;
  return t >= 0.5 ? y - d * (1 - t) : x + d * t;
}

/** KV bytes of one retrieval head and one streaming head (keys + values). */
function headBytes(o: Partial<KvSizeOptions>, sink: number, recent: number): { full: number; streaming: number } {
  const tokens = v.integer('options.tokens', o.tokens, 0);
  const headDim = v.integer('options.headDim', o.headDim, 1);
  if (o.dtype !== undefined && o.bytesPerElement !== undefined) {
    throw new TypeError('Expected one of dtype and bytesPerElement in options but received both');
  }
  const bpe =
    o.bytesPerElement !== undefined
      ? v.finite('options.bytesPerElement', o.bytesPerElement, { positive: true })
      : BYTES[v.oneOf('options.dtype', o.dtype ?? 'float32', ['float32', 'float16'])];
  const rollback = o.maxRollback === undefined ? 0 : v.integer('options.maxRollback', o.maxRollback, 0);
  const per = 2 * headDim * bpe;
  return { full: per * tokens, streaming: per * Math.min(tokens, sink + recent + rollback) };
}

function windowPart(name: string, given: number | undefined, own: number | undefined): number {
  if (given !== undefined) return v.integer(name, given, 0);
  if (own === undefined) throw v.typeError(name, 'integer >= 0 (the pattern has no window)', given);
  return own;
}

async function readDuoConfig(path: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const config = parseJson(text, path);
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw v.typeError(path, 'a JSON object', config);
  return config as Record<string, unknown>;
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  try {
    await writeFile(tmp, text);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
