/**
 * The one listener-error policy: a listener that throws never changes what the caller of the
 * emitting method gets, nor stops the other listeners. Its error goes to the emitter's
 * `'error'` listeners when there are any, otherwise (or when an `'error'` listener throws too)
 * to `process.emitWarning`, so it is seen without crashing the process.
 * @module
 */
import type { EventEmitter } from 'node:events';

/**
 * Calls every listener of `event` with `args`, each on its own, and routes what they throw by
 * the policy above. Returns whether the event had listeners, as `emit` does.
 * @internal
 */
export function emitSafely(emitter: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
  if (emitter.listenerCount(event) === 0) return false;
  // rawListeners: the wrappers of once() listeners, which remove themselves when called.
  for (const listener of emitter.rawListeners(event)) {
    try {
      (listener as (...a: unknown[]) => unknown).apply(emitter, args);
    } catch (err) {
      if (event === 'error') warn(err, `an 'error' listener`);
      else reportError(emitter, err, `a '${String(event)}' listener`);
    }
  }
  return true;
}

/**
 * Hands an error no caller is waiting for (a timer's task, a listener's throw) to the
 * `'error'` listeners, or to `process.emitWarning` when there are none.
 * @internal
 */
export function reportError(emitter: EventEmitter, err: unknown, source = 'a background task'): void {
  if (emitter.listenerCount('error') === 0) {
    warn(err, source);
    return;
  }
  emitSafely(emitter, 'error', err);
}

function warn(err: unknown, source: string): void {
  const e = err instanceof Error ? err : new Error(String(err));
  process.emitWarning(`${source} threw: ${e.message}`, { type: 'CapibaraListenerWarning', detail: e.stack });
}
