/**
 * The one abortable timer wait (retry back-off, cooldowns).
 * @module
 */

/**
 * Resolves after `ms`; rejects as soon as `signal` aborts (at once if it already has), with
 * `abortError()` — by default the signal's `reason`, as `node:timers/promises` does. The timer
 * is not `unref()`ed: the caller is waiting on it.
 * @internal
 */
export function sleep(ms: number, signal?: AbortSignal, abortError: () => unknown = () => signal?.reason): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError());
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
