/**
 * Runs async work one job at a time, in call order: for objects whose state (a database
 * handle, an ONNX session, a KV cache) must not see two calls interleave.
 * @module
 */

/**
 * A FIFO of async jobs. A job that fails fails only its own caller; the next job runs anyway.
 * @internal
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  /** Runs `work` after every job queued before it has settled; resolves or rejects as `work` does. */
  run<T>(work: () => Promise<T> | T): Promise<T> {
    const job = this.#tail.then(work, work);
    this.#tail = job.catch(() => undefined);
    return job;
  }

  /** Resolves once every job queued so far has settled (never rejects). */
  idle(): Promise<void> {
    return this.#tail.then(() => undefined);
  }
}
