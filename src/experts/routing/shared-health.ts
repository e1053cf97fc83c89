/**
 * A replica's health view when routing state is shared: its own {@link HealthTracker} (its own
 * outcomes, decided at once, and all there is while Redis is unreachable) overlaid with the
 * fleet's cooldowns as Redis last reported them. Routing reads only this view, synchronously.
 * @module
 */
import type { EventEmitter } from 'node:events';

import { emitSafely } from '../../toolkit/listeners';
import * as v from '../../validate';
import { earliestRecovery, type ExpertHealth, type HealthOutcome, HealthTracker } from './health';
import type { StrategyOutcome } from './strategies';
import { type FleetCooldown, type ResolvedSharedState, SharedRoutingState, type SharedRules } from './shared-state';
import type { CooldownReason } from './types';

/**
 * What the router and its fallback runs need of a health tracker: the in-process
 * {@link HealthTracker}, or {@link SharedHealth} over it.
 * @internal
 */
export interface HealthView {
  isAvailable(expertId: string): boolean;
  status(expertId: string): ExpertHealth;
  earliestRecovery(expertIds: readonly string[]): number | null;
  record(expertId: string, outcome: HealthOutcome): ExpertHealth;
  remove(expertId: string): boolean;
  toJSON(): unknown;
  load(json: unknown): void;
}

/**
 * An expert is available when neither this replica's outcomes nor the fleet's (in Redis) cool
 * it down: `coolingUntil` is the later of the two ends and `reason` that cooldown's reason. The
 * window figures are the fleet's once Redis has reported them, this replica's before.
 * `onChange` is called when that combined availability changes.
 * @internal
 */
export class SharedHealth implements HealthView {
  readonly #local: HealthTracker;
  readonly #now: () => number;
  readonly #onChange: (expertId: string, status: ExpertHealth) => void;
  /** Fleet cooldowns not over yet, as last reported. */
  readonly #fleet = new Map<string, FleetCooldown>();
  /** The fleet's window per expert, as last reported. */
  readonly #windows = new Map<string, { requests: number; failures: number }>();
  /** Experts last reported unavailable through onChange. */
  readonly #down = new Set<string>();

  constructor(rules: { windowMs: number; failureRate: number; minRequests: number; cooldownMs: number }, now: () => number, onChange: (expertId: string, status: ExpertHealth) => void) {
    this.#now = now;
    this.#onChange = onChange;
    this.#local = new HealthTracker({ ...rules, now, onChange: (id) => this.#changed(id) });
  }

  isAvailable(expertId: string): boolean {
    return this.#local.isAvailable(expertId) && this.#fleetAvailable(expertId);
  }

  status(expertId: string): ExpertHealth {
    v.nonEmptyString('expertId', expertId);
    return this.#merge(this.#local.status(expertId), expertId);
  }

  earliestRecovery(expertIds: readonly string[]): number | null {
    return earliestRecovery(expertIds, (id) => this.status(id), this.#now());
  }

  record(expertId: string, outcome: HealthOutcome): ExpertHealth {
    return this.#merge(this.#local.record(expertId, outcome), expertId);
  }

  remove(expertId: string): boolean {
    this.#fleet.delete(expertId);
    this.#windows.delete(expertId);
    this.#down.delete(expertId);
    return this.#local.remove(expertId);
  }

  toJSON(): unknown {
    return this.#local.toJSON();
  }

  load(json: unknown): void {
    this.#local.load(json);
  }

  /** This replica's own cooldowns in progress (restored to Redis after a reconnect). */
  localCooldowns(ids: Iterable<string>): Array<[string, FleetCooldown]> {
    const out: Array<[string, FleetCooldown]> = [];
    for (const id of ids) {
      const s = this.#local.status(id);
      if (s.coolingUntil !== null && s.reason !== null) out.push([id, { until: s.coolingUntil, reason: s.reason }]);
    }
    return out;
  }

  /**
   * Takes the list of cooldowns Redis holds. A cooldown this view knows but the list lacks stays
   * until its end: a reply can overtake the event of a cooldown that started after it was sent
   * (they come on different connections), and Redis forgets cooldowns only when it loses its data.
   */
  setFleetCooldowns(list: ReadonlyMap<string, FleetCooldown>, known: (id: string) => boolean): void {
    for (const [id, c] of list) if (known(id)) this.fleetCooldownStarted(id, c);
  }

  /** Adds one fleet cooldown that just started (from the subscription). */
  fleetCooldownStarted(id: string, c: FleetCooldown): void {
    const cur = this.#fleet.get(id);
    if (cur !== undefined && cur.until >= c.until) return;
    this.#fleet.set(id, c);
    this.#changed(id);
  }

  /** Records the fleet's window figures of some experts. */
  setWindows(w: ReadonlyMap<string, { requests: number; failures: number }>): void {
    for (const [id, x] of w) this.#windows.set(id, x);
  }

  #fleetAvailable(id: string): boolean {
    const c = this.#fleet.get(id);
    if (c === undefined) return true;
    if (this.#now() < c.until) return false;
    this.#fleet.delete(id);
    this.#changed(id);
    return true;
  }

  #merge(local: ExpertHealth, id: string): ExpertHealth {
    this.#fleetAvailable(id);
    const fleet = this.#fleet.get(id);
    const w = this.#windows.get(id);
    const requests = w === undefined ? local.windowRequests : w.requests;
    const failures = w === undefined ? local.windowFailures : w.failures;
    const fleetLater = fleet !== undefined && (local.coolingUntil === null || fleet.until > local.coolingUntil);
    return {
      available: local.available && fleet === undefined,
      coolingUntil: fleetLater ? fleet.until : local.coolingUntil,
      windowRequests: requests,
      windowFailures: failures,
      failureRate: requests === 0 ? 0 : failures / requests,
      reason: fleetLater ? (fleet.reason as CooldownReason) : local.reason,
    };
  }

  // Reports a change of the combined availability (once per change).
  #changed(id: string): void {
    const s = this.#merge(this.#local.status(id), id);
    if (s.available === !this.#down.has(id)) return;
    if (s.available) this.#down.delete(id);
    else this.#down.add(id);
    this.#onChange(id, s);
  }
}

/**
 * Connects a router's health view and strategy to the shared state: replies and events update
 * the view, other replicas' outcomes feed `observe`, and a lost or regained connection is
 * reported as `'sharedState'` on `emitter` (a process warning when nobody listens to a loss).
 * @internal
 */
export function linkSharedState(o: ResolvedSharedState, r: {
  health: SharedHealth;
  rules: SharedRules;
  now: () => number;
  experts: () => IterableIterator<string>;
  has: (id: string) => boolean;
  observe: (id: string, outcome: StrategyOutcome, at: number) => void;
  emitter: EventEmitter;
  replica: string;
}): SharedRoutingState {
  const { health } = r;
  const known = r.has;
  const state: SharedRoutingState = new SharedRoutingState(o, {
    now: r.now,
    rules: r.rules,
    expertIds: () => [...r.experts()],
    localCooldowns: () => health.localCooldowns(r.experts()),
    cooldowns: (list) => health.setFleetCooldowns(list, known),
    cooldownStarted: (id, c) => known(id) && health.fleetCooldownStarted(id, c),
    windows: (w) => health.setWindows(w),
    outcomes: (list) => {
      for (const x of list) {
        if (known(x.expertId)) r.observe(x.expertId, { success: x.success, latencyMs: x.latencyMs, ...(x.quality === undefined ? {} : { quality: x.quality }) }, x.at);
      }
    },
    connection: (connected, error) => {
      if (emitSafely(r.emitter, 'sharedState', connected ? { connected } : { connected, error }) || connected) return;
      process.emitWarning(
        `RewiringExperts: the shared routing state in Redis at ${state.where} is unreachable (${error?.message ?? 'unknown error'}); ` +
          "this replica routes on its own outcomes and the fleet cooldowns it knew until Redis is back. Listen for 'sharedState' to handle this yourself.",
        { type: 'CapibaraRoutingWarning', code: 'CAPIBARA_ROUTING_SHARED_STATE' },
      );
    },
  }, r.replica);
  return state;
}
