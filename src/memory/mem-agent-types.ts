/**
 * Public types of the MemAgent store: its options, the items it stores, the queries it
 * answers, their results, the history events and the metrics.
 * @module
 */
import type { Embedder } from '../text/index';
// MemAgentCorruptionError is imported for the doc link.
import type { MemAgentCorruptionError } from './corruption';
import type { Compression } from './pages';
import type { PostgresMemoryOptions } from './pg-connection';
import type { RankingWeights, ScoreExplanation } from './retrieval';
import type { MemoryPriority, MemoryScope, MemoryTokenizer, MemoryType, MetadataFilter, MetadataValue } from './types';

/**
 * Options of {@link MemAgent}.
 *
 * @example
 * ```ts
 * const memory = new MemAgent({ maxTokens: 512_000, path: './agent-memory.db', compression: 'lz4' });
 * ```
 */
export interface MemAgentOptions {
  /** Capacity in tokens of live items, an integer >= 1. Default 512,000. */
  maxTokens?: number;
  /**
   * SQLite file (WAL mode) holding everything; it survives restarts and process crashes.
   * Default: an in-memory database (same behaviour, gone on close).
   */
  path?: string;
  /** How stored text is compressed: `'lz4'` (default), `'gzip'` or `'none'`. Pages already written keep their codec. */
  compression?: Compression;
  /**
   * Counts tokens for capacity and `maxTokens` packing (a Generator fits). Default: an
   * estimate, `ceil(UTF-8 bytes / 4)` — about right for English with GPT-style BPE.
   */
  tokenizer?: MemoryTokenizer;
  /** Embeds texts for vector search. Default: the offline {@link HashedEmbedder} (384 dimensions). */
  embedder?: Embedder;
  /**
   * Cosine similarity at or above which a new item of the same scope is a near duplicate and
   * is merged into the existing one (its text replaced), in (0, 1]; above 1 disables it. Default 0.95.
   */
  dedupThreshold?: number;
  /** Ranking weights; unset ones keep {@link DEFAULT_WEIGHTS}. */
  weights?: Partial<RankingWeights>;
  /** Recency factor per hour since last access, in (0, 1]. Default 0.99 (Generative Agents). */
  recencyDecay?: number;
  /** Queries remembered by the query cache (LRU); 0 disables it. Default 256. */
  queryCacheSize?: number;
  /** Period of the expiry sweep in ms (an unref'd timer); 0 disables the timer. Default 60,000. */
  sweepIntervalMs?: number;
  /** How long deleted items stay (for undo and history) before they are purged, in ms. Default 86,400,000 (a day). */
  retainDeletedMs?: number;
  /**
   * SQLite `synchronous`: `'normal'` (default) loses nothing on a process crash; `'full'`
   * also survives an OS crash or power loss, at an fsync per write.
   */
  synchronous?: 'normal' | 'full';
  /** Clock in ms since the epoch (tests). Default `Date.now`. */
  clock?: () => number;
  /**
   * Open an existing store for retrieval only: `getMemory`, `retrieveMemory`, `history` and
   * `getMetrics` work, every write rejects, access statistics are kept in memory only, and no
   * sweep runs. A SQLite `path` is read as it was at open (a read transaction is held until
   * close): other read-only MemAgents may share it, a writer cannot open it meanwhile. Suits a
   * file this process may not write. SQLite needs the file's `-shm` beside it, or a writable
   * folder to create it in. On PostgreSQL ({@link MemAgent.open} with `postgres`) the store is
   * shared by design: writers keep writing, and a read-only MemAgent sees their changes with
   * each refresh, as any other does. Default false.
   */
  readonly?: boolean;
  /**
   * What opening does with an item whose row or page does not decode (a checksum mismatch, a
   * size that does not add up, a column of the wrong kind): `'error'` (default) throws a
   * {@link MemAgentCorruptionError} naming the file, item, row and page; `'skip'` loads every
   * intact item, leaves the damaged ones in the file untouched and lists them in
   * {@link MemAgent.corrupt} ({@link MemAgent.discardCorrupt} removes them). SQLite-level
   * damage (a failed quick_check) is refused either way: recover the file with the `sqlite3`
   * shell's `.recover` first.
   */
  onCorrupt?: 'error' | 'skip';
}

/**
 * Options of {@link MemAgent.open}: the constructor's, and where a shared store lives.
 *
 * @example
 * ```ts
 * const memory = await MemAgent.open({ maxTokens: 512_000, postgres: { connectionString: process.env.DATABASE_URL } });
 * ```
 */
export interface MemAgentOpenOptions extends MemAgentOptions {
  /**
   * Keep the items in PostgreSQL, shared by every process that opens the same database and
   * schema, instead of a SQLite file (`path` and `synchronous` are then refused). Default: none.
   */
  postgres?: PostgresMemoryOptions;
}

/**
 * Options of {@link MemAgent.storeMemory}.
 *
 * @example
 * ```ts
 * await memory.storeMemory('Deploy on Fridays is forbidden', MemoryType.PROCEDURAL, MemoryPriority.CRITICAL, ['ops'], {
 *   scope: { agentId: 'ops-bot' }, metadata: { source: 'wiki', year: 2026 }, pinned: true,
 * });
 * ```
 */
export interface StoreOptions {
  /** JSON scalars (and arrays of them) to filter on. Default `{}`. */
  metadata?: Record<string, MetadataValue>;
  /** Owner ids. Default: none (matches only queries without that scope field). */
  scope?: MemoryScope;
  /** Importance in [0, 1], averaged with the priority for ranking. Default 0.5. */
  importance?: number;
  /** Expiry time in ms since the epoch. */
  expiresAt?: number;
  /** Time to live in ms from now (instead of `expiresAt`). */
  ttl?: number;
  /** Pinned items are never evicted. Default false. */
  pinned?: boolean;
}

/**
 * A stored memory.
 *
 * @example
 * ```ts
 * const item = memory.getMemory(id);
 * if (item) console.log(item.content, item.tags, item.tokens);
 * ```
 */
export interface MemoryItem {
  /** Stable id (a UUID). */
  id: string;
  /** The text, exactly as stored. */
  content: string;
  /** Its kind. */
  type: MemoryType;
  /** Its priority. */
  priority: MemoryPriority;
  /** Importance in [0, 1]. */
  importance: number;
  /** Its tags, without duplicates, in the order first given. */
  tags: string[];
  /** Its metadata. */
  metadata: Record<string, MetadataValue>;
  /** Its owners. */
  scope: MemoryScope;
  /** Creation time, ms since the epoch. */
  createdAt: number;
  /** Last change (a merge included), ms since the epoch. */
  updatedAt: number;
  /** Last store, update or retrieval, ms since the epoch. */
  lastAccessed: number;
  /** Times returned by retrieveMemory. */
  accessCount: number;
  /** Expiry time (ms since the epoch), or null for never. */
  expiresAt: number | null;
  /** Never evicted when true. */
  pinned: boolean;
  /** Tokens of `content` by the configured tokenizer (or the estimate). */
  tokens: number;
}

/**
 * Changes for {@link MemAgent.updateMemory}; unset fields stay.
 *
 * @example
 * ```ts
 * await memory.updateMemory(id, { priority: MemoryPriority.HIGH, tags: ['prefs', 'units'] });
 * ```
 */
export interface MemoryUpdate {
  /** New text (re-embedded and re-counted). */
  content?: string;
  /** New kind. */
  type?: MemoryType;
  /** New priority. */
  priority?: MemoryPriority;
  /** Replaces the tags. */
  tags?: string[];
  /** Replaces the metadata object. */
  metadata?: Record<string, MetadataValue>;
  /** New importance in [0, 1]. */
  importance?: number;
  /** `null` removes the expiry. */
  expiresAt?: number | null;
  /** Pin or unpin. */
  pinned?: boolean;
}

/**
 * What {@link MemAgent.retrieveMemory} looks for. Every structured filter narrows the
 * candidates; `queryText` ranks them by relevance.
 *
 * @example
 * ```ts
 * const q: MemoryQuery = {
 *   queryText: 'How do I optimise Python code?',
 *   memoryTypes: [MemoryType.SEMANTIC, MemoryType.PROCEDURAL],
 *   tags: ['python'], minPriority: MemoryPriority.MEDIUM,
 *   filter: { OR: [{ lang: 'en' }, { year: { gte: 2025 } }] },
 *   topK: 8, maxTokens: 2000,
 * };
 * ```
 */
export interface MemoryQuery {
  /** Text to rank by (BM25 + vector similarity). Without it, items rank by recency and importance. */
  queryText?: string;
  /** Only items of these kinds. */
  memoryTypes?: MemoryType[];
  /** Tags to match: items with any of them (default) or all (`tagMode: 'all'`). */
  tags?: string[];
  /** How `tags` match; default `'any'`. */
  tagMode?: 'any' | 'all';
  /** Only items of this priority or higher. */
  minPriority?: MemoryPriority;
  /** Creation time window in ms since the epoch, both ends inclusive. */
  timeRange?: {
    /** Earliest creation time; default unbounded. */
    from?: number;
    /** Latest creation time; default unbounded. */
    to?: number;
  };
  /** Each set field must equal the item's. */
  scope?: MemoryScope;
  /** A metadata filter (see {@link MetadataFilter}). */
  filter?: MetadataFilter;
  /** Most results, an integer >= 1. Default 10. */
  topK?: number;
  /** Token budget of the results, an integer >= 0: packed greedily in rank order. Default: no budget. */
  maxTokens?: number;
}

/**
 * One result of {@link MemAgent.retrieveMemory}: the item, its score and why.
 *
 * @example
 * ```ts
 * const [best] = (await memory.retrieveMemory({ queryText: 'units' })).chunks;
 * console.log(best?.content, best?.score, best?.explain);
 * ```
 */
export interface RetrievedChunk extends MemoryItem {
  /** `explain.total`. */
  score: number;
  /** The score's components. */
  explain: ScoreExplanation;
}

/**
 * Result of {@link MemAgent.retrieveMemory}.
 *
 * @example
 * ```ts
 * const r = await memory.retrieveMemory({ queryText: 'deploy', maxTokens: 2000 });
 * console.log(r.chunks.length, r.totalTokens, r.searchTimeMs, r.cacheHit);
 * ```
 */
export interface RetrievalResult {
  /** The results, best first. */
  chunks: RetrievedChunk[];
  /** Sum of the chunks' tokens, never above the query's `maxTokens`. */
  totalTokens: number;
  /** Items that passed the structured filters (before ranking and packing). */
  candidates: number;
  /** Wall time of this call, embedding the query included, in ms. */
  searchTimeMs: number;
  /** Whether the query cache answered (the ranking was not recomputed). */
  cacheHit: boolean;
}

/**
 * One event of an item's history.
 *
 * @example
 * ```ts
 * for (const e of memory.history(id)) console.log(e.event, e.reason, e.at);
 * ```
 */
export interface MemoryEvent {
  /** What happened. */
  event: 'ADD' | 'UPDATE' | 'DELETE';
  /** Why, for events the store made itself: `'duplicate'`, `'near-duplicate'`, `'expired'`, `'evicted'`. */
  reason: string | null;
  /** The changed fields before (UPDATE), or the whole item (DELETE). */
  oldValue: Partial<MemoryItem> | null;
  /** The changed fields after (UPDATE), or the whole item (ADD). */
  newValue: Partial<MemoryItem> | null;
  /** ms since the epoch. */
  at: number;
}

/**
 * Measured state of a {@link MemAgent}.
 *
 * @example
 * ```ts
 * const m = memory.getMetrics();
 * console.log(`${m.tokensUsed}/${m.tokensAvailable} tokens, ${m.compression.ratio.toFixed(2)}× compression`);
 * ```
 */
export interface MemAgentMetrics {
  /** Tokens of live items. */
  tokensUsed: number;
  /** The capacity, `maxTokens`. */
  tokensAvailable: number;
  /** Live items. */
  items: number;
  /** Live items per type. */
  itemsByType: Record<MemoryType, number>;
  /** Text bytes as stored vs raw: `ratio = rawBytes / storedBytes` (texts waiting to be paged count as stored raw). */
  compression: {
    /** The codec new pages use. */
    codec: Compression;
    /** UTF-8 bytes of the stored texts (live and not yet purged). */
    rawBytes: number;
    /** Bytes they take: compressed pages plus texts waiting raw. */
    storedBytes: number;
    /** `rawBytes / storedBytes` (1 when empty). */
    ratio: number;
  };
  /** Embedding bytes as stored (int8 + a float32 scale per item) vs float32. */
  embeddings: {
    /** Embedding length. */
    dimensions: number;
    /** Bytes of the live items' int8 embeddings and scales. */
    bytes: number;
    /** What float32 embeddings would take. */
    float32Bytes: number;
  };
  /** Query cache hits / (hits + misses) since open; 0 before any query. */
  cacheHitRate: number;
  /** Queries the cache answered since open. */
  cacheHits: number;
  /** Queries ranked anew since open. */
  cacheMisses: number;
  /** retrieveMemory calls since open. */
  searches: number;
  /** Mean wall time of those calls in ms ({@link RetrievalResult.searchTimeMs}). */
  meanSearchMs: number;
  /** Stores merged into an existing item (exact or near duplicates) since open. */
  merged: number;
  /** Items evicted to make room since open. */
  evicted: number;
  /** Items removed because they expired since open. */
  expired: number;
  /**
   * Items left out because they do not decode (`onCorrupt: 'skip'`), still in the store; see
   * {@link MemAgent.corrupt}. On SQLite they are found at open; on PostgreSQL also by a later
   * refresh that reads a damaged row or page another process wrote.
   */
  corruptItems: number;
  /**
   * Retrievals since open whose access statistics (`lastAccessed`, `accessCount`) could not
   * be written to the store (a full disk, an I/O error, a database that refused or could not
   * be reached); the retrieval itself succeeded and the statistics were kept in memory. On
   * PostgreSQL they are written in the background (one statement for the retrievals of up to
   * 50 ms), so a failure is counted once that statement fails, for each retrieval it carried.
   */
  accessWriteFailures: number;
}
