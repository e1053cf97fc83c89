/**
 * The write path of MemAgent: what each write changes (storeMemory's deduplication, an update's
 * new record, a deletion, a sweep), and how one change reaches the store, then the in-memory
 * structures. Each change plans its evictions first (eviction.ts), runs as one transaction of
 * the store (item-store.ts for SQLite, pg-store.ts for PostgreSQL), and only once that commits
 * changes the item index, the BM25 index and the embedding matrix: a write that fails leaves
 * both sides as they were.
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Bm25Index, Embedder } from '../text/index';
import { SerialQueue } from '../toolkit/serial-queue';
import * as v from '../validate';
import { checkVector, type StoreRequest, storedFields } from './checks';
import { contentHash, mergeRecord, nearDuplicate, oldestLive } from './dedup';
import { type Eviction, planEviction } from './eviction';
import { type EmbeddingMatrix, type ItemFields, type ItemIndex, type ItemRecord, isLive } from './item-index';
import { type DecodedRow, newRecord } from './item-row';
import type { ItemBackend, PreparedText } from './item-store';
import type { MemoryUpdate, RetrievedChunk } from './mem-agent-types';
import { type Hit, quantizeUnit } from './search';
import type { MemoryTokenizer } from './types';

/**
 * What a write changes, and the counters it keeps.
 * @internal
 */
export interface MemoryState {
  store: ItemBackend;
  index: ItemIndex;
  bm25: Bm25Index;
  matrix: EmbeddingMatrix;
  maxTokens: number;
  recencyDecay: number;
  stats: { merged: number; evicted: number; expired: number; accessWriteFailures: number };
}

/**
 * The async part of a new text: its token count (by `tokenizer`, or the estimate) and its
 * quantised embedding.
 * @internal
 */
export async function prepareText(content: string, tokenizer: MemoryTokenizer | undefined, embedder: Embedder, dims: number): Promise<PreparedText> {
  const tokens = tokenizer
    ? v.integer('tokenizer.countTokens() result', await tokenizer.countTokens(content), 0)
    : Math.ceil(Buffer.byteLength(content) / 4);
  const [vec] = await embedder.embed([content]);
  const { codes, scale } = quantizeUnit(checkVector(vec, dims));
  return { content, bytes: Buffer.from(content, 'utf8'), tokens, codes, scale };
}

/**
 * The changes of items, each applied to the file and then to memory.
 * @internal
 */
export class ItemWrites {
  constructor(readonly s: MemoryState) {}

  /** Adds an item read from the file at open (nothing is written). */
  loaded({ record, codes, scale }: DecodedRow, content: string): void {
    record.row = this.s.matrix.add(codes, scale);
    this.s.index.add(record);
    this.s.bm25.add(record.seq, content);
  }

  /**
   * Takes an item another process added or changed (PostgreSQL): `contentChanged` false when
   * only its fields changed (nothing is written).
   */
  synced(row: DecodedRow, content: string, contentChanged: boolean): void {
    const { record, codes, scale } = row;
    const old = this.s.index.items.get(record.seq);
    if (old === undefined) return this.loaded(row, content);
    record.row = old.row;
    this.s.index.replace(record);
    if (contentChanged) {
      this.s.matrix.set(old.row, codes, scale);
      this.s.bm25.add(record.seq, content);
    }
  }

  /**
   * Takes the access statistics of an item as the database holds them. Never lowers what this
   * process counted: its own latest accesses may not have been written yet.
   */
  touched(seq: number, lastAccessed: number, accessCount: number): void {
    const r = this.s.index.items.get(seq);
    if (r === undefined) return;
    r.lastAccessed = Math.max(r.lastAccessed, lastAccessed);
    r.accessCount = Math.max(r.accessCount, accessCount);
  }

  /** Forgets every item (before a rebuild from the database). */
  clearAll(): void {
    for (const seq of [...this.s.index.items.keys()]) this.forget(seq);
  }

  /**
   * storeMemory's change: merged into the oldest live exact duplicate of the same scope, else
   * into its nearest duplicate at or above `dedupThreshold` (whose text it replaces), else a new
   * item. Returns the id stored under.
   */
  store(req: StoreRequest, prepared: PreparedText, dedupThreshold: number, now: number): string {
    const { index, matrix } = this.s;
    const fields = storedFields(req, now);
    const hash = contentHash(req.content, fields);
    const exact = oldestLive(index.byHash.get(hash), index.items, now);
    if (exact !== undefined) return this.merge(exact, fields, null, now, 'duplicate');
    const near = nearDuplicate(prepared, fields, index.items.values(), matrix, dedupThreshold, now);
    if (near !== undefined) return this.merge(near, fields, { ...prepared, hash }, now, 'near-duplicate');
    return this.insert(prepared, hash, fields, now);
  }

  /** updateMemory's change of the live item `seq` (`prepared`: its new text, if any). */
  update(seq: number, u: MemoryUpdate, prepared: PreparedText | null, now: number): void {
    const { store, index } = this.s;
    const old = index.items.get(seq)!;
    const next: ItemRecord = {
      ...old,
      type: u.type ?? old.type,
      priority: u.priority ?? old.priority,
      importance: u.importance ?? old.importance,
      tags: u.tags ?? old.tags,
      metadata: u.metadata ?? old.metadata,
      expiresAt: u.expiresAt === undefined ? old.expiresAt : u.expiresAt,
      pinned: u.pinned ?? old.pinned,
      updatedAt: now,
      lastAccessed: now,
    };
    next.hash = contentHash(prepared?.content ?? store.content(seq, old.id), next);
    this.apply(old, next, prepared, now, null);
  }

  /** deleteMemory's change: the live item `seq` is marked deleted, and leaves memory. */
  delete(seq: number, now: number): void {
    const { store, index } = this.s;
    store.transaction(() => store.softDelete(index.items.get(seq)!, now, null));
    this.forget(seq);
  }

  /** A sweep: expired items deleted, items deleted at or before `purgeBefore` purged. Returns how many expired. */
  sweep(now: number, purgeBefore: number): number {
    const { store, index, stats } = this.s;
    const expired = [...index.items.values()].filter((r) => !isLive(r, now));
    store.transaction(() => {
      for (const r of expired) store.softDelete(r, now, 'expired');
      store.purge(purgeBefore);
    });
    for (const r of expired) this.forget(r.seq);
    stats.expired += expired.length;
    return expired.length;
  }

  /**
   * Records a retrieval of `hits` at `now`: in the store unless `inMemoryOnly` (read-only), on a
   * best-effort basis (a failure is counted, the retrieval goes on), then in memory. Returns
   * the chunks as retrieveMemory gives them.
   */
  accessed(hits: readonly Hit[], now: number, inMemoryOnly: boolean): RetrievedChunk[] {
    const { store, index, stats } = this.s;
    if (!inMemoryOnly) {
      try {
        store.touch(hits.map((h) => h.seq), now);
      } catch {
        stats.accessWriteFailures++; // best effort: the results do not depend on it
      }
    }
    return hits.map(({ seq, explain }): RetrievedChunk => {
      const rec = index.items.get(seq)!;
      rec.lastAccessed = now;
      rec.accessCount++;
      return { ...store.view(rec), score: explain.total, explain };
    });
  }

  /** Stores a new item; returns its id. */
  insert(p: PreparedText, hash: string, f: ItemFields, now: number): string {
    const { s } = this;
    const record = newRecord(f, randomUUID(), hash, p.tokens, p.bytes.length, now);
    const plan = this.#plan(p.tokens, now, undefined);
    this.#transaction(plan, now, () => {
      record.seq = s.store.insert(record, p);
    });
    record.row = s.matrix.add(p.codes, p.scale);
    s.index.add(record);
    s.bm25.add(record.seq, p.content);
    return record.id;
  }

  /** Folds a duplicate into an existing item; `replacement` is the new text of a near duplicate. */
  merge(seq: number, f: ItemFields, replacement: (PreparedText & { hash: string }) | null, now: number, reason: string): string {
    const old = this.s.index.items.get(seq)!;
    this.apply(old, mergeRecord(old, f, now, replacement?.hash), replacement, now, reason);
    this.s.stats.merged++;
    return old.id;
  }

  /** Writes the change of one item (fields, and text when `p` is given), with its history event. */
  apply(old: ItemRecord, next: ItemRecord, p: PreparedText | null, now: number, reason: string | null): void {
    const { s } = this;
    if (p) {
      next.tokens = p.tokens;
      next.bytes = p.bytes.length;
    }
    const plan = this.#plan(next.tokens - old.tokens, now, old.seq);
    const before = s.store.view(old);
    this.#transaction(plan, now, () => s.store.update(before, next, p, reason, now));
    s.index.replace(next);
    if (p) {
      s.matrix.set(old.row, p.codes, p.scale);
      s.bm25.add(old.seq, p.content);
    }
  }

  /** Drops an item from memory (after its removal committed). */
  forget(seq: number): void {
    const r = this.s.index.remove(seq);
    if (r === undefined) return;
    this.s.matrix.remove(r.row);
    this.s.bm25.remove(seq);
  }

  /** Which items to remove so that `delta` more tokens fit (`keep`: the item being changed); throws, changing nothing, when they cannot. */
  #plan(delta: number, now: number, keep: number | undefined): Eviction[] {
    const { index, maxTokens, recencyDecay } = this.s;
    return planEviction({ items: index.items.values(), usedTokens: index.tokens, maxTokens, delta, keep, now, recencyDecay });
  }

  /**
   * One write transaction: removes the planned items, then runs `body`. The in-memory
   * structures change only after it commits.
   */
  #transaction(plan: readonly Eviction[], now: number, body: () => void): void {
    const { store, index, stats } = this.s;
    store.transaction(() => {
      for (const e of plan) store.softDelete(index.items.get(e.seq)!, now, e.reason);
      body();
    });
    for (const e of plan) {
      this.forget(e.seq);
      stats[e.reason]++; // counted once committed
    }
  }
}

/**
 * The order of a MemAgent's writes: one at a time in call order. Each takes its place when
 * called, while its async part (`prepare`: token count, embedding) runs at once, concurrently
 * with the writes ahead of it; its synchronous part runs in its turn, inside a transaction of a
 * PostgreSQL store (`pg`, begun and committed around it) or as SQLite's own, and `done` runs
 * after it, failed or not (the query cache is cleared there).
 * @internal
 */
export class WriteQueue {
  readonly #queue = new SerialQueue();

  constructor(
    private readonly pg: { write<T>(op: string, work: () => T): Promise<T> } | undefined,
    private readonly done: () => void,
  ) {}

  run<P, T>(op: string, prepare: Promise<P> | null, work: (prepared: P) => T): Promise<T> {
    prepare?.catch(() => undefined); // its failure is reported by the job
    return this.#queue.run(async () => {
      const prepared = (await prepare) as P;
      const run = () => {
        try {
          return work(prepared);
        } finally {
          this.done();
        }
      };
      return this.pg === undefined ? run() : this.pg.write(op, run);
    });
  }

  /** Resolves once every write called so far has finished. */
  idle(): Promise<void> {
    return this.#queue.idle();
  }
}
