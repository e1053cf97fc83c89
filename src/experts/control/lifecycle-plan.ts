/**
 * The decisions of one lifecycle pass, as a pure function of what the pass measured: drift, then
 * the experts to retire (failing, then idle), then the experts to merge. The control plane
 * applies the actions in order; nothing here touches the pool.
 * @module
 */
import { emptyCounters, type ExpertCounters } from './counters';
import { isFailing } from './attention-reasons';
import { type DriftReport, type LifecycleReport, measureDrift, overlappingPairs, type ResolvedPolicy } from './lifecycle';
import type { WindowCounts } from './traffic-ledger';

/** What the rules read of one active expert. @internal */
export interface LifecycleExpert {
  id: string;
  /** Clock ms it was registered. */
  createdAt: number;
  /** Clock ms it was last used (routed to, or an outcome recorded for it), or undefined. */
  lastUsedAt: number | undefined;
}

/** The inputs of a pass. @internal */
export interface LifecycleInput {
  policy: ResolvedPolicy;
  /** Clock ms of the pass. */
  at: number;
  /** The window since the previous pass. */
  window: Pick<WindowCounts, 'experts' | 'terms' | 'termsComplete'>;
  /** Queries routed per expert in the previous window; null before the first pass. */
  previous: ReadonlyMap<string, number> | null;
  /** Whether experts were retired or merged since the previous window. */
  poolChanged: boolean;
  /** The active experts, registry order. */
  active: readonly LifecycleExpert[];
}

/** One change a pass makes, with its evidence (as the report lists it). @internal */
export type LifecycleAction =
  | { type: 'retire'; retired: LifecycleReport['retired'][number] }
  | { type: 'merge'; merged: LifecycleReport['merged'][number] };

/** @internal */
export interface LifecyclePlan {
  /** Queries routed per expert in the window (experts with none left out). */
  routed: Map<string, number>;
  /** Outcomes recorded in the window, all experts. */
  outcomes: number;
  drift: DriftReport | null;
  /** The changes, in the order to apply them. */
  actions: LifecycleAction[];
}

/**
 * The pass's decisions. Retirements go worst first (highest failure rate, longest idle; ties in
 * registry order), so that when `minActive` stops a rule the experts kept are the better ones;
 * a merge folds the expert with fewer queries in the window into the other, each expert in one
 * merge at most.
 * @internal
 */
export function planLifecycle(input: LifecycleInput): LifecyclePlan {
  const { policy: p, at, window: w } = input;
  const routed = new Map<string, number>();
  let outcomes = 0;
  for (const [id, c] of w.experts) {
    if (c.routed > 0) routed.set(id, c.routed);
    outcomes += c.outcomes;
  }
  const drift =
    p.driftThreshold === false || input.previous === null ? null : measureDrift(input.previous, routed, p.driftThreshold, p.minDriftQueries, input.poolChanged);
  const counters = (id: string): ExpertCounters => w.experts.get(id) ?? emptyCounters();
  const actions: LifecycleAction[] = [];
  let active = [...input.active];
  const shrink = (id: string): boolean => {
    if (active.length <= p.minActive) return false;
    active = active.filter((e) => e.id !== id);
    return true;
  };

  if (p.maxFailureRate !== false) {
    const limit = p.maxFailureRate;
    const failing = active
      .map((e) => ({ e, c: counters(e.id) }))
      .filter(({ c }) => isFailing(c, p.minOutcomes, limit))
      .sort((x, y) => y.c.failures / y.c.outcomes - x.c.failures / x.c.outcomes);
    for (const { e, c } of failing) {
      if (!shrink(e.id)) break;
      actions.push({ type: 'retire', retired: { id: e.id, reason: 'failing', failureRate: c.failures / c.outcomes, outcomes: c.outcomes } });
    }
  }
  if (p.idleMs !== false) {
    const limit = p.idleMs;
    const idle = active
      .map((e) => ({ e, idleForMs: at - Math.max(e.lastUsedAt ?? e.createdAt, e.createdAt) }))
      .filter((x) => x.idleForMs >= limit)
      .sort((x, y) => y.idleForMs - x.idleForMs);
    for (const { e, idleForMs } of idle) {
      if (!shrink(e.id)) break;
      actions.push({ type: 'retire', retired: { id: e.id, reason: 'idle', idleForMs } });
    }
  }
  // Overlap needs the terms of every query of the window.
  if (p.mergeOverlap !== false && w.termsComplete) {
    const done = new Set<string>();
    const pairs = overlappingPairs(routed, w.terms, active.map((e) => e.id), p.mergeOverlap, p.minMergeQueries);
    for (const { a, b, overlap } of pairs) {
      if (done.has(a) || done.has(b) || active.length <= p.minActive) continue;
      const [into, from] = (routed.get(a) ?? 0) >= (routed.get(b) ?? 0) ? [a, b] : [b, a];
      shrink(from);
      actions.push({ type: 'merge', merged: { into, from, overlap } });
      done.add(a).add(b);
    }
  }
  return { routed, outcomes, drift, actions };
}
