import * as v from '../validate';
import { tokenize } from './tokenize';

/**
 * Options of {@link Bm25Index}.
 *
 * @example
 * ```ts
 * const opts: Bm25Options = { k1: 1.2, b: 0.75 };
 * ```
 */
export interface Bm25Options {
  /** Term-frequency saturation, >= 0; default 1.5. 0 scores a term's presence only. */
  k1?: number;
  /** Length normalisation in [0, 1]; default 0.75. 0 ignores document length. */
  b?: number;
}

/**
 * An incremental Okapi BM25 inverted index over texts split by {@link tokenize}. Documents are
 * identified by non-negative integers chosen by the caller; adding an id again replaces its
 * text, and removing it drops its postings at once (nothing is left behind to compact).
 *
 * Score of a document d for a query q (a term repeated in the query counts once per
 * occurrence):
 * `Σ_{t ∈ q} IDF(t) · tf(t,d) · (k1 + 1) / (tf(t,d) + k1 · (1 − b + b · |d| / avgdl))`,
 * with `IDF(t) = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))` (Lucene's form, never negative),
 * N the number of documents, |d| a document's number of terms and avgdl the mean over the
 * documents held now.
 *
 * @example
 * ```ts
 * const index = new Bm25Index();
 * index.add(1, 'The cache was flushed after the deploy');
 * index.add(2, 'Deploy notes for the search service');
 * const scores = index.search('cache flush'); // Map { 1 => 1.386… }: 2 terms × ln 2, at average length
 * ```
 */
export class Bm25Index {
  readonly #k1: number;
  readonly #b: number;
  // Documents live in dense internal slots so that scores accumulate in a flat array.
  readonly #slotOf = new Map<number, number>();
  readonly #docOf: number[] = [];
  readonly #lengthOf: number[] = [];
  /** Per slot: pairs [termId, index of the pair in that term's postings], sorted by termId. */
  readonly #termsOf: Array<Int32Array | null> = [];
  readonly #freeSlots: number[] = [];
  readonly #termId = new Map<string, number>();
  readonly #termName: string[] = [];
  /** Per term id: interleaved pairs [slot, tf, slot, tf, …] (one plain array per term, no per-posting objects). */
  readonly #postings: number[][] = [];
  readonly #freeTerms: number[] = [];
  #totalLength = 0;
  // Reused between searches; a search started from inside a `candidates` callback allocates its own.
  #scores = new Float64Array(0);
  #seen = new Int8Array(0);
  #searching = false;

  /**
   * @param options - `k1` (default 1.5) and `b` (default 0.75).
   * @throws TypeError | RangeError - for an option of the wrong kind or out of range.
   *
   * @example
   * ```ts
   * const index = new Bm25Index({ k1: 1.2 });
   * ```
   */
  constructor(options: Bm25Options = {}) {
    const o = v.options<Bm25Options>('options', options, ['k1', 'b']);
    this.#k1 = o.k1 === undefined ? 1.5 : v.finite('options.k1', o.k1, { min: 0 });
    this.#b = o.b === undefined ? 0.75 : v.unitInterval('options.b', o.b);
  }

  /**
   * Number of documents held.
   *
   * @example
   * ```ts
   * if (index.size === 0) console.log('empty');
   * ```
   */
  get size(): number {
    return this.#slotOf.size;
  }

  /**
   * Number of distinct terms indexed now (terms of removed documents that no other document
   * uses are forgotten, so this does not grow with churn).
   *
   * @example
   * ```ts
   * console.log(`${index.size} documents, ${index.termCount} terms`);
   * ```
   */
  get termCount(): number {
    return this.#termId.size;
  }

  /**
   * Whether a document is held.
   *
   * @param doc - a document id.
   * @returns `true` when `doc` was added and not removed since.
   *
   * @example
   * ```ts
   * if (!index.has(7)) index.add(7, 'seven');
   * ```
   */
  has(doc: number): boolean {
    return this.#slotOf.has(doc);
  }

  /**
   * Indexes a document, replacing the text of `doc` if it is already held. A text with no
   * terms (empty, or stopwords only) is held and counts in N and avgdl, but matches nothing.
   *
   * @param doc - the document id: an integer >= 0.
   * @param text - its text.
   * @throws TypeError | RangeError - for a bad id or a non-string text.
   *
   * @example
   * ```ts
   * index.add(42, 'User prefers metric units');
   * ```
   */
  add(doc: number, text: string): void {
    v.integer('doc', doc, 0);
    const terms = tokenize(text);
    if (this.#slotOf.has(doc)) this.remove(doc);
    const tf = new Map<string, number>();
    for (const t of terms) tf.set(t, (tf.get(t) ?? 0) + 1);

    const slot = this.#freeSlots.pop() ?? this.#docOf.length;
    this.#slotOf.set(doc, slot);
    this.#docOf[slot] = doc;
    this.#lengthOf[slot] = terms.length;
    this.#totalLength += terms.length;

    const ids = new Int32Array(tf.size);
    let i = 0;
    for (const term of tf.keys()) {
      let id = this.#termId.get(term);
      if (id === undefined) {
        id = this.#freeTerms.pop() ?? this.#postings.length;
        this.#termId.set(term, id);
        this.#termName[id] = term;
        this.#postings[id] = [];
      }
      ids[i++] = id;
    }
    // Pairs sorted by term id (a typed-array sort, no comparator), then each posting's place filled in.
    const sorted = ids.slice().sort();
    const pairs = new Int32Array(2 * ids.length);
    for (let k = 0; k < sorted.length; k++) pairs[2 * k] = sorted[k]!;
    i = 0;
    for (const count of tf.values()) {
      const id = ids[i++]!;
      const list = this.#postings[id]!;
      pairs[findTerm(pairs, id) + 1] = list.length;
      list.push(slot, count);
    }
    this.#termsOf[slot] = pairs;
  }

  /**
   * Removes a document and its postings; terms no document uses any more are forgotten.
   * Removing an id that is not held does nothing.
   *
   * @param doc - the document id.
   * @throws TypeError | RangeError - for an id that is not an integer >= 0.
   *
   * @example
   * ```ts
   * index.remove(42);
   * ```
   */
  remove(doc: number): void {
    v.integer('doc', doc, 0);
    const slot = this.#slotOf.get(doc);
    if (slot === undefined) return;
    const pairs = this.#termsOf[slot]!;
    for (let k = 0; k < pairs.length; k += 2) {
      const id = pairs[k]!;
      const list = this.#postings[id]!;
      const at = pairs[k + 1]!;
      const last = list.length - 2;
      if (at !== last) {
        // Swap-remove: move the last posting into the hole and tell its document where it went.
        const moved = list[last]!;
        list[at] = moved;
        list[at + 1] = list[last + 1]!;
        const movedPairs = this.#termsOf[moved]!;
        movedPairs[findTerm(movedPairs, id) + 1] = at;
      }
      list.length = last;
      if (last === 0) {
        // No document uses the term any more: forget it so that churn does not grow the dictionary.
        this.#termId.delete(this.#termName[id]!);
        this.#termName[id] = '';
        this.#freeTerms.push(id);
      }
    }
    this.#totalLength -= this.#lengthOf[slot]!;
    this.#termsOf[slot] = null;
    this.#docOf[slot] = -1;
    this.#lengthOf[slot] = 0;
    this.#slotOf.delete(doc);
    this.#freeSlots.push(slot);
  }

  /**
   * Scores the given documents only: the same scores as {@link Bm25Index.search} with a filter
   * accepting exactly `docs`, found through each document's own terms instead of the query
   * terms' postings — the faster way when the documents are a small part of the index (a
   * user's memories among every user's).
   *
   * @param query - the query text, split by {@link tokenize}.
   * @param docs - the document ids to score; ids not held are skipped.
   * @returns document id → BM25 score (> 0) of those containing a query term.
   * @throws TypeError - for a non-string query or a `docs` that is not iterable.
   *
   * @example
   * ```ts
   * const scores = index.searchAmong('metric units', [3, 7, 42]);
   * ```
   */
  searchAmong(query: string, docs: Iterable<number>): Map<number, number> {
    const terms = tokenize(v.string('query', query));
    if (docs === null || typeof (docs as { [Symbol.iterator]?: unknown })?.[Symbol.iterator] !== 'function') throw v.typeError('docs', 'an iterable of document ids', docs);
    const out = new Map<number, number>();
    const n = this.#slotOf.size;
    const avgdl = n === 0 ? 0 : this.#totalLength / n;
    if (avgdl === 0) return out;
    const k1 = this.#k1;
    const lengthScale = (k1 * this.#b) / avgdl;
    const lengthBase = k1 * (1 - this.#b);
    // Query term id → its weight (idf × query count × (k1 + 1)), as search() computes it.
    const weights = new Map<number, number>();
    for (const t of terms) {
      const id = this.#termId.get(t);
      if (id === undefined) continue;
      const prev = weights.get(id);
      const df = this.#postings[id]!.length / 2;
      const unit = Math.log(1 + (n - df + 0.5) / (df + 0.5)) * (k1 + 1);
      weights.set(id, (prev ?? 0) + unit);
    }
    if (weights.size === 0) return out;
    for (const doc of docs) {
      const slot = this.#slotOf.get(doc);
      if (slot === undefined || out.has(doc)) continue;
      const pairs = this.#termsOf[slot]!;
      const norm = lengthBase + lengthScale * this.#lengthOf[slot]!;
      let score = 0;
      for (const [id, weight] of weights) {
        const at = lookupTerm(pairs, id);
        if (at < 0) continue;
        const tf = this.#postings[id]![pairs[at + 1]! + 1]!;
        score += (weight * tf) / (tf + norm);
      }
      if (score > 0) out.set(doc, score);
    }
    return out;
  }

  /**
   * Scores every document that contains at least one query term and passes `candidates`.
   *
   * @param query - the query text, split by {@link tokenize}.
   * @param candidates - optional: only documents for which it returns `true` are scored (it is
   *   called at most once per matching document and search, and must not modify the index).
   *   N, df and avgdl still count every document, so a score does not depend on the filter.
   * @returns document id → BM25 score (> 0), in no particular order; empty when nothing matches.
   * @throws TypeError - for a non-string query or a `candidates` that is not a function.
   *
   * @example
   * ```ts
   * const top = [...index.search('metric units', (doc) => doc < 100)].sort((a, b) => b[1] - a[1]).slice(0, 5);
   * ```
   */
  search(query: string, candidates?: (doc: number) => boolean): Map<number, number> {
    const terms = tokenize(v.string('query', query));
    const accept = v.optionalFunction<(doc: number) => boolean>('candidates', candidates);
    const out = new Map<number, number>();
    const n = this.#slotOf.size;
    if (n === 0 || terms.length === 0) return out;

    const qtf = new Map<number, number>();
    for (const t of terms) {
      const id = this.#termId.get(t);
      if (id !== undefined) qtf.set(id, (qtf.get(id) ?? 0) + 1);
    }
    if (qtf.size === 0) return out;

    const capacity = this.#docOf.length;
    const nested = this.#searching;
    if (!nested && this.#scores.length < capacity) {
      this.#scores = new Float64Array(capacity);
      this.#seen = new Int8Array(capacity);
    }
    const scores = nested ? new Float64Array(capacity) : this.#scores;
    const seen = nested ? new Int8Array(capacity) : this.#seen; // 0 not seen, 1 scored, 2 rejected
    const touched: number[] = [];
    const k1 = this.#k1;
    const avgdl = this.#totalLength / n;
    // Per-slot length factor; avgdl is 0 only when no document has terms, and then nothing matches.
    const lengthScale = avgdl > 0 ? (k1 * this.#b) / avgdl : 0;
    const lengthBase = k1 * (1 - this.#b);
    this.#searching = true;
    try {
      for (const [id, count] of qtf) {
        const list = this.#postings[id]!;
        const df = list.length / 2;
        const weight = count * Math.log(1 + (n - df + 0.5) / (df + 0.5)) * (k1 + 1);
        for (let p = 0; p < list.length; p += 2) {
          const slot = list[p]!;
          let state = seen[slot]!;
          if (state === 0) {
            state = accept === undefined || accept(this.#docOf[slot]!) === true ? 1 : 2;
            seen[slot] = state;
            touched.push(slot);
          }
          if (state !== 1) continue;
          const tf = list[p + 1]!;
          scores[slot] = scores[slot]! + (weight * tf) / (tf + lengthBase + lengthScale * this.#lengthOf[slot]!);
        }
      }
      for (const slot of touched) {
        if (seen[slot] === 1) out.set(this.#docOf[slot]!, scores[slot]!);
      }
    } finally {
      for (const slot of touched) {
        scores[slot] = 0;
        seen[slot] = 0;
      }
      if (!nested) this.#searching = false;
    }
    return out;
  }
}

/** Index of the pair for `termId` in a pairs array sorted by term id (binary search). */
function findTerm(pairs: Int32Array, termId: number): number {
  const at = lookupTerm(pairs, termId);
  if (at < 0) throw new Error(`Bm25Index is corrupt: term ${termId} missing from a document`);
  return at;
}

/** Index of the pair for `termId` in a pairs array sorted by term id, or -1. */
function lookupTerm(pairs: Int32Array, termId: number): number {
  let lo = 0;
  let hi = pairs.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const t = pairs[2 * mid]!;
    if (t === termId) return 2 * mid;
    if (t < termId) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}
