/**
 * The figures {@link DuoAttention} reports, each computed from the call it describes: the KV
 * bytes a call attended to and saved, its agreement with full attention, and the counters summed
 * over calls.
 * @module
 */
import type { CheckedAttention } from './check';

/** How the head groups of a call ran (see {@link AttentionResult.ranAs}). @internal */
export type RanAs = 'parallel' | 'sequential' | 'full';

/**
 * Counters of a {@link DuoAttention} since it was created.
 *
 * @example
 * ```ts
 * const m = duo.getMetrics();
 * console.log(m.calls, m.meanTimeMs, m.kvBytesSaved / (m.kvBytesSaved + m.kvBytesAttended));
 * ```
 */
export interface DuoAttentionMetrics {
  /** Calls of processAttention that returned. */
  calls: number;
  /** Summed {@link AttentionResult.timeMs}. */
  totalTimeMs: number;
  /** totalTimeMs / calls (0 before the first call). */
  meanTimeMs: number;
  /** Summed {@link AttentionResult.kvBytesAttended}. */
  kvBytesAttended: number;
  /** Summed {@link AttentionResult.kvBytesSaved}. */
  kvBytesSaved: number;
  /** Calls per way they ran. */
  ranAs: Record<'parallel' | 'sequential' | 'full', number>;
  /** Calls with a quality check. */
  qualityChecks: number;
  /** Mean {@link AttentionResult.quality} over the checked calls (null before the first). */
  meanQuality: number | null;
  /**
   * Share of KV heads that were retrieval heads, over all calls (the seed's "head utilisation":
   * the part of the model that still pays for the full cache).
   */
  retrievalShare: number;
}

/** Key positions seen by the queries of one KV head, summed over queries. @internal */
export function keysSeen(c: CheckedAttention, streaming: boolean): number {
  let sum = 0;
  for (let t = 0; t < c.nq; t++) {
    const i = c.causal ? c.queryOffset + t : c.nk - 1; // the query's position; keys stop at nk - 1
    const last = Math.min(i, c.nk - 1);
    if (!streaming) {
      sum += last + 1;
      continue;
    }
    const sink = Math.min(c.sink, last + 1);
    const from = Math.max(c.sink, i - c.recent + 1);
    sum += sink + Math.max(0, last - from + 1);
  }
  return sum;
}

/**
 * Bytes of keys and values a call attended to (each query's visible positions, summed over
 * queries and KV heads, × headDim × 2 × bytes per element) with `streamingHeads` of its KV heads
 * streaming, and the same count had every head been a retrieval head. @internal
 */
export function kvBytesOfCall(c: CheckedAttention, streamingHeads: number): { attended: number; full: number } {
  const bytes = 2 * c.headDim * (c.kvType === 'float16' ? 2 : 4);
  const all = keysSeen(c, false);
  const streamed = streamingHeads === 0 ? 0 : keysSeen(c, true);
  return { attended: ((c.kvHeads - streamingHeads) * all + streamingHeads * streamed) * bytes, full: c.kvHeads * all * bytes };
}

/** Agreement of `output` with `reference`: `max(0, 1 − ‖o − r‖ / ‖r‖)`, 1 = identical. @internal */
export function agreement(output: Float32Array, reference: Float32Array): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < output.length; i++) {
    diff += (output[i]! - reference[i]!) ** 2;
    norm += reference[i]! ** 2;
  }
  return norm === 0 ? (diff === 0 ? 1 : 0) : Math.max(0, 1 - Math.sqrt(diff / norm));
}

/** One call as the counters see it. @internal */
export interface CallRecord {
  ranAs: RanAs;
  timeMs: number;
  kvBytesAttended: number;
  kvBytesSaved: number;
  quality?: number;
  /** KV heads that were retrieval heads for the call, of `kvHeads`. */
  retrievalHeads: number;
  kvHeads: number;
}

/** Counters summed over the calls of one DuoAttention. @internal */
export class DuoCounters {
  #calls = 0;
  #totalTimeMs = 0;
  #kvBytesAttended = 0;
  #kvBytesSaved = 0;
  readonly #ranAs = { parallel: 0, sequential: 0, full: 0 };
  #qualityChecks = 0;
  #qualitySum = 0;
  #retrievalHeads = 0;
  #heads = 0;

  record(r: CallRecord): void {
    this.#calls++;
    this.#totalTimeMs += r.timeMs;
    this.#kvBytesAttended += r.kvBytesAttended;
    this.#kvBytesSaved += r.kvBytesSaved;
    this.#ranAs[r.ranAs]++;
    if (r.quality !== undefined) {
      this.#qualityChecks++;
      this.#qualitySum += r.quality;
    }
    this.#retrievalHeads += r.retrievalHeads;
    this.#heads += r.kvHeads;
  }

  snapshot(): DuoAttentionMetrics {
    return {
      calls: this.#calls, totalTimeMs: this.#totalTimeMs, meanTimeMs: this.#calls ? this.#totalTimeMs / this.#calls : 0,
      kvBytesAttended: this.#kvBytesAttended, kvBytesSaved: this.#kvBytesSaved, ranAs: { ...this.#ranAs },
      qualityChecks: this.#qualityChecks, meanQuality: this.#qualityChecks ? this.#qualitySum / this.#qualityChecks : null,
      retrievalShare: this.#heads ? this.#retrievalHeads / this.#heads : 0,
    };
  }
}
