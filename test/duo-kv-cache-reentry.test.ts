/**
 * DuoKVCache called back from inside its own call (issue 20, item 7): an options getter that
 * appends to the same cache. The call reads its options before it looks at the cache, so the
 * getter's append is a whole earlier step and the room check sees it.
 */
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { HeadPattern } from '../src/attention/head-pattern';
import { type CacheAttendOptions, DuoKVCache } from '../src/attention/kv-cache';
import { attentionInputs } from './support/attention-reference';

const QH = 4;
const KVH = 2;
const D = 8;
const MAX = 16;

/** Runs `fn` under a watchdog, so that a call that loops forever fails the test instead of hanging it. */
function bounded<T>(fn: () => T): T {
  return runInNewContext('fn()', { fn }, { timeout: 5000 }) as T;
}

const patterns = {
  retrieval: HeadPattern.allRetrieval(1, KVH),
  streaming: HeadPattern.allStreaming(1, KVH),
  mixed: HeadPattern.fromMask([[true, false]]),
};

/** A cache one token short of full, one new token, and options whose getter first appends one token. */
function setup(pattern: HeadPattern, read: keyof CacheAttendOptions = 'queryHeads') {
  const cache = new DuoKVCache({ layers: 1, kvHeads: KVH, headDim: D, headPattern: pattern, sink: 2, recent: 4, maxTokens: MAX, maxRollback: 0 });
  const s = attentionInputs(MAX, MAX, QH, KVH, D, 3);
  cache.append(0, s.k.subarray(0, (MAX - 1) * KVH * D), s.v.subarray(0, (MAX - 1) * KVH * D));
  const k = s.k.subarray((MAX - 1) * KVH * D);
  const v = s.v.subarray((MAX - 1) * KVH * D);
  const q = s.q.subarray((MAX - 1) * QH * D);
  const values: CacheAttendOptions = { queryHeads: QH };
  const options = {} as CacheAttendOptions;
  Object.defineProperty(options, read, {
    enumerable: true,
    get() {
      cache.append(0, k, v);
      return values[read];
    },
  });
  return { cache, q, k, v, options };
}

const full = new RangeError(`Expected at most 0 more tokens for layer 0 (maxTokens ${MAX}, ${MAX} stored) but received 1`);

describe('DuoKVCache re-entered from an options getter', () => {
  for (const [name, pattern] of Object.entries(patterns)) {
    it(`attend with ${name} heads refuses the token the getter's append left no room for`, () => {
      const { cache, q, k, v, options } = setup(pattern);
      expect(() => bounded(() => cache.attend(0, q, k, v, options))).toThrow(full);
      expect(cache.length(0)).toBe(MAX);
      expect(cache.bytesUsed()).toBeLessThanOrEqual(cache.bytesFullCache());
    });

  }

  // Streaming heads only: with a retrieval head, the old code looped forever after the await,
  // where no watchdog can stop it.
  it('attendAsync rejects the same way', async () => {
    const { cache, q, k, v, options } = setup(patterns.streaming);
    await expect(bounded(() => cache.attendAsync(0, q, k, v, options))).rejects.toThrow(full);
    expect(cache.length(0)).toBe(MAX);
    expect(() => cache.truncate(MAX - 1)).not.toThrow(); // not left busy
  });

  it('reads each option once, before the cache: a getter on any option sees the same', () => {
    for (const key of ['scale', 'threads', 'lse'] as const) {
      const { cache, q, k, v, options } = setup(patterns.mixed, key);
      Object.defineProperty(options, 'queryHeads', { value: QH, enumerable: true });
      expect(() => bounded(() => cache.attend(0, q, k, v, options))).toThrow(full);
      expect(cache.length(0)).toBe(MAX);
    }
  });

  it('a getter that only reads leaves the call as it was', () => {
    const { cache, q, k, v } = setup(patterns.mixed);
    cache.truncate(MAX - 2);
    let reads = 0;
    const options = {
      get queryHeads() {
        reads++;
        return QH;
      },
    };
    expect(cache.attend(0, q, k, v, options)).toHaveLength(QH * D);
    expect(reads).toBe(1);
    expect(cache.length(0)).toBe(MAX - 1);
  });
});
