import * as v from '../validate';
import type { SyncEmbedder } from './embedder';
import { tokenize } from './tokenize';

/** Weight of each kind of feature, before `1 + ln(tf)`: whole terms count most. */
const UNIGRAM_WEIGHT = 1;
const BIGRAM_WEIGHT = 0.5;
const TRIGRAM_WEIGHT = 0.25;
// A digit prefixed to each feature's key names its kind, so that the term "ab" and the
// character gram "ab" hash apart.
const UNIGRAM = 1;
const BIGRAM = 2;
const TRIGRAM = 3;
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
export class HashedEmbedder implements SyncEmbedder {
  /**
   * Length of every vector.
   *
   * @example
   * ```ts
   * new HashedEmbedder().dimensions; // 384
   * ```
   */
  readonly dimensions: number;
  // Scratch reused by every call (embedding is synchronous, so calls never overlap).
  #table: FeatureTable | undefined;
  #acc = new Float64Array(0);

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
   * @param out - Where to write the vector (every element is overwritten); default a new array.
   *   Lets a hot caller place it in memory of its own instead of a fresh `Float32Array`.
   * @returns One unit-length `Float32Array` of length {@link HashedEmbedder.dimensions} (all
   *   zeros when there are no terms): `out` when given.
   * @throws TypeError | RangeError - when `terms` is not an array of strings (TypeError), or `out`
   *   not a `Float32Array` (TypeError) of length {@link HashedEmbedder.dimensions} (RangeError).
   *
   * @example
   * ```ts
   * const e = new HashedEmbedder();
   * e.embedTerms(tokenize('metric units')); // equals e.embed(['metric units'])[0]
   * const into = new Float32Array(e.dimensions);
   * e.embedTerms(tokenize('metric units'), into);
   * ```
   */
  embedTerms(terms: readonly string[], out?: Float32Array): Float32Array {
    if (!Array.isArray(terms)) throw v.typeError('terms', 'array of strings', terms);
    for (let i = 0; i < terms.length; i++) {
      if (typeof terms[i] !== 'string') throw v.typeError(`terms[${i}]`, 'string', terms[i]);
    }
    const into = out === undefined ? new Float32Array(this.dimensions) : v.float32Array('out', out, this.dimensions);
    return this.#embedTerms(terms, into);
  }

  #embedOne(text: string): Float32Array {
    return this.#embedTerms(tokenize(text), new Float32Array(this.dimensions));
  }

  // Features are hashed as they are read, straight from the terms' UTF-16 code units (encoded
  // to UTF-8 on the fly), and counted in an open-addressing table of their hashes: no string
  // key, no Map, no array per feature. Distinct features are kept in first-occurrence order,
  // so the vector is bit for bit the one of hashing each feature's key string.
  #embedTerms(terms: readonly string[], out: Float32Array): Float32Array {
    let bound = 0; // features at most: a unigram, a bigram and (length) trigrams per term
    for (let i = 0; i < terms.length; i++) bound += 2 + (terms[i] as string).length;
    const t = FeatureTable.for(bound, this.#table);
    if (t !== this.#table && t.capacity <= KEPT_TABLE_SLOTS) this.#table = t;

    let bigramSeed = 0; // FNV state of BIGRAM, the previous term and a space
    for (let i = 0; i < terms.length; i++) {
      const term = terms[i]!;
      // One pass over the term feeds three hashes: its unigram, the bigram it ends and the next one's prefix.
      let u = UNIGRAM_SEED;
      let b = bigramSeed;
      let next = BIGRAM_SEED;
      let bmp = true;
      for (let c = 0; c < term.length; c++) {
        let cp = term.charCodeAt(c);
        if (cp >= 0xd800 && cp < 0xe000) {
          bmp = false;
          if (cp < 0xdc00 && c + 1 < term.length) {
            const lo = term.charCodeAt(c + 1);
            if (lo >= 0xdc00 && lo < 0xe000) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
              c++;
            }
          }
        }
        u = fnvCodePoint(u, cp);
        next = fnvCodePoint(next, cp);
        if (i > 0) b = fnvCodePoint(b, cp);
      }
      t.add(fmix32(u), UNIGRAM, i, 0, 0, terms);
      if (i > 0) t.add(fmix32(b), BIGRAM, i, 0, 0, terms);
      bigramSeed = fnvByte(next, 0x20);

      // Character trigrams of `<term>`, over code points (an emoji is one character).
      if (bmp) {
        const n = term.length + 2;
        let c0 = LT;
        let c1 = n > 2 ? term.charCodeAt(0) : GT;
        for (let c = 2; c < n; c++) {
          const c2 = c === n - 1 ? GT : term.charCodeAt(c - 1);
          t.add(fmix32(fnvCodePoint(fnvCodePoint(fnvCodePoint(TRIGRAM_SEED, c0), c1), c2)), TRIGRAM, c0, c1, c2, terms);
          c0 = c1;
          c1 = c2;
        }
      } else {
        const cps = [LT];
        for (const ch of term) cps.push(ch.codePointAt(0)!);
        cps.push(GT);
        for (let c = 0; c + 3 <= cps.length; c++) {
          const c0 = cps[c]!;
          const c1 = cps[c + 1]!;
          const c2 = cps[c + 2]!;
          t.add(fmix32(fnvCodePoint(fnvCodePoint(fnvCodePoint(TRIGRAM_SEED, c0), c1), c2)), TRIGRAM, c0, c1, c2, terms);
        }
      }
    }

    const dims = this.dimensions;
    if (this.#acc.length !== dims) this.#acc = new Float64Array(dims);
    const acc = this.#acc;
    acc.fill(0);
    for (let e = 0; e < t.size; e++) {
      const kind = t.kind[e]!;
      const weight = kind === UNIGRAM ? UNIGRAM_WEIGHT : kind === BIGRAM ? BIGRAM_WEIGHT : TRIGRAM_WEIGHT;
      const h = t.hash[e]!;
      // Index from bits 1–31, sign from bit 0: independent whatever the dimension.
      const at = (h >>> 1) % dims;
      const tf = t.count[e]!;
      acc[at] = acc[at]! + (h & 1 ? -1 : 1) * weight * (tf === 1 ? 1 : 1 + Math.log(tf)); // 1 + ln 1 is exactly 1
    }
    t.clear();
    let norm = 0;
    for (let i = 0; i < dims; i++) norm += acc[i]! * acc[i]!;
    if (norm === 0) return out.fill(0);
    const scale = 1 / Math.sqrt(norm);
    for (let i = 0; i < dims; i++) out[i] = acc[i]! * scale;
    return out;
  }
}

/** Table slots an embedder keeps between calls (texts of up to about 2 000 characters); longer texts get a table of their own. */
const KEPT_TABLE_SLOTS = 4096;

/**
 * The distinct features of one text: an open-addressing hash set over their 32-bit hashes,
 * with a count per feature, in first-occurrence order. A hash match is confirmed on the
 * feature itself (the same term, term pair, or three code points), so two features whose
 * hashes collide still count apart, as string keys would.
 */
class FeatureTable {
  readonly capacity: number;
  readonly #mask: number;
  /** Per slot: 1 + the entry stored there, or 0. */
  readonly #slots: Int32Array;
  /** Per entry, in first-occurrence order. */
  readonly hash: Uint32Array;
  readonly kind: Uint8Array;
  readonly count: Int32Array;
  /** The term index (unigram, bigram) or the three code points (trigram) that identify it. */
  readonly #a: Int32Array;
  readonly #b: Int32Array;
  readonly #c: Int32Array;
  size = 0;

  private constructor(capacity: number) {
    this.capacity = capacity;
    this.#mask = capacity - 1;
    this.#slots = new Int32Array(capacity);
    const entries = capacity >>> 1;
    this.hash = new Uint32Array(entries);
    this.kind = new Uint8Array(entries);
    this.count = new Int32Array(entries);
    this.#a = new Int32Array(entries);
    this.#b = new Int32Array(entries);
    this.#c = new Int32Array(entries);
  }

  /** `kept` when it holds `features` entries at a load factor of at most 1/2, else a new table. */
  static for(features: number, kept: FeatureTable | undefined): FeatureTable {
    if (kept !== undefined && 2 * features <= kept.capacity) return kept;
    let capacity = 64;
    while (capacity < 2 * features) capacity *= 2;
    return new FeatureTable(kept === undefined || capacity > KEPT_TABLE_SLOTS ? capacity : Math.max(capacity, 2 * kept.capacity));
  }

  /** Counts one occurrence of a feature. */
  add(h: number, kind: number, a: number, b: number, c: number, terms: readonly string[]): void {
    const mask = this.#mask;
    const slots = this.#slots;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const at = slots[s]!;
      if (at === 0) {
        const e = this.size++;
        slots[s] = e + 1;
        this.hash[e] = h;
        this.kind[e] = kind;
        this.count[e] = 1;
        this.#a[e] = a;
        this.#b[e] = b;
        this.#c[e] = c;
        return;
      }
      const e = at - 1;
      if (this.hash[e] === h && this.kind[e] === kind && this.#same(e, kind, a, b, c, terms)) {
        this.count[e]!++;
        return;
      }
    }
  }

  #same(e: number, kind: number, a: number, b: number, c: number, terms: readonly string[]): boolean {
    if (kind === TRIGRAM) return this.#a[e] === a && this.#b[e] === b && this.#c[e] === c;
    const i = this.#a[e]!;
    if (terms[i] !== terms[a]) return false;
    return kind === UNIGRAM || terms[i - 1] === terms[a - 1];
  }

  /** Empties the table (only the slots in use are touched). */
  clear(): void {
    const mask = this.#mask;
    const slots = this.#slots;
    for (let e = 0; e < this.size; e++) {
      // Each entry sits at its probe position or after it: find it and free the slot.
      for (let s = this.hash[e]! & mask; ; s = (s + 1) & mask) {
        if (slots[s] === e + 1) {
          slots[s] = 0;
          break;
        }
      }
    }
    this.size = 0;
  }
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const LT = 0x3c; // '<'
const GT = 0x3e; // '>'

/** One byte into a 32-bit FNV-1a state. */
function fnvByte(h: number, b: number): number {
  return Math.imul(h ^ b, FNV_PRIME);
}

/** The UTF-8 bytes of one code point into a 32-bit FNV-1a state (a lone surrogate as its 3-byte form, as before). */
function fnvCodePoint(h: number, c: number): number {
  if (c < 0x80) return Math.imul(h ^ c, FNV_PRIME);
  if (c < 0x800) {
    h = Math.imul(h ^ (0xc0 | (c >> 6)), FNV_PRIME);
    return Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
  }
  if (c < 0x10000) {
    h = Math.imul(h ^ (0xe0 | (c >> 12)), FNV_PRIME);
    h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
    return Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
  }
  h = Math.imul(h ^ (0xf0 | (c >> 18)), FNV_PRIME);
  h = Math.imul(h ^ (0x80 | ((c >> 12) & 0x3f)), FNV_PRIME);
  h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), FNV_PRIME);
  return Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
}

// FNV states after the digit that names each kind of feature.
const UNIGRAM_SEED = fnvByte(FNV_OFFSET, 0x30 + UNIGRAM);
const BIGRAM_SEED = fnvByte(FNV_OFFSET, 0x30 + BIGRAM);
const TRIGRAM_SEED = fnvByte(FNV_OFFSET, 0x30 + TRIGRAM);

/** MurmurHash3's 32-bit finaliser: FNV-1a alone mixes its low bits poorly, and index and sign use them. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
