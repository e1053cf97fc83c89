/**
 * RewiringExperts: request-level routing of queries to expert models or services, learning
 * from outcomes, surviving experts that fail, rewiring fallback affinities.
 * @module
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { dict } from '../../dict';
import * as v from '../../validate';
import type { SyncEmbedder } from '../../text/index';
import { DEFAULT_EXPERTS } from './default-experts';
import { ExpertGraph } from './expert-graph';
import { HealthTracker } from './health';
import { ProfileScorer } from './profile-scorer';
import { loadState, saveState } from './state-file';
import { type Candidate, createStrategy, type Strategy, strategyFromJSON } from './strategies';
import { type ExpertProfile, type RoutingContext, type RoutingOutcome, RoutingStrategy } from './types';

/**
 * Options of {@link RewiringExperts}.
 *
 * @example
 * ```ts
 * const router = new RewiringExperts({ strategy: RoutingStrategy.ADAPTIVE, maxFallbacks: 2, seed: 7 });
 * ```
 */
export interface RewiringExpertsOptions {
  /** Selection strategy; default `PERFORMANCE_BASED`. */
  strategy?: RoutingStrategy;
  /** The experts; default {@link DEFAULT_EXPERTS} (python, sql, javascript, debug, ml, api). */
  experts?: readonly ExpertProfile[];
  /** Fallbacks listed in each decision, an integer in [0, 16]; default 3. */
  maxFallbacks?: number;
  /** Embeds queries and profiles (must be synchronous); default the offline hashed embedder. */
  embedder?: SyncEmbedder;
  /** Health window and cooldown rules (see {@link HealthTracker}). */
  health?: {
    /** Window of outcomes counted, ms; default 60,000. */
    windowMs?: number;
    /** Cool down when failures / requests in the window exceed it; default 0.5. */
    failureRate?: number;
    /** Requests in the window before the rate counts; default 2 (never on the first failure). */
    minRequests?: number;
    /** Cooldown length without a retry-after, ms; default 5,000. */
    cooldownMs?: number;
  };
  /** A decision without an outcome for this long (ms) stops counting as in flight; default 600,000. */
  decisionTtlMs?: number;
  /**
   * Decisions kept awaiting outcomes (made, not yet answered by a success), an integer >= 1;
   * past it the oldest is dropped as if its TTL ran out. Each holds the query's features:
   * `maxPendingDecisions × 256 × 4` bytes at most. Default 4,096.
   */
  maxPendingDecisions?: number;
  /** Seed of the strategies' randomness (ADAPTIVE exploration). Default: fixed (1). */
  seed?: number;
  /** Clock in ms (tests). Default `Date.now`. */
  clock?: () => number;
}

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

/**
 * Options of {@link RewiringExperts.routeWithFallback}.
 *
 * @example
 * ```ts
 * const opts: FallbackOptions = { context: { domain: 'sql' }, maxAttempts: 3, waitForRecovery: true, signal };
 * ```
 */
export interface FallbackOptions {
  /** Hints for the decision. */
  context?: RoutingContext;
  /** Experts tried at most (the choice, then fallbacks), an integer in [1, 17]; default 3. */
  maxAttempts?: number;
  /** When every expert of the chain is cooling down, wait for the earliest recovery (abortable) instead of failing. */
  waitForRecovery?: boolean;
  /** Aborts between attempts and is passed to `call`. */
  signal?: AbortSignal;
}

/**
 * What {@link RewiringExperts.routeWithFallback} returns.
 *
 * @example
 * ```ts
 * const { result, expertId, attempts } = await router.routeWithFallback(q, callExpert);
 * ```
 */
export interface FallbackResult<T> {
  /** What `call` returned for the expert that succeeded. */
  result: T;
  /** The expert that succeeded. */
  expertId: string;
  /** The decision made for the query. */
  decision: RoutingDecision;
  /** Every attempt in order. */
  attempts: Array<{
    /** The expert tried. */
    expertId: string;
    /** Whether `call` resolved. */
    success: boolean;
    /** Wall time of the call, ms. */
    latencyMs: number;
    /** The error's message when it failed. */
    error?: string;
  }>;
}

interface Pending {
  expertId: string;
  fallbacks: string[];
  /** Row of the features slab holding the query's features. */
  slot: number;
  at: number;
  open: boolean;
  /** routeWithFallback calls running on it: never evicted meanwhile. */
  calls: number;
}

/** Default of {@link RewiringExpertsOptions.maxPendingDecisions}. */
const MAX_PENDING = 4096;

const OPTION_KEYS = ['strategy', 'experts', 'maxFallbacks', 'embedder', 'health', 'decisionTtlMs', 'maxPendingDecisions', 'seed', 'clock'] as const;
const CONTEXT_KEYS = ['domain', 'complexity', 'latencyBudgetMs', 'exclude'] as const;
const OUTCOME_KEYS = ['success', 'latencyMs', 'quality', 'expertId', 'nonRetryable', 'retryAfterMs'] as const;
const FALLBACK_KEYS = ['context', 'maxAttempts', 'waitForRecovery', 'signal'] as const;
const STRATEGIES = Object.values(RoutingStrategy);

/**
 * Routes each query to the expert (model, service, agent) most likely to answer it well and
 * fast, and learns from what happens.
 *
 * **Decision.** `routeQuery` scores every expert's profile against the query locally (hashed
 * features and BM25, scored natively; see {@link ProfileScorer}), leaves out experts cooling
 * down after failures, lets the {@link RoutingStrategy} rank the rest, and lists fallbacks in
 * the order of the expert graph's affinities. Every number in the decision is measured.
 *
 * **Learning.** `recordOutcome` feeds the strategy (success rates, latencies, LinUCB), the health
 * tracker (LiteLLM-style cooldown: more than half the requests of the window failed, never on the
 * first; at once on a non-retryable error; for `retryAfterMs` when given) and, when a fallback
 * served the query, the expert graph, which strengthens or weakens that hand-off and emits
 * `'rewired'` when the fallback order changes.
 *
 * **Events.** `'rewired'` ({ from, to, before, after, success }), `'cooldown'` and
 * `'recovered'` (expert id, status); `'routed'` (decision, text, context) after each
 * `routeQuery`, and `'outcome'` (decision id, outcome with its `expertId` filled in) for each
 * outcome applied — what a control plane (see `MoEControlAPI`) counts traffic from. Listeners
 * observe: each is called on its own, once the router has recorded what the event reports, and
 * one that throws neither stops the others nor undoes the router's bookkeeping nor fails the
 * call (`routeQuery` still returns its decision, `routeWithFallback` its result). Its error goes
 * to the `'error'` listeners when there are any; otherwise (or when an `'error'` listener
 * throws) it is re-thrown on the next tick (`process.nextTick`), an uncaught exception as an
 * unhandled `'error'` event would be.
 *
 * @example
 * ```ts
 * import { RewiringExperts, RoutingStrategy } from '@capibara/core';
 * const router = new RewiringExperts({ strategy: RoutingStrategy.ADAPTIVE });
 * const d = router.routeQuery('How do I speed up a pandas groupby?');
 * const t0 = performance.now();
 * const ok = await callExpert(d.expertId);
 * router.recordOutcome(d.id, { success: ok, latencyMs: performance.now() - t0 });
 * ```
 */
export class RewiringExperts extends EventEmitter {
  /** The strategy in use. */
  readonly strategy: RoutingStrategy;
  readonly #experts = new Map<string, Required<Pick<ExpertProfile, 'capacity'>> & ExpertProfile>();
  readonly #scorer: ProfileScorer;
  readonly #health: HealthTracker;
  readonly #graph: ExpertGraph;
  #policy: Strategy;
  readonly #pending = new Map<string, Pending>();
  // Pending decision ids in routing order, for expiry; ids closed since are skipped when
  // reached. (Iterating #pending from its start instead scans the slots V8 leaves behind
  // deleted entries until a rehash: microseconds per query once many decisions are closed.)
  #order: string[] = [];
  #orderHead = 0;
  // The pending decisions' query features, one row per slot: no allocation per decision.
  #slab: Float32Array | undefined;
  readonly #freeSlots: number[] = [];
  #slots = 0;
  readonly #maxPending: number;
  readonly #inFlight = new Map<string, number>();
  readonly #routedTo = new Map<string, number>();
  readonly #maxFallbacks: number;
  readonly #ttl: number;
  readonly #clock: () => number;
  readonly #dims: number;
  readonly #options: RewiringExpertsOptions;
  #stats = { routed: 0, outcomes: 0, successes: 0, latencySum: 0 };
  #bias: ReadonlyMap<string, number> | undefined;
  // Decision ids: a random prefix per router and a counter (randomUUID per query cost ~1 µs).
  readonly #idPrefix = `${randomUUID()}-`;
  #idCount = 0;
  // Scratch of #fallbacks, grown as needed.
  #w = new Float64Array(64);
  #taken = new Uint8Array(64);

  /**
   * Creates a router over `options.experts` (default: the seed's six).
   *
   * @param options Strategy, experts, fallbacks, health rules, embedder, seed, clock.
   * @throws TypeError / RangeError for bad options or profiles, naming the field.
   *
   * @example
   * ```ts
   * const router = new RewiringExperts({ experts: [...DEFAULT_EXPERTS, { id: 'rust', domain: 'rust', description: 'Rust ownership, lifetimes, cargo' }] });
   * ```
   */
  constructor(options: RewiringExpertsOptions = {}) {
    super();
    const o = v.options<RewiringExpertsOptions>('options', options, OPTION_KEYS);
    this.#options = o;
    this.strategy = o.strategy === undefined ? RoutingStrategy.PERFORMANCE_BASED : v.oneOf('options.strategy', o.strategy, STRATEGIES);
    this.#maxFallbacks = o.maxFallbacks === undefined ? 3 : v.integer('options.maxFallbacks', o.maxFallbacks, 0, 16);
    this.#ttl = o.decisionTtlMs === undefined ? 600_000 : v.integer('options.decisionTtlMs', o.decisionTtlMs, 1);
    this.#maxPending = o.maxPendingDecisions === undefined ? MAX_PENDING : v.integer('options.maxPendingDecisions', o.maxPendingDecisions, 1, 1 << 20);
    this.#clock = o.clock === undefined ? Date.now : (v.optionalFunction<() => number>('options.clock', o.clock) as () => number);
    const seed = o.seed === undefined ? 1 : v.integer('options.seed', o.seed, 0);
    this.#scorer = new ProfileScorer(o.embedder === undefined ? {} : { embedder: o.embedder });
    this.#dims = this.#scorer.dimensions;
    const h = o.health === undefined ? {} : v.options<NonNullable<RewiringExpertsOptions['health']>>('options.health', o.health, ['windowMs', 'failureRate', 'minRequests', 'cooldownMs']);
    try {
      this.#health = new HealthTracker({
        ...h,
        now: this.#clock,
        onChange: (id, status) => this.#notify(status.available ? 'recovered' : 'cooldown', id, status),
      });
    } catch (err) {
      // Name the option as the caller wrote it: options.health.x, not the tracker's options.x.
      if (err instanceof TypeError || err instanceof RangeError) throw new (err.constructor as typeof Error)(err.message.replace(' for options.', ' for options.health.'));
      throw err;
    }
    this.#graph = new ExpertGraph({ onRewire: (e) => this.#notify('rewired', e) });
    this.#policy = createStrategy(this.strategy, { dimensions: this.#dims, seed });
    const experts = o.experts ?? DEFAULT_EXPERTS;
    if (!Array.isArray(experts)) throw v.typeError('options.experts', 'array of ExpertProfile', experts);
    experts.forEach((p: unknown, i) => {
      const id = (p as { id?: unknown } | null)?.id;
      if (typeof id === 'string' && this.#experts.has(id)) throw v.rangeError(`options.experts[${i}].id`, 'an id not used by an earlier expert', id);
      this.#add(p, `options.experts[${i}]`);
    });
  }

  /**
   * Adds an expert, or replaces the profile of one with the same id (its learned state stays).
   *
   * @param profile The expert.
   *
   * @example
   * ```ts
   * router.addExpert({ id: 'rust', domain: 'rust', description: 'Rust ownership, lifetimes, cargo, async' });
   * ```
   */
  addExpert(profile: ExpertProfile): void {
    this.#add(profile, 'profile');
  }

  /**
   * Removes an expert with its learned state and graph edges; decisions already made for it
   * can still record outcomes.
   *
   * @param id The expert.
   * @returns Whether it existed.
   *
   * @example
   * ```ts
   * router.removeExpert('ml');
   * ```
   */
  removeExpert(id: string): boolean {
    v.string('id', id);
    if (!this.#experts.delete(id)) return false;
    this.#scorer.remove(id);
    this.#health.remove(id);
    this.#graph.removeNode(id);
    this.#policy.remove(id);
    this.#routedTo.delete(id);
    this.#inFlight.delete(id);
    return true;
  }

  /**
   * The current experts' profiles.
   *
   * @returns Copies, in insertion order.
   *
   * @example
   * ```ts
   * router.experts().map((e) => e.id); // ['python', 'sql', ...]
   * ```
   */
  experts(): ExpertProfile[] {
    return [...this.#experts.values()].map((e) => ({ ...e, ...(e.keywords ? { keywords: [...e.keywords] } : {}) }));
  }

  /**
   * Chooses an expert for a query (see the class description).
   *
   * @param text The query, non-empty.
   * @param context Domain hint, complexity, latency budget, experts to exclude.
   * @returns The decision; record its outcome with {@link RewiringExperts.recordOutcome}.
   * @throws RangeError when no expert is left to route to (none registered, or all excluded).
   *
   * @example
   * ```ts
   * const d = router.routeQuery('SELECT with a slow LEFT JOIN', { latencyBudgetMs: 3000 });
   * ```
   */
  routeQuery(text: string, context: RoutingContext = {}): RoutingDecision {
    return this.#route(text, context, true);
  }

  /**
   * The decision {@link RewiringExperts.routeQuery} would make now, without making it: nothing
   * is recorded (no counters, no request in flight, no `'routed'` event), so its `id` is empty
   * and takes no outcome. For benchmarks and explanations. (ADAPTIVE with Thompson sampling
   * still draws from its random stream.)
   *
   * @param text The query, non-empty.
   * @param context As for `routeQuery`.
   * @returns The decision, with `id === ''`.
   *
   * @example
   * ```ts
   * const { expertId, ranking } = router.previewRoute('optimise this SQL join');
   * ```
   */
  previewRoute(text: string, context: RoutingContext = {}): RoutingDecision {
    return this.#route(text, context, false);
  }

  /**
   * Sets a per-expert additive bias on relevance, used to select experts only: candidates are
   * ranked on `relevance + bias` clamped to [0, 1] (the range strategies rank), while
   * `reasons.relevance` stays the unbiased value and `reasons.bias` reports the bias. This is
   * where a load controller (DeepSeek-V3's loss-free bias, see `BiasBalancer`) steers requests.
   * Experts missing from the map get 0; `null` removes the bias.
   *
   * @param bias Finite bias per expert id, or null.
   *
   * @example
   * ```ts
   * router.setRelevanceBias(new Map([['sql', -0.05], ['python', 0.05]]));
   * ```
   */
  setRelevanceBias(bias: ReadonlyMap<string, number> | null): void {
    if (bias === null) {
      this.#bias = undefined;
      return;
    }
    if (!(bias instanceof Map)) throw v.typeError('bias', 'Map of expert id to number, or null', bias);
    for (const [id, b] of bias) v.finite(`bias.get('${String(id)}')`, b);
    this.#bias = new Map(bias);
  }

  #route(text: string, context: RoutingContext, commit: boolean): RoutingDecision {
    v.string('text', text);
    if (text.trim() === '') throw v.rangeError('text', 'non-empty query', text);
    const ctx = checkContext(context);
    const now = this.#clock();
    if (commit) this.#expire(now);
    const scored = this.#scorer.score(text, ctx);
    if (scored.ids.length === 0) throw new RangeError('RewiringExperts.routeQuery: no expert to route to (none registered, or all excluded)');
    const bias = this.#bias;
    const n = scored.ids.length;
    const all: Candidate[] = new Array<Candidate>(n);
    const available: Candidate[] = [];
    for (let i = 0; i < n; i++) {
      const id = scored.ids[i]!;
      const relevance = bias === undefined ? scored.relevance[i]! : Math.min(1, Math.max(0, scored.relevance[i]! + (bias.get(id) ?? 0)));
      const c = { id, relevance, inFlight: this.#inFlight.get(id) ?? 0, capacity: this.#experts.get(id)!.capacity };
      all[i] = c;
      if (this.#health.isAvailable(id)) available.push(c);
    }
    let candidates = available;
    const degraded = candidates.length === 0;
    if (degraded) candidates = all;
    const ranking = this.#policy.rank(candidates, scored.features, ctx, now);
    const best = ranking[0]!;
    const rest = new Array<string>(ranking.length - 1);
    for (let k = 1; k < ranking.length; k++) rest[k - 1] = ranking[k]!.id;
    let fallbacks = this.#fallbacks(best.id, rest);
    if (!degraded && fallbacks.length < this.#maxFallbacks && candidates.length < all.length) {
      // Experts cooling down come last: routeWithFallback can wait for them.
      const cooling = this.#policy.rank(all.filter((c) => !candidates.includes(c)), scored.features, ctx, now);
      fallbacks = [...fallbacks, ...this.#fallbacks(best.id, cooling.map((r) => r.id))].slice(0, this.#maxFallbacks);
    }
    const i = scored.ids.indexOf(best.id);
    const part = scored.parts[i]!;
    const decision: RoutingDecision = {
      id: `${this.#idPrefix}${(this.#idCount++).toString(36)}`,
      expertId: best.id,
      score: best.score,
      fallbacks,
      strategy: this.strategy,
      reasons: {
        relevance: scored.relevance[i]!,
        cosine: part.cosine,
        bm25: part.bm25,
        domainBonus: part.domainBonus,
        strategy: best.reasons,
        inFlight: this.#inFlight.get(best.id) ?? 0,
        health: degraded ? 'degraded' : 'available',
        ...(bias === undefined ? {} : { bias: bias.get(best.id) ?? 0 }),
      },
      ranking: ranking.map((r) => ({ id: r.id, score: r.score })),
    };
    if (!commit) return { ...decision, id: '' };
    this.#pending.set(decision.id, { expertId: best.id, fallbacks, slot: this.#keep(scored.features), at: now, open: true, calls: 0 });
    this.#order.push(decision.id);
    this.#compactOrder();
    this.#inFlight.set(best.id, (this.#inFlight.get(best.id) ?? 0) + 1);
    this.#routedTo.set(best.id, (this.#routedTo.get(best.id) ?? 0) + 1);
    this.#stats.routed++;
    this.#notify('routed', decision, text, ctx);
    return decision;
  }

  /**
   * Feeds what a routed call came to back into the router. Call it once per expert tried for
   * the decision: first for the chosen expert, then for each fallback used (`expertId`). A
   * success closes the decision: later outcomes for it are rejected as unknown.
   *
   * @param decisionId From {@link RoutingDecision.id}.
   * @param outcome Success, latency, quality, which expert, and error facts.
   * @throws RangeError for an unknown (or expired) decision, an expert that is neither the
   * decision's choice nor one of its fallbacks, or a bad field.
   *
   * @example
   * ```ts
   * router.recordOutcome(d.id, { success: false, latencyMs: 30_000, retryAfterMs: 10_000 });
   * router.recordOutcome(d.id, { success: true, latencyMs: 800, expertId: d.fallbacks[0] });
   * ```
   */
  recordOutcome(decisionId: string, outcome: RoutingOutcome): void {
    v.string('decisionId', decisionId);
    const p = this.#pending.get(decisionId);
    if (p === undefined) throw v.rangeError('decisionId', 'id of a decision made in the last decisionTtlMs', decisionId);
    const o = v.options<RoutingOutcome>('outcome', outcome, OUTCOME_KEYS);
    const success = v.boolean('outcome.success', o.success);
    const latencyMs = v.finite('outcome.latencyMs', o.latencyMs, { min: 0 });
    const quality = o.quality === undefined ? undefined : unit('outcome.quality', o.quality);
    const expertId = o.expertId === undefined ? p.expertId : v.string('outcome.expertId', o.expertId);
    if (expertId !== p.expertId && !p.fallbacks.includes(expertId)) {
      throw v.rangeError('outcome.expertId', `the decision's expert or one of its fallbacks (${[p.expertId, ...p.fallbacks].join(', ')})`, expertId);
    }
    const nonRetryable = o.nonRetryable === undefined ? false : v.boolean('outcome.nonRetryable', o.nonRetryable);
    const retryAfterMs = o.retryAfterMs === undefined ? undefined : v.finite('outcome.retryAfterMs', o.retryAfterMs, { min: 0 });
    this.#apply(decisionId, p, {
      success, latencyMs, expertId, nonRetryable,
      ...(quality === undefined ? {} : { quality }),
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }

  // Applies a checked outcome to its decision (held by the caller, so eviction cannot lose it).
  #apply(decisionId: string, p: Pending, o: RoutingOutcome): void {
    const { success, latencyMs, quality, nonRetryable, retryAfterMs } = o;
    const expertId = o.expertId ?? p.expertId;
    const now = this.#clock();
    if (expertId === p.expertId && p.open) this.#release(p);
    if (this.#experts.has(expertId)) {
      this.#health.record(expertId, { success, nonRetryable: nonRetryable ?? false, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });
      this.#policy.update(expertId, this.#features(p.slot), { success, latencyMs, ...(quality === undefined ? {} : { quality }) }, now);
      if (expertId !== p.expertId && this.#experts.has(p.expertId)) this.#graph.rewire(p.expertId, expertId, success);
    }
    this.#stats.outcomes++;
    if (success) this.#stats.successes++;
    this.#stats.latencySum += latencyMs;
    this.#notify('outcome', decisionId, { ...o, expertId });
    // A success answers the query: the decision is done and its slot is free.
    if (success && p.calls === 0) this.#close(decisionId, p);
  }

  #close(decisionId: string, p: Pending): void {
    if (p.open) this.#release(p);
    if (this.#pending.get(decisionId) === p) {
      this.#pending.delete(decisionId);
      this.#freeSlots.push(p.slot);
    }
  }

  /**
   * Routes `text`, then runs `call` against the chosen expert and, on failure, against its
   * fallbacks in order, recording every outcome. A thrown error's `status` (HTTP 401, 403, 404
   * → non-retryable) and `retryAfterMs` are read when present.
   *
   * @param text The query.
   * @param call Calls one expert; rejects on failure.
   * @param options Context, attempts, waiting for recovery, abort.
   * @returns The first success with the attempts made.
   * @throws Error listing every attempt's error when all fail; the signal's reason on abort.
   *
   * @example
   * ```ts
   * const { result } = await router.routeWithFallback('fix this stack trace', (expert, signal) => fetch(urls[expert.id], { signal }));
   * ```
   */
  async routeWithFallback<T>(text: string, call: (expert: ExpertProfile, signal: AbortSignal | undefined) => Promise<T>, options: FallbackOptions = {}): Promise<FallbackResult<T>> {
    if (typeof call !== 'function') throw v.typeError('call', 'function', call);
    const o = v.options<FallbackOptions>('options', options, FALLBACK_KEYS);
    const maxAttempts = o.maxAttempts === undefined ? 3 : v.integer('options.maxAttempts', o.maxAttempts, 1, 17);
    const waitForRecovery = o.waitForRecovery === undefined ? false : v.boolean('options.waitForRecovery', o.waitForRecovery);
    const signal = o.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw v.typeError('options.signal', 'AbortSignal', signal);
    signal?.throwIfAborted();
    const decision = this.routeQuery(text, o.context ?? {});
    // Held here: outcomes are recorded on this record even if the pending table drops it meanwhile.
    const pending = this.#pending.get(decision.id)!;
    pending.calls++;
    const chain = [decision.expertId, ...decision.fallbacks];
    const attempts: FallbackResult<T>['attempts'] = [];
    let waited = false;
    try {
      for (let i = 0; i < chain.length && attempts.length < maxAttempts; i++) {
        signal?.throwIfAborted();
        // Every expert left is cooling down: wait once for the earliest recovery, then start over.
        if (waitForRecovery && !waited && !chain.slice(i).some((id) => this.#experts.has(id) && this.#health.isAvailable(id))) {
          waited = true;
          const at = this.#health.earliestRecovery(chain.filter((id) => this.#experts.has(id)));
          if (at !== null) await sleep(Math.max(0, at - this.#clock()), signal);
          i = -1;
          continue;
        }
        const id = chain[i]!;
        const profile = this.#experts.get(id);
        // The chosen expert is tried even when the decision was degraded (all cooling), fallbacks only when available.
        if (profile === undefined || ((i > 0 || decision.reasons.health === 'available') && !this.#health.isAvailable(id))) continue;
        if (id !== pending.expertId) this.#inFlight.set(id, (this.#inFlight.get(id) ?? 0) + 1);
        const t0 = performance.now();
        let outcome: RoutingOutcome;
        let result: T | undefined;
        try {
          result = await call({ ...profile }, signal);
          outcome = { success: true, latencyMs: performance.now() - t0, expertId: id };
        } catch (err) {
          const latencyMs = performance.now() - t0;
          if (id !== pending.expertId) this.#inFlight.set(id, Math.max(0, (this.#inFlight.get(id) ?? 1) - 1));
          if (signal?.aborted) throw signal.reason;
          const e = (err ?? {}) as { status?: unknown; retryAfterMs?: unknown; message?: unknown };
          const status = typeof e.status === 'number' ? e.status : undefined;
          const retryAfter = typeof e.retryAfterMs === 'number' && Number.isFinite(e.retryAfterMs) && e.retryAfterMs >= 0 ? e.retryAfterMs : undefined;
          outcome = { success: false, latencyMs, expertId: id, nonRetryable: status === 401 || status === 403 || status === 404, ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter }) };
          this.#apply(decision.id, pending, outcome);
          attempts.push({ expertId: id, success: false, latencyMs, error: describeError(err) });
          continue;
        }
        if (id !== pending.expertId) this.#inFlight.set(id, Math.max(0, (this.#inFlight.get(id) ?? 1) - 1));
        this.#apply(decision.id, pending, outcome);
        attempts.push({ expertId: id, success: true, latencyMs: outcome.latencyMs });
        return { result: result as T, expertId: id, decision, attempts };
      }
    } finally {
      // Done (answered, given up or aborted): the decision holds nothing in flight any more.
      pending.calls--;
      this.#close(decision.id, pending);
    }
    throw new Error(`RewiringExperts.routeWithFallback: every expert tried failed (${attempts.map((a) => `${a.expertId}: ${a.error}`).join('; ') || 'none was available'})`);
  }


  /**
   * Measured figures: queries routed, success rate and mean latency of the recorded outcomes,
   * rewiring events, utilisation and requests in flight per expert.
   *
   * @returns The metrics.
   *
   * @example
   * ```ts
   * const { successRate, utilization } = router.getMetrics();
   * ```
   */
  getMetrics(): RoutingMetrics {
    this.#expire(this.#clock());
    const s = this.#stats;
    // No prototype: an expert id such as `__proto__` is an ordinary key.
    const utilization = dict<number>();
    const inFlight = dict<number>();
    for (const id of this.#experts.keys()) {
      utilization[id] = s.routed === 0 ? 0 : (this.#routedTo.get(id) ?? 0) / s.routed;
      inFlight[id] = this.#inFlight.get(id) ?? 0;
    }
    return {
      totalRouted: s.routed,
      outcomes: s.outcomes,
      successRate: s.outcomes === 0 ? 0 : s.successes / s.outcomes,
      meanLatencyMs: s.outcomes === 0 ? 0 : s.latencySum / s.outcomes,
      rewiringEvents: this.#graph.rewiringEvents,
      utilization,
      inFlight,
    };
  }

  /**
   * Health of one expert: whether it is cooling down, until when, and its window's failure rate.
   *
   * @param id The expert.
   * @returns Its status.
   *
   * @example
   * ```ts
   * if (!router.expertHealth('sql').available) console.log('sql cools down until', router.expertHealth('sql').coolingUntil);
   * ```
   */
  expertHealth(id: string): ReturnType<HealthTracker['status']> {
    v.string('id', id);
    if (!this.#experts.has(id)) throw v.rangeError('id', `id of an expert (${[...this.#experts.keys()].join(', ')})`, id);
    return this.#health.status(id);
  }

  /**
   * Saves the experts, the strategy's learned state, the expert graph, health and counters to
   * `path` atomically (a crash mid-write leaves the old file).
   *
   * @param path The file.
   *
   * @example
   * ```ts
   * await router.save('./expert_graphs/router.json');
   * ```
   */
  async save(path: string): Promise<void> {
    v.nonEmptyString('path', path);
    await saveState(path, {
      strategy: this.strategy,
      experts: this.experts(),
      policy: this.#policy.toJSON(),
      graph: this.#graph.toJSON(),
      health: this.#health.toJSON(),
      stats: { ...this.#stats, routedTo: Object.fromEntries(this.#routedTo) },
    });
  }

  /**
   * A router restored from {@link RewiringExperts.save}: same experts, strategy state, graph,
   * health and counters. `options` supplies what is not saved (embedder, clock, rules).
   *
   * @param path The file.
   * @param options Options other than `strategy` and `experts`, which come from the file.
   * @returns The router.
   *
   * @example
   * ```ts
   * const router = await RewiringExperts.load('./expert_graphs/router.json');
   * ```
   */
  static async load(path: string, options: Omit<RewiringExpertsOptions, 'strategy' | 'experts'> = {}): Promise<RewiringExperts> {
    v.nonEmptyString('path', path);
    const state = (await loadState(path)) as SavedState;
    if (state === null || typeof state !== 'object' || !Array.isArray(state.experts)) throw new Error(`RewiringExperts.load: ${path} does not hold a router's state`);
    const router = new RewiringExperts({ ...options, strategy: state.strategy, experts: state.experts });
    router.#policy = strategyFromJSON(state.policy, { dimensions: router.#dims, seed: options.seed ?? 1 });
    if (router.#policy.name !== router.strategy) throw new Error(`RewiringExperts.load: ${path} says strategy ${state.strategy} but holds ${router.#policy.name} state`);
    router.#graph.load(state.graph);
    router.#health.load(state.health);
    const st = state.stats as Partial<SavedState['stats']> | undefined;
    const count = (k: keyof Omit<SavedState['stats'], 'routedTo'>) => v.finite(`${path}: stats.${k}`, st?.[k], { min: 0 });
    router.#stats = { routed: count('routed'), outcomes: count('outcomes'), successes: count('successes'), latencySum: count('latencySum') };
    if (st?.routedTo === null || typeof st?.routedTo !== 'object') throw v.typeError(`${path}: stats.routedTo`, 'object of counts', st?.routedTo);
    for (const [id, n] of Object.entries(st.routedTo)) router.#routedTo.set(id, v.finite(`${path}: stats.routedTo.${id}`, n, { min: 0 }));
    return router;
  }

  #add(profile: unknown, name: string): void {
    const p = checkProfile(name, profile);
    this.#scorer.set(p);
    this.#experts.set(p.id, { ...p, capacity: p.capacity ?? 4 });
    this.#graph.addNode(p.id);
  }

  // Fallback order: the graph's affinity from the chosen expert first, the strategy's rank second.
  // Only the best `maxFallbacks` are needed: a selection pass each, weights read once.
  #fallbacks(from: string, ranked: string[]): string[] {
    const n = ranked.length;
    if (this.#w.length < n) {
      this.#w = new Float64Array(2 * n);
      this.#taken = new Uint8Array(2 * n);
    }
    const w = this.#w;
    for (let i = 0; i < n; i++) w[i] = this.#graph.weight(from, ranked[i]!);
    const out: string[] = [];
    const taken = this.#taken.fill(0, 0, n);
    for (let k = 0; k < Math.min(this.#maxFallbacks, n); k++) {
      let best = -1;
      for (let i = 0; i < n; i++) if (!taken[i] && (best < 0 || w[i]! > w[best]!)) best = i; // ties: the better rank (lower i)
      taken[best] = 1;
      out.push(ranked[best]!);
    }
    return out;
  }

  #release(p: Pending): void {
    p.open = false;
    const n = this.#inFlight.get(p.expertId);
    if (n !== undefined) this.#inFlight.set(p.expertId, Math.max(0, n - 1));
  }

  // Calls each listener of an event on its own: see the class description.
  #notify(event: string, ...args: unknown[]): void {
    if (this.listenerCount(event) === 0) return;
    for (const listener of this.rawListeners(event)) {
      try {
        (listener as (...a: unknown[]) => unknown).apply(this, args);
      } catch (err) {
        this.#listenerError(err);
      }
    }
  }

  #listenerError(err: unknown): void {
    if (this.listenerCount('error') > 0) {
      try {
        this.emit('error', err);
        return;
      } catch (thrown) {
        err = thrown;
      }
    }
    process.nextTick(() => {
      throw err;
    });
  }

  // Decisions are taken in routing (time) order: drop the ones past their TTL, and the
  // oldest beyond maxPendingDecisions.
  #expire(now: number): void {
    while (this.#orderHead < this.#order.length) {
      const id = this.#order[this.#orderHead]!;
      const p = this.#pending.get(id);
      if (p !== undefined) {
        if (now - p.at < this.#ttl && this.#pending.size < this.#maxPending) break;
        // A routeWithFallback call still using it closes it when done.
        if (p.calls === 0) this.#close(id, p);
      }
      this.#orderHead++;
    }
  }

  // Keeps #order within about twice the pending decisions: O(1) amortised per decision.
  #compactOrder(): void {
    const head = this.#orderHead;
    if (this.#order.length - head > 2 * this.#pending.size + 1024) {
      this.#order = this.#order.slice(head).filter((id) => this.#pending.has(id));
      this.#orderHead = 0;
    } else if (head >= 1024 && 2 * head >= this.#order.length) {
      this.#order = this.#order.slice(head);
      this.#orderHead = 0;
    }
  }

  #keep(features: Float32Array): number {
    const d = this.#dims;
    this.#slab ??= new Float32Array(this.#maxPending * d);
    const slot = this.#freeSlots.pop() ?? this.#slots++;
    if ((slot + 1) * d > this.#slab.length) {
      // Only decisions with a routeWithFallback call running can outnumber maxPendingDecisions.
      const grown = new Float32Array(this.#slab.length * 2);
      grown.set(this.#slab);
      this.#slab = grown;
    }
    this.#slab.set(features, slot * d);
    return slot;
  }

  #features(slot: number): Float32Array {
    return this.#slab!.subarray(slot * this.#dims, (slot + 1) * this.#dims);
  }
}

interface SavedState {
  strategy: RoutingStrategy;
  experts: ExpertProfile[];
  policy: unknown;
  graph: unknown;
  health: unknown;
  stats: { routed: number; outcomes: number; successes: number; latencySum: number; routedTo: Record<string, number> };
}

function unit(name: string, x: unknown): number {
  const n = v.finite(name, x, { min: 0 });
  if (n > 1) throw v.rangeError(name, 'finite number in [0, 1]', n);
  return n;
}

function checkContext(context: unknown): RoutingContext {
  const c = v.options<RoutingContext>('context', context, CONTEXT_KEYS);
  const out: RoutingContext = {};
  if (c.domain !== undefined) out.domain = v.nonEmptyString('context.domain', c.domain);
  if (c.complexity !== undefined) out.complexity = unit('context.complexity', c.complexity);
  if (c.latencyBudgetMs !== undefined) out.latencyBudgetMs = v.finite('context.latencyBudgetMs', c.latencyBudgetMs, { positive: true });
  if (c.exclude !== undefined) {
    if (!Array.isArray(c.exclude)) throw v.typeError('context.exclude', 'array of expert ids', c.exclude);
    out.exclude = c.exclude.map((x: unknown, i) => v.string(`context.exclude[${i}]`, x));
  }
  return out;
}

function checkProfile(name: string, profile: unknown): ExpertProfile {
  const p = v.options<ExpertProfile>(name, profile, ['id', 'name', 'domain', 'description', 'keywords', 'capacity']);
  const id = v.nonEmptyString(`${name}.id`, p.id);
  if (id.length > 128) throw v.rangeError(`${name}.id`, 'string of at most 128 characters', id);
  const out: ExpertProfile = { id, domain: v.nonEmptyString(`${name}.domain`, p.domain), description: v.nonEmptyString(`${name}.description`, p.description) };
  if (p.name !== undefined) out.name = v.nonEmptyString(`${name}.name`, p.name);
  if (p.keywords !== undefined) {
    if (!Array.isArray(p.keywords)) throw v.typeError(`${name}.keywords`, 'array of non-empty strings', p.keywords);
    out.keywords = p.keywords.map((k: unknown, i) => v.nonEmptyString(`${name}.keywords[${i}]`, k));
  }
  if (p.capacity !== undefined) out.capacity = v.integer(`${name}.capacity`, p.capacity, 1);
  return out;
}

/** A thrown value's message for the attempts list; never throws itself. */
function describeError(err: unknown): string {
  try {
    const m = (err as { message?: unknown } | null | undefined)?.message;
    return String(m ?? err);
  } catch {
    return Object.prototype.toString.call(err);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
