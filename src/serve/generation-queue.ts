/**
 * One generation at a time, with a bounded wait line: a local model has one KV cache, so
 * requests take turns; past `maxQueue` waiting, the server sheds load instead of queueing
 * without bound. A turn is one prompt: a request with several prompts goes to the back of the
 * line after each, so it cannot hold the model while others wait.
 * @module
 */

/** Ends a turn; calling it again does nothing. */
export type Release = () => void;

export class GenerationQueue {
  #running = false;
  readonly #waiting: Array<(release: Release) => void> = [];

  constructor(readonly maxQueue: number) {}

  /** 1 while a request holds the turn, else 0. */
  get running(): number {
    return this.#running ? 1 : 0;
  }

  /** Requests waiting for their turn. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Asks for a turn. `'full'` when `maxQueue` requests already wait (unless `admitted`: a
   * request coming back for its next prompt); otherwise a promise of the release function, or
   * of `undefined` when `signal` aborts before the turn comes.
   */
  enter(signal: AbortSignal, admitted = false): 'full' | Promise<Release | undefined> {
    if (signal.aborted) return Promise.resolve(undefined);
    if (!this.#running) {
      this.#running = true;
      return Promise.resolve(this.#release());
    }
    // A request already admitted comes back for its next prompt: it is never turned away mid-way.
    if (!admitted && this.#waiting.length >= this.maxQueue) return 'full';
    return new Promise((resolve) => {
      const waiter = (release: Release) => {
        signal.removeEventListener('abort', onAbort);
        resolve(release);
      };
      const onAbort = () => {
        const i = this.#waiting.indexOf(waiter);
        if (i >= 0) this.#waiting.splice(i, 1);
        resolve(undefined);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  // The turn passes straight to the next waiter, so no newcomer can slip in between.
  #release(): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.#waiting.shift();
      if (next) next(this.#release());
      else this.#running = false;
    };
  }
}
