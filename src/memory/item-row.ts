/**
 * The item codec: one item has three shapes, and this is the only place that maps between
 * them. An {@link ItemRow} is a row of the `items` table; an {@link ItemRecord} is the
 * in-memory record the indexes hold (its embedding in a matrix row, its text in SQLite); a
 * {@link MemoryItem} is what the API returns, and its JSON is what the history table stores.
 * @module
 */
import type { ItemFields, ItemRecord } from './item-index';
import type { MemoryItem } from './mem-agent-types';
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
