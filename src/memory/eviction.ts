/**
 * Capacity planning: which items a write removes so that it fits in `maxTokens`. Pure: it
 * reads the items' sizes, priorities, pins, access statistics and expiry, and returns a plan;
 * the store carries it out inside the write's transaction.
 * @module
 */
import { MemoryPriority } from './types';

const HOUR = 3_600_000;

/**
 * What an item's retention depends on.
 * @internal
 */
export interface RetentionInput {
  priority: MemoryPriority;
  lastAccessed: number;
  accessCount: number;
}

/**
 * Retention score, what eviction keeps longest: `(priority + 1) / 4 × recencyDecay^hours since
 * last access × (1 + ln(1 + accessCount))`.
 * @internal
 */
export function retention(r: RetentionInput, now: number, recencyDecay: number): number {
  const hours = Math.max(0, now - r.lastAccessed) / HOUR;
  return ((r.priority + 1) / 4) * recencyDecay ** hours * (1 + Math.log1p(r.accessCount));
}

/**
 * One item as the planner sees it.
 * @internal
 */
export interface EvictionCandidate extends RetentionInput {
  seq: number;
  tokens: number;
  expiresAt: number | null;
  pinned: boolean;
}

/**
 * A write that needs `delta` more tokens.
 * @internal
 */
export interface EvictionRequest {
  /** Every live item, expired ones included, in store order. */
  items: Iterable<EvictionCandidate>;
  /** Tokens the items hold now. */
  usedTokens: number;
  maxTokens: number;
  /** Tokens the write adds (negative when it shrinks an item). */
  delta: number;
  /** The item being changed, never removed (its current size counts towards the write). */
  keep: number | undefined;
  now: number;
  recencyDecay: number;
}

/**
 * One item the plan removes, and why.
 * @internal
 */
export interface Eviction {
  seq: number;
  reason: 'expired' | 'evicted';
}

/**
 * Expired items go first (in store order), then the evictable ones by ascending retention
 * (older first on ties), until the write fits. CRITICAL and pinned items are never evicted.
 * A write that adds nothing always fits, even over a capacity lowered since.
 *
 * @returns The items to remove, in order; empty when the write fits as it is.
 * @throws RangeError when the item alone exceeds `maxTokens`, or when even removing every
 * removable item leaves too little room (the message names what holds the rest).
 * @internal
 */
export function planEviction(req: EvictionRequest): Eviction[] {
  const { usedTokens, maxTokens, delta, keep, now } = req;
  let need = usedTokens + delta - maxTokens;
  if (delta <= 0 || need <= 0) return [];
  const expired: EvictionCandidate[] = [];
  const evictable: Array<{ r: EvictionCandidate; score: number }> = [];
  let keepTokens = 0;
  for (const r of req.items) {
    if (r.seq === keep) keepTokens = r.tokens;
    else if (r.expiresAt !== null && r.expiresAt <= now) expired.push(r);
    else if (r.priority !== MemoryPriority.CRITICAL && !r.pinned) evictable.push({ r, score: retention(r, now, req.recencyDecay) });
  }
  const size = delta + keepTokens;
  if (size > maxTokens) throw new RangeError(`MemAgent: an item of ${size} tokens cannot fit in maxTokens ${maxTokens}`);
  evictable.sort((a, b) => a.score - b.score || a.r.seq - b.r.seq);
  const removable = [...expired, ...evictable.map((e) => e.r)];
  const plan: Eviction[] = [];
  for (const r of removable) {
    if (need <= 0) break;
    plan.push({ seq: r.seq, reason: r.expiresAt !== null && r.expiresAt <= now ? 'expired' : 'evicted' });
    need -= r.tokens;
  }
  if (need > 0) {
    const kept = usedTokens - removable.reduce((a, r) => a + r.tokens, 0) - keepTokens;
    throw new RangeError(`MemAgent: ${delta} more tokens do not fit in maxTokens ${maxTokens}: ${kept} tokens are held by CRITICAL or pinned items, which are never evicted`);
  }
  return plan;
}
