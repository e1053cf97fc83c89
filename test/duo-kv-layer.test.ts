/** KvLayer, the storage of one DuoKVCache layer: where positions land and what the kernel is told to read. */
import { describe, expect, it } from 'vitest';
import { type KvGeometry, KvLayer } from '../src/attention/kv-layer';

const D = 2;

function geometry(extra: Partial<KvGeometry> = {}): KvGeometry {
  return { kvHeads: 2, headDim: D, sink: 2, recent: 3, ring: 4, maxTokens: 1000, alloc: (n) => new Float32Array(new SharedArrayBuffer(n * 4)), ...extra };
}

/** Keys whose every element is the token's position (values the negation), `[n, kvHeads, D]`. */
function tokens(from: number, n: number, kvHeads = 2): { k: Float32Array; v: Float32Array } {
  const k = new Float32Array(n * kvHeads * D);
  for (let t = 0; t < n; t++) k.fill(from + t, t * kvHeads * D, (t + 1) * kvHeads * D);
  return { k, v: k.map((x) => -x) };
}

/** The segments of head `h` as [buffer, count, first position], and the positions whose keys they point at. */
function seen(layer: KvLayer, h: number, n = 0): { runs: number[][]; keys: number[] } {
  const chunk = tokens(layer.length, n);
  const { buffers, table } = layer.segments(n, chunk.k, chunk.v);
  const runs: number[][] = [];
  const keys: number[] = [];
  for (let i = 0; i < table.length; i += 8) {
    const [head, kb, , offset, , stride, count, first] = table.subarray(i, i + 8);
    if (head !== h) continue;
    runs.push([kb!, count!, first!]);
    for (let j = 0; j < count!; j++) keys.push(buffers[kb!]![offset! + j * stride!]!);
  }
  return { runs, keys };
}

describe('KvLayer', () => {
  it('splits the heads by the flags and keeps each group in order', () => {
    const l = new KvLayer(geometry({ kvHeads: 4 }), [true, false, true, false]);
    expect(l.streaming).toEqual([0, 2]);
    expect(l.retrieval).toEqual([1, 3]);
    expect(Array.from(l.flags)).toEqual([1, 0, 1, 0]);
  });

  it('a streaming head is told to read its sink and the ring positions of the window, oldest first, across the wrap', () => {
    const l = new KvLayer(geometry(), [true, false]);
    const { k, v } = tokens(0, 9);
    l.store(9, k, v);
    // Positions 0, 1 in the sink; the ring (4 slots) holds 5..8 in slots 2 + (p - 2) mod 4: 7→3, 8→4, 5→5, 6→2.
    const s = seen(l, 0, 1);
    expect(s.keys).toEqual([0, 1, 7, 8, 9]); // sink, then (9 - 3, 9) = 7, 8, then the new token
    expect(s.runs).toEqual([[2, 2, 0], [2, 2, 7], [4, 1, 9]]);
    // The retrieval head reads every stored position, then the new one.
    expect(seen(l, 1, 1).keys).toEqual([...Array(9).keys(), 9]);
  });

  it('splits a window that wraps the ring into two runs', () => {
    const l = new KvLayer(geometry({ recent: 4 }), [true, false]);
    const { k, v } = tokens(0, 8);
    l.store(8, k, v);
    // Window of the next query (position 8): 5, 6, 7 in slots 5, 2, 3.
    expect(seen(l, 0).keys).toEqual([0, 1, 5, 6, 7]);
    expect(seen(l, 0).runs).toEqual([[2, 2, 0], [2, 1, 5], [2, 2, 6]]);
  });

  it('stores chunks longer than the ring (only what the ring keeps) as one-by-one stores do', () => {
    const a = new KvLayer(geometry(), [true, true]);
    const b = new KvLayer(geometry(), [true, true]);
    const { k, v } = tokens(0, 23);
    a.store(23, k, v);
    for (let t = 0; t < 23; t++) b.store(1, k.subarray(t * 2 * D, (t + 1) * 2 * D), v.subarray(t * 2 * D, (t + 1) * 2 * D));
    expect(seen(a, 1).keys).toEqual([0, 1, 21, 22]);
    expect(seen(b, 1).keys).toEqual(seen(a, 1).keys);
  });

  it('grows the full cache by doubling from 256 rows, up to maxTokens, keeping what it holds', () => {
    const l = new KvLayer(geometry({ maxTokens: 600 }), [false, false]);
    expect(l.bytesAllocated()).toBe(0);
    l.store(1, tokens(0, 1).k, tokens(0, 1).v);
    expect(l.bytesAllocated()).toBe(2 * 2 * 256 * D * 4);
    const { k, v } = tokens(1, 299);
    l.store(299, k, v);
    expect(l.bytesAllocated()).toBe(2 * 2 * 512 * D * 4);
    l.store(300, tokens(300, 300).k, tokens(300, 300).v);
    expect(l.bytesAllocated()).toBe(2 * 2 * 600 * D * 4);
    expect(seen(l, 1).keys).toEqual([...Array(600).keys()]);
    expect(() => l.store(1, tokens(600, 1).k, tokens(600, 1).v)).toThrow(new RangeError('KV layer asked to hold 601 tokens, past maxTokens 600'));
  });

  it('knows which positions a rollback needs that the ring has overwritten', () => {
    const l = new KvLayer(geometry(), [true, false]);
    const { k, v } = tokens(0, 12);
    l.store(12, k, v); // ring holds 8..11
    expect(l.missingForRollback(12)).toBeUndefined();
    expect(l.missingForRollback(10)).toBeUndefined(); // needs 8, 9
    expect(l.missingForRollback(9)).toEqual({ needed: 7, held: 8 });
    expect(l.missingForRollback(2)).toBeUndefined(); // within the sink
    l.truncate(10);
    expect(l.length).toBe(10);
    expect(l.rowsHeld()).toBe(10 + 6);
    expect(seen(l, 0).keys).toEqual([0, 1, 8, 9]);
  });
});
