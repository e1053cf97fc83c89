/**
 * What the monitor, the coordinator and the metrics collector read from the control plane
 * that created them, kept off its public surface.
 * @module
 */
import type { ManagedExpert } from './types';
import type { TrafficLedger } from './traffic-ledger';

/** A control plane's internals, for the objects it creates. */
export interface ControlInternals {
  ledger: TrafficLedger;
  now: () => number;
  /** Active experts, registry order (the registry synced with the router first). */
  active(): ManagedExpert[];
  /** Whether the router has the expert available (not cooling down). */
  health(id: string): boolean;
  /** Closes `child` when the control plane closes; returns the function that forgets it. */
  adopt(child: { close(): void }): () => void;
}

/** Control plane → its internals. */
export const INTERNALS = new WeakMap<object, ControlInternals>();
