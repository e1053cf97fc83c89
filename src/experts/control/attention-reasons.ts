/**
 * Why an expert needs attention, and what to do about it.
 * @module
 */

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
