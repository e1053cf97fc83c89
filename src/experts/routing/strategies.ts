/**
 * The four selection strategies of request-level routing, behind one interface.
 * @module
 */
import * as v from '../../validate';
import { RoutingStrategy } from './types';
import { AdaptiveStrategy } from './strategies/adaptive';
import type { BaseStrategy } from './strategies/base';
import { ExpertStats, RECENT_LATENCIES } from './strategies/expert-stats';
import { num, numbers, object } from './strategies/json';
import { LoadBalancedStrategy } from './strategies/load-balanced';
import { OPTION_KEYS, resolveOptions } from './strategies/options';
import { PerformanceStrategy } from './strategies/performance';
import { PredictiveStrategy } from './strategies/predictive';
import type { ResolvedStrategyOptions, Strategy, StrategyOptions } from './strategies/types';

export type { Candidate, ExpertStatsView, RankedCandidate, ResolvedStrategyOptions, Strategy, StrategyOptions, StrategyOutcome } from './strategies/types';
export { LATENCY_EWMA_ALPHA, LATENCY_SLOW_ALPHA, RECENT_LATENCIES } from './strategies/expert-stats';
export { TREND_GAIN } from './strategies/predictive';
export { Prng } from './strategies/prng';
export { RandomProjection } from './strategies/linucb';

const NAMES = Object.values(RoutingStrategy) as RoutingStrategy[];

function construct(name: RoutingStrategy, options: ResolvedStrategyOptions, rngState?: number): BaseStrategy {
  switch (name) {
    case RoutingStrategy.PERFORMANCE_BASED:
      return new PerformanceStrategy(options, rngState);
    case RoutingStrategy.LOAD_BALANCED:
      return new LoadBalancedStrategy(options, rngState);
    case RoutingStrategy.ADAPTIVE:
      return new AdaptiveStrategy(options, rngState);
    case RoutingStrategy.PREDICTIVE:
      return new PredictiveStrategy(options, rngState);
  }
}

/**
 * Creates a strategy with nothing learned yet. Throws `RangeError`/`TypeError` naming the bad
 * argument (an unknown strategy, a negative `alpha`, an unknown option, …).
 *
 * @example
 * ```ts
 * import { RoutingStrategy } from './types';
 * const s = createStrategy(RoutingStrategy.ADAPTIVE, { dimensions: 256, seed: 7, alpha: 0.5 });
 * const ranking = s.rank([{ id: 'a', relevance: 0.7, inFlight: 0, capacity: 4 }], features, {}, now);
 * ```
 */
export function createStrategy(strategy: RoutingStrategy, options: StrategyOptions): Strategy {
  const name = v.oneOf('strategy', strategy, NAMES);
  return construct(name, resolveOptions(options));
}

const STRUCTURAL = ['dimensions', 'projectedDimensions', 'adaptiveMethod', 'lambda'] as const;

/**
 * Rebuilds a strategy from `Strategy.toJSON`'s output (after a JSON round trip): it ranks
 * exactly as the saved one did, PRNG state included. Throws naming the first bad field
 * (`json.experts.a.stats.successes`).
 *
 * `options` are the options the caller would create a fresh strategy with. `dimensions`,
 * `projectedDimensions`, `adaptiveMethod` and `lambda` shape the saved state: when given they must
 * equal the saved values (RangeError otherwise). `seed` is ignored: the saved projection and PRNG
 * stream continue. The other (tuning) options, when given, replace the saved ones.
 *
 * @example
 * ```ts
 * const saved = JSON.stringify(strategy.toJSON());
 * const again = strategyFromJSON(JSON.parse(saved), { dimensions: 256 });
 * ```
 */
export function strategyFromJSON(json: unknown, options: Partial<StrategyOptions> = {}): Strategy {
  const given = v.options<StrategyOptions>('options', options, OPTION_KEYS);
  const root = object('json', json);
  if (root.version !== 1) throw v.rangeError('json.version', '1', root.version);
  const name = v.oneOf('json.strategy', root.strategy, NAMES);
  const rawOptions = object('json.options', root.options);
  const saved = resolveOptions({ ...rawOptions, halfLifeMs: rawOptions.halfLifeMs === null ? Infinity : rawOptions.halfLifeMs });
  for (const key of STRUCTURAL) {
    if (given[key] !== undefined && given[key] !== saved[key]) {
      throw v.rangeError(`options.${key}`, `${String(saved[key])} (the saved state's ${key})`, given[key]);
    }
  }
  const tuned = Object.fromEntries(Object.entries(given).filter(([k, val]) => val !== undefined && k !== 'seed'));
  const resolved = resolveOptions({ ...saved, ...tuned });
  const rng = v.integer('json.rng', root.rng, 0, 0xffffffff);
  const experts = new Map<string, { stats: ExpertStats; model: unknown }>();
  for (const [id, raw] of Object.entries(object('json.experts', root.experts))) {
    const path = `json.experts.${id}`;
    const e = object(path, raw);
    const s = object(`${path}.stats`, e.stats);
    const p = `${path}.stats`;
    const stats = ExpertStats.fromJSON({
      observations: v.integer(`${p}.observations`, s.observations, 0),
      time: num(`${p}.time`, s.time),
      successes: num(`${p}.successes`, s.successes, 0),
      failures: num(`${p}.failures`, s.failures, 0),
      qualitySum: num(`${p}.qualitySum`, s.qualitySum, 0),
      qualityCount: num(`${p}.qualityCount`, s.qualityCount, 0),
      latencyFast: num(`${p}.latencyFast`, s.latencyFast, 0),
      latencySlow: num(`${p}.latencySlow`, s.latencySlow, 0),
      recent: numbers(`${p}.recent`, s.recent, RECENT_LATENCIES),
    });
    experts.set(id, { stats, model: e.model });
  }
  const strategy = construct(name, resolved, rng);
  strategy.restore(experts);
  return strategy;
}
