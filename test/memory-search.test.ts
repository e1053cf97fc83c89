import { describe, expect, it } from 'vitest';
import { checkQuery } from '../src/memory/checks';
import { EmbeddingMatrix, ItemIndex, type ItemRecord } from '../src/memory/item-index';
import { DEFAULT_WEIGHTS } from '../src/memory/retrieval';
import { candidates, type Hit, QueryCache, quantizeUnit, search } from '../src/memory/search';
import { MemoryPriority, MemoryType } from '../src/memory/types';
import { Bm25Index, dequantizeInt8 } from '../src/text/index';
import { describeBackends } from './support/postgres-server';
import { rng } from './support/random';

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

// Ranking through MemAgent on each store, after a reopen (texts, embeddings, priorities and
// access times read back from the SQLite file or PostgreSQL), against a reference computed here:
// cosine in float64 from the embedder's own vectors, recency and importance from the documented
// formulas, BM25 from a fresh index over the same texts.
describeBackends('MemAgent: ranking through the store', (backend) => {
  it('explains every component as the reference does, ranks by the total, packs the best into the budget', async () => {
    const rand = rng(5);
    const dims = 16;
    const vocabulary = ['river', 'capybara', 'grass', 'swim', 'keeper', 'night', 'rain', 'mud', 'sun', 'young', 'colony', 'sleep'];
    const vectors = new Map<string, Float32Array>();
    const vectorOf = (text: string) => {
      let v = vectors.get(text);
      if (v === undefined) vectors.set(text, (v = Float32Array.from({ length: dims }, () => rand() * 2 - 1)));
      return v;
    };
    const embedder = { dimensions: dims, embed: (texts: string[]) => texts.map(vectorOf) };
    const c = { now: T };
    const o = { sweepIntervalMs: 0, dedupThreshold: 2, embedder, clock: () => c.now, recencyDecay: 0.95 };
    type Mine = { id: string; seq: number; text: string; priority: MemoryPriority; importance: number; lastAccessed: number; tokens: number; lang: string };
    const mine: Mine[] = [];
    const w = await backend.open(o, 'ranking');
    for (let i = 0; i < 40; i++) {
      const text = `${Array.from({ length: 3 + Math.floor(rand() * 6) }, () => vocabulary[Math.floor(rand() * vocabulary.length)]).join(' ')} note${i}`;
      const priority = Math.floor(rand() * 4) as MemoryPriority;
      const importance = Math.round(rand() * 100) / 100;
      const lang = rand() < 0.5 ? 'en' : 'es';
      const id = await w.storeMemory(text, MemoryType.EPISODIC, priority, [], { importance, metadata: { lang } });
      mine.push({ id, seq: i, text, priority, importance, lastAccessed: c.now, tokens: w.getMemory(id)!.tokens, lang });
      c.now += Math.floor(rand() * 5) * 3_600_000;
    }
    await w.close();
    const m = await backend.open(o, 'ranking');
    const bm25 = new Bm25Index();
    for (const x of mine) bm25.add(x.seq, x.text);
    const weights = { bm25: 1, vector: 1, recency: 0.25, importance: 0.25 };
    let compared = 0;
    for (let q = 0; q < 25; q++) {
      c.now += 3_600_000;
      const queryText = Array.from({ length: 1 + Math.floor(rand() * 3) }, () => vocabulary[Math.floor(rand() * vocabulary.length)]).join(' ');
      const lang = q % 3 === 0 ? 'es' : undefined;
      const maxTokens = 10 + Math.floor(rand() * 40);
      const pool = mine.filter((x) => lang === undefined || x.lang === lang);
      const qv = vectorOf(queryText);
      const lexical = bm25.search(queryText, (doc) => pool.some((x) => x.seq === doc));
      const maxB = Math.max(0, ...pool.map((x) => lexical.get(x.seq) ?? 0));
      const reference = new Map(pool.map((x) => {
        const v = vectorOf(x.text);
        let dot = 0, a = 0, b = 0;
        for (let k = 0; k < dims; k++) {
          dot += qv[k]! * v[k]!;
          a += qv[k]! * qv[k]!;
          b += v[k]! * v[k]!;
        }
        const cos = dot / Math.sqrt(a * b);
        const hours = (c.now - x.lastAccessed) / 3_600_000;
        const raw = lexical.get(x.seq) ?? 0;
        const parts = { bm25: maxB > 0 ? raw / maxB : 0, vector: Math.max(0, Math.min(1, cos)), recency: 0.95 ** hours, importance: (x.priority / 3 + x.importance) / 2 };
        return [x.id, { raw, cos, hours, parts, total: parts.bm25 + parts.vector + 0.25 * parts.recency + 0.25 * parts.importance }];
      }));
      const r = await m.retrieveMemory({ queryText, maxTokens, topK: 8, ...(lang === undefined ? {} : { filter: { lang } }) });
      expect(r.candidates).toBe(pool.length);
      let left = maxTokens;
      for (const chunk of r.chunks) {
        const ref = reference.get(chunk.id)!;
        const e = chunk.explain;
        expect(e.bm25.raw).toBeCloseTo(ref.raw, 9);
        expect(e.vector.raw).toBeCloseTo(ref.cos, 1); // int8 codes: within 0.05
        expect(Math.abs(e.vector.raw - ref.cos)).toBeLessThan(0.02);
        expect(e.recency.raw).toBeCloseTo(ref.hours, 9);
        expect(e.recency.normalized).toBeCloseTo(ref.parts.recency, 12);
        expect(e.importance).toEqual({ raw: mine.find((x) => x.id === chunk.id)!.importance, normalized: ref.parts.importance, weighted: ref.parts.importance * weights.importance });
        expect(e.total).toBeCloseTo(e.bm25.weighted + e.vector.weighted + e.recency.weighted + e.importance.weighted, 12);
        expect(Math.abs(e.total - ref.total)).toBeLessThan(0.03);
        left -= chunk.tokens;
        compared++;
      }
      expect(left).toBeGreaterThanOrEqual(0);
      expect(r.chunks.map((x) => x.score)).toEqual([...r.chunks.map((x) => x.score)].sort((a, b) => b - a));
      // Packing: an item left out either did not fit what was left when its turn came, or ranks
      // below every item taken (up to the int8 tolerance); fewer than topK means the budget ran out.
      const lowest = Math.min(...r.chunks.map((x) => reference.get(x.id)!.total));
      for (const x of pool) {
        if (r.chunks.some((ch) => ch.id === x.id)) continue;
        const ref = reference.get(x.id)!;
        if (x.tokens <= left && r.chunks.length < 8) expect(ref.total).toBeLessThan(lowest + 0.03);
      }
      for (const ch of r.chunks) {
        const x = mine.find((y) => y.id === ch.id)!;
        x.lastAccessed = c.now; // returned items were accessed now
      }
    }
    expect(compared).toBeGreaterThan(50);
    await m.close();
  });
});
