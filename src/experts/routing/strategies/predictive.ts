/**
 * PREDICTIVE: forecasts each expert's latency and picks the best expected outcome within budget.
 * @module
 */
import { RoutingStrategy, type RoutingContext } from '../types';
import { BaseStrategy, qualityFactor, SORT_KEYS } from './base';
import { LATENCY_EWMA_ALPHA, LATENCY_SLOW_ALPHA } from './expert-stats';
import type { Candidate, RankedCandidate } from './types';

const LAG_FAST = (1 - LATENCY_EWMA_ALPHA) / LATENCY_EWMA_ALPHA; // 4 outcomes
const LAG_SLOW = (1 - LATENCY_SLOW_ALPHA) / LATENCY_SLOW_ALPHA; // 19 outcomes

/**
 * Weight of the EWMA gap in the forecast. On a linear ramp of slope s per outcome an EWMA lags
 * (1 − α)/α outcomes behind, so fast − slow = (LAG_SLOW − LAG_FAST)·s and the next latency is
 * fast + (LAG_FAST + 1)·s = fast + TREND_GAIN·(fast − slow), TREND_GAIN = 5/15 = 1/3.
 *
 * @example
 * ```ts
 * const forecastMs = ewmaFast + TREND_GAIN * (ewmaFast - ewmaSlow) + (inFlight / capacity) * serviceMs;
 * ```
 */
export const TREND_GAIN = (LAG_FAST + 1) / (LAG_SLOW - LAG_FAST);

/**
 * forecast = max(0, ewma + trend) + queue, where
 * - trend = TREND_GAIN × (ewmaFast − ewmaSlow) (α 0.2 and 0.05): exact on a linear ramp, 0 when steady;
 * - queue = inFlight / capacity × service, service = mean of the last 10 latencies (the wait behind
 *   requests already in flight);
 * - an expert with no outcomes is assumed at referenceLatencyMs, and assumed to fit the budget
 *   (otherwise a tight budget would lock it out for good).
 *
 * utility = relevance × success × qualityFactor − latencyWeight × forecast / budget (budget =
 * `context.latencyBudgetMs`, else referenceLatencyMs). Experts whose forecast exceeds the budget
 * rank after all that fit; within each group, by utility.
 *
 * score = utility; reasons: relevance, success, quality, forecastMs, trendMs, queueMs, fits (1/0).
 */
export class PredictiveStrategy extends BaseStrategy {
  readonly name = RoutingStrategy.PREDICTIVE;

  protected score(candidates: readonly Candidate[], _features: Float32Array, context: RoutingContext, now: number, keys: Float64Array): RankedCandidate[] {
    const { halfLifeMs, referenceLatencyMs, latencyWeight } = this.options;
    const budget = context.latencyBudgetMs;
    const scale = budget ?? referenceLatencyMs;
    const out: RankedCandidate[] = new Array(candidates.length);
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      const s = this.experts.get(c.id);
      let success = 0.5;
      let qualityMean = 0.5;
      let level = referenceLatencyMs;
      let trendMs = 0;
      let service = referenceLatencyMs;
      if (s !== undefined) {
        const g = s.factor(now, halfLifeMs);
        success = s.successMean(g);
        qualityMean = s.qualityMean(g);
        level = s.latencyFast;
        trendMs = TREND_GAIN * (s.latencyFast - s.latencySlow);
        service = s.recentMean();
      }
      const queueMs = (c.inFlight / c.capacity) * service;
      const forecastMs = Math.max(0, level + trendMs) + queueMs;
      const quality = qualityFactor(qualityMean, context.complexity);
      const fits = budget === undefined || s === undefined || forecastMs <= budget ? 1 : 0;
      const score = c.relevance * success * quality - latencyWeight * (forecastMs / scale);
      out[i] = { id: c.id, score, reasons: { relevance: c.relevance, success, quality, forecastMs, trendMs, queueMs, fits } };
      const k = i * SORT_KEYS;
      keys[k] = fits;
      keys[k + 1] = score;
      keys[k + 2] = c.relevance;
      keys[k + 3] = 0;
    }
    return out;
  }
}

