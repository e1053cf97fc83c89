/**
 * Per-expert statistics shared by all strategies: decayed success counts, latency EWMAs, the last
 * latencies, quality.
 * @module
 */
import type { ExpertStatsView, StrategyOutcome } from './types';

/**
 * α of the latency EWMA: `ewma ← α·latency + (1 − α)·ewma`. 0.2 gives an effective window of
 * 2/α − 1 = 9 outcomes, close to the last 10 of LiteLLM's latency-based routing, while reacting
 * within a few outcomes.
 *
 * @example
 * ```ts
 * const ewma = LATENCY_EWMA_ALPHA * latencyMs + (1 - LATENCY_EWMA_ALPHA) * previous;
 * ```
 */
export const LATENCY_EWMA_ALPHA = 0.2;

/**
 * α of the slow latency EWMA (window 39 outcomes); PREDICTIVE's trend is the gap between the two.
 *
 * @example
 * ```ts
 * const slow = LATENCY_SLOW_ALPHA * latencyMs + (1 - LATENCY_SLOW_ALPHA) * previousSlow;
 * ```
 */
export const LATENCY_SLOW_ALPHA = 0.05;

/**
 * How many recent latencies are kept per expert (LiteLLM keeps 10).
 *
 * @example
 * ```ts
 * const window = RECENT_LATENCIES; // 10
 * ```
 */
export const RECENT_LATENCIES = 10;

/**
 * Decay stops after this many half-lives (weight 2⁻¹⁰): learned state never underflows, and an
 * unused LinUCB arm's uncertainty stays bounded (its bonus grows at most 32×).
 */
export const MAX_HALF_LIVES = 10;

/** The weight left after `dt` ms under a half-life (1 for dt <= 0, i.e. time going backwards is ignored). */
export function decayFactor(dt: number, halfLifeMs: number): number {
  if (!(dt > 0) || halfLifeMs === Infinity) return 1;
  // exp is several times faster than pow(2, ·) in V8, and this runs per candidate per ranking.
  return Math.exp(-Math.min(dt / halfLifeMs, MAX_HALF_LIVES) * Math.LN2);
}

/** JSON form of `ExpertStats`. */
export interface ExpertStatsJSON {
  observations: number;
  time: number;
  successes: number;
  failures: number;
  qualitySum: number;
  qualityCount: number;
  latencyFast: number;
  latencySlow: number;
  recent: number[];
}

/** What one strategy knows about one expert. Counts are decayed lazily: they hold their value as of `time`. */
export class ExpertStats {
  observations = 0;
  /** The time the decayed sums below refer to. */
  time = 0;
  successes = 0;
  failures = 0;
  qualitySum = 0;
  qualityCount = 0;
  latencyFast = 0;
  latencySlow = 0;
  /** Ring of the last latencies, oldest overwritten first; `observations` tells how many are filled. */
  readonly recent = new Float64Array(RECENT_LATENCIES);

  /** Folds in one outcome at `now`. */
  observe(outcome: StrategyOutcome, now: number, halfLifeMs: number): void {
    if (this.observations === 0) this.time = now;
    this.#decayTo(now, halfLifeMs);
    if (outcome.success) this.successes += 1;
    else this.failures += 1;
    if (outcome.quality !== undefined) {
      this.qualitySum += outcome.quality;
      this.qualityCount += 1;
    }
    const l = outcome.latencyMs;
    if (this.observations === 0) {
      this.latencyFast = l;
      this.latencySlow = l;
    } else {
      this.latencyFast += LATENCY_EWMA_ALPHA * (l - this.latencyFast);
      this.latencySlow += LATENCY_SLOW_ALPHA * (l - this.latencySlow);
    }
    this.recent[this.observations % RECENT_LATENCIES] = l;
    this.observations += 1;
  }

  #decayTo(now: number, halfLifeMs: number): void {
    if (now <= this.time) return;
    const g = decayFactor(now - this.time, halfLifeMs);
    this.successes *= g;
    this.failures *= g;
    this.qualitySum *= g;
    this.qualityCount *= g;
    this.time = now;
  }

  /** The decay factor of the sums at `now`; pass it to the readers below (one exp per expert per ranking). */
  factor(now: number, halfLifeMs: number): number {
    return decayFactor(now - this.time, halfLifeMs);
  }

  /** Posterior mean success under Beta(1, 1) over the counts decayed by `g`. */
  successMean(g: number): number {
    return (1 + this.successes * g) / (2 + (this.successes + this.failures) * g);
  }

  /** Decayed number of outcomes (LOAD_BALANCED's recent usage). */
  served(g: number): number {
    return (this.successes + this.failures) * g;
  }

  /** Mean reported quality, with a prior of 0.5 worth one report (so one lucky report is not 1.0). */
  qualityMean(g: number): number {
    return (0.5 + this.qualitySum * g) / (1 + this.qualityCount * g);
  }

  /** Mean of the last (up to) 10 latencies. */
  recentMean(): number {
    const n = Math.min(this.observations, RECENT_LATENCIES);
    let s = 0;
    for (let i = 0; i < n; i++) s += this.recent[i]!;
    return n === 0 ? 0 : s / n;
  }

  view(now: number, halfLifeMs: number): ExpertStatsView {
    const g = this.factor(now, halfLifeMs);
    return {
      observations: this.observations,
      successRate: this.successMean(g),
      effectiveObservations: this.served(g),
      latencyEwmaMs: this.latencyFast,
      recentLatencyMs: this.recentMean(),
      qualityMean: this.qualityMean(g),
    };
  }

  toJSON(): ExpertStatsJSON {
    return {
      observations: this.observations,
      time: this.time,
      successes: this.successes,
      failures: this.failures,
      qualitySum: this.qualitySum,
      qualityCount: this.qualityCount,
      latencyFast: this.latencyFast,
      latencySlow: this.latencySlow,
      recent: Array.from(this.recent),
    };
  }

  static fromJSON(json: ExpertStatsJSON): ExpertStats {
    const s = new ExpertStats();
    s.observations = json.observations;
    s.time = json.time;
    s.successes = json.successes;
    s.failures = json.failures;
    s.qualitySum = json.qualitySum;
    s.qualityCount = json.qualityCount;
    s.latencyFast = json.latencyFast;
    s.latencySlow = json.latencySlow;
    s.recent.set(json.recent);
    return s;
  }
}
