/** The split rules behind HeadPattern, as pure functions, and the KV sizing of a split. */
import { describe, expect, it } from 'vitest';
import { breaksTop, countOf, quantile, rank, readMask, readScores, readShape, topHeads, windowPart } from '../src/attention/head-split';
import { headBytes, kvBytesOf, retrievalWithin } from '../src/attention/kv-size';

describe('head-split', () => {
  it('ranks by score descending, ties to the lower index', () => {
    expect(Array.from(rank(Float64Array.of(0.5, 0.9, 0.5, 0.1, 0.5)))).toEqual([1, 0, 2, 4, 3]);
    expect(Array.from(topHeads(Float64Array.of(0.5, 0.9, 0.5, 0.1, 0.5), 3))).toEqual([1, 1, 1, 0, 0]);
    expect(Array.from(topHeads(Float64Array.of(0.2, 0.1), 0))).toEqual([0, 0]);
  });

  it('finds the first head, in rank order, that breaks a top-k split', () => {
    const scores = Float64Array.of(0.9, 0.5, 0.5, 0.1);
    expect(breaksTop(scores, Uint8Array.of(1, 1, 0, 0), 2)).toBeUndefined();
    expect(breaksTop(scores, Uint8Array.of(1, 0, 1, 0), 2)).toBe(1); // the tie goes to head 1
    expect(breaksTop(scores, Uint8Array.of(0, 0, 0, 1), 1)).toBe(0);
  });

  it('rounds ratio × total half up, with a tolerance for inexact ratios', () => {
    expect([0, 0.05, 0.35, 0.349, 0.5, 1].map((r) => countOf(r, 10))).toEqual([0, 1, 4, 3, 5, 10]);
    expect(countOf(0.5, 7)).toBe(4);
  });

  it('computes numpy.quantile (linear) on unsorted values', () => {
    // numpy.quantile([0.1, 0.7, 0.7, 0.3, 0.9, 0.7, 0.2, 0.5], q)
    const a = Float64Array.of(0.1, 0.7, 0.7, 0.3, 0.9, 0.7, 0.2, 0.5);
    expect(quantile(a, 0.25)).toBeCloseTo(0.275, 15);
    expect(quantile(a, 0.5)).toBeCloseTo(0.6, 15);
    expect(quantile(a, 0.75)).toBe(0.7);
    expect(quantile(a, 1)).toBe(0.9);
    expect(quantile(a, 0)).toBe(0.1);
  });

  it('reads shapes, scores and masks, naming what is wrong', () => {
    expect(readShape({ layers: 2, kvHeads: 3, sink: 4 })).toEqual({ layers: 2, kvHeads: 3, sink: 4 });
    expect(() => readShape({ layers: 2, kvHeads: 0 }, 'json')).toThrow(new RangeError('Expected integer >= 1 for json.kvHeads but received 0 of type number'));
    expect(Array.from(readScores([1, 2], { layers: 1, kvHeads: 2 }))).toEqual([1, 2]);
    expect(() => readScores([1, Infinity], { layers: 1, kvHeads: 2 }, 'alphas')).toThrow(new RangeError('Expected finite numbers for alphas but alphas[1] is Infinity'));
    expect(readMask([[true, 0], [1, false]], undefined)).toEqual({ shape: { layers: 2, kvHeads: 2 }, scores: Float64Array.of(1, 0, 1, 0) });
    expect(readMask([1, 0, 0], { layers: 1, kvHeads: 3, sink: 2 })).toEqual({ shape: { layers: 1, kvHeads: 3, sink: 2 }, scores: Float64Array.of(1, 0, 0) });
    expect(() => readMask([1, 2], { layers: 1, kvHeads: 2 })).toThrow(new RangeError('Expected boolean or 0/1 for mask[1] but received 2 of type number'));
    expect(() => readMask([1, 0], undefined)).toThrow(new TypeError('Expected shape options for a flat mask for shape but received undefined'));
  });

  it('takes a window part as given, else the pattern own, else refuses', () => {
    expect(windowPart('options.sink', 3, 64)).toBe(3);
    expect(windowPart('options.sink', undefined, 64)).toBe(64);
    expect(() => windowPart('options.recent', undefined, undefined)).toThrow(
      new TypeError('Expected integer >= 0 (the pattern has no window) for options.recent but received undefined'),
    );
  });
});

describe('kv-size', () => {
  it('sizes one retrieval and one streaming head (keys and values)', () => {
    expect(headBytes({ tokens: 1000, headDim: 8, dtype: 'float16' }, 4, 12)).toEqual({ full: 2 * 8 * 2 * 1000, streaming: 2 * 8 * 2 * 16 });
    expect(headBytes({ tokens: 10, headDim: 8, bytesPerElement: 0.5, maxRollback: 4 }, 4, 12)).toEqual({ full: 80, streaming: 80 });
    expect(() => headBytes({ tokens: 10, headDim: 8, dtype: 'float32', bytesPerElement: 1 }, 0, 1)).toThrow(
      new TypeError('Expected one of dtype and bytesPerElement in options but received both'),
    );
  });

  it('sizes a split and the most retrieval heads a budget allows', () => {
    const own = { sink: 4, recent: 12 };
    // 3 of 8 heads retrieval at 1000 tokens, headDim 8, float32: per head 64000 B full, 1024 B streaming.
    expect(kvBytesOf(3, 8, { tokens: 1000, headDim: 8 }, own)).toEqual({ bytes: 3 * 64000 + 5 * 1024, fullBytes: 8 * 64000, ratio: (3 * 64000 + 5 * 1024) / (8 * 64000) });
    expect(kvBytesOf(0, 0, { tokens: 1, headDim: 1 }, own).ratio).toBe(1);
    const o = { tokens: 1000, headDim: 8, bytes: 8 * 1024 + 2 * (64000 - 1024) };
    expect(retrievalWithin(o, 4, 12, 8)).toBe(2);
    expect(retrievalWithin({ ...o, bytes: 1e12 }, 4, 12, 8)).toBe(8);
    expect(retrievalWithin({ ...o, tokens: 10, bytes: 8 * 640 }, 4, 12, 8)).toBe(8); // context within the window
    expect(() => retrievalWithin({ ...o, bytes: 100 }, 4, 12, 8)).toThrow(
      new RangeError('Expected at least 8192 (every head streaming at 1000 tokens) for options.bytes but received 100 of type number'),
    );
  });
});
