import { describe, expect, it } from 'vitest';
import { MemoryType } from '../src/index';
import { type EvictionCandidate, type EvictionRequest, planEviction, retention } from '../src/memory/eviction';
import { MemoryPriority } from '../src/memory/types';
import { describeBackends } from './support/postgres-server';
import { rng } from './support/random';

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 0, 1);

function item(seq: number, tokens: number, o: Partial<EvictionCandidate> = {}): EvictionCandidate {
  return { seq, tokens, priority: MemoryPriority.LOW, lastAccessed: NOW, accessCount: 0, expiresAt: null, pinned: false, ...o };
}

function plan(items: EvictionCandidate[], delta: number, maxTokens: number, keep?: number): Array<[number, string]> {
  const usedTokens = items.reduce((a, r) => a + r.tokens, 0);
  return planEviction({ items, usedTokens, maxTokens, delta, keep, now: NOW, recencyDecay: 0.99 }).map((e) => [e.seq, e.reason]);
}

describe('retention', () => {
  it('is (priority + 1) / 4 × decay^hours × (1 + ln(1 + accesses))', () => {
    expect(retention({ priority: MemoryPriority.LOW, lastAccessed: NOW, accessCount: 0 }, NOW, 0.99)).toBe(0.25);
    expect(retention({ priority: MemoryPriority.HIGH, lastAccessed: NOW - 10 * HOUR, accessCount: 3 }, NOW, 0.9)).toBeCloseTo(0.75 * 0.9 ** 10 * (1 + Math.log(4)), 14);
    // An access in the future (clock moved back) counts as now.
    expect(retention({ priority: MemoryPriority.MEDIUM, lastAccessed: NOW + HOUR, accessCount: 0 }, NOW, 0.5)).toBe(0.5);
  });
});

describe('planEviction', () => {
  it('plans nothing when the write fits or adds nothing, even over a lowered capacity', () => {
    const items = [item(1, 5), item(2, 5)];
    expect(plan(items, 3, 20)).toEqual([]);
    expect(plan(items, 0, 4)).toEqual([]);
    expect(plan(items, -2, 4, 1)).toEqual([]);
  });

  it('takes expired items first, in store order, then the lowest retention, oldest seq on ties', () => {
    const items = [
      item(1, 2, { priority: MemoryPriority.HIGH }),
      item(2, 2, { expiresAt: NOW }), // expires exactly now: expired
      item(3, 2, { priority: MemoryPriority.MEDIUM }),
      item(4, 2), // LOW, same retention as 5
      item(5, 2),
      item(6, 2, { expiresAt: NOW - 1, priority: MemoryPriority.CRITICAL }), // expired CRITICAL goes too
      item(7, 2, { expiresAt: NOW + 1 }), // not expired yet
    ];
    expect(plan(items, 2, 14)).toEqual([[2, 'expired']]);
    expect(plan(items, 4, 14)).toEqual([[2, 'expired'], [6, 'expired']]);
    expect(plan(items, 7, 14)).toEqual([[2, 'expired'], [6, 'expired'], [4, 'evicted'], [5, 'evicted']]);
    expect(plan(items, 9, 14)).toEqual([[2, 'expired'], [6, 'expired'], [4, 'evicted'], [5, 'evicted'], [7, 'evicted']]);
  });

  it('ranks by the retention score: recency and accesses keep an item', () => {
    const items = [
      item(1, 1, { lastAccessed: NOW - 100 * HOUR }), // 0.25 × 0.99^100 ≈ 0.09
      item(2, 1, { accessCount: 5 }), // 0.25 × 2.79
      item(3, 1, { priority: MemoryPriority.MEDIUM, lastAccessed: NOW - 10 * HOUR }), // 0.5 × 0.904 ≈ 0.45
      item(4, 1), // 0.25
    ];
    expect(plan(items, 4, 4)).toEqual([[1, 'evicted'], [4, 'evicted'], [3, 'evicted'], [2, 'evicted']]);
  });

  it('never evicts CRITICAL, pinned or the item being changed', () => {
    const items = [item(1, 3, { priority: MemoryPriority.CRITICAL }), item(2, 3, { pinned: true }), item(3, 2), item(4, 2)];
    expect(plan(items, 2, 10, 3)).toEqual([[4, 'evicted']]);
    expect(() => plan(items, 3, 10, 3)).toThrow(
      new RangeError('MemAgent: 3 more tokens do not fit in maxTokens 10: 6 tokens are held by CRITICAL or pinned items, which are never evicted'),
    );
  });

  it('refuses an item larger than the capacity, counting the changed item whole', () => {
    expect(() => plan([item(1, 1)], 11, 10)).toThrow(new RangeError('MemAgent: an item of 11 tokens cannot fit in maxTokens 10'));
    expect(() => plan([item(1, 4), item(2, 1)], 7, 10, 1)).toThrow(new RangeError('MemAgent: an item of 11 tokens cannot fit in maxTokens 10'));
  });

  it('frees enough with the shortest prefix of its order (random stores)', () => {
    const rand = rng(7);
    for (let trial = 0; trial < 300; trial++) {
      const items: EvictionCandidate[] = [];
      const n = 1 + Math.floor(rand() * 12);
      for (let s = 1; s <= n; s++) {
        items.push(item(s, 1 + Math.floor(rand() * 6), {
          priority: Math.floor(rand() * 4) as MemoryPriority,
          pinned: rand() < 0.15,
          lastAccessed: NOW - Math.floor(rand() * 50) * HOUR,
          accessCount: Math.floor(rand() * 4),
          expiresAt: rand() < 0.2 ? NOW - 1 : null,
        }));
      }
      const used = items.reduce((a, r) => a + r.tokens, 0);
      const maxTokens = Math.max(1, used - Math.floor(rand() * 5));
      const delta = 1 + Math.floor(rand() * 8);
      const keep = rand() < 0.3 ? items[Math.floor(rand() * n)]!.seq : undefined;
      const req: EvictionRequest = { items, usedTokens: used, maxTokens, delta, keep, now: NOW, recencyDecay: 0.99 };
      // Reference: what may go, in the documented order, computed independently.
      const removable = items
        .filter((r) => r.seq !== keep && (r.expiresAt !== null || (r.priority !== MemoryPriority.CRITICAL && !r.pinned)))
        .map((r) => ({ r, key: r.expiresAt !== null ? -1 : ((r.priority + 1) / 4) * 0.99 ** ((NOW - r.lastAccessed) / HOUR) * (1 + Math.log(1 + r.accessCount)) }))
        .sort((a, b) => (a.r.expiresAt !== null && b.r.expiresAt !== null ? a.r.seq - b.r.seq : a.key - b.key || a.r.seq - b.r.seq))
        .map((x) => x.r);
      const need = used + delta - maxTokens;
      const keepTokens = items.find((r) => r.seq === keep)?.tokens ?? 0;
      let freed = 0;
      const expected: number[] = [];
      for (const r of removable) {
        if (freed >= need) break;
        expected.push(r.seq);
        freed += r.tokens;
      }
      if (need > 0 && (delta + keepTokens > maxTokens || freed < need)) {
        expect(() => planEviction(req)).toThrow(RangeError);
      } else {
        expect(planEviction(req).map((e) => e.seq)).toEqual(need > 0 ? expected : []);
      }
    }
  });
});

// Capacity through MemAgent on each store: the items' priorities, pins, expiry and access
// statistics go into the store, come back at a reopen (PostgreSQL writes the statistics in the
// background; close() sends them), and the next write must evict exactly what the documented
// order gives, computed here from what the test itself did.
describeBackends('MemAgent: eviction through the store', (backend) => {
  it('evicts, after a reopen, exactly the documented prefix: expired first, then the lowest retention (random stores)', async () => {
    const rand = rng(31);
    const words = { countTokens: (t: string) => t.split(/\s+/).filter(Boolean).length };
    const outcomes = { evicted: 0, refused: 0 };
    for (let trial = 0; trial < 10; trial++) {
      const c = { now: NOW };
      const o = { sweepIntervalMs: 0, dedupThreshold: 2, tokenizer: words, clock: () => c.now, recencyDecay: 0.9 };
      const at = `evict${trial}`;
      const m = await backend.open({ ...o, maxTokens: 1000 }, at);
      type Mine = { id: string; k: number; tokens: number; priority: MemoryPriority; pinned: boolean; expiresAt: number | null; lastAccessed: number; accessCount: number };
      const mine: Mine[] = [];
      const n = 3 + Math.floor(rand() * 8);
      for (let k = 0; k < n; k++) {
        const tokens = 1 + Math.floor(rand() * 5);
        const priority = Math.floor(rand() * 4) as MemoryPriority;
        const pinned = rand() < 0.15;
        const ttl = rand() < 0.2 ? (1 + Math.floor(rand() * 6)) * HOUR : undefined;
        const text = Array.from({ length: tokens }, (_, j) => `t${trial}i${k}w${j}`).join(' ');
        const id = await m.storeMemory(text, MemoryType.EPISODIC, priority, [], { metadata: { k }, pinned, ...(ttl === undefined ? {} : { ttl }) });
        mine.push({ id, k, tokens, priority, pinned, expiresAt: ttl === undefined ? null : c.now + ttl, lastAccessed: c.now, accessCount: 0 });
        c.now += Math.floor(rand() * 3) * HOUR;
      }
      // Retrievals of random subsets: each live item returned gets an access at that time.
      for (let r = 0; r < 4; r++) {
        const ks = mine.filter(() => rand() < 0.4).map((x) => x.k);
        await m.retrieveMemory({ filter: { k: { in: ks } }, topK: 100, maxTokens: 1e6 });
        for (const x of mine) {
          if (ks.includes(x.k) && (x.expiresAt === null || x.expiresAt > c.now)) {
            x.lastAccessed = c.now;
            x.accessCount++;
          }
        }
        c.now += Math.floor(rand() * 4) * HOUR;
      }
      await m.close();
      const used = mine.reduce((a, x) => a + x.tokens, 0);
      const maxTokens = Math.max(1, used - Math.floor(rand() * 4));
      const delta = rand() < 0.15 ? maxTokens + 1 : 1 + Math.floor(rand() * 6);
      // Reference: expired first in store order, then the lowest retention, oldest first on ties.
      const now = c.now;
      const expired = mine.filter((x) => x.expiresAt !== null && x.expiresAt <= now);
      const evictable = mine
        .filter((x) => !expired.includes(x) && x.priority !== MemoryPriority.CRITICAL && !x.pinned)
        .map((x) => ({ x, score: ((x.priority + 1) / 4) * 0.9 ** ((now - x.lastAccessed) / HOUR) * (1 + Math.log1p(x.accessCount)) }))
        .sort((a, b) => a.score - b.score || mine.indexOf(a.x) - mine.indexOf(b.x))
        .map((e) => e.x);
      let need = used + delta - maxTokens;
      const expected: Array<[string, string]> = [];
      for (const x of [...expired, ...evictable]) {
        if (need <= 0) break;
        expected.push([x.id, expired.includes(x) ? 'expired' : 'evicted']);
        need -= x.tokens;
      }
      const again = await backend.open({ ...o, maxTokens }, at);
      for (const x of mine) {
        if (x.expiresAt !== null && x.expiresAt <= now) continue;
        expect(again.getMemory(x.id)).toMatchObject({ lastAccessed: x.lastAccessed, accessCount: x.accessCount, priority: x.priority, pinned: x.pinned });
      }
      const text = Array.from({ length: delta }, (_, j) => `t${trial}new${j}`).join(' ');
      const write = again.storeMemory(text, MemoryType.EPISODIC, MemoryPriority.LOW);
      if (delta > maxTokens || need > 0) {
        await expect(write).rejects.toThrow(RangeError);
        outcomes.refused++;
      } else {
        await write;
        const removed: Array<[string, string]> = [];
        for (const x of mine) {
          const del = (await again.getHistory(x.id)).find((e) => e.event === 'DELETE');
          if (del !== undefined) removed.push([x.id, del.reason!]);
        }
        const order = (ids: Array<[string, string]>) => [...ids].sort((a, b) => a[0].localeCompare(b[0]));
        expect(order(removed)).toEqual(order(expected));
        expect(again.getMetrics().tokensUsed).toBeLessThanOrEqual(maxTokens);
        if (expected.length > 0) outcomes.evicted++;
      }
      await again.close();
    }
    expect(outcomes.evicted).toBeGreaterThan(2); // both outcomes occur
    expect(outcomes.refused).toBeGreaterThan(0);
  });
});
