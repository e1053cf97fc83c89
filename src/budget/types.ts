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
  /** True when the store could not be reached and `onStoreError: 'fail-open'` approved it unbacked. */
  unbacked: boolean;
}
