/**
 * Search glue between the indexes and the ranking: structured filters select candidates
 * through the item indexes, BM25 and int8 cosine score them, {@link rank} and {@link pack}
 * order and budget them; a small LRU remembers the outcome per query until the next write.
 * @module
 */
import { type Bm25Index, type QuantizedVector, quantizeInt8 } from '../text/index';
import { type CheckedQuery, PRIORITIES, SCOPE_KEYS } from './checks';
import { type EmbeddingMatrix, type ItemIndex, type ItemRecord, isLive } from './item-index';
import { pack, rank, type RankingWeights, type ScoreExplanation } from './retrieval';
import { MemoryPriority } from './types';

/**
 * A vector scaled to unit length (a zero vector stays as it is), then quantised to int8: the
 * form embeddings are stored and compared in.
 * @internal
 */
export function quantizeUnit(x: Float32Array): QuantizedVector {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  if (s === 0) return quantizeInt8(x);
  const inv = 1 / Math.sqrt(s);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! * inv;
  return quantizeInt8(out);
}

/**
 * The unexpired items that pass every structured filter of `q`, in index order.
 * @internal
 */
export function candidates(idx: ItemIndex, q: CheckedQuery, now: number): ItemRecord[] {
  // Start from the smallest index set that applies, then check the rest item by item.
  const sets: Array<Set<number> | number[]> = [];
  const union = (parts: Array<Set<number> | undefined>) => {
    const s = new Set<number>();
    for (const p of parts) if (p) for (const x of p) s.add(x);
    return s;
  };
  if (q.memoryTypes) sets.push(union(q.memoryTypes.map((t) => idx.byType.get(t))));
  if (q.minPriority !== undefined && q.minPriority > MemoryPriority.LOW) sets.push(union(PRIORITIES.filter((p) => p >= q.minPriority!).map((p) => idx.byPriority.get(p))));
  if (q.tags && q.tagMode === 'any') sets.push(union(q.tags.map((t) => idx.byTag.get(t))));
  if (q.tags && q.tagMode === 'all') for (const t of q.tags) sets.push(idx.byTag.get(t) ?? new Set());
  for (const k of SCOPE_KEYS) if (q.scope?.[k] !== undefined) sets.push(idx.byScope[k].get(q.scope[k]!) ?? new Set());
  if (q.timeRange) sets.push(idx.createdBetween(q.timeRange.from ?? -Infinity, q.timeRange.to ?? Infinity));
  const size = (s: Set<number> | number[]) => (Array.isArray(s) ? s.length : s.size);
  sets.sort((a, b) => size(a) - size(b));
  const [first, ...rest] = sets;
  const restSets = rest.map((s) => (Array.isArray(s) ? new Set(s) : s));
  const filter = q.matches;
  const out: ItemRecord[] = [];
  for (const seq of first ?? idx.items.keys()) {
    if (!restSets.every((s) => s.has(seq))) continue;
    const r = idx.items.get(seq)!;
    if (!isLive(r, now)) continue;
    if (filter && !filter(r.metadata)) continue;
    out.push(r);
  }
  return out;
}

/**
 * One ranked result: the item's seq and why it ranked there.
 * @internal
 */
export interface Hit {
  seq: number;
  explain: ScoreExplanation;
}

/**
 * What a search needs besides the query.
 * @internal
 */
export interface SearchContext {
  index: ItemIndex;
  bm25: Bm25Index;
  matrix: EmbeddingMatrix;
  weights: RankingWeights;
  recencyDecay: number;
}

/**
 * Selects, scores, ranks and packs: the results of `q` at `now`, with `vector` the query
 * text's embedding (required when `q.queryText` is set).
 * @internal
 */
export function search(ctx: SearchContext, q: CheckedQuery, vector: Float32Array | undefined, now: number): { hits: Hit[]; candidates: number } {
  const items = candidates(ctx.index, q, now);
  let bm25: Map<number, number> | undefined;
  let cosine: Float32Array | undefined;
  if (q.queryText !== undefined) {
    // A filter that leaves a small part of the index (one user's memories among everyone's) is
    // scored through those items' own terms; otherwise through the query terms' postings.
    if (items.length * 4 < ctx.bm25.size) bm25 = ctx.bm25.searchAmong(q.queryText, items.map((r) => r.seq));
    else {
      const seqs = new Set(items.map((r) => r.seq));
      bm25 = ctx.bm25.search(q.queryText, (doc) => seqs.has(doc));
    }
    if (items.length === 0) cosine = new Float32Array(0);
    else {
      const { codes, scale } = quantizeUnit(vector!);
      cosine = ctx.matrix.scores(codes, scale, Int32Array.from(items, (r) => r.row));
    }
  }
  const packed = pack(rank({ candidates: items, bm25, cosine, now, weights: ctx.weights, recencyDecay: ctx.recencyDecay }), q.topK, q.maxTokens);
  return { hits: packed.map((r) => ({ seq: r.item.seq, explain: r.explain })), candidates: items.length };
}

/**
 * Remembers the outcome of recent queries, least recently used out first; `capacity` 0
 * remembers nothing.
 * @internal
 */
export class QueryCache {
  readonly #entries = new Map<string, { hits: Hit[]; candidates: number }>();

  constructor(readonly capacity: number) {}

  /** The entry of `key` when every item it holds is still `fresh`; refreshes its use. */
  get(key: string, fresh: (seq: number) => boolean): { hits: Hit[]; candidates: number } | undefined {
    const e = this.#entries.get(key);
    // Writes clear the cache; an entry can still hold an item that expired since.
    if (e === undefined || !e.hits.every((h) => fresh(h.seq))) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, e);
    return e;
  }

  set(key: string, entry: { hits: Hit[]; candidates: number }): void {
    if (this.capacity === 0) return;
    this.#entries.set(key, entry);
    if (this.#entries.size > this.capacity) this.#entries.delete(this.#entries.keys().next().value!);
  }

  clear(): void {
    this.#entries.clear();
  }
}
