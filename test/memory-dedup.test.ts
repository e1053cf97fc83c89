import { describe, expect, it } from 'vitest';
import { contentHash, mergeRecord, nearDuplicate, oldestLive } from '../src/memory/dedup';
import { EmbeddingMatrix, type ItemFields, type ItemRecord } from '../src/memory/item-index';
import { quantizeUnit } from '../src/memory/search';
import { MemoryPriority, MemoryType } from '../src/memory/types';

const T = Date.UTC(2026, 0, 1);
const none = { userId: null, agentId: null, sessionId: null };

function rec(seq: number, o: Partial<ItemRecord> = {}): ItemRecord {
  return {
    seq, id: `id${seq}`, type: MemoryType.SEMANTIC, priority: MemoryPriority.LOW, importance: 0.5, tags: [], metadata: {}, ...none,
    createdAt: T, updatedAt: T, lastAccessed: T, accessCount: 0, expiresAt: null, pinned: false, hash: `h${seq}`, tokens: 1, bytes: 1, row: seq, ...o,
  };
}

describe('contentHash', () => {
  it('is SHA-256 of the scope and the normalised text (values stored in every row)', () => {
    expect(contentHash('  The USER\tlikes   tea \n', none)).toBe('82718a69030344e03683574608dea7061d57831ce44267c8513a7884894beaed');
    // NFKC folds the ligature ﬁ into f + i.
    expect(contentHash('FILE ﬁ', { userId: 'u1', agentId: null, sessionId: 's1' })).toBe('3e3d91e0d87f26f38c54be4c11da8b8472c5031d874e384269abc76e2ceee391');
    expect(contentHash('tea', { ...none, agentId: 'a' })).not.toBe(contentHash('tea', none));
  });
});

describe('oldestLive', () => {
  it('picks the lowest seq that has not expired', () => {
    const items = new Map([[3, rec(3)], [1, rec(1, { expiresAt: T })], [2, rec(2, { expiresAt: T + 1 })]]);
    expect(oldestLive([3, 1, 2], items, T)).toBe(2);
    expect(oldestLive([3, 1, 2], items, T + 1)).toBe(3);
    expect(oldestLive([1], items, T)).toBeUndefined();
    expect(oldestLive(undefined, items, T)).toBeUndefined();
  });
});

describe('nearDuplicate', () => {
  const matrix = new EmbeddingMatrix(4);
  const put = (v: number[]) => {
    const { codes, scale } = quantizeUnit(Float32Array.from(v));
    return matrix.add(codes, scale);
  };
  const items = [
    rec(1, { row: put([1, 0, 0, 0]) }),
    rec(2, { row: put([0.8, 0.6, 0, 0]) }),
    rec(3, { row: put([1, 0, 0, 0]), userId: 'u1' }),
    rec(4, { row: put([1, 0.01, 0, 0]), expiresAt: T }),
  ];
  const query = quantizeUnit(Float32Array.of(2, 0, 0, 0));

  it('finds the most similar unexpired item of the same scope at or above the threshold', () => {
    expect(nearDuplicate(query, none, items, matrix, 0.95, T)).toBe(1);
    expect(nearDuplicate(query, { ...none, userId: 'u1' }, items, matrix, 0.95, T)).toBe(3);
    expect(nearDuplicate(quantizeUnit(Float32Array.of(0.8, 0.6, 0, 0)), none, items, matrix, 0.99, T)).toBe(2);
    expect(nearDuplicate(quantizeUnit(Float32Array.of(0, 0, 1, 0)), none, items, matrix, 0.5, T)).toBeUndefined();
    expect(nearDuplicate(query, { ...none, sessionId: 's' }, items, matrix, 0.5, T)).toBeUndefined();
  });

  it('is off above 1', () => {
    expect(nearDuplicate(query, none, items, matrix, 1.01, T)).toBeUndefined();
  });
});

describe('mergeRecord', () => {
  it('keeps the higher priority and importance, unites tags, merges metadata, keeps the later expiry', () => {
    const old = rec(1, { priority: MemoryPriority.HIGH, importance: 0.2, tags: ['a', 'b'], metadata: { x: 1, y: 1 }, expiresAt: T + 10 });
    const f: ItemFields = {
      type: MemoryType.EPISODIC, priority: MemoryPriority.MEDIUM, importance: 0.9, tags: ['b', 'c'], metadata: { y: 2 }, pinned: true, ...none, expiresAt: T + 5,
    };
    expect(mergeRecord(old, f, T + 1, undefined)).toEqual({
      ...old, priority: MemoryPriority.HIGH, importance: 0.9, tags: ['a', 'b', 'c'], metadata: { x: 1, y: 2 }, expiresAt: T + 10, pinned: true, updatedAt: T + 1, lastAccessed: T + 1,
    });
    expect(mergeRecord(old, { ...f, expiresAt: null }, T + 1, 'new').expiresAt).toBeNull();
    expect(mergeRecord(old, f, T + 1, 'new').hash).toBe('new');
    expect(old.tags).toEqual(['a', 'b']); // the old record is not changed
  });
});
