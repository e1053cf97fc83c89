/**
 * MemAgent: a durable, compressed, indexed memory for agents, with hybrid retrieval under a
 * token budget.
 * @module
 */
import { createHash, randomUUID } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import { dict } from '../dict';
import * as v from '../validate';
import { compileFilter } from './filter';
import { Bm25Index, type Embedder, HashedEmbedder, int8Scores, quantizeInt8 } from '../text/index';
import { openDatabase } from './schema';
import { type Compression, PageStore } from './pages';
import { EmbeddingMatrix, ItemIndex, type ItemRecord } from './item-index';
import { DEFAULT_WEIGHTS, pack, rank, type RankingWeights, type ScoreExplanation } from './retrieval';
import { type MemoryScope, MemoryPriority, type MemoryTokenizer, MemoryType, type MetadataFilter, type MetadataValue } from './types';

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
}

const OPTION_KEYS = [
  'maxTokens', 'path', 'compression', 'tokenizer', 'embedder', 'dedupThreshold', 'weights', 'recencyDecay',
  'queryCacheSize', 'sweepIntervalMs', 'retainDeletedMs', 'synchronous', 'clock',
] as const;
const STORE_KEYS = ['metadata', 'scope', 'importance', 'expiresAt', 'ttl', 'pinned'] as const;
const UPDATE_KEYS = ['content', 'type', 'priority', 'tags', 'metadata', 'importance', 'expiresAt', 'pinned'] as const;
const QUERY_KEYS = ['queryText', 'memoryTypes', 'tags', 'tagMode', 'minPriority', 'timeRange', 'scope', 'filter', 'topK', 'maxTokens'] as const;
const SCOPE_KEYS = ['userId', 'agentId', 'sessionId'] as const;
const TYPES = Object.values(MemoryType);
const PRIORITIES = [MemoryPriority.LOW, MemoryPriority.MEDIUM, MemoryPriority.HIGH, MemoryPriority.CRITICAL];
const CLOSED = 'MemAgent is closed';

interface Row {
  seq: number; id: string; type: MemoryType; priority: MemoryPriority; importance: number; tags: string; metadata: string;
  user_id: string | null; agent_id: string | null; session_id: string | null; created_at: number; updated_at: number;
  last_accessed: number; access_count: number; expires_at: number | null; pinned: number; content_hash: string;
  tokens: number; bytes: number; embedding: Buffer; embedding_scale: number;
}

/** A new or changed item's prepared parts (computed before the write turn). */
interface Prepared {
  content: string;
  bytes: Buffer;
  tokens: number;
  codes: Int8Array;
  scale: number;
}

/**
 * A memory for agents: typed, tagged, scoped items with priorities and expiry, stored
 * compressed in SQLite, indexed, and retrieved by hybrid ranking under a token budget.
 *
 * **Storage.** One SQLite database (better-sqlite3, WAL; in memory without `path`). Every
 * write is one transaction: when `storeMemory` resolves, the item is in the file and a process
 * crash cannot lose it. Texts are packed into 32 KiB pages compressed with LZ4 or gzip (see
 * {@link MemAgentMetrics.compression} for the measured ratio); embeddings are stored as int8
 * with a scale (4× smaller than float32).
 *
 * **Deduplication.** Content equal after normalisation (Unicode NFKC, case, whitespace) in the
 * same scope is merged into the existing item (tags united, the higher priority and importance
 * kept, metadata merged); so is content whose embedding's cosine similarity with an item of the
 * same scope reaches `dedupThreshold`, whose text then replaces the old one. The existing id is
 * returned and the merge recorded in its history.
 *
 * **Retrieval.** Structured filters (types, tags, priority, creation time, scope, a metadata
 * filter) select candidates through indexes; {@link RankingWeights} rank them; results are
 * packed into `maxTokens`. Returned items get their `lastAccessed` and `accessCount` updated. A
 * query cache (LRU) answers repeated queries until the next write.
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
  readonly #db: BetterSqlite3.Database;
  readonly #codec: Compression;
  #pages: PageStore;
  readonly #index = new ItemIndex();
  readonly #bm25 = new Bm25Index();
  readonly #matrix: EmbeddingMatrix;
  readonly #embedder: Embedder;
  readonly #tokenizer: MemoryTokenizer | undefined;
  readonly #dedup: number;
  readonly #weights: RankingWeights;
  readonly #decay: number;
  readonly #cacheSize: number;
  readonly #cache = new Map<string, { ranked: Array<{ seq: number; explain: ScoreExplanation }>; candidates: number }>();
  readonly #retainDeleted: number;
  readonly #clock: () => number;
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #sql;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  #stats = { hits: 0, misses: 0, searches: 0, searchMs: 0, merged: 0, evicted: 0, expired: 0 };

  /**
   * Opens (or creates) the memory. With `path`, everything stored before is loaded, and the
   * file is locked: one MemAgent per file (each keeps its own index), until `close()`.
   *
   * @param options Capacity, file, compression, tokenizer, embedder and ranking.
   * @throws TypeError / RangeError for bad options; Error when the file is not a MemAgent
   * database, was written by a newer version, fails SQLite's quick check, or was filled with
   * an embedder of other dimensions.
   *
   * @example
   * ```ts
   * const memory = new MemAgent({ path: './memory.db', compression: 'gzip', tokenizer: model });
   * ```
   */
  constructor(options: MemAgentOptions = {}) {
    const o = v.options<MemAgentOptions>('options', options, OPTION_KEYS);
    this.maxTokens = o.maxTokens === undefined ? 512_000 : v.integer('options.maxTokens', o.maxTokens, 1);
    const path = o.path === undefined ? undefined : v.nonEmptyString('options.path', o.path);
    this.#codec = o.compression === undefined ? 'lz4' : v.oneOf('options.compression', o.compression, ['lz4', 'gzip', 'none'] as const);
    if (o.tokenizer !== undefined && typeof (o.tokenizer as MemoryTokenizer | null)?.countTokens !== 'function') {
      throw v.typeError('options.tokenizer', 'an object with a countTokens method', o.tokenizer);
    }
    this.#tokenizer = o.tokenizer;
    if (o.embedder !== undefined) {
      const e = o.embedder as Embedder | null;
      if (typeof e?.embed !== 'function') throw v.typeError('options.embedder', 'an Embedder (dimensions and an embed method)', o.embedder);
      v.integer('options.embedder.dimensions', e.dimensions, 1, 4096);
    }
    this.#embedder = o.embedder ?? new HashedEmbedder();
    this.#dedup = o.dedupThreshold === undefined ? 0.95 : v.finite('options.dedupThreshold', o.dedupThreshold, { positive: true });
    this.#weights = { ...DEFAULT_WEIGHTS };
    if (o.weights !== undefined) {
      const w = v.options<RankingWeights>('options.weights', o.weights, Object.keys(DEFAULT_WEIGHTS));
      for (const k of Object.keys(w) as Array<keyof RankingWeights>) this.#weights[k] = v.finite(`options.weights.${k}`, w[k], { min: 0 });
    }
    this.#decay = o.recencyDecay === undefined ? 0.99 : v.finite('options.recencyDecay', o.recencyDecay, { positive: true });
    if (this.#decay > 1) throw v.rangeError('options.recencyDecay', 'finite number in (0, 1]', this.#decay);
    this.#cacheSize = o.queryCacheSize === undefined ? 256 : v.integer('options.queryCacheSize', o.queryCacheSize, 0);
    const sweepMs = o.sweepIntervalMs === undefined ? 60_000 : v.integer('options.sweepIntervalMs', o.sweepIntervalMs, 0, 2 ** 31 - 1);
    this.#retainDeleted = o.retainDeletedMs === undefined ? 86_400_000 : v.integer('options.retainDeletedMs', o.retainDeletedMs, 0);
    const synchronous = o.synchronous === undefined ? 'normal' : v.oneOf('options.synchronous', o.synchronous, ['normal', 'full'] as const);
    this.#clock = o.clock === undefined ? Date.now : (v.optionalFunction<() => number>('options.clock', o.clock) as () => number);

    this.#db = openDatabase(path, synchronous);
    try {
      this.#matrix = new EmbeddingMatrix(this.#embedder.dimensions);
      this.#sql = this.#statements();
      this.#checkDimensions(path ?? ':memory:');
      this.#pages = new PageStore(this.#db, this.#codec);
      this.#load();
    } catch (err) {
      this.#db.close();
      throw err;
    }
    if (sweepMs > 0) {
      this.#timer = setInterval(() => void this.sweep().catch(() => undefined), sweepMs);
      this.#timer.unref();
    }
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
    this.#open();
    checkContent('content', content);
    v.oneOf('type', type, TYPES);
    checkPriority('priority', priority);
    const tagList = checkTags('tags', tags);
    const o = v.options<StoreOptions>('options', options, STORE_KEYS);
    const metadata = o.metadata === undefined ? {} : checkMetadata('options.metadata', o.metadata);
    const scope = o.scope === undefined ? {} : checkScope('options.scope', o.scope);
    const importance = o.importance === undefined ? 0.5 : checkUnit('options.importance', o.importance);
    if (o.expiresAt !== undefined && o.ttl !== undefined) throw new TypeError('Expected only one of options.expiresAt and options.ttl but received both');
    const expiresAt = o.expiresAt !== undefined ? v.integer('options.expiresAt', o.expiresAt, 0) : undefined;
    const ttl = o.ttl !== undefined ? v.integer('options.ttl', o.ttl, 1) : undefined;
    const pinned = o.pinned === undefined ? false : v.boolean('options.pinned', o.pinned);

    return this.#write(this.#prepare(content), (prepared) => {
      const now = this.#clock();
      const fields = {
        type, priority, importance, tags: tagList, metadata, pinned,
        userId: scope.userId ?? null, agentId: scope.agentId ?? null, sessionId: scope.sessionId ?? null,
        expiresAt: expiresAt ?? (ttl !== undefined ? now + ttl : null),
      };
      const hash = contentHash(content, fields);
      const exact = this.#oldestLive(this.#index.byHash.get(hash), now);
      if (exact !== undefined) return this.#merge(exact, fields, null, now, 'duplicate');
      const near = this.#nearDuplicate(prepared, fields, now);
      if (near !== undefined) return this.#merge(near, fields, { ...prepared, hash }, now, 'near-duplicate');
      return this.#insert(prepared, hash, fields, now);
    });
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
    this.#open();
    v.string('id', id);
    const seq = this.#index.byId.get(id);
    if (seq === undefined) return null;
    const r = this.#index.items.get(seq)!;
    return r.expiresAt !== null && r.expiresAt <= this.#clock() ? null : this.#view(r);
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
    this.#open();
    v.string('id', id);
    const u = v.options<MemoryUpdate>('update', update, UPDATE_KEYS);
    if (u.content !== undefined) {
      checkContent('update.content', u.content);
    }
    if (u.type !== undefined) v.oneOf('update.type', u.type, TYPES);
    if (u.priority !== undefined) checkPriority('update.priority', u.priority);
    const tags = u.tags === undefined ? undefined : checkTags('update.tags', u.tags);
    const metadata = u.metadata === undefined ? undefined : checkMetadata('update.metadata', u.metadata);
    if (u.importance !== undefined) checkUnit('update.importance', u.importance);
    if (u.expiresAt !== undefined && u.expiresAt !== null) v.integer('update.expiresAt', u.expiresAt, 0);
    if (u.pinned !== undefined) v.boolean('update.pinned', u.pinned);
    return this.#write(u.content === undefined ? null : this.#prepare(u.content), (prepared) => {
      const now = this.#clock();
      const seq = this.#live(id, now);
      if (seq === undefined) return null;
      const old = this.#index.items.get(seq)!;
      const next: ItemRecord = {
        ...old,
        type: u.type ?? old.type,
        priority: u.priority ?? old.priority,
        importance: u.importance ?? old.importance,
        tags: tags ?? old.tags,
        metadata: metadata ?? old.metadata,
        expiresAt: u.expiresAt === undefined ? old.expiresAt : u.expiresAt,
        pinned: u.pinned ?? old.pinned,
        updatedAt: now,
        lastAccessed: now,
      };
      next.hash = contentHash(prepared?.content ?? this.#content(seq), { ...next });
      this.#apply(old, next, prepared, now, null);
      return this.#view(this.#index.items.get(seq)!);
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
    this.#open();
    v.string('id', id);
    return this.#write(null, () => {
      const now = this.#clock();
      const seq = this.#live(id, now);
      if (seq === undefined) return false;
      this.#db.transaction(() => this.#softDelete(seq, now, null))();
      this.#forget(seq);
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
   *
   * @example
   * ```ts
   * const events = memory.history(id); // [{ event: 'ADD', ... }, { event: 'UPDATE', reason: 'duplicate', ... }]
   * ```
   */
  history(id: string): MemoryEvent[] {
    this.#open();
    v.string('id', id);
    return this.#sql.history.all(id).map((r) => ({
      event: r.event as MemoryEvent['event'],
      reason: r.reason,
      oldValue: r.old_value === null ? null : (JSON.parse(r.old_value) as Partial<MemoryItem>),
      newValue: r.new_value === null ? null : (JSON.parse(r.new_value) as Partial<MemoryItem>),
      at: r.at,
    }));
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
    this.#open();
    const t0 = performance.now();
    const q = this.#checkQuery(query);
    const key = JSON.stringify(q);
    const fresh = (seq: number) => {
      const r = this.#index.items.get(seq);
      return r !== undefined && (r.expiresAt === null || r.expiresAt > this.#clock());
    };
    // Writes clear the cache; an entry can still hold an item that expired since.
    let hit = this.#cache.get(key);
    if (hit !== undefined && !hit.ranked.every((r) => fresh(r.seq))) hit = undefined;
    let candidates: number;
    let ranked: Array<{ seq: number; explain: ScoreExplanation }>;
    if (hit !== undefined) {
      this.#cache.delete(key);
      this.#cache.set(key, hit);
      this.#stats.hits++;
      ({ ranked, candidates } = hit);
    } else {
      // Embed first: after this await nothing yields until the end, so no write can remove a
      // candidate (and free its embedding row) while it is scored.
      const vec = q.queryText === undefined ? undefined : checkVector((await this.#embedder.embed([q.queryText]))[0], this.#matrix.dims);
      this.#open();
      this.#stats.misses++;
      const now = this.#clock();
      const items = this.#candidates(q, now);
      let bm25: Map<number, number> | undefined;
      let cosine: Float32Array | undefined;
      if (q.queryText !== undefined) {
        const seqs = new Set(items.map((r) => r.seq));
        bm25 = this.#bm25.search(q.queryText, (doc) => seqs.has(doc));
        cosine = this.#cosines(vec!, items);
      }
      const packed = pack(rank({ candidates: items, bm25, cosine, now, weights: this.#weights, recencyDecay: this.#decay }), q.topK, q.maxTokens);
      ranked = packed.map((r) => ({ seq: r.item.seq, explain: r.explain }));
      candidates = items.length;
      if (this.#cacheSize > 0) {
        this.#cache.set(key, { ranked, candidates });
        if (this.#cache.size > this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value!);
      }
    }
    const now = this.#clock();
    this.#db.transaction(() => {
      for (const r of ranked) this.#sql.touch.run(now, r.seq);
    })();
    const chunks = ranked.map(({ seq, explain }): RetrievedChunk => {
      const rec = this.#index.items.get(seq)!;
      rec.lastAccessed = now;
      rec.accessCount++;
      return { ...this.#view(rec), score: explain.total, explain };
    });
    const searchTimeMs = performance.now() - t0;
    this.#stats.searches++;
    this.#stats.searchMs += searchTimeMs;
    return { chunks, totalTokens: chunks.reduce((a, c) => a + c.tokens, 0), candidates, searchTimeMs, cacheHit: hit !== undefined };
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
    this.#open();
    return this.#write(null, () => this.#sweepNow(this.#clock()));
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
    this.#open();
    const byType = Object.fromEntries(TYPES.map((t) => [t, this.#index.byType.get(t)?.size ?? 0])) as Record<MemoryType, number>;
    const t = this.#pages.totals();
    const n = this.#index.items.size;
    const dims = this.#matrix.dims;
    const s = this.#stats;
    return {
      tokensUsed: this.#index.tokens,
      tokensAvailable: this.maxTokens,
      items: n,
      itemsByType: byType,
      compression: { codec: this.#codec, rawBytes: t.rawBytes, storedBytes: t.storedBytes, ratio: t.storedBytes === 0 ? 1 : t.rawBytes / t.storedBytes },
      embeddings: { dimensions: dims, bytes: n * (dims + 4), float32Bytes: n * dims * 4 },
      cacheHitRate: s.hits + s.misses === 0 ? 0 : s.hits / (s.hits + s.misses),
      cacheHits: s.hits,
      cacheMisses: s.misses,
      searches: s.searches,
      meanSearchMs: s.searches === 0 ? 0 : s.searchMs / s.searches,
      merged: s.merged,
      evicted: s.evicted,
      expired: s.expired,
    };
  }

  /**
   * Stops the sweep timer, waits for writes in progress and closes the database.
   *
   * @example
   * ```ts
   * await memory.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#queue.catch(() => undefined);
    this.#db.close();
  }

  #open(): void {
    if (this.#closed) throw new Error(CLOSED);
  }

  /**
   * Writes apply one at a time in call order: each takes its place in the queue when called,
   * while its async part (`prepare`: token count, embedding) runs at once, concurrently with
   * the writes ahead of it. close() waits for every write called before it.
   */
  #write<P, T>(prepare: Promise<P> | null, work: (prepared: P) => T): Promise<T> {
    prepare?.catch(() => undefined); // its failure is reported by `run`
    const run = this.#queue.then(async () => {
      const prepared = (await prepare) as P;
      try {
        return work(prepared);
      } finally {
        this.#cache.clear();
      }
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** The live, unexpired item with this id. */
  #live(id: string, now: number): number | undefined {
    const seq = this.#index.byId.get(id);
    if (seq === undefined) return undefined;
    const r = this.#index.items.get(seq)!;
    return r.expiresAt !== null && r.expiresAt <= now ? undefined : seq;
  }

  /** The oldest unexpired item of a set (an exact-duplicate group). */
  #oldestLive(seqs: Set<number> | undefined, now: number): number | undefined {
    let best: number | undefined;
    for (const seq of seqs ?? []) {
      const r = this.#index.items.get(seq)!;
      if ((r.expiresAt === null || r.expiresAt > now) && (best === undefined || seq < best)) best = seq;
    }
    return best;
  }

  async #prepare(content: string): Promise<Prepared> {
    const tokens = this.#tokenizer
      ? v.integer('tokenizer.countTokens() result', await this.#tokenizer.countTokens(content), 0)
      : Math.ceil(Buffer.byteLength(content) / 4);
    const [vec] = await this.#embedder.embed([content]);
    const { codes, scale } = quantizeInt8(normalize(checkVector(vec, this.#matrix.dims)));
    return { content, bytes: Buffer.from(content, 'utf8'), tokens, codes, scale };
  }

  #insert(p: Prepared, hash: string, f: Fields, now: number): string {
    const id = randomUUID();
    this.#makeRoom(p.tokens, now, undefined);
    let seq = 0;
    this.#transaction(() => {
      this.#evictPlanned(now);
      seq = Number(
        this.#sql.insert.run(
          id, f.type, f.priority, f.importance, JSON.stringify(f.tags), JSON.stringify(f.metadata), f.userId, f.agentId, f.sessionId,
          now, now, now, 0, f.expiresAt, f.pinned ? 1 : 0, hash, p.tokens, p.bytes.length, p.bytes,
          Buffer.from(p.codes.buffer, p.codes.byteOffset, p.codes.byteLength), p.scale,
        ).lastInsertRowid,
      );
      this.#pages.added(p.bytes.length);
      const record: ItemRecord = { seq, id, ...f, createdAt: now, updatedAt: now, lastAccessed: now, accessCount: 0, hash, tokens: p.tokens, bytes: p.bytes.length, row: -1 };
      this.#sql.event.run(id, 'ADD', null, null, JSON.stringify(this.#view(record, p.content)), now);
    });
    const row = this.#matrix.add(p.codes, p.scale);
    this.#index.add({ seq, id, ...f, createdAt: now, updatedAt: now, lastAccessed: now, accessCount: 0, hash, tokens: p.tokens, bytes: p.bytes.length, row });
    this.#bm25.add(seq, p.content);
    return id;
  }

  // Folds a duplicate into an existing item; `replacement` is the new text of a near duplicate.
  #merge(seq: number, f: Fields, replacement: (Prepared & { hash: string }) | null, now: number, reason: string): string {
    const old = this.#index.items.get(seq)!;
    const next: ItemRecord = {
      ...old,
      priority: Math.max(old.priority, f.priority) as MemoryPriority,
      importance: Math.max(old.importance, f.importance),
      tags: [...new Set([...old.tags, ...f.tags])],
      metadata: { ...old.metadata, ...f.metadata },
      expiresAt: old.expiresAt === null || f.expiresAt === null ? null : Math.max(old.expiresAt, f.expiresAt),
      pinned: old.pinned || f.pinned,
      updatedAt: now,
      lastAccessed: now,
      hash: replacement?.hash ?? old.hash,
    };
    this.#apply(old, next, replacement, now, reason);
    this.#stats.merged++;
    return old.id;
  }

  // Writes the change of one item (fields, and text when `p` is given), with its history event.
  #apply(old: ItemRecord, next: ItemRecord, p: Prepared | null, now: number, reason: string | null): void {
    if (p) next.tokens = p.tokens;
    this.#makeRoom(next.tokens - old.tokens, now, old.seq);
    const oldContent = p ? this.#content(old.seq) : undefined;
    this.#transaction(() => {
      this.#evictPlanned(now);
      this.#sql.update.run(
        next.type, next.priority, next.importance, JSON.stringify(next.tags), JSON.stringify(next.metadata), next.updatedAt,
        next.lastAccessed, next.expiresAt, next.pinned ? 1 : 0, next.hash, next.seq,
      );
      if (p) {
        const was = this.#sql.location.get(old.seq)!;
        if (was.text !== null) this.#pages.removedPending(was.bytes);
        this.#sql.replaceText.run(p.tokens, p.bytes.length, p.bytes, Buffer.from(p.codes.buffer, p.codes.byteOffset, p.codes.byteLength), p.scale, old.seq);
        this.#pages.added(p.bytes.length);
        next.bytes = p.bytes.length;
      }
      const before = this.#view(old, oldContent);
      const after = this.#view(next, p?.content);
      const changed = (Object.keys(after) as Array<keyof MemoryItem>).filter((k) => k !== 'content' && JSON.stringify(before[k]) !== JSON.stringify(after[k]));
      if (p && p.content !== oldContent) changed.push('content');
      const pick = (x: MemoryItem) => Object.fromEntries(changed.map((k) => [k, x[k]]));
      this.#sql.event.run(old.id, 'UPDATE', reason, JSON.stringify(pick(before)), JSON.stringify(pick(after)), now);
    });
    this.#index.replace(next);
    if (p) {
      this.#matrix.set(old.row, p.codes, p.scale);
      this.#bm25.add(old.seq, p.content);
    }
  }

  #planned: number[] = [];
  #plannedReasons: Array<'expired' | 'evicted'> = [];

  /**
   * Decides which items to evict so that `delta` more tokens fit (`keep` is the item being
   * changed); throws, deciding nothing, when even evicting every evictable item is not enough.
   */
  #makeRoom(delta: number, now: number, keep: number | undefined): void {
    this.#planned = [];
    let need = this.#index.tokens + delta - this.maxTokens;
    // A change that adds nothing always fits (the store may be over a capacity lowered since).
    if (delta <= 0 || need <= 0) return;
    const size = delta + (keep === undefined ? 0 : this.#index.items.get(keep)!.tokens);
    if (size > this.maxTokens) throw new RangeError(`MemAgent: an item of ${size} tokens cannot fit in maxTokens ${this.maxTokens}`);
    const expired: ItemRecord[] = [];
    const evictable: Array<{ r: ItemRecord; score: number }> = [];
    for (const r of this.#index.items.values()) {
      if (r.seq === keep) continue;
      if (r.expiresAt !== null && r.expiresAt <= now) expired.push(r);
      else if (r.priority !== MemoryPriority.CRITICAL && !r.pinned) evictable.push({ r, score: this.#retention(r, now) });
    }
    evictable.sort((a, b) => a.score - b.score || a.r.seq - b.r.seq);
    const plan: number[] = [];
    for (const r of [...expired, ...evictable.map((e) => e.r)]) {
      if (need <= 0) break;
      plan.push(r.seq);
      need -= r.tokens;
    }
    if (need > 0) {
      const kept = this.#index.tokens - [...expired, ...evictable.map((e) => e.r)].reduce((a, r) => a + r.tokens, 0) - (keep === undefined ? 0 : this.#index.items.get(keep)!.tokens);
      throw new RangeError(
        `MemAgent: ${delta} more tokens do not fit in maxTokens ${this.maxTokens}: ${kept} tokens are held by CRITICAL or pinned items, which are never evicted`,
      );
    }
    this.#planned = plan;
  }

  // Inside the write transaction: deletes what #makeRoom planned.
  #evictPlanned(now: number): void {
    for (const seq of this.#planned) {
      const r = this.#index.items.get(seq)!;
      const reason = r.expiresAt !== null && r.expiresAt <= now ? 'expired' : 'evicted';
      this.#softDelete(seq, now, reason);
      this.#plannedReasons.push(reason);
    }
  }

  /** Retention score: what eviction keeps longest. */
  #retention(r: ItemRecord, now: number): number {
    const hours = Math.max(0, now - r.lastAccessed) / 3_600_000;
    return ((r.priority + 1) / 4) * this.#decay ** hours * (1 + Math.log1p(r.accessCount));
  }

  #softDelete(seq: number, now: number, reason: string | null): void {
    const r = this.#index.items.get(seq)!;
    this.#sql.softDelete.run(now, seq);
    this.#sql.event.run(r.id, 'DELETE', reason, JSON.stringify(this.#view(r)), null, now);
  }

  // Runs a write transaction; memory structures change only after it commits.
  #transaction(body: () => void): void {
    try {
      this.#db.transaction(body)();
    } catch (err) {
      this.#planned = [];
      this.#plannedReasons = [];
      this.#pages = new PageStore(this.#db, this.#codec); // its pending count may have moved inside the rolled-back transaction
      throw err;
    }
    for (const seq of this.#planned) this.#forget(seq);
    for (const reason of this.#plannedReasons) this.#stats[reason]++; // counted once committed
    this.#planned = [];
    this.#plannedReasons = [];
  }

  #forget(seq: number): void {
    const r = this.#index.remove(seq);
    if (r === undefined) return;
    this.#matrix.remove(r.row);
    this.#bm25.remove(seq);
  }

  #sweepNow(now: number): number {
    const expired = [...this.#index.items.values()].filter((r) => r.expiresAt !== null && r.expiresAt <= now).map((r) => r.seq);
    this.#db.transaction(() => {
      for (const seq of expired) this.#softDelete(seq, now, 'expired');
      for (const row of this.#sql.purgeable.all(now - this.#retainDeleted)) {
        if (row.text_bytes !== null) this.#pages.removedPending(row.text_bytes);
        this.#sql.purge.run(row.seq);
      }
      this.#pages.repack();
    })();
    for (const seq of expired) this.#forget(seq);
    this.#stats.expired += expired.length;
    return expired.length;
  }

  #nearDuplicate(p: Prepared, f: Fields, now: number): number | undefined {
    if (this.#dedup > 1 || this.#index.items.size === 0) return undefined;
    const same = [...this.#index.items.values()].filter(
      (r) => r.userId === f.userId && r.agentId === f.agentId && r.sessionId === f.sessionId && (r.expiresAt === null || r.expiresAt > now),
    );
    if (same.length === 0) return undefined;
    const rows = Int32Array.from(same, (r) => r.row);
    const s = int8Scores(p.codes, p.scale, this.#matrix.codes.subarray(0, this.#matrix.rows * this.#matrix.dims), this.#matrix.scales.subarray(0, this.#matrix.rows), this.#matrix.dims, { rows });
    let best = -1;
    for (let i = 0; i < s.length; i++) if (s[i]! >= this.#dedup && (best < 0 || s[i]! > s[best]!)) best = i;
    return best < 0 ? undefined : same[best]!.seq;
  }

  #cosines(query: Float32Array, items: ItemRecord[]): Float32Array {
    if (items.length === 0) return new Float32Array(0);
    const { codes, scale } = quantizeInt8(normalize(query));
    const rows = Int32Array.from(items, (r) => r.row);
    return int8Scores(codes, scale, this.#matrix.codes.subarray(0, this.#matrix.rows * this.#matrix.dims), this.#matrix.scales.subarray(0, this.#matrix.rows), this.#matrix.dims, { rows });
  }

  #candidates(q: CheckedQuery, now: number): ItemRecord[] {
    const idx = this.#index;
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
      if (r.expiresAt !== null && r.expiresAt <= now) continue;
      if (filter && !filter(r.metadata)) continue;
      out.push(r);
    }
    return out;
  }

  #checkQuery(query: MemoryQuery): CheckedQuery {
    if (query === null || typeof query !== 'object') throw v.typeError('query', 'a MemoryQuery object', query);
    const o = v.options<MemoryQuery>('query', query, QUERY_KEYS);
    const q: CheckedQuery = { topK: o.topK === undefined ? 10 : v.integer('query.topK', o.topK, 1), maxTokens: o.maxTokens === undefined ? Infinity : v.integer('query.maxTokens', o.maxTokens, 0) };
    if (o.queryText !== undefined) {
      v.string('query.queryText', o.queryText);
      if (o.queryText.trim() !== '') q.queryText = o.queryText;
    }
    if (o.memoryTypes !== undefined) {
      if (!Array.isArray(o.memoryTypes)) throw v.typeError('query.memoryTypes', 'array of MemoryType', o.memoryTypes);
      const types = [...new Set(o.memoryTypes.map((t: unknown, i) => v.oneOf(`query.memoryTypes[${i}]`, t, TYPES)))].sort();
      if (types.length > 0) q.memoryTypes = types; // an empty list filters nothing, as an absent one
    }
    if (o.tags !== undefined) {
      const tags = checkTags('query.tags', o.tags).sort();
      if (tags.length > 0) q.tags = tags;
    }
    q.tagMode = o.tagMode === undefined ? 'any' : v.oneOf('query.tagMode', o.tagMode, ['any', 'all'] as const);
    if (o.minPriority !== undefined) q.minPriority = checkPriority('query.minPriority', o.minPriority);
    if (o.timeRange !== undefined) {
      const t = v.options<{ from?: number; to?: number }>('query.timeRange', o.timeRange, ['from', 'to']);
      q.timeRange = {};
      if (t.from !== undefined) q.timeRange.from = v.finite('query.timeRange.from', t.from);
      if (t.to !== undefined) q.timeRange.to = v.finite('query.timeRange.to', t.to);
    }
    if (o.scope !== undefined) q.scope = checkScope('query.scope', o.scope);
    if (o.filter !== undefined) {
      // Compiled (and so validated) here, even for a query the cache will answer.
      q.matches = compileFilter(o.filter, 'query.filter');
      q.filter = o.filter;
    }
    return q;
  }

  #view(r: ItemRecord, content?: string): MemoryItem {
    const scope: MemoryScope = {};
    if (r.userId !== null) scope.userId = r.userId;
    if (r.agentId !== null) scope.agentId = r.agentId;
    if (r.sessionId !== null) scope.sessionId = r.sessionId;
    return {
      id: r.id, content: content ?? this.#content(r.seq), type: r.type, priority: r.priority, importance: r.importance,
      tags: [...r.tags], metadata: structuredClone(r.metadata), scope, createdAt: r.createdAt, updatedAt: r.updatedAt,
      lastAccessed: r.lastAccessed, accessCount: r.accessCount, expiresAt: r.expiresAt, pinned: r.pinned, tokens: r.tokens,
    };
  }

  #content(seq: number): string {
    const loc = this.#sql.location.get(seq);
    if (loc === undefined) throw new Error(`MemAgent: item ${seq} has no row`);
    return this.#pages.read({ seq, bytes: loc.bytes, text: loc.text, pageId: loc.page_id, offset: loc.page_offset });
  }

  #checkDimensions(where: string): void {
    const dims = String(this.#embedder.dimensions);
    const stored = this.#db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'embedding_dimensions'").get()?.value;
    if (stored === undefined) this.#db.prepare("INSERT INTO meta (key, value) VALUES ('embedding_dimensions', ?)").run(dims);
    else if (stored !== dims) {
      throw new Error(`MemAgent: ${where} holds ${stored}-dimensional embeddings but the embedder makes ${dims}: open it with the embedder it was filled with`);
    }
  }

  #load(): void {
    for (const r of this.#sql.all.iterate()) {
      const codes = new Int8Array(r.embedding.buffer, r.embedding.byteOffset, r.embedding.byteLength);
      const row = this.#matrix.add(codes, r.embedding_scale);
      this.#index.add({
        seq: r.seq, id: r.id, type: r.type, priority: r.priority, importance: r.importance, tags: JSON.parse(r.tags) as string[],
        metadata: JSON.parse(r.metadata) as Record<string, MetadataValue>, userId: r.user_id, agentId: r.agent_id, sessionId: r.session_id,
        createdAt: r.created_at, updatedAt: r.updated_at, lastAccessed: r.last_accessed, accessCount: r.access_count,
        expiresAt: r.expires_at, pinned: r.pinned === 1, hash: r.content_hash, tokens: r.tokens, bytes: r.bytes, row,
      });
      this.#bm25.add(r.seq, this.#content(r.seq));
    }
  }

  #statements() {
    const db = this.#db;
    return {
      all: db.prepare<[], Row>('SELECT * FROM items WHERE deleted_at IS NULL ORDER BY seq'),
      insert: db.prepare(
        `INSERT INTO items (id, type, priority, importance, tags, metadata, user_id, agent_id, session_id, created_at, updated_at,
          last_accessed, access_count, expires_at, pinned, content_hash, tokens, bytes, text, embedding, embedding_scale)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      update: db.prepare(
        `UPDATE items SET type = ?, priority = ?, importance = ?, tags = ?, metadata = ?, updated_at = ?, last_accessed = ?,
          expires_at = ?, pinned = ?, content_hash = ? WHERE seq = ?`,
      ),
      replaceText: db.prepare(
        'UPDATE items SET tokens = ?, bytes = ?, text = ?, page_id = NULL, page_offset = NULL, embedding = ?, embedding_scale = ? WHERE seq = ?',
      ),
      location: db.prepare<[number], { bytes: number; text: Buffer | null; page_id: number | null; page_offset: number | null }>(
        'SELECT bytes, text, page_id, page_offset FROM items WHERE seq = ?',
      ),
      touch: db.prepare<[number, number]>('UPDATE items SET last_accessed = ?, access_count = access_count + 1 WHERE seq = ?'),
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
}

type Fields = Pick<ItemRecord, 'type' | 'priority' | 'importance' | 'tags' | 'metadata' | 'pinned' | 'userId' | 'agentId' | 'sessionId' | 'expiresAt'>;

interface CheckedQuery {
  queryText?: string;
  memoryTypes?: MemoryType[];
  tags?: string[];
  tagMode?: 'any' | 'all';
  minPriority?: MemoryPriority;
  timeRange?: { from?: number; to?: number };
  scope?: MemoryScope;
  filter?: MetadataFilter;
  /** The compiled filter; a function, so JSON.stringify (the cache key) leaves it out. */
  matches?: (metadata: Readonly<Record<string, MetadataValue>>) => boolean;
  topK: number;
  maxTokens: number;
}

/** Exact-duplicate key: the normalised text within its scope. */
function contentHash(content: string, f: Pick<ItemRecord, 'userId' | 'agentId' | 'sessionId'>): string {
  const text = content.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
  return createHash('sha256').update(JSON.stringify([f.userId, f.agentId, f.sessionId, text])).digest('hex');
}

function normalize(x: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  if (s === 0) return x;
  const inv = 1 / Math.sqrt(s);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! * inv;
  return out;
}

function checkVector(vec: unknown, dims: number): Float32Array {
  if (!(vec instanceof Float32Array) || vec.length !== dims) throw v.typeError('embedder.embed() result', `Float32Array of length ${dims}`, vec);
  for (let i = 0; i < vec.length; i++) if (!Number.isFinite(vec[i])) throw v.rangeError(`embedder.embed() result[${i}]`, 'finite number', vec[i]);
  return vec;
}

// A lone surrogate would be stored as U+FFFD: the text would not come back as given.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkContent(name: string, content: unknown): string {
  v.nonEmptyString(name, content);
  const text = content as string;
  if (text.trim() === '') throw v.rangeError(name, 'text with a non-space character', text);
  if (LONE_SURROGATE.test(text)) throw v.rangeError(name, 'well-formed UTF-16 text (no lone surrogates)', text);
  return text;
}

function checkPriority(name: string, p: unknown): MemoryPriority {
  if (typeof p !== 'number' || !PRIORITIES.includes(p)) throw (typeof p === 'number' ? v.rangeError : v.typeError)(name, 'MemoryPriority (0 LOW, 1 MEDIUM, 2 HIGH, 3 CRITICAL)', p);
  return p as MemoryPriority;
}

function checkUnit(name: string, x: unknown): number {
  const n = v.finite(name, x, { min: 0 });
  if (n > 1) throw v.rangeError(name, 'finite number in [0, 1]', n);
  return n;
}

function checkTags(name: string, tags: unknown): string[] {
  if (!Array.isArray(tags)) throw v.typeError(name, 'array of non-empty strings', tags);
  return [...new Set(tags.map((t: unknown, i) => v.nonEmptyString(`${name}[${i}]`, t)))];
}

function checkScope(name: string, scope: unknown): MemoryScope {
  const s = v.options<MemoryScope>(name, scope, SCOPE_KEYS);
  const out: MemoryScope = {};
  for (const k of SCOPE_KEYS) if (s[k] !== undefined) out[k] = v.nonEmptyString(`${name}.${k}`, s[k]);
  return out;
}

function checkMetadata(name: string, m: unknown): Record<string, MetadataValue> {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw v.typeError(name, 'an object of JSON scalars and arrays of them', m);
  // No prototype: a field named `__proto__` is an ordinary key, stored like any other.
  const out = dict<MetadataValue>();
  for (const [k, x] of Object.entries(m)) {
    const scalar = (y: unknown) => y === null || typeof y === 'string' || typeof y === 'boolean' || (typeof y === 'number' && Number.isFinite(y));
    if (!(scalar(x) || (Array.isArray(x) && x.every(scalar)))) throw v.typeError(`${name}.${k}`, 'JSON scalar or array of JSON scalars', x);
    out[k] = Array.isArray(x) ? [...x] : (x as MetadataValue);
  }
  return out;
}
