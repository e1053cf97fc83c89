import { describe, expect, it } from 'vitest';
import { checkQuery } from '../src/memory/checks';
import { EmbeddingMatrix, ItemIndex, type ItemRecord } from '../src/memory/item-index';
import { DEFAULT_WEIGHTS } from '../src/memory/retrieval';
import { candidates, type Hit, QueryCache, quantizeUnit, search } from '../src/memory/search';
import { MemoryPriority, MemoryType } from '../src/memory/types';
import { Bm25Index, dequantizeInt8 } from '../src/text/index';

const T = Date.UTC(2026, 0, 1);

function rec(seq: number, o: Partial<ItemRecord> = {}): ItemRecord {
  return {
    seq, id: `id${seq}`, type: MemoryType.SEMANTIC, priority: MemoryPriority.LOW, importance: 0.5, tags: [], metadata: {}, userId: null, agentId: null,
    sessionId: null, createdAt: T + seq, updatedAt: T, lastAccessed: T, accessCount: 0, expiresAt: null, pinned: false, hash: `h${seq}`, tokens: 1, bytes: 1, row: 0, ...o,
  };
}

describe('quantizeUnit', () => {
  it('quantises the unit vector; a zero vector stays zero', () => {
    const q = quantizeUnit(Float32Array.of(3, 4));
    const back = dequantizeInt8(q.codes, q.scale);
    expect(back[0]).toBeCloseTo(0.6, 2);
    expect(back[1]).toBeCloseTo(0.8, 2);
    expect([...dequantizeInt8(quantizeUnit(new Float32Array(3)).codes, 0)]).toEqual([0, 0, 0]);
  });
});

describe('candidates', () => {
  const idx = new ItemIndex();
  idx.add(rec(1, { type: MemoryType.EPISODIC, tags: ['a'], priority: MemoryPriority.HIGH, userId: 'u1', metadata: { lang: 'en' } }));
  idx.add(rec(2, { tags: ['a', 'b'], priority: MemoryPriority.CRITICAL, metadata: { lang: 'es' } }));
  idx.add(rec(3, { tags: ['b'], userId: 'u1', sessionId: 's1' }));
  idx.add(rec(4, { tags: ['a'], expiresAt: T }));
  const seqs = (q: object, now = T) => candidates(idx, checkQuery(q), now).map((r) => r.seq);

  it('intersects the structured filters and drops expired items', () => {
    expect(seqs({})).toEqual([1, 2, 3]);
    expect(seqs({}, T - 1)).toEqual([1, 2, 3, 4]);
    expect(seqs({ tags: ['a'] })).toEqual([1, 2]);
    expect(seqs({ tags: ['a', 'b'], tagMode: 'all' })).toEqual([2]);
    expect(seqs({ tags: ['a', 'b'] })).toEqual([1, 2, 3]);
    expect(seqs({ memoryTypes: [MemoryType.EPISODIC] })).toEqual([1]);
    expect(seqs({ minPriority: MemoryPriority.HIGH })).toEqual([1, 2]);
    expect(seqs({ scope: { userId: 'u1' } })).toEqual([1, 3]);
    expect(seqs({ scope: { userId: 'u1', sessionId: 's1' }, tags: ['b'] })).toEqual([3]);
    expect(seqs({ timeRange: { from: T + 2, to: T + 3 } })).toEqual([2, 3]);
    expect(seqs({ filter: { lang: 'es' } })).toEqual([2]);
    expect(seqs({ tags: ['missing'] })).toEqual([]);
  });
});

describe('search', () => {
  it('ranks candidates by BM25 and cosine and packs them', () => {
    const index = new ItemIndex();
    const bm25 = new Bm25Index();
    const matrix = new EmbeddingMatrix(2);
    const texts = ['capybaras swim well', 'rivers are wet', 'capybaras eat grass'];
    const vectors = [[1, 0], [0, 1], [0.8, 0.6]];
    texts.forEach((t, i) => {
      const { codes, scale } = quantizeUnit(Float32Array.from(vectors[i]!));
      index.add(rec(i + 1, { row: matrix.add(codes, scale), tokens: 2 }));
      bm25.add(i + 1, t);
    });
    const ctx = { index, bm25, matrix, weights: { ...DEFAULT_WEIGHTS, recency: 0, importance: 0 }, recencyDecay: 0.99 };
    const r = search(ctx, checkQuery({ queryText: 'capybaras swim' }), Float32Array.of(1, 0), T);
    expect(r.candidates).toBe(3);
    expect(r.hits.map((h) => h.seq)).toEqual([1, 3, 2]);
    expect(r.hits[0]!.explain.bm25.normalized).toBe(1);
    expect(r.hits[1]!.explain.vector.raw).toBeCloseTo(0.8, 2);
    expect(r.hits[2]!.explain.total).toBeCloseTo(0, 2);
    expect(search(ctx, checkQuery({ queryText: 'capybaras', maxTokens: 3 }), Float32Array.of(1, 0), T).hits).toHaveLength(1);
    expect(search(ctx, checkQuery({ queryText: 'x', tags: ['none'] }), Float32Array.of(1, 0), T)).toEqual({ hits: [], candidates: 0 });
  });
});

describe('QueryCache', () => {
  const entry = (...seqs: number[]) => ({ hits: seqs.map((seq): Hit => ({ seq, explain: {} as Hit['explain'] })), candidates: seqs.length });
  const fresh = () => true;

  it('keeps the most recently used entries', () => {
    const c = new QueryCache(2);
    c.set('a', entry(1));
    c.set('b', entry(2));
    expect(c.get('a', fresh)).toEqual(entry(1)); // a is now the most recent
    c.set('c', entry(3));
    expect(c.get('b', fresh)).toBeUndefined();
    expect(c.get('a', fresh)).toEqual(entry(1));
    expect(c.get('c', fresh)).toEqual(entry(3));
    c.clear();
    expect(c.get('a', fresh)).toBeUndefined();
  });

  it('misses an entry holding an item that is no longer fresh, and remembers nothing at capacity 0', () => {
    const c = new QueryCache(4);
    c.set('a', entry(1, 2));
    expect(c.get('a', (seq) => seq !== 2)).toBeUndefined();
    expect(c.get('a', fresh)).toEqual(entry(1, 2));
    const off = new QueryCache(0);
    off.set('a', entry(1));
    expect(off.get('a', fresh)).toBeUndefined();
  });
});
