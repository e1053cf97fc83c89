import { describe, expect, it } from 'vitest';
import { contentHash, mergeRecord, nearDuplicate, oldestLive } from '../src/memory/dedup';
import { EmbeddingMatrix, type ItemFields, type ItemRecord } from '../src/memory/item-index';
import { quantizeUnit } from '../src/memory/search';
import { MemoryPriority, MemoryType } from '../src/memory/types';
import { describeBackends } from './support/postgres-server';

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

// Deduplication through MemAgent on each store: the content hash is what the row holds, and after
// a reopen the hash index and the embedding matrix, rebuilt from the SQLite file or PostgreSQL,
// merge exactly as in the process that stored the items.
describeBackends('MemAgent: deduplication through the store', (backend) => {
  it('stores the content hash, and after a reopen merges exact and near duplicates of the same scope only', async () => {
    const c = { now: T };
    // Every other text gets a direction of its own (cosine 0 with the rest).
    const vectors = new Map<string, number[]>([
      ['the meeting is on monday', [1, 0.05]],
      ['the meeting moved to tuesday', [0.99, 0.191]], // cosine 0.99 with the first
    ]);
    const vectorOf = (t: string) => {
      const key = t.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
      if (!vectors.has(key)) vectors.set(key, [...new Array<number>(vectors.size + 1).fill(0), 1]);
      return Float32Array.from({ length: 32 }, (_, i) => vectors.get(key)![i] ?? 0);
    };
    const embedder = { dimensions: 32, embed: (texts: string[]) => texts.map(vectorOf) };
    const o = { sweepIntervalMs: 0, embedder, clock: () => c.now, dedupThreshold: 0.95 };
    const w = await backend.open(o, 'dedup');
    const tea = await w.storeMemory('  The USER\tlikes   tea \n', MemoryType.SEMANTIC, MemoryPriority.LOW, ['prefs'], { metadata: { a: 1 }, importance: 0.2, ttl: 10_000 });
    const file = await w.storeMemory('FILE ﬁ', MemoryType.SEMANTIC, MemoryPriority.LOW, [], { scope: { userId: 'u1', sessionId: 's1' } });
    const meeting = await w.storeMemory('the meeting is on monday', MemoryType.EPISODIC, MemoryPriority.MEDIUM, []);
    const fleeting = await w.storeMemory('gone soon', MemoryType.WORKING, MemoryPriority.LOW, [], { ttl: 5 });
    const a = await w.storeMemory('same words', MemoryType.SEMANTIC, MemoryPriority.LOW, ['a']);
    const b = await w.storeMemory('other words', MemoryType.SEMANTIC, MemoryPriority.LOW, ['b']);
    await w.updateMemory(b, { content: 'same words' }); // two live items with one hash: the older one takes merges
    await w.close();
    const hashes = new Map((await backend.sql<{ id: string; content_hash: string }>('dedup', 'SELECT id, content_hash FROM {items}')).map((r) => [r.id, r.content_hash]));
    expect(hashes.get(tea)).toBe('82718a69030344e03683574608dea7061d57831ce44267c8513a7884894beaed');
    expect(hashes.get(file)).toBe('3e3d91e0d87f26f38c54be4c11da8b8472c5031d874e384269abc76e2ceee391');
    expect(hashes.get(a)).toBe(hashes.get(b));

    c.now += 1000;
    const m = await backend.open(o, 'dedup');
    expect(await m.storeMemory('the user likes TEA', MemoryType.EPISODIC, MemoryPriority.HIGH, ['drinks'], { metadata: { b: 2 }, importance: 0.9, ttl: 60_000 })).toBe(tea);
    expect(await m.storeMemory('the user likes tea', MemoryType.SEMANTIC, MemoryPriority.LOW, [], { scope: { agentId: 'a' } })).not.toBe(tea);
    expect(await m.storeMemory('file fi', MemoryType.SEMANTIC, MemoryPriority.LOW, [], { scope: { userId: 'u1', sessionId: 's1' } })).toBe(file); // NFKC
    expect(await m.storeMemory('file fi', MemoryType.SEMANTIC, MemoryPriority.LOW, [], { scope: { userId: 'u1' } })).not.toBe(file);
    expect(await m.storeMemory('The meeting moved to Tuesday', MemoryType.EPISODIC, MemoryPriority.LOW, [])).toBe(meeting);
    expect(await m.storeMemory('an unrelated note', MemoryType.EPISODIC, MemoryPriority.LOW, [])).not.toBe(meeting);
    expect(await m.storeMemory('Same Words', MemoryType.SEMANTIC, MemoryPriority.LOW, ['c'])).toBe(a);
    expect(await m.storeMemory('gone soon', MemoryType.WORKING, MemoryPriority.LOW, [])).not.toBe(fleeting); // expired: not merged
    await m.close();

    const again = await backend.open(o, 'dedup');
    expect(again.getMemory(tea)).toMatchObject({
      content: '  The USER\tlikes   tea \n', priority: MemoryPriority.HIGH, importance: 0.9, tags: ['prefs', 'drinks'], metadata: { a: 1, b: 2 }, expiresAt: T + 1000 + 60_000, updatedAt: T + 1000,
    });
    expect(again.getMemory(meeting)).toMatchObject({ content: 'The meeting moved to Tuesday', priority: MemoryPriority.MEDIUM });
    expect(again.getMemory(a)!.tags).toEqual(['a', 'c']);
    expect(again.getMemory(b)!.tags).toEqual(['b']);
    expect((await again.getHistory(meeting)).map((e) => [e.event, e.reason])).toEqual([['ADD', null], ['UPDATE', 'near-duplicate']]);
    expect((await again.getHistory(tea)).map((e) => [e.event, e.reason])).toEqual([['ADD', null], ['UPDATE', 'duplicate']]);
    expect(again.getMetrics().items).toBe(10);
    await again.close();
  });
});
