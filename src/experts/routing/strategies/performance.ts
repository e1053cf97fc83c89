/**
 * PERFORMANCE_BASED: relevance × observed reliability × speed.
 * @module
 */
import { RoutingStrategy, type RoutingContext } from '../types';
import { BaseStrategy, qualityFactor, SORT_KEYS } from './base';
import type { Candidate, RankedCandidate } from './types';

/**
 * score = relevance × success × latencyFactor × qualityFactor, where
 * - success: posterior mean under Beta(1, 1) of the time-decayed success counts;
 * - latencyFactor = 1 / (1 + ewma / referenceLatencyMs): 1 for an instant expert, 0.5 at the
 *   reference latency, 0.25 at 3× it (an expert with no outcomes yet is taken to be at the reference);
 * - qualityFactor = 1 − w + w × qualityMean, w = 0.25 + 0.75 × complexity (quality counts more on hard queries).
 * Ties go to the more relevant expert.
 *
 * Greedy: it never explores, so an expert that scored badly comes back only as its counts decay
 * back towards the prior (half-life `halfLifeMs`).
 *
 * Reasons: relevance, success, latencyMs (the EWMA used), latencyFactor, quality (the factor).
 */
export class PerformanceStrategy extends BaseStrategy {
  readonly name = RoutingStrategy.PERFORMANCE_BASED;

  protected score(candidates: readonly Candidate[], _features: Float32Array, context: RoutingContext, now: number, keys: Float64Array): RankedCandidate[] {
    const { halfLifeMs, referenceLatencyMs } = this.options;
    const out: RankedCandidate[] = new Array(candidates.length);
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      const s = this.experts.get(c.id);
      const g = s === undefined ? 0 : s.factor(now, halfLifeMs);
      const success = s === undefined ? 0.5 : s.successMean(g);
      const latencyMs = s === undefined ? referenceLatencyMs : s.latencyFast;
      const latencyFactor = 1 / (1 + latencyMs / referenceLatencyMs);
      const quality = qualityFactor(s === undefined ? 0.5 : s.qualityMean(g), context.complexity);
      const score = c.relevance * success * latencyFactor * quality;
      out[i] = { id: c.id, score, reasons: { relevance: c.relevance, success, latencyMs, latencyFactor, quality } };
      const k = i * SORT_KEYS;
      keys[k] = score;
      keys[k + 1] = c.relevance;
      keys[k + 2] = 0;
      keys[k + 3] = 0;
    }
    return out;
  }
}
