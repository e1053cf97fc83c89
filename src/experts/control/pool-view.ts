/**
 * What the monitor, the coordinator and the metrics collector see of the control plane they are
 * created over: each takes a narrow view, built once by the control plane, instead of reaching
 * into it. The view travels on the control plane under a symbol that is not exported from the
 * package, so the public surface stays the control plane's own.
 * @module
 */
import type { RewiringExperts } from '../routing/index';
import type { AllocationPlan } from './allocation';
import type { TrafficLedger } from './traffic-ledger';
import type { ManagedExpert } from './types';
import * as v from '../../validate';

/** Key of the method that hands out a control plane's {@link PoolView}. @internal */
export const POOL_VIEW: unique symbol = Symbol('capibara.poolView');

/** Everything the objects created over a control plane read from it or do to it. @internal */
export interface PoolView {
  /** The router of the pool. */
  readonly router: RewiringExperts;
  /** The traffic counted from the router. */
  readonly ledger: TrafficLedger;
  /** The control plane's load window, ms. */
  readonly loadWindowMs: number;
  /** The control plane's replica budget. */
  readonly replicaBudget: number;
  /** The control plane's clock, ms. */
  now(): number;
  /** Throws ClosedError once the control plane is closed. */
  check(): void;
  /** Active experts, registry order (copies; the registry synced with the router first). */
  active(): ManagedExpert[];
  /** Whether the router has the expert available (not cooling down). */
  available(id: string): boolean;
  /** {@link MoEControlAPI.applyAllocationPlan}. */
  applyAllocationPlan(plan: Pick<AllocationPlan, 'replicas' | 'retire'>): void;
  /** Closes `child` when the control plane closes; returns the function that forgets it. */
  adopt(child: { close(): void }): () => void;
}

/** What a monitor uses. @internal */
export type MonitorView = Pick<PoolView, 'now' | 'check' | 'active' | 'available' | 'adopt'> & { readonly ledger: Pick<TrafficLedger, 'tap' | 'totals'> };

/** What a coordinator uses. @internal */
export type CoordinatorView = Pick<PoolView, 'router' | 'loadWindowMs' | 'replicaBudget' | 'now' | 'check' | 'active' | 'applyAllocationPlan' | 'adopt'> & {
  readonly ledger: Pick<TrafficLedger, 'since' | 'span' | 'totals' | 'bucketMs' | 'retainMs'>;
};

/** What a metrics collector uses. @internal */
export type CollectorView = Pick<PoolView, 'router' | 'now' | 'check' | 'active' | 'adopt'> & { readonly ledger: Pick<TrafficLedger, 'domains'> };

/**
 * The control plane of an expert pool, as monitors and coordinators take it: a
 * {@link MoEControlAPI} (the only implementation).
 *
 * @example
 * ```ts
 * const pool: ExpertPoolControl = new MoEControlAPI();
 * const monitor = new ExpertMonitor(pool, { monitoringFrequency: 60 });
 * ```
 */
export interface ExpertPoolControl {
  /** Whether the control plane is closed. */
  readonly closed: boolean;
  /** @internal */
  [POOL_VIEW](): PoolView;
}

/**
 * The view of `control`, checked to be a control plane's (the caller checks it is open, in the
 * order of its own checks).
 * @throws TypeError naming `name` for anything else.
 * @internal
 */
export function poolViewOf(name: string, control: unknown): PoolView {
  const source = control as Partial<ExpertPoolControl> | null;
  if (source === null || typeof source !== 'object' || typeof source[POOL_VIEW] !== 'function') throw v.typeError(name, 'MoEControlAPI', control);
  return source[POOL_VIEW]();
}
