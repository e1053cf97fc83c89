/**
 * Hybrid ranking of memory items: BM25, vector similarity, recency and importance, each
 * normalised to [0, 1] and weighted; then greedy packing into a token budget.
 * @module
 */
import type { ItemRecord } from './item-index';

/**
 * Weights of the ranking components (each component is in [0, 1] before weighting).
 *
 * @example
 * ```ts
 * const memory = new MemAgent({ weights: { bm25: 1, vector: 2, recency: 0.1, importance: 0.5 } });
 * ```
 */
export interface RankingWeights {
  /** Lexical relevance: the item's BM25 score divided by the best BM25 score among the candidates. Default 1. */
  bm25: number;
  /** Semantic relevance: cosine similarity of the embeddings (int8), negatives as 0. Default 1. */
  vector: number;
  /** `recencyDecay ^ hours since the item was last stored, updated or retrieved`. Default 0.25. */
  recency: number;
  /** `(priority / 3 + importance) / 2`: LOW..CRITICAL as 0..1, averaged with the item's importance. Default 0.25. */
  importance: number;
}

/** Default {@link RankingWeights}. */
export const DEFAULT_WEIGHTS: Readonly<RankingWeights> = Object.freeze({ bm25: 1, vector: 1, recency: 0.25, importance: 0.25 });

/**
 * One component of a result's score: its raw value, the value in [0, 1] that is weighted,
 * and its weighted contribution to {@link ScoreExplanation.total}.
 *
 * @example
 * ```ts
 * const { raw, normalized, weighted } = chunk.explain.bm25;
 * ```
 */
export interface ScoreComponent {
  /** BM25 score, cosine similarity, hours since last access, or the importance input. */
  raw: number;
  /** The component in [0, 1]. */
  normalized: number;
  /** `normalized × weight`. */
  weighted: number;
}

/**
 * Why a result ranked where it did: `total` is the sum of the weighted components.
 *
 * @example
 * ```ts
 * for (const c of result.chunks) console.log(c.id, c.explain.total, c.explain.bm25.weighted, c.explain.vector.weighted);
 * ```
 */
export interface ScoreExplanation {
  /** Lexical relevance (raw: the BM25 score). */
  bm25: ScoreComponent;
  /** Embedding similarity (raw: the cosine). */
  vector: ScoreComponent;
  /** Recency (raw: hours since last access). */
  recency: ScoreComponent;
  /** Priority and importance (raw: the item's importance). */
  importance: ScoreComponent;
  /** Sum of the weighted components: the score. */
  total: number;
}

export interface RankInput {
  candidates: ItemRecord[];
  /** BM25 scores by seq (absent: 0); undefined without query text. */
  bm25: Map<number, number> | undefined;
  /** Cosine by candidate index; undefined without query text. */
  cosine: Float32Array | undefined;
  now: number;
  weights: RankingWeights;
  recencyDecay: number;
}

export interface Ranked {
  item: ItemRecord;
  explain: ScoreExplanation;
}

const HOUR = 3_600_000;

/** Scores and sorts the candidates, best first; ties: newer item first. */
export function rank(input: RankInput): Ranked[] {
  const { candidates, bm25, cosine, now, weights, recencyDecay } = input;
  let maxBm25 = 0;
  if (bm25) for (const r of candidates) maxBm25 = Math.max(maxBm25, bm25.get(r.seq) ?? 0);
  const part = (raw: number, normalized: number, w: number): ScoreComponent => ({ raw, normalized, weighted: normalized * w });
  const out = candidates.map((item, i): Ranked => {
    const b = bm25?.get(item.seq) ?? 0;
    const cos = cosine ? cosine[i]! : 0;
    const hours = Math.max(0, now - item.lastAccessed) / HOUR;
    const imp = (item.priority / 3 + item.importance) / 2;
    const explain: ScoreExplanation = {
      bm25: part(b, maxBm25 > 0 ? b / maxBm25 : 0, weights.bm25),
      vector: part(cos, Math.max(0, Math.min(1, cos)), weights.vector),
      recency: part(hours, recencyDecay ** hours, weights.recency),
      importance: part(item.importance, imp, weights.importance),
      total: 0,
    };
    explain.total = explain.bm25.weighted + explain.vector.weighted + explain.recency.weighted + explain.importance.weighted;
    return { item, explain };
  });
  return out.sort((a, b) => b.explain.total - a.explain.total || b.item.seq - a.item.seq);
}

/**
 * Takes ranked items in order while they fit: an item larger than what is left is skipped
 * and the next ones are still tried, up to `topK` items.
 */
export function pack(ranked: Ranked[], topK: number, maxTokens: number): Ranked[] {
  const out: Ranked[] = [];
  let left = maxTokens;
  for (const r of ranked) {
    if (out.length === topK) break;
    if (r.item.tokens > left) continue;
    out.push(r);
    left -= r.item.tokens;
  }
  return out;
}
