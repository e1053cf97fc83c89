import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';

import { checkAttentionOptions } from '../src/attention/check';
import type { AttentionOptions } from '../src/attention/types';

const base = { queryHeads: 4, kvHeads: 2, headDim: 8 };
// 3 query tokens, 5 key tokens.
const q = new Float32Array(3 * 4 * 8);
const k = new Float32Array(5 * 2 * 8);
const v = new Float32Array(5 * 2 * 8);

const check = (options: unknown, arrays: { q?: unknown; k?: unknown; v?: unknown } = {}, where?: string) =>
  checkAttentionOptions('q' in arrays ? arrays.q : q, 'k' in arrays ? arrays.k : k, 'v' in arrays ? arrays.v : v, options as AttentionOptions, where);

describe('checkAttentionOptions', () => {
  it('fills in the defaults', () => {
    expect(check(base)).toEqual({
      nq: 3, nk: 5, queryHeads: 4, kvHeads: 2, headDim: 8, group: 2, causal: true, queryOffset: 2, scale: 1 / Math.sqrt(8),
      sink: 0, recent: 0, streaming: new Uint8Array(2), anyStreaming: false, kvType: 'float32', threads: availableParallelism(),
    });
  });

  it('keeps given values, takes Uint8Array flags and float16 bits', () => {
    const c = check({ ...base, queryOffset: 7, scale: 0.25, sink: 4, recent: 16, streamingHeads: [false, true], threads: 3 });
    expect(c).toMatchObject({ queryOffset: 7, scale: 0.25, sink: 4, recent: 16, anyStreaming: true, threads: 3 });
    expect(Array.from(c.streaming)).toEqual([0, 1]);
    expect(Array.from(check({ ...base, recent: 1, streamingHeads: Uint8Array.of(1, 1) }).streaming)).toEqual([1, 1]);
    const h = check(base, { k: new Uint16Array(k.length), v: new Uint16Array(v.length) });
    expect(h.kvType).toBe('float16');
    expect(h.nk).toBe(5);
  });

  it('cross-attention: no offset, queries may outnumber keys', () => {
    const c = check({ ...base, causal: false }, { k: new Float32Array(16), v: new Float32Array(16) });
    expect(c).toMatchObject({ causal: false, queryOffset: 0, nq: 3, nk: 1 });
  });

  it('no query tokens is a valid empty call', () => {
    expect(check(base, { q: new Float32Array(0) })).toMatchObject({ nq: 0, queryOffset: 5 });
  });

  const rejects: Array<[string, unknown, { q?: unknown; k?: unknown; v?: unknown }, string, typeof TypeError]> = [
    ['no options', undefined, {}, 'Expected an options object for options but received undefined', TypeError],
    ['a misspelled option', { ...base, streamHeads: [] }, {},
      "Unknown option 'streamHeads' in options (expected one of: queryHeads, kvHeads, headDim, causal, queryOffset, scale, sink, recent, streamingHeads, threads)", TypeError],
    ['no headDim', { queryHeads: 4, kvHeads: 2 }, {}, 'Expected integer in [1, 256] for headDim but received undefined', TypeError],
    ['headDim 0', { ...base, headDim: 0 }, {}, 'Expected integer in [1, 256] for headDim but received 0 of type number', RangeError],
    ['headDim 257', { ...base, headDim: 257 }, {}, 'Expected integer in [1, 256] for headDim but received 257 of type number', RangeError],
    ['headDim 1.5', { ...base, headDim: 1.5 }, {}, 'Expected integer in [1, 256] for headDim but received 1.5 of type number', RangeError],
    ["headDim '8'", { ...base, headDim: '8' }, {}, "Expected integer in [1, 256] for headDim but received '8' of type string", TypeError],
    ['kvHeads 0', { ...base, kvHeads: 0 }, {}, 'Expected integer in [1, 65536] for kvHeads but received 0 of type number', RangeError],
    ['queryHeads missing', { kvHeads: 2, headDim: 8 }, {}, 'Expected integer in [1, 65536] for queryHeads but received undefined', TypeError],
    ['queryHeads not a multiple', { ...base, queryHeads: 12, kvHeads: 8 }, {}, 'Expected queryHeads to be a multiple of kvHeads (8) but received 12', RangeError],
    ['q of float64', base, { q: new Float64Array(96) }, 'Expected Float32Array for q but received Float64Array of length 96', TypeError],
    ['q as an array', base, { q: [1, 2] }, 'Expected Float32Array for q but received Array of length 2', TypeError],
    ['k of int16', base, { k: new Int16Array(80) }, 'Expected Float32Array or Uint16Array (float16 bits) for k but received Int16Array of length 80', TypeError],
    ['v missing', base, { v: null }, 'Expected Float32Array or Uint16Array (float16 bits) for v but received null', TypeError],
    ['v of another type than k', base, { v: new Uint16Array(80) }, 'Expected Float32Array (the type of k) for v but received Uint16Array of length 80', TypeError],
    ['q length', base, { q: new Float32Array(95) }, 'Expected q length to be a multiple of queryHeads * headDim (32) but received 95', RangeError],
    ['k length', base, { k: new Float32Array(81) }, 'Expected k length to be a multiple of kvHeads * headDim (16) but received 81', RangeError],
    ['v length', base, { v: new Float32Array(64) }, 'Expected v length to equal k length (80) but received 64', RangeError],
    ['no keys', base, { k: new Float32Array(0), v: new Float32Array(0) }, 'Expected at least one key token in k but received 0', RangeError],
    ['causal not boolean', { ...base, causal: 1 }, {}, 'Expected boolean for causal but received 1 of type number', TypeError],
    ['queryOffset without causal', { ...base, causal: false, queryOffset: 0 }, {},
      'Expected queryOffset only together with causal: true (a non-causal query sees every key)', TypeError],
    ['queryOffset -1', { ...base, queryOffset: -1 }, {}, 'Expected integer >= 0 for queryOffset but received -1 of type number', RangeError],
    ['queryOffset 1.5', { ...base, queryOffset: 1.5 }, {}, 'Expected integer >= 0 for queryOffset but received 1.5 of type number', RangeError],
    ['fewer keys than causal queries', base, { k: new Float32Array(32), v: new Float32Array(32) },
      'Expected k to hold at least the 3 query tokens (causal, no queryOffset: the queries are the last keys) but received 2 key tokens', RangeError],
    ['scale 0', { ...base, scale: 0 }, {}, 'Expected finite number > 0 for scale but received 0 of type number', RangeError],
    ['scale NaN', { ...base, scale: NaN }, {}, 'Expected finite number > 0 for scale but received NaN of type number', RangeError],
    ['scale Infinity', { ...base, scale: Infinity }, {}, 'Expected finite number > 0 for scale but received Infinity of type number', RangeError],
    ['scale past float32', { ...base, scale: 1e39 }, {}, 'Expected finite number in (0, 3.4028234663852886e+38] for scale but received 1e+39 of type number', RangeError],
    ['sink -1', { ...base, sink: -1 }, {}, 'Expected integer >= 0 for sink but received -1 of type number', RangeError],
    ['recent 2.5', { ...base, recent: 2.5 }, {}, 'Expected integer >= 0 for recent but received 2.5 of type number', RangeError],
    ['recent 0 with a streaming head', { ...base, sink: 4, streamingHeads: [true, false] }, {},
      'Expected recent >= 1 when streamingHeads marks a streaming head (its window holds the query\'s own position) but received 0', RangeError],
    ['streamingHeads too short', { ...base, recent: 4, streamingHeads: [true] }, {},
      'Expected boolean[] or Uint8Array of length 2 (kvHeads) for streamingHeads but received Array of length 1', RangeError],
    ['streamingHeads a string', { ...base, recent: 4, streamingHeads: 'tf' }, {},
      "Expected boolean[] or Uint8Array of length 2 (kvHeads) for streamingHeads but received 'tf' of type string", TypeError],
    ['streamingHeads of numbers', { ...base, recent: 4, streamingHeads: [0, 1] }, {}, 'Expected boolean for streamingHeads[0] but received 0 of type number', TypeError],
    ['streamingHeads byte 2', { ...base, recent: 4, streamingHeads: Uint8Array.of(1, 2) }, {}, 'Expected 0 or 1 for streamingHeads[1] but received 2 of type number', RangeError],
    ['threads 0', { ...base, threads: 0 }, {}, 'Expected integer in [1, 256] for threads but received 0 of type number', RangeError],
    ['threads 1.5', { ...base, threads: 1.5 }, {}, 'Expected integer in [1, 256] for threads but received 1.5 of type number', RangeError],
  ];
  it.each(rejects)('rejects %s', (_name, options, arrays, message, kind) => {
    let err: unknown;
    try {
      check(options, arrays);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(kind);
    expect((err as Error).message).toBe(message);
  });

  it('names the options argument as the caller calls it', () => {
    expect(() => check(null, {}, 'attention options')).toThrow('Expected an options object for attention options but received null');
    expect(() => check({ ...base, x: 1 }, {}, 'run options')).toThrow("Unknown option 'x' in run options (expected one of:");
  });
});
