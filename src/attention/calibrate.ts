/**
 * Training-free DuoAttention calibration: score every KV head by how much it loses when made a
 * streaming head (sink + recent window) on captured Q/K/V of calibration text, then keep the
 * highest-scoring heads as retrieval heads.
 * @module
 */
import * as v from '../validate';
import { attentionAsync } from './attention';
import { checkGroup } from './check';
import { HeadPattern } from './head-pattern';
import type { AttentionOptions } from './types';

/**
 * How heads are scored ({@link calibrateHeads} defines each).
 *
 * @example
 * ```ts
 * const method: CalibrationMethod = 'both';
 * ```
 */
export type CalibrationMethod = 'output-error' | 'attention-mass' | 'both';

/**
 * One layer's attention inputs captured on one calibration text of `n` tokens, token-major and
 * after RoPE (what the layer's attention really sees): q `[n, queryHeads, headDim]`, k and v
 * `[n, kvHeads, headDim]`.
 *
 * @example
 * ```ts
 * const sample: CalibrationSample = { layer: 0, q, k, v }; // from a forward hook on layer 0's attention
 * ```
 */
export interface CalibrationSample {
  /** Layer index, 0-based. */
  layer: number;
  /** Queries `[n, queryHeads, headDim]`. */
  q: Float32Array;
  /** Keys `[n, kvHeads, headDim]`. */
  k: Float32Array;
  /** Values `[n, kvHeads, headDim]`. */
  v: Float32Array;
}

/**
 * Options of {@link calibrateHeads}.
 *
 * @example
 * ```ts
 * const options: CalibrateOptions = { layers: 32, queryHeads: 32, kvHeads: 8, headDim: 128, sink: 64, recent: 256, retrievalRatio: 0.5, method: 'both', lastQueries: 256 };
 * ```
 */
export interface CalibrateOptions {
  /** Layers of the model; every one needs at least one sample. */
  layers: number;
  /** Query heads, a multiple of `kvHeads`. */
  queryHeads: number;
  /** KV heads per layer. */
  kvHeads: number;
  /** Elements per head, 1 to 256. */
  headDim: number;
  /** Sink tokens of a streaming head. */
  sink: number;
  /** Recent tokens of a streaming head (the query's own included), >= 1. */
  recent: number;
  /** Share of KV heads kept as retrieval heads ({@link HeadPattern.fromRatio}). */
  retrievalRatio: number;
  /** Scoring method; default `'output-error'`. */
  method?: CalibrationMethod;
  /** Score only the last N query positions of each sample (as kvpress does), for speed; default all. */
  lastQueries?: number;
  /** Attention scale; default `1 / sqrt(headDim)`. */
  scale?: number;
  /** Kernel threads; default `os.availableParallelism()`. */
  threads?: number;
  /** Called after each sample with the samples done and the total (`undefined` for an iterator). */
  onProgress?: (done: number, total: number | undefined) => void;
}

/**
 * What {@link calibrateHeads} measured and the split it chose.
 *
 * @example
 * ```ts
 * const { pattern, scores, tokens } = await calibrateHeads(samples, options);
 * ```
 */
export interface CalibrationResult {
  /** The split: the `retrievalRatio` highest-scoring heads are retrieval heads; `sink` and `recent` recorded. */
  pattern: HeadPattern;
  /** Per-head scores `[layers, kvHeads]` of the chosen method (for `'both'`, the combination defined there). */
  scores: Float64Array;
  /** The method used. */
  method: CalibrationMethod;
  /** Samples consumed. */
  samples: number;
  /** Query positions scored, summed over samples. */
  tokens: number;
  /** Output-error scores, when measured. */
  outputError?: Float64Array;
  /** Attention-mass scores, when measured. */
  attentionMass?: Float64Array;
}

/**
 * Scores each KV head by what it loses as a streaming head and splits the heads by
 * `retrievalRatio`. Per sample, the attention kernel runs twice on the scored queries — every
 * head full, then every head streaming — and each query position `i` with `i >= sink + recent`
 * is scored (earlier positions see the same keys either way); with `lastQueries`, only the last
 * that many of those. For a KV head, over its query heads `h` and scored positions `t`:
 *
 * - `output-error`: mean of `‖o_full − o_stream‖² / ‖o_full‖²`, the relative squared error of the
 *   head's output when it is made streaming (a row with `o_full = 0` counts 0 if `o_stream = 0`
 *   too, else 1).
 * - `attention-mass`: mean of `1 − exp(lse_stream − lse_full)`, the softmax mass the full head puts
 *   outside the sink + recent window (`lse` = log of the softmax normaliser), in [0, 1].
 * - `both`: `(e / max e + m / max m) / 2` of the two above, each scaled by its maximum over all
 *   heads so both weigh the same (a method whose maximum is 0 contributes 0).
 *
 * A layer's score is the mean of its samples' scores. Samples run one at a time (each kernel call
 * uses `threads` threads) and may come from an async iterator, so captures need not all be in
 * memory at once.
 *
 * @param samples - Captured Q/K/V per layer and text: an array, iterable or async iterable.
 * @param options - Model shape, window, ratio, method.
 * @returns The pattern, the scores and what was measured.
 * @throws RangeError - a sample not longer than `sink + recent` tokens (nothing to score), bad shapes, a layer with no sample.
 * @example
 * ```ts
 * const { pattern } = await calibrateHeads(captures, { layers: 32, queryHeads: 32, kvHeads: 8, headDim: 128, sink: 64, recent: 256, retrievalRatio: 0.5, method: 'both' });
 * await pattern.save('patterns/my-model');
 * ```
 */
export async function calibrateHeads(
  samples: Iterable<CalibrationSample> | AsyncIterable<CalibrationSample>,
  options: CalibrateOptions,
): Promise<CalibrationResult> {
  const o = v.options<CalibrateOptions>('options', options, [
    'layers', 'queryHeads', 'kvHeads', 'headDim', 'sink', 'recent', 'retrievalRatio', 'method', 'lastQueries', 'scale', 'threads', 'onProgress',
  ]);
  const layers = v.integer('options.layers', o.layers, 1);
  const kvHeads = v.integer('options.kvHeads', o.kvHeads, 1);
  const queryHeads = v.integer('options.queryHeads', o.queryHeads, 1);
  checkGroup('options.queryHeads', queryHeads, kvHeads);
  const headDim = v.integer('options.headDim', o.headDim, 1, 256);
  const sink = v.integer('options.sink', o.sink, 0);
  const recent = v.integer('options.recent', o.recent, 1);
  const retrievalRatio = v.unitInterval('options.retrievalRatio', o.retrievalRatio);
  const method = o.method === undefined ? 'output-error' : v.oneOf('options.method', o.method, ['output-error', 'attention-mass', 'both']);
  const lastQueries = o.lastQueries === undefined ? Infinity : v.integer('options.lastQueries', o.lastQueries, 1);
  const scale = o.scale === undefined ? undefined : v.finite('options.scale', o.scale, { positive: true });
  const threads = v.threads('options.threads', o.threads);
  const onProgress = v.optionalFunction<CalibrateOptions['onProgress']>('options.onProgress', o.onProgress);
  const isIterable = samples !== null && typeof samples === 'object' && (Symbol.iterator in samples || Symbol.asyncIterator in samples);
  if (!isIterable) throw v.typeError('samples', 'an array, iterable or async iterable of samples', samples);
  const total = Array.isArray(samples) ? samples.length : undefined;

  const wantError = method !== 'attention-mass';
  const wantMass = method !== 'output-error';
  const heads = layers * kvHeads;
  const errorSum = new Float64Array(heads);
  const massSum = new Float64Array(heads);
  const perLayer = new Int32Array(layers);
  const group = queryHeads / kvHeads;
  const window = sink + recent;
  const base: AttentionOptions = { queryHeads, kvHeads, headDim, sink, recent, causal: true, threads };
  if (scale !== undefined) base.scale = scale;
  const allStreaming = new Array<boolean>(kvHeads).fill(true);
  let done = 0;
  let tokens = 0;

  for await (const sample of samples) {
    const name = `samples[${done}]`;
    const { layer, q, k, n } = readSample(name, sample, layers, queryHeads, kvHeads, headDim);
    if (n <= window) {
      throw new RangeError(`Expected more than sink + recent = ${window} tokens in ${name} (layer ${layer}) but received ${n}: no position loses keys to the window`);
    }
    const start = Math.max(window, n - lastQueries);
    const nq = n - start;
    const qs = q.subarray(start * queryHeads * headDim);
    const lseFull = wantMass ? new Float32Array(nq * queryHeads) : undefined;
    const lseStream = wantMass ? new Float32Array(nq * queryHeads) : undefined;
    const full = await attentionAsync(qs, k, sample.v, { ...base, queryOffset: start, ...(lseFull ? { lse: lseFull } : {}) });
    const stream = await attentionAsync(qs, k, sample.v, {
      ...base,
      queryOffset: start,
      streamingHeads: allStreaming,
      ...(lseStream ? { lse: lseStream } : {}),
    });

    const rows = nq * group; // scored rows per KV head
    for (let g = 0; g < kvHeads; g++) {
      let err = 0;
      let mass = 0;
      for (let t = 0; t < nq; t++) {
        for (let h = g * group; h < (g + 1) * group; h++) {
          const row = t * queryHeads + h;
          if (wantError) err += relativeError(full, stream, row * headDim, headDim);
          // Clamped: float32 lse of a subset can round a hair above the full one.
          if (wantMass) mass += Math.min(1, Math.max(0, 1 - Math.exp(lseStream![row]! - lseFull![row]!)));
        }
      }
      const i = layer * kvHeads + g;
      errorSum[i] = errorSum[i]! + err / rows;
      massSum[i] = massSum[i]! + mass / rows;
    }
    perLayer[layer] = perLayer[layer]! + 1;
    tokens += nq;
    done += 1;
    onProgress?.(done, total);
  }

  const missing = perLayer.findIndex((c) => c === 0);
  if (missing >= 0) throw new RangeError(`Expected at least one sample for every layer but layer ${missing} of ${layers} has none`);
  for (let i = 0; i < heads; i++) {
    const c = perLayer[Math.floor(i / kvHeads)]!;
    errorSum[i] = errorSum[i]! / c;
    massSum[i] = massSum[i]! / c;
  }
  const scores = method === 'output-error' ? errorSum : method === 'attention-mass' ? massSum : combine(errorSum, massSum);
  const pattern = HeadPattern.fromRatio(scores, { layers, kvHeads, sink, recent, retrievalRatio });
  const result: CalibrationResult = { pattern, scores, method, samples: done, tokens };
  if (wantError) result.outputError = errorSum;
  if (wantMass) result.attentionMass = massSum;
  return result;
}

function readSample(name: string, sample: unknown, layers: number, queryHeads: number, kvHeads: number, headDim: number) {
  if (sample === null || typeof sample !== 'object') throw v.typeError(name, '{ layer, q, k, v } object', sample);
  const s = sample as Partial<CalibrationSample>;
  const layer = v.integer(`${name}.layer`, s.layer, 0, layers - 1);
  const k = v.float32Array(`${name}.k`, s.k);
  const row = kvHeads * headDim;
  if (k.length === 0 || k.length % row !== 0) throw v.rangeError(`${name}.k`, `Float32Array of n × ${kvHeads} × ${headDim} (n >= 1)`, k);
  const n = k.length / row;
  v.float32Array(`${name}.v`, s.v, k.length);
  const q = v.float32Array(`${name}.q`, s.q, n * queryHeads * headDim);
  return { layer, q, k, n };
}

function relativeError(full: Float32Array, stream: Float32Array, at: number, d: number): number {
  let diff = 0;
  let norm = 0;
  for (let e = at; e < at + d; e++) {
    const f = full[e]!;
    const x = f - stream[e]!;
    diff += x * x;
    norm += f * f;
  }
  if (norm > 0) return diff / norm;
  return diff > 0 ? 1 : 0;
}

function combine(a: Float64Array, b: Float64Array): Float64Array {
  const ma = Math.max(...a);
  const mb = Math.max(...b);
  return a.map((x, i) => ((ma > 0 ? x / ma : 0) + (mb > 0 ? b[i]! / mb : 0)) / 2);
}
