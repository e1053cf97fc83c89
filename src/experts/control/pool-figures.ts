/**
 * Figures of an expert pool over a sliding window of its traffic: the rows that the status,
 * allocation plans and the coordinator all start from, and the pool status itself.
 * @module
 */
import type { RewiringExperts } from '../routing/index';
import { dict } from '../../dict';
import type { AllocationInput } from './allocation';
import { attempts, emptyCounters, type ExpertCounters, meanLatency, offeredLoad, successRate, utilization } from './counters';
import type { TrafficLedger } from './traffic-ledger';
import type { ExpertPoolStatus, ExpertState, ManagedExpert } from './types';

/** One active expert over the window. @internal */
export interface WindowRow {
  expert: ManagedExpert;
  /** Its counters over the window. */
  window: ExpertCounters;
  /** Its all-time counters. */
  total: ExpertCounters;
  /** Its offered load over the window, Erlangs (all-time mean latency when the window has none). */
  load: number;
}

/** The window's rows, and the span it was really counted over (see {@link TrafficLedger.span}). @internal */
export function windowRows(
  ledger: Pick<TrafficLedger, 'since' | 'span' | 'totals'>,
  active: readonly ManagedExpert[],
  windowMs: number,
  now: number,
): { rows: WindowRow[]; spanMs: number } {
  const win = ledger.since(now - windowMs, now);
  const spanMs = ledger.span(windowMs, now);
  const rows = active.map((expert) => {
    const window = win.get(expert.id) ?? emptyCounters();
    const total = ledger.totals(expert.id);
    return { expert, window, total, load: offeredLoad(window, spanMs, meanLatency(total)) };
  });
  return { rows, spanMs };
}

/** What the allocation planner reads of each row; `workload` overrides measured loads. @internal */
export function allocationInputs(rows: readonly WindowRow[], workload: ReadonlyMap<string, number>): AllocationInput[] {
  return rows.map(({ expert: r, window: c, load }) => ({
    id: r.id,
    load: workload.get(r.id) ?? load,
    capacity: r.capacity,
    replicas: r.replicas,
    routed: c.routed,
    attempts: attempts(c),
    successes: c.successes,
    outcomes: c.outcomes,
  }));
}

/** The status of a pool (see {@link ExpertPoolStatus}). @internal */
export function poolStatus(o: {
  now: number;
  windowMs: number;
  /** `numExperts`. */
  capacity: number;
  retiredCount: number;
  active: readonly ManagedExpert[];
  ledger: Pick<TrafficLedger, 'since' | 'span' | 'totals' | 'lastUsedAt'>;
  router: Pick<RewiringExperts, 'getMetrics' | 'expertHealth'>;
  bias: ReadonlyMap<string, number>;
}): ExpertPoolStatus {
  const { rows } = windowRows(o.ledger, o.active, o.windowMs, o.now);
  const inFlight = o.router.getMetrics().inFlight;
  const experts: ExpertState[] = rows.map(({ expert: r, window, total, load }) => {
    const last = o.ledger.lastUsedAt(r.id);
    return {
      id: r.id,
      specialization: r.specialization,
      replicas: r.replicas,
      capacity: r.capacity,
      total,
      window,
      // Own keys only: the router's record is a plain object.
      inFlight: Object.hasOwn(inFlight, r.id) ? inFlight[r.id]! : 0,
      successRate: successRate(total),
      meanLatencyMs: meanLatency(total),
      load,
      utilization: utilization(load, r.capacity, r.replicas),
      bias: o.bias.get(r.id) ?? 0,
      health: o.router.expertHealth(r.id),
      lastUsedAt: last === undefined || last < r.createdAt ? null : last,
    };
  });
  const windowRouted = experts.reduce((s, e) => s + e.window.routed, 0);
  const perReplica = experts.map((e) => e.window.routed / e.replicas);
  const mean = perReplica.reduce((a, b) => a + b, 0) / perReplica.length;
  const specializations = dict<number>();
  for (const r of o.active) specializations[r.specialization] = (specializations[r.specialization] ?? 0) + 1;
  return {
    capacity: o.capacity,
    activeCount: o.active.length,
    overCapacity: Math.max(0, o.active.length - o.capacity),
    retiredCount: o.retiredCount,
    specializedCount: o.active.filter((r) => r.specialization !== 'general').length,
    specializations,
    loadDistribution: dict(experts.map((e) => [e.id, windowRouted === 0 ? 0 : e.window.routed / windowRouted])),
    maxVio: mean > 0 ? (Math.max(...perReplica) - mean) / mean : NaN,
    windowRouted,
    windowMs: o.windowMs,
    experts,
  };
}
