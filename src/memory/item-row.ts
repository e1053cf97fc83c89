/**
 * The item codec: one item has three shapes, and this is the only place that maps between
 * them. An {@link ItemRow} is a row of the `items` table; an {@link ItemRecord} is the
 * in-memory record the indexes hold (its embedding in a matrix row, its text in SQLite); a
 * {@link MemoryItem} is what the API returns, and its JSON is what the history table stores.
 * @module
 */
import { PRIORITIES, TYPES } from './checks';
import { RowError } from './corruption';
import type { ItemFields, ItemRecord } from './item-index';
import type { MemoryItem } from './mem-agent-types';
import type { TextLocation } from './pages';
import type { MemoryPriority, MemoryScope, MemoryType, MetadataValue } from './types';

/**
 * The columns of an item's fields, named as in the `items` table.
 * @internal
 */
export interface ItemColumns {
  seq: number;
  id: string;
  type: MemoryType;
  priority: MemoryPriority;
  importance: number;
  /** JSON array. */
  tags: string;
  /** JSON object. */
  metadata: string;
  user_id: string | null;
  agent_id: string | null;
  session_id: string | null;
  created_at: number;
  updated_at: number;
  last_accessed: number;
  access_count: number;
  expires_at: number | null;
  /** 0 or 1. */
  pinned: number;
  content_hash: string;
  tokens: number;
  bytes: number;
}

/**
 * A live row of `items` as `SELECT *` returns it (text columns, read through the page store, left out).
 * @internal
 */
export interface ItemRow extends ItemColumns {
  /** int8 codes, one per dimension. */
  embedding: Buffer;
  embedding_scale: number;
}

/**
 * The row's columns of a record.
 * @internal
 */
export function toColumns(r: ItemRecord): ItemColumns {
  return {
    seq: r.seq, id: r.id, type: r.type, priority: r.priority, importance: r.importance, tags: JSON.stringify(r.tags),
    metadata: JSON.stringify(r.metadata), user_id: r.userId, agent_id: r.agentId, session_id: r.sessionId, created_at: r.createdAt,
    updated_at: r.updatedAt, last_accessed: r.lastAccessed, access_count: r.accessCount, expires_at: r.expiresAt,
    pinned: r.pinned ? 1 : 0, content_hash: r.hash, tokens: r.tokens, bytes: r.bytes,
  };
}

/**
 * The record of a row whose embedding went to matrix row `matrixRow`.
 * @internal
 */
export function fromRow(r: ItemColumns, matrixRow: number): ItemRecord {
  return {
    seq: r.seq, id: r.id, type: r.type, priority: r.priority, importance: r.importance, tags: JSON.parse(r.tags) as string[],
    metadata: JSON.parse(r.metadata) as Record<string, MetadataValue>, userId: r.user_id, agentId: r.agent_id, sessionId: r.session_id,
    createdAt: r.created_at, updatedAt: r.updated_at, lastAccessed: r.last_accessed, accessCount: r.access_count,
    expiresAt: r.expires_at, pinned: r.pinned === 1, hash: r.content_hash, tokens: r.tokens, bytes: r.bytes, row: matrixRow,
  };
}

/**
 * A row of `items` as read from the file, every column checked: the record (its matrix row
 * still unset, -1), its embedding and where its text is.
 * @internal
 */
export interface DecodedRow {
  record: ItemRecord;
  codes: Int8Array;
  scale: number;
  text: TextLocation;
}

/**
 * Checks and decodes a `SELECT *` row of `items` whose embeddings have `dims` dimensions.
 * @throws {@link RowError} naming the first column that does not hold what this version writes.
 * @internal
 */
export function decodeRow(r: Record<string, unknown>, dims: number): DecodedRow {
  const columns: ItemColumns = {
    seq: r['seq'] as number,
    id: check(r, 'id', 'a non-empty string', (x) => typeof x === 'string' && x !== ''),
    type: check(r, 'type', `one of ${TYPES.join(', ')}`, (x) => TYPES.includes(x as MemoryType)),
    priority: check(r, 'priority', 'an integer in [0, 3]', (x) => PRIORITIES.includes(x as MemoryPriority)),
    importance: check(r, 'importance', 'a number in [0, 1]', (x) => typeof x === 'number' && x >= 0 && x <= 1),
    tags: check(r, 'tags', 'a JSON array of non-empty strings', (x) => {
      const tags = json(x);
      return Array.isArray(tags) && tags.every((t) => typeof t === 'string' && t !== '');
    }),
    metadata: check(r, 'metadata', 'a JSON object of scalars and arrays of scalars', (x) => {
      const m = json(x);
      return m !== null && typeof m === 'object' && !Array.isArray(m) && Object.values(m).every((v) => scalar(v) || (Array.isArray(v) && v.every(scalar)));
    }),
    user_id: check(r, 'user_id', 'null or a non-empty string', nullOrName),
    agent_id: check(r, 'agent_id', 'null or a non-empty string', nullOrName),
    session_id: check(r, 'session_id', 'null or a non-empty string', nullOrName),
    created_at: check(r, 'created_at', 'a finite number', Number.isFinite),
    updated_at: check(r, 'updated_at', 'a finite number', Number.isFinite),
    last_accessed: check(r, 'last_accessed', 'a finite number', Number.isFinite),
    access_count: check(r, 'access_count', 'an integer >= 0', count),
    expires_at: check(r, 'expires_at', 'null or a finite number', (x) => x === null || Number.isFinite(x)),
    pinned: check(r, 'pinned', '0 or 1', (x) => x === 0 || x === 1),
    content_hash: check(r, 'content_hash', 'a non-empty string', (x) => typeof x === 'string' && x !== ''),
    tokens: check(r, 'tokens', 'an integer >= 0', count),
    bytes: check(r, 'bytes', 'an integer >= 0', count),
  };
  const embedding = check(r, 'embedding', `a blob of ${dims} bytes (one int8 per dimension)`, (x) => Buffer.isBuffer(x) && x.length === dims) as Buffer;
  const scale = check(r, 'embedding_scale', 'a finite number >= 0', (x) => Number.isFinite(x) && (x as number) >= 0) as number;
  const text = r['text'];
  let loc: TextLocation;
  if (text !== null) {
    if (!Buffer.isBuffer(text) || text.length !== columns.bytes) {
      const what = Buffer.isBuffer(text) ? `a blob of ${text.length} bytes` : `a ${typeof text}`;
      throw new RowError(`column text: expected a blob of ${columns.bytes} bytes (the item's bytes) but found ${what}`);
    }
    loc = { bytes: columns.bytes, text, pageId: null, offset: null };
  } else {
    const pageId = check(r, 'page_id', 'an integer >= 1 (the text is not in the row)', (x) => Number.isSafeInteger(x) && (x as number) >= 1) as number;
    const offset = check(r, 'page_offset', 'an integer >= 0', count) as number;
    loc = { bytes: columns.bytes, text: null, pageId, offset };
  }
  return { record: fromRow(columns, -1), codes: embeddingCodes(embedding), scale, text: loc };
}

// Each check reads its column once, and the record is built from what was checked.
function check<T>(r: Record<string, unknown>, column: string, expected: string, ok: (x: unknown) => boolean): T {
  const x = r[column];
  if (!ok(x)) throw new RowError(`column ${column}: expected ${expected} but found ${found(x)}`);
  return x as T;
}

function found(x: unknown): string {
  if (x === null || x === undefined) return String(x);
  if (Buffer.isBuffer(x)) return `a blob of ${x.length} bytes`;
  if (typeof x === 'string') return `'${x.length > 60 ? `${x.slice(0, 60)}…` : x}'`;
  if (typeof x === 'number' || typeof x === 'bigint') return String(x);
  return `a ${typeof x}`;
}

function json(x: unknown): unknown {
  if (typeof x !== 'string') return undefined;
  try {
    return JSON.parse(x) as unknown;
  } catch {
    return undefined;
  }
}

const scalar = (x: unknown) => x === null || typeof x === 'string' || typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x));
const nullOrName = (x: unknown) => x === null || (typeof x === 'string' && x !== '');
const count = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;

/**
 * The record of a new item stored at `now` (its seq and matrix row are set once known).
 * @internal
 */
export function newRecord(f: ItemFields, id: string, hash: string, tokens: number, bytes: number, now: number): ItemRecord {
  return {
    seq: 0, id, type: f.type, priority: f.priority, importance: f.importance, tags: f.tags, metadata: f.metadata, userId: f.userId,
    agentId: f.agentId, sessionId: f.sessionId, createdAt: now, updatedAt: now, lastAccessed: now, accessCount: 0, expiresAt: f.expiresAt,
    pinned: f.pinned, hash, tokens, bytes, row: -1,
  };
}

/**
 * int8 codes as stored in the `embedding` column (no copy).
 * @internal
 */
export function embeddingBlob(codes: Int8Array): Buffer {
  return Buffer.from(codes.buffer, codes.byteOffset, codes.byteLength);
}

/**
 * The `embedding` column as int8 codes (no copy).
 * @internal
 */
export function embeddingCodes(blob: Buffer): Int8Array {
  return new Int8Array(blob.buffer, blob.byteOffset, blob.byteLength);
}

/**
 * What the API returns for a record: a copy, so callers cannot reach the index. Its key order
 * is the key order of the history's JSON.
 * @internal
 */
export function toItem(r: ItemRecord, content: string): MemoryItem {
  const scope: MemoryScope = {};
  if (r.userId !== null) scope.userId = r.userId;
  if (r.agentId !== null) scope.agentId = r.agentId;
  if (r.sessionId !== null) scope.sessionId = r.sessionId;
  return {
    id: r.id, content, type: r.type, priority: r.priority, importance: r.importance,
    tags: [...r.tags], metadata: structuredClone(r.metadata), scope, createdAt: r.createdAt, updatedAt: r.updatedAt,
    lastAccessed: r.lastAccessed, accessCount: r.accessCount, expiresAt: r.expiresAt, pinned: r.pinned, tokens: r.tokens,
  };
}

/**
 * The fields that differ between two views of one item, before and after, as an UPDATE
 * event records them; `content` counts only when the text changed (it is last then).
 * @internal
 */
export function changedFields(before: MemoryItem, after: MemoryItem): { oldValue: Partial<MemoryItem>; newValue: Partial<MemoryItem> } {
  const changed = (Object.keys(after) as Array<keyof MemoryItem>).filter((k) => k !== 'content' && JSON.stringify(before[k]) !== JSON.stringify(after[k]));
  if (before.content !== after.content) changed.push('content');
  const pick = (x: MemoryItem) => Object.fromEntries(changed.map((k) => [k, x[k]])) as Partial<MemoryItem>;
  return { oldValue: pick(before), newValue: pick(after) };
}
