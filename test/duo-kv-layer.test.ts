/** KvLayer, the storage of one DuoKVCache layer: where positions land and what the kernel is told to read. */
import { describe, expect, it } from 'vitest';
import { BLOCK, FORMAT, type Format, type KvCacheStorage } from '../src/attention/kv-format';
import { type KvBuffer, type KvGeometry, KvLayer } from '../src/attention/kv-layer';
import { native } from '../src/native';

const D = 2;

function geometry(extra: Partial<KvGeometry> = {}): KvGeometry {
  const storage: KvCacheStorage = extra.storage ?? 'float32';
  return {
    kvHeads: 2, headDim: D, sink: 2, recent: 3, ring: 4, maxTokens: 1000, maxRollback: 1, storage,
    alloc: (format: Format, n: number) =>
      format === FORMAT.blockI8 ? new Uint8Array(new SharedArrayBuffer(n))
        : format === FORMAT.blockF32 || format === FORMAT.denseF32 ? new Float32Array(new SharedArrayBuffer(n * 4))
          : new Uint16Array(new SharedArrayBuffer(n * 2)),
    ...extra,
  };
}

const write = (buffers: KvBuffer[], table: Float64Array, headDim: number) => native().attentionKvWrite(buffers, table, headDim);

/** Keys whose every element is the token's position (values the negation), `[n, kvHeads, D]`. */
function tokens(from: number, n: number, kvHeads = 2): { k: Float32Array; v: Float32Array } {
  const k = new Float32Array(n * kvHeads * D);
  for (let t = 0; t < n; t++) k.fill(from + t, t * kvHeads * D, (t + 1) * kvHeads * D);
  return { k, v: k.map((x) => -x) };
}

/** Dimension 0 of key j of a segment row (float32 formats: dense rows, or blocks [D][64]). */
function keyAt(buffers: KvBuffer[], row: Float64Array, j: number): number {
  const [, format, kb, , offset, , stride, , , lane] = row;
  const buf = buffers[kb!]!;
  if (format === FORMAT.denseF32) return buf[offset! + j * stride!]!;
  expect(format).toBe(FORMAT.blockF32);
  const at = lane! + j;
  return buf[offset! + Math.floor(at / BLOCK) * BLOCK * D + (at % BLOCK)]!;
}

/** The segments of head `h` as [format, buffer, count, first position, lane], and the positions whose keys they point at. */
function seen(layer: KvLayer, h: number, n = 0): { runs: number[][]; keys: number[] } {
  const chunk = tokens(layer.length, n);
  const { buffers, table } = layer.segments(n, chunk.k, chunk.v, FORMAT.denseF32);
  const runs: number[][] = [];
  const keys: number[] = [];
  for (let i = 0; i < table.length; i += 10) {
    const row = table.subarray(i, i + 10);
    const [head, format, kb, , , , , count, first, lane] = row;
    if (head !== h) continue;
    runs.push([format!, kb!, count!, first!, lane!]);
    for (let j = 0; j < count!; j++) keys.push(keyAt(buffers, row, j));
  }
  return { runs, keys };
}

const F = FORMAT.blockF32;
const DENSE = FORMAT.denseF32;

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
    l.store(9, k, v, write);
    // Positions 0, 1 in the sink block; the ring (4 slots) holds 5..8 in slots (p - 2) mod 4: 7→1, 8→2, 5→3, 6→0.
    const s = seen(l, 0, 1);
    expect(s.keys).toEqual([0, 1, 7, 8, 9]); // sink, then (9 - 3, 9) = 7, 8, then the new token
    expect(s.runs).toEqual([[F, 2, 2, 0, 0], [F, 2, 2, 7, 1], [DENSE, 4, 1, 9, 0]]);
    // The retrieval head reads every stored position, then the new one.
    expect(seen(l, 1, 1).keys).toEqual([...Array(9).keys(), 9]);
  });

  it('splits a window that wraps the ring into two runs', () => {
    const l = new KvLayer(geometry({ recent: 4 }), [true, false]);
    const { k, v } = tokens(0, 8);
    l.store(8, k, v, write);
    // Window of the next query (position 8): 5, 6, 7 in ring slots 3, 0, 1.
    expect(seen(l, 0).keys).toEqual([0, 1, 5, 6, 7]);
    expect(seen(l, 0).runs).toEqual([[F, 2, 2, 0, 0], [F, 2, 1, 5, 3], [F, 2, 2, 6, 0]]);
  });

  it('a ring of more than a block spans blocks, and a sink of more than a block too', () => {
    const l = new KvLayer(geometry({ sink: 70, recent: 100, ring: 130 }), [true, false]);
    const { k, v } = tokens(0, 400);
    l.store(400, k, v, write);
    const s = seen(l, 0);
    expect(s.keys).toEqual([...Array(70).keys(), ...Array.from({ length: 99 }, (_, i) => 301 + i)]);
  });

  it('stores chunks longer than the ring (only what the ring keeps) as one-by-one stores do', () => {
    const a = new KvLayer(geometry(), [true, true]);
    const b = new KvLayer(geometry(), [true, true]);
    const { k, v } = tokens(0, 23);
    a.store(23, k, v, write);
    for (let t = 0; t < 23; t++) b.store(1, k.subarray(t * 2 * D, (t + 1) * 2 * D), v.subarray(t * 2 * D, (t + 1) * 2 * D), write);
    expect(seen(a, 1).keys).toEqual([0, 1, 21, 22]);
    expect(seen(b, 1).keys).toEqual(seen(a, 1).keys);
  });

  it('grows the full cache by doubling from 256 rows (4 blocks), up to maxTokens rounded up to a block, keeping what it holds', () => {
    const l = new KvLayer(geometry({ maxTokens: 600 }), [false, false]);
    expect(l.bytesAllocated()).toBe(0);
    l.store(1, tokens(0, 1).k, tokens(0, 1).v, write);
    expect(l.bytesAllocated()).toBe(2 * 2 * 256 * D * 4);
    const { k, v } = tokens(1, 299);
    l.store(299, k, v, write);
    expect(l.bytesAllocated()).toBe(2 * 2 * 512 * D * 4);
    l.store(300, tokens(300, 300).k, tokens(300, 300).v, write);
    expect(l.bytesAllocated()).toBe(2 * 2 * 640 * D * 4);
    expect(seen(l, 1).keys).toEqual([...Array(600).keys()]);
    expect(() => l.store(1, tokens(600, 1).k, tokens(600, 1).v, write)).toThrow(new RangeError('KV layer asked to hold 601 tokens, past maxTokens 600'));
  });

  it('knows which positions a rollback needs that the ring has overwritten', () => {
    const l = new KvLayer(geometry(), [true, false]);
    const { k, v } = tokens(0, 12);
    l.store(12, k, v, write); // ring holds 8..11
    expect(l.missingForRollback(12)).toBeUndefined();
    expect(l.missingForRollback(10)).toBeUndefined(); // needs 8, 9
    expect(l.missingForRollback(9)).toEqual({ needed: 7, held: 8 });
    expect(l.missingForRollback(2)).toBeUndefined(); // within the sink
    l.truncate(10);
    expect(l.length).toBe(10);
    expect(seen(l, 0).keys).toEqual([0, 1, 8, 9]);
  });

  it('int8: complete blocks are read as int8 blocks, the newest positions as float32 rows, and rollback restores them', () => {
    const l = new KvLayer(geometry({ storage: 'int8', maxRollback: 64 }), [true, false]);
    const { k, v } = tokens(0, 150);
    l.store(150, k, v, write);
    const { table } = l.segments(0, new Float32Array(0), new Float32Array(0), FORMAT.denseF32);
    const rows = (h: number) => Array.from({ length: table.length / 10 }, (_, i) => table.subarray(i * 10, i * 10 + 10)).filter((r) => r[0] === h);
    // Retrieval head 1: positions 0..127 in two int8 blocks, 128..149 as float32 rows (buffers 6/7).
    expect(rows(1).map((r) => [r[1], r[2], r[7], r[8]])).toEqual([[FORMAT.blockI8, 0, 128, 0], [FORMAT.denseF32, 6, 22, 128]]);
    // The streaming head keeps its window in float32 blocks.
    expect(rows(0).every((r) => r[1] === FORMAT.blockF32)).toBe(true);
    // Back into the second block: its rows come back as float32 (exactly: the float32 copy still holds them).
    l.truncate(100);
    const after = l.segments(0, new Float32Array(0), new Float32Array(0), FORMAT.denseF32);
    const r1 = Array.from({ length: after.table.length / 10 }, (_, i) => after.table.subarray(i * 10, i * 10 + 10)).filter((r) => r[0] === 1);
    expect(r1.map((r) => [r[1], r[7], r[8]])).toEqual([[FORMAT.blockI8, 64, 0], [FORMAT.denseF32, 36, 64]]);
    const dense = r1[1]!;
    for (let j = 0; j < 36; j++) expect(after.buffers[6]![dense[4]! + j * D]).toBe(64 + j);
  });

  it('int8: a rollback past the float32 copy dequantises the block it lands in', () => {
    const l = new KvLayer(geometry({ storage: 'int8', maxRollback: 0 }), [false, false]);
    const { k, v } = tokens(0, 300);
    l.store(300, k, v, write);
    l.truncate(70); // block 1 (64..127) was quantised and its float32 rows overwritten long ago
    const { buffers, table } = l.segments(0, new Float32Array(0), new Float32Array(0), FORMAT.denseF32);
    const dense = Array.from({ length: table.length / 10 }, (_, i) => table.subarray(i * 10, i * 10 + 10)).find((r) => r[0] === 0 && r[1] === FORMAT.denseF32)!;
    expect([dense[7], dense[8]]).toEqual([6, 64]);
    // Keys 64..127 quantised per channel over the block: steps of 63 / 255, so within half a step.
    for (let j = 0; j < 6; j++) expect(Math.abs(buffers[6]![dense[4]! + j * D]! - (64 + j))).toBeLessThanOrEqual(63 / 255 / 2 + 1e-5);
  });
});
