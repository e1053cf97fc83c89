import * as v from '../validate';
import { tokenize } from './bm25';
import type { Embedder } from './types';

/** Weight of each kind of feature, before `1 + ln(tf)`: whole terms count most. */
const UNIGRAM_WEIGHT = 1;
const BIGRAM_WEIGHT = 0.5;
const TRIGRAM_WEIGHT = 0.25;
// A digit prefixed to each feature's key names its kind, so that the term "ab" and the
// character gram "ab" hash apart.
const UNIGRAM = 1;
const BIGRAM = 2;
const TRIGRAM = 3;
const TRIGRAM_PREFIX = String(TRIGRAM);
const MAX_DIMENSIONS = 65_536;

/**
 * Options of {@link HashedEmbedder}.
 *
 * @example
 * ```ts
 * const opts: HashedEmbedderOptions = { dimensions: 768 };
 * ```
 */
export interface HashedEmbedderOptions {
  /** Length of every vector, an integer in [1, 65536]; default 384 (that of all-MiniLM-L6-v2). */
  dimensions?: number;
}

/**
 * An offline, deterministic {@link Embedder} by feature hashing: no model, no download, the same
 * vector for the same text on every machine and run.
 *
 * What it captures is lexical overlap and word shape, not meaning: texts sharing terms, word
 * pairs or parts of words come out close; "car" and "automobile" do not. Features of a text:
 * - its terms, as split by {@link tokenize} (stopwords dropped, light stemming), weight 1;
 * - consecutive term pairs (word bigrams, for phrases and order), weight 0.5;
 * - character 3-grams of each term with `<` and `>` marking its ends, weight 0.25 (morphology
 *   and spelling variants: "optimiser" shares six of its nine grams with "optimizer").
 *
 * Each feature occurring tf times adds `± weight × (1 + ln tf)` at index
 * `(h >>> 1) mod dimensions`, with the sign given by the lowest bit of h (signed hashing:
 * collisions cancel out on average instead of piling up), where h is the 32-bit FNV-1a hash
 * of the feature's UTF-8 bytes (after a digit naming its kind), mixed by MurmurHash3's
 * finaliser. The vector is then scaled to unit length; a text with no terms (empty, or
 * stopwords only) gives the zero vector.
 *
 * For semantic retrieval, plug a real model in through the {@link Embedder} interface instead:
 * transformers.js, an ONNX sentence encoder run with onnxruntime-node, or a remote embeddings
 * API, each wrapped as `{ dimensions, embed(texts) }`.
 *
 * @example
 * ```ts
 * const embedder = new HashedEmbedder({ dimensions: 256 });
 * const [a, b] = embedder.embed(['optimizing the cache', 'cache optimization']);
 * let cosine = 0;
 * for (let i = 0; i < a.length; i++) cosine += a[i] * b[i]; // unit vectors: the dot product
 * ```
 */
export class HashedEmbedder implements Embedder {
  /**
   * Length of every vector.
   *
   * @example
   * ```ts
   * new HashedEmbedder().dimensions; // 384
   * ```
   */
  readonly dimensions: number;

  /**
   * @param options - `dimensions` (default 384).
   * @throws TypeError | RangeError - for unknown options or `dimensions` not an integer in [1, 65536].
   *
   * @example
   * ```ts
   * const embedder = new HashedEmbedder({ dimensions: 512 });
   * ```
   */
  constructor(options: HashedEmbedderOptions = {}) {
    const o = v.options<HashedEmbedderOptions>('options', options, ['dimensions']);
    this.dimensions = o.dimensions === undefined ? 384 : v.integer('options.dimensions', o.dimensions, 1, MAX_DIMENSIONS);
  }

  /**
   * Embeds texts, synchronously.
   *
   * @param texts - the texts.
   * @returns one unit-length `Float32Array` of length {@link HashedEmbedder.dimensions} per text,
   *   in order (all zeros for a text with no terms).
   * @throws TypeError - when `texts` is not an array of strings.
   *
   * @example
   * ```ts
   * const [vector] = new HashedEmbedder().embed(['The user prefers metric units']);
   * ```
   */
  embed(texts: readonly string[]): Float32Array[] {
    if (!Array.isArray(texts)) throw v.typeError('texts', 'array of strings', texts);
    const list = texts as readonly unknown[];
    return list.map((text, i) => this.#embedOne(v.string(`texts[${i}]`, text)));
  }

  /**
   * The embedding of a text whose {@link tokenize} terms are `terms` — what `embed` computes
   * after tokenizing, for callers that already hold the terms (routing tokenizes a query once
   * for both BM25 and the embedding).
   *
   * @param terms - Terms as {@link tokenize} returns them.
   * @returns One unit-length `Float32Array` of length {@link HashedEmbedder.dimensions}.
   *
   * @example
   * ```ts
   * const e = new HashedEmbedder();
   * e.embedTerms(tokenize('metric units')); // equals e.embed(['metric units'])[0]
   * ```
   */
  embedTerms(terms: readonly string[]): Float32Array {
    if (!Array.isArray(terms)) throw v.typeError('terms', 'array of strings', terms);
    return this.#embedTerms(terms);
  }

  #embedOne(text: string): Float32Array {
    return this.#embedTerms(tokenize(text));
  }

  #embedTerms(terms: readonly string[]): Float32Array {
    const counts = new Map<string, number>();
    const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
    for (let i = 0; i < terms.length; i++) {
      const term = terms[i]!;
      count(`${UNIGRAM}${term}`);
      if (i > 0) count(`${BIGRAM}${terms[i - 1]!} ${term}`);
      const marked = `<${term}>`;
      if (isBmp(marked)) {
        for (let c = 0; c + 3 <= marked.length; c++) count(TRIGRAM_PREFIX + marked.slice(c, c + 3));
      } else {
        const chars = Array.from(marked); // code points, so an emoji is one character
        for (let c = 0; c + 3 <= chars.length; c++) count(`${TRIGRAM}${chars[c]!}${chars[c + 1]!}${chars[c + 2]!}`);
      }
    }

    const dims = this.dimensions;
    const acc = new Float64Array(dims);
    for (const [key, tf] of counts) {
      const kind = key.charCodeAt(0) - 48;
      const weight = kind === UNIGRAM ? UNIGRAM_WEIGHT : kind === BIGRAM ? BIGRAM_WEIGHT : TRIGRAM_WEIGHT;
      const h = fmix32(fnv1a(key));
      // Index from bits 1–31, sign from bit 0: independent whatever the dimension.
      const at = (h >>> 1) % dims;
      acc[at] = acc[at]! + (h & 1 ? -1 : 1) * weight * (1 + Math.log(tf));
    }
    let norm = 0;
    for (let i = 0; i < dims; i++) norm += acc[i]! * acc[i]!;
    const out = new Float32Array(dims);
    if (norm === 0) return out;
    const scale = 1 / Math.sqrt(norm);
    for (let i = 0; i < dims; i++) out[i] = acc[i]! * scale;
    return out;
  }
}

/** True when `s` has no surrogate code units: then code units are code points. */
function isBmp(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c < 0xe000) return false;
  }
  return true;
}

/** 32-bit FNV-1a over the UTF-8 bytes of `s` (encoded inline, no buffer). */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  const byte = (b: number) => {
    h = Math.imul(h ^ b, 0x01000193);
  };
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) byte(c);
    else if (c < 0x800) {
      byte(0xc0 | (c >> 6));
      byte(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      byte(0xe0 | (c >> 12));
      byte(0x80 | ((c >> 6) & 0x3f));
      byte(0x80 | (c & 0x3f));
    } else {
      byte(0xf0 | (c >> 18));
      byte(0x80 | ((c >> 12) & 0x3f));
      byte(0x80 | ((c >> 6) & 0x3f));
      byte(0x80 | (c & 0x3f));
    }
  }
  return h >>> 0;
}

/** MurmurHash3's 32-bit finaliser: FNV-1a alone mixes its low bits poorly, and index and sign use them. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
