import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { type Embedder, MemAgent, type MemAgentOptions, MemoryPriority, MemoryType } from '../src/index';
import { describeBackends } from './support/postgres-server';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-memory-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const file = () => join(dir, `m${files++}.db`);
const HOUR = 3_600_000;
/** A clock the test moves by hand. */
function clock(start = Date.UTC(2026, 0, 1)) {
  const c = { now: start, fn: () => c.now };
  return c;
}
/** One token per whitespace-separated word: every count in a test can be worked out by hand. */
const words = { countTokens: (t: string) => t.split(/\s+/).filter(Boolean).length };
const open = (o: MemAgentOptions = {}) => new MemAgent({ sweepIntervalMs: 0, tokenizer: words, ...o });

/** Every text embeds to the same vector: any two items are near duplicates. */
const constant: Embedder = { dimensions: 8, embed: (texts) => texts.map(() => Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8])) };

describeBackends('MemAgent', (backend) => {
  const open = (o: MemAgentOptions = {}, at?: string) => backend.open({ sweepIntervalMs: 0, tokenizer: words, ...o }, at);

  describe('MemAgent: store and get', () => {
    it('round-trips every field', async () => {
      const c = clock();
      const m = await open({ clock: c.fn });
      const id = await m.storeMemory('Capybaras 🦫 live in South America', MemoryType.SEMANTIC, MemoryPriority.HIGH, ['animals', 'facts', 'animals'], {
        metadata: { year: 2026, lang: 'en', langs: ['en', 'es'], draft: false, none: null },
        scope: { userId: 'u1', sessionId: 's1' },
        importance: 0.75,
        ttl: HOUR,
      });
      expect(m.getMemory(id)).toEqual({
        id,
        content: 'Capybaras 🦫 live in South America',
        type: MemoryType.SEMANTIC,
        priority: MemoryPriority.HIGH,
        importance: 0.75,
        tags: ['animals', 'facts'],
        metadata: { year: 2026, lang: 'en', langs: ['en', 'es'], draft: false, none: null },
        scope: { userId: 'u1', sessionId: 's1' },
        createdAt: c.now,
        updatedAt: c.now,
        lastAccessed: c.now,
        accessCount: 0,
        expiresAt: c.now + HOUR,
        pinned: false,
        tokens: 6,
      });
      expect(m.getMemory('nope')).toBeNull();
      await m.close();
    });

    it('keeps metadata fields named __proto__ or constructor (nothing stored is lost)', async () => {
      const m = await open();
      const metadata = JSON.parse('{"__proto__": "p", "constructor": 3, "a": 1}') as Record<string, string | number>;
      const id = await m.storeMemory('a note with odd metadata keys', MemoryType.SEMANTIC, MemoryPriority.LOW, [], { metadata });
      expect(Object.entries(m.getMemory(id)!.metadata)).toEqual([['__proto__', 'p'], ['constructor', 3], ['a', 1]]);
      expect(Object.getPrototypeOf(Object.prototype)).toBeNull(); // Object.prototype untouched
      await m.close();
    });

    it('rejects bad input with the argument named', async () => {
      const m = await open();
      await expect(m.storeMemory('', MemoryType.SEMANTIC, MemoryPriority.LOW)).rejects.toThrow(new RangeError("Expected non-empty string for content but received '' of type string"));
      await expect(m.storeMemory('  \n', MemoryType.SEMANTIC, MemoryPriority.LOW)).rejects.toThrow(RangeError);
      await expect(m.storeMemory('x', 'dream' as MemoryType, MemoryPriority.LOW)).rejects.toThrow(/for type but received 'dream'/);
      await expect(m.storeMemory('x', MemoryType.SEMANTIC, 7 as MemoryPriority)).rejects.toThrow(
        new RangeError('Expected MemoryPriority (0 LOW, 1 MEDIUM, 2 HIGH, 3 CRITICAL) for priority but received 7 of type number'),
      );
      await expect(m.storeMemory('x', MemoryType.SEMANTIC, MemoryPriority.LOW, 'tag' as never)).rejects.toThrow(TypeError);
      await expect(m.storeMemory('x', MemoryType.SEMANTIC, MemoryPriority.LOW, [], { ttl: 1, expiresAt: 5 })).rejects.toThrow(
        'Expected only one of options.expiresAt and options.ttl but received both',
      );
      await expect(m.storeMemory('x', MemoryType.SEMANTIC, MemoryPriority.LOW, [], { metadata: { nested: { a: 1 } } as never })).rejects.toThrow(TypeError);
      await expect(m.retrieveMemory({ maxTokens: -1 })).rejects.toThrow(new RangeError('Expected integer >= 0 for query.maxTokens but received -1 of type number'));
      await expect(m.retrieveMemory({ filter: { year: { between: [1, 2] } } as never })).rejects.toThrow(/query\.filter\.year/);
      await expect(m.retrieveMemory({ topK: 0 })).rejects.toThrow(RangeError);
      await expect(open({ maxTokens: -5 })).rejects.toThrow(new RangeError('Expected integer >= 1 for options.maxTokens but received -5 of type number'));
      await expect(open({ compression: 'zstd' as never })).rejects.toThrow(/options\.compression/);
      await expect(open({ size: 1 } as never)).rejects.toThrow(TypeError);
      await m.close();
      await expect(m.storeMemory('x', MemoryType.SEMANTIC, MemoryPriority.LOW)).rejects.toThrow('MemAgent is closed');
    });
  });

  describe('MemAgent: retrieval', () => {
    const seed = async (m: MemAgent, c: { now: number }) => {
      const ids: Record<string, string> = {};
      const add = async (key: string, text: string, type: MemoryType, p: MemoryPriority, tags: string[], metadata = {}, scope = {}) => {
        ids[key] = await m.storeMemory(text, type, p, tags, { metadata, scope });
        c.now += HOUR;
      };
      await add('py', 'Python code runs faster with vectorized numpy operations', MemoryType.SEMANTIC, MemoryPriority.HIGH, ['python', 'perf'], { lang: 'en', year: 2024 });
      await add('js', 'JavaScript code runs in the V8 engine with a JIT compiler', MemoryType.SEMANTIC, MemoryPriority.MEDIUM, ['js', 'perf'], { lang: 'en', year: 2025 });
      await add('deploy', 'Never deploy on Fridays', MemoryType.PROCEDURAL, MemoryPriority.CRITICAL, ['ops'], { lang: 'en', year: 2026 });
      await add('trip', 'The user visited Lisbon in May', MemoryType.EPISODIC, MemoryPriority.LOW, ['travel'], { lang: 'es', year: 2026, places: ['Lisbon'] }, { userId: 'u1' });
      await add('todo', 'Current task: profile the python service', MemoryType.WORKING, MemoryPriority.MEDIUM, ['python', 'task'], { lang: 'en' }, { userId: 'u1', sessionId: 's9' });
      return ids;
    };

    it('filters by type, tags (any / all), priority, time, scope and metadata', async () => {
      const c = clock();
      const m = await open({ clock: c.fn });
      const t0 = c.now;
      const ids = await seed(m, c);
      const got = async (q: object) => (await m.retrieveMemory({ topK: 100, ...q })).chunks.map((x) => Object.keys(ids).find((k) => ids[k] === x.id)).sort();
      expect(await got({ memoryTypes: [MemoryType.SEMANTIC] })).toEqual(['js', 'py']);
      expect(await got({ memoryTypes: [MemoryType.EPISODIC, MemoryType.WORKING] })).toEqual(['todo', 'trip']);
      expect(await got({ tags: ['python', 'ops'] })).toEqual(['deploy', 'py', 'todo']);
      expect(await got({ tags: ['python', 'perf'], tagMode: 'all' })).toEqual(['py']);
      expect(await got({ minPriority: MemoryPriority.HIGH })).toEqual(['deploy', 'py']);
      expect(await got({ timeRange: { from: t0 + HOUR, to: t0 + 3 * HOUR } })).toEqual(['deploy', 'js', 'trip']);
      expect(await got({ scope: { userId: 'u1' } })).toEqual(['todo', 'trip']);
      expect(await got({ scope: { userId: 'u1', sessionId: 's9' } })).toEqual(['todo']);
      expect(await got({ filter: { lang: 'es' } })).toEqual(['trip']);
      expect(await got({ filter: { year: { gte: 2025 }, lang: { ne: 'es' } } })).toEqual(['deploy', 'js']);
      expect(await got({ filter: { OR: [{ places: { contains: 'Lisbon' } }, { year: { lt: 2025 } }] } })).toEqual(['py', 'trip']);
      expect(await got({ filter: { NOT: { lang: { in: ['en'] } } } })).toEqual(['trip']);
      expect(await got({ filter: { year: { nin: [2024, 2025] } } })).toEqual(['deploy', 'todo', 'trip']);
      expect(await got({ memoryTypes: [MemoryType.SEMANTIC], tags: ['perf'], minPriority: MemoryPriority.HIGH, filter: { lang: 'en' } })).toEqual(['py']);
      await m.close();
    });

    it('ranks by the weighted components and explains each', async () => {
      const c = clock();
      const m = await open({ clock: c.fn });
      const ids = await seed(m, c);
      const r = await m.retrieveMemory({ queryText: 'how to make python code faster' });
      expect(r.chunks[0]!.id).toBe(ids['py']);
      for (const x of r.chunks) {
        const e = x.explain;
        expect(e.total).toBeCloseTo(e.bm25.weighted + e.vector.weighted + e.recency.weighted + e.importance.weighted, 12);
        expect(x.score).toBe(e.total);
        for (const part of [e.bm25, e.vector, e.recency, e.importance]) {
          expect(part.normalized).toBeGreaterThanOrEqual(0);
          expect(part.normalized).toBeLessThanOrEqual(1);
        }
      }
      expect(r.chunks.map((x) => x.score)).toEqual([...r.chunks.map((x) => x.score)].sort((a, b) => b - a));
      expect(r.chunks[0]!.explain.bm25.normalized).toBe(1);
      // Importance alone: CRITICAL, then HIGH, then the MEDIUMs newest first.
      const byImportance = await open({ clock: c.fn, weights: { bm25: 0, vector: 0, recency: 0, importance: 1 } });
      const ids2 = await seed(byImportance, c);
      const order = (await byImportance.retrieveMemory({})).chunks.map((x) => Object.keys(ids2).find((k) => ids2[k] === x.id));
      expect(order).toEqual(['deploy', 'py', 'todo', 'js', 'trip']);
      // Recency alone: the most recently stored first.
      const byRecency = await open({ clock: c.fn, weights: { bm25: 0, vector: 0, recency: 1, importance: 0 } });
      const ids3 = await seed(byRecency, c);
      expect((await byRecency.retrieveMemory({})).chunks.map((x) => Object.keys(ids3).find((k) => ids3[k] === x.id))).toEqual(['todo', 'trip', 'deploy', 'js', 'py']);
      await Promise.all([m.close(), byImportance.close(), byRecency.close()]);
    });

    it('packs results greedily into maxTokens, never over it', async () => {
      const m = await open({ weights: { bm25: 0, vector: 0, recency: 0, importance: 1 } });
      // Priorities make the rank order: sizes 5, 9, 3, 4 words.
      await m.storeMemory('a a a a a', MemoryType.SEMANTIC, MemoryPriority.CRITICAL, []);
      await m.storeMemory('b b b b b b b b b', MemoryType.SEMANTIC, MemoryPriority.HIGH, []);
      await m.storeMemory('c c c', MemoryType.SEMANTIC, MemoryPriority.MEDIUM, []);
      await m.storeMemory('d d d d', MemoryType.SEMANTIC, MemoryPriority.LOW, []);
      const take = async (maxTokens: number, topK = 10) => {
        const r = await m.retrieveMemory({ maxTokens, topK });
        expect(r.totalTokens).toBeLessThanOrEqual(maxTokens);
        expect(r.totalTokens).toBe(r.chunks.reduce((a, x) => a + x.tokens, 0));
        return r.chunks.map((x) => x.content[0]).join('');
      };
      expect(await take(100)).toBe('abcd');
      expect(await take(12)).toBe('acd'); // b (9) does not fit after a (5); c and d do
      expect(await take(8)).toBe('ac');
      expect(await take(4)).toBe('c');
      expect(await take(2)).toBe('');
      expect(await take(100, 2)).toBe('ab');
      await m.close();
    });

    it('answers a repeated query from the cache until the next write, and counts hits', async () => {
      const m = await open();
      await m.storeMemory('alpha beta', MemoryType.SEMANTIC, MemoryPriority.LOW, []);
      const q = { queryText: 'alpha', maxTokens: 100 };
      expect((await m.retrieveMemory(q)).cacheHit).toBe(false);
      const again = await m.retrieveMemory(q);
      expect(again.cacheHit).toBe(true);
      expect(again.chunks[0]!.accessCount).toBe(2);
      await m.storeMemory('alpha gamma', MemoryType.SEMANTIC, MemoryPriority.LOW, []);
      const after = await m.retrieveMemory(q);
      expect(after.cacheHit).toBe(false);
      expect(after.chunks).toHaveLength(2);
      expect(m.getMetrics()).toMatchObject({ cacheHits: 1, cacheMisses: 2, cacheHitRate: 1 / 3, searches: 3 });
      await m.close();
    });
  });


  describe('MemAgent: deduplication and history', () => {
    it('merges an exact duplicate (case, spacing, Unicode form) into the existing item', async () => {
      const c = clock();
      const m = await open({ clock: c.fn });
      const id = await m.storeMemory('The user likes tea', MemoryType.SEMANTIC, MemoryPriority.LOW, ['prefs'], { metadata: { a: 1 } });
      c.now += 1000;
      const again = await m.storeMemory('  the USER   likes tea ', MemoryType.SEMANTIC, MemoryPriority.HIGH, ['drinks'], { metadata: { b: 2 } });
      expect(again).toBe(id);
      expect(m.getMemory(id)).toMatchObject({ content: 'The user likes tea', priority: MemoryPriority.HIGH, tags: ['prefs', 'drinks'], metadata: { a: 1, b: 2 }, updatedAt: c.now });
      expect(m.getMetrics()).toMatchObject({ items: 1, merged: 1 });
      // Another scope is another memory.
      expect(await m.storeMemory('The user likes tea', MemoryType.SEMANTIC, MemoryPriority.LOW, [], { scope: { userId: 'u2' } })).not.toBe(id);
      const h = (await m.getHistory(id));
      expect(h.map((e) => [e.event, e.reason])).toEqual([['ADD', null], ['UPDATE', 'duplicate']]);
      expect(h[1]!.oldValue).toEqual({ priority: MemoryPriority.LOW, tags: ['prefs'], metadata: { a: 1 }, updatedAt: c.now - 1000, lastAccessed: c.now - 1000 });
      expect(h[1]!.newValue).toMatchObject({ priority: MemoryPriority.HIGH, tags: ['prefs', 'drinks'] });
      await m.close();
    });

    it('merges a near duplicate (cosine >= dedupThreshold), keeping the newer text', async () => {
      const m = await open({ embedder: constant });
      const id = await m.storeMemory('The meeting is on Monday', MemoryType.EPISODIC, MemoryPriority.MEDIUM, []);
      expect(await m.storeMemory('The meeting moved to Tuesday', MemoryType.EPISODIC, MemoryPriority.MEDIUM, [])).toBe(id);
      expect(m.getMemory(id)!.content).toBe('The meeting moved to Tuesday');
      const upd = (await m.getHistory(id))[1]!;
      expect(upd).toMatchObject({ event: 'UPDATE', reason: 'near-duplicate', oldValue: { content: 'The meeting is on Monday' }, newValue: { content: 'The meeting moved to Tuesday' } });
      const off = await open({ embedder: constant, dedupThreshold: 2 });
      const a = await off.storeMemory('one', MemoryType.EPISODIC, MemoryPriority.MEDIUM, []);
      expect(await off.storeMemory('two', MemoryType.EPISODIC, MemoryPriority.MEDIUM, [])).not.toBe(a);
      await Promise.all([m.close(), off.close()]);
    });

    it('reads history synchronously on SQLite; on PostgreSQL history() points to getHistory()', async () => {
      const m = await open();
      const id = await m.storeMemory('an audited note', MemoryType.SEMANTIC, MemoryPriority.LOW);
      if (backend.name === 'sqlite') expect(m.history(id)).toEqual(await m.getHistory(id));
      else expect(() => m.history(id)).toThrow(new Error('MemAgent.history: the items live in PostgreSQL, which answers asynchronously: use await memory.getHistory(id)'));
      expect((await m.getHistory(id)).map((e) => e.event)).toEqual(['ADD']);
      await m.close();
    });

    it('keeps ADD / UPDATE / DELETE with old and new values, after the item is purged too', async () => {
      const c = clock();
      const m = await open({ clock: c.fn, retainDeletedMs: 10 });
      const id = await m.storeMemory('draft one', MemoryType.WORKING, MemoryPriority.LOW, ['x']);
      expect(await m.updateMemory(id, { content: 'draft two', tags: ['x', 'y'] })).toMatchObject({ content: 'draft two', tags: ['x', 'y'], tokens: 2 });
      expect(await m.updateMemory('missing', { pinned: true })).toBeNull();
      expect(await m.deleteMemory(id)).toBe(true);
      expect(await m.deleteMemory(id)).toBe(false);
      expect(m.getMemory(id)).toBeNull();
      expect((await m.retrieveMemory({ queryText: 'draft' })).chunks).toHaveLength(0);
      c.now += 11;
      await m.sweep();
      const h = (await m.getHistory(id));
      expect(h.map((e) => e.event)).toEqual(['ADD', 'UPDATE', 'DELETE']);
      expect(h[0]!.newValue).toMatchObject({ content: 'draft one', tags: ['x'] });
      expect(h[1]!.oldValue).toEqual({ content: 'draft one', tags: ['x'] });
      expect(h[1]!.newValue).toEqual({ content: 'draft two', tags: ['x', 'y'] });
      expect(h[2]!.oldValue).toMatchObject({ content: 'draft two' });
      await m.close();
    });
  });

  describe('MemAgent: concurrency', () => {
    it('serialises concurrent writes: 100 copies of one text become one item', async () => {
      const m = await open();
      const ids = await Promise.all(Array.from({ length: 100 }, (_, i) => m.storeMemory(i % 2 ? 'Same Text' : 'same   text', MemoryType.SEMANTIC, MemoryPriority.LOW, [`t${i}`])));
      expect(new Set(ids).size).toBe(1);
      expect(m.getMemory(ids[0]!)!.tags).toHaveLength(100);
      expect(m.getMetrics()).toMatchObject({ items: 1, merged: 99 });
      await m.close();
    });

    it('never returns an item deleted while searches run', async () => {
      const m = await open({ dedupThreshold: 2 });
      const ids = [];
      for (let i = 0; i < 60; i++) ids.push(await m.storeMemory(`note ${i} about rivers and capybaras`, MemoryType.EPISODIC, MemoryPriority.LOW, []));
      const deleted = new Set<string>();
      const work: Promise<unknown>[] = [];
      for (let i = 0; i < 60; i++) {
        work.push(m.deleteMemory(ids[i]!).then(() => deleted.add(ids[i]!)));
        work.push(m.retrieveMemory({ queryText: `rivers ${i}`, topK: 60 }).then((r) => {
          for (const c of r.chunks) expect(deleted.has(c.id)).toBe(false);
        }));
      }
      await Promise.all(work);
      expect(m.getMetrics().items).toBe(0);
      await m.close();
    });
  });

  describe('MemAgent: write order and edge cases', () => {
    it('applies writes in call order, whatever their async part costs', async () => {
      const m = await open();
      const id = await m.storeMemory('first text', MemoryType.SEMANTIC, MemoryPriority.LOW, []);
      const a = m.updateMemory(id, { content: 'second text', pinned: true }); // embeds first
      const b = m.updateMemory(id, { pinned: false }); // nothing to embed
      await Promise.all([a, b]);
      expect(m.getMemory(id)).toMatchObject({ content: 'second text', pinned: false });
      const c = m.updateMemory(id, { content: 'third text' });
      const d = m.deleteMemory(id);
      expect(await c).toMatchObject({ content: 'third text' });
      expect(await d).toBe(true);
      await m.close();
    });

    it('close() waits for every write called before it', async () => {
      const m = await open();
      const writes = Array.from({ length: 5 }, (_, i) => m.storeMemory(`note ${i} ${'w'.repeat(i)}`, MemoryType.EPISODIC, MemoryPriority.LOW, []));
      const closing = m.close();
      const ids = await Promise.all(writes);
      await closing;
      expect(ids).toHaveLength(5);
      await expect(m.storeMemory('late', MemoryType.EPISODIC, MemoryPriority.LOW)).rejects.toThrow('MemAgent is closed');
    });

    it('keeps exact dedup when an update makes two items equal, and skips expired items', async () => {
      const c = clock();
      const m = await open({ clock: c.fn, dedupThreshold: 2 });
      const a = await m.storeMemory('same words', MemoryType.SEMANTIC, MemoryPriority.LOW, []);
      const b = await m.storeMemory('other words', MemoryType.SEMANTIC, MemoryPriority.LOW, []);
      await m.updateMemory(b, { content: 'same words' });
      await m.deleteMemory(b);
      expect(await m.storeMemory('Same Words', MemoryType.SEMANTIC, MemoryPriority.LOW, [])).toBe(a);
      const gone = await m.storeMemory('fleeting', MemoryType.SEMANTIC, MemoryPriority.LOW, ['old'], { ttl: 10 });
      c.now += 10;
      expect(await m.updateMemory(gone, { pinned: true })).toBeNull();
      expect(await m.deleteMemory(gone)).toBe(false);
      const fresh = await m.storeMemory('fleeting', MemoryType.SEMANTIC, MemoryPriority.LOW, ['new']);
      expect(fresh).not.toBe(gone);
      expect(m.getMemory(fresh)!.tags).toEqual(['new']);
      await m.close();
    });

    it('names the real obstacle when a write cannot fit, and lets changes that add nothing through', async () => {
      const path = `f${files++}`;
      const m = await open({ maxTokens: 10 }, path);
      await m.storeMemory('c1 c2 c3 c4', MemoryType.SEMANTIC, MemoryPriority.CRITICAL, []);
      const grow = await m.storeMemory('g1 g2 g3', MemoryType.SEMANTIC, MemoryPriority.LOW, []);
      await expect(m.updateMemory(grow, { content: 'g1 g2 g3 g4 g5 g6 g7' })).rejects.toThrow(
        new RangeError('MemAgent: 4 more tokens do not fit in maxTokens 10: 4 tokens are held by CRITICAL or pinned items, which are never evicted'),
      );
      await expect(m.storeMemory('a b c d e f g h i j k', MemoryType.SEMANTIC, MemoryPriority.LOW)).rejects.toThrow(
        new RangeError('MemAgent: an item of 11 tokens cannot fit in maxTokens 10'),
      );
      await m.close();
      const smaller = await open({ maxTokens: 5 }, path);
      expect(await smaller.updateMemory(grow, { tags: ['kept'] })).toMatchObject({ tags: ['kept'] });
      await smaller.close();
    });

    it('rejects lone surrogates, which would not come back as stored', async () => {
      const m = await open();
      await expect(m.storeMemory('broken \uD83E text', MemoryType.SEMANTIC, MemoryPriority.LOW)).rejects.toThrow(
        /^Expected well-formed UTF-16 text \(no lone surrogates\) for content/,
      );
      const id = await m.storeMemory('fine 🦫 text', MemoryType.SEMANTIC, MemoryPriority.LOW);
      expect(m.getMemory(id)!.content).toBe('fine 🦫 text');
      expect((await m.retrieveMemory({ tags: [], memoryTypes: [] })).chunks).toHaveLength(1); // empty lists filter nothing
      await m.close();
    });
  });

  describe('MemAgent: expiry and capacity', () => {
    it('hides expired items at once and removes them on sweep', async () => {
      const c = clock();
      const m = await open({ clock: c.fn });
      const id = await m.storeMemory('short lived', MemoryType.WORKING, MemoryPriority.LOW, [], { ttl: 1000 });
      const keep = await m.storeMemory('long lived', MemoryType.WORKING, MemoryPriority.LOW, []);
      c.now += 999;
      expect(m.getMemory(id)).not.toBeNull();
      c.now += 1;
      expect(m.getMemory(id)).toBeNull();
      expect((await m.retrieveMemory({})).chunks.map((x) => x.id)).toEqual([keep]);
      expect(await m.sweep()).toBe(1);
      expect((await m.getHistory(id)).at(-1)).toMatchObject({ event: 'DELETE', reason: 'expired' });
      expect(m.getMetrics()).toMatchObject({ items: 1, tokensUsed: 2, expired: 1 });
      await m.close();
    });

    it('evicts expired items first, then the lowest retention; never CRITICAL or pinned', async () => {
      const c = clock();
      const m = await open({ clock: c.fn, maxTokens: 10 });
      const crit = await m.storeMemory('c1 c2 c3', MemoryType.SEMANTIC, MemoryPriority.CRITICAL, []);
      const pin = await m.storeMemory('p1 p2', MemoryType.SEMANTIC, MemoryPriority.LOW, [], { pinned: true });
      const low = await m.storeMemory('l1 l2', MemoryType.SEMANTIC, MemoryPriority.LOW, []);
      const high = await m.storeMemory('h1 h2', MemoryType.SEMANTIC, MemoryPriority.HIGH, []);
      const exp = await m.storeMemory('e1', MemoryType.SEMANTIC, MemoryPriority.HIGH, [], { ttl: 10 });
      expect(m.getMetrics().tokensUsed).toBe(10);
      c.now += 100; // `exp` has expired
      const n1 = await m.storeMemory('n1', MemoryType.SEMANTIC, MemoryPriority.LOW, []); // 1 token: the expired item makes room
      expect((await m.getHistory(exp)).at(-1)).toMatchObject({ event: 'DELETE', reason: 'expired' });
      const n2 = await m.storeMemory('n2 n3', MemoryType.SEMANTIC, MemoryPriority.MEDIUM, []); // 2 tokens: evicts `low`, the lowest retention
      expect(m.getMemory(low)).toBeNull();
      expect((await m.getHistory(low)).at(-1)).toMatchObject({ event: 'DELETE', reason: 'evicted' });
      for (const id of [crit, pin, high, n1, n2]) expect(m.getMemory(id)).not.toBeNull();
      // 6 more tokens would need CRITICAL or pinned room: refused, nothing changes.
      const before = m.getMetrics();
      await expect(m.storeMemory('x1 x2 x3 x4 x5 x6', MemoryType.SEMANTIC, MemoryPriority.CRITICAL, [])).rejects.toThrow(
        new RangeError('MemAgent: 6 more tokens do not fit in maxTokens 10: 5 tokens are held by CRITICAL or pinned items, which are never evicted'),
      );
      expect(m.getMetrics()).toEqual(before);
      expect(m.getMetrics()).toMatchObject({ tokensUsed: 10, evicted: 1, expired: 1 });
      await m.close();
    });
  });

  describe('MemAgent: durability', () => {
    const prose = (i: number) =>
      `Entry ${i}: the capybara colony near the river moved ${i % 7} times this season, and the keepers wrote down ` +
      `what each group ate, where it slept and how the young ones grew. Note ${i} repeats the usual observations.`;

    for (const compression of ['lz4', 'gzip', 'none'] as const) {
      it(`survives close and reopen with ${compression} pages, and repacks after deletions`, async () => {
        const path = `f${files++}`;
        // Templated entries are lexically near each other: near-duplicate merging is off here.
        const m = await open({ compression, dedupThreshold: 2 }, path);
        const ids: string[] = [];
        for (let i = 0; i < 400; i++) ids.push(await m.storeMemory(prose(i), MemoryType.EPISODIC, MemoryPriority.MEDIUM, [`t${i % 5}`], { metadata: { i } }));
        const metrics = m.getMetrics();
        if (compression === 'none') expect(metrics.compression.ratio).toBe(1);
        else expect(metrics.compression.ratio).toBeGreaterThan(2);
        await m.close();
        const again = await open({ compression, retainDeletedMs: 0, dedupThreshold: 2 }, path);
        expect(again.getMetrics()).toMatchObject({ items: 400, tokensUsed: metrics.tokensUsed });
        for (const i of [0, 123, 399]) expect(again.getMemory(ids[i]!)!.content).toBe(prose(i));
        expect((await again.retrieveMemory({ queryText: 'Entry 123', topK: 1 })).chunks[0]!.id).toBe(ids[123]);
        for (let i = 0; i < 300; i++) await again.deleteMemory(ids[i]!);
        await again.sweep(); // purges and repacks mostly-dead pages
        for (let i = 300; i < 400; i++) expect(again.getMemory(ids[i]!)!.content).toBe(prose(i));
        await again.close();
        const third = await open({ compression }, path);
        expect(third.getMetrics().items).toBe(100);
        expect(third.getMemory(ids[350]!)!.content).toBe(prose(350));
        await third.close();
      });
    }
  });
});

describe('MemAgent: durability (SQLite file)', () => {
  it('loses nothing a resolved storeMemory reported when the process is killed (SIGKILL)', async () => {
    const path = file();
    const script = join(dir, 'writer.cjs');
    writeFileSync(
      script,
      `const { MemAgent, MemoryType, MemoryPriority } = require(${JSON.stringify(resolve(__dirname, '../lib/index.js'))});
       const m = new MemAgent({ path: ${JSON.stringify(path)}, sweepIntervalMs: 0 });
       (async () => { for (let i = 0; ; i++) {
         const id = await m.storeMemory('memory number ' + i + ' ' + 'x'.repeat(i % 500), MemoryType.EPISODIC, MemoryPriority.LOW, ['crash']);
         process.stdout.write(id + ' ' + i + '\\n');
       } })();`,
    );
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const stored = new Map<string, number>();
    await new Promise<void>((done) => {
      let buf = '';
      child.stdout.on('data', (chunk: Buffer) => {
        buf += chunk;
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) {
          const [id, i] = l.split(' ');
          stored.set(id!, Number(i));
        }
        if (stored.size >= 300 && child.exitCode === null) child.kill('SIGKILL');
      });
      child.once('exit', () => done());
    });
    expect(stored.size).toBeGreaterThanOrEqual(300);
    const m = open({ path });
    for (const [id, i] of stored) expect(m.getMemory(id)?.content).toBe(`memory number ${i} ${'x'.repeat(i % 500)}`);
    const n = m.getMetrics().items;
    expect(n).toBeGreaterThanOrEqual(stored.size);
    await m.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect((db.prepare('SELECT COUNT(*) AS n FROM items WHERE deleted_at IS NULL').get() as { n: number }).n).toBe(n);
    db.close();
  }, 60_000);

  it('refuses files it cannot trust, with a clear error', async () => {
    const foreign = file();
    const db = new Database(foreign);
    db.exec('CREATE TABLE users (id INTEGER)');
    db.close();
    expect(() => open({ path: foreign })).toThrow(`MemAgent: ${foreign} is a SQLite database of something else (tables: users); refusing to use it`);
    const newer = file();
    await open({ path: newer }).close();
    const db2 = new Database(newer);
    db2.prepare("UPDATE meta SET value = '99' WHERE key = 'schema_version'").run();
    db2.close();
    expect(() => open({ path: newer })).toThrow(`MemAgent: ${newer} has schema version 99, newer than this @capibara/core understands (2); upgrade the package`);
    const garbage = file();
    writeFileSync(garbage, Buffer.alloc(8192, 7));
    expect(() => open({ path: garbage })).toThrow(/^MemAgent: .* (is not a readable SQLite database|cannot open)/);
    const dims = file();
    await open({ path: dims }).close();
    expect(() => open({ path: dims, embedder: constant })).toThrow(
      `MemAgent: ${dims} holds 384-dimensional embeddings but the embedder makes 8: open it with the embedder it was filled with`,
    );
    const held = open({ path: dims });
    expect(() => open({ path: dims })).toThrow(`MemAgent: ${dims} is already open in another MemAgent of this process: one MemAgent writes a file at a time, until its close()`);
    await held.close();
    await open({ path: dims }).close();
  });
});
