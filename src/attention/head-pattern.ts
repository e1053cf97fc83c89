/**
 * DuoAttention head patterns: per KV head, a score (higher = more retrieval-like, e.g.
 * DuoAttention's learned gate α or a calibration score) and the split it induces — retrieval
 * heads keep the full KV cache, streaming heads keep `sink` first + `recent` last tokens.
 * This is the value class; the split rules are in head-split.ts, KV sizing in kv-size.ts and
 * DuoAttention's files in head-pattern-file.ts. Over 500 lines as one cohesive thing: every
 * member is public API, each a few lines of code under its TSDoc and example.
 * @module
 */
import * as v from '../validate';
import {
  type LoadOptions, type ModelConfig, type SaveOptions, TSV_NAME, checkModelShape, formatFullAttentionHeads, readPatternFiles, writePatternFiles,
} from './head-pattern-file';
import {
  type HeadScores, SHAPE_KEYS, type Shape, breaksTop, countOf, quantile, readMask, readScores, readShape, topHeads, windowPart,
} from './head-split';
import { BUDGET_KEYS, type BudgetOptions, type KvBytes, type KvSizeOptions, kvBytesOf, retrievalWithin } from './kv-size';

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
    const o = v.options<RatioOptions>('options', options, [...SHAPE_KEYS, 'retrievalRatio']);
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
    const sh = readShape(v.options<HeadPatternShape>('shape', shape, SHAPE_KEYS));
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
    const sh = readShape(v.options<HeadPatternShape>('shape', shape, SHAPE_KEYS));
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
    const o = v.options<BudgetOptions>('options', options, BUDGET_KEYS);
    const sink = v.integer('options.sink', o.sink, 0);
    const recent = v.integer('options.recent', o.recent, 0);
    const shape = readShape({ layers: o.layers, kvHeads: o.kvHeads, sink, recent });
    const s = readScores(scores, shape);
    return HeadPattern.#top(shape, s, retrievalWithin(o, sink, recent, s.length));
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
    const m = readMask(mask, shape);
    return HeadPattern.#masked(m.shape, m.scores, (x) => x === 1);
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
    return new HeadPattern(shape, scores, topHeads(scores, count));
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
    return kvBytesOf(this.#count, this.#retrieval.length, options, this);
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
    const { scores, shape, rule } = await readPatternFiles(path, options);
    switch (rule.kind) {
      case 'sparsity':
        return HeadPattern.fromQuantile(scores, shape, rule.value);
      case 'ratio':
        return HeadPattern.fromRatio(scores, { ...shape, retrievalRatio: rule.value });
      case 'threshold':
        return HeadPattern.fromThreshold(scores, shape, rule.value);
      case 'count':
        return HeadPattern.#top(readShape(shape), scores, rule.value);
    }
  }

  /**
   * Writes the pattern as DuoAttention does, into directory `dir` (created if missing):
   * `full_attention_heads.tsv` (the scores, `np.savetxt` format) and `config.json` in
   * `json.dump` style: `{"sink_size": S, "recent_size": R, "sparsity": <share of streaming heads>,
   * "num_full_attention_heads": <retrieval heads>}` — DuoAttention's loader reads the first two;
   * {@link HeadPattern.load} restores the split from the last. Each file is written to a
   * temporary name, flushed to disk and renamed, so a reader never sees half a file. Only a
   * split that is the top heads by score (as every score-based constructor makes) can be
   * stored, since the files hold scores only; anything else is a `RangeError`.
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
    const broken = breaksTop(this.#scores, this.#retrieval, this.#count);
    if (broken !== undefined) {
      throw new RangeError(
        `Expected a split of the top ${this.#count} heads by score (ties to the lower index) for save, but layer ${Math.floor(broken / this.kvHeads)} head ${broken % this.kvHeads} breaks it (${TSV_NAME} stores scores only)`,
      );
    }
    await writePatternFiles(dir, this.toTsv(), {
      sink_size: sink,
      recent_size: recent,
      sparsity: 1 - this.retrievalRatio,
      num_full_attention_heads: this.#count,
    });
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
