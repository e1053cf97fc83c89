/**
 * MemAgent: a durable, compressed, indexed memory for agents, with hybrid retrieval under a
 * token budget, on SQLite or PostgreSQL. This file is the facade, its public methods documented
 * in full: it checks arguments (checks.ts), holds the in-memory state (indexes, BM25, the
 * embedding matrix, the query cache) and the guard, and leaves the write path (writes.ts: what
 * each write changes, in which order), the stores (item-store.ts, item-row.ts, pages.ts for
 * SQLite; pg-*.ts for PostgreSQL), capacity planning (eviction.ts), deduplication (dedup.ts),
 * search (search.ts, retrieval.ts) and the metrics (metrics.ts) to their modules.
 * @module
 */
import { Bm25Index } from '../text/index';
// ClosedError is imported for the doc link.
import { CloseGuard, type ClosedError } from '../toolkit/closing';
import * as v from '../validate';
import { checkOptions, checkQuery, checkStore, checkUpdate, checkVector, type MemAgentConfig } from './checks';
// MemAgentCorruptionError is imported for the doc links.
import type { CorruptItem, MemAgentCorruptionError } from './corruption';
import { EmbeddingMatrix, ItemIndex, isLive } from './item-index';
import { type ItemBackend, ItemStore, type PreparedText } from './item-store';
import type {
  MemAgentMetrics, MemAgentOpenOptions, MemAgentOptions, MemoryEvent, MemoryItem, MemoryQuery, MemoryUpdate, RetrievalResult, StoreOptions,
} from './mem-agent-types';
import { memAgentMetrics, newCounters } from './metrics';
import { openPostgres, type OpenedPostgres } from './pg-open';
import type { PgItemStore } from './pg-store';
import { QueryCache, search } from './search';
import type { MemoryPriority, MemoryType } from './types';
import { ItemWrites, prepareText, WriteQueue } from './writes';

// Options objects made by MemAgent.open for a PostgreSQL store, with what they opened.
const OPENED = new WeakMap<object, OpenedPostgres>();

/**
 * A memory for agents: typed, tagged, scoped items with priorities and expiry, stored
 * compressed in SQLite, indexed, and retrieved by hybrid ranking under a token budget.
 *
 * **Storage.** One SQLite database (better-sqlite3, WAL; in memory without `path`). Every
 * write is one transaction: when `storeMemory` resolves, the item is in the file and a process
 * crash cannot lose it. Texts are packed into 32 KiB pages compressed with LZ4 or gzip (see
 * {@link MemAgentMetrics.compression} for the measured ratio); embeddings are stored as int8
 * with a scale (4× smaller than float32). {@link MemAgent.open} with `postgres` keeps the same
 * in PostgreSQL instead, shared by several processes.
 *
 * **Integrity.** Each page carries its raw size and a CRC-32 checked before it is
 * decompressed, and each row is checked as it is loaded: a damaged item is a
 * {@link MemAgentCorruptionError} naming the file, item, row and page, or, with `onCorrupt:
 * 'skip'`, an entry of {@link MemAgent.corrupt} while every intact item stays usable.
 *
 * **Deduplication.** Content equal after normalisation (Unicode NFKC, case, whitespace) in the
 * same scope is merged into the existing item (tags united, the higher priority and importance
 * kept, metadata merged); so is content whose embedding's cosine similarity with an item of the
 * same scope reaches `dedupThreshold`, whose text then replaces the old one. The existing id is
 * returned and the merge recorded in its history.
 *
 * **Retrieval.** Structured filters (types, tags, priority, creation time, scope, a metadata
 * filter) select candidates through indexes; {@link RankingWeights} rank them; results are
 * packed into `maxTokens`. Returned items get their `lastAccessed` and `accessCount` updated,
 * in the store too on a best-effort basis: written in the background in batches (within a
 * second, before the next write, and at close), a failed write of these statistics (a full
 * disk) fails no retrieval ({@link MemAgentMetrics.accessWriteFailures}). A query cache
 * (LRU) answers repeated queries until the next write.
 *
 * **Capacity.** Live items hold at most `maxTokens` tokens. A write that would pass it first
 * removes expired items, then evicts the items with the lowest retention score, `(priority + 1)
 * / 4 × recencyDecay^hours since last access × (1 + ln(1 + accessCount))`; CRITICAL and pinned
 * items are never evicted, and a write that cannot fit without them fails with a RangeError,
 * changing nothing. Expired items are removed by a sweep on an unref'd timer and on writes.
 *
 * @example
 * ```ts
 * import { MemAgent, MemoryType, MemoryPriority } from '@capibara/core';
 * const memory = new MemAgent({ maxTokens: 512_000, path: './memory.db' });
 * const id = await memory.storeMemory('Python optimization techniques', MemoryType.SEMANTIC, MemoryPriority.HIGH, ['python', 'optimization']);
 * const r = await memory.retrieveMemory({ queryText: 'How to optimize Python code?', memoryTypes: [MemoryType.SEMANTIC], maxTokens: 1000 });
 * console.log(r.chunks.map((c) => c.content), memory.getMetrics());
 * memory.close();
 * ```
 */
export class MemAgent {
  /** Capacity in tokens. */
  readonly maxTokens: number;
  readonly #o: MemAgentConfig;
  readonly #store: ItemBackend & { close(): void | Promise<void> };
  readonly #pg: PgItemStore | undefined;
  readonly #index = new ItemIndex();
  readonly #bm25 = new Bm25Index();
  readonly #matrix: EmbeddingMatrix;
  readonly #cache: QueryCache;
  readonly #clock: () => number;
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #queue: WriteQueue;
  readonly #writes: ItemWrites;
  readonly #guard = new CloseGuard('MemAgent');
  readonly #stats = newCounters();
  #corrupt: CorruptItem[];

  /**
   * Opens (or creates) the memory. With `path`, everything stored before is loaded, and the
   * file is locked: one MemAgent per file (each keeps its own index), until `close()`. A file
   * held by another MemAgent, here or in another process, fails at once (nothing waits for
   * the lock). `readonly: true` opens an existing file for retrieval only, shared with other
   * read-only MemAgents. Every item is checked as it is loaded (see
   * {@link MemAgentOptions.onCorrupt}).
   *
   * @param options Capacity, file, compression, tokenizer, embedder and ranking.
   * @throws TypeError / RangeError for bad options; {@link MemAgentCorruptionError} for an
   * item that does not decode (unless `onCorrupt: 'skip'`); Error when the file is held by
   * another MemAgent, read-only (without `readonly: true`), not a MemAgent database, written
   * by a newer version, fails SQLite's quick check, or was filled with an embedder of other
   * dimensions.
   *
   * @example
   * ```ts
   * const memory = new MemAgent({ path: './memory.db', compression: 'gzip', tokenizer: model });
   * ```
   */
  constructor(options: MemAgentOptions = {}) {
    const opened: OpenedPostgres | undefined = OPENED.get(options);
    OPENED.delete(options);
    const o = (this.#o = opened?.config ?? checkOptions(options));
    this.maxTokens = o.maxTokens;
    this.#cache = new QueryCache(o.queryCacheSize);
    this.#clock = o.clock;
    const dims = o.embedder.dimensions;
    this.#pg = opened?.store;
    this.#queue = new WriteQueue(this.#pg, () => this.#cache.clear());
    this.#store = opened?.store ?? new ItemStore(o.path, { synchronous: o.synchronous, codec: o.codec, dimensions: dims, readonly: o.readonly });
    this.#matrix = new EmbeddingMatrix(dims);
    try {
      const state = { store: this.#store, index: this.#index, bm25: this.#bm25, matrix: this.#matrix, maxTokens: o.maxTokens, recencyDecay: o.recencyDecay, stats: this.#stats };
      const writes = (this.#writes = new ItemWrites(state));
      this.#corrupt = this.#store.load(dims, o.onCorrupt === 'skip', (row, content) => writes.loaded(row, content));
      this.#pg?.attach(writes, { found: (item) => this.#corrupt.push(item), reset: () => (this.#corrupt = []) });
    } catch (err) {
      void Promise.resolve(this.#store.close()).catch(() => undefined);
      throw err;
    }
    if (o.sweepIntervalMs > 0 && !o.readonly) {
      this.#timer = setInterval(() => void this.sweep().catch(() => undefined), o.sweepIntervalMs);
      this.#timer.unref();
    }
  }

  /**
   * The items left out at open under `onCorrupt: 'skip'` (their rows or pages do not decode),
   * in row order; empty when all was intact or after {@link MemAgent.discardCorrupt}. They stay
   * in the file as they are: a later open sees them again.
   *
   * @example
   * ```ts
   * const memory = new MemAgent({ path: './memory.db', onCorrupt: 'skip' });
   * if (memory.corrupt.length > 0) console.warn(`${memory.corrupt.length} items lost:`, memory.corrupt);
   * ```
   */
  get corrupt(): readonly CorruptItem[] {
    return this.#corrupt.map((c) => ({ ...c }));
  }

  /**
   * Removes the items listed in {@link MemAgent.corrupt} from the file for good: their rows,
   * the pages only they pointed into, and a DELETE event (reason `'corrupt'`, no values) in
   * each readable id's history. Afterwards the file opens with the default `onCorrupt:
   * 'error'`. Keep a copy of the file first if the damaged bytes matter.
   *
   * @returns How many items were removed.
   *
   * @example
   * ```ts
   * const memory = new MemAgent({ path: './memory.db', onCorrupt: 'skip' });
   * await memory.discardCorrupt();
   * ```
   */
  async discardCorrupt(): Promise<number> {
    this.#writable('discardCorrupt');
    return this.#queue.run('discardCorrupt', null, () => {
      const items = this.#corrupt;
      this.#store.discard(items, this.#clock());
      this.#corrupt = [];
      return items.length;
    });
  }

  /**
   * Stores a memory, merging it into an existing item when it duplicates one (see the class
   * description), evicting low-retention items when the capacity requires it.
   *
   * @param content Non-empty text.
   * @param type Its kind.
   * @param priority Its priority.
   * @param tags Labels to filter on (non-empty strings; duplicates ignored).
   * @param options Metadata, scope, importance, expiry, pinning.
   * @returns The item's id (the existing item's when merged).
   * @throws RangeError when it cannot fit without evicting CRITICAL or pinned items.
   *
   * @example
   * ```ts
   * const id = await memory.storeMemory('User lives in Lisbon', MemoryType.SEMANTIC, MemoryPriority.MEDIUM, ['user'], {
   *   scope: { userId: 'u1' }, ttl: 30 * 86_400_000,
   * });
   * ```
   */
  async storeMemory(content: string, type: MemoryType, priority: MemoryPriority, tags: string[] = [], options: StoreOptions = {}): Promise<string> {
    this.#writable('storeMemory');
    const req = checkStore(content, type, priority, tags, options);
    return this.#queue.run('storeMemory', this.#prepare(req.content), (prepared) => this.#writes.store(req, prepared, this.#o.dedupThreshold, this.#clock()));
  }

  /**
   * The item with this id, or null (unknown, deleted or expired).
   *
   * @param id An id from storeMemory.
   * @returns The item.
   *
   * @example
   * ```ts
   * const item = memory.getMemory(id);
   * ```
   */
  getMemory(id: string): MemoryItem | null {
    this.#guard.check();
    v.string('id', id);
    const seq = this.#live(id, this.#clock());
    return seq === undefined ? null : this.#store.view(this.#index.items.get(seq)!);
  }

  /**
   * Changes an item; the history keeps the old and new values of each changed field.
   *
   * @param id The item.
   * @param update The fields to change.
   * @returns The updated item, or null when there is no such live item.
   * @throws RangeError when new content cannot fit (see storeMemory).
   *
   * @example
   * ```ts
   * await memory.updateMemory(id, { content: 'User lives in Porto', tags: ['user', 'moved'] });
   * ```
   */
  async updateMemory(id: string, update: MemoryUpdate): Promise<MemoryItem | null> {
    this.#writable('updateMemory');
    v.string('id', id);
    const u = checkUpdate(update);
    return this.#queue.run('updateMemory', u.content === undefined ? null : this.#prepare(u.content), (prepared) => {
      const now = this.#clock();
      const seq = this.#live(id, now);
      if (seq === undefined) return null;
      this.#writes.update(seq, u, prepared, now);
      return this.#store.view(this.#index.items.get(seq)!);
    });
  }

  /**
   * Deletes an item: it disappears from reads and searches at once and is purged after
   * `retainDeletedMs`; its history stays.
   *
   * @param id The item.
   * @returns Whether a live item was deleted.
   *
   * @example
   * ```ts
   * await memory.deleteMemory(id);
   * ```
   */
  async deleteMemory(id: string): Promise<boolean> {
    this.#writable('deleteMemory');
    v.string('id', id);
    return this.#queue.run('deleteMemory', null, () => {
      const now = this.#clock();
      const seq = this.#live(id, now);
      if (seq === undefined) return false;
      this.#writes.delete(seq, now);
      return true;
    });
  }

  /**
   * The item's events, oldest first: ADD, UPDATE (merges included) and DELETE, with old and
   * new values. Kept after the item is purged — full texts, uncompressed, in the history table:
   * history is an audit log, so it grows with every change and is not counted in capacity or
   * in the compression ratio.
   *
   * @param id The item.
   * @returns Its events (empty for an unknown id).
   * @throws Error on PostgreSQL, whose history is read asynchronously: use {@link MemAgent.getHistory}.
   *
   * @example
   * ```ts
   * const events = memory.history(id); // [{ event: 'ADD', ... }, { event: 'UPDATE', reason: 'duplicate', ... }]
   * ```
   */
  history(id: string): MemoryEvent[] {
    this.#guard.check();
    v.string('id', id);
    if (this.#pg !== undefined) throw new Error('MemAgent.history: the items live in PostgreSQL, which answers asynchronously: use await memory.getHistory(id)');
    return (this.#store as ItemStore).history(id);
  }

  /**
   * The item's events, as {@link MemAgent.history} gives them, for either store: a MemAgent on
   * PostgreSQL reads them from the database (every process's changes).
   *
   * @param id The item.
   * @returns Its events, oldest first (empty for an unknown id).
   *
   * @example
   * ```ts
   * const events = await memory.getHistory(id);
   * ```
   */
  async getHistory(id: string): Promise<MemoryEvent[]> {
    this.#guard.check();
    v.string('id', id);
    return this.#pg === undefined ? (this.#store as ItemStore).history(id) : this.#pg.history(id);
  }

  /**
   * Brings this process's view of a PostgreSQL store up to date with every process's committed
   * writes (one query). `retrieveMemory` and every write do it first; `getMemory` and
   * `getMetrics` read the view as the last of these left it. Nothing to do for SQLite.
   *
   * @returns Whether the view changed.
   * @throws Error naming the database when it cannot be reached.
   *
   * @example
   * ```ts
   * await memory.refresh();
   * const item = memory.getMemory(idStoredByAnotherProcess);
   * ```
   */
  async refresh(): Promise<boolean> {
    this.#guard.check();
    return this.#pg === undefined ? false : this.#pg.refresh('refresh');
  }

  /**
   * Opens a MemAgent: on SQLite (or in memory) as `new MemAgent(options)` does, or, with
   * `options.postgres`, on a PostgreSQL database shared by every process that opens it (see
   * {@link MemAgentOpenOptions}): the schema is created or migrated, and every live item read.
   * Each process keeps the indexes the SQLite store keeps (same ranking and `explain`) and
   * refreshes them with one query before each retrieval and inside each write; writers of all
   * processes are serialised by a row lock, so deduplication and eviction decide on what is in
   * the database. A write resolves once committed; a database that cannot be reached fails the
   * call with an error naming it. README, "Running several replicas", has the details.
   *
   * @param options Options of the constructor, and `postgres`.
   * @returns The open MemAgent.
   * @throws As the constructor; Error naming the database when it cannot be reached, belongs to
   * something else, has a newer schema version, or holds embeddings of other dimensions.
   *
   * @example
   * ```ts
   * const memory = await MemAgent.open({ maxTokens: 512_000, postgres: { connectionString: 'postgres://app@db:5432/agents' } });
   * ```
   */
  static async open(options: MemAgentOpenOptions = {}): Promise<MemAgent> {
    const opened = await openPostgres(options);
    if (opened === null) return new MemAgent(options as MemAgentOptions);
    const key = {};
    OPENED.set(key, opened);
    try {
      return new MemAgent(key);
    } catch (err) {
      await opened.store.close();
      throw err;
    }
  }

  /**
   * Finds the items that pass the query's filters, ranks them (see {@link RankingWeights})
   * and packs the best into `maxTokens`.
   *
   * @param query Filters, query text, topK and token budget.
   * @returns The chunks in rank order with their scores, and what the search cost.
   *
   * @example
   * ```ts
   * const { chunks, totalTokens } = await memory.retrieveMemory({ queryText: 'where does the user live?', scope: { userId: 'u1' }, maxTokens: 500 });
   * ```
   */
  async retrieveMemory(query: MemoryQuery): Promise<RetrievalResult> {
    this.#guard.check();
    const t0 = performance.now();
    const q = checkQuery(query);
    const key = JSON.stringify(q);
    if (this.#pg !== undefined) {
      if (await this.#pg.refresh('retrieveMemory')) this.#cache.clear();
      this.#guard.check();
    }
    let found = this.#cache.get(key, (seq) => {
      const r = this.#index.items.get(seq);
      return r !== undefined && isLive(r, this.#clock());
    });
    const cacheHit = found !== undefined;
    if (found !== undefined) this.#stats.hits++;
    else {
      // Embed first: after this await nothing yields until the end, so no write can remove a
      // candidate (and free its embedding row) while it is scored.
      const vec = q.queryText === undefined ? undefined : checkVector((await this.#o.embedder.embed([q.queryText]))[0], this.#matrix.dims);
      this.#guard.check();
      this.#stats.misses++;
      const ctx = { index: this.#index, bm25: this.#bm25, matrix: this.#matrix, weights: this.#o.weights, recencyDecay: this.#o.recencyDecay };
      found = search(ctx, q, vec, this.#clock());
      this.#cache.set(key, found);
    }
    const chunks = this.#writes.accessed(found.hits, this.#clock(), this.#o.readonly);
    const searchTimeMs = performance.now() - t0;
    this.#stats.searches++;
    this.#stats.searchMs += searchTimeMs;
    return { chunks, totalTokens: chunks.reduce((a, c) => a + c.tokens, 0), candidates: found.candidates, searchTimeMs, cacheHit };
  }

  /**
   * Removes expired items, purges items deleted more than `retainDeletedMs` ago and repacks
   * mostly-empty pages. Runs on the sweep timer; call it to force one.
   *
   * @returns How many items expired in this sweep.
   *
   * @example
   * ```ts
   * const expired = await memory.sweep();
   * ```
   */
  async sweep(): Promise<number> {
    this.#writable('sweep');
    return this.#queue.run('sweep', null, () => {
      const now = this.#clock();
      return this.#writes.sweep(now, now - this.#o.retainDeletedMs);
    });
  }

  /**
   * Measured state: tokens, items by type, compression ratio, cache hit rate, search times.
   *
   * @returns The metrics.
   *
   * @example
   * ```ts
   * const { tokensUsed, compression, cacheHitRate, meanSearchMs } = memory.getMetrics();
   * ```
   */
  getMetrics(): MemAgentMetrics {
    this.#guard.check();
    return memAgentMetrics({
      index: this.#index,
      maxTokens: this.maxTokens,
      codec: this.#o.codec,
      dimensions: this.#matrix.dims,
      totals: this.#store.totals(),
      counters: this.#stats,
      corruptItems: this.#corrupt.length,
      storeAccessWriteFailures: this.#store.touchFailures,
    });
  }

  /**
   * Stops the sweep timer, waits for writes in progress and closes the database. Every call
   * returns the first call's promise; any other call made after it throws (or rejects with)
   * {@link ClosedError}, `'MemAgent is closed'`.
   *
   * @example
   * ```ts
   * await memory.close();
   * ```
   */
  close(): Promise<void> {
    return this.#guard.close(async () => {
      clearInterval(this.#timer);
      await this.#queue.idle();
      await this.#store.close();
    });
  }

  /**
   * Same as {@link MemAgent.close}, for `await using`.
   *
   * @example
   * ```ts
   * await using memory = new MemAgent({ path: './memory.db' });
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Throws ClosedError once closed, and for a write on a read-only store. */
  #writable(method: string): void {
    this.#guard.check();
    if (this.#o.readonly) throw new Error(`MemAgent: ${this.#o.path ?? this.#store.label} is open read-only (options.readonly): ${method} would write to it`);
  }

  /** The live, unexpired item with this id. */
  #live(id: string, now: number): number | undefined {
    const seq = this.#index.byId.get(id);
    return seq !== undefined && isLive(this.#index.items.get(seq)!, now) ? seq : undefined;
  }

  #prepare(content: string): Promise<PreparedText> {
    return prepareText(content, this.#o.tokenizer, this.#o.embedder, this.#matrix.dims);
  }
}
