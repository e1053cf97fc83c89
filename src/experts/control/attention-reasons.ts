/**
 * Why an expert needs attention, and what to do about it: the one set of rules the lifecycle
 * pass and the monitor both apply.
 * @module
 */
import { attempts, efficiency, type ExpertCounters, meanLatency, successRate } from './counters';
import type { PerformanceTargets } from './types';

/**
 * Why an expert was flagged. Each is measured over a window (a lifecycle window, or a monitor's
 * `timeWindow`) with enough outcomes where a rate is involved:
 *
 * - `'cooling-down'`: the router's health rules have it cooling down now.
 * - `'failing'`: failures / outcomes above the policy's `maxFailureRate`.
 * - `'below-accuracy-target'`: success rate below its `performanceTargets.accuracy`.
 * - `'above-latency-target'`: mean latency above its `performanceTargets.latency`.
 * - `'overloaded'`: utilisation above 1 (more requests in service than `capacity × replicas`).
 * - `'idle'`: no query routed to it, nor tried on it as a fallback, while the pool had traffic.
 * - `'degrading'`: its performance trend is degrading (see {@link ExpertTrend}).
 * - `'low-efficiency'`: efficiency below the monitor's `efficiencyRatio` × the pool's.
 * - `'share-shift'`: its share of traffic moved by more than the monitor's `shareShift` from the baseline.
 *
 * @example
 * ```ts
 * control.on('attention', (a: { id: string; reasons: ExpertAttentionReason[] }) => console.warn(a.id, a.reasons));
 * ```
 */
export type ExpertAttentionReason =
  | 'cooling-down'
  | 'failing'
  | 'below-accuracy-target'
  | 'above-latency-target'
  | 'overloaded'
  | 'idle'
  | 'degrading'
  | 'low-efficiency'
  | 'share-shift';

/**
 * What to do about a flagged expert: `'investigate'` (it answers badly or its traffic changed:
 * look at the service), `'add-replicas'` (it is too slow or saturated), `'retire'` (it gets no
 * traffic), `'none'`. With several reasons the first in that order wins.
 *
 * @example
 * ```ts
 * if (analysis.recommendedAction === 'add-replicas') control.optimizeExpertAllocation({ apply: true });
 * ```
 */
export type RecommendedAction = 'none' | 'investigate' | 'add-replicas' | 'retire';

const ACTION: Record<ExpertAttentionReason, RecommendedAction> = {
  'cooling-down': 'investigate',
  failing: 'investigate',
  'below-accuracy-target': 'investigate',
  degrading: 'investigate',
  'low-efficiency': 'investigate',
  'share-shift': 'investigate',
  overloaded: 'add-replicas',
  'above-latency-target': 'add-replicas',
  idle: 'retire',
};
const ORDER: RecommendedAction[] = ['investigate', 'add-replicas', 'retire'];

/** The action for a set of reasons (see {@link RecommendedAction}). */
export function recommend(reasons: readonly ExpertAttentionReason[]): RecommendedAction {
  const actions = new Set(reasons.map((r) => ACTION[r]));
  return ORDER.find((a) => actions.has(a)) ?? 'none';
}

/**
 * What the attention rules read about one expert over a window. A rule whose fact is absent
 * (undefined) is not applied: the lifecycle pass and each monitor metric watch their own rules.
 * @internal
 */
export interface AttentionFacts {
  /** The expert's counters over the window. */
  window: Readonly<ExpertCounters>;
  /** Outcomes the window needs before rates, targets and efficiency count. */
  minOutcomes: number;
  /** Whether the router has it available: false → `'cooling-down'`. */
  available?: boolean;
  /** Failure rate above which it is `'failing'`. */
  maxFailureRate?: number;
  /** Its fitted trend: `'degrading'` flags it. */
  trend?: string | null;
  /** Its targets (`'below-accuracy-target'`, `'above-latency-target'`). */
  targets?: PerformanceTargets;
  /** Queries routed to the pool in the window: `'idle'` when it had no request while the pool had some. */
  poolRouted?: number;
  /** Its utilisation: above 1 is `'overloaded'`. */
  utilization?: number;
  /** Efficiency under which it is `'low-efficiency'` (the monitor's ratio × the pool's). */
  efficiencyFloor?: number;
  /** Whether its traffic share moved beyond the monitor's bound (`'share-shift'`). */
  shareShifted?: boolean;
}

/** Whether a window with enough outcomes fails more often than `maxFailureRate`. @internal */
export function isFailing(c: Readonly<ExpertCounters>, minOutcomes: number, maxFailureRate: number): boolean {
  return c.outcomes >= minOutcomes && c.failures / c.outcomes > maxFailureRate;
}

/** The reasons the facts flag (see {@link ExpertAttentionReason}), in a fixed order. @internal */
export function attentionReasons(f: AttentionFacts): ExpertAttentionReason[] {
  const c = f.window;
  const enough = c.outcomes >= f.minOutcomes;
  const out: ExpertAttentionReason[] = [];
  if (f.available === false) out.push('cooling-down');
  if (f.maxFailureRate !== undefined && isFailing(c, f.minOutcomes, f.maxFailureRate)) out.push('failing');
  if (f.trend === 'degrading') out.push('degrading');
  if (enough && f.targets?.accuracy !== undefined && successRate(c) < f.targets.accuracy) out.push('below-accuracy-target');
  if (enough && f.targets?.latency !== undefined && meanLatency(c) > f.targets.latency) out.push('above-latency-target');
  if (f.poolRouted !== undefined && attempts(c) === 0 && f.poolRouted > 0) out.push('idle');
  if (f.utilization !== undefined && f.utilization > 1) out.push('overloaded');
  if (f.efficiencyFloor !== undefined && enough && efficiency(c) < f.efficiencyFloor) out.push('low-efficiency');
  if (f.shareShifted === true) out.push('share-shift');
  return out;
}
