import type { BudgetStore } from './store';

/**
 * The resources a budget can limit (the seed's eight). Units are the caller's: core-seconds
 * for CPU, bytes for MEMORY, tokens for TOKENS… — a budget and the requests against it must agree.
 *
 * @example
 * ```ts
 * const r: ResourceType = ResourceType.TOKENS;
 * ```
 */
export enum ResourceType {
  CPU = 'cpu',
  MEMORY = 'memory',
  GPU = 'gpu',
  TPU = 'tpu',
  NETWORK = 'network',
  STORAGE = 'storage',
  API_CALLS = 'api_calls',
  TOKENS = 'tokens',
}

/**
 * What happens to a request that would take a budget past its limit.
 * - `SOFT`: approved; a violation is recorded and emitted.
 * - `MEDIUM`: approved into the stated overdraft when the request's priority is at least
 *   the overdraft's `minPriority`; denied otherwise.
 * - `HARD`: denied.
 *
 * @example
 * ```ts
 * const level = EnforcementLevel.HARD;
 * ```
 */
export enum EnforcementLevel {
  SOFT = 'soft',
  MEDIUM = 'medium',
  HARD = 'hard',
}

/**
 * The window a budget's limit applies to: one request, one session (requests carrying the same
 * `sessionId`), or a calendar day / ISO week (Monday first) / month in the budget's time zone.
 *
 * @example
 * ```ts
 * const scope: BudgetScope = 'daily';
 * ```
 */
export type BudgetScope = 'request' | 'session' | 'daily' | 'weekly' | 'monthly';

/**
 * A spending limit.
 *
 * @example
 * ```ts
 * const perUserDaily: BudgetDefinition = { resourceType: ResourceType.TOKENS, scope: 'daily', limit: 200_000, softThreshold: 0.8 };
 * const teamMonthly: BudgetDefinition = { resourceType: ResourceType.API_CALLS, scope: 'monthly', limit: 10_000, shared: true, timeZone: 'Europe/Madrid' };
 * ```
 */
export interface BudgetDefinition {
  /** The resource limited. */
  resourceType: ResourceType;
  /** The window the limit applies to. */
  scope: BudgetScope;
  /** Most that may be committed + reserved in one window (finite, >= 0). */
  limit: number;
  /** Only this requester's requests count against it. Omitted: every requester (see `shared`). */
  requesterId?: string;
  /** Without `requesterId`: `true` = one pool shared by all requesters; `false` (default) = a separate limit per requester. */
  shared?: boolean;
  /** Fraction of the limit in (0, 1] at which an `alert` is emitted once per window (e.g. 0.8). */
  softThreshold?: number;
  /** IANA time zone of the calendar windows; default `'UTC'`. */
  timeZone?: string;
}

/**
 * A request for resources: approval reserves `requestedAmount` until it is committed, released or expires.
 *
 * @example
 * ```ts
 * const req: BudgetRequest = { resourceType: ResourceType.TOKENS, requestedAmount: 4_000, priority: 1, estimatedDuration: 30, requesterId: 'user_001', justification: 'chat completion' };
 * ```
 */
export interface BudgetRequest {
  /** The resource wanted. */
  resourceType: ResourceType;
  /** How much (finite, > 0). */
  requestedAmount: number;
  /** Integer priority in [0, 10]; higher is more important. Decides MEDIUM overdrafts. */
  priority: number;
  /** Seconds the reservation may stay open before it is released automatically (> 0). */
  estimatedDuration: number;
  /** Who asks (non-empty). */
  requesterId: string;
  /** Why; kept with the reservation and in events. */
  justification?: string;
  /** Session the request belongs to, for `session` budgets. */
  sessionId?: string;
}

/**
 * The outcome of {@link BudgetForcing.requestBudget}.
 *
 * @example
 * ```ts
 * const d = await budgets.requestBudget(req);
 * if (d.approved) await budgets.commit(d.allocationId!, used);
 * ```
 */
export interface BudgetDecision {
  /** Whether the amount was reserved. */
  approved: boolean;
  /** Reservation id to `commit` or `release`; null when denied. */
  allocationId: string | null;
  /** Human-readable reason (which budget, how much is left). */
  message: string;
  /** True when approved past a limit (SOFT, or a MEDIUM overdraft); the violation was recorded. */
  overLimit: boolean;
  /**
   * True when the store could not be reached (or could not vouch for a window after losing its
   * state) and `onStoreError: 'fail-open'` approved it unbacked: nothing is reserved, and what
   * its commit reports is charged to its windows once the store answers again (see {@link CommitResult.charged}).
   */
  unbacked: boolean;
}

/**
 * Options of {@link BudgetForcing}.
 *
 * @example
 * ```ts
 * const opts: BudgetForcingOptions = { enforcementLevel: EnforcementLevel.MEDIUM, overdraft: { ratio: 0.2, minPriority: 5 } };
 * ```
 */
export interface BudgetForcingOptions {
  /** How requests past a limit are treated; default `HARD`. */
  enforcementLevel?: EnforcementLevel;
  /** Where reservations live; default a {@link MemoryBudgetStore} (this process only). */
  store?: BudgetStore;
  /**
   * When the store cannot be reached, or refuses a reservation it cannot vouch for (a
   * {@link BudgetStateLossError} after Redis lost its state): `'fail-closed'` (default) denies
   * the request; `'fail-open'` approves it without a reservation (`unbacked: true`) and emits
   * `storeError`. What a fail-open allocation commits is charged to its windows once the store
   * answers again (reconciliation, counted in {@link BudgetMetrics}).
   */
  onStoreError?: 'fail-open' | 'fail-closed';
  /**
   * Most fail-open commits kept waiting for the store to come back (integer >= 0; default
   * 10,000). Past it a commit's use is not kept: it is counted in
   * {@link BudgetMetrics.unchargedAmount} and never charged.
   */
  maxUnreconciled?: number;
  /** MEDIUM only: the overdraft high-priority requests may use. Default `{ ratio: 0.1, minPriority: 5 }`. */
  overdraft?: Overdraft;
  /** Budgets to start with (more with {@link BudgetForcing.setBudget}). */
  budgets?: BudgetDefinition[];
  /** How often expired reservations are swept and reported (ms, unref'd timer); default 1000. */
  sweepIntervalMs?: number;
  /** How long a `session` window lives after its first reservation (ms); default 24 h. */
  sessionTtlMs?: number;
  /** Called with every violation (also emitted as `violation`). */
  onViolation?: (v: BudgetViolation) => void;
  /** Called with every soft-threshold alert (also emitted as `alert`). */
  onAlert?: (a: BudgetAlert) => void;
  /** Clock (epoch ms), for tests; default `Date.now`. */
  now?: () => number;
}

/**
 * MEDIUM enforcement's allowance: requests with priority >= `minPriority` may take a window up
 * to `limit × (1 + ratio)`.
 *
 * @example
 * ```ts
 * const od: Overdraft = { ratio: 0.2, minPriority: 5 };
 * ```
 */
export interface Overdraft {
  /** Fraction of the limit that may be overdrawn (>= 0). */
  ratio: number;
  /** Lowest request priority (0-10) allowed into the overdraft. */
  minPriority: number;
}

/**
 * A budget exceeded: by an approved request (SOFT, or a MEDIUM overdraft) or by a commit of
 * more than was reserved.
 *
 * @example
 * ```ts
 * budgets.on('violation', (v: BudgetViolation) => log.warn(`${v.requesterId} is over ${v.budgetId}: ${v.used} / ${v.limit}`));
 * ```
 */
export interface BudgetViolation {
  /** Id of the budget exceeded. */
  budgetId: string;
  /** The budget's definition (null if it was removed before a late commit). */
  budget: BudgetDefinition | null;
  /** Whose request or commit exceeded it. */
  requesterId: string;
  /** `'request'` (approved past the limit) or `'commit'` (a charge of more than was reserved took the window past its limit). */
  cause: 'request' | 'commit';
  /** The window's committed + reserved after the event. */
  used: number;
  /** The budget's limit. */
  limit: number;
  /** The allocation involved. */
  allocationId: string;
}

/**
 * A window's committed + reserved reached its budget's soft threshold — by a request or a
 * commit. Emitted once per window by each BudgetForcing instance.
 *
 * @example
 * ```ts
 * budgets.on('alert', (a: BudgetAlert) => notify(`${a.budgetId} at ${(a.fraction * 100).toFixed(0)} %`));
 * ```
 */
export interface BudgetAlert {
  /** Id of the budget. */
  budgetId: string;
  /** The budget's definition. */
  budget: BudgetDefinition;
  /** The requester whose request crossed it. */
  requesterId: string;
  /** (committed + reserved) / limit after the crossing. */
  fraction: number;
}

/**
 * Counters of one {@link BudgetForcing} instance (this process's decisions).
 *
 * @example
 * ```ts
 * const m = await budgets.getMetrics();
 * console.log(m.approved, m.denied, m.preventionRate);
 * ```
 */
export interface BudgetMetrics {
  /** Requests approved (including over-limit approvals and fail-open ones). */
  approved: number;
  /** Requests denied. */
  denied: number;
  /** Violations recorded (see {@link BudgetViolation}). */
  violations: number;
  /**
   * Would-be overspends: requests that would take some window past its limit, plus commits
   * that took a window past its limit.
   */
  wouldOverspend: number;
  /** Of those, the requests denied. */
  prevented: number;
  /**
   * prevented / wouldOverspend; null before any would-be overspend. Only requests can be
   * stopped, so with no over-limit commits HARD gives 1 and SOFT 0; commits past a limit lower it.
   */
  preventionRate: number | null;
  /** Mean wall time of `requestBudget` (ms), store round trip and synchronous event listeners included; null before any. */
  meanDecisionMs: number | null;
  /**
   * Per resource: Σ (committed + reserved) / Σ limit over the current windows this instance has
   * reserved in (request-scope budgets excluded); null for resources without such windows, and
   * for every resource with windows while the store cannot be reached.
   */
  utilisation: Partial<Record<ResourceType, number | null>>;
  /**
   * Commits of fail-open allocations (`unbacked: true`, approved while the store could not be
   * reached) whose use has been charged to their windows since the store answered again.
   */
  reconciledCommits: number;
  /** Σ of what those commits charged (the `actualAmount` of each). */
  reconciledAmount: number;
  /**
   * Commits of fail-open allocations still waiting for the store (at most `maxUnreconciled`): they
   * are charged at the next successful store operation or sweep, or lost if this instance closes first.
   */
  unreconciledCommits: number;
  /** Σ of what those waiting commits will charge. */
  unreconciledAmount: number;
  /**
   * Commits of fail-open allocations whose use will never be charged: the waiting queue was full
   * (`maxUnreconciled`), or the store has no {@link BudgetStore.charge}.
   */
  unchargedCommits: number;
  /** Σ of what those commits used and nobody charged. */
  unchargedAmount: number;
}

/**
 * Usage of one budget window.
 *
 * @example
 * ```ts
 * for (const s of await budgets.status('user_001')) console.log(s.budgetId, s.committed, s.limit, new Date(s.resetsAt ?? 0));
 * ```
 */
export interface BudgetStatus {
  /** Budget id. */
  budgetId: string;
  /** Its definition. */
  budget: BudgetDefinition;
  /** Window key (e.g. `2026-11-25`, `2026-W48`, `2026-11`, a session id). */
  window: string;
  /** Charged so far in the window. */
  committed: number;
  /** Held by open reservations. */
  reserved: number;
  /** The limit. */
  limit: number;
  /** When the window resets (epoch ms), or null for session windows. */
  resetsAt: number | null;
}

/**
 * Result of {@link BudgetForcing.commit}.
 *
 * @example
 * ```ts
 * const { charged, returned } = await budgets.commit(id, 812);
 * ```
 */
export interface CommitResult {
  /**
   * Amount charged: the actual use. For an unbacked allocation (`unbacked: true`), the amount that
   * will be charged to its windows once the store answers again (queued now, charged at the next
   * successful store operation or sweep, and counted in {@link BudgetMetrics.reconciledAmount}
   * then); 0 when the waiting queue was full or the store cannot charge
   * ({@link BudgetMetrics.unchargedAmount}).
   */
  charged: number;
  /** Reserved amount given back (reserved − charged, at least 0). */
  returned: number;
  /** Whether the charge took some window past its limit (a violation was recorded). */
  overLimit: boolean;
  /**
   * True for a fail-open allocation: the store was unreachable when it was approved and nothing
   * was reserved, so nothing returns (`returned` is 0) and `overLimit` is false: the use is
   * charged later, and a charge that takes a window past its limit is then a `violation` (cause `'commit'`).
   */
  unbacked: boolean;
}
