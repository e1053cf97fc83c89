/**
 * The live items held in memory for search: their fields, the structured indexes (type,
 * priority, tag, scope, creation time, content hash) and the int8 embedding matrix. Rebuilt
 * from SQLite at open; SQLite stays the source of truth.
 * @module
 */
import { int8Scores } from '../text/index';
import type { MemoryPriority, MemoryType, MetadataValue } from './types';

/** One live item's searchable fields (its text stays in SQLite). */
export interface ItemRecord {
  seq: number;
  id: string;
  type: MemoryType;
  priority: MemoryPriority;
  importance: number;
  tags: string[];
  metadata: Record<string, MetadataValue>;
  userId: string | null;
  agentId: string | null;
  sessionId: string | null;
  createdAt: number;
  updatedAt: number;
  lastAccessed: number;
  accessCount: number;
  expiresAt: number | null;
  pinned: boolean;
  hash: string;
  tokens: number;
  bytes: number;
  /** Row of the embedding matrix. */
  row: number;
}

/** The fields a caller sets when storing an item (the rest the store derives). */
export type ItemFields = Pick<ItemRecord, 'type' | 'priority' | 'importance' | 'tags' | 'metadata' | 'pinned' | 'userId' | 'agentId' | 'sessionId' | 'expiresAt'>;

/** Whether the item has not expired at `now` (ms). */
export function isLive(r: Pick<ItemRecord, 'expiresAt'>, now: number): boolean {
  return r.expiresAt === null || r.expiresAt > now;
}

/** Growable int8 matrix of embeddings with a scale per row; freed rows are reused. */
export class EmbeddingMatrix {
  codes: Int8Array;
  scales: Float32Array;
  #rows = 0;
  readonly #free: number[] = [];

  constructor(readonly dims: number) {
    this.codes = new Int8Array(dims * 64);
    this.scales = new Float32Array(64);
  }

  /** Rows allocated so far (live and free). */
  get rows(): number {
    return this.#rows;
  }

  add(codes: Int8Array, scale: number): number {
    const row = this.#free.pop() ?? this.#rows++;
    if (row >= this.scales.length) {
      const grown = new Int8Array(this.codes.length * 2);
      grown.set(this.codes);
      this.codes = grown;
      const s = new Float32Array(this.scales.length * 2);
      s.set(this.scales);
      this.scales = s;
    }
    this.codes.set(codes, row * this.dims);
    this.scales[row] = scale;
    return row;
  }

  set(row: number, codes: Int8Array, scale: number): void {
    this.codes.set(codes, row * this.dims);
    this.scales[row] = scale;
  }

  remove(row: number): void {
    this.codes.fill(0, row * this.dims, (row + 1) * this.dims);
    this.scales[row] = 0;
    this.#free.push(row);
  }

  /** Cosine similarity of a quantised unit vector with each of `rows` (entries of `rows` order). */
  scores(codes: Int8Array, scale: number, rows: Int32Array): Float32Array {
    return int8Scores(codes, scale, this.codes.subarray(0, this.#rows * this.dims), this.scales.subarray(0, this.#rows), this.dims, { rows });
  }
}

const add = <K>(m: Map<K, Set<number>>, k: K, seq: number) => {
  let s = m.get(k);
  if (s === undefined) m.set(k, (s = new Set()));
  s.add(seq);
};
const drop = <K>(m: Map<K, Set<number>>, k: K, seq: number) => {
  const s = m.get(k);
  if (s === undefined) return;
  s.delete(seq);
  if (s.size === 0) m.delete(k);
};

/** Items and their indexes. */
export class ItemIndex {
  readonly items = new Map<number, ItemRecord>();
  readonly byId = new Map<string, number>();
  readonly byType = new Map<MemoryType, Set<number>>();
  readonly byPriority = new Map<MemoryPriority, Set<number>>();
  readonly byTag = new Map<string, Set<number>>();
  readonly byScope = { userId: new Map<string, Set<number>>(), agentId: new Map<string, Set<number>>(), sessionId: new Map<string, Set<number>>() };
  /** Content hash (with scope) → items, for exact deduplication (an update can make two equal). */
  readonly byHash = new Map<string, Set<number>>();
  /** [createdAt, seq] pairs in ascending order, for time ranges. */
  readonly byTime: Array<[number, number]> = [];
  tokens = 0;

  add(r: ItemRecord): void {
    this.items.set(r.seq, r);
    this.byId.set(r.id, r.seq);
    this.#index(r);
    this.tokens += r.tokens;
  }

  remove(seq: number): ItemRecord | undefined {
    const r = this.items.get(seq);
    if (r === undefined) return undefined;
    this.#unindex(r);
    this.items.delete(seq);
    this.byId.delete(r.id);
    this.tokens -= r.tokens;
    return r;
  }

  /** Replaces an item's record (same seq), re-indexing the fields that changed. */
  replace(next: ItemRecord): void {
    const prev = this.items.get(next.seq)!;
    this.#unindex(prev);
    this.tokens += next.tokens - prev.tokens;
    this.items.set(next.seq, next);
    this.#index(next);
  }

  /** Items created in [from, to] (ms), from the sorted time index. */
  createdBetween(from: number, to: number): number[] {
    const out: number[] = [];
    for (let i = lowerBound(this.byTime, from); i < this.byTime.length && this.byTime[i]![0] <= to; i++) out.push(this.byTime[i]![1]);
    return out;
  }

  #index(r: ItemRecord): void {
    add(this.byType, r.type, r.seq);
    add(this.byPriority, r.priority, r.seq);
    for (const t of r.tags) add(this.byTag, t, r.seq);
    if (r.userId !== null) add(this.byScope.userId, r.userId, r.seq);
    if (r.agentId !== null) add(this.byScope.agentId, r.agentId, r.seq);
    if (r.sessionId !== null) add(this.byScope.sessionId, r.sessionId, r.seq);
    add(this.byHash, r.hash, r.seq);
    this.byTime.splice(lowerBound(this.byTime, r.createdAt, r.seq), 0, [r.createdAt, r.seq]);
  }

  #unindex(r: ItemRecord): void {
    drop(this.byType, r.type, r.seq);
    drop(this.byPriority, r.priority, r.seq);
    for (const t of r.tags) drop(this.byTag, t, r.seq);
    if (r.userId !== null) drop(this.byScope.userId, r.userId, r.seq);
    if (r.agentId !== null) drop(this.byScope.agentId, r.agentId, r.seq);
    if (r.sessionId !== null) drop(this.byScope.sessionId, r.sessionId, r.seq);
    drop(this.byHash, r.hash, r.seq);
    const i = lowerBound(this.byTime, r.createdAt, r.seq);
    if (this.byTime[i]?.[1] === r.seq) this.byTime.splice(i, 1);
  }
}

/** First index whose [time, seq] is not below (time, seq). */
function lowerBound(a: Array<[number, number]>, time: number, seq = -Infinity): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const [t, s] = a[mid]!;
    if (t < time || (t === time && s < seq)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
