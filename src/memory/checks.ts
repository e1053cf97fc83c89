/**
 * Argument checks of {@link MemAgent}: its options, storeMemory's arguments, updates and
 * queries. Each check runs in the order the arguments are given, so the first bad one is the
 * one named, and returns the normalised value the store works with.
 * @module
 */
import { dict } from '../dict';
import { HashedEmbedder, type Embedder } from '../text/index';
import * as v from '../validate';
import { compileFilter } from './filter';
import type { ItemFields } from './item-index';
import type { MemAgentOptions, MemoryQuery, MemoryUpdate, StoreOptions } from './mem-agent-types';
import type { Compression } from './pages';
import { DEFAULT_WEIGHTS, type RankingWeights } from './retrieval';
import { type MemoryScope, MemoryPriority, type MemoryTokenizer, MemoryType, type MetadataFilter, type MetadataValue } from './types';

const OPTION_KEYS = [
  'maxTokens', 'path', 'compression', 'tokenizer', 'embedder', 'dedupThreshold', 'weights', 'recencyDecay',
  'queryCacheSize', 'sweepIntervalMs', 'retainDeletedMs', 'synchronous', 'clock', 'readonly', 'onCorrupt',
] as const;
const STORE_KEYS = ['metadata', 'scope', 'importance', 'expiresAt', 'ttl', 'pinned'] as const;
const UPDATE_KEYS = ['content', 'type', 'priority', 'tags', 'metadata', 'importance', 'expiresAt', 'pinned'] as const;
const QUERY_KEYS = ['queryText', 'memoryTypes', 'tags', 'tagMode', 'minPriority', 'timeRange', 'scope', 'filter', 'topK', 'maxTokens'] as const;
/** @internal */
export const SCOPE_KEYS = ['userId', 'agentId', 'sessionId'] as const;
/** @internal */
export const TYPES = Object.values(MemoryType);
/** @internal */
export const PRIORITIES = [MemoryPriority.LOW, MemoryPriority.MEDIUM, MemoryPriority.HIGH, MemoryPriority.CRITICAL];

/**
 * {@link MemAgentOptions} checked, with every default filled in.
 * @internal
 */
export interface MemAgentConfig {
  maxTokens: number;
  path: string | undefined;
  codec: Compression;
  tokenizer: MemoryTokenizer | undefined;
  embedder: Embedder;
  dedupThreshold: number;
  weights: RankingWeights;
  recencyDecay: number;
  queryCacheSize: number;
  sweepIntervalMs: number;
  retainDeletedMs: number;
  synchronous: 'normal' | 'full';
  clock: () => number;
  readonly: boolean;
  onCorrupt: 'error' | 'skip';
}

/** @internal */
export function checkOptions(options: unknown): MemAgentConfig {
  const o = v.options<MemAgentOptions>('options', options, OPTION_KEYS);
  const maxTokens = o.maxTokens === undefined ? 512_000 : v.integer('options.maxTokens', o.maxTokens, 1);
  const path = o.path === undefined ? undefined : v.nonEmptyString('options.path', o.path);
  const codec = o.compression === undefined ? 'lz4' : v.oneOf('options.compression', o.compression, ['lz4', 'gzip', 'none'] as const);
  if (o.tokenizer !== undefined && typeof (o.tokenizer as MemoryTokenizer | null)?.countTokens !== 'function') {
    throw v.typeError('options.tokenizer', 'an object with a countTokens method', o.tokenizer);
  }
  if (o.embedder !== undefined) {
    const e = o.embedder as Embedder | null;
    if (typeof e?.embed !== 'function') throw v.typeError('options.embedder', 'an Embedder (dimensions and an embed method)', o.embedder);
    v.integer('options.embedder.dimensions', e.dimensions, 1, 4096);
  }
  const embedder = o.embedder ?? new HashedEmbedder();
  const dedupThreshold = o.dedupThreshold === undefined ? 0.95 : v.finite('options.dedupThreshold', o.dedupThreshold, { positive: true });
  const weights = { ...DEFAULT_WEIGHTS };
  if (o.weights !== undefined) {
    const w = v.options<RankingWeights>('options.weights', o.weights, Object.keys(DEFAULT_WEIGHTS));
    for (const k of Object.keys(w) as Array<keyof RankingWeights>) weights[k] = v.finite(`options.weights.${k}`, w[k], { min: 0 });
  }
  const recencyDecay = o.recencyDecay === undefined ? 0.99 : v.finite('options.recencyDecay', o.recencyDecay, { positive: true });
  if (recencyDecay > 1) throw v.rangeError('options.recencyDecay', 'finite number in (0, 1]', recencyDecay);
  const readonly = o.readonly === undefined ? false : v.boolean('options.readonly', o.readonly);
  if (readonly && path === undefined) throw new TypeError('Expected options.path with options.readonly (an in-memory MemAgent has nothing to read) but received no path');
  return {
    maxTokens, path, codec, tokenizer: o.tokenizer, embedder, dedupThreshold, weights, recencyDecay,
    queryCacheSize: o.queryCacheSize === undefined ? 256 : v.integer('options.queryCacheSize', o.queryCacheSize, 0),
    sweepIntervalMs: o.sweepIntervalMs === undefined ? 60_000 : v.integer('options.sweepIntervalMs', o.sweepIntervalMs, 0, 2 ** 31 - 1),
    retainDeletedMs: o.retainDeletedMs === undefined ? 86_400_000 : v.integer('options.retainDeletedMs', o.retainDeletedMs, 0),
    synchronous: o.synchronous === undefined ? 'normal' : v.oneOf('options.synchronous', o.synchronous, ['normal', 'full'] as const),
    clock: o.clock === undefined ? Date.now : (v.optionalFunction<() => number>('options.clock', o.clock) as () => number),
    readonly,
    onCorrupt: o.onCorrupt === undefined ? 'error' : v.oneOf('options.onCorrupt', o.onCorrupt, ['error', 'skip'] as const),
  };
}

/**
 * storeMemory's arguments checked: the item's fields but its expiry, which depends on the
 * time of the write (see {@link storedFields}).
 * @internal
 */
export interface StoreRequest {
  content: string;
  fields: Omit<ItemFields, 'expiresAt'>;
  expiresAt: number | undefined;
  ttl: number | undefined;
}

/** @internal */
export function checkStore(content: unknown, type: unknown, priority: unknown, tags: unknown, options: unknown): StoreRequest {
  checkContent('content', content);
  v.oneOf('type', type, TYPES);
  checkPriority('priority', priority);
  const tagList = checkTags('tags', tags);
  const o = v.options<StoreOptions>('options', options, STORE_KEYS);
  const metadata = o.metadata === undefined ? {} : checkMetadata('options.metadata', o.metadata);
  const scope = o.scope === undefined ? {} : checkScope('options.scope', o.scope);
  const importance = o.importance === undefined ? 0.5 : v.unitInterval('options.importance', o.importance);
  if (o.expiresAt !== undefined && o.ttl !== undefined) throw new TypeError('Expected only one of options.expiresAt and options.ttl but received both');
  const expiresAt = o.expiresAt !== undefined ? v.integer('options.expiresAt', o.expiresAt, 0) : undefined;
  const ttl = o.ttl !== undefined ? v.integer('options.ttl', o.ttl, 1) : undefined;
  const pinned = o.pinned === undefined ? false : v.boolean('options.pinned', o.pinned);
  return {
    content: content as string,
    fields: {
      type: type as MemoryType, priority: priority as MemoryPriority, importance, tags: tagList, metadata, pinned,
      userId: scope.userId ?? null, agentId: scope.agentId ?? null, sessionId: scope.sessionId ?? null,
    },
    expiresAt,
    ttl,
  };
}

/**
 * The fields of a store request written at `now`: a `ttl` counts from then.
 * @internal
 */
export function storedFields(req: StoreRequest, now: number): ItemFields {
  const f = req.fields;
  // Spelt out, not spread: this runs on every store, and a literal is several times cheaper.
  return {
    type: f.type, priority: f.priority, importance: f.importance, tags: f.tags, metadata: f.metadata, pinned: f.pinned,
    userId: f.userId, agentId: f.agentId, sessionId: f.sessionId, expiresAt: req.expiresAt ?? (req.ttl !== undefined ? now + req.ttl : null),
  };
}

/** @internal */
export function checkUpdate(update: unknown): MemoryUpdate {
  const u = v.options<MemoryUpdate>('update', update, UPDATE_KEYS);
  if (u.content !== undefined) checkContent('update.content', u.content);
  if (u.type !== undefined) v.oneOf('update.type', u.type, TYPES);
  if (u.priority !== undefined) checkPriority('update.priority', u.priority);
  const out: MemoryUpdate = { ...u };
  if (u.tags !== undefined) out.tags = checkTags('update.tags', u.tags);
  if (u.metadata !== undefined) out.metadata = checkMetadata('update.metadata', u.metadata);
  if (u.importance !== undefined) v.unitInterval('update.importance', u.importance);
  if (u.expiresAt !== undefined && u.expiresAt !== null) v.integer('update.expiresAt', u.expiresAt, 0);
  if (u.pinned !== undefined) v.boolean('update.pinned', u.pinned);
  return out;
}

/**
 * A {@link MemoryQuery} checked and normalised; its JSON is the query cache's key.
 * @internal
 */
export interface CheckedQuery {
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

/** @internal */
export function checkQuery(query: unknown): CheckedQuery {
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

/**
 * An embedder's output: a Float32Array of `dims` finite numbers.
 * @internal
 */
export function checkVector(vec: unknown, dims: number): Float32Array {
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
