/**
 * RewiringExperts: request-level routing of queries to expert models or services, learning
 * from outcomes, surviving experts that fail, rewiring fallback affinities.
 * @module
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { dict } from '../../dict';
// ClosedError is imported for the doc link.
import { CloseGuard, type ClosedError } from '../../toolkit/closing';
import { emitSafely } from '../../toolkit/listeners';
import * as v from '../../validate';
import { ExpertGraph } from './expert-graph';
import { type FallbackOptions, type FallbackResult, type FallbackRouter, routeWithFallback } from './fallback';
import { FallbackOrder } from './fallback-order';
import { type ExpertHealth, HealthTracker } from './health';
import { type PendingDecision, PendingDecisions } from './pending-decisions';
import { checkProfile } from './profile';
import { ProfileScorer } from './profile-scorer';
import { readRouterState, RoutingCounters } from './router-state';
import { decide, type DecisionInputs } from './route-decision';
import { checkContext, checkOutcome, resolveRewiringOptions, restoringOptions, type RewiringExpertsOptions } from './rewiring-options';
import { type HealthView, linkSharedState, SharedHealth } from './shared-health';
import type { SharedRoutingState } from './shared-state';
import { saveState } from './state-file';
import { createStrategy, type Strategy, strategyFromJSON } from './strategies';
import type { ExpertProfile, RoutingContext, RoutingDecision, RoutingMetrics, RoutingOutcome, RoutingStrategy } from './types';


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
 * throws) to `process.emitWarning`, so it is seen without crashing the process.
 *
 * **Several replicas.** With `sharedState` (Redis), every outcome is also sent to a Lua script
 * that applies the same cooldown rules to the whole fleet's window of the expert, and appended
 * to a stream of outcomes. A cooldown that starts anywhere is published at once, so the other
 * replicas avoid the expert about one network hop after the failing replica's round trip; a poll
 * every `syncIntervalMs` (and every outcome's reply) refreshes the list of cooldowns and reads
 * the other replicas' outcomes, which feed this replica's strategy statistics (success rates,
 * latencies, quality; ADAPTIVE's Thompson counts) — LinUCB's per-expert matrices stay local:
 * they need each query's features, which are not shared. An expert is avoided while this
 * replica's own outcomes or the fleet's cool it down. `routeQuery` never waits for Redis: while
 * Redis is unreachable the router goes on with its own outcomes (and the fleet cooldowns it
 * knew), reports `'sharedState'` ({ connected: false, error }; a process warning when nobody
 * listens), and after reconnecting restores its own cooldowns in Redis and resynchronises.
 * Call {@link RewiringExperts.close} to end the connection.
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
  readonly #health: HealthView;
  readonly #shared: SharedRoutingState | undefined;
  readonly #guard = new CloseGuard('RewiringExperts');
  readonly #graph: ExpertGraph;
  readonly #policy: Strategy;
  readonly #pending: PendingDecisions;
  readonly #counters: RoutingCounters;
  readonly #clock: () => number;
  #bias: ReadonlyMap<string, number> | undefined;
  // Decision ids: a random prefix per router and a counter (randomUUID per query cost ~1 µs).
  readonly #idPrefix = `${randomUUID()}-`;
  #idCount = 0;
  readonly #fallbacks: FallbackOrder;
  // What routeWithFallback needs of this router.
  readonly #fallbackRouter: FallbackRouter;
  // What a decision reads of this router.
  readonly #decision: DecisionInputs;

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
    const o = resolveRewiringOptions(options);
    this.strategy = o.strategy;
    this.#fallbacks = new FallbackOrder(o.maxFallbacks);
    this.#clock = o.clock;
    const { embedder, cacheSize } = o.scorer;
    this.#scorer = new ProfileScorer(embedder === undefined ? { cacheSize } : { embedder, cacheSize });
    const dims = this.#scorer.dimensions;
    this.#pending = new PendingDecisions(dims, o.maxPendingDecisions, o.decisionTtlMs);
    const onChange = (id: string, status: ExpertHealth) => emitSafely(this, status.available ? 'recovered' : 'cooldown', id, status);
    this.#health = o.sharedState === undefined ? new HealthTracker({ ...o.health, now: this.#clock, onChange }) : new SharedHealth(o.health, this.#clock, onChange);
    this.#graph = new ExpertGraph({ onRewire: (e) => emitSafely(this, 'rewired', e) });
    const restore = o.restore;
    this.#policy = restore === undefined ? createStrategy(this.strategy, { dimensions: dims, seed: o.seed }) : strategyFromJSON(restore.state.policy, { dimensions: dims, seed: o.seed });
    for (const p of o.experts) this.#add(p);
    if (restore === undefined) {
      this.#counters = new RoutingCounters();
    } else {
      const { state, file } = restore;
      if (this.#policy.name !== this.strategy) throw new Error(`RewiringExperts.load: ${file} says strategy ${state.strategy} but holds ${this.#policy.name} state`);
      this.#graph.load(state.graph);
      this.#health.load(state.health);
      this.#counters = RoutingCounters.fromJSON(state.stats, `${file}: stats`);
    }
    this.#shared = o.sharedState === undefined ? undefined : linkSharedState(o.sharedState, {
      health: this.#health as SharedHealth,
      rules: o.health,
      now: this.#clock,
      experts: () => this.#experts.keys(),
      has: (id) => this.#experts.has(id),
      observe: (id, outcome, at) => this.#policy.observe(id, outcome, at),
      emitter: this,
      replica: this.#idPrefix.slice(0, -1),
    });
    this.#decision = {
      strategy: this.strategy,
      policy: this.#policy,
      health: this.#health,
      graph: this.#graph,
      fallbacks: this.#fallbacks,
      inFlight: (id) => this.#pending.inFlight(id),
      capacity: (id) => this.#experts.get(id)!.capacity,
    };
    this.#fallbackRouter = {
      routeQuery: (text, context) => this.routeQuery(text, context),
      pending: this.#pending,
      health: this.#health,
      profile: (id) => this.#experts.get(id),
      now: this.#clock,
      apply: (decisionId, p, outcome) => this.#apply(decisionId, p, outcome),
    };
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
    this.#add(checkProfile('profile', profile));
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
    this.#counters.remove(id);
    this.#pending.forget(id);
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
    this.#guard.check();
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
    if (commit) this.#pending.expire(now);
    const scored = this.#scorer.score(text, ctx);
    if (scored.ids.length === 0) throw new RangeError('RewiringExperts.routeQuery: no expert to route to (none registered, or all excluded)');
    const decision = decide(this.#decision, this.#bias, scored, ctx, now, commit ? `${this.#idPrefix}${(this.#idCount++).toString(36)}` : '');
    if (!commit) return decision;
    this.#pending.add(decision.id, decision.expertId, decision.fallbacks, scored.features, now);
    this.#counters.route(decision.expertId);
    // Checked first: no arguments array, no listener walk on the hot path when nobody listens.
    if (this.listenerCount('routed') > 0) emitSafely(this, 'routed', decision, text, ctx);
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
    this.#guard.check();
    v.string('decisionId', decisionId);
    const p = this.#pending.get(decisionId);
    if (p === undefined) throw v.rangeError('decisionId', 'id of a decision made in the last decisionTtlMs', decisionId);
    this.#apply(decisionId, p, checkOutcome(outcome, p.expertId, p.fallbacks));
  }

  // Applies a checked outcome to its decision (held by the caller, so eviction cannot lose it).
  #apply(decisionId: string, p: PendingDecision, o: RoutingOutcome): void {
    const { success, latencyMs, quality, nonRetryable, retryAfterMs } = o;
    const expertId = o.expertId ?? p.expertId;
    const now = this.#clock();
    if (expertId === p.expertId) this.#pending.release(p);
    if (this.#experts.has(expertId)) {
      this.#health.record(expertId, { success, nonRetryable: nonRetryable ?? false, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });
      this.#shared?.record(expertId, !success, !success && nonRetryable === true, success ? 0 : (retryAfterMs ?? 0), latencyMs, quality);
      this.#policy.update(expertId, this.#pending.features(p), { success, latencyMs, ...(quality === undefined ? {} : { quality }) }, now);
      if (expertId !== p.expertId && this.#experts.has(p.expertId)) this.#graph.rewire(p.expertId, expertId, success);
    }
    this.#counters.outcome(success, latencyMs);
    if (this.listenerCount('outcome') > 0) emitSafely(this, 'outcome', decisionId, { ...o, expertId });
    // A success answers the query: the decision is done and its slot is free.
    if (success && p.calls === 0) this.#pending.close(decisionId, p);
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
  routeWithFallback<T>(text: string, call: (expert: ExpertProfile, signal: AbortSignal | undefined) => Promise<T>, options: FallbackOptions = {}): Promise<FallbackResult<T>> {
    return routeWithFallback(this.#fallbackRouter, text, call, options);
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
    this.#pending.expire(this.#clock());
    const c = this.#counters;
    // No prototype: an expert id such as `__proto__` is an ordinary key.
    const inFlight = dict<number>();
    for (const id of this.#experts.keys()) inFlight[id] = this.#pending.inFlight(id);
    return {
      totalRouted: c.routed,
      outcomes: c.outcomes,
      successRate: c.outcomes === 0 ? 0 : c.successes / c.outcomes,
      meanLatencyMs: c.outcomes === 0 ? 0 : c.latencySum / c.outcomes,
      rewiringEvents: this.#graph.rewiringEvents,
      utilization: c.utilization(this.#experts.keys()),
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
      stats: this.#counters.toJSON(),
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
    const state = await readRouterState(path);
    return new RewiringExperts(restoringOptions(options, state, path));
  }

  /**
   * Refreshes this replica's view of the state shared through `sharedState` now: every fleet
   * cooldown, each expert's fleet window, and the outcomes other replicas recorded since the
   * last refresh (the poll does this every `syncIntervalMs`). Outcomes recorded before the call
   * have reached Redis (or failed to) when it resolves.
   *
   * @returns Whether Redis answered; false without `sharedState`, or while Redis is unreachable.
   *
   * @example
   * ```ts
   * if (!(await router.sync())) console.warn('routing on this replica\'s own outcomes only');
   * ```
   */
  async sync(): Promise<boolean> {
    this.#guard.check();
    return this.#shared === undefined ? false : this.#shared.poll();
  }

  /**
   * Ends the connection to the shared state (when there is one) and stops its poll. Every call
   * returns the first call's promise; afterwards `routeQuery`, `recordOutcome` and `sync` throw
   * {@link ClosedError}, `'RewiringExperts is closed'`.
   *
   * @example
   * ```ts
   * await router.close();
   * ```
   */
  close(): Promise<void> {
    return this.#guard.close(async () => {
      await this.#shared?.close();
    });
  }

  /**
   * Same as {@link RewiringExperts.close}, for `await using`.
   *
   * @example
   * ```ts
   * await using router = new RewiringExperts({ sharedState: { url: 'redis://127.0.0.1:6379' } });
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #add(p: ExpertProfile): void {
    this.#scorer.set(p);
    this.#experts.set(p.id, { ...p, capacity: p.capacity ?? 4 });
    this.#graph.addNode(p.id);
  }
}
