/**
 * The PostgreSQL side of MemAgent ({@link MemAgent.open} with `postgres`): the same items,
 * pages and history as the SQLite file (pg-schema.ts), shared by every process on the
 * database. Each process keeps the same in-memory index as with SQLite (its mirror of the
 * table) and brings it up to date with one query before every retrieval and inside every
 * write: rows changed since the version it last saw (pg-sync.ts).
 *
 * Writes: `begin` opens a transaction whose first statement increments the one row of
 * `memagent_state`; its row lock serialises the writers of every process, so versions commit in
 * order and a writer that has read every change up to its own version plans deduplication and
 * eviction on exactly what is in the database. The store's write methods, called synchronously
 * by the shared write path (writes.ts), queue their statements; `commit` runs them, seals or
 * repacks pages (pg-pages.ts), and commits. A commit that fails rolls back, and the mirror —
 * already changed by the write path — is rebuilt from the database before it is used again.
 * @module
 */
import type { Pool, PoolClient } from 'pg';

import { type CorruptItem, MemAgentCorruptionError } from './corruption';
import type { ItemRecord } from './item-index';
import { changedFields, type DecodedRow, embeddingBlob, toColumns, toItem } from './item-row';
import type { PreparedText } from './item-store';
import type { MemoryEvent, MemoryItem } from './mem-agent-types';
import type { Compression, PageTotals } from './pages';
import { createPool, isConnectionError, Mutex, poolName, query, queries, type ResolvedPostgres } from './pg-connection';
import { maintainPages } from './pg-pages';
import { PgTouches } from './pg-touches';
import { ensurePgSchema, quoteIdent } from './pg-schema';
import { changesQuery, fetchAll, type MirrorHooks, readChanges, type Snapshot, syncChanges } from './pg-sync';
import type { ItemWrites } from './writes';

/** Connections given an 'error' listener (once each: a pool hands the same ones out again). */
const GUARDED = new WeakSet<PoolClient>();

const FIELDS = [
  'id', 'type', 'priority', 'importance', 'tags', 'metadata', 'user_id', 'agent_id', 'session_id', 'created_at', 'updated_at',
  'last_accessed', 'access_count', 'expires_at', 'pinned', 'content_hash', 'tokens', 'bytes',
] as const;
const UPDATED = ['type', 'priority', 'importance', 'tags', 'metadata', 'updated_at', 'last_accessed', 'expires_at', 'pinned', 'content_hash'] as const;

/** One write transaction in progress. */
interface Tx {
  op: string;
  client: PoolClient;
  version: number;
  statements: Array<[string, unknown[]]>;
  /** The write path changed the mirror: a failed commit must rebuild it. */
  applied: boolean;
  repack: boolean;
}

/**
 * A MemAgent's items in PostgreSQL, with the same methods as the SQLite {@link ItemStore}.
 * @internal
 */
export class PgItemStore {
  readonly label: string;
  readonly readonly: boolean;
  readonly #pool: Pool;
  readonly #owned: boolean;
  readonly #s: string;
  readonly #codec: Compression;
  readonly #dims: number;
  readonly #skip: boolean;
  readonly #lock = new Mutex();
  readonly #contents = new Map<number, string>();
  readonly #quarantined = new Set<number>();
  readonly #pageCache = new Map<number, Buffer>();
  #hooks: MirrorHooks | undefined;
  #snapshot: Snapshot | undefined;
  #last = 0;
  #totals: PageTotals = { rawBytes: 0, storedBytes: 0 };
  #tx: Tx | undefined;
  #dirty = false;
  readonly #touches: PgTouches;

  private constructor(pool: Pool, owned: boolean, o: ResolvedPostgres, codec: Compression, dims: number, readonly: boolean, skip: boolean) {
    this.#pool = pool;
    this.#owned = owned;
    this.#s = quoteIdent(o.schema);
    this.#codec = codec;
    this.#dims = dims;
    this.readonly = readonly;
    this.#skip = skip;
    this.label = `PostgreSQL at ${poolName(pool)} (schema '${o.schema}')`;
    this.#touches = new PgTouches(pool, this.#s);
  }

  /** Retrievals whose access statistics could not be written (best effort), as SQLite's store counts them. */
  get touchFailures(): number {
    return this.#touches.failures;
  }

  /** Connects, creates or migrates the schema, checks it and reads every live item. */
  static async open(o: ResolvedPostgres, codec: Compression, dims: number, readonly: boolean, skip: boolean): Promise<PgItemStore> {
    const pool = o.pool ?? createPool(o);
    // An idle connection that breaks (the server restarted) must not crash the process.
    if (o.pool === undefined) pool.on('error', () => undefined);
    const store = new PgItemStore(pool, o.pool === undefined, o, codec, dims, readonly, skip);
    try {
      const c = await store.#connect('open');
      try {
        await ensurePgSchema(c, o.schema, store.label, dims, readonly);
        store.#snapshot = await fetchAll(c, store.#s, false, store.#pageCache, dims);
      } finally {
        c.release();
      }
    } catch (err) {
      if (store.#owned) await pool.end().catch(() => undefined);
      throw err;
    }
    return store;
  }

  /** Hands the items read at open to `visit` (as the SQLite store does), then keeps `hooks` for later changes. */
  load(_dims: number, _skip: boolean, visit: (row: DecodedRow, content: string) => void): CorruptItem[] {
    const snap = this.#snapshot!;
    this.#snapshot = undefined;
    const corrupt: CorruptItem[] = [];
    this.#apply(snap, true, { upsert: visit, remove: () => undefined, touched: () => undefined, clear: () => undefined, corrupt: (c) => corrupt.push(c) });
    return corrupt;
  }

  /**
   * Where later changes (other processes', and rebuilds) go: the MemAgent's write path, and its
   * list of corrupt items (`reset` when a rebuild reads every row, damaged ones included, again).
   */
  attach(writes: ItemWrites, corrupt: { found(item: CorruptItem): void; reset(): void }): void {
    this.#hooks = {
      upsert: (row, content, changed) => writes.synced(row, content, changed),
      remove: (seq) => writes.forget(seq),
      touched: (seq, at, count) => writes.touched(seq, at, count),
      clear: () => {
        writes.clearAll();
        corrupt.reset();
      },
      corrupt: (item) => corrupt.found(item),
    };
  }

  /**
   * Runs one write: `work` (synchronous: it plans on the mirror and queues statements through
   * this store's methods) between {@link PgItemStore.begin} and {@link PgItemStore.commit}.
   */
  async write<T>(op: string, work: () => T): Promise<T> {
    await this.begin(op);
    let result: T;
    try {
      result = work();
    } catch (err) {
      await this.rollback();
      throw err;
    }
    await this.commit();
    return result;
  }

  /**
   * Brings the mirror up to date with the database (one query; more only for pages not read
   * yet). Resolves whether anything changed.
   */
  refresh(op: string): Promise<boolean> {
    // Callers that arrive while a refresh waits for its turn share it: it starts after they called.
    if (this.#queued !== null) return this.#queued;
    const p = this.#refresh(op);
    this.#queued = p;
    p.catch(() => undefined);
    return p;
  }

  #queued: Promise<boolean> | null = null;

  async #refresh(op: string): Promise<boolean> {
    const release = await this.#lock.acquire();
    this.#queued = null;
    try {
      const c = await this.#connect(op);
      let failed = false;
      try {
        if (this.#dirty) {
          await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
          this.#reload(await fetchAll(c, this.#s, true, this.#pageCache, this.#dims));
          await c.query('COMMIT');
          return true;
        }
        return await this.#sync(c, null);
      } catch (err) {
        failed = isConnectionError(err);
        throw this.#error(op, err, 'nothing was read');
      } finally {
        c.release(failed);
      }
    } finally {
      release();
    }
  }

  /** Opens a write transaction: takes the writers' lock (the state row) and reads every change before it. */
  async begin(op: string): Promise<void> {
    const release = await this.#lock.acquire();
    let c: PoolClient | undefined;
    try {
      c = await this.#connect(op);
      // One round trip: the writers' lock (the state row), then every change since this view's version.
      const res = await queries(c, `BEGIN; UPDATE ${this.#s}.memagent_state SET version = version + 1 RETURNING version; ${changesQuery(this.#s, this.#last)}`);
      const version = res[1]![0]!['version'] as number;
      if (this.#dirty) this.#reload(await fetchAll(c, this.#s, true, this.#pageCache, this.#dims), version - 1);
      else {
        // Under the lock no page can move, so a missing one is damage, reported by a full read.
        const snap = await readChanges(c, this.#s, this.#last, res[2]!, this.#pageCache, this.#dims);
        await this.#applySync(c, snap ?? (await syncChanges(c, this.#s, this.#last, this.#pageCache, this.#dims)), version - 1);
      }
      this.#tx = { op, client: c, version, statements: [], applied: false, repack: false };
      this.#release = release;
    } catch (err) {
      if (c !== undefined) {
        await c.query('ROLLBACK').catch(() => undefined);
        c.release(isConnectionError(err));
      }
      release();
      throw this.#error(op, err, 'nothing was written');
    }
  }

  #release: (() => void) | undefined;

  /** Runs `body`, whose store calls queue statements of the open transaction. */
  transaction(body: () => void): void {
    const tx = this.#tx;
    if (tx === undefined) throw new Error('MemAgent: a PostgreSQL write outside begin() (a bug)');
    const mark = tx.statements.length;
    try {
      body();
    } catch (err) {
      if (tx.statements.length > mark) this.#dirty = true; // the content map may have moved
      tx.statements.length = mark;
      throw err;
    }
    tx.applied = true;
  }

  /** Runs the queued statements, maintains the pages, commits. */
  async commit(): Promise<void> {
    const tx = this.#tx!;
    const c = tx.client;
    let sentCommit = false;
    try {
      for (const [text, values] of tx.statements) await query(c, text, values);
      this.#totals = await maintainPages(c, this.#s, this.#codec, tx.repack, this.#quarantined);
      sentCommit = true;
      await c.query('COMMIT');
      this.#last = tx.version;
      this.#end(tx, false);
    } catch (err) {
      const broken = isConnectionError(err);
      if (!broken) await c.query('ROLLBACK').catch(() => undefined);
      if (tx.applied) this.#dirty = true;
      this.#end(tx, broken);
      throw this.#error(tx.op, err, sentCommit && broken ? 'it may or may not have been committed' : 'nothing was written');
    }
  }

  /** Abandons the open transaction (the write failed before its commit). */
  async rollback(): Promise<void> {
    const tx = this.#tx;
    if (tx === undefined) return;
    let broken = false;
    await tx.client.query('ROLLBACK').catch((err: unknown) => void (broken = isConnectionError(err)));
    if (tx.applied) this.#dirty = true;
    this.#end(tx, broken);
  }

  #end(tx: Tx, broken: boolean): void {
    tx.client.release(broken);
    this.#tx = undefined;
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }

  content(seq: number, id: string): string {
    const text = this.#contents.get(seq);
    if (text === undefined) throw new Error(`MemAgent: item ${id} (row ${seq}) has no text in this process's view of ${this.label}`);
    return text;
  }

  view(r: ItemRecord, content?: string): MemoryItem {
    return toItem(r, content ?? this.content(r.seq, r.id));
  }

  insert(r: ItemRecord, p: PreparedText): number {
    const tx = this.#tx!;
    const c = toColumns(r);
    const n = FIELDS.length;
    this.#queue(
      `WITH i AS (INSERT INTO ${this.#s}.memagent_items (${FIELDS.join(', ')}, seq, change_seq, text, embedding, embedding_scale)
         VALUES (${FIELDS.map((_, i) => `$${i + 1}`).join(', ')}, $${n + 1}, $${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}) RETURNING 1)
       INSERT INTO ${this.#s}.memagent_history (item_id, event, reason, old_value, new_value, at) SELECT $1, 'ADD', NULL, NULL, $${n + 5}, $${n + 6} FROM i`,
      [...FIELDS.map((k) => c[k]), tx.version, p.bytes, embeddingBlob(p.codes), p.scale, JSON.stringify(toItem(r, p.content)), r.createdAt],
    );
    this.#contents.set(tx.version, p.content);
    return tx.version;
  }

  update(before: MemoryItem, next: ItemRecord, p: PreparedText | null, reason: string | null, now: number): void {
    const tx = this.#tx!;
    const c = toColumns(next);
    const values: unknown[] = [...UPDATED.map((k) => c[k]), tx.version];
    let set = `${UPDATED.map((k, i) => `${k} = $${i + 1}`).join(', ')}, change_seq = $${UPDATED.length + 1}`;
    if (p) {
      const at = values.length;
      set += `, tokens = $${at + 1}, bytes = $${at + 2}, text = $${at + 3}, page_id = NULL, page_offset = NULL, embedding = $${at + 4}, embedding_scale = $${at + 5}`;
      values.push(p.tokens, p.bytes.length, p.bytes, embeddingBlob(p.codes), p.scale);
    }
    const { oldValue, newValue } = changedFields(before, toItem(next, p?.content ?? before.content));
    const k = values.length;
    values.push(next.seq, next.id, reason, JSON.stringify(oldValue), JSON.stringify(newValue), now);
    this.#queue(
      `WITH u AS (UPDATE ${this.#s}.memagent_items SET ${set} WHERE seq = $${k + 1} RETURNING 1)
       INSERT INTO ${this.#s}.memagent_history (item_id, event, reason, old_value, new_value, at) SELECT $${k + 2}, 'UPDATE', $${k + 3}, $${k + 4}, $${k + 5}, $${k + 6} FROM u`,
      values,
    );
    if (p) this.#contents.set(next.seq, p.content);
  }

  softDelete(r: ItemRecord, now: number, reason: string | null): void {
    const tx = this.#tx!;
    this.#queue(
      `WITH u AS (UPDATE ${this.#s}.memagent_items SET deleted_at = $1, change_seq = $2 WHERE seq = $3 RETURNING 1)
       INSERT INTO ${this.#s}.memagent_history (item_id, event, reason, old_value, new_value, at) SELECT $4, 'DELETE', $5, $6, NULL, $1 FROM u`,
      [now, tx.version, r.seq, r.id, reason, JSON.stringify(this.view(r))],
    );
    this.#contents.delete(r.seq);
  }

  /** Deletes items soft-deleted at or before `before`; pages are repacked at commit. */
  purge(before: number): void {
    this.#queue(
      `WITH d AS (DELETE FROM ${this.#s}.memagent_items WHERE deleted_at IS NOT NULL AND deleted_at <= $1 RETURNING change_seq)
       UPDATE ${this.#s}.memagent_state SET purged_version = GREATEST(purged_version, (SELECT COALESCE(MAX(change_seq), 0) FROM d))`,
      [before],
    );
    this.#tx!.repack = true;
  }

  discard(items: readonly CorruptItem[], now: number): void {
    this.transaction(() => {
      this.#queue(`DELETE FROM ${this.#s}.memagent_items WHERE seq = ANY($1::bigint[])`, [items.map((c) => c.row)]);
      for (const c of items) {
        if (c.id !== null) this.#queue(`INSERT INTO ${this.#s}.memagent_history (item_id, event, reason, old_value, new_value, at) VALUES ($1, 'DELETE', 'corrupt', NULL, NULL, $2)`, [c.id, now]);
      }
      this.#tx!.repack = true;
    });
    for (const c of items) this.#quarantined.delete(c.row);
  }

  /** Records a retrieval: sent in the background with the others of its batch (pg-touches.ts). */
  touch(seqs: readonly number[], now: number): void {
    if (!this.readonly) this.#touches.add(seqs, now);
  }

  /** An item's events, oldest first (reads the database). */
  async history(id: string): Promise<MemoryEvent[]> {
    const c = await this.#connect('getHistory');
    let failed = false;
    try {
      const rows = await query<{ event: string; reason: string | null; old_value: string | null; new_value: string | null; at: number }>(
        c, `SELECT event, reason, old_value, new_value, at FROM ${this.#s}.memagent_history WHERE item_id = $1 ORDER BY seq`, [id],
      );
      return rows.map((r) => ({
        event: r.event as MemoryEvent['event'],
        reason: r.reason,
        oldValue: r.old_value === null ? null : (JSON.parse(r.old_value) as Partial<MemoryItem>),
        newValue: r.new_value === null ? null : (JSON.parse(r.new_value) as Partial<MemoryItem>),
        at: r.at,
      }));
    } catch (err) {
      failed = isConnectionError(err);
      throw this.#error('getHistory', err, 'nothing was read');
    } finally {
      c.release(failed);
    }
  }

  totals(): PageTotals {
    return { ...this.#totals };
  }

  /** Sends the access statistics still queued, then ends a pool the MemAgent created. */
  async close(): Promise<void> {
    // After any refresh in progress: ending a pool while a connection is being handed out can hang.
    const release = await this.#lock.acquire();
    try {
      await this.#touches.close();
      if (this.#owned) await this.#pool.end().catch(() => undefined);
    } finally {
      release();
    }
  }

  #queue(text: string, values: unknown[]): void {
    this.#tx!.statements.push([text, values]);
  }

  async #connect(op: string): Promise<PoolClient> {
    let c: PoolClient;
    try {
      c = await this.#pool.connect();
    } catch (err) {
      throw this.#error(op, err, op === 'open' ? 'nothing was opened' : 'nothing was sent');
    }
    // The pool listens for errors of idle connections only: one checked out whose socket breaks
    // between two queries (the server killed) emits 'error', which would crash the process. Its
    // next query fails instead, and it is released as broken.
    if (!GUARDED.has(c)) {
      GUARDED.add(c);
      c.on('error', () => undefined);
    }
    return c;
  }

  // Reads the changes since the last version seen.
  async #sync(c: PoolClient, upTo: number | null): Promise<boolean> {
    return this.#applySync(c, await syncChanges(c, this.#s, this.#last, this.#pageCache, this.#dims), upTo);
  }

  // Applies changes read (up to `upTo` inside a write, which sees its own state row).
  async #applySync(c: PoolClient, snap: Snapshot | null, upTo: number | null): Promise<boolean> {
    if (snap === null) return false;
    if (snap.purgedVersion > this.#last) {
      // Rows this view may never have seen deleted are gone: read everything again.
      this.#reload(await fetchAll(c, this.#s, true, this.#pageCache, this.#dims), upTo ?? undefined);
      return true;
    }
    const changed = this.#apply(snap, false, this.#hooks!);
    this.#last = upTo ?? snap.version;
    return changed;
  }

  #reload(snap: Snapshot, upTo?: number): void {
    this.#hooks!.clear();
    this.#contents.clear();
    this.#quarantined.clear();
    this.#apply(snap, true, this.#hooks!);
    this.#dirty = false;
    this.#last = upTo ?? snap.version;
  }

  // Applies a snapshot's rows to the mirror through `hooks`; returns whether an item changed (not only its access statistics).
  #apply(snap: Snapshot, full: boolean, hooks: MirrorHooks): boolean {
    let changed = false;
    for (const ch of snap.rows) {
      if (ch.kind !== 'touched') changed = true;
      if (ch.kind === 'removed') {
        if (this.#contents.delete(ch.seq)) hooks.remove(ch.seq);
      } else if (ch.kind === 'touched') {
        if (this.#contents.has(ch.seq)) hooks.touched(ch.seq, ch.lastAccessed, ch.accessCount);
      } else if (ch.kind === 'corrupt') {
        if (!this.#skip) throw new MemAgentCorruptionError(this.label, ch.item);
        if (this.#contents.delete(ch.seq)) hooks.remove(ch.seq);
        this.#quarantined.add(ch.seq);
        hooks.corrupt(ch.item);
      } else {
        const had = this.#contents.get(ch.row.record.seq);
        this.#contents.set(ch.row.record.seq, ch.content);
        hooks.upsert(ch.row, ch.content, had === undefined || had !== ch.content || full);
      }
    }
    this.#totals = { rawBytes: snap.rawBytes, storedBytes: snap.storedBytes };
    if (full) this.#last = snap.version;
    return changed;
  }

  #error(op: string, err: unknown, then: string): Error {
    if (err instanceof MemAgentCorruptionError || err instanceof RangeError || err instanceof TypeError) return err;
    const e = err instanceof Error ? err : new Error(String(err));
    if (e.message.startsWith('MemAgent')) return e;
    const what = isConnectionError(e) ? `${this.label} is not reachable or the connection broke (${e.message})` : `${this.label} refused it: ${e.message}`;
    return Object.assign(new Error(`MemAgent.${op}: ${what}; ${then}`), { cause: err });
  }
}
