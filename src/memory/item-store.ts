/**
 * The SQLite side of MemAgent: the items table (through the row codec), their texts (through
 * the page store) and the history table. Every method that writes runs inside
 * {@link ItemStore.transaction}, except `touch` and `discard`, which are transactions of their own.
 * @module
 */
import type BetterSqlite3 from 'better-sqlite3';
import { type CorruptItem, corruptItem, MemAgentCorruptionError } from './corruption';
import type { ItemRecord } from './item-index';
import { changedFields, type DecodedRow, decodeRow, embeddingBlob, type ItemColumns, toColumns, toItem } from './item-row';
import type { MemoryEvent, MemoryItem } from './mem-agent-types';
import { type Compression, PageStore, type PageTotals } from './pages';
import { type OpenedDatabase, openDatabase } from './schema';

/**
 * A new text with what is derived from it before the write turn.
 * @internal
 */
export interface PreparedText {
  content: string;
  /** UTF-8 of `content`. */
  bytes: Buffer;
  tokens: number;
  /** The quantised unit embedding. */
  codes: Int8Array;
  scale: number;
}

/**
 * What the MemAgent facade and the write path need of a store: the SQLite {@link ItemStore},
 * or the PostgreSQL store (pg-store.ts), whose writes run between its own begin and commit.
 * @internal
 */
export interface ItemBackend {
  readonly label: string;
  load(dimensions: number, skip: boolean, visit: (row: DecodedRow, content: string) => void): CorruptItem[];
  discard(items: readonly CorruptItem[], now: number): void;
  content(seq: number, id: string): string;
  view(r: ItemRecord, content?: string): MemoryItem;
  transaction(body: () => void): void;
  insert(r: ItemRecord, p: PreparedText): number;
  update(before: MemoryItem, next: ItemRecord, p: PreparedText | null, reason: string | null, now: number): void;
  softDelete(r: ItemRecord, now: number, reason: string | null): void;
  touch(seqs: readonly number[], now: number): void;
  /** Retrievals whose access statistics could not be written (they are written in the background). */
  readonly touchFailures: number;
  purge(before: number): void;
  totals(): PageTotals;
}

// Columns bound by position, each value picked by name from the codec's columns (positional
// binding: better-sqlite3 reads a parameter object key by key, several µs per row).
const INSERTED = [
  'id', 'type', 'priority', 'importance', 'tags', 'metadata', 'user_id', 'agent_id', 'session_id', 'created_at', 'updated_at',
  'last_accessed', 'access_count', 'expires_at', 'pinned', 'content_hash', 'tokens', 'bytes',
] as const satisfies ReadonlyArray<keyof ItemColumns>;
// The columns a field update writes; tokens, bytes and the text change only with the text.
const UPDATED = [
  'type', 'priority', 'importance', 'tags', 'metadata', 'updated_at', 'last_accessed', 'expires_at', 'pinned', 'content_hash',
] as const satisfies ReadonlyArray<keyof ItemColumns>;

/** Longest time retrievals' access statistics wait in memory before they are written, ms. */
export const TOUCH_FLUSH_MS = 1000;

/**
 * One MemAgent database: items, texts and history.
 * @internal
 */
export class ItemStore implements ItemBackend {
  /** The file, as messages name it (`':memory:'` without one). */
  readonly label: string;
  readonly #file: OpenedDatabase;
  readonly #db: BetterSqlite3.Database;
  readonly #pages: PageStore;
  readonly #sql;
  /** Access statistics of retrievals not written yet: seq → last access and how many (see touch). */
  readonly #touches = new Map<number, { at: number; count: number }>();
  #touchRetrievals = 0;
  #touchTimer: ReturnType<typeof setTimeout> | undefined;
  #touchFailures = 0;

  /**
   * Opens (or creates) the database and checks that it holds embeddings of `o.dimensions`.
   * @throws Error when the file cannot be used (see {@link openDatabase}) or holds other dimensions.
   */
  constructor(path: string | undefined, o: { synchronous: 'normal' | 'full'; codec: Compression; dimensions: number; readonly: boolean }) {
    this.label = path ?? ':memory:';
    this.#file = openDatabase(path, o);
    this.#db = this.#file.db;
    try {
      this.#sql = statements(this.#db);
      this.#checkDimensions(String(o.dimensions), o.readonly);
      this.#pages = new PageStore(this.#db, o.codec, this.#file.checksums);
    } catch (err) {
      this.#file.close();
      throw err;
    }
  }

  /**
   * Reads every live item, in store order, and hands each with its text to `visit`. An item
   * whose row or page does not decode throws a {@link MemAgentCorruptionError}, or with
   * `skip` is left in the file untouched, out of every page operation, and reported in the
   * returned list. Pages of schema version 1 read back intact get their checksum.
   */
  load(dimensions: number, skip: boolean, visit: (row: DecodedRow, content: string) => void): CorruptItem[] {
    const corrupt: CorruptItem[] = [];
    for (const r of this.#sql.all.iterate()) {
      let row: DecodedRow;
      let content: string;
      try {
        row = decodeRow(r, dimensions);
        content = this.#pages.read(row.text);
      } catch (err) {
        const item = corruptItem(r['seq'] as number, r['id'], err);
        if (!skip) throw new MemAgentCorruptionError(this.label, item);
        corrupt.push(item);
        continue;
      }
      visit(row, content);
    }
    this.#pages.quarantine(corrupt.map((c) => c.row));
    if (!this.#db.readonly) this.transaction(() => this.#pages.recordChecksums());
    return corrupt;
  }

  /**
   * Deletes the rows of items left out at open, with a DELETE event (reason `'corrupt'`) for
   * each readable id, and the pages no row points to any more.
   */
  discard(items: readonly CorruptItem[], now: number): void {
    const rows = items.map((c) => c.row);
    try {
      this.transaction(() => {
        for (const c of items) {
          this.#sql.purge.run(c.row);
          if (c.id !== null) this.#sql.event.run(c.id, 'DELETE', 'corrupt', null, null, now);
        }
        this.#pages.release(rows);
        this.#pages.repack();
      });
    } catch (err) {
      this.#pages.quarantine(rows); // rolled back: they are still there
      throw err;
    }
  }

  /**
   * The text of item `seq` (`id`).
   * @throws {@link MemAgentCorruptionError} when its page or its text location is damaged.
   */
  content(seq: number, id: string): string {
    const loc = this.#sql.location.get(seq);
    if (loc === undefined) throw new Error(`MemAgent: item ${seq} has no row`);
    try {
      return this.#pages.read({ bytes: loc.bytes, text: loc.text, pageId: loc.page_id, offset: loc.page_offset });
    } catch (err) {
      throw new MemAgentCorruptionError(this.label, corruptItem(seq, id, err));
    }
  }

  /** The API's view of a record, its text read from the store unless given. */
  view(r: ItemRecord, content?: string): MemoryItem {
    return toItem(r, content ?? this.content(r.seq, r.id));
  }

  /** Runs `body` as one write transaction; on failure nothing it did remains, in SQLite or here. */
  transaction(body: () => void): void {
    this.flushTouches();
    try {
      this.#db.transaction(body)();
    } catch (err) {
      this.#pages.reset(); // its pending count may have moved inside the rolled-back transaction
      throw err;
    }
  }

  /** Inserts a new item (its record's `seq` is ignored) with its ADD event; returns its seq. */
  insert(r: ItemRecord, p: PreparedText): number {
    const c = toColumns(r);
    const seq = Number(this.#sql.insert.run(...INSERTED.map((k) => c[k]), p.bytes, embeddingBlob(p.codes), p.scale).lastInsertRowid);
    this.#pages.added(p.bytes.length);
    this.#sql.event.run(r.id, 'ADD', null, null, JSON.stringify(toItem(r, p.content)), r.createdAt);
    return seq;
  }

  /**
   * Writes an item's changed fields, and its new text when `p` is given, with an UPDATE event
   * of the fields that changed (`before` is the old view, text included).
   */
  update(before: MemoryItem, next: ItemRecord, p: PreparedText | null, reason: string | null, now: number): void {
    const c = toColumns(next);
    this.#sql.update.run(...UPDATED.map((k) => c[k]), c.seq);
    if (p) {
      const was = this.#sql.location.get(next.seq)!;
      if (was.text !== null) this.#pages.removedPending(was.bytes);
      this.#sql.replaceText.run(p.tokens, p.bytes.length, p.bytes, embeddingBlob(p.codes), p.scale, next.seq);
      this.#pages.added(p.bytes.length);
    }
    const { oldValue, newValue } = changedFields(before, toItem(next, p?.content ?? before.content));
    this.#sql.event.run(next.id, 'UPDATE', reason, JSON.stringify(oldValue), JSON.stringify(newValue), now);
  }

  /** Marks an item deleted (kept for `retainDeletedMs`) with its DELETE event. */
  softDelete(r: ItemRecord, now: number, reason: string | null): void {
    this.#sql.softDelete.run(now, r.seq);
    this.#sql.event.run(r.id, 'DELETE', reason, JSON.stringify(this.view(r)), null, now);
  }

  /**
   * Records a retrieval of these items at `now`. A commit per retrieval would cost as much as
   * the search itself, so the statistics wait in memory and are written in one transaction
   * within {@link TOUCH_FLUSH_MS}, before the next write, or at close.
   */
  touch(seqs: readonly number[], now: number): void {
    for (const seq of seqs) {
      const t = this.#touches.get(seq);
      if (t === undefined) this.#touches.set(seq, { at: now, count: 1 });
      else {
        t.at = now;
        t.count++;
      }
    }
    this.#touchRetrievals++;
    if (this.#touchTimer === undefined) {
      this.#touchTimer = setTimeout(() => this.flushTouches(), TOUCH_FLUSH_MS);
      this.#touchTimer.unref();
    }
  }

  get touchFailures(): number {
    return this.#touchFailures;
  }

  /** Writes the waiting access statistics; a failure loses them, counted per retrieval (best effort). */
  flushTouches(): void {
    clearTimeout(this.#touchTimer);
    this.#touchTimer = undefined;
    if (this.#touches.size === 0) return;
    const batch = [...this.#touches];
    const retrievals = this.#touchRetrievals;
    this.#touches.clear();
    this.#touchRetrievals = 0;
    try {
      this.#db.transaction(() => {
        for (const [seq, t] of batch) this.#sql.touch.run(t.at, t.count, seq);
      })();
    } catch {
      this.#touchFailures += retrievals;
    }
  }

  /** Deletes items soft-deleted at or before `before` and repacks mostly-empty pages. */
  purge(before: number): void {
    for (const row of this.#sql.purgeable.all(before)) {
      if (row.text_bytes !== null) this.#pages.removedPending(row.text_bytes);
      this.#sql.purge.run(row.seq);
    }
    this.#pages.repack();
  }

  /** An item's events, oldest first. */
  history(id: string): MemoryEvent[] {
    return this.#sql.history.all(id).map((r) => ({
      event: r.event as MemoryEvent['event'],
      reason: r.reason,
      oldValue: r.old_value === null ? null : (JSON.parse(r.old_value) as Partial<MemoryItem>),
      newValue: r.new_value === null ? null : (JSON.parse(r.new_value) as Partial<MemoryItem>),
      at: r.at,
    }));
  }

  /** Text bytes stored vs raw. */
  totals(): PageTotals {
    return this.#pages.totals();
  }

  close(): void {
    this.flushTouches();
    this.#file.close();
  }

  #checkDimensions(dims: string, readonly: boolean): void {
    const stored = this.#db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'embedding_dimensions'").get()?.value;
    if (stored === undefined) {
      if (!readonly) this.#db.prepare("INSERT INTO meta (key, value) VALUES ('embedding_dimensions', ?)").run(dims);
    } else if (stored !== dims) {
      throw new Error(`MemAgent: ${this.label} holds ${stored}-dimensional embeddings but the embedder makes ${dims}: open it with the embedder it was filled with`);
    }
  }
}

function statements(db: BetterSqlite3.Database) {
  return {
    all: db.prepare<[], Record<string, unknown>>('SELECT * FROM items WHERE deleted_at IS NULL ORDER BY seq'),
    insert: db.prepare<unknown[]>(
      `INSERT INTO items (${INSERTED.join(', ')}, text, embedding, embedding_scale) VALUES (${INSERTED.map(() => '?').join(', ')}, ?, ?, ?)`,
    ),
    update: db.prepare<unknown[]>(`UPDATE items SET ${UPDATED.map((c) => `${c} = ?`).join(', ')} WHERE seq = ?`),
    replaceText: db.prepare<[number, number, Buffer, Buffer, number, number]>(
      'UPDATE items SET tokens = ?, bytes = ?, text = ?, page_id = NULL, page_offset = NULL, embedding = ?, embedding_scale = ? WHERE seq = ?',
    ),
    location: db.prepare<[number], { bytes: number; text: Buffer | null; page_id: number | null; page_offset: number | null }>(
      'SELECT bytes, text, page_id, page_offset FROM items WHERE seq = ?',
    ),
    touch: db.prepare<[number, number, number]>('UPDATE items SET last_accessed = ?, access_count = access_count + ? WHERE seq = ?'),
    softDelete: db.prepare<[number, number]>('UPDATE items SET deleted_at = ? WHERE seq = ?'),
    purgeable: db.prepare<[number], { seq: number; text_bytes: number | null }>(
      'SELECT seq, CASE WHEN text IS NULL THEN NULL ELSE bytes END AS text_bytes FROM items WHERE deleted_at IS NOT NULL AND deleted_at <= ?',
    ),
    purge: db.prepare<[number]>('DELETE FROM items WHERE seq = ?'),
    event: db.prepare<[string, string, string | null, string | null, string | null, number]>(
      'INSERT INTO history (item_id, event, reason, old_value, new_value, at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    history: db.prepare<[string], { event: string; reason: string | null; old_value: string | null; new_value: string | null; at: number }>(
      'SELECT event, reason, old_value, new_value, at FROM history WHERE item_id = ? ORDER BY seq',
    ),
  };
}
