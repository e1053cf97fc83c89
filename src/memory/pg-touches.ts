/**
 * Access statistics of a PostgreSQL-backed MemAgent (`lastAccessed`, `accessCount` of retrieved
 * items), written in the background: the retrievals of up to {@link TOUCH_DELAY_MS} go out as one
 * statement, best effort. Each statement takes a version of its own, so that every other
 * process's next refresh carries the new statistics.
 * @module
 */
import type { Pool } from 'pg';

import { query } from './pg-connection';

/** Access statistics are written at most this often (ms), each time for every retrieval since. */
const TOUCH_DELAY_MS = 50;

/**
 * The retrievals waiting to be written, and how many could not be.
 * @internal
 */
export class PgTouches {
  /** Retrievals whose statistics could not be written, as SQLite's store counts them. */
  failures = 0;
  #batch = new Map<number, { at: number; n: number }>();
  /** Retrievals in `#batch`. */
  #calls = 0;
  #flushing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | undefined;

  /** `s`: the quoted schema. */
  constructor(
    private readonly pool: Pool,
    private readonly s: string,
  ) {}

  /** Records one retrieval of `seqs` at `now`; sent with the others of its batch. */
  add(seqs: readonly number[], now: number): void {
    if (seqs.length === 0) return;
    this.#calls++;
    for (const seq of seqs) {
      const t = this.#batch.get(seq);
      if (t === undefined) this.#batch.set(seq, { at: now, n: 1 });
      else {
        t.at = Math.max(t.at, now);
        t.n++;
      }
    }
    this.#schedule();
  }

  /** Stops the timer and sends what waits (after a statement in flight). */
  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#flushing;
    await this.#flush();
  }

  // One statement at most every TOUCH_DELAY_MS: retrievals in between add to the same batch.
  #schedule(): void {
    if (this.#timer !== undefined || this.#flushing !== null || this.#batch.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flushing = this.#flush().finally(() => {
        this.#flushing = null;
        this.#schedule();
      });
    }, TOUCH_DELAY_MS);
    this.#timer.unref();
  }

  async #flush(): Promise<void> {
    if (this.#batch.size === 0) return;
    const batch = this.#batch;
    const calls = this.#calls;
    this.#batch = new Map();
    this.#calls = 0;
    const seqs = [...batch.keys()];
    try {
      await query(this.pool, `WITH v AS (UPDATE ${this.s}.memagent_state SET version = version + 1 RETURNING version)
        UPDATE ${this.s}.memagent_items i SET last_accessed = GREATEST(i.last_accessed, x.at), access_count = i.access_count + x.n, touch_seq = v.version
        FROM v, unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS x(seq, at, n) WHERE i.seq = x.seq AND i.deleted_at IS NULL`,
      [seqs, seqs.map((s) => batch.get(s)!.at), seqs.map((s) => batch.get(s)!.n)]);
    } catch {
      this.failures += calls;
    }
  }
}
