/**
 * Replica allocation plans for an expert pool: EPLB-style replication of hot experts within a
 * replica budget, computed from measured load.
 * @module
 */
import * as v from '../../validate';
import { dict } from '../../dict';
import { utilization } from './counters';

/**
 * The largest replica budget a pool or a plan takes: 65,536 (replicas are processes or
 * devices: 16 for each expert of a pool of 4,096). It bounds the work of a plan, one heap step
 * per replica given.
 *
 * @example
 * ```ts
 * new MoEControlAPI({ numExperts: 64, replicaBudget: Math.min(4 * 64, MAX_REPLICA_BUDGET) });
 * ```
 */
export const MAX_REPLICA_BUDGET = 65_536;

/**
 * How {@link MoEControlAPI.optimizeExpertAllocation} picks the expert that gets the next replica
 * (among the experts still above the target utilisation):
 *
 * - `'load_based'` (EPLB): the highest utilisation, `load / (capacity × replicas)`.
 * - `'performance_based'`: the highest *successful* utilisation, `successEstimate × load /
 *   (capacity × replicas)`, with `successEstimate = (1 + successes) / (2 + outcomes)` of the
 *   window (the router's Beta(1, 1) posterior mean): a short budget goes first to hot experts
 *   that answer well, not to hot experts that fail.
 *
 * @example
 * ```ts
 * const s: RebalancingStrategy = 'performance_based';
 * ```
 */
export type RebalancingStrategy = 'load_based' | 'performance_based';

/**
 * One expert's line of an {@link AllocationPlan}.
 *
 * @example
 * ```ts
 * for (const e of plan.experts) console.log(e.id, e.currentReplicas, '→', e.replicas, e.utilizationAfter.toFixed(2));
 * ```
 */
export interface ExpertAllocation {
  /** The expert. */
  id: string;
  /** Offered load in Erlangs (mean requests in service at once; see {@link AllocationPlan}). */
  load: number;
  /** Requests one replica serves at once (the expert's profile `capacity` per replica). */
  capacity: number;
  /** Replicas it has now. */
  currentReplicas: number;
  /** Replicas the plan gives it; 0 when the plan retires it. */
  replicas: number;
  /** `load / (capacity × currentReplicas)`. */
  utilizationBefore: number;
  /** `load / (capacity × replicas)`; 0 for a retired expert. */
  utilizationAfter: number;
  /** Routed queries in the window. */
  routed: number;
  /** `(1 + successes) / (2 + outcomes)` over the window's outcomes. */
  successEstimate: number;
}

/**
 * A replica allocation computed from measured load, from {@link MoEControlAPI.optimizeExpertAllocation}.
 *
 * **Load.** An expert's offered load is in Erlangs — the mean number of its requests in service
 * at once — by Little's law: `load = λ × W`, λ = queries routed to it in the window / window
 * length, W = the mean latency of its outcomes in the window (else of all its outcomes; an
 * expert with no measured latency has load 0). A `currentWorkload` figure replaces it.
 *
 * **Utilisation** of an expert is `load / (capacity × replicas)`: the share of its concurrent
 * request slots in use (1 = saturated). The pool's `expectedUtilization` is
 * `Σ load / Σ capacity × replicas` over the experts kept.
 *
 * **Plan.** Experts given no request in the window — no query routed to them and no fallback
 * try — while others had some, are retired (unless `retireIdle` is false).
 * Every other expert gets one replica; then, while replicas are left in the budget and some
 * expert's utilisation is above `targetUtilization`, the next replica goes to the expert above
 * the target with the highest key of the {@link RebalancingStrategy} (ties: registry order).
 *
 * @example
 * ```ts
 * const plan = control.optimizeExpertAllocation({ targetUtilization: 0.75, rebalancingStrategy: 'load_based' });
 * console.log(plan.replicas, plan.retire, plan.expectedUtilization);
 * ```
 */
export interface AllocationPlan {
  /** Clock ms the plan was computed. */
  createdAt: number;
  /** Length of the measured window, ms. */
  windowMs: number;
  /** The greedy rule used. */
  rebalancingStrategy: RebalancingStrategy;
  /** The utilisation aimed at, in (0, 1]. */
  targetUtilization: number;
  /** Replicas the pool may hold in all (at most {@link MAX_REPLICA_BUDGET}). */
  replicaBudget: number;
  /** Replicas the plan uses (<= budget). */
  replicasUsed: number;
  /** Every active expert, in registry order. */
  experts: ExpertAllocation[];
  /** Planned replicas of the experts kept. */
  replicas: Record<string, number>;
  /** Experts the plan retires (idle in the window). */
  retire: string[];
  /** `Σ load / Σ capacity × replicas` over the experts kept; 0 with no load. */
  expectedUtilization: number;
  /** The highest `utilizationAfter`. */
  maxUtilization: number;
  /** Whether every kept expert ends at or below `targetUtilization`. */
  meetsTarget: boolean;
}

/** What the planner needs per expert. */
export interface AllocationInput {
  id: string;
  load: number;
  capacity: number;
  replicas: number;
  routed: number;
  /** Requests given in the window: routed plus fallback tries. */
  attempts: number;
  successes: number;
  outcomes: number;
}

/**
 * The greedy EPLB plan (see {@link AllocationPlan}); inputs are already validated.
 * `budgetName` names the budget in the error thrown when it cannot give each expert kept a replica.
 */
export function planAllocation(
  inputs: readonly AllocationInput[],
  o: { createdAt: number; windowMs: number; targetUtilization: number; rebalancingStrategy: RebalancingStrategy; replicaBudget: number; retireIdle: boolean; budgetName: string },
): AllocationPlan {
  const anyTraffic = inputs.some((e) => e.attempts > 0 || e.load > 0);
  const idle = (e: AllocationInput) => o.retireIdle && anyTraffic && e.attempts === 0 && e.load === 0;
  const rows: ExpertAllocation[] = inputs.map((e) => ({
    id: e.id,
    load: e.load,
    capacity: e.capacity,
    currentReplicas: e.replicas,
    replicas: idle(e) ? 0 : 1,
    utilizationBefore: utilization(e.load, e.capacity, e.replicas),
    utilizationAfter: 0,
    routed: e.routed,
    successEstimate: (1 + e.successes) / (2 + e.outcomes),
  }));
  const kept = rows.filter((r) => r.replicas > 0);
  if (o.replicaBudget < kept.length) throw v.rangeError(o.budgetName, `integer >= ${kept.length} (one replica per expert kept)`, o.replicaBudget);
  const util = (r: ExpertAllocation) => utilization(r.load, r.capacity, r.replicas);
  const weight = (r: ExpertAllocation) => (o.rebalancingStrategy === 'performance_based' ? r.successEstimate : 1);
  const key = (i: number) => weight(kept[i]!) * util(kept[i]!);
  // The experts above the target in a max-heap on their key (ties: registry order), so that
  // each replica given costs O(log n), not a scan of every expert.
  const first = (i: number, j: number) => {
    const a = key(i);
    const b = key(j);
    return a > b || (a === b && i < j);
  };
  const heap: number[] = [];
  const down = (k: number) => {
    for (;;) {
      const l = 2 * k + 1;
      if (l >= heap.length) return;
      const c = l + 1 < heap.length && first(heap[l + 1]!, heap[l]!) ? l + 1 : l;
      if (!first(heap[c]!, heap[k]!)) return;
      [heap[k], heap[c]] = [heap[c]!, heap[k]!];
      k = c;
    }
  };
  kept.forEach((r, i) => {
    if (util(r) > o.targetUtilization) heap.push(i);
  });
  for (let k = (heap.length >> 1) - 1; k >= 0; k--) down(k);
  let used = kept.length;
  while (used < o.replicaBudget && heap.length > 0) {
    const best = kept[heap[0]!]!;
    best.replicas += 1;
    used += 1;
    if (util(best) <= o.targetUtilization) {
      const last = heap.pop()!;
      if (heap.length > 0) heap[0] = last;
    }
    down(0);
  }
  let load = 0;
  let slots = 0;
  let max = 0;
  for (const r of kept) {
    r.utilizationAfter = util(r);
    load += r.load;
    slots += r.capacity * r.replicas;
    max = Math.max(max, r.utilizationAfter);
  }
  return {
    createdAt: o.createdAt,
    windowMs: o.windowMs,
    rebalancingStrategy: o.rebalancingStrategy,
    targetUtilization: o.targetUtilization,
    replicaBudget: o.replicaBudget,
    replicasUsed: used,
    experts: rows,
    replicas: dict(kept.map((r) => [r.id, r.replicas])),
    retire: rows.filter((r) => r.replicas === 0).map((r) => r.id),
    expectedUtilization: slots === 0 ? 0 : load / slots,
    maxUtilization: max,
    meetsTarget: max <= o.targetUtilization,
  };
}
