/**
 * Calling listeners so that one that throws stops neither the others nor the caller's work.
 * @module
 */
import type { EventEmitter } from 'node:events';

/** Calls every listener of `event` with `args`, each on its own; returns what they threw. */
export function callListeners(emitter: EventEmitter, event: string, args: readonly unknown[]): unknown[] {
  const errors: unknown[] = [];
  if (emitter.listenerCount(event) === 0) return errors;
  // rawListeners: the wrappers of once() listeners, which remove themselves when called.
  for (const listener of emitter.rawListeners(event)) {
    try {
      (listener as (...a: unknown[]) => unknown).apply(emitter, args as unknown[]);
    } catch (err) {
      errors.push(err);
    }
  }
  return errors;
}

/**
 * Hands an error of a timer-driven task to the `'error'` listeners, each on its own. With none
 * the error is dropped, and an `'error'` listener that throws is ignored: a timer callback never
 * throws (that would crash the process).
 */
export function reportTimerError(emitter: EventEmitter, err: unknown): void {
  callListeners(emitter, 'error', [err]);
}
