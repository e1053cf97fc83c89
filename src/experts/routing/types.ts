/**
 * Public types of request-level expert routing (RewiringExperts): experts, decisions, outcomes.
 * @module
 */

/**
 * How {@link RewiringExperts} picks among the experts that fit a query.
 *
 * - `PERFORMANCE_BASED`: relevance × observed success rate, penalised by observed latency.
 * - `LOAD_BALANCED`: among relevant experts, the one with the most headroom (fewest requests in
 *   flight relative to its capacity).
 * - `ADAPTIVE`: online learning from outcomes over query features (LinUCB), exploring while
 *   uncertain.
 * - `PREDICTIVE`: forecasts each expert's latency (recent trend + queueing behind its requests in
 *   flight) and picks the best expected outcome within the latency budget.
 *
 * @example
 * ```ts
 * const router = new RewiringExperts({ strategy: RoutingStrategy.ADAPTIVE });
 * ```
 */
export enum RoutingStrategy {
  PERFORMANCE_BASED = 'performance_based',
  LOAD_BALANCED = 'load_balanced',
  ADAPTIVE = 'adaptive',
  PREDICTIVE = 'predictive',
}

/**
 * An expert a query can be routed to: a model, a service, an agent.
 *
 * @example
 * ```ts
 * const sql: ExpertProfile = {
 *   id: 'sql', name: 'SQL expert', domain: 'sql',
 *   description: 'Writes and optimises SQL queries, schemas, indexes and joins',
 *   keywords: ['select', 'join', 'index', 'postgres', 'query plan'],
 *   capacity: 8,
 * };
 * ```
 */
export interface ExpertProfile {
  /** Unique id: non-empty, at most 128 characters. */
  id: string;
  /** Display name. Default: the id. */
  name?: string;
  /** Domain label queries can hint at (`context.domain`). */
  domain: string;
  /** What the expert is good at, in words: the text queries are matched against. */
  description: string;
  /** Terms typical of its queries; weigh more than the description. */
  keywords?: string[];
  /** Requests it serves at once before it counts as saturated, an integer >= 1. Default 4. */
  capacity?: number;
}

/**
 * Hints that come with a query.
 *
 * @example
 * ```ts
 * router.routeQuery('why does this segfault?', { domain: 'debug', latencyBudgetMs: 2000 });
 * ```
 */
export interface RoutingContext {
  /** Prefer experts of this domain (a bonus on relevance, not a filter). */
  domain?: string;
  /** Expected difficulty in [0, 1]; PERFORMANCE_BASED and PREDICTIVE weigh quality more on hard queries. */
  complexity?: number;
  /** Experts whose forecast latency exceeds it rank after those that fit. */
  latencyBudgetMs?: number;
  /** Never route to these experts. */
  exclude?: string[];
}

/**
 * What a call to an expert came to, fed back by {@link RewiringExperts.recordOutcome}.
 *
 * @example
 * ```ts
 * router.recordOutcome(decision.id, { success: true, latencyMs: 420, quality: 0.9 });
 * ```
 */
export interface RoutingOutcome {
  /** Whether the expert answered usefully. */
  success: boolean;
  /** Wall time of the call in ms, finite and >= 0. */
  latencyMs: number;
  /** Judged quality in [0, 1], when known. */
  quality?: number;
  /** The expert to charge, when a fallback (not the first choice) served the call. Default: the decision's expert. */
  expertId?: string;
  /** A failure that retrying cannot fix (e.g. HTTP 401 / 404): cools the expert down at once. */
  nonRetryable?: boolean;
  /** The expert asked to be left alone this long (ms), e.g. from `Retry-After`. */
  retryAfterMs?: number;
}

/**
 * Why an expert is cooling down.
 *
 * - `'failure-rate'`: failures / requests in the window went above the threshold.
 * - `'non-retryable'`: a failure that retrying cannot fix (e.g. HTTP 401 / 404).
 * - `'retry-after'`: the expert asked to be left alone for a while (e.g. `Retry-After`).
 *
 * @example
 * ```ts
 * const why: CooldownReason | null = tracker.status('gpt').reason;
 * ```
 */
export type CooldownReason = 'failure-rate' | 'non-retryable' | 'retry-after';

/**
 * Why a decision chose its expert.
 *
 * @example
 * ```ts
 * const { relevance, strategy, health } = decision.reasons;
 * ```
 */
export interface RoutingReasons {
  /** The chosen expert's relevance to the query in [0, 1] and its parts. */
  relevance: number;
  /** Cosine similarity of the query and the expert's profile embeddings. */
  cosine: number;
  /** The query's BM25 over the profile, divided by the best expert's. */
  bm25: number;
  /** Bonus for matching `context.domain`. */
  domainBonus: number;
  /** The strategy's own numbers for the chosen expert (success rate, forecast latency, UCB …). */
  strategy: Record<string, number>;
  /** Requests the chosen expert had in flight when the decision was made. */
  inFlight: number;
  /** `'available'`, or `'degraded'` when every candidate was cooling down and the best of them was chosen anyway. */
  health: 'available' | 'degraded';
  /** The chosen expert's relevance bias (see {@link RewiringExperts.setRelevanceBias}); present while a bias is set. */
  bias?: number;
}

/**
 * The result of {@link RewiringExperts.routeQuery}.
 *
 * @example
 * ```ts
 * const d = router.routeQuery('optimise this SQL join');
 * console.log(d.expertId, d.fallbacks, d.reasons);
 * ```
 */
export interface RoutingDecision {
  /** Pass it to {@link RewiringExperts.recordOutcome}. */
  id: string;
  /** The chosen expert. */
  expertId: string;
  /** The strategy's score of the chosen expert. */
  score: number;
  /**
   * Experts to try next, in order (fallback affinity from the expert graph, then the
   * strategy's rank); experts cooling down come after the available ones.
   */
  fallbacks: string[];
  /** The strategy that decided. */
  strategy: RoutingStrategy;
  /** Why. */
  reasons: RoutingReasons;
  /** Every candidate ranked, best first, with its strategy score. */
  ranking: Array<{
    /** The expert. */
    id: string;
    /** Its strategy score. */
    score: number;
  }>;
}

/**
 * Measured routing figures since creation (or since the state was saved, when loaded).
 *
 * @example
 * ```ts
 * const m = router.getMetrics();
 * console.log(m.totalRouted, m.successRate, m.meanLatencyMs, m.rewiringEvents, m.utilization);
 * ```
 */
export interface RoutingMetrics {
  /** routeQuery calls. */
  totalRouted: number;
  /** Outcomes recorded. */
  outcomes: number;
  /** Successful outcomes / outcomes (0 before any). */
  successRate: number;
  /** Mean `latencyMs` of the recorded outcomes (0 before any). */
  meanLatencyMs: number;
  /** Fallback-order changes made by the expert graph (see {@link ExpertGraph}). */
  rewiringEvents: number;
  /** Per expert: share of routed queries it was chosen for, in [0, 1]. */
  utilization: Record<string, number>;
  /** Per expert: requests in flight now (decided, no outcome yet). */
  inFlight: Record<string, number>;
}
