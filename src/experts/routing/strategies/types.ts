/**
 * The contract between the request router (RewiringExperts) and its four selection strategies.
 * @module
 */
import type { RoutingContext, RoutingOutcome, RoutingStrategy } from '../types';

/**
 * One expert a query may go to, as the router sees it at that moment.
 *
 * @example
 * ```ts
 * const c: Candidate = { id: 'sql', relevance: 0.82, inFlight: 1, capacity: 4 };
 * ```
 */
export interface Candidate {
  /** The expert's id. */
  id: string;
  /** How well the expert's profile matches the query, in [0, 1] (from the query scorer). */
  relevance: number;
  /** Requests routed to it that have not reported an outcome yet, >= 0. */
  inFlight: number;
  /** Requests it serves at once before it counts as saturated, > 0. */
  capacity: number;
}

/**
 * One line of a ranking: the expert, its score under the strategy, and the numbers behind it.
 * The order of the array is authoritative (PREDICTIVE puts experts that fit the latency budget
 * first whatever their score; LOAD_BALANCED puts the relevant ones first).
 *
 * @example
 * ```ts
 * const [best] = strategy.rank(candidates, features, {}, now);
 * console.log(best.id, best.score, best.reasons); // 'sql' 0.61 { relevance: 0.82, success: 0.93, … }
 * ```
 */
export interface RankedCandidate {
  /** The expert's id. */
  id: string;
  /** Its score under the strategy (higher is better within a tier). */
  score: number;
  /** The inputs of the score, by name (each strategy documents its own). */
  reasons: Record<string, number>;
}

/**
 * The part of an outcome the strategies learn from.
 *
 * @example
 * ```ts
 * const o: StrategyOutcome = { success: true, latencyMs: 420, quality: 0.9 };
 * ```
 */
export type StrategyOutcome = Pick<RoutingOutcome, 'success' | 'latencyMs' | 'quality'>;

/**
 * What a strategy has learned about one expert, for status reports. Every figure is computed from
 * the outcomes the strategy was fed.
 *
 * @example
 * ```ts
 * const s = strategy.stats('sql', now);
 * if (s) console.log(s.successRate, s.latencyEwmaMs);
 * ```
 */
export interface ExpertStatsView {
  /** Outcomes fed so far (not decayed). */
  observations: number;
  /** Posterior mean success rate under a Beta(1, 1) prior, over time-decayed counts. */
  successRate: number;
  /** Time-decayed effective number of outcomes behind `successRate`. */
  effectiveObservations: number;
  /** EWMA of latency, α = `LATENCY_EWMA_ALPHA` (0 before the first outcome). */
  latencyEwmaMs: number;
  /** Mean of the last `RECENT_LATENCIES` latencies, as LiteLLM's latency-based routing (0 before the first outcome). */
  recentLatencyMs: number;
  /** Mean of the reported quality values under a prior of 0.5 worth one report; 0.5 before any. */
  qualityMean: number;
}

/**
 * A selection strategy of request-level routing: it ranks the candidates of one query and
 * learns from the outcomes of routed queries. Time is always passed in (`now`, ms), never read.
 *
 * @example
 * ```ts
 * const strategy = createStrategy(RoutingStrategy.ADAPTIVE, { dimensions: 64, seed: 7 });
 * const ranking = strategy.rank(candidates, features, { complexity: 0.4 }, now);
 * strategy.update(ranking[0].id, features, { success: true, latencyMs: 310 }, now + 310);
 * ```
 */
export interface Strategy {
  /** Which strategy this is. */
  readonly name: RoutingStrategy;
  /** The options it runs with, defaults filled in. */
  readonly options: Readonly<ResolvedStrategyOptions>;
  /**
   * Orders the candidates best first and explains each with the numbers used.
   * `features` is the query embedding (unit norm, length `options.dimensions`); only its length is
   * checked here (the router builds it). Returns a new array; the input is not modified. Pure
   * except for ADAPTIVE with `adaptiveMethod: 'thompson'`, which draws from the seeded PRNG.
   *
   * @example
   * ```ts
   * const ranking = strategy.rank([{ id: 'a', relevance: 0.9, inFlight: 0, capacity: 4 }], features, {}, 0);
   * ```
   */
  rank(candidates: readonly Candidate[], features: Float32Array, context: RoutingContext, now: number): RankedCandidate[];
  /**
   * Learns from one outcome of a query routed to `id` (`features` are that query's).
   *
   * @example
   * ```ts
   * strategy.update('sql', features, { success: false, latencyMs: 30000 }, now);
   * ```
   */
  update(id: string, features: Float32Array, outcome: StrategyOutcome, now: number): void;
  /**
   * Learns from an outcome another replica recorded for `id`, whose query features are not
   * known here: the per-expert statistics (success counts, latencies, quality) and, with
   * ADAPTIVE's Thompson sampling (feature-blind), its counts; LinUCB's arms need the features
   * and stay as they are.
   *
   * @example
   * ```ts
   * strategy.observe('sql', { success: false, latencyMs: 30000 }, now);
   * ```
   */
  observe(id: string, outcome: StrategyOutcome, now: number): void;
  /**
   * Forgets everything learned about `id` (an expert that was removed).
   *
   * @example
   * ```ts
   * strategy.remove('sql');
   * ```
   */
  remove(id: string): void;
  /**
   * What has been learned about `id`, or undefined before its first outcome.
   *
   * @example
   * ```ts
   * strategy.stats('sql', now)?.successRate;
   * ```
   */
  stats(id: string, now: number): ExpertStatsView | undefined;
  /**
   * The learned state (and the PRNG state), as plain JSON-safe data for `strategyFromJSON`.
   *
   * @example
   * ```ts
   * const saved = JSON.stringify(strategy.toJSON());
   * ```
   */
  toJSON(): unknown;
}

/**
 * Options of `createStrategy`. One object serves every strategy; each reads its own fields.
 *
 * @example
 * ```ts
 * const opts: StrategyOptions = { dimensions: 256, seed: 1, adaptiveMethod: 'linucb', alpha: 0.5 };
 * ```
 */
export interface StrategyOptions {
  /** Length D of the query features, an integer in [1, 65536]. */
  dimensions: number;
  /** Seed of the PRNG (Thompson samples) and of the random projection; default 0x5eed. */
  seed?: number;
  /**
   * Outcomes lose half their weight every `halfLifeMs` of `now` (success counts, quality, LinUCB's
   * A and b, Thompson's counts), so an expert that starts failing, or recovers, is noticed within a
   * bounded number of outcomes. `Infinity` never forgets. Default 300,000 (5 minutes).
   */
  halfLifeMs?: number;
  /** Latency scale in ms: PERFORMANCE_BASED's factor `1 / (1 + ewma / ref)`, the cold-start latency guess, the latency penalty's midpoint. Default 1000. */
  referenceLatencyMs?: number;
  /** LOAD_BALANCED: candidates with relevance >= this fraction of the best are eligible. In [0, 1], default 0.8. */
  relevanceFraction?: number;
  /** ADAPTIVE: LinUCB over query features, or Thompson sampling of a Beta per expert (feature-blind). Default 'linucb'. */
  adaptiveMethod?: 'linucb' | 'thompson';
  /** ADAPTIVE (LinUCB): exploration weight α of `θᵀx + α√(xᵀA⁻¹x)`, >= 0. Default 0.5. */
  alpha?: number;
  /** ADAPTIVE (LinUCB): ridge λ of `A = λI + Σxxᵀ`, > 0. Default 1. */
  lambda?: number;
  /**
   * ADAPTIVE (LinUCB): features are projected to k = this many dimensions by a fixed seeded
   * random projection (feature hashing with random signs) before LinUCB; a constant 1 is appended,
   * so A is (k+1)². Values >= `dimensions` keep the features as they are. Ranking costs about
   * (k+1)(k+2)/2 multiply-adds per candidate, so it grows with k²: 16 (the default) learns 4–6
   * query clusters well; 32 costs about 3× more per ranking. Integer in [1, 1024].
   */
  projectedDimensions?: number;
  /** ADAPTIVE: score = relevanceWeight × relevance + UCB (or + Thompson sample), so cold start routes by relevance. >= 0, default 0.5. */
  relevanceWeight?: number;
  /** ADAPTIVE: reward = (success ? quality ?? 1 : 0) − latencyPenalty × L / (L + referenceLatencyMs). >= 0, default 0. */
  latencyPenalty?: number;
  /** PREDICTIVE: λ of utility = relevance × success × quality factor − λ × forecast / budget. >= 0, default 0.5. */
  latencyWeight?: number;
}

/**
 * {@link StrategyOptions} with every default filled in.
 *
 * @example
 * ```ts
 * const { alpha, halfLifeMs } = strategy.options;
 * ```
 */
export type ResolvedStrategyOptions = Required<StrategyOptions>;
