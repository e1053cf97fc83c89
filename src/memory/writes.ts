/**
 * The write path of MemAgent: how one change reaches the file, then the in-memory structures.
 * Each change plans its evictions first (eviction.ts), runs as one SQLite transaction
 * (item-store.ts), and only once that commits changes the item index, the BM25 index and the
 * embedding matrix: a write that fails leaves both sides as they were.
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Bm25Index, Embedder } from '../text/index';
import * as v from '../validate';
import { checkVector } from './checks';
import { mergeRecord } from './dedup';
import { type Eviction, planEviction } from './eviction';
import type { EmbeddingMatrix, ItemFields, ItemIndex, ItemRecord } from './item-index';
import { type DecodedRow, newRecord } from './item-row';
import type { ItemBackend, PreparedText } from './item-store';
import { quantizeUnit } from './search';
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
  stats: { merged: number; evicted: number; expired: number };
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
