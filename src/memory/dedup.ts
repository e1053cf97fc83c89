/**
 * Deduplication: the exact-duplicate key (normalised text within its scope), the near
 * duplicate by embedding similarity, and how a duplicate folds into the item it repeats.
 * @module
 */
import { createHash } from 'node:crypto';
import { type EmbeddingMatrix, type ItemFields, type ItemRecord, isLive } from './item-index';
import type { MemoryPriority } from './types';

type Scope = Pick<ItemRecord, 'userId' | 'agentId' | 'sessionId'>;

/**
 * Exact-duplicate key: SHA-256 of the scope and the text after Unicode NFKC, lower case and
 * collapsed white space. Stored in each row (`content_hash`): changing it changes the format.
 * @internal
 */
export function contentHash(content: string, scope: Scope): string {
  const text = content.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
  return createHash('sha256').update(JSON.stringify([scope.userId, scope.agentId, scope.sessionId, text])).digest('hex');
}

/**
 * The oldest (lowest seq) unexpired item of a set, such as one exact-duplicate group.
 * @internal
 */
export function oldestLive(seqs: Iterable<number> | undefined, items: ReadonlyMap<number, ItemRecord>, now: number): number | undefined {
  let best: number | undefined;
  for (const seq of seqs ?? []) {
    if (isLive(items.get(seq)!, now) && (best === undefined || seq < best)) best = seq;
  }
  return best;
}

/**
 * The unexpired item of the same scope most similar to a new embedding (quantised, unit
 * length), when its cosine reaches `threshold`; the first such item wins ties.
 * @internal
 */
export function nearDuplicate(
  embedding: { codes: Int8Array; scale: number },
  scope: Scope,
  items: Iterable<ItemRecord>,
  matrix: EmbeddingMatrix,
  threshold: number,
  now: number,
): number | undefined {
  if (threshold > 1) return undefined;
  const same: ItemRecord[] = [];
  for (const r of items) if (r.userId === scope.userId && r.agentId === scope.agentId && r.sessionId === scope.sessionId && isLive(r, now)) same.push(r);
  if (same.length === 0) return undefined;
  const s = matrix.scores(embedding.codes, embedding.scale, Int32Array.from(same, (r) => r.row));
  let best = -1;
  for (let i = 0; i < s.length; i++) if (s[i]! >= threshold && (best < 0 || s[i]! > s[best]!)) best = i;
  return best < 0 ? undefined : same[best]!.seq;
}

/**
 * The record of `old` after a duplicate with fields `f` folds into it at `now`: the higher
 * priority and importance, tags united (old ones first), metadata merged (new values win),
 * the later expiry (none if either has none), pinned if either is. `hash` is the new text's
 * key when a near duplicate replaces the text.
 * @internal
 */
export function mergeRecord(old: ItemRecord, f: ItemFields, now: number, hash: string | undefined): ItemRecord {
  return {
    ...old,
    priority: Math.max(old.priority, f.priority) as MemoryPriority,
    importance: Math.max(old.importance, f.importance),
    tags: [...new Set([...old.tags, ...f.tags])],
    metadata: { ...old.metadata, ...f.metadata },
    expiresAt: old.expiresAt === null || f.expiresAt === null ? null : Math.max(old.expiresAt, f.expiresAt),
    pinned: old.pinned || f.pinned,
    updatedAt: now,
    lastAccessed: now,
    hash: hash ?? old.hash,
  };
}
