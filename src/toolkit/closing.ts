/**
 * One way to close: every long-lived object (stores, monitors, sessions, servers) holds a
 * {@link CloseGuard}, so `close()` is idempotent everywhere and a call after it fails with the
 * same {@link ClosedError}.
 * @module
 */

/**
 * Thrown (or rejected with) by a call on an object after its `close()`. The message names the
 * object: `"MemAgent is closed"`.
 *
 * @example
 * ```ts
 * try { await memory.retrieveMemory('x'); } catch (err) { if (err instanceof ClosedError) reconnect(); }
 * ```
 */
export class ClosedError extends Error {
  /** Always `'ClosedError'`. */
  override readonly name = 'ClosedError';

  /**
   * @param what - The object, as the message names it: `'MemAgent'`, `'The budget store'`.
   *
   * @example
   * ```ts
   * new ClosedError('MemAgent').message; // 'MemAgent is closed'
   * ```
   */
  constructor(what: string) {
    super(`${what} is closed`);
  }
}

/**
 * Close state of one object: `closed` turns true at the first `close`, the release work runs
 * once, and every later `close` returns the first one's promise.
 * @internal
 */
export class CloseGuard {
  #done: Promise<void> | undefined;

  /** @param what - How {@link ClosedError} names the owner. */
  constructor(readonly what: string) {}

  get closed(): boolean {
    return this.#done !== undefined;
  }

  /** Throws {@link ClosedError} once closed. */
  check(): void {
    if (this.#done !== undefined) throw new ClosedError(this.what);
  }

  /** The {@link ClosedError} for this owner (for promise-returning calls that reject instead of throwing). */
  error(): ClosedError {
    return new ClosedError(this.what);
  }

  /** Marks closed and runs `release` once; later calls get the first call's promise. */
  close(release: () => Promise<void> | void): Promise<void> {
    this.#done ??= (async () => release())();
    return this.#done;
  }

  /** {@link CloseGuard.close} for owners whose `close()` is synchronous: `release` runs once. */
  closeSync(release: () => void): void {
    if (this.#done !== undefined) return;
    this.#done = Promise.resolve();
    release();
  }
}
