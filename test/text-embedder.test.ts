import { describe, expect, it } from 'vitest';

import { tokenize } from '../src/text/tokenize';
import { HashedEmbedder } from '../src/text/hashed-embedder';

/** 32-bit FNV-1a over bytes, as published (reference for the test, over Node's own UTF-8 encoder). */
function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Number((BigInt(h ^ b) * 0x01000193n) & 0xffffffffn);
  return h >>> 0;
}

/** MurmurHash3 fmix32, with BigInt products so it shares no Math.imul code with src/. */
function fmix32(h: number): number {
  const mul = (a: number, b: bigint) => Number((BigInt(a >>> 0) * b) & 0xffffffffn);
  h = (h ^ (h >>> 16)) >>> 0;
  h = mul(h, 0x85ebca6bn);
  h = (h ^ (h >>> 13)) >>> 0;
  h = mul(h, 0xc2b2ae35n);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The documented feature-hashing scheme, in float64. */
function reference(text: string, dims: number): number[] {
  const terms = tokenize(text);
  const features: Array<[string, number]> = [];
  terms.forEach((t, i) => {
    features.push([`1${t}`, 1]);
    if (i > 0) features.push([`2${terms[i - 1]} ${t}`, 0.5]);
    const cs = [...`<${t}>`];
    for (let c = 0; c + 3 <= cs.length; c++) features.push([`3${cs[c]}${cs[c + 1]}${cs[c + 2]}`, 0.25]);
  });
  const tf = new Map<string, { n: number; w: number }>();
  for (const [key, w] of features) tf.set(key, { n: (tf.get(key)?.n ?? 0) + 1, w });
  const v = new Array<number>(dims).fill(0);
  for (const [key, { n, w }] of tf) {
    const h = fmix32(fnv1a(Buffer.from(key, 'utf8')));
    v[Math.floor(h / 2) % dims] += (h % 2 === 1 ? -1 : 1) * w * (1 + Math.log(n));
  }
  const norm = Math.hypot(...v);
  return norm === 0 ? v : v.map((x) => x / norm);
}

/**
 * The embedder as first written (a string key per feature, counted in a Map, hashed from its UTF-8
 * bytes): the implementation that hashes straight from the code units must give the same vectors
 * bit for bit, so embeddings stored by earlier versions stay valid.
 */
function stringKeyed(terms: readonly string[], dims: number): Float32Array {
  const counts = new Map<string, number>();
  const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
  terms.forEach((t, i) => {
    count(`1${t}`);
    if (i > 0) count(`2${terms[i - 1]} ${t}`);
    const cs = Array.from(`<${t}>`);
    for (let c = 0; c + 3 <= cs.length; c++) count(`3${cs[c]}${cs[c + 1]}${cs[c + 2]}`);
  });
  const acc = new Float64Array(dims);
  for (const [key, tf] of counts) {
    const weight = key[0] === '1' ? 1 : key[0] === '2' ? 0.5 : 0.25;
    const h = fmix32(fnv1a(utf8(key)));
    const at = Math.floor(h / 2) % dims;
    acc[at] = acc[at]! + (h % 2 === 1 ? -1 : 1) * weight * (1 + Math.log(tf));
  }
  let norm = 0;
  for (let i = 0; i < dims; i++) norm += acc[i]! * acc[i]!;
  const out = new Float32Array(dims);
  if (norm === 0) return out;
  const scale = 1 / Math.sqrt(norm);
  for (let i = 0; i < dims; i++) out[i] = acc[i]! * scale;
  return out;
}

/** UTF-8 as the first version encoded it: a lone surrogate as its own 3-byte sequence (Buffer would write U+FFFD). */
function utf8(s: string): Uint8Array {
  const out: number[] = [];
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return Uint8Array.from(out);
}

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

describe('HashedEmbedder', () => {
  it('the test reference hashes published FNV-1a vectors', () => {
    const enc = (s: string) => Buffer.from(s, 'utf8');
    expect(fnv1a(enc(''))).toBe(0x811c9dc5);
    expect(fnv1a(enc('a'))).toBe(0xe40c292c);
    expect(fnv1a(enc('foobar'))).toBe(0xbf9cf968);
  });

  it('equals the float64 reference of the documented scheme', () => {
    const texts = [
      'Optimizing the database cache',
      'cache cache cache optimization', // repeated features: 1 + ln tf
      'Привет мир, 東京タワー and 𐌰𐌱𐌲 gothic', // non-ASCII and astral characters (4-byte UTF-8)
      'x',
      'The user prefers metric units; the user prefers dark mode.',
    ];
    for (const dims of [384, 7, 1]) {
      const vectors = new HashedEmbedder({ dimensions: dims }).embed(texts);
      vectors.forEach((vec, i) => {
        const ref = reference(texts[i]!, dims);
        expect(vec.length).toBe(dims);
        for (let j = 0; j < dims; j++) expect(Math.abs(vec[j]! - ref[j]!)).toBeLessThan(1e-7);
      });
    }
  });

  it('gives the vectors of the first, string-keyed version bit for bit', () => {
    const texts = [
      'Optimizing the database cache',
      'cache cache cache optimization, cache optimization again',
      'Привет мир, 東京タワー and 𐌰𐌱𐌲 gothic; naïve café',
      'x',
      'The user prefers metric units; the user prefers dark mode.',
      'Long text '.repeat(3000), // past the table an embedder keeps between calls
    ];
    const r = (() => {
      let a = 7;
      return () => ((a = (Math.imul(a, 1103515245) + 12345) >>> 0) / 2 ** 32);
    })();
    const alphabet = ['a', 'b', 'é', 'ж', '東', '𐌰', '😀', '\uD800', '\uDC00', ' ', '1', 'ab'];
    for (let k = 0; k < 200; k++) {
      let t = '';
      for (let n = Math.floor(r() * 12); n > 0; n--) t += alphabet[Math.floor(r() * alphabet.length)];
      texts.push(t);
    }
    for (const dims of [256, 384, 7, 1]) {
      const embedder = new HashedEmbedder({ dimensions: dims });
      for (const text of texts) expect(embedder.embed([text])[0]).toEqual(stringKeyed(tokenize(text), dims));
      // Terms straight from a caller: lone surrogates, empty terms, repeats.
      for (const terms of [['\uD800', 'a\uDC00b', '𐌰\uD800', ''], ['', ''], ['ab', 'ab', 'ab'], ['\uDC00\uD800x', '😀😀😀']]) {
        expect(embedder.embedTerms(terms)).toEqual(stringKeyed(terms, dims));
      }
    }
  });

  it('embedTerms writes into `out` when given, overwriting all of it', () => {
    const embedder = new HashedEmbedder({ dimensions: 32 });
    const terms = tokenize('metric units and dark mode');
    const out = new Float32Array(32).fill(7);
    expect(embedder.embedTerms(terms, out)).toBe(out);
    expect(out).toEqual(embedder.embed(['metric units and dark mode'])[0]);
    expect(embedder.embedTerms([], out)).toEqual(new Float32Array(32)); // no terms: zeros, not what was there
  });

  it('counts two features apart when their hashes collide', () => {
    // Two terms whose unigram keys have the same 32-bit hash (found by a search over `w` + base-36
    // numbers): each must count as its own feature (tf 1 twice), not as one seen twice (1 + ln 2).
    const pair = ['w146wu', 'w1bwfa'];
    expect(fmix32(fnv1a(utf8(`1${pair[0]}`)))).toBe(fmix32(fnv1a(utf8(`1${pair[1]}`))));
    const embedder = new HashedEmbedder({ dimensions: 64 });
    expect(embedder.embedTerms(pair)).toEqual(stringKeyed(pair, 64));
    expect(embedder.embedTerms([pair[0], pair[0]])).toEqual(stringKeyed([pair[0], pair[0]], 64));
  });

  it('is deterministic across calls and instances', () => {
    const text = 'Deploy notes for the search service';
    const [a] = new HashedEmbedder().embed([text]);
    const [b] = new HashedEmbedder().embed([text]);
    const [c, d] = new HashedEmbedder().embed([text, text]);
    expect(a).toEqual(b);
    expect(c).toEqual(a);
    expect(d).toEqual(a);
  });

  it('gives unit vectors of the default 384 dimensions', () => {
    const embedder = new HashedEmbedder();
    expect(embedder.dimensions).toBe(384);
    for (const vec of embedder.embed(['a b c', 'one', 'Long text '.repeat(200), '🍕 pizza'])) {
      expect(vec).toBeInstanceOf(Float32Array);
      expect(vec.length).toBe(384);
      expect(Math.abs(Math.sqrt(dot(vec, vec)) - 1)).toBeLessThan(1e-6);
    }
  });

  it('places texts that share words or word forms closer than unrelated ones', () => {
    const [q, morph, same, other] = new HashedEmbedder().embed([
      'optimizing the database cache',
      'database cache optimization',
      'cache for the database was optimized',
      'the cat sat on the mat',
    ]);
    expect(dot(q!, morph!)).toBeGreaterThan(0.8); // same stems, other order: only the bigrams differ
    expect(dot(q!, same!)).toBeGreaterThan(0.8);
    expect(Math.abs(dot(q!, other!))).toBeLessThan(0.1);
    // Spelling variants share character grams even without a common term.
    const [us, uk, far] = new HashedEmbedder().embed(['optimizer', 'optimiser', 'spreadsheet']);
    expect(dot(us!, uk!)).toBeCloseTo(6 / 25, 6); // 6 shared grams of weight 0.25 over a squared norm 1 + 9 / 16
    expect(Math.abs(dot(us!, far!))).toBeLessThan(0.1);
  });

  it('gives the zero vector for a text with no terms', () => {
    for (const vec of new HashedEmbedder({ dimensions: 16 }).embed(['', '   ', 'the of and', '🍕!?'])) {
      expect(vec).toEqual(new Float32Array(16));
    }
    expect(new HashedEmbedder().embed([])).toEqual([]);
  });

  it('validates its options and input', () => {
    expect(new HashedEmbedder({ dimensions: 1 }).dimensions).toBe(1);
    expect(new HashedEmbedder({ dimensions: 65536 }).dimensions).toBe(65536);
    expect(() => new HashedEmbedder({ dimensions: 0 })).toThrow(
      new RangeError('Expected integer in [1, 65536] for options.dimensions but received 0 of type number'),
    );
    expect(() => new HashedEmbedder({ dimensions: 65537 })).toThrow(
      new RangeError('Expected integer in [1, 65536] for options.dimensions but received 65537 of type number'),
    );
    expect(() => new HashedEmbedder({ dimensions: 1.5 })).toThrow(
      new RangeError('Expected integer in [1, 65536] for options.dimensions but received 1.5 of type number'),
    );
    expect(() => new HashedEmbedder({ dimensions: '384' as unknown as number })).toThrow(
      new TypeError("Expected integer in [1, 65536] for options.dimensions but received '384' of type string"),
    );
    expect(() => new HashedEmbedder({ dims: 3 } as unknown as { dimensions: number })).toThrow(
      new TypeError("Unknown option 'dims' in options (expected one of: dimensions)"),
    );
    expect(() => new HashedEmbedder(7 as unknown as {})).toThrow(new TypeError('Expected an options object for options but received 7 of type number'));
    const embedder = new HashedEmbedder();
    expect(() => embedder.embed('text' as unknown as string[])).toThrow(
      new TypeError("Expected array of strings for texts but received 'text' of type string"),
    );
    expect(() => embedder.embed(['ok', 3 as unknown as string])).toThrow(new TypeError('Expected string for texts[1] but received 3 of type number'));
    expect(() => embedder.embedTerms(['ok', 3 as unknown as string])).toThrow(new TypeError('Expected string for terms[1] but received 3 of type number'));
    expect(() => embedder.embedTerms(['ok'], new Float32Array(3))).toThrow(
      new RangeError('Expected Float32Array of length 384 for out but received Float32Array of length 3'),
    );
    expect(() => embedder.embedTerms(['ok'], new Float64Array(384) as unknown as Float32Array)).toThrow(
      new TypeError('Expected Float32Array for out but received Float64Array of length 384'),
    );
  });
});
