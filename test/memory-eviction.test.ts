import { describe, expect, it } from 'vitest';
import { type EvictionCandidate, type EvictionRequest, planEviction, retention } from '../src/memory/eviction';
import { MemoryPriority } from '../src/memory/types';
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
