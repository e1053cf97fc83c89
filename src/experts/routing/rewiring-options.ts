/**
 * Options of {@link RewiringExperts}: their checks, under the path the caller wrote them at.
 * @module
 */
import type { SyncEmbedder } from '../../text/index';
import * as v from '../../validate';
import { DEFAULT_EXPERTS } from './default-experts';
import { healthOptions } from './health';
import { checkProfile } from './profile';
import { type ResolvedSharedState, type SharedRoutingStateOptions, sharedStateOptions } from './shared-state';
import { type ResolvedScorerOptions, scorerOptions } from './profile-scorer';
import type { RouterState } from './router-state';
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
  /**
   * Share expert health (cooldowns, failure windows) and outcome statistics with the other
   * replicas of the service through Redis (see {@link RewiringExperts}, "Several replicas").
   * Default: none, everything stays in this process.
   */
  sharedState?: SharedRoutingStateOptions;
}

/**
 * {@link RewiringExpertsOptions} checked, with their defaults filled in.
 * @internal
 */
export interface ResolvedRewiringOptions {
  strategy: RoutingStrategy;
  /** Checked copies, ids unique. */
  experts: readonly ExpertProfile[];
  maxFallbacks: number;
  decisionTtlMs: number;
  maxPendingDecisions: number;
  seed: number;
  clock: () => number;
  scorer: ResolvedScorerOptions;
  /** The health rules (the router supplies the tracker's clock and callback). */
  health: { windowMs: number; failureRate: number; minRequests: number; cooldownMs: number };
  /** Saved state to start from (`RewiringExperts.load`), and the file it came from. */
  restore?: { state: RouterState; file: string };
  /** Where health and outcome statistics are shared, if anywhere. */
  sharedState?: ResolvedSharedState;
}

const OPTION_KEYS = ['strategy', 'experts', 'maxFallbacks', 'embedder', 'health', 'decisionTtlMs', 'maxPendingDecisions', 'seed', 'clock', 'sharedState'] as const;
const HEALTH_KEYS = ['windowMs', 'failureRate', 'minRequests', 'cooldownMs'] as const;
const STRATEGIES = Object.values(RoutingStrategy);
/** Default of {@link RewiringExpertsOptions.maxPendingDecisions}. */
const MAX_PENDING = 4096;

// Options objects made by rewiringOptions / restoringOptions, with what they resolved to: the
// constructor takes them without checking them again.
const RESOLVED = new WeakMap<object, ResolvedRewiringOptions>();

/**
 * Checks router options written at `path`, so each error names the option as the caller wrote
 * it: `new RewiringExperts(o)` checks `o` at `'options'`; a control plane holding router
 * options in its own (`options.routerOptions`) checks them there and passes the result to the
 * constructor, which takes it as is:
 *
 * ```ts
 * const router = new RewiringExperts(rewiringOptions(o.routerOptions, 'options.routerOptions'));
 * ```
 *
 * @param options - Options as given (anything: they are checked).
 * @param path - Where the caller's caller wrote them (`'options.routerOptions'`).
 * @returns Frozen options, every default filled in, that the constructor accepts without a second check.
 * @throws TypeError | RangeError - naming the option under `path` (`options.routerOptions.health.failureRate`).
 * @internal
 */
export function rewiringOptions(options: unknown, path: string): Readonly<RewiringExpertsOptions> {
  return register(checkOptions(options, path));
}

/**
 * Options that make the constructor start from saved state (`RewiringExperts.load`): `options`
 * with the file's strategy and experts, checked at `'options'`.
 * @internal
 */
export function restoringOptions(options: unknown, state: RouterState, file: string): Readonly<RewiringExpertsOptions> {
  const r = checkOptions({ ...(options as object), strategy: state.strategy, experts: state.experts }, 'options');
  return register({ ...r, restore: { state, file } });
}

/**
 * What options resolve to: those made by {@link rewiringOptions} as they were, others checked
 * at `'options'`.
 * @internal
 */
export function resolveRewiringOptions(options: unknown): ResolvedRewiringOptions {
  const known = typeof options === 'object' && options !== null ? RESOLVED.get(options) : undefined;
  return known ?? checkOptions(options, 'options');
}

function register(r: ResolvedRewiringOptions): Readonly<RewiringExpertsOptions> {
  const { strategy, experts, maxFallbacks, decisionTtlMs, maxPendingDecisions, seed, clock, health, sharedState } = r;
  const out: RewiringExpertsOptions = Object.freeze({
    strategy, experts, maxFallbacks, decisionTtlMs, maxPendingDecisions, seed, clock, embedder: r.scorer.embedder, health: Object.freeze({ ...health }),
    ...(sharedState === undefined ? {} : { sharedState: Object.freeze(sharedOptions(sharedState)) }),
  });
  RESOLVED.set(out, r);
  return out;
}

function checkOptions(options: unknown, path: string): ResolvedRewiringOptions {
  const o = v.options<RewiringExpertsOptions>(path, options, OPTION_KEYS);
  const strategy = o.strategy === undefined ? RoutingStrategy.PERFORMANCE_BASED : v.oneOf(`${path}.strategy`, o.strategy, STRATEGIES);
  const maxFallbacks = o.maxFallbacks === undefined ? 3 : v.integer(`${path}.maxFallbacks`, o.maxFallbacks, 0, 16);
  const decisionTtlMs = o.decisionTtlMs === undefined ? 600_000 : v.integer(`${path}.decisionTtlMs`, o.decisionTtlMs, 1);
  const maxPendingDecisions = o.maxPendingDecisions === undefined ? MAX_PENDING : v.integer(`${path}.maxPendingDecisions`, o.maxPendingDecisions, 1, 1 << 20);
  const clock = o.clock === undefined ? Date.now : (v.optionalFunction<() => number>(`${path}.clock`, o.clock) as () => number);
  const seed = o.seed === undefined ? 1 : v.integer(`${path}.seed`, o.seed, 0);
  // The router's embedder is the scorer's, written at the same path.
  const scorer = scorerOptions(o.embedder === undefined ? {} : { embedder: o.embedder }, path);
  const h = healthOptions(o.health, `${path}.health`, HEALTH_KEYS);
  const health = { windowMs: h.windowMs, failureRate: h.failureRate, minRequests: h.minRequests, cooldownMs: h.cooldownMs };
  const given = o.experts ?? DEFAULT_EXPERTS;
  if (!Array.isArray(given)) throw v.typeError(`${path}.experts`, 'array of ExpertProfile', given);
  const ids = new Set<string>();
  const experts = given.map((p: unknown, i) => {
    const id = (p as { id?: unknown } | null)?.id;
    if (typeof id === 'string' && ids.has(id)) throw v.rangeError(`${path}.experts[${i}].id`, 'an id not used by an earlier expert', id);
    const checked = checkProfile(`${path}.experts[${i}]`, p);
    ids.add(checked.id);
    if (checked.keywords !== undefined) Object.freeze(checked.keywords);
    return Object.freeze(checked);
  });
  const sharedState = o.sharedState === undefined ? undefined : sharedStateOptions(o.sharedState, `${path}.sharedState`);
  return { strategy, experts: Object.freeze(experts), maxFallbacks, decisionTtlMs, maxPendingDecisions, seed, clock, scorer, health, ...(sharedState === undefined ? {} : { sharedState }) };
}

// The options a resolved sharedState came from (url or client, not both).
function sharedOptions(r: ResolvedSharedState): SharedRoutingStateOptions {
  const { url, client, prefix, syncIntervalMs, commandTimeoutMs, connectTimeoutMs } = r;
  return client === undefined ? { url: url!, prefix, syncIntervalMs, commandTimeoutMs, connectTimeoutMs } : { client, prefix, syncIntervalMs, commandTimeoutMs };
}

const CONTEXT_KEYS = ['domain', 'complexity', 'latencyBudgetMs', 'exclude'] as const;

/**
 * A routing context checked, as `routeQuery` takes it.
 * @internal
 */
export function checkContext(context: unknown): RoutingContext {
  const c = v.options<RoutingContext>('context', context, CONTEXT_KEYS);
  const out: RoutingContext = {};
  if (c.domain !== undefined) out.domain = v.nonEmptyString('context.domain', c.domain);
  if (c.complexity !== undefined) out.complexity = v.unitInterval('context.complexity', c.complexity);
  if (c.latencyBudgetMs !== undefined) out.latencyBudgetMs = v.finite('context.latencyBudgetMs', c.latencyBudgetMs, { positive: true });
  if (c.exclude !== undefined) {
    if (!Array.isArray(c.exclude)) throw v.typeError('context.exclude', 'array of expert ids', c.exclude);
    out.exclude = c.exclude.map((x: unknown, i) => v.string(`context.exclude[${i}]`, x));
  }
  return out;
}

const OUTCOME_KEYS = ['success', 'latencyMs', 'quality', 'expertId', 'nonRetryable', 'retryAfterMs'] as const;

/**
 * An outcome checked, as `recordOutcome` takes it for a decision of `expertId` with `fallbacks`:
 * its `expertId` filled in.
 * @internal
 */
export function checkOutcome(outcome: unknown, expertId: string, fallbacks: readonly string[]): RoutingOutcome {
  const o = v.options<RoutingOutcome>('outcome', outcome, OUTCOME_KEYS);
  const success = v.boolean('outcome.success', o.success);
  const latencyMs = v.finite('outcome.latencyMs', o.latencyMs, { min: 0 });
  const quality = o.quality === undefined ? undefined : v.unitInterval('outcome.quality', o.quality);
  const id = o.expertId === undefined ? expertId : v.string('outcome.expertId', o.expertId);
  if (id !== expertId && !fallbacks.includes(id)) {
    throw v.rangeError('outcome.expertId', `the decision's expert or one of its fallbacks (${[expertId, ...fallbacks].join(', ')})`, id);
  }
  const nonRetryable = o.nonRetryable === undefined ? false : v.boolean('outcome.nonRetryable', o.nonRetryable);
  const retryAfterMs = o.retryAfterMs === undefined ? undefined : v.finite('outcome.retryAfterMs', o.retryAfterMs, { min: 0 });
  return {
    success, latencyMs, expertId: id, nonRetryable,
    ...(quality === undefined ? {} : { quality }),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}
