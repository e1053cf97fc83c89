/**
 * BM25 of a query over the experts' profile texts, precomputed per term: the scorer's lexical half.
 * @module
 */
import { Bm25Index, tokenize } from '../../text/index';

/**
 * BM25 ({@link Bm25Index}) over the profile texts, with each profile term's contribution to
 * each row precomputed after a change, so a query costs a few additions per term. Profiles are
 * held by a stable document id; rows are the caller's order of those ids.
 * @internal
 */
export class ProfileBm25 {
  readonly #index = new Bm25Index();
  /** Per document, per distinct term of its text: a text that tokenizes to that term alone, or null when none was found. */
  readonly #surfaces = new Map<number, Map<string, string | null>>();
  /** Contribution of each term to each row; null after a change, rebuilt by the next query. */
  #table: Map<string, Float64Array> | null = null;
  /** Set when some profile term has no text that tokenizes to it alone: then the index scores each query whole. */
  #whole = false;

  /** Adds document `doc`, or replaces its text. */
  set(doc: number, text: string): void {
    this.#index.add(doc, text);
    this.#surfaces.set(doc, surfacesOf(text));
    this.#table = null;
  }

  /** Removes document `doc`. */
  remove(doc: number): void {
    this.#index.remove(doc);
    this.#surfaces.delete(doc);
    this.#table = null;
  }

  /**
   * Raw BM25 of the query for each row, exactly as {@link Bm25Index.search} over the profile
   * texts, written to `out`.
   * @param docs - The documents in row order (all held ones).
   */
  scores(text: string, terms: readonly string[], docs: readonly number[], out: Float64Array): Float64Array {
    const n = docs.length;
    const table = this.#table ?? this.#rebuild(docs);
    if (this.#whole) {
      const hits = this.#index.search(text);
      for (let r = 0; r < n; r++) out[r] = hits.get(docs[r]!) ?? 0;
      return out;
    }
    // BM25 is a sum over query term occurrences, so per-term contributions add up to it.
    for (const term of terms) {
      const c = table.get(term);
      if (c !== undefined) for (let r = 0; r < n; r++) out[r] = out[r]! + c[r]!;
    }
    return out;
  }

  /** Each term's contribution to each row, asked of the index one term at a time (N and avgdl change with every profile). */
  #rebuild(docs: readonly number[]): Map<string, Float64Array> {
    const surface = new Map<string, string | null>();
    for (const doc of docs) {
      for (const [term, text] of this.#surfaces.get(doc)!) if (text !== null || !surface.has(term)) surface.set(term, text);
    }
    const rowOf = new Map(docs.map((doc, r) => [doc, r]));
    const table = new Map<string, Float64Array>();
    this.#whole = false;
    for (const [term, text] of surface) {
      if (text === null) {
        this.#whole = true;
        continue;
      }
      const c = new Float64Array(docs.length);
      for (const [doc, score] of this.#index.search(text)) c[rowOf.get(doc)!] = score;
      table.set(term, c);
    }
    this.#table = table;
    return table;
  }
}

/**
 * For each distinct term of a profile text, a text that tokenizes to that term alone: the term
 * itself almost always, else a word of the text ("databas" tokenizes to "databa", but "database"
 * to "databas"); null when there is none (a word holding two terms, as "uses中").
 */
function surfacesOf(text: string): Map<string, string | null> {
  const out = new Map<string, string | null>();
  let missing = 0;
  for (const term of tokenize(text)) {
    if (out.has(term)) continue;
    const again = tokenize(term);
    const idempotent = again.length === 1 && again[0] === term;
    out.set(term, idempotent ? term : null);
    if (!idempotent) missing++;
  }
  if (missing === 0) return out;
  for (const word of new Set(text.split(/[^\p{L}\p{M}\p{N}'\u2019]+/u))) {
    const terms = word === '' ? [] : tokenize(word);
    if (terms.length === 1 && out.get(terms[0]!) === null) out.set(terms[0]!, word);
  }
  return out;
}
