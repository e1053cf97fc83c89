/**
 * MoEControlAPI: the facade of an expert pool's control plane. It wires the pieces — the
 * registry (registry.ts), the options (control-options.ts, checks.ts), the traffic ledger, the
 * lifecycle passes (lifecycle-runner.ts over the pure lifecycle-plan.ts), the pool figures
 * (pool-figures.ts) and the held-back events (deferred-events.ts) — and applies what they decide.
 * Its length is the TSDoc of the public methods; each body is a few lines.
 * @module
 */
import { EventEmitter } from 'node:events';
import type { RewiringExperts } from '../routing/index';
import { CloseGuard } from '../../toolkit/closing';
import { reportError } from '../../toolkit/listeners';
import * as v from '../../validate';
import { type AllocationPlan, planAllocation } from './allocation';
import { type AllocationSettings, checkAllocationOptions, checkCreateOptions, checkMerge, checkPlan } from './checks';
import { resolveControlOptions } from './control-options';
import { ExpertCoordinator, type CoordinatorOptions } from './coordinator';
import { DeferredEvents } from './deferred-events';
import type { LifecyclePolicy, LifecycleReport } from './lifecycle';
import { LifecycleRunner } from './lifecycle-runner';
import { ExpertMonitor, type MonitorOptions } from './monitor';
import { allocationInputs, poolStatus, windowRows } from './pool-figures';
import { POOL_VIEW, type ExpertPoolControl, type PoolView } from './pool-view';
import { copy, ExpertRegistry } from './registry';
import { RequestBalancer } from './request-balancer';
import { TrafficLedger } from './traffic-ledger';
import type { AllocationOptions, CreateExpertOptions, ExpertPoolStatus, ManagedExpert, MergeExpertsOptions, MoEControlAPIOptions } from './types';

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
 * for an error in a timer-driven pass. A lifecycle pass emits its events once it has finished.
 * Each listener is called on its own, and one that throws changes nothing for the caller nor
 * stops the other listeners: its error goes to the `'error'` listeners, or to
 * `process.emitWarning` when there are none (or when an `'error'` listener throws too). A timer
 * pass that fails goes the same way, so that a timer never crashes the process.
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
export class MoEControlAPI extends EventEmitter implements ExpertPoolControl {
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
  readonly #guard = new CloseGuard('MoEControlAPI');
  readonly #events = new DeferredEvents(this);
  readonly #registry: ExpertRegistry;
  readonly #ledger: TrafficLedger;
  readonly #now: () => number;
  readonly #detach: Array<() => void> = [];
  readonly #balancer: RequestBalancer | undefined;
  readonly #lifecycle: LifecycleRunner;
  readonly #children = new Set<{ close(): void }>();
  readonly #view: PoolView;
  /** A router this control plane built (from `routerOptions`), closed with it; undefined for a given one. */
  readonly #ownRouter: RewiringExperts | undefined;
  #routerClosed: Promise<void> | undefined;

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
    const s = resolveControlOptions(options);
    this.numExperts = s.numExperts;
    this.router = s.router;
    this.#ownRouter = s.ownsRouter ? s.router : undefined;
    this.dynamicExpertAllocation = s.dynamicExpertAllocation;
    this.replicaBudget = s.replicaBudget;
    this.loadWindowMs = s.loadWindowMs;
    this.#now = s.now;
    this.#registry = new ExpertRegistry(this.router, {
      now: () => this.#now(),
      emit: (event, ...args) => this.#events.emit(event, ...args),
      changed: () => this.#changed(),
      resetTraffic: (id) => this.#ledger.reset(id),
      mergeTraffic: (ids, into) => {
        this.#ledger.merge(ids, into);
        this.#lifecycle.merged(ids, into);
      },
    });
    const profiles = this.router.experts();
    const missing = s.specializations.filter((spec) => !profiles.some((p) => p.domain === spec));
    const starting = profiles.length + missing.length;
    if (starting > this.numExperts) throw v.rangeError('options.numExperts', `integer >= ${starting} (the experts the pool starts with)`, this.numExperts);
    if (starting > this.replicaBudget) throw v.rangeError('options.replicaBudget', `integer >= ${starting} (one replica per expert the pool starts with)`, this.replicaBudget);
    this.#registry.addSpecializations(missing);

    this.#ledger = new TrafficLedger({ bucketMs: s.bucketMs, retainMs: s.retainMs, now: this.#now, domainOf: (id) => this.#registry.specializationOf(id) });
    this.#detach.push(this.#ledger.attach(this.router));
    this.#lifecycle = new LifecycleRunner({
      registry: this.#registry,
      ledger: this.#ledger,
      router: this.router,
      events: this.#events,
      now: () => this.#now(),
      ...(this.dynamicExpertAllocation ? { allocate: (p, at) => this.#allocate(p.targetUtilization, p.rebalancingStrategy, at) } : {}),
    });
    if (s.balancing !== undefined) {
      this.#balancer = new RequestBalancer(s.balancing, this.#registry.activeIds());
      this.#detach.push(this.#balancer.attach(this.router, (id) => this.#registry.get(id)?.replicas ?? 1));
    }
    this.#view = {
      router: this.router,
      ledger: this.#ledger,
      loadWindowMs: this.loadWindowMs,
      replicaBudget: this.replicaBudget,
      now: () => this.#now(),
      check: () => this.#guard.check(),
      active: () => {
        this.#registry.sync();
        return this.#registry.active().map(copy);
      },
      available: (id) => this.router.expertHealth(id).available,
      applyAllocationPlan: (plan) => this.applyAllocationPlan(plan),
      adopt: (child) => {
        this.#children.add(child);
        return () => this.#children.delete(child);
      },
    };
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
    return this.#guard.closed;
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
    const active = this.#registry.active();
    return poolStatus({
      now: this.#now(),
      windowMs: this.loadWindowMs,
      capacity: this.numExperts,
      retiredCount: this.#registry.all().length - active.length,
      active,
      ledger: this.#ledger,
      router: this.router,
      bias: this.#balancer?.bias() ?? new Map<string, number>(),
    });
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
    return (all ? this.#registry.all() : this.#registry.active()).map(copy);
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
    return copy(this.#registry.record('id', id));
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
    const e = checkCreateOptions(options, this.#registry);
    const active = this.#registry.active().length;
    if (active >= this.numExperts) {
      throw new RangeError(`MoEControlAPI.createExpert: the pool is full (${active} active experts, numExperts ${this.numExperts}); retire or merge experts first`);
    }
    if (active >= this.replicaBudget) {
      throw new RangeError(`MoEControlAPI.createExpert: the replica budget is spent (${active} active experts, one replica each, replicaBudget ${this.replicaBudget}); retire or merge experts first`);
    }
    return copy(this.#registry.create(e));
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
    const r = this.#registry.activeRecord('id', id);
    this.#registry.retire(r, 'manual', this.#now());
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
    const { records, into, fields } = checkMerge(ids, options, this.#registry);
    return copy(this.#registry.merge(records, into, fields, this.#now()));
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
    const defaults = { replicaBudget: this.replicaBudget, windowMs: this.loadWindowMs, bucketMs: this.#ledger.bucketMs, retainMs: this.#ledger.retainMs };
    const { settings, workload, apply } = checkAllocationOptions(options, defaults, this.#registry);
    const plan = this.#plan(settings, workload, this.#now());
    if (apply) this.applyAllocationPlan(plan);
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
    const { changes, retire } = checkPlan(plan, this.#registry);
    this.#registry.setReplicas(changes);
    const now = this.#now();
    for (const r of retire) this.#registry.retire(r, 'allocation', now);
    this.#events.emit('allocated', plan);
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
    this.#lifecycle.start(policy, (err) => reportError(this, err, 'the lifecycle timer'));
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
    this.#lifecycle.stop();
  }

  /**
   * Runs one lifecycle pass now over the window since the previous pass (or since creation),
   * with the policy of {@link MoEControlAPI.enableDynamicManagement} (defaults before it): drift
   * against the previous window, then retirement of failing and idle experts, then merges of
   * overlapping experts, then attention flags, then (with `dynamicExpertAllocation`) an applied
   * allocation plan. See {@link LifecyclePolicy} for the rules and their measures. The pass's
   * events are emitted when it has finished, each listener on its own; a listener that throws
   * changes nothing for the caller (its error goes to the `'error'` listeners, see the class).
   *
   * @param now Clock ms of the pass; default the clock's now.
   * @returns What the pass found and did.
   * @throws RangeError for a `now` that is not finite.
   *
   * @example
   * ```ts
   * const report = control.runLifecycle();
   * if (report.drift?.detected) console.warn('query mix changed', report.drift.shifts.slice(0, 3));
   * ```
   */
  runLifecycle(now?: number): LifecycleReport {
    this.#guard.check();
    const at = now === undefined ? this.#now() : v.finite('now', now);
    return this.#lifecycle.run(at);
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
   * counting the router's traffic and removes the load-balancing bias from the router. A router
   * the control plane built (from `routerOptions`, or the default one) is closed with it: its
   * `sharedState` connection to Redis and its poll end, and its later calls throw
   * {@link ClosedError}; `await control.router.close()` (the same promise) waits for the
   * connection to end. A router passed as `options.router` stays usable: its owner closes it.
   * Idempotent; later calls of other methods throw {@link ClosedError}.
   *
   * @example
   * ```ts
   * control.close();
   * ```
   */
  close(): void {
    this.#guard.closeSync(() => {
      this.#lifecycle.close();
      for (const c of [...this.#children]) c.close();
      for (const d of this.#detach) d(); // the balancer's removes its bias from the router
      if (this.#ownRouter !== undefined) {
        this.#routerClosed = this.#ownRouter.close();
        // Awaited by Symbol.asyncDispose and by router.close(); close() itself returns at once.
        this.#routerClosed.catch(() => undefined);
      }
    });
  }

  /**
   * {@link MoEControlAPI.close}, for `await using`: also waits until a router the control plane
   * built has closed its connection.
   *
   * @example
   * ```ts
   * await using control = new MoEControlAPI();
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#routerClosed;
  }

  /** The view that monitors, coordinators and collectors created over this control plane take. @internal */
  [POOL_VIEW](): PoolView {
    return this.#view;
  }

  #open(): void {
    this.#guard.check();
    this.#registry.sync();
  }

  // The allocation a lifecycle pass applies (with dynamicExpertAllocation): idle experts are left to the idle rule.
  #allocate(targetUtilization: number, rebalancingStrategy: AllocationPlan['rebalancingStrategy'], at: number): AllocationPlan {
    const settings: AllocationSettings = {
      targetUtilization, rebalancingStrategy, replicaBudget: this.replicaBudget, budgetName: 'MoEControlAPI.replicaBudget', windowMs: this.loadWindowMs, retireIdle: false,
    };
    const plan = this.#plan(settings, new Map(), at);
    this.applyAllocationPlan(plan);
    return plan;
  }

  #plan(settings: AllocationSettings, workload: ReadonlyMap<string, number>, now: number): AllocationPlan {
    const { rows } = windowRows(this.#ledger, this.#registry.active(), settings.windowMs, now);
    return planAllocation(allocationInputs(rows, workload), { createdAt: now, ...settings });
  }

  #changed(): void {
    this.#lifecycle.poolChanged();
    this.#balancer?.setExperts(this.#registry.activeIds());
  }
}
