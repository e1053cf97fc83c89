/**
 * What {@link MemAgent.getMetrics} reports, each figure from the item index, the store's text
 * totals and the counters a MemAgent keeps as it runs (their definitions are on
 * {@link MemAgentMetrics}).
 * @module
 */
import { TYPES } from './checks';
import type { ItemIndex } from './item-index';
import type { MemAgentMetrics } from './mem-agent-types';
import type { PageTotals } from './pages';
import type { MemoryType } from './types';

/**
 * What a MemAgent counts since it opened.
 * @internal
 */
export interface MemAgentCounters {
  hits: number;
  misses: number;
  searches: number;
  searchMs: number;
  merged: number;
  evicted: number;
  expired: number;
  accessWriteFailures: number;
}

/** Counters at zero. @internal */
export function newCounters(): MemAgentCounters {
  return { hits: 0, misses: 0, searches: 0, searchMs: 0, merged: 0, evicted: 0, expired: 0, accessWriteFailures: 0 };
}

/**
 * The metrics of a MemAgent's state: `accessWriteFailures` adds the store's own count (PostgreSQL
 * writes access statistics in the background) to the counter's.
 * @internal
 */
export function memAgentMetrics(m: {
  index: ItemIndex;
  maxTokens: number;
  codec: MemAgentMetrics['compression']['codec'];
  dimensions: number;
  totals: PageTotals;
  counters: MemAgentCounters;
  corruptItems: number;
  storeAccessWriteFailures: number;
}): MemAgentMetrics {
  const { index, totals: t, counters: s, dimensions: dims } = m;
  const n = index.items.size;
  return {
    tokensUsed: index.tokens,
    tokensAvailable: m.maxTokens,
    items: n,
    itemsByType: Object.fromEntries(TYPES.map((type) => [type, index.byType.get(type)?.size ?? 0])) as Record<MemoryType, number>,
    compression: { codec: m.codec, rawBytes: t.rawBytes, storedBytes: t.storedBytes, ratio: t.storedBytes === 0 ? 1 : t.rawBytes / t.storedBytes },
    embeddings: { dimensions: dims, bytes: n * (dims + 4), float32Bytes: n * dims * 4 },
    cacheHitRate: s.hits + s.misses === 0 ? 0 : s.hits / (s.hits + s.misses),
    cacheHits: s.hits,
    cacheMisses: s.misses,
    searches: s.searches,
    meanSearchMs: s.searches === 0 ? 0 : s.searchMs / s.searches,
    merged: s.merged,
    evicted: s.evicted,
    expired: s.expired,
    corruptItems: m.corruptItems,
    accessWriteFailures: s.accessWriteFailures + m.storeAccessWriteFailures,
  };
}
