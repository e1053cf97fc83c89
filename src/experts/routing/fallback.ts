/**
 * Fallback runs of request-level routing: call the chosen expert, then its fallbacks, until
 * one answers, recording every attempt as an outcome of the decision.
 * @module
 */
import { sleep } from '../../toolkit/sleep';
import * as v from '../../validate';
import type { PendingDecision, PendingDecisions } from './pending-decisions';
import type { HealthView } from './shared-health';
import type { ExpertProfile, RoutingContext, RoutingDecision, RoutingOutcome } from './types';

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

/**
 * What a fallback run needs of its router.
 * @internal
 */
export interface FallbackRouter {
  /** Makes (and records) the decision for the query. */
  routeQuery(text: string, context: RoutingContext): RoutingDecision;
  /** The router's pending decisions and requests in flight. */
  readonly pending: PendingDecisions;
  /** The router's health view. */
  readonly health: Pick<HealthView, 'isAvailable' | 'earliestRecovery'>;
  /** The stored profile of a registered expert (not to be changed), or undefined. */
  profile(id: string): ExpertProfile | undefined;
  /** The router's clock (ms). */
  now(): number;
  /** Applies a checked outcome to the decision `p` (held, so expiry cannot lose it). */
  apply(decisionId: string, p: PendingDecision, outcome: RoutingOutcome): void;
}

const FALLBACK_KEYS = ['context', 'maxAttempts', 'waitForRecovery', 'signal'] as const;

/**
 * `RewiringExperts.routeWithFallback`: see there.
 * @internal
 */
export async function routeWithFallback<T>(
  router: FallbackRouter,
  text: string,
  call: (expert: ExpertProfile, signal: AbortSignal | undefined) => Promise<T>,
  options: FallbackOptions,
): Promise<FallbackResult<T>> {
  if (typeof call !== 'function') throw v.typeError('call', 'function', call);
  const o = v.options<FallbackOptions>('options', options, FALLBACK_KEYS);
  const maxAttempts = o.maxAttempts === undefined ? 3 : v.integer('options.maxAttempts', o.maxAttempts, 1, 17);
  const waitForRecovery = o.waitForRecovery === undefined ? false : v.boolean('options.waitForRecovery', o.waitForRecovery);
  const signal = o.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw v.typeError('options.signal', 'AbortSignal', signal);
  signal?.throwIfAborted();
  const { pending: ledger, health } = router;
  const decision = router.routeQuery(text, o.context ?? {});
  // Held here: outcomes are recorded on this record even if the ledger drops it meanwhile.
  const pending = ledger.get(decision.id)!;
  ledger.hold(pending);
  const known = (id: string): boolean => router.profile(id) !== undefined;
  const chain = [decision.expertId, ...decision.fallbacks];
  const attempts: FallbackResult<T>['attempts'] = [];
  let waited = false;
  try {
    for (let i = 0; i < chain.length && attempts.length < maxAttempts; i++) {
      signal?.throwIfAborted();
      // Every expert left is cooling down: wait once for the earliest recovery, then start over.
      if (waitForRecovery && !waited && !chain.slice(i).some((id) => known(id) && health.isAvailable(id))) {
        waited = true;
        const at = health.earliestRecovery(chain.filter(known));
        if (at !== null) await sleep(Math.max(0, at - router.now()), signal);
        i = -1;
        continue;
      }
      const id = chain[i]!;
      const profile = router.profile(id);
      // The chosen expert is tried even when the decision was degraded (all cooling), fallbacks only when available.
      if (profile === undefined || ((i > 0 || decision.reasons.health === 'available') && !health.isAvailable(id))) continue;
      // The chosen expert's request is already in flight since the decision.
      const extra = id !== pending.expertId;
      if (extra) ledger.begin(id);
      const t0 = performance.now();
      let outcome: RoutingOutcome;
      let result: T | undefined;
      try {
        result = await call({ ...profile }, signal);
        outcome = { success: true, latencyMs: performance.now() - t0, expertId: id };
      } catch (err) {
        const latencyMs = performance.now() - t0;
        if (extra) ledger.end(id);
        if (signal?.aborted) throw signal.reason;
        outcome = failure(err, id, latencyMs);
        router.apply(decision.id, pending, outcome);
        attempts.push({ expertId: id, success: false, latencyMs, error: describeError(err) });
        continue;
      }
      if (extra) ledger.end(id);
      router.apply(decision.id, pending, outcome);
      attempts.push({ expertId: id, success: true, latencyMs: outcome.latencyMs });
      return { result: result as T, expertId: id, decision, attempts };
    }
  } finally {
    // Done (answered, given up or aborted): the decision holds nothing in flight any more.
    ledger.unhold(decision.id, pending);
  }
  throw new Error(`RewiringExperts.routeWithFallback: every expert tried failed (${attempts.map((a) => `${a.expertId}: ${a.error}`).join('; ') || 'none was available'})`);
}

/** The outcome of a failed call: HTTP 401, 403 and 404 are non-retryable; `retryAfterMs` is kept when sane. */
function failure(err: unknown, expertId: string, latencyMs: number): RoutingOutcome {
  const e = (err ?? {}) as { status?: unknown; retryAfterMs?: unknown };
  const status = typeof e.status === 'number' ? e.status : undefined;
  const retryAfter = typeof e.retryAfterMs === 'number' && Number.isFinite(e.retryAfterMs) && e.retryAfterMs >= 0 ? e.retryAfterMs : undefined;
  return { success: false, latencyMs, expertId, nonRetryable: status === 401 || status === 403 || status === 404, ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter }) };
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
