/**
 * Per-expert health for request-level routing: LiteLLM-style cooldowns over a sliding window
 * of outcomes, with automatic recovery.
 * @module
 */

import * as v from '../../validate';
import { HealthWindow } from './health-window';
import type { CooldownReason, RoutingOutcome } from './types';

export type { CooldownReason } from './types';

/**
 * The part of a {@link RoutingOutcome} the tracker reads; a whole `RoutingOutcome` can be passed.
 *
 * @example
 * ```ts
 * const o: HealthOutcome = { success: false, retryAfterMs: 30_000 };
 * ```
 */
export type HealthOutcome = Pick<RoutingOutcome, 'success' | 'nonRetryable' | 'retryAfterMs'>;

/**
 * Health of one expert at the time of the query.
 *
 * @example
 * ```ts
 * const s: ExpertHealth = tracker.status('gpt');
 * if (!s.available) console.log(`gpt is back at ${s.coolingUntil} (${s.reason})`);
 * ```
 */
export interface ExpertHealth {
  /** Whether requests may be routed to it now (not cooling down). */
  available: boolean;
  /** When its cooldown ends (clock ms; available from that ms on), or null when not cooling down. */
  coolingUntil: number | null;
  /** Outcomes recorded in the last `windowMs` (cleared when a cooldown ends). */
  windowRequests: number;
  /** Failures among them. */
  windowFailures: number;
  /** `windowFailures / windowRequests`, or 0 with no requests. */
  failureRate: number;
  /** Why it is cooling down, or null when it is not. */
  reason: CooldownReason | null;
}

/**
 * Options of {@link HealthTracker}.
 *
 * @example
 * ```ts
 * const opts: HealthTrackerOptions = { cooldownMs: 10_000, onChange: (id, s) => log.info(id, s) };
 * ```
 */
export interface HealthTrackerOptions {
  /** Length of the sliding window of outcomes (ms, > 0); default 60 000 (LiteLLM's "current minute"). */
  windowMs?: number;
  /** An expert cools down when failures / requests in the window is strictly above this, in [0, 1]; default 0.5. */
  failureRate?: number;
  /** Requests the window must hold before the failure rate can cool an expert (integer >= 1); default 2, so never on the first request. */
  minRequests?: number;
  /** Cooldown length when the expert gave no `retryAfterMs` (ms, > 0); default 5 000. */
  cooldownMs?: number;
  /**
   * Called when an expert enters cooldown, when a later failure moves the end of its cooldown
   * later, and when it leaves cooldown. Entering is reported inside {@link HealthTracker.record};
   * leaving is detected lazily, on the first query about that expert (`status`, `isAvailable`,
   * `earliestRecovery`, `record`) at or after `coolingUntil` — no timer runs.
   */
  onChange?: (expertId: string, status: ExpertHealth) => void;
  /** Clock in ms; default `Date.now`. Saved state holds clock times, so use an epoch clock to restore it in another process. */
  now?: () => number;
}

/**
 * Serialised state of a {@link HealthTracker} (JSON-safe), from {@link HealthTracker.toJSON}.
 *
 * @example
 * ```ts
 * const json: HealthTrackerJSON = JSON.parse(JSON.stringify(tracker));
 * ```
 */
export interface HealthTrackerJSON {
  /** Layout version, 1. */
  version: 1;
  /** One entry per expert the tracker knows. */
  experts: ExpertHealthJSON[];
}

/**
 * Serialised state of one expert in {@link HealthTrackerJSON}.
 *
 * @example
 * ```ts
 * const e: ExpertHealthJSON = { id: 'gpt', window: [[1_000, 2, 1]], coolingUntil: null, reason: null };
 * ```
 */
export interface ExpertHealthJSON {
  /** Expert id. */
  id: string;
  /** Outcomes of the window as `[clock ms, requests, failures]`, oldest first. */
  window: Array<[number, number, number]>;
  /** End of its cooldown, or null. */
  coolingUntil: number | null;
  /** Why it cools down, or null. */
  reason: CooldownReason | null;
}

const OPTION_KEYS = ['windowMs', 'failureRate', 'minRequests', 'cooldownMs', 'onChange', 'now'] as const;
const REASONS: readonly CooldownReason[] = ['failure-rate', 'non-retryable', 'retry-after'];

/**
 * {@link HealthTrackerOptions} checked and with their defaults filled in.
 * @internal
 */
export interface ResolvedHealthOptions {
  windowMs: number;
  failureRate: number;
  minRequests: number;
  cooldownMs: number;
  onChange: ((expertId: string, status: ExpertHealth) => void) | undefined;
  now: () => number;
}

/**
 * Checks health options written at `path` (`'options'` for the tracker's own, `'options.health'`
 * in a router's), so each error names the option as its caller wrote it. `keys` narrows the
 * options accepted (a router takes the rules but not the callbacks).
 * @internal
 */
export function healthOptions(options: unknown, path: string, keys: readonly string[] = OPTION_KEYS): ResolvedHealthOptions {
  const o = v.options<HealthTrackerOptions>(path, options, keys);
  return {
    windowMs: o.windowMs === undefined ? 60_000 : v.finite(`${path}.windowMs`, o.windowMs, { positive: true }),
    failureRate: o.failureRate === undefined ? 0.5 : v.unitInterval(`${path}.failureRate`, o.failureRate),
    minRequests: o.minRequests === undefined ? 2 : v.integer(`${path}.minRequests`, o.minRequests, 1),
    cooldownMs: o.cooldownMs === undefined ? 5_000 : v.finite(`${path}.cooldownMs`, o.cooldownMs, { positive: true }),
    onChange: v.optionalFunction(`${path}.onChange`, o.onChange),
    now: v.optionalFunction<() => number>(`${path}.now`, o.now) ?? Date.now,
  };
}

/**
 * Tracks each expert's recent outcomes and cools failing experts down, by LiteLLM's rules.
 *
 * An expert cools down:
 * - when a failure leaves failures / requests in the sliding window strictly above
 *   `failureRate`, with at least `minRequests` requests in it (so never on the first request,
 *   and with the defaults 1 failure of 2 does not, 2 of 2 or 2 of 3 do) — reason `'failure-rate'`;
 * - at once on a failure marked `nonRetryable` — reason `'non-retryable'`;
 * - at once on a failure with `retryAfterMs > 0` — reason `'retry-after'`.
 *
 * The cooldown lasts `retryAfterMs` when the failure gave one (> 0), else `cooldownMs`; from
 * `coolingUntil` on, to the ms, the expert is available again. Its window is cleared then, so
 * failures from before the cooldown cannot trip it again. A failure recorded while an expert
 * cools down (a late answer) is counted; if it would trip a cooldown ending later, the cooldown
 * is extended to that end. Successes never start or shorten a cooldown.
 *
 * An outcome recorded at clock time t is in the window while `now < t + windowMs`. Experts never
 * recorded are available. Time comes only from the `now` option, so tests never sleep.
 *
 * @example
 * ```ts
 * const health = new HealthTracker({ onChange: (id, s) => console.log(id, s.available, s.reason) });
 * health.record('gpt', { success: false, nonRetryable: true }); // 401: cools down at once
 * health.isAvailable('gpt'); // false for the next 5 s
 * const wakeAt = health.earliestRecovery(['gpt', 'claude']); // now: claude is available
 * ```
 */
export class HealthTracker {
  /** Sliding window length (ms). */
  readonly windowMs: number;
  /** Failure-rate threshold (cool down when strictly above). */
  readonly failureRate: number;
  /** Requests needed in the window before the failure rate counts. */
  readonly minRequests: number;
  /** Default cooldown length (ms). */
  readonly cooldownMs: number;
  readonly #now: () => number;
  readonly #onChange: ((expertId: string, status: ExpertHealth) => void) | undefined;
  readonly #experts = new Map<string, HealthWindow>();

  /**
   * @param options - Window, threshold, cooldown, event callback and clock; see {@link HealthTrackerOptions}.
   * @example
   * ```ts
   * let t = 0;
   * const health = new HealthTracker({ windowMs: 60_000, cooldownMs: 5_000, now: () => t });
   * ```
   */
  constructor(options?: HealthTrackerOptions) {
    const o = healthOptions(options, 'options');
    this.windowMs = o.windowMs;
    this.failureRate = o.failureRate;
    this.minRequests = o.minRequests;
    this.cooldownMs = o.cooldownMs;
    this.#onChange = o.onChange;
    this.#now = o.now;
  }

  /**
   * Records the outcome of one call to an expert and applies the cooldown rules.
   *
   * @param expertId - The expert that served (or failed) the call.
   * @param outcome - `success`; for a failure, optionally `nonRetryable` and `retryAfterMs`
   *   (finite, >= 0; 0 counts as not given). Both are checked but ignored on a success: a call
   *   that succeeded starts no cooldown (a whole {@link RoutingOutcome} can be passed as is).
   * @returns The expert's health after the outcome.
   * @example
   * ```ts
   * health.record('gpt', { success: false, retryAfterMs: 30_000 }); // 429 with Retry-After: 30
   * ```
   */
  record(expertId: string, outcome: HealthOutcome): ExpertHealth {
    v.nonEmptyString('expertId', expertId);
    if (outcome === null || typeof outcome !== 'object' || Array.isArray(outcome)) throw v.typeError('outcome', 'an outcome object', outcome);
    const success = v.boolean('outcome.success', outcome.success);
    const nonRetryable = outcome.nonRetryable === undefined ? false : v.boolean('outcome.nonRetryable', outcome.nonRetryable);
    const retryAfterMs = outcome.retryAfterMs === undefined ? 0 : v.finite('outcome.retryAfterMs', outcome.retryAfterMs, { min: 0 });

    const now = this.#now();
    let w = this.#experts.get(expertId);
    if (w === undefined) {
      w = new HealthWindow();
      this.#experts.set(expertId, w);
    } else {
      this.#refresh(expertId, w, now);
    }
    w.add(now, !success);
    if (success) return this.#snapshot(w, now);

    const reason: CooldownReason | null = nonRetryable
      ? 'non-retryable'
      : retryAfterMs > 0
        ? 'retry-after'
        : w.totalRequests >= this.minRequests && w.totalFailures / w.totalRequests > this.failureRate
          ? 'failure-rate'
          : null;
    if (reason !== null) {
      const until = now + (retryAfterMs > 0 ? retryAfterMs : this.cooldownMs);
      if (w.coolingUntil === null || until > w.coolingUntil) {
        w.coolingUntil = until;
        w.reason = reason;
        const s = this.#snapshot(w, now);
        this.#onChange?.(expertId, s);
        return s;
      }
    }
    return this.#snapshot(w, now);
  }

  /**
   * Whether requests may be routed to the expert now (it is not cooling down).
   *
   * @param expertId - Expert id; an expert never recorded is available.
   * @returns True when available.
   * @example
   * ```ts
   * const usable = experts.filter((id) => health.isAvailable(id));
   * ```
   */
  isAvailable(expertId: string): boolean {
    // The routing hot path: no snapshot object, no validation beyond the map lookup.
    const w = this.#experts.get(expertId);
    if (w === undefined) return true;
    if (w.coolingUntil === null) return true;
    this.#refresh(expertId, w, this.#now());
    return w.coolingUntil === null;
  }

  /**
   * The expert's health now. Ends its cooldown (and reports it through `onChange`) if the
   * cooldown's end has come.
   *
   * @param expertId - Expert id; an expert never recorded reports available with an empty window.
   * @returns A snapshot; later records do not change it.
   * @example
   * ```ts
   * const { windowFailures, windowRequests } = health.status('gpt');
   * ```
   */
  status(expertId: string): ExpertHealth {
    v.nonEmptyString('expertId', expertId);
    const now = this.#now();
    const w = this.#experts.get(expertId);
    if (w === undefined) return { available: true, coolingUntil: null, windowRequests: 0, windowFailures: 0, failureRate: 0, reason: null };
    this.#refresh(expertId, w, now);
    return this.#snapshot(w, now);
  }

  /**
   * The soonest clock time at which any of the experts is available: now when one already is
   * (an expert never recorded is), else the smallest `coolingUntil`. For "wait for the earliest
   * recovery" when every candidate cools down.
   *
   * @param expertIds - Candidate experts.
   * @returns Clock ms, or null for an empty list.
   * @example
   * ```ts
   * const at = health.earliestRecovery(['gpt', 'claude']);
   * if (at !== null) await setTimeout(Math.max(0, at - Date.now()));
   * ```
   */
  earliestRecovery(expertIds: readonly string[]): number | null {
    return earliestRecovery(expertIds, (id) => this.status(id), this.#now());
  }

  /**
   * Forgets an expert (e.g. when it is retired). No `onChange` is reported.
   *
   * @param expertId - Expert id.
   * @returns Whether the tracker knew it.
   * @example
   * ```ts
   * health.remove('old-model');
   * ```
   */
  remove(expertId: string): boolean {
    return this.#experts.delete(v.nonEmptyString('expertId', expertId));
  }

  /**
   * The tracker's state as JSON-safe data, as stored (no cooldown is ended by this call).
   * Options are not included: pass them again to {@link HealthTracker.fromJSON}.
   *
   * @returns Serialisable state.
   * @example
   * ```ts
   * await saveState('routing.json', { health: health.toJSON() });
   * ```
   */
  toJSON(): HealthTrackerJSON {
    const experts: ExpertHealthJSON[] = [];
    for (const [id, w] of this.#experts) {
      const window: Array<[number, number, number]> = [];
      for (let i = w.head; i < w.at.length; i++) window.push([w.at[i]!, w.requests[i]!, w.failures[i]!]);
      experts.push({ id, window, coolingUntil: w.coolingUntil, reason: w.reason });
    }
    return { version: 1, experts };
  }

  /**
   * Rebuilds a tracker from {@link HealthTracker.toJSON} output. Outcomes that left the window
   * and cooldowns that ended while it was saved are dropped on the next query, as if the
   * tracker had run all along (a cooldown that ended reports `onChange` then).
   *
   * @param json - Saved state (validated; a bad field throws naming it).
   * @param options - Options of the new tracker.
   * @returns The restored tracker.
   * @example
   * ```ts
   * const health = HealthTracker.fromJSON(saved.health, { cooldownMs: 5_000 });
   * ```
   */
  static fromJSON(json: unknown, options?: HealthTrackerOptions): HealthTracker {
    const tracker = new HealthTracker(options);
    tracker.load(json);
    return tracker;
  }

  /**
   * Replaces this tracker's state with saved state, keeping its options (for an owner that
   * built the tracker with its own callbacks). All or nothing: a bad field throws, naming it,
   * before anything changes.
   *
   * @param json - {@link HealthTracker.toJSON} output.
   * @example
   * ```ts
   * health.load(saved.health);
   * ```
   */
  load(json: unknown): void {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw v.typeError('json', 'HealthTrackerJSON object', json);
    const j = json as Partial<HealthTrackerJSON>;
    if (j.version !== 1) throw v.rangeError('json.version', '1', j.version);
    if (!Array.isArray(j.experts)) throw v.typeError('json.experts', 'Array', j.experts);
    const experts = new Map<string, HealthWindow>();
    j.experts.forEach((e: unknown, i) => {
      const name = `json.experts[${i}]`;
      if (e === null || typeof e !== 'object' || Array.isArray(e)) throw v.typeError(name, 'object', e);
      const x = e as Partial<ExpertHealthJSON>;
      const id = v.nonEmptyString(`${name}.id`, x.id);
      if (experts.has(id)) throw v.rangeError(`${name}.id`, 'unique id', id);
      if (!Array.isArray(x.window)) throw v.typeError(`${name}.window`, 'Array', x.window);
      const w = new HealthWindow();
      x.window.forEach((b: unknown, k) => {
        const bn = `${name}.window[${k}]`;
        if (!Array.isArray(b) || b.length !== 3) throw v.typeError(bn, '[time, requests, failures]', b);
        const at = v.finite(`${bn}[0]`, b[0]);
        const last = w.at[w.at.length - 1];
        if (last !== undefined && at <= last) throw v.rangeError(`${bn}[0]`, `number > ${last}`, at);
        const requests = v.integer(`${bn}[1]`, b[1], 1);
        const failures = v.integer(`${bn}[2]`, b[2], 0, requests);
        w.at.push(at);
        w.requests.push(requests);
        w.failures.push(failures);
        w.totalRequests += requests;
        w.totalFailures += failures;
      });
      if (x.coolingUntil !== null || x.reason !== null) {
        w.coolingUntil = v.finite(`${name}.coolingUntil`, x.coolingUntil);
        w.reason = v.oneOf(`${name}.reason`, x.reason, REASONS);
      }
      experts.set(id, w);
    });
    this.#experts.clear();
    for (const [id, w] of experts) this.#experts.set(id, w);
  }

  /** Prunes the window and ends a cooldown whose time has come (reporting it). */
  #refresh(expertId: string, w: HealthWindow, now: number): void {
    if (w.coolingUntil !== null && now >= w.coolingUntil) {
      w.coolingUntil = null;
      w.reason = null;
      w.clear();
      this.#onChange?.(expertId, this.#snapshot(w, now));
      return;
    }
    w.prune(now, this.windowMs);
  }

  #snapshot(w: HealthWindow, now: number): ExpertHealth {
    w.prune(now, this.windowMs);
    const n = w.totalRequests;
    const f = w.totalFailures;
    return {
      available: w.coolingUntil === null,
      coolingUntil: w.coolingUntil,
      windowRequests: n,
      windowFailures: f,
      failureRate: n === 0 ? 0 : f / n,
      reason: w.reason,
    };
  }
}

/**
 * The soonest time any of `expertIds` is available under `status`: `now` when one already is,
 * else the smallest `coolingUntil`; null for an empty list. Shared by the local and fleet views.
 * @internal
 */
export function earliestRecovery(expertIds: readonly string[], status: (id: string) => ExpertHealth, now: number): number | null {
  if (!Array.isArray(expertIds)) throw v.typeError('expertIds', 'Array of expert ids', expertIds);
  let best: number | null = null;
  for (let i = 0; i < expertIds.length; i++) {
    const at = status(v.nonEmptyString(`expertIds[${i}]`, expertIds[i])).coolingUntil ?? now;
    if (best === null || at < best) best = at;
  }
  return best;
}
