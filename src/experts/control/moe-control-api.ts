/**
 * MoEControlAPI: the registry and lifecycle of an expert pool served by a request router.
 * @module
 */
import { EventEmitter } from 'node:events';
import * as v from '../../validate';
import { RewiringExperts, type RewiringExpertsOptions, type RoutingDecision } from '../routing/rewiring-experts';
import type { ExpertProfile } from '../routing/types';
import { type AllocationPlan, MAX_REPLICA_BUDGET, planAllocation } from './allocation';
import type { ExpertAttentionReason } from './attention-reasons';
import { checkId, checkKeywords, checkSpecializations, checkTargets, checkTrainingData, checkWorkload, resolveBalancing } from './checks';
import { ExpertCoordinator, type CoordinatorOptions } from './coordinator';
import { attempts, emptyCounters, type ExpertCounters, meanLatency, offeredLoad, successRate } from './counters';
import { dict } from '../../dict';
import { INTERNALS } from './internals';
import { type LifecyclePolicy, type LifecycleReport, measureDrift, overlappingPairs, positiveUnit, REBALANCING, type ResolvedPolicy, resolvePolicy } from './lifecycle';
import { callListeners, reportTimerError } from './listeners';
import { ExpertMonitor, type MonitorOptions } from './monitor';
import { RequestBalancer } from './request-balancer';
import { specializationProfile } from './specialization-profile';
import { type LedgerTap, TrafficLedger } from './traffic-ledger';
import type {
  AllocationOptions, CreateExpertOptions, ExpertPoolStatus, ExpertState, ManagedExpert, MergeExpertsOptions, MoEControlAPIOptions, RetireReason,
} from './types';

const OPTION_KEYS = [
  'numExperts', 'expertSpecializations', 'dynamicExpertAllocation', 'loadBalancing', 'router', 'routerOptions', 'replicaBudget', 'loadWindowMs', 'bucketMs',
  'retainMs', 'now',
] as const;
const CREATE_KEYS = ['specialization', 'baseModel', 'trainingData', 'performanceTargets', 'id', 'description', 'keywords', 'capacity'] as const;
const MERGE_KEYS = ['id', 'specialization', 'baseModel', 'performanceTargets'] as const;
const ALLOCATION_KEYS = ['currentWorkload', 'targetUtilization', 'rebalancingStrategy', 'replicaBudget', 'windowMs', 'retireIdle', 'apply'] as const;
const DEFAULT_CAPACITY = 4;

/**
 * Per router, the experts that a control plane runs on several replicas, with their capacity
 * per replica and replica count: the router holds only the product. A later control plane over
 * the same router reads them back rather than taking the product for one replica's capacity.
 */
const REPLICAS = new WeakMap<RewiringExperts, Map<string, { capacity: number; replicas: number }>>();

/**
 * The control plane of an expert pool: a registry of experts over a {@link RewiringExperts}
 * router, with their lifecycle (create, retire, merge), replica allocation plans, load
 * balancing, lifecycle rules on a timer, monitors and a coordinator. Every figure comes from
 * the router's traffic: the control plane counts each routed query and each recorded outcome
 * (the router's `'routed'` and `'outcome'` events) per expert, per domain and per time bucket.
 *
 * **Experts** are the router's: the registry adopts experts added to the router directly and
 * notices ones removed from it. `numExperts` is the capacity of the pool (active experts at
 * once): `createExpert` refuses to go beyond it, but an expert added to the router directly is
 * adopted even then — the router routes to it either way — and the status reports the excess
 * (`overCapacity`). Nothing is trained: training is out of scope by design, so `createExpert`
 * registers an expert served by a model or service the caller runs.
 *
 * **Replicas.** The registry keeps each expert's capacity per replica and its replica count;
 * the router gets their product (its concurrency). Control planes over the same router object
 * share that split, so a second one does not read the product as one replica's capacity. A
 * router restored from a file only has the products: a control plane over it reads each as one
 * replica's capacity (pass per-replica capacities in the profiles to keep the split).
 *
 * **Load balancing** (`loadBalancing`) applies DeepSeek-V3's loss-free bias controller to
 * request load (see {@link LoadBalancingOptions}).
 *
 * **Events:** `'created'` (ManagedExpert), `'retired'` (ManagedExpert), `'merged'`
 * (ManagedExpert, source ids), `'allocated'` (AllocationPlan), `'drift'` (DriftReport, when
 * detected), `'attention'` ({ id, reasons }), `'lifecycle'` (LifecycleReport), and `'error'`
 * for an error in a timer-driven pass. A lifecycle pass emits its events once it has finished,
 * each listener called on its own: one that throws stops neither the pass nor the other
 * listeners. {@link MoEControlAPI.runLifecycle} then throws the first listener error; on the
 * timer, errors go to the `'error'` listeners (dropped when there are none, and an `'error'`
 * listener that throws is ignored), so that a timer never crashes the process.
 *
 * @example
 * ```ts
 * import { MoEControlAPI } from '@capibara/core';
 * const control = new MoEControlAPI({ numExperts: 32, loadBalancing: true });
 * const d = control.router.routeQuery('This LEFT JOIN is slow on Postgres');
 * control.router.recordOutcome(d.id, { success: true, latencyMs: 420 });
 * console.log(control.getExpertStatus().loadDistribution);
 * control.close();
 * ```
 */
export class MoEControlAPI extends EventEmitter {
  /** Experts the pool may hold at once. */
  readonly numExperts: number;
  /** The router whose experts this registry manages. */
  readonly router: RewiringExperts;
  /** Whether lifecycle passes also apply allocation plans. */
  readonly dynamicExpertAllocation: boolean;
  /** Replicas the pool may run in all (the default budget of allocation plans): at least one per active expert. */
  readonly replicaBudget: number;
  /** Window of the load figures, ms. */
  readonly loadWindowMs: number;
  readonly #records = new Map<string, ManagedExpert>();
  readonly #ledger: TrafficLedger;
  readonly #now: () => number;
  readonly #detach: Array<() => void> = [];
  readonly #balancer: RequestBalancer | undefined;
  readonly #tap: LedgerTap;
  readonly #children = new Set<{ close(): void }>();
  #previous: Map<string, number> | null = null;
  #poolChanged = false;
  #policy: ResolvedPolicy = resolvePolicy(undefined);
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  // Events of the lifecycle pass running now, emitted when it ends; null outside a pass.
  #deferred: Array<[string, unknown[]]> | null = null;

  /**
   * Creates the control plane over `options.router`, or over a new router.
   *
   * @param options Pool size, specializations, balancing, router, windows, clock.
   * @throws TypeError / RangeError naming the bad option; RangeError when the router starts with more than `numExperts` experts, or `replicaBudget` experts.
   *
   * @example
   * ```ts
   * const control = new MoEControlAPI({ router, numExperts: 8, dynamicExpertAllocation: true });
   * ```
   */
  constructor(options: MoEControlAPIOptions = {}) {
    super();
    const o = v.options<MoEControlAPIOptions>('options', options, OPTION_KEYS);
    this.numExperts = o.numExperts === undefined ? 32 : v.integer('options.numExperts', o.numExperts, 1, 4096);
    this.#now = v.optionalFunction<() => number>('options.now', o.now) ?? Date.now;
    const specs = o.expertSpecializations === undefined ? [] : checkSpecializations('options.expertSpecializations', o.expertSpecializations);
    this.dynamicExpertAllocation = o.dynamicExpertAllocation === undefined ? false : v.boolean('options.dynamicExpertAllocation', o.dynamicExpertAllocation);
    const balancing = resolveBalancing('options.loadBalancing', o.loadBalancing);
    const replicaBudget = o.replicaBudget === undefined ? this.numExperts : v.integer('options.replicaBudget', o.replicaBudget, 1, MAX_REPLICA_BUDGET);
    this.replicaBudget = replicaBudget;
    const bucketMs = o.bucketMs === undefined ? 1000 : v.integer('options.bucketMs', o.bucketMs, 1);
    const retainMs = o.retainMs === undefined ? 3_600_000 : v.integer('options.retainMs', o.retainMs, bucketMs);
    // A window shorter than a bucket would hold no bucket at all.
    this.loadWindowMs = o.loadWindowMs === undefined ? Math.min(Math.max(60_000, bucketMs), retainMs) : v.integer('options.loadWindowMs', o.loadWindowMs, bucketMs, retainMs);

    if (o.router !== undefined) {
      if (!(o.router instanceof RewiringExperts)) throw v.typeError('options.router', 'RewiringExperts', o.router);
      if (o.routerOptions !== undefined) throw new TypeError('Expected options.router or options.routerOptions, not both');
      this.router = o.router;
    } else {
      const ro = v.options<RewiringExpertsOptions>('options.routerOptions', o.routerOptions, ROUTER_KEYS);
      const experts = ro.experts ?? (specs.length > 0 ? specs.map((s) => specializationProfile(s, s, {})) : undefined);
      try {
        this.router = new RewiringExperts({ clock: this.#now, ...ro, ...(experts === undefined ? {} : { experts }) });
      } catch (err) {
        // Name the option as the caller wrote it: options.routerOptions.x.
        if (err instanceof TypeError || err instanceof RangeError) {
          throw new (err.constructor as typeof Error)(err.message.replace(/ (for|in) options([.\s])/, ' $1 options.routerOptions$2'));
        }
        throw err;
      }
    }
    const profiles = this.router.experts();
    const missing = specs.filter((s) => !profiles.some((p) => p.domain === s));
    const starting = profiles.length + missing.length;
    if (starting > this.numExperts) throw v.rangeError('options.numExperts', `integer >= ${starting} (the experts the pool starts with)`, this.numExperts);
    if (starting > replicaBudget) throw v.rangeError('options.replicaBudget', `integer >= ${starting} (one replica per expert the pool starts with)`, replicaBudget);
    const now = this.#now();
    for (const p of profiles) this.#records.set(p.id, this.#adopt(p, now));
    for (const s of missing) {
      const id = this.#freeId(s);
      this.router.addExpert(specializationProfile(id, s, {}));
      this.#records.set(id, record(id, s, null, DEFAULT_CAPACITY, now));
    }

    this.#ledger = new TrafficLedger({ bucketMs, retainMs, now: this.#now, domainOf: (id) => this.#specializationOf(id) });
    this.#detach.push(this.#ledger.attach(this.router));
    // Query terms are counted only for the merge rule, from the first pass or policy that has it.
    this.#tap = this.#ledger.tap(false);
    if (balancing !== undefined) {
      const balancer = new RequestBalancer(balancing, this.#activeIds());
      this.#balancer = balancer;
      const onRouted = (d: RoutingDecision) => {
        const bias = balancer.observe(d.expertId, (id) => this.#records.get(id)?.replicas ?? 1);
        if (bias !== undefined) this.router.setRelevanceBias(bias);
      };
      this.router.on('routed', onRouted);
      this.#detach.push(() => this.router.off('routed', onRouted));
    }
    INTERNALS.set(this, {
      ledger: this.#ledger,
      now: this.#now,
      active: () => {
        this.#sync();
        return this.#active().map(copy);
      },
      health: (id) => this.router.expertHealth(id).available,
      adopt: (child) => {
        this.#children.add(child);
        return () => this.#children.delete(child);
      },
    });
  }

  /**
   * Whether {@link MoEControlAPI.close} was called.
   *
   * @example
   * ```ts
   * if (!control.closed) control.runLifecycle();
   * ```
   */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The pool's state from the router's counters: active, retired and specialized experts, the
   * distribution of the load window's queries, MaxVio, and per expert its counters, load,
   * utilisation, bias and health.
   *
   * @returns The status (see {@link ExpertPoolStatus}).
   *
   * @example
   * ```ts
   * const { activeCount, specializedCount, loadDistribution } = control.getExpertStatus();
   * ```
   */
  getExpertStatus(): ExpertPoolStatus {
    this.#open();
    const now = this.#now();
    const win = this.#ledger.since(now - this.loadWindowMs, now);
    const span = this.#ledger.span(this.loadWindowMs, now);
    const inFlight = this.router.getMetrics().inFlight;
    const bias = this.#balancer?.bias() ?? new Map<string, number>();
    const active = this.#active();
    const experts: ExpertState[] = active.map((r) => {
      const total = this.#ledger.totals(r.id);
      const window = win.get(r.id) ?? emptyCounters();
      const load = offeredLoad(window, span, meanLatency(total));
      const last = this.#ledger.lastUsedAt(r.id);
      return {
        id: r.id,
        specialization: r.specialization,
        replicas: r.replicas,
        capacity: r.capacity,
        total,
        window,
        // Own keys only: the router's record is a plain object.
        inFlight: Object.hasOwn(inFlight, r.id) ? inFlight[r.id]! : 0,
        successRate: successRate(total),
        meanLatencyMs: meanLatency(total),
        load,
        utilization: load / (r.capacity * r.replicas),
        bias: bias.get(r.id) ?? 0,
        health: this.router.expertHealth(r.id),
        lastUsedAt: last === undefined || last < r.createdAt ? null : last,
      };
    });
    const windowRouted = experts.reduce((s, e) => s + e.window.routed, 0);
    const perReplica = experts.map((e) => e.window.routed / e.replicas);
    const mean = perReplica.reduce((a, b) => a + b, 0) / perReplica.length;
    const specializations = dict<number>();
    for (const r of active) specializations[r.specialization] = (specializations[r.specialization] ?? 0) + 1;
    return {
      capacity: this.numExperts,
      activeCount: active.length,
      overCapacity: Math.max(0, active.length - this.numExperts),
      retiredCount: this.#records.size - active.length,
      specializedCount: active.filter((r) => r.specialization !== 'general').length,
      specializations,
      loadDistribution: dict(experts.map((e) => [e.id, windowRouted === 0 ? 0 : e.window.routed / windowRouted])),
      maxVio: mean > 0 ? (Math.max(...perReplica) - mean) / mean : NaN,
      windowRouted,
      windowMs: this.loadWindowMs,
      experts,
    };
  }

  /**
   * The experts of the registry (copies).
   *
   * @param options `includeRetired` (default false) also lists retired experts.
   * @returns Experts in registration order.
   *
   * @example
   * ```ts
   * const ids = control.getAllExperts().map((e) => e.id);
   * ```
   */
  getAllExperts(options: { includeRetired?: boolean } = {}): ManagedExpert[] {
    this.#open();
    const o = v.options<{ includeRetired: boolean }>('options', options, ['includeRetired']);
    const all = o.includeRetired === undefined ? false : v.boolean('options.includeRetired', o.includeRetired);
    return [...this.#records.values()].filter((r) => all || r.status === 'active').map(copy);
  }

  /**
   * One expert of the registry, active or retired (a copy).
   *
   * @param id Its id.
   * @returns The expert.
   * @throws RangeError for an id the registry does not know.
   *
   * @example
   * ```ts
   * control.getExpert('sql').replicas;
   * ```
   */
  getExpert(id: string): ManagedExpert {
    this.#open();
    v.string('id', id);
    const r = this.#records.get(id);
    if (r === undefined) throw v.rangeError('id', `id of an expert of the registry (${[...this.#records.keys()].join(', ')})`, id);
    return copy(r);
  }

  /**
   * Registers a new expert and adds it to the router. Its profile is built from the
   * specialization (see {@link CreateExpertOptions}). No training is done — training is out of
   * scope by design: the expert is served by `baseModel`, a model or service the caller runs; a
   * `trainingData` path is checked to exist and recorded, not read.
   *
   * @param options Specialization, base model, training data, targets, id, profile words, capacity.
   * @returns The new expert.
   * @throws TypeError / RangeError naming a bad option (a missing training-data path included);
   * RangeError when the pool already holds `numExperts` active experts, or as many as `replicaBudget`
   * (each needs a replica).
   *
   * @example
   * ```ts
   * const e = control.createExpert({ specialization: 'rust', baseModel: 'rust-coder-7b', keywords: ['rust', 'cargo', 'borrow checker'] });
   * ```
   */
  createExpert(options: CreateExpertOptions): ManagedExpert {
    this.#open();
    if (options === undefined) throw v.typeError('options', 'an options object', options);
    const o = v.options<CreateExpertOptions>('options', options, CREATE_KEYS);
    const specialization = v.nonEmptyString('options.specialization', o.specialization);
    const baseModel = v.nonEmptyString('options.baseModel', o.baseModel);
    const targets = checkTargets('options.performanceTargets', o.performanceTargets);
    const description = o.description === undefined ? undefined : v.nonEmptyString('options.description', o.description);
    const keywords = o.keywords === undefined ? undefined : checkKeywords('options.keywords', o.keywords);
    const capacity = o.capacity === undefined ? DEFAULT_CAPACITY : v.integer('options.capacity', o.capacity, 1);
    let id: string;
    if (o.id === undefined) id = this.#freeId(specialization);
    else if (this.#taken(checkId('options.id', o.id))) throw v.rangeError('options.id', 'an id no expert of the registry has', o.id);
    else id = o.id;
    const trainingData = o.trainingData === undefined ? null : checkTrainingData('options.trainingData', o.trainingData);
    const active = this.#active().length;
    if (active >= this.numExperts) {
      throw new RangeError(`MoEControlAPI.createExpert: the pool is full (${active} active experts, numExperts ${this.numExperts}); retire or merge experts first`);
    }
    if (active >= this.replicaBudget) {
      throw new RangeError(`MoEControlAPI.createExpert: the replica budget is spent (${active} active experts, one replica each, replicaBudget ${this.replicaBudget}); retire or merge experts first`);
    }
    this.router.addExpert(specializationProfile(id, specialization, { ...(description === undefined ? {} : { description }), ...(keywords === undefined ? {} : { keywords }), capacity }));
    const r = record(id, specialization, baseModel, capacity, this.#now());
    r.performanceTargets = targets;
    r.trainingData = trainingData;
    this.#records.set(id, r);
    this.#changed();
    this.#emit('created', copy(r));
    return copy(r);
  }

  /**
   * Retires an active expert: the router stops routing to it (its learned state goes); the
   * registry keeps its record and the ledger its traffic.
   *
   * @param id The expert.
   * @returns Its record, retired.
   * @throws RangeError for an id that is not an active expert, or for the last active expert.
   *
   * @example
   * ```ts
   * control.retireExpert('api');
   * ```
   */
  retireExpert(id: string): ManagedExpert {
    this.#open();
    const r = this.#activeRecord('id', id);
    this.#retire(r, 'manual', this.#now());
    return copy(r);
  }

  /**
   * Merges active experts into one. The merged expert's profile is the union of theirs (the
   * descriptions joined, the keywords united, the first one's name), its replicas the sum of
   * theirs, its capacity per replica the first one's; it inherits their traffic counters
   * (all-time, bucketed and the current lifecycle window). With the default id (the first
   * expert's), that expert keeps its learned routing state; the others' is dropped (learned
   * state of different experts cannot be added up honestly). The sources are retired with
   * reason `'merged'`.
   *
   * @param ids Two or more distinct active experts.
   * @param options The merged expert's id, specialization, base model, targets.
   * @returns The merged expert.
   * @throws TypeError / RangeError naming the bad argument.
   *
   * @example
   * ```ts
   * const merged = control.mergeExperts(['sql', 'postgres']);
   * ```
   */
  mergeExperts(ids: readonly string[], options: MergeExpertsOptions = {}): ManagedExpert {
    this.#open();
    if (!Array.isArray(ids)) throw v.typeError('ids', 'array of at least 2 expert ids', ids);
    if (ids.length < 2) throw v.rangeError('ids', 'array of at least 2 expert ids', ids);
    const recs = ids.map((id, i) => this.#activeRecord(`ids[${i}]`, id));
    if (new Set(ids).size !== ids.length) throw v.rangeError('ids', 'distinct expert ids', ids);
    const o = v.options<MergeExpertsOptions>('options', options, MERGE_KEYS);
    const into = o.id === undefined ? ids[0]! : checkId('options.id', o.id);
    if (!ids.includes(into) && this.#taken(into)) throw v.rangeError('options.id', 'one of ids, or an id no expert of the registry has', into);
    const fields: MergeExpertsOptions = {};
    if (o.specialization !== undefined) fields.specialization = v.nonEmptyString('options.specialization', o.specialization);
    if (o.baseModel !== undefined) fields.baseModel = v.nonEmptyString('options.baseModel', o.baseModel);
    if (o.performanceTargets !== undefined) fields.performanceTargets = checkTargets('options.performanceTargets', o.performanceTargets);
    return copy(this.#merge(recs, into, fields, this.#now()));
  }

  /**
   * Computes a replica allocation plan from the load measured over the window (see
   * {@link AllocationPlan} for the load model, the greedy EPLB rule and the utilisation
   * figures), and applies it when `apply` is set.
   *
   * @param options Workload override, target utilisation, rule, budget, window, apply.
   * @returns The plan.
   * @throws TypeError / RangeError naming a bad option (an unknown expert in `currentWorkload`, a budget below one replica per expert kept).
   *
   * @example
   * ```ts
   * const plan = control.optimizeExpertAllocation({ targetUtilization: 0.75, rebalancingStrategy: 'performance_based' });
   * if (!plan.meetsTarget) console.warn('the replica budget is too small for the load');
   * control.applyAllocationPlan(plan);
   * ```
   */
  optimizeExpertAllocation(options: AllocationOptions = {}): AllocationPlan {
    this.#open();
    const o = v.options<AllocationOptions>('options', options, ALLOCATION_KEYS);
    const workload = o.currentWorkload === undefined ? new Map<string, number>() : checkWorkload('options.currentWorkload', o.currentWorkload);
    for (const id of workload.keys()) this.#activeRecord('options.currentWorkload key', id);
    const plan = this.#plan(
      {
        targetUtilization: o.targetUtilization === undefined ? 0.75 : positiveUnit('options.targetUtilization', o.targetUtilization),
        rebalancingStrategy: o.rebalancingStrategy === undefined ? 'load_based' : v.oneOf('options.rebalancingStrategy', o.rebalancingStrategy, REBALANCING),
        replicaBudget: o.replicaBudget === undefined ? this.replicaBudget : v.integer('options.replicaBudget', o.replicaBudget, 1, MAX_REPLICA_BUDGET),
        budgetName: o.replicaBudget === undefined ? 'MoEControlAPI.replicaBudget' : 'options.replicaBudget',
        windowMs: o.windowMs === undefined ? this.loadWindowMs : v.integer('options.windowMs', o.windowMs, this.#ledger.bucketMs, this.#ledger.retainMs),
        retireIdle: o.retireIdle === undefined ? true : v.boolean('options.retireIdle', o.retireIdle),
      },
      workload,
      this.#now(),
    );
    if (o.apply !== undefined && v.boolean('options.apply', o.apply)) this.applyAllocationPlan(plan);
    return plan;
  }

  /**
   * Applies an allocation plan: each expert's replica count is recorded and its router
   * capacity becomes `capacity × replicas` (what LOAD_BALANCED and PREDICTIVE read as its
   * concurrency; the registry keeps `capacity` per replica), and the plan's `retire` experts are
   * retired (reason `'allocation'`; an id listed twice is retired once).
   *
   * @param plan From {@link MoEControlAPI.optimizeExpertAllocation} (or built by the caller with the same fields).
   * @throws TypeError / RangeError for a malformed plan, an expert that is no longer active, or a plan retiring every expert.
   *
   * @example
   * ```ts
   * control.applyAllocationPlan(control.optimizeExpertAllocation({ targetUtilization: 0.7 }));
   * ```
   */
  applyAllocationPlan(plan: Pick<AllocationPlan, 'replicas' | 'retire'>): void {
    this.#open();
    if (plan === null || typeof plan !== 'object') throw v.typeError('plan', 'an AllocationPlan', plan);
    const replicas = plan.replicas as unknown;
    if (replicas === null || typeof replicas !== 'object' || Array.isArray(replicas)) throw v.typeError('plan.replicas', 'object of expert id to replicas', replicas);
    if (!Array.isArray(plan.retire)) throw v.typeError('plan.retire', 'array of expert ids', plan.retire);
    const changes = Object.entries(replicas).map(([id, n]) => [this.#activeRecord('plan.replicas key', id), v.integer(`plan.replicas.${id}`, n, 1, MAX_REPLICA_BUDGET)] as const);
    const retire = [...new Set(plan.retire.map((id: unknown, i) => this.#activeRecord(`plan.retire[${i}]`, id)))];
    for (const r of retire) if (Object.hasOwn(replicas, r.id)) throw v.rangeError('plan.retire', 'ids not also given replicas', plan.retire);
    if (retire.length >= this.#active().length) throw new RangeError('MoEControlAPI.applyAllocationPlan: the plan retires every active expert');
    const profiles = new Map(this.router.experts().map((p) => [p.id, p]));
    for (const [r, n] of changes) {
      if (r.replicas === n) continue;
      r.replicas = n;
      this.#writeCapacity(r, profiles.get(r.id)!);
    }
    const now = this.#now();
    for (const r of retire) this.#retire(r, 'allocation', now);
    this.#emit('allocated', plan);
  }

  /**
   * Runs the lifecycle rules every `policy.intervalMs` on a timer that does not keep the
   * process alive (`unref`), until {@link MoEControlAPI.disableDynamicManagement} or
   * {@link MoEControlAPI.close}. Calling it again replaces the policy and restarts the timer.
   *
   * @param policy The rules (see {@link LifecyclePolicy}); defaults for those not given.
   * @returns This control plane (so `enableDynamicManagement(p).createMonitor(…)` reads as in the seed).
   *
   * @example
   * ```ts
   * control.enableDynamicManagement({ intervalMs: 60_000, maxFailureRate: 0.5, mergeOverlap: 0.85 });
   * control.on('retired', (e) => console.log('retired', e.id, e.retireReason));
   * ```
   */
  enableDynamicManagement(policy: LifecyclePolicy = {}): this {
    this.#open();
    this.#policy = resolvePolicy(policy);
    // Query terms are only needed by the merge rule.
    this.#tap.terms = this.#policy.mergeOverlap !== false;
    this.disableDynamicManagement();
    this.#timer = setInterval(() => this.#tick(), this.#policy.intervalMs);
    this.#timer.unref();
    return this;
  }

  /**
   * Stops the lifecycle timer (the policy stays for {@link MoEControlAPI.runLifecycle}).
   *
   * @example
   * ```ts
   * control.disableDynamicManagement();
   * ```
   */
  disableDynamicManagement(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Runs one lifecycle pass now over the window since the previous pass (or since creation),
   * with the policy of {@link MoEControlAPI.enableDynamicManagement} (defaults before it): drift
   * against the previous window, then retirement of failing and idle experts, then merges of
   * overlapping experts, then attention flags, then (with `dynamicExpertAllocation`) an applied
   * allocation plan. See {@link LifecyclePolicy} for the rules and their measures. The pass's
   * events are emitted when it has finished, each listener on its own.
   *
   * @param now Clock ms of the pass; default the clock's now.
   * @returns What the pass found and did.
   * @throws The first error a listener of the pass's events threw, once the pass is done and
   * every listener was called.
   *
   * @example
   * ```ts
   * const report = control.runLifecycle();
   * if (report.drift?.detected) console.warn('query mix changed', report.drift.shifts.slice(0, 3));
   * ```
   */
  runLifecycle(now?: number): LifecycleReport {
    this.#check();
    const at = now === undefined ? this.#now() : v.finite('now', now);
    const { report, errors } = this.#pass(at);
    if (errors.length > 0) throw errors[0];
    return report;
  }

  // The timer's pass: nothing it runs may throw out of it.
  #tick(): void {
    let errors: unknown[];
    try {
      errors = this.#pass(this.#now()).errors;
    } catch (err) {
      errors = [err];
    }
    for (const err of errors) reportTimerError(this, err);
  }

  // One pass with its events held back, then emitted; returns the listeners' errors.
  #pass(at: number): { report: LifecycleReport; errors: unknown[] } {
    const events: Array<[string, unknown[]]> = [];
    this.#deferred = events;
    let report: LifecycleReport;
    try {
      this.#sync();
      report = this.#lifecycle(at);
    } catch (err) {
      // What the pass did before failing stands: its events are still emitted.
      this.#deferred = null;
      this.#deliver(events);
      throw err;
    }
    this.#deferred = null;
    return { report, errors: this.#deliver(events) };
  }

  #lifecycle(at: number): LifecycleReport {
    const p = this.#policy;
    const w = this.#tap.take(at);
    // Terms are counted from the first pass whose policy merges (the window just closed lacks them).
    this.#tap.terms = p.mergeOverlap !== false;
    const routed = new Map<string, number>();
    let outcomes = 0;
    for (const [id, c] of w.experts) {
      if (c.routed > 0) routed.set(id, c.routed);
      outcomes += c.outcomes;
    }
    const drift = p.driftThreshold === false || this.#previous === null ? null : measureDrift(this.#previous, routed, p.driftThreshold, p.minDriftQueries, this.#poolChanged);
    this.#previous = new Map(routed);
    this.#poolChanged = false;
    const counters = (id: string): ExpertCounters => w.experts.get(id) ?? emptyCounters();
    const roomToShrink = () => this.#active().length > p.minActive;

    // Worst first (highest failure rate, longest idle; ties in registry order), so that when
    // minActive stops the rule, the experts kept are the better ones.
    const retired: LifecycleReport['retired'] = [];
    if (p.maxFailureRate !== false) {
      const limit = p.maxFailureRate;
      const failing = this.#active()
        .map((r) => ({ r, c: counters(r.id) }))
        .filter(({ c }) => c.outcomes >= p.minOutcomes && c.failures / c.outcomes > limit)
        .sort((x, y) => y.c.failures / y.c.outcomes - x.c.failures / x.c.outcomes);
      for (const { r, c } of failing) {
        if (!roomToShrink()) break;
        if (this.#retire(r, 'failing', at)) retired.push({ id: r.id, reason: 'failing', failureRate: c.failures / c.outcomes, outcomes: c.outcomes });
      }
    }
    if (p.idleMs !== false) {
      const limit = p.idleMs;
      const idle = this.#active()
        .map((r) => ({ r, idleForMs: at - Math.max(this.#ledger.lastUsedAt(r.id) ?? r.createdAt, r.createdAt) }))
        .filter((x) => x.idleForMs >= limit)
        .sort((x, y) => y.idleForMs - x.idleForMs);
      for (const { r, idleForMs } of idle) {
        if (!roomToShrink()) break;
        if (this.#retire(r, 'idle', at)) retired.push({ id: r.id, reason: 'idle', idleForMs });
      }
    }

    const merged: LifecycleReport['merged'] = [];
    // Overlap needs the terms of every query of the window.
    if (p.mergeOverlap !== false && w.termsComplete) {
      const done = new Set<string>();
      for (const { a, b, overlap } of overlappingPairs(routed, w.terms, this.#activeIds(), p.mergeOverlap, p.minMergeQueries)) {
        if (done.has(a) || done.has(b) || !roomToShrink()) continue;
        const [into, from] = (routed.get(a) ?? 0) >= (routed.get(b) ?? 0) ? [a, b] : [b, a];
        this.#merge([this.#records.get(into)!, this.#records.get(from)!], into, {}, at);
        merged.push({ into, from, overlap });
        done.add(a).add(b);
      }
    }

    const attention: LifecycleReport['attention'] = [];
    for (const r of this.#active()) {
      const c = counters(r.id);
      const reasons: ExpertAttentionReason[] = [];
      if (!this.router.expertHealth(r.id).available) reasons.push('cooling-down');
      if (c.outcomes >= p.minOutcomes) {
        if (p.maxFailureRate !== false && c.failures / c.outcomes > p.maxFailureRate) reasons.push('failing');
        const t = r.performanceTargets;
        if (t.accuracy !== undefined && successRate(c) < t.accuracy) reasons.push('below-accuracy-target');
        if (t.latency !== undefined && meanLatency(c) > t.latency) reasons.push('above-latency-target');
      }
      const load = offeredLoad(c, at - w.from, meanLatency(this.#ledger.totals(r.id)));
      if (load / (r.capacity * r.replicas) > 1) reasons.push('overloaded');
      if (reasons.length > 0) {
        attention.push({ id: r.id, reasons });
        this.#emit('attention', { id: r.id, reasons });
      }
    }

    let allocation: AllocationPlan | null = null;
    if (this.dynamicExpertAllocation) {
      const opts = {
        targetUtilization: p.targetUtilization, rebalancingStrategy: p.rebalancingStrategy, replicaBudget: this.replicaBudget, budgetName: 'MoEControlAPI.replicaBudget',
        windowMs: this.loadWindowMs, retireIdle: false,
      };
      allocation = this.#plan(opts, new Map(), at);
      this.applyAllocationPlan(allocation);
    }
    const report: LifecycleReport = { at, window: { from: w.from, to: at, routed: w.routed, outcomes }, drift, retired, merged, attention, allocation };
    if (drift?.detected) this.#emit('drift', drift);
    this.#emit('lifecycle', report);
    return report;
  }

  /**
   * A monitor of this pool's experts: it samples their counters every `monitoringFrequency`
   * seconds (or on {@link ExpertMonitor.sample}) and analyses windows of samples.
   *
   * @param options Frequency, metrics, retention (see {@link MonitorOptions}).
   * @returns The monitor; closed with this control plane.
   *
   * @example
   * ```ts
   * const monitor = control.createMonitor({ monitoringFrequency: 60, metrics: ['utilizationRate', 'performanceScore'] });
   * ```
   */
  createMonitor(options: MonitorOptions = {}): ExpertMonitor {
    this.#open();
    return new ExpertMonitor(this, options);
  }

  /**
   * A coordinator that plans the pool as a whole (allocation, experts to shift traffic away
   * from, projected effects) from measured data.
   *
   * @param options The router (must be this one's), an optional monitor, the window.
   * @returns The coordinator; closed with this control plane.
   *
   * @example
   * ```ts
   * const coordinator = control.createCoordinator({ router: control.router, monitor });
   * const plan = coordinator.optimizeSystemPerformance({ objectives: ['throughput', 'quality'], constraints: { maxLatencyMs: 2000 } });
   * ```
   */
  createCoordinator(options: CoordinatorOptions = {}): ExpertCoordinator {
    this.#open();
    return new ExpertCoordinator(this, options);
  }

  /**
   * Stops every timer (lifecycle, monitors, coordinators, collectors created over it), stops
   * counting the router's traffic and removes the load-balancing bias from the router. The
   * router itself stays usable. Idempotent; later calls of other methods throw.
   *
   * @example
   * ```ts
   * control.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.disableDynamicManagement();
    for (const c of [...this.#children]) c.close();
    for (const d of this.#detach) d();
    this.#tap.close();
    if (this.#balancer !== undefined) this.router.setRelevanceBias(null);
  }

  #check(): void {
    if (this.#closed) throw new Error('MoEControlAPI is closed');
  }

  #open(): void {
    this.#check();
    this.#sync();
  }

  // Adopts experts added to the router directly — even beyond numExperts (see overCapacity):
  // the router routes to them either way — and retires those removed from it.
  #sync(): void {
    const profiles = this.router.experts();
    const ids = new Set(profiles.map((p) => p.id));
    const now = this.#now();
    const removed: ManagedExpert[] = [];
    for (const r of this.#records.values()) {
      if (r.status !== 'active' || ids.has(r.id)) continue;
      Object.assign(r, { status: 'retired', retiredAt: now, retireReason: 'removed-from-router' });
      this.#writeSplit(r);
      removed.push(r);
    }
    let changed = removed.length > 0;
    for (const p of profiles) {
      const r = this.#records.get(p.id);
      if (r !== undefined && r.status === 'active') {
        r.specialization = p.domain;
        continue;
      }
      if (r !== undefined) {
        // A retired id added back to the router is a new expert: a new record, fresh counters.
        this.#records.delete(p.id);
        this.#ledger.reset(p.id);
      }
      this.#records.set(p.id, this.#adopt(p, now));
      changed = true;
    }
    if (changed) this.#changed();
    for (const r of removed) this.#emit('retired', copy(r));
  }

  // A record for an expert of the router: one replica of its router capacity, unless a control
  // plane over this router split that capacity into replicas.
  #adopt(p: ExpertProfile, now: number): ManagedExpert {
    const total = p.capacity ?? DEFAULT_CAPACITY;
    const r = record(p.id, p.domain, null, total, now);
    const split = REPLICAS.get(this.router)?.get(p.id);
    if (split !== undefined && split.capacity * split.replicas === total) Object.assign(r, split);
    return r;
  }

  // Gives the router an expert's capacity × replicas (`profile`: its current router profile).
  #writeCapacity(r: ManagedExpert, profile: ExpertProfile): void {
    this.router.addExpert({ ...profile, capacity: r.capacity * r.replicas });
    this.#writeSplit(r);
  }

  // Shares an expert's capacity per replica and replicas with other control planes of the router.
  #writeSplit(r: ManagedExpert): void {
    let splits = REPLICAS.get(this.router);
    if (splits === undefined) REPLICAS.set(this.router, (splits = new Map()));
    if (r.status === 'active' && r.replicas > 1) splits.set(r.id, { capacity: r.capacity, replicas: r.replicas });
    else splits.delete(r.id);
  }

  // Emits now, or at the end of the lifecycle pass running.
  #emit(event: string, ...args: unknown[]): void {
    if (this.#deferred !== null) this.#deferred.push([event, args]);
    else this.emit(event, ...args);
  }

  // Emits held-back events, each listener on its own; returns what the listeners threw.
  #deliver(events: ReadonlyArray<[string, unknown[]]>): unknown[] {
    const errors: unknown[] = [];
    for (const [event, args] of events) errors.push(...callListeners(this, event, args));
    return errors;
  }

  #changed(): void {
    this.#poolChanged = true;
    this.#balancer?.setExperts(this.#activeIds());
  }

  #active(): ManagedExpert[] {
    return [...this.#records.values()].filter((r) => r.status === 'active');
  }

  #activeIds(): string[] {
    return this.#active().map((r) => r.id);
  }

  #activeRecord(name: string, id: unknown): ManagedExpert {
    v.string(name, id);
    const r = this.#records.get(id as string);
    if (r === undefined || r.status !== 'active') throw v.rangeError(name, `id of an active expert (${this.#activeIds().join(', ')})`, id);
    return r;
  }

  #specializationOf(id: string): string {
    const r = this.#records.get(id);
    if (r !== undefined) return r.specialization;
    return this.router.experts().find((p) => p.id === id)?.domain ?? id;
  }

  #taken(id: string): boolean {
    return this.#records.has(id) || this.router.experts().some((p) => p.id === id);
  }

  #freeId(specialization: string): string {
    const base = specialization.length > 120 ? specialization.slice(0, 120) : specialization;
    let id = base;
    for (let n = 2; this.#taken(id); n++) id = `${base}-${n}`;
    return id;
  }

  // Returns false, doing nothing, for an expert retired meanwhile (by a listener, say).
  #retire(r: ManagedExpert, reason: RetireReason, now: number): boolean {
    if (r.status !== 'active') return false;
    if (this.#active().length <= 1) throw new RangeError(`MoEControlAPI.retireExpert: '${r.id}' is the last active expert (the router needs one)`);
    this.router.removeExpert(r.id);
    Object.assign(r, { status: 'retired', retiredAt: now, retireReason: reason });
    this.#writeSplit(r);
    this.#changed();
    this.#emit('retired', copy(r));
    return true;
  }

  #merge(recs: ManagedExpert[], into: string, o: MergeExpertsOptions, now: number): ManagedExpert {
    const profiles = new Map(this.router.experts().map((p) => [p.id, p]));
    const ps = recs.map((r) => profiles.get(r.id)!);
    const first = recs[0]!;
    const ids = recs.map((r) => r.id);
    const replicas = recs.reduce((s, r) => s + r.replicas, 0);
    const specialization = o.specialization ?? first.specialization;
    const profile: ExpertProfile = {
      id: into,
      domain: specialization,
      description: [...new Set(ps.map((p) => p.description))].join(' '),
      keywords: [...new Set(ps.flatMap((p) => p.keywords ?? []))],
      capacity: first.capacity * replicas,
    };
    if (ps[0]!.name !== undefined) profile.name = ps[0]!.name;
    for (const id of ids) if (id !== into) this.router.removeExpert(id);
    this.router.addExpert(profile);
    this.#ledger.merge(ids, into);
    // The previous lifecycle window is re-keyed too, so that a merge is not read as drift.
    if (this.#previous !== null) {
      let n = 0;
      for (const id of ids) {
        n += this.#previous.get(id) ?? 0;
        this.#previous.delete(id);
      }
      if (n > 0) this.#previous.set(into, n);
    }
    const target = this.#records.get(into)?.status === 'active' ? this.#records.get(into)! : record(into, specialization, first.baseModel, first.capacity, now);
    Object.assign(target, {
      specialization,
      baseModel: o.baseModel ?? first.baseModel,
      performanceTargets: o.performanceTargets ?? { ...first.performanceTargets },
      trainingData: target.trainingData ?? first.trainingData,
      // The router got first.capacity × replicas: the registry agrees, whichever id survives.
      capacity: first.capacity,
      replicas,
      mergedFrom: [...target.mergedFrom, ...ids.filter((id) => id !== into)],
    });
    for (const r of recs) {
      if (r.id !== into) {
        Object.assign(r, { status: 'retired', retiredAt: now, retireReason: 'merged', mergedInto: into });
        this.#writeSplit(r);
      }
    }
    this.#records.set(into, target);
    this.#writeSplit(target);
    this.#changed();
    this.#emit('merged', copy(target), ids.filter((id) => id !== into));
    return target;
  }

  #plan(
    o: { targetUtilization: number; rebalancingStrategy: AllocationPlan['rebalancingStrategy']; replicaBudget: number; budgetName: string; windowMs: number; retireIdle: boolean },
    workload: ReadonlyMap<string, number>,
    now: number,
  ): AllocationPlan {
    const win = this.#ledger.since(now - o.windowMs, now);
    const span = this.#ledger.span(o.windowMs, now);
    const inputs = this.#active().map((r) => {
      const c = win.get(r.id) ?? emptyCounters();
      return {
        id: r.id,
        load: workload.get(r.id) ?? offeredLoad(c, span, meanLatency(this.#ledger.totals(r.id))),
        capacity: r.capacity,
        replicas: r.replicas,
        routed: c.routed,
        attempts: attempts(c),
        successes: c.successes,
        outcomes: c.outcomes,
      };
    });
    return planAllocation(inputs, { createdAt: now, ...o });
  }
}

const ROUTER_KEYS = ['strategy', 'experts', 'maxFallbacks', 'embedder', 'health', 'decisionTtlMs', 'maxPendingDecisions', 'seed', 'clock'] as const;

function record(id: string, specialization: string, baseModel: string | null, capacity: number, now: number): ManagedExpert {
  return {
    id,
    specialization,
    baseModel,
    status: 'active',
    replicas: 1,
    capacity,
    performanceTargets: {},
    trainingData: null,
    createdAt: now,
    retiredAt: null,
    retireReason: null,
    mergedFrom: [],
    mergedInto: null,
  };
}

function copy(r: ManagedExpert): ManagedExpert {
  return { ...r, performanceTargets: { ...r.performanceTargets }, trainingData: r.trainingData === null ? null : { ...r.trainingData }, mergedFrom: [...r.mergedFrom] };
}
