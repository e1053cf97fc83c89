/**
 * Events of an emitter under the one listener policy (`emitSafely`: a listener that throws
 * changes nothing for the caller), held back while a multi-step pass runs so that no listener
 * sees, or acts on, a pool half-way through the pass.
 * @module
 */
import type { EventEmitter } from 'node:events';
import { emitSafely } from '../../toolkit/listeners';

/** @internal */
export class DeferredEvents {
  // Events of the pass running now; null outside a pass.
  #held: Array<[string, unknown[]]> | null = null;

  constructor(private readonly emitter: EventEmitter) {}

  /** Emits now, or at the end of the pass running. */
  emit(event: string, ...args: unknown[]): void {
    if (this.#held !== null) this.#held.push([event, args]);
    else emitSafely(this.emitter, event, ...args);
  }

  /**
   * Runs `pass` with its events held back, then emits them in order, also when the pass threw:
   * what it did before failing stands, and is told.
   */
  hold<T>(pass: () => T): T {
    const outer = this.#held;
    const held: Array<[string, unknown[]]> = [];
    this.#held = held;
    try {
      return pass();
    } finally {
      this.#held = outer;
      for (const [event, args] of held) this.emit(event, ...args);
    }
  }
}
