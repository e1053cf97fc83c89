/**
 * What a router saves and restores ({@link RewiringExperts.save} / `load`), and its counters.
 * @module
 */
import { dict } from '../../dict';
import * as v from '../../validate';
import { loadState } from './state-file';
import type { ExpertProfile, RoutingStrategy } from './types';

/**
 * The routing counters as saved.
 * @internal
 */
export interface RoutingCountersJSON {
  routed: number;
  outcomes: number;
  successes: number;
  latencySum: number;
  routedTo: Record<string, number>;
}

/**
 * A router's saved state: each part as its own `toJSON()` gives it.
 * @internal
 */
export interface RouterState {
  strategy: RoutingStrategy;
  experts: ExpertProfile[];
  policy: unknown;
  graph: unknown;
  health: unknown;
  stats: RoutingCountersJSON;
}

/**
 * Queries routed (in all and per expert) and outcomes recorded: the measured side of
 * `RewiringExperts.getMetrics`.
 * @internal
 */
export class RoutingCounters {
  routed = 0;
  outcomes = 0;
  successes = 0;
  latencySum = 0;
  readonly #routedTo = new Map<string, number>();

  /** Counts a query routed to `expertId`. */
  route(expertId: string): void {
    this.routed++;
    this.#routedTo.set(expertId, (this.#routedTo.get(expertId) ?? 0) + 1);
  }

  /** Counts an outcome. */
  outcome(success: boolean, latencyMs: number): void {
    this.outcomes++;
    if (success) this.successes++;
    this.latencySum += latencyMs;
  }

  /** Forgets an expert's share (it was removed). */
  remove(expertId: string): void {
    this.#routedTo.delete(expertId);
  }

  /** Share of routed queries sent to each of `ids`, in [0, 1] (a record without prototype). */
  utilization(ids: Iterable<string>): Record<string, number> {
    const out = dict<number>();
    for (const id of ids) out[id] = this.routed === 0 ? 0 : (this.#routedTo.get(id) ?? 0) / this.routed;
    return out;
  }

  toJSON(): RoutingCountersJSON {
    const { routed, outcomes, successes, latencySum } = this;
    return { routed, outcomes, successes, latencySum, routedTo: Object.fromEntries(this.#routedTo) };
  }

  /**
   * Counters from {@link RoutingCounters.toJSON} output, each field checked.
   * @param name - How the saved counters are named in errors (`'<file>: stats'`).
   */
  static fromJSON(json: unknown, name: string): RoutingCounters {
    const st = json as Partial<RoutingCountersJSON> | undefined;
    const count = (k: keyof Omit<RoutingCountersJSON, 'routedTo'>): number => v.finite(`${name}.${k}`, st?.[k], { min: 0 });
    const c = new RoutingCounters();
    c.routed = count('routed');
    c.outcomes = count('outcomes');
    c.successes = count('successes');
    c.latencySum = count('latencySum');
    if (st?.routedTo === null || typeof st?.routedTo !== 'object') throw v.typeError(`${name}.routedTo`, 'object of counts', st?.routedTo);
    for (const [id, n] of Object.entries(st.routedTo)) c.#routedTo.set(id, v.finite(`${name}.routedTo.${id}`, n, { min: 0 }));
    return c;
  }
}

/**
 * Reads a router's state file (see `saveState`), checking that it holds a router's state.
 * @internal
 */
export async function readRouterState(path: string): Promise<RouterState> {
  const state = (await loadState(path)) as RouterState | null;
  if (state === null || typeof state !== 'object' || !Array.isArray(state.experts)) throw new Error(`RewiringExperts.load: ${path} does not hold a router's state`);
  return state;
}
