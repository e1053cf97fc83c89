import { describe, expect, it } from 'vitest';
import { fromFloat16, toFloat16 } from '../src/attention/float16';
import { HeadPattern } from '../src/attention/head-pattern';
import { DuoKVCache } from '../src/attention/kv-cache';
import { attentionInputs, maxAbsDiff as maxDiff, referenceAttention } from './support/attention-reference';

const QH = 4;
const KVH = 2;
const D = 24;

function sequence(n: number, seed: number) {
  return attentionInputs(n, n, QH, KVH, D, seed);
}

/** Feeds the sequence to layer `layer` in chunks of the given sizes and returns every output row. */
function feed(cache: DuoKVCache, layer: number, s: ReturnType<typeof sequence>, from: number, chunks: number[]): Float32Array {
  const parts: Float32Array[] = [];
  let t = from;
  for (const n of chunks) {
    parts.push(cache.attend(layer, s.q.subarray(t * QH * D, (t + n) * QH * D), s.k.subarray(t * KVH * D, (t + n) * KVH * D), s.v.subarray(t * KVH * D, (t + n) * KVH * D), { queryHeads: QH }));
    t += n;
  }
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const pattern = HeadPattern.fromMask([[true, false], [false, true]]);

function cache(extra: Partial<ConstructorParameters<typeof DuoKVCache>[0]> = {}) {
  return new DuoKVCache({ layers: 2, kvHeads: KVH, headDim: D, headPattern: pattern, sink: 3, recent: 7, maxTokens: 400, maxRollback: 4, ...extra });
}

describe('DuoKVCache.attend', () => {
  const n = 120;
  const s = sequence(n, 1);
  // Layer 0: head 0 retrieval, head 1 streaming; layer 1 the other way round.
  const ref = [0, 1].map((l) => referenceAttention(s.q, s.k, s.v, { queryHeads: QH, kvHeads: KVH, headDim: D, sink: 3, recent: 7, streaming: pattern.streamingFlags(l) }).output);

  it('one-shot prefill, chunked prefill (chunks larger and smaller than the ring) and decode all equal the reference', () => {
    for (const chunks of [[n], [5, 1, 30, 2, 11, 50, 21], Array<number>(n).fill(1)]) {
      const c = cache();
      for (const layer of [0, 1]) expect(maxDiff(feed(c, layer, s, 0, chunks), ref[layer]!)).toBeLessThan(1e-4);
      expect(c.length(0)).toBe(n);
    }
  });

  it('an all-retrieval pattern equals full attention', () => {
    const c = new DuoKVCache({ layers: 1, kvHeads: KVH, headDim: D, headPattern: HeadPattern.allRetrieval(1, KVH), sink: 3, recent: 7, maxTokens: 400 });
    const full = referenceAttention(s.q, s.k, s.v, { queryHeads: QH, kvHeads: KVH, headDim: D }).output;
    expect(maxDiff(feed(c, 0, s, 0, [17, 1, 1, 101]), full)).toBeLessThan(1e-4);
  });

  it('wraps its ring many times in decode', () => {
    const c = new DuoKVCache({ layers: 1, kvHeads: KVH, headDim: D, headPattern: HeadPattern.allStreaming(1, KVH), sink: 2, recent: 5, maxTokens: 400, maxRollback: 0 });
    const stream = referenceAttention(s.q, s.k, s.v, { queryHeads: QH, kvHeads: KVH, headDim: D, sink: 2, recent: 5, streaming: [true, true] }).output;
    expect(maxDiff(feed(c, 0, s, 0, Array<number>(n).fill(1)), stream)).toBeLessThan(1e-4);
  });

  it('truncate rolls back: new tokens after the rollback attend as if the old ones never came', () => {
    const c = cache();
    const other = sequence(n, 2);
    feed(c, 0, s, 0, [60, 4]); // 64 tokens, then roll back the last 4
    c.truncate(60);
    expect(c.length(0)).toBe(60);
    // The same first 60 tokens followed by `other`'s tokens 60..79.
    const mix = {
      q: Float32Array.from([...s.q.subarray(0, 60 * QH * D), ...other.q.subarray(60 * QH * D, 80 * QH * D)]),
      k: Float32Array.from([...s.k.subarray(0, 60 * KVH * D), ...other.k.subarray(60 * KVH * D, 80 * KVH * D)]),
      v: Float32Array.from([...s.v.subarray(0, 60 * KVH * D), ...other.v.subarray(60 * KVH * D, 80 * KVH * D)]),
    };
    const want = referenceAttention(mix.q, mix.k, mix.v, { queryHeads: QH, kvHeads: KVH, headDim: D, sink: 3, recent: 7, streaming: [false, true] }).output;
    expect(maxDiff(feed(c, 0, mix, 60, [1, 1, 18]), want.subarray(60 * QH * D))).toBeLessThan(1e-4);
  });

  it('refuses a rollback past what the ring holds, naming the layer and positions', () => {
    const c = cache();
    feed(c, 1, s, 0, [40]);
    // The ring holds positions 29..39 (recent 7 + maxRollback 4): back to 35 needs 29.., to 33 needs 27..
    c.truncate(35);
    expect(() => c.truncate(33)).toThrow(new RangeError('Cannot truncate layer 1 from 35 to 33 tokens: its streaming heads no longer hold positions 27 to 28 (raise maxRollback, now 4)'));
    c.truncate(3); // everything left is in the sink
    expect(c.length(1)).toBe(3);
  });

  it('rolls back whenever the window the next query needs is still held', () => {
    const c = cache();
    feed(c, 1, s, 0, [40]);
    c.truncate(0); // everything forgotten: the ring is written afresh from here
    feed(c, 1, s, 0, [8]);
    c.truncate(7);
    expect(c.length(1)).toBe(7);
    // recent 1: the next query needs no ring position at all.
    const one = cache({ recent: 1, maxRollback: 0 });
    feed(one, 1, s, 0, [20]);
    one.truncate(10);
    const want = referenceAttention(s.q.subarray(0, 12 * QH * D), s.k.subarray(0, 12 * KVH * D), s.v.subarray(0, 12 * KVH * D), {
      queryHeads: QH, kvHeads: KVH, headDim: D, sink: 3, recent: 1, streaming: [true, false],
    }).output;
    expect(maxDiff(feed(one, 1, s, 10, [2]), want.subarray(10 * QH * D))).toBeLessThan(1e-4);
  });

  it('attendAsync stores the keys and values of the call, even if the caller reuses its arrays at once', async () => {
    const a = cache();
    const b = cache();
    const k = s.k.slice(0, 30 * KVH * D);
    const v = s.v.slice(0, 30 * KVH * D);
    const pending = b.attendAsync(0, s.q.subarray(0, 30 * QH * D), k, v, { queryHeads: QH });
    k.fill(0);
    v.fill(0);
    await pending;
    feed(a, 0, s, 0, [30]);
    expect(maxDiff(feed(b, 0, s, 30, [5]), feed(a, 0, s, 30, [5]))).toBe(0);
  });

  it('float16 storage equals the reference on the rounded keys and values', () => {
    const c = cache({ dtype: 'float16' });
    const k16 = fromFloat16(toFloat16(s.k));
    const v16 = fromFloat16(toFloat16(s.v));
    const want = referenceAttention(s.q, k16, v16, { queryHeads: QH, kvHeads: KVH, headDim: D, sink: 3, recent: 7, streaming: [false, true] }).output;
    expect(maxDiff(feed(c, 0, s, 0, [50, 1, 69]), want)).toBeLessThan(1e-4);
  });

  it('attendAsync equals attend and blocks changes while it runs', async () => {
    const a = cache();
    const b = cache();
    const sync = feed(a, 0, s, 0, [90]);
    const q = s.q.subarray(0, 90 * QH * D);
    const pending = b.attendAsync(0, q, s.k.subarray(0, 90 * KVH * D), s.v.subarray(0, 90 * KVH * D), { queryHeads: QH });
    expect(() => b.append(1, s.k.subarray(0, KVH * D), s.v.subarray(0, KVH * D))).toThrow(
      new Error('Cannot append while an attendAsync call is reading the cache: await it first'),
    );
    expect(maxDiff(await pending, sync)).toBe(0);
    expect(b.length(0)).toBe(90);
  });
});

describe('DuoKVCache memory', () => {
  it('reports bytes held against a full cache', () => {
    const c = cache({ maxRollback: 0 });
    const s = sequence(100, 3);
    for (const layer of [0, 1]) c.append(layer, s.k, s.v);
    // Per layer: one retrieval head × 100 rows + one streaming head × (3 + 7) rows; K and V; 4 bytes.
    expect(c.bytesUsed()).toBe(2 * (100 + 10) * 2 * D * 4);
    expect(c.bytesFullCache()).toBe(2 * 2 * 100 * 2 * D * 4);
    expect(c.bytesAllocated()).toBeGreaterThanOrEqual(c.bytesUsed());
    c.reset();
    expect(c.bytesUsed()).toBe(0);
  });
});

describe('DuoKVCache errors', () => {
  it('checks its options', () => {
    expect(() => cache({ sink: 300, recent: 200 })).toThrow(new RangeError('Expected sink + recent (300 + 200) <= maxTokens (400)'));
    expect(() => cache({ headPattern: HeadPattern.allRetrieval(3, 2) })).toThrow(new RangeError('Expected headPattern of 2 layers × 2 kvHeads but received 3 × 2'));
    expect(() => cache({ headPattern: {} as never })).toThrow(new TypeError('Expected HeadPattern for headPattern but received object'));
    expect(() => cache({ recent: 0 })).toThrow(new RangeError('Expected integer >= 1 for recent but received 0 of type number'));
    expect(() => cache({ maxRollback: 401 })).toThrow(new RangeError('Expected integer in [0, 400] for maxRollback but received 401 of type number'));
    // Past 2^53 bytes, so V8 refuses it before asking the allocator (which AddressSanitizer would abort).
    // Blocks of 64 positions: ceil((2^40 - 2) / 64) sink blocks + ceil((1 + 64) / 64) ring blocks per head.
    expect(() => new DuoKVCache({ layers: 1, kvHeads: 1024, headDim: 256, headPattern: HeadPattern.allStreaming(1, 1024), sink: 2 ** 40 - 2, recent: 1, maxTokens: 2 ** 40 })).toThrow(
      new RangeError(`Could not allocate ${1024 * (2 ** 34 + 2) * 64 * 256 * 4} bytes of KV cache (kvHeads 1024 × headDim 256 × sink + recent + maxRollback or maxTokens rows)`),
    );
    expect(() => cache({ dtype: 'int8' as never })).toThrow(new RangeError("Expected one of 'float32', 'float16' for dtype but received 'int8' of type string"));
    expect(() => cache({ storage: 'int4' as never })).toThrow(new RangeError("Expected one of 'float32', 'float16', 'bf16', 'int8' for storage but received 'int4' of type string"));
    expect(() => cache({ dtype: 'float16', storage: 'int8' })).toThrow(new TypeError("Expected one storage type but received dtype 'float16' and storage 'int8'"));
  });
  it('refuses tokens past maxTokens and bad chunks', () => {
    const c = cache({ maxTokens: 20 });
    const s = sequence(21, 4);
    expect(() => c.append(0, s.k, s.v)).toThrow(new RangeError('Expected at most 20 more tokens for layer 0 (maxTokens 20, 0 stored) but received 21'));
    expect(() => c.append(2, s.k, s.v)).toThrow(new RangeError('Expected integer in [0, 1] for layer but received 2 of type number'));
    expect(() => c.append(0, s.k.subarray(1), s.v)).toThrow(new RangeError(`Expected k length to be a multiple of kvHeads * headDim (${KVH * D}) but received ${21 * KVH * D - 1}`));
    expect(() => c.attend(0, s.q.subarray(0, 5), s.k.subarray(0, KVH * D), s.v.subarray(0, KVH * D), { queryHeads: QH })).toThrow(
      new RangeError(`Expected Float32Array of length ${QH * D} for q but received Float32Array of length 5`),
    );
    const half = cache({ dtype: 'float16', maxTokens: 20 });
    const kv = attentionInputs(2, 2, QH, KVH, D, 5);
    expect(() => half.append(0, kv.k, toFloat16(kv.v))).toThrow(new TypeError(`Expected Float32Array (the type of k) for v but received Uint16Array of length ${2 * KVH * D}`));
    expect(c.length(0)).toBe(0);
  });
});

describe('HeadPattern.kvBytes and the cache agree', () => {
  it('with the cache rollback slots counted', () => {
    const c = cache({ maxRollback: 4 });
    const s = attentionInputs(100, 100, QH, KVH, D, 9);
    for (const layer of [0, 1]) c.append(layer, s.k, s.v);
    const sized = pattern.kvBytes({ tokens: 100, headDim: D, sink: 3, recent: 7, maxRollback: 4 });
    expect(sized.bytes).toBe(c.bytesUsed());
    expect(sized.fullBytes).toBe(c.bytesFullCache());
  });
});
