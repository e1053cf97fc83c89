/**
 * Public types of the MoE control plane: managed experts, pool status, options.
 * @module
 */
import type { ExpertHealth, RewiringExperts, RewiringExpertsOptions } from '../routing/index';
import type { RebalancingStrategy } from './allocation';
import type { ExpertCounters } from './counters';

/**
 * What an expert should achieve; the monitor and the lifecycle rules flag an expert that misses
 * a target over a window with enough outcomes.
 *
 * @example
 * ```ts
 * const targets: PerformanceTargets = { accuracy: 0.95, latency: 150, specializationScore: 0.9 };
 * ```
 */
export interface PerformanceTargets {
  /** Success rate (successful outcomes / outcomes) to reach, in [0, 1]. */
  accuracy?: number;
  /** Mean outcome latency not to exceed, ms, > 0. */
  latency?: number;
  /**
   * Routing precision to reach in {@link ExpertMetricsCollector.crossExpertBenchmark}: of the
   * labelled queries routed to the expert, the share that belonged to it. In [0, 1].
   */
  specializationScore?: number;
}

/**
 * Why an expert left the pool.
 *
 * - `'manual'`: {@link MoEControlAPI.retireExpert}.
 * - `'idle'`, `'failing'`: a lifecycle rule (see {@link LifecyclePolicy}).
 * - `'merged'`: merged into another expert (`mergedInto`).
 * - `'allocation'`: an applied {@link AllocationPlan} retired it.
 * - `'removed-from-router'`: removed from the router directly, noticed by the registry.
 *
 * @example
 * ```ts
 * control.on('retired', (e: ManagedExpert) => console.log(e.id, e.retireReason as RetireReason));
 * ```
 */
export type RetireReason = 'manual' | 'idle' | 'failing' | 'merged' | 'allocation' | 'removed-from-router';

/**
 * An expert in the registry of a {@link MoEControlAPI} (a copy; the registry is not changed through it).
 *
 * @example
 * ```ts
 * const e: ManagedExpert = control.createExpert({ specialization: 'sql', baseModel: 'sqlcoder-7b' });
 * console.log(e.id, e.status, e.replicas);
 * ```
 */
export interface ManagedExpert {
  /** Its id, as in the router. */
  id: string;
  /** Its specialization: the router profile's `domain`. */
  specialization: string;
  /** The model or service behind it, as registered; null for an expert adopted from the router. */
  baseModel: string | null;
  /** Whether it takes traffic. */
  status: 'active' | 'retired';
  /** Replicas it runs (set by an applied allocation plan); its router capacity is `capacity × replicas`. */
  replicas: number;
  /** Requests one replica serves at once. */
  capacity: number;
  /** Its targets. */
  performanceTargets: PerformanceTargets;
  /** The training-data path given at creation (checked to exist; nothing is trained), with its size in bytes (null for a directory). */
  trainingData: {
    /** Absolute path. */
    path: string;
    /** Size of the file in bytes; null for a directory. */
    bytes: number | null;
  } | null;
  /** Clock ms it was registered. */
  createdAt: number;
  /** Clock ms it was retired, or null. */
  retiredAt: number | null;
  /** Why it was retired, or null. */
  retireReason: RetireReason | null;
  /** The experts merged into it. */
  mergedFrom: string[];
  /** The expert it was merged into, or null. */
  mergedInto: string | null;
}

/**
 * Options of {@link MoEControlAPI.createExpert}.
 *
 * @example
 * ```ts
 * control.createExpert({
 *   specialization: 'quantum_physics', baseModel: 'capibara_base',
 *   trainingData: './quantum_physics_corpus.jsonl',
 *   performanceTargets: { accuracy: 0.95, latency: 150, specializationScore: 0.9 },
 *   description: 'Quantum mechanics, qubits, entanglement, Schrödinger equation',
 * });
 * ```
 */
export interface CreateExpertOptions {
  /** Its specialization (the profile's domain), non-empty. */
  specialization: string;
  /** The model or service that serves it (recorded), non-empty. */
  baseModel: string;
  /** A training-data path, checked to exist and recorded. Nothing is trained: training is out of scope by design. */
  trainingData?: string;
  /** Its targets. */
  performanceTargets?: PerformanceTargets;
  /** Its id; default the specialization, with `-2`, `-3` … appended while taken. */
  id?: string;
  /** What it is good at, in words (matched against queries); default the seed profile of that domain when there is one, else the specialization's words. */
  description?: string;
  /** Terms typical of its queries; default those of the seed profile of that domain, else the specialization's words. */
  keywords?: string[];
  /** Requests one replica serves at once, an integer >= 1; default 4. */
  capacity?: number;
}

/**
 * Options of {@link MoEControlAPI.mergeExperts}.
 *
 * @example
 * ```ts
 * control.mergeExperts(['sql', 'postgres'], { id: 'databases', specialization: 'databases' });
 * ```
 */
export interface MergeExpertsOptions {
  /** Id of the merged expert; default the first id (that expert keeps its learned routing state). */
  id?: string;
  /** Its specialization; default the first expert's. */
  specialization?: string;
  /** Its base model; default the first expert's. */
  baseModel?: string;
  /** Its targets; default the first expert's. */
  performanceTargets?: PerformanceTargets;
}

/**
 * One active expert in {@link ExpertPoolStatus}.
 *
 * @example
 * ```ts
 * const hot = control.getExpertStatus().experts.filter((e: ExpertState) => e.utilization > 0.8);
 * ```
 */
export interface ExpertState {
  /** The expert. */
  id: string;
  /** Its specialization. */
  specialization: string;
  /** Replicas it runs. */
  replicas: number;
  /** Requests one replica serves at once. */
  capacity: number;
  /** All-time counters (since it joined the registry; a merged expert includes its sources'). */
  total: ExpertCounters;
  /** Counters over the last `loadWindowMs`. */
  window: ExpertCounters;
  /** Requests in flight now (the router's count). */
  inFlight: number;
  /** All-time successes / outcomes (0 before any). */
  successRate: number;
  /** All-time mean outcome latency, ms (0 before any). */
  meanLatencyMs: number;
  /**
   * Offered load over the window, Erlangs (Little's law; see {@link AllocationPlan}): its
   * attempts (routed + fallback tries) per ms of the window — of the time counted, while the
   * control plane is younger than the window — times their mean latency.
   */
  load: number;
  /** `load / (capacity × replicas)`. */
  utilization: number;
  /** Its load-balancing bias on relevance (0 when balancing is off). */
  bias: number;
  /** The router's health of it. */
  health: ExpertHealth;
  /**
   * Clock ms it was last used — routed a query, or an outcome recorded for it (a fallback try
   * included) — or null. The idle rule counts from it.
   */
  lastUsedAt: number | null;
}

/**
 * What {@link MoEControlAPI.getExpertStatus} reports, from the router's counters.
 *
 * @example
 * ```ts
 * const s = control.getExpertStatus();
 * console.log(s.activeCount, s.specializedCount, s.loadDistribution, s.maxVio);
 * ```
 */
export interface ExpertPoolStatus {
  /** Experts the pool may hold at once (`numExperts`). */
  capacity: number;
  /** Active experts. */
  activeCount: number;
  /**
   * Active experts beyond `numExperts`: experts added to the router directly are adopted even
   * when the pool is full (the router routes to them either way); 0 otherwise.
   */
  overCapacity: number;
  /** Retired experts still in the registry. */
  retiredCount: number;
  /** Active experts whose specialization is not `'general'`. */
  specializedCount: number;
  /** Active experts per specialization. */
  specializations: Record<string, number>;
  /** Per active expert, its share of the queries routed in the last `loadWindowMs` (all 0 when none were). */
  loadDistribution: Record<string, number>;
  /**
   * `(max − mean) / mean` of the queries routed per replica in the window over the active
   * experts (DeepSeek's MaxVio applied to request load); NaN when nothing was routed.
   */
  maxVio: number;
  /** Queries routed in the window. */
  windowRouted: number;
  /** The window, ms. */
  windowMs: number;
  /** Per active expert, in registry order. */
  experts: ExpertState[];
}

/**
 * Request-level load balancing with the loss-free bias controller (see {@link BiasBalancer}).
 *
 * After every `batchQueries` routed queries, the balancer is updated with that batch's queries
 * routed per replica of each active expert: `b_i ← b_i − rate · sign(load_i − mean)` (or the
 * proportional rule), the bias is clipped to ±`maxBias`, and the router selects on
 * `relevance + b_i` (see {@link RewiringExperts.setRelevanceBias}). The bias for a batch thus
 * depends only on earlier batches. `maxBias` bounds how far load can move an expert's
 * relevance (which the strategy then weighs with what it learned), so load never overrides a
 * clear difference in relevance.
 *
 * @example
 * ```ts
 * new MoEControlAPI({ loadBalancing: { rate: 0.01, batchQueries: 32, maxBias: 0.2 } });
 * ```
 */
export interface LoadBalancingOptions {
  /** γ, in (0, 1]; default 0.01. */
  rate?: number;
  /** `'sign'` (DeepSeek-V3, default) or `'proportional'`. */
  mode?: 'sign' | 'proportional';
  /** Routed queries per update, an integer >= 1; default 32. */
  batchQueries?: number;
  /** Bound of |bias|, in (0, 1] (relevance is in [0, 1]); default 0.2. */
  maxBias?: number;
}

/**
 * Options of {@link MoEControlAPI}.
 *
 * @example
 * ```ts
 * const control = new MoEControlAPI({
 *   numExperts: 32,
 *   expertSpecializations: ['general', 'mathematics', 'science', 'coding'],
 *   dynamicExpertAllocation: true,
 *   loadBalancing: true,
 * });
 * ```
 */
export interface MoEControlAPIOptions {
  /** Experts the pool may hold at once (active experts), an integer in [1, 4096]; default 32. */
  numExperts?: number;
  /**
   * One expert per specialization (profile from the seed expert of that domain when there is
   * one, else from the words), added to the router's experts when their domain is missing. With
   * neither this nor `router` nor `routerOptions.experts`, the router gets the seed's six.
   */
  expertSpecializations?: string[];
  /** Each lifecycle pass also computes and applies an allocation plan (replicas; idle experts are left to the idle rule). Default false. */
  dynamicExpertAllocation?: boolean;
  /** Balance request load with the loss-free bias controller; `true` takes the defaults. Default false. */
  loadBalancing?: boolean | LoadBalancingOptions;
  /** The router to manage; default a new one (with `routerOptions`, and this instance's clock). */
  router?: RewiringExperts;
  /** Options of the router created when `router` is not given; that router is closed with the control plane (its `sharedState` connection included). */
  routerOptions?: RewiringExpertsOptions;
  /**
   * Replicas the pool may run in all, for allocation plans; an integer in [1, {@link MAX_REPLICA_BUDGET}],
   * at least the experts the pool starts with (each needs one); default `numExperts`.
   */
  replicaBudget?: number;
  /** Window of the load figures (status, allocation), ms, in [`bucketMs`, `retainMs`]; default 60,000 (within those bounds). */
  loadWindowMs?: number;
  /** Width of the time buckets traffic is counted in, ms (event times are rounded down to it); default 1,000. */
  bucketMs?: number;
  /** How long bucketed traffic is kept, ms; default 3,600,000. */
  retainMs?: number;
  /** Clock in ms (tests); default `Date.now`. */
  now?: () => number;
}

/**
 * Options of {@link MoEControlAPI.optimizeExpertAllocation}.
 *
 * @example
 * ```ts
 * control.optimizeExpertAllocation({ targetUtilization: 0.75, rebalancingStrategy: 'performance_based', apply: true });
 * ```
 */
export interface AllocationOptions {
  /**
   * Offered load per expert id in Erlangs (mean requests in service at once), e.g. a forecast;
   * replaces the measured load of those experts. Each finite and >= 0.
   */
  currentWorkload?: Record<string, number>;
  /** Utilisation to bring every expert down to, in (0, 1]; default 0.75. */
  targetUtilization?: number;
  /** How the next replica is chosen; default `'load_based'`. */
  rebalancingStrategy?: RebalancingStrategy;
  /** Replicas in all, an integer in [1, {@link MAX_REPLICA_BUDGET}]; default the instance's `replicaBudget`. */
  replicaBudget?: number;
  /** Measured window, ms, in [`bucketMs`, `retainMs`]; default the instance's `loadWindowMs`. */
  windowMs?: number;
  /** Retire experts given no request in the window (neither routed nor tried as a fallback) while others had some; default true. */
  retireIdle?: boolean;
  /** Apply the plan at once (see {@link MoEControlAPI.applyAllocationPlan}); default false. */
  apply?: boolean;
}
