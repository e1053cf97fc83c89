/**
 * ExpertCoordinator: plans an expert pool as a whole from measured data — replicas, experts to
 * move traffic away from — and projects the effects.
 * @module
 */
import { EventEmitter } from 'node:events';
import type { RewiringExperts } from '../routing/index';
import { CloseGuard } from '../../toolkit/closing';
import { emitSafely, reportError } from '../../toolkit/listeners';
import * as v from '../../validate';
import { type AllocationPlan, type AllocationInput, MAX_REPLICA_BUDGET, planAllocation } from './allocation';
import type { ExpertAttentionReason, RecommendedAction } from './attention-reasons';
import { attempts, meanLatency } from './counters';
import { timerSeconds } from './checks';
import { positiveUnit } from './lifecycle';
import { ExpertMonitor } from './monitor';
import { windowRows } from './pool-figures';
import { type CoordinatorView, type ExpertPoolControl, poolViewOf } from './pool-view';

/**
 * What a plan optimises for. `'quality'` (when listed before `'throughput'`) makes the
 * allocation give replicas by successful load (`'performance_based'`), otherwise by load
 * (`'load_based'`); every projection is reported whatever the objectives. The seed's
 * `'specialization'` is not provided: how well experts are specialised is measured on labelled
 * queries ({@link ExpertMetricsCollector.crossExpertBenchmark}), which a plan over live traffic
 * does not have.
 *
 * @example
 * ```ts
 * const objectives: CoordinationObjective[] = ['quality', 'throughput'];
 * ```
 */
export type CoordinationObjective = 'throughput' | 'quality' | 'efficiency' | 'latency';

const OBJECTIVES: readonly CoordinationObjective[] = ['throughput', 'quality', 'efficiency', 'latency'];
const OPTION_KEYS = ['router', 'monitor', 'windowMs'] as const;
const OPTIMIZE_KEYS = ['objectives', 'constraints', 'apply'] as const;
const CONSTRAINT_KEYS = ['replicaBudget', 'targetUtilization', 'minSuccessRate', 'maxLatencyMs', 'minOutcomes'] as const;
const AUTO_KEYS = ['coordinationFrequency', 'objectives', 'constraints', 'apply'] as const;

/**
 * Options of {@link MoEControlAPI.createCoordinator}.
 *
 * @example
 * ```ts
 * control.createCoordinator({ router: control.router, monitor, windowMs: 300_000 });
 * ```
 */
export interface CoordinatorOptions {
  /** The router; must be the control plane's own (it may be given, as in the seed, for clarity). */
  router?: RewiringExperts;
  /** A monitor of the same pool: its flagged experts are listed in each plan. */
  monitor?: ExpertMonitor;
  /** Window measured, ms, in [`bucketMs`, `retainMs`] of the control plane; default its `loadWindowMs`. */
  windowMs?: number;
}

/**
 * Limits a plan must respect (the seed's memory budget is the replica budget: replicas are
 * what costs memory).
 *
 * @example
 * ```ts
 * const c: CoordinationConstraints = { replicaBudget: 24, minSuccessRate: 0.9, maxLatencyMs: 2000 };
 * ```
 */
export interface CoordinationConstraints {
  /** Replicas in all, an integer in [1, {@link MAX_REPLICA_BUDGET}]; default the control plane's `replicaBudget`. */
  replicaBudget?: number;
  /** Utilisation the allocation aims at, in (0, 1]; default 0.75. */
  targetUtilization?: number;
  /** Move traffic away from experts whose success rate in the window is below this, in [0, 1]. */
  minSuccessRate?: number;
  /** Move traffic away from experts whose mean latency in the window is above this, ms > 0. */
  maxLatencyMs?: number;
  /** Outcomes an expert needs in the window before it can be judged, an integer >= 1; default 10. */
  minOutcomes?: number;
}

/**
 * Options of {@link ExpertCoordinator.optimizeSystemPerformance}.
 *
 * @example
 * ```ts
 * coordinator.optimizeSystemPerformance({ objectives: ['throughput', 'quality'], constraints: { maxLatencyMs: 1500 }, apply: true });
 * ```
 */
export interface SystemOptimizationOptions {
  /** See {@link CoordinationObjective}; default `['throughput', 'quality']`. */
  objectives?: CoordinationObjective[];
  /** See {@link CoordinationConstraints}. */
  constraints?: CoordinationConstraints;
  /** Apply the allocation plan (see {@link MoEControlAPI.applyAllocationPlan}); default false. */
  apply?: boolean;
}

/**
 * Pool-wide figures of a {@link SystemOptimizationPlan}, traffic-weighted over the experts.
 *
 * @example
 * ```ts
 * const { successRate, meanLatencyMs, throughputCapacity } = plan.projected;
 * ```
 */
export interface SystemFigures {
  /** Σ share × success rate of each expert. */
  successRate: number;
  /** Σ share × mean latency of each expert, ms. */
  meanLatencyMs: number;
  /** Successful answers per second of busy time: `successRate / (meanLatencyMs / 1000)`; 0 with no latency. */
  efficiency: number;
  /** Requests per second the serving experts' slots sustain when full: Σ capacity × replicas / (mean latency in s), over the experts with a measured latency (Little's law). */
  throughputCapacity: number;
  /** Σ load / Σ capacity × replicas over the serving experts (loads in Erlangs). */
  utilization: number;
}

/**
 * A whole-pool plan from {@link ExpertCoordinator.optimizeSystemPerformance}.
 *
 * **Model.** Over the window each active expert i has a measured traffic share sᵢ (its
 * attempts — queries routed to it plus fallback tries on it — over all attempts), success rate
 * pᵢ and mean latency Wᵢ (an expert without outcomes
 * in the window takes its all-time mean latency and the pool's success rate). The plan moves
 * the traffic of the `shiftAway` experts to the others in proportion to their shares (sᵢ' =
 * sᵢ / (1 − Σ shifted shares)), assumes each expert keeps its measured success rate and
 * latency under the new traffic (no queueing model: the allocation keeps utilisation at the
 * target), and allocates replicas for the new loads (λ · sᵢ' · Wᵢ, λ = attempts per ms of the
 * window — of the time counted, while the control plane is younger than the window). The
 * current and projected {@link SystemFigures} are computed with the same formulas, so their
 * ratios isolate the plan's effect. The model cannot know how well the other experts answer the
 * queries moved to them: where they answer them worse than their own, the projection is an upper
 * bound of the gain.
 *
 * Not provided: the seed's `specialization_boost` (see {@link CoordinationObjective}), and an
 * optimisation horizon (the projection is for the measured traffic mix, not a forecast).
 *
 * @example
 * ```ts
 * const plan = coordinator.optimizeSystemPerformance({ objectives: ['throughput', 'quality'] });
 * console.log(`throughput ${(100 * (plan.throughputGain ?? 0)).toFixed(1)} %`, plan.qualityPreservation, plan.shiftAway);
 * ```
 */
export interface SystemOptimizationPlan {
  /** Clock ms of the plan. */
  createdAt: number;
  /** Window measured, ms. */
  windowMs: number;
  /** The objectives. */
  objectives: CoordinationObjective[];
  /** Replicas for the projected loads (not retiring anyone idle only because traffic was moved off it). */
  allocation: AllocationPlan;
  /** Experts the constraints say traffic should move away from, with the measured reason. */
  shiftAway: Array<{
    /** The expert. */
    id: string;
    /** Which constraint it breaks. */
    reason: 'below-min-success-rate' | 'above-max-latency';
    /** Its success rate in the window. */
    successRate: number;
    /** Its mean latency in the window, ms. */
    meanLatencyMs: number;
  }>;
  /** False when every expert with traffic broke a constraint (then none is shifted: there is nowhere to move it). */
  constraintsMet: boolean;
  /** Experts the monitor flags over the same window (empty without a monitor). */
  attention: Array<{
    /** The expert. */
    id: string;
    /** Why. */
    reasons: ExpertAttentionReason[];
    /** What to do. */
    recommendedAction: RecommendedAction;
  }>;
  /** Figures of the traffic as measured. */
  current: SystemFigures;
  /** Figures after the plan, under the model above. */
  projected: SystemFigures;
  /** `projected.throughputCapacity / current.throughputCapacity − 1`; null when the current one is 0. */
  throughputGain: number | null;
  /** `projected.successRate / current.successRate`; null when the current one is 0. */
  qualityPreservation: number | null;
  /** `projected.efficiency / current.efficiency − 1`; null when the current one is 0. */
  efficiencyGain: number | null;
}

/**
 * Options of {@link ExpertCoordinator.enableAutomaticCoordination}. The seed's
 * `adaptive_thresholds` and `proactive_optimization` are not provided: thresholds are the
 * constraints given, and plans are made from measured traffic, not forecasts.
 *
 * @example
 * ```ts
 * coordinator.enableAutomaticCoordination({ coordinationFrequency: 300, objectives: ['throughput'], apply: true });
 * ```
 */
export interface AutomaticCoordinationOptions {
  /** Seconds between plans (the seed's unit), > 0; default 300. */
  coordinationFrequency?: number;
  /** Objectives of each plan. */
  objectives?: CoordinationObjective[];
  /** Constraints of each plan. */
  constraints?: CoordinationConstraints;
  /** Apply each plan's allocation; default true. */
  apply?: boolean;
}

/**
 * Plans an expert pool as a whole: from the traffic measured over a window it lists the experts
 * that break the constraints (traffic should move away from them), allocates replicas for the
 * loads that remain, and projects the effect on success rate, latency, efficiency and
 * throughput capacity (the model is on {@link SystemOptimizationPlan}). Emits `'plan'` for each
 * plan made on its timer. A timed plan that fails, or a `'plan'` listener that throws, goes to
 * the `'error'` listeners, or to `process.emitWarning` when there are none (or when an `'error'`
 * listener throws too): the timer never throws. Create it with {@link MoEControlAPI.createCoordinator}.
 *
 * @example
 * ```ts
 * const coordinator = control.createCoordinator({ monitor });
 * const plan = coordinator.optimizeSystemPerformance({ objectives: ['quality'], constraints: { minSuccessRate: 0.9 } });
 * coordinator.close();
 * ```
 */
export class ExpertCoordinator extends EventEmitter {
  /** Window measured, ms. */
  readonly windowMs: number;
  readonly #guard = new CloseGuard('ExpertCoordinator');
  readonly #view: CoordinatorView;
  readonly #monitor: ExpertMonitor | undefined;
  readonly #forget: () => void;
  #timer: NodeJS.Timeout | undefined;

  /**
   * Use {@link MoEControlAPI.createCoordinator}.
   *
   * @param control The control plane of the pool (open).
   * @param options See {@link CoordinatorOptions}.
   * @throws ClosedError when the control plane is closed.
   *
   * @example
   * ```ts
   * const coordinator = new ExpertCoordinator(control, { windowMs: 120_000 });
   * ```
   */
  constructor(control: ExpertPoolControl, options: CoordinatorOptions = {}) {
    super();
    const view: CoordinatorView = poolViewOf('control', control);
    view.check();
    const o = v.options<CoordinatorOptions>('options', options, OPTION_KEYS);
    if (o.router !== undefined && o.router !== view.router) throw v.rangeError('options.router', "the control plane's router", o.router);
    if (o.monitor !== undefined && !(o.monitor instanceof ExpertMonitor)) throw v.typeError('options.monitor', 'ExpertMonitor', o.monitor);
    this.windowMs = o.windowMs === undefined ? view.loadWindowMs : v.integer('options.windowMs', o.windowMs, view.ledger.bucketMs, view.ledger.retainMs);
    this.#view = view;
    this.#monitor = o.monitor;
    this.#forget = view.adopt(this);
  }

  /**
   * Makes a plan (see {@link SystemOptimizationPlan} for what it holds and the model behind
   * its projections), and applies its allocation when `apply` is set.
   *
   * @param options Objectives, constraints, apply.
   * @returns The plan.
   *
   * @example
   * ```ts
   * const plan = coordinator.optimizeSystemPerformance({ objectives: ['throughput', 'quality', 'efficiency'], constraints: { maxLatencyMs: 2000, minSuccessRate: 0.9 } });
   * ```
   */
  optimizeSystemPerformance(options: SystemOptimizationOptions = {}): SystemOptimizationPlan {
    this.#guard.check();
    const o = v.options<SystemOptimizationOptions>('options', options, OPTIMIZE_KEYS);
    const objectives = checkObjectives('options.objectives', o.objectives);
    const c = checkConstraints('options.constraints', o.constraints, this.#view.replicaBudget);
    const apply = o.apply === undefined ? false : v.boolean('options.apply', o.apply);
    const plan = this.#plan(objectives, c);
    if (apply) this.#view.applyAllocationPlan(plan.allocation);
    return plan;
  }

  /**
   * Makes (and by default applies) a plan every `coordinationFrequency` seconds on a timer
   * that does not keep the process alive, emitting `'plan'`. Calling it again restarts the
   * timer with the new options.
   *
   * @param options Frequency, objectives, constraints, apply.
   * @returns This coordinator.
   *
   * @example
   * ```ts
   * coordinator.enableAutomaticCoordination({ coordinationFrequency: 300 }).on('plan', (p) => console.log(p.allocation.replicas));
   * ```
   */
  enableAutomaticCoordination(options: AutomaticCoordinationOptions = {}): this {
    this.#guard.check();
    const o = v.options<AutomaticCoordinationOptions>('options', options, AUTO_KEYS);
    const seconds = o.coordinationFrequency === undefined ? 300 : timerSeconds('options.coordinationFrequency', o.coordinationFrequency);
    const objectives = checkObjectives('options.objectives', o.objectives);
    const constraints = checkConstraints('options.constraints', o.constraints, this.#view.replicaBudget);
    const apply = o.apply === undefined ? true : v.boolean('options.apply', o.apply);
    this.disableAutomaticCoordination();
    this.#timer = setInterval(() => {
      let plan: SystemOptimizationPlan;
      try {
        plan = this.#plan(objectives, constraints);
        if (apply) this.#view.applyAllocationPlan(plan.allocation);
      } catch (err) {
        reportError(this, err, 'the coordination timer');
        return;
      }
      emitSafely(this, 'plan', plan);
    }, seconds * 1000);
    this.#timer.unref();
    return this;
  }

  /**
   * Stops the timer of {@link ExpertCoordinator.enableAutomaticCoordination}.
   *
   * @example
   * ```ts
   * coordinator.disableAutomaticCoordination();
   * ```
   */
  disableAutomaticCoordination(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Stops the timer. Idempotent; later calls of other methods throw {@link ClosedError}.
   *
   * @example
   * ```ts
   * coordinator.close();
   * ```
   */
  close(): void {
    this.#guard.closeSync(() => {
      this.disableAutomaticCoordination();
      this.#forget();
    });
  }

  /**
   * {@link ExpertCoordinator.close}, for `await using`.
   *
   * @example
   * ```ts
   * await using coordinator = control.createCoordinator();
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  #plan(objectives: CoordinationObjective[], c: ResolvedConstraints): SystemOptimizationPlan {
    const now = this.#view.now();
    const { rows, spanMs } = windowRows(this.#view.ledger, this.#view.active(), this.windowMs, now);
    const requests = rows.reduce((t, x) => t + attempts(x.window), 0);
    const pool = rows.reduce((t, x) => ({ s: t.s + x.window.successes, n: t.n + x.window.outcomes }), { s: 0, n: 0 });
    const experts = rows.map(({ expert: r, window: k, total }) => ({
      r,
      share: requests === 0 ? 0 : attempts(k) / requests,
      p: k.outcomes > 0 ? k.successes / k.outcomes : pool.n > 0 ? pool.s / pool.n : 0,
      w: k.outcomes > 0 ? k.latencyMs / k.outcomes : meanLatency(total),
      outcomes: k.outcomes,
      routed: k.routed,
      attempts: attempts(k),
      successes: k.successes,
    }));
    let shiftAway: SystemOptimizationPlan['shiftAway'] = [];
    for (const e of experts) {
      if (e.outcomes < c.minOutcomes) continue;
      const reason = c.minSuccessRate !== undefined && e.p < c.minSuccessRate ? 'below-min-success-rate' : c.maxLatencyMs !== undefined && e.w > c.maxLatencyMs ? 'above-max-latency' : null;
      if (reason !== null) shiftAway.push({ id: e.r.id, reason, successRate: e.p, meanLatencyMs: e.w });
    }
    const shifted = new Set(shiftAway.map((s) => s.id));
    const constraintsMet = experts.some((e) => e.share > 0 && !shifted.has(e.r.id)) || requests === 0;
    if (!constraintsMet) {
      shiftAway = [];
      shifted.clear();
    }
    const kept = 1 - experts.reduce((t, e) => t + (shifted.has(e.r.id) ? e.share : 0), 0);
    const lambda = requests / spanMs;
    const projectedShare = (e: (typeof experts)[number]): number => (shifted.has(e.r.id) || kept <= 0 ? 0 : e.share / kept);
    const inputs: AllocationInput[] = experts.map((e) => ({
      id: e.r.id,
      load: lambda * projectedShare(e) * e.w,
      capacity: e.r.capacity,
      replicas: e.r.replicas,
      routed: e.routed,
      attempts: e.attempts,
      successes: e.successes,
      outcomes: e.outcomes,
    }));
    const quality = objectives.indexOf('quality');
    const throughput = objectives.indexOf('throughput');
    const allocation = planAllocation(inputs, {
      createdAt: now,
      windowMs: this.windowMs,
      targetUtilization: c.targetUtilization,
      rebalancingStrategy: quality >= 0 && (throughput < 0 || quality < throughput) ? 'performance_based' : 'load_based',
      replicaBudget: c.replicaBudget,
      budgetName: c.budgetName,
      retireIdle: true,
    });
    type Row = (typeof experts)[number];
    // Throughput capacity and utilisation count the experts that serve traffic: not those shifted away.
    const figures = (share: (e: Row) => number, replicas: (e: Row) => number, serving: (e: Row) => boolean): SystemFigures => {
      let successRate = 0;
      let meanLatencyMs = 0;
      let throughputCapacity = 0;
      let load = 0;
      let slots = 0;
      for (const e of experts) {
        const s = share(e);
        const n = replicas(e);
        successRate += s * e.p;
        meanLatencyMs += s * e.w;
        if (n === 0 || !serving(e)) continue;
        if (e.w > 0) throughputCapacity += (e.r.capacity * n) / (e.w / 1000);
        load += lambda * s * e.w;
        slots += e.r.capacity * n;
      }
      return { successRate, meanLatencyMs, efficiency: meanLatencyMs === 0 ? 0 : successRate / (meanLatencyMs / 1000), throughputCapacity, utilization: slots === 0 ? 0 : load / slots };
    };
    const current = figures((e) => e.share, (e) => e.r.replicas, () => true);
    const projected = figures(projectedShare, (e) => allocation.replicas[e.r.id] ?? 0, (e) => !shifted.has(e.r.id));
    const ratio = (a: number, b: number) => (b === 0 ? null : a / b);
    const attention: SystemOptimizationPlan['attention'] = [];
    if (this.#monitor !== undefined) {
      for (const a of Object.values(this.#monitor.analyzeExpertPerformance({ timeWindow: this.windowMs }))) {
        if (a.needsAttention) attention.push({ id: a.id, reasons: a.reasons, recommendedAction: a.recommendedAction });
      }
    }
    const gain = (a: number, b: number) => (b === 0 ? null : a / b - 1);
    return {
      createdAt: now,
      windowMs: this.windowMs,
      objectives,
      allocation,
      shiftAway,
      constraintsMet,
      attention,
      current,
      projected,
      throughputGain: gain(projected.throughputCapacity, current.throughputCapacity),
      qualityPreservation: ratio(projected.successRate, current.successRate),
      efficiencyGain: gain(projected.efficiency, current.efficiency),
    };
  }
}

interface ResolvedConstraints {
  replicaBudget: number;
  budgetName: string;
  targetUtilization: number;
  minSuccessRate: number | undefined;
  maxLatencyMs: number | undefined;
  minOutcomes: number;
}

function checkObjectives(name: string, value: unknown): CoordinationObjective[] {
  if (value === undefined) return ['throughput', 'quality'];
  if (!Array.isArray(value)) throw v.typeError(name, 'array of objectives', value);
  return value.map((x: unknown, i) => v.oneOf(`${name}[${i}]`, x, OBJECTIVES));
}

function checkConstraints(name: string, value: unknown, budget: number): ResolvedConstraints {
  const c = v.options<CoordinationConstraints>(name, value, CONSTRAINT_KEYS);
  return {
    replicaBudget: c.replicaBudget === undefined ? budget : v.integer(`${name}.replicaBudget`, c.replicaBudget, 1, MAX_REPLICA_BUDGET),
    budgetName: c.replicaBudget === undefined ? 'MoEControlAPI.replicaBudget' : `${name}.replicaBudget`,
    targetUtilization: c.targetUtilization === undefined ? 0.75 : positiveUnit(`${name}.targetUtilization`, c.targetUtilization),
    minSuccessRate: c.minSuccessRate === undefined ? undefined : v.unitInterval(`${name}.minSuccessRate`, c.minSuccessRate),
    maxLatencyMs: c.maxLatencyMs === undefined ? undefined : v.finite(`${name}.maxLatencyMs`, c.maxLatencyMs, { positive: true }),
    minOutcomes: c.minOutcomes === undefined ? 10 : v.integer(`${name}.minOutcomes`, c.minOutcomes, 1),
  };
}
