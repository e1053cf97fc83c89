/**
 * The local query scorer of request-level routing: how well each expert's profile matches a
 * query, offline (hashed embeddings + BM25), with no hosted embedding service.
 * @module
 */
import { type Bm25Index, float32Scores, HashedEmbedder, MAX_SCAN_DIMS, type SyncEmbedder, tokenize } from '../../text/index';
import * as v from '../../validate';
import { ArrayPool } from './array-pool';
import type { DEFAULT_EXPERTS } from './default-experts';
import { profileText, type ResolvedExpertProfile, validateProfile } from './profile';
import { ProfileBm25 } from './profile-bm25';
import { topK } from './top-k';
import type { ExpertProfile, RoutingContext } from './types';

/**
 * The weights of {@link RELEVANCE_WEIGHTS}.
 *
 * @example
 * ```ts
 * const w: RelevanceWeights = RELEVANCE_WEIGHTS;
 * ```
 */
export interface RelevanceWeights {
  /** Weight of the embedding cosine (clamped at 0) in the base score. */
  readonly cosine: number;
  /** Weight of the normalised BM25 in the base score; `cosine + bm25 = 1`. */
  readonly bm25: number;
  /** Share of the gap `1 − base` that a matching `context.domain` closes. */
  readonly domainBonus: number;
}

/**
 * How {@link ProfileScorer} combines its signals into a relevance in [0, 1]:
 * `base = cosine · max(0, cos) + bm25 · bm25Norm` (the two weights sum to 1), then, for an
 * expert whose domain equals `context.domain`, `relevance = base + domainBonus · (1 − base)`:
 * the hint closes that share of the gap to 1, so it lifts an expert without hiding a much
 * better lexical match elsewhere, and relevance never leaves [0, 1].
 *
 * `bm25Norm` is the expert's BM25 score divided by the best among the experts scored (so the
 * best lexical match gets 1; all 0 when no query term occurs in any profile). Hashed cosines of
 * a short query against a long profile sit well below 1, so BM25 mostly orders the experts
 * and the cosine (which also sees word pairs and parts of words: "optimiser" ~ "optimizer")
 * separates experts that BM25 leaves close. On the 96 labelled queries of the tests, over
 * {@link DEFAULT_EXPERTS}, BM25 alone picks the right expert first for 91 %, the cosine alone
 * (256 dimensions) for 62 %, these weights for 92 %.
 *
 * @example
 * ```ts
 * const { cosine, bm25, domainBonus } = RELEVANCE_WEIGHTS; // 0.5, 0.5, 0.3
 * ```
 */
export const RELEVANCE_WEIGHTS: RelevanceWeights = Object.freeze({
  cosine: 0.5,
  bm25: 0.5,
  domainBonus: 0.3,
});

const CONTEXT_KEYS = ['domain', 'complexity', 'latencyBudgetMs', 'exclude'];

/**
 * Options of {@link ProfileScorer}.
 *
 * @example
 * ```ts
 * const opts: ProfileScorerOptions = { dimensions: 512, cacheSize: 0 };
 * ```
 */
export interface ProfileScorerOptions {
  /** Embedding length when no `embedder` is given, in [1, 65536]; default 256. With an embedder, must equal its `dimensions` if given. */
  dimensions?: number;
  /** How texts become vectors; default `new HashedEmbedder({ dimensions })`. Must answer synchronously. */
  embedder?: SyncEmbedder;
  /** Queries whose embedding, cosines and BM25 scores are kept (least recently used dropped); 0 turns it off. Default 1024. */
  cacheSize?: number;
}

/**
 * {@link ProfileScorerOptions} checked, with their defaults filled in.
 * @internal
 */
export interface ResolvedScorerOptions {
  /** The caller's embedder, or undefined for the default (made by each scorer: it keeps scratch). */
  embedder: SyncEmbedder | undefined;
  /** Length of the embeddings. */
  dimensions: number;
  cacheSize: number;
}

/**
 * Checks scorer options written at `path` (`'options'` for the scorer's own; a router passes
 * its own path), so each error names the option as its caller wrote it. A JavaScript caller's
 * embedder is checked for shape here and for answering synchronously on first use.
 * @internal
 */
export function scorerOptions(options: unknown, path: string): ResolvedScorerOptions {
  const o = v.options<ProfileScorerOptions>(path, options, ['dimensions', 'embedder', 'cacheSize']);
  const dims = o.dimensions === undefined ? undefined : v.integer(`${path}.dimensions`, o.dimensions, 1, MAX_SCAN_DIMS);
  const cacheSize = o.cacheSize === undefined ? 1024 : v.integer(`${path}.cacheSize`, o.cacheSize, 0);
  if (o.embedder === undefined) return { embedder: undefined, dimensions: dims ?? 256, cacheSize };
  const e = o.embedder as Partial<SyncEmbedder> | null;
  if (e === null || typeof e !== 'object' || typeof e.embed !== 'function') {
    throw v.typeError(`${path}.embedder`, 'an Embedder ({ dimensions, embed(texts) })', e);
  }
  const own = v.integer(`${path}.embedder.dimensions`, e.dimensions, 1, MAX_SCAN_DIMS);
  if (dims !== undefined && dims !== own) throw v.rangeError(`${path}.dimensions`, `embedder.dimensions (${own})`, dims);
  return { embedder: o.embedder, dimensions: own, cacheSize };
}

/**
 * The signals behind one expert's relevance: `relevance = base + domainBonus` with
 * `base = 0.5 · max(0, cosine) + 0.5 · bm25` (see {@link RELEVANCE_WEIGHTS}).
 *
 * @example
 * ```ts
 * const { cosine, bm25, domainBonus } = scorer.score('slow join on postgres').parts[0]!;
 * ```
 */
export interface RelevanceParts {
  /** Cosine similarity of the query's and the profile's embeddings, in [-1, 1] (float32 precision). */
  cosine: number;
  /** BM25 of the query over the profile texts, divided by the best of the experts scored: in [0, 1]. */
  bm25: number;
  /** What the domain hint added; 0 for other domains. */
  domainBonus: number;
}

/**
 * Result of {@link ProfileScorer.score}: one entry per expert not excluded, in id order. Its
 * typed arrays are the caller's own, but views of a buffer shared with other results (as
 * Node's small Buffers are): copy one before transferring its `buffer` to a worker.
 *
 * @example
 * ```ts
 * const scored = scorer.score('pandas groupby is slow');
 * const best = scored.ids[scorer.top(scored, 1)[0]!];
 * ```
 */
export interface ScoredExperts {
  /** Expert ids, sorted (UTF-16 code unit order); shared and frozen when nothing is excluded. */
  ids: readonly string[];
  /** Relevance of each expert in [0, 1], as defined on {@link RELEVANCE_WEIGHTS}. */
  relevance: Float32Array;
  /** The query's embedding scaled to unit length (zeros for a query with no terms): features for learning strategies. */
  features: Float32Array;
  /** The signals combined into each relevance, aligned with `ids`. */
  parts: RelevanceParts[];
}

/** What the scorer keeps per expert, besides its matrix row. */
interface Row {
  profile: ResolvedExpertProfile;
  /** Its document id in the BM25 index: stable while it is held, unlike its row. */
  doc: number;
}

/** Per-query work that depends only on the text and the profiles held. */
interface QueryWork {
  features: Float32Array;
  cosine: Float32Array;
  bm25: Float64Array;
}

/**
 * Holds the experts' profiles and scores queries against them: the relevance half of
 * request-level routing. Profiles live as one contiguous experts × dimensions matrix of unit
 * rows (updated on {@link ProfileScorer.set} / {@link ProfileScorer.remove}) scanned natively
 * by {@link float32Scores}, and as BM25 ({@link Bm25Index}) term contributions precomputed per
 * expert, so a query costs one embedding, one tokenisation, one scan and a few additions.
 *
 * Rows are kept sorted by id, so equal relevances rank by id. The embedder must be
 * synchronous (routing is); results are deterministic for a given set of profiles.
 *
 * @example
 * ```ts
 * import { ProfileScorer, DEFAULT_EXPERTS } from '@capibara/core';
 * const scorer = new ProfileScorer();
 * for (const p of DEFAULT_EXPERTS) scorer.set(p);
 * const scored = scorer.score('why does my query do a full table scan?');
 * const [first] = scorer.top(scored, 3);
 * console.log(scored.ids[first!]); // 'sql'
 * ```
 */
export class ProfileScorer {
  /**
   * Length of the embeddings.
   *
   * @example
   * ```ts
   * new ProfileScorer().dimensions; // 256
   * ```
   */
  readonly dimensions: number;
  readonly #embedder: SyncEmbedder;
  readonly #cacheSize: number;
  #ids: readonly string[] = Object.freeze([]);
  #experts: Row[] = [];
  #nextDoc = 0;
  /** BM25 over the profile texts, updated in place on set/remove. */
  readonly #bm25 = new ProfileBm25();
  /** The rows' BM25 document ids, in row order. */
  #docs: number[] = [];
  #matrix = new Float32Array(0);
  /** The rows in use, `#matrix[0, size × dimensions)`: what the scan reads. */
  #active = new Float32Array(0);
  readonly #pool = new ArrayPool();
  #cache = new Map<string, QueryWork>();

  /**
   * @param options - `dimensions` (default 256), `embedder` (default a {@link HashedEmbedder}), `cacheSize` (default 1024).
   * @throws TypeError | RangeError - for unknown options, bad values, or `dimensions` unlike the embedder's.
   *
   * @example
   * ```ts
   * const scorer = new ProfileScorer({ embedder: new HashedEmbedder({ dimensions: 384 }) });
   * ```
   */
  constructor(options: ProfileScorerOptions = {}) {
    const o = scorerOptions(options, 'options');
    this.#embedder = o.embedder ?? new HashedEmbedder({ dimensions: o.dimensions });
    this.#cacheSize = o.cacheSize;
    this.dimensions = this.#embedder.dimensions;
  }

  /**
   * Number of experts held.
   *
   * @example
   * ```ts
   * if (scorer.size === 0) for (const p of DEFAULT_EXPERTS) scorer.set(p);
   * ```
   */
  get size(): number {
    return this.#ids.length;
  }

  /**
   * Adds an expert, or replaces the profile of one with the same id.
   *
   * @param profile - The profile (checked by {@link validateProfile}).
   * @returns The stored profile, defaults filled in.
   * @throws TypeError | RangeError - for a bad profile, or an embedder that is asynchronous or
   *   returns something other than one finite vector of {@link ProfileScorer.dimensions}.
   *
   * @example
   * ```ts
   * scorer.set({ id: 'rust', domain: 'rust', description: 'Rust ownership, lifetimes, cargo', keywords: ['borrow checker'] });
   * ```
   */
  set(profile: ExpertProfile): ResolvedExpertProfile {
    const p = validateProfile(profile);
    const text = profileText(p);
    const row = this.#embedUnit(text, tokenize(text)); // before any change, so a throwing embedder leaves the scorer as it was
    const dims = this.dimensions;
    let at = this.#find(p.id);
    const ids = this.#ids.slice();
    const entry: Row = { profile: p, doc: at >= 0 ? this.#experts[at]!.doc : this.#nextDoc++ };
    this.#bm25.set(entry.doc, text); // replaces the old text of a held expert
    if (at >= 0) {
      this.#experts[at] = entry;
    } else {
      at = -at - 1;
      ids.splice(at, 0, p.id);
      this.#experts.splice(at, 0, entry);
      const needed = ids.length * dims;
      if (this.#matrix.length < needed) {
        const grown = new Float32Array(Math.max(needed, 2 * this.#matrix.length));
        grown.set(this.#matrix);
        this.#matrix = grown;
      }
      this.#matrix.copyWithin((at + 1) * dims, at * dims, (ids.length - 1) * dims);
    }
    this.#matrix.set(row, at * dims);
    this.#ids = Object.freeze(ids);
    this.#changed();
    return p;
  }

  /**
   * Removes an expert.
   *
   * @param id - Its id.
   * @returns Whether it was held.
   *
   * @example
   * ```ts
   * scorer.remove('ml'); // true
   * scorer.remove('ml'); // false
   * ```
   */
  remove(id: string): boolean {
    const at = this.#find(v.string('id', id));
    if (at < 0) return false;
    const dims = this.dimensions;
    const ids = this.#ids.slice();
    ids.splice(at, 1);
    this.#bm25.remove(this.#experts[at]!.doc);
    this.#experts.splice(at, 1);
    this.#matrix.copyWithin(at * dims, (at + 1) * dims, (ids.length + 1) * dims);
    this.#ids = Object.freeze(ids);
    this.#changed();
    return true;
  }

  /**
   * Whether an expert is held.
   *
   * @example
   * ```ts
   * if (!scorer.has('sql')) scorer.set(sqlProfile);
   * ```
   */
  has(id: string): boolean {
    return this.#find(v.string('id', id)) >= 0;
  }

  /**
   * The stored profile of an expert.
   *
   * @returns The profile with defaults filled in, or `undefined` when `id` is not held.
   *
   * @example
   * ```ts
   * const capacity = scorer.get('sql')?.capacity ?? 0;
   * ```
   */
  get(id: string): ResolvedExpertProfile | undefined {
    const at = this.#find(v.string('id', id));
    return at < 0 ? undefined : this.#experts[at]!.profile;
  }

  /**
   * The ids held, sorted (UTF-16 code unit order): the row order of every score.
   *
   * @example
   * ```ts
   * scorer.ids(); // ['api', 'debug', 'javascript', 'ml', 'python', 'sql']
   * ```
   */
  ids(): readonly string[] {
    return this.#ids;
  }

  /**
   * Scores a query against every expert not excluded (see {@link RELEVANCE_WEIGHTS} for the
   * definition). Synchronous; after a profile change, the first call also rebuilds the BM25
   * contributions (one index search per distinct profile term: about 2 ms for 32 experts).
   *
   * @param text - The query: a non-empty string.
   * @param context - `domain` (a bonus for experts of that domain) and `exclude` (ids left
   *   out; unknown ids are ignored) are used; the other fields are for the router.
   * @throws TypeError | RangeError - for an empty or non-string `text` or a bad `context`.
   *
   * @example
   * ```ts
   * const scored = scorer.score('segfault when freeing a buffer', { domain: 'debug', exclude: ['python'] });
   * ```
   */
  score(text: string, context?: RoutingContext): ScoredExperts {
    v.nonEmptyString('text', text);
    const ctx = v.options<RoutingContext>('context', context, CONTEXT_KEYS);
    const domain = ctx.domain === undefined ? undefined : v.string('context.domain', ctx.domain);
    const kept = ctx.exclude === undefined ? null : this.#kept(ctx.exclude);
    const work = this.#work(text);
    const n = kept === null ? this.#ids.length : kept.length;
    const relevance = this.#pool.f32(n);
    const parts = new Array<RelevanceParts>(n);
    let best = 0;
    for (let j = 0; j < n; j++) best = Math.max(best, work.bm25[kept === null ? j : kept[j]!]!);
    const inv = best > 0 ? 1 / best : 0;
    const { cosine: wc, bm25: wb, domainBonus: wd } = RELEVANCE_WEIGHTS;
    for (let j = 0; j < n; j++) {
      const r = kept === null ? j : kept[j]!;
      const c = work.cosine[r]!;
      const b = work.bm25[r]! * inv;
      const base = Math.min(1, wc * Math.max(0, c) + wb * b); // min: float32 cosines of unit rows may reach 1 + 1e-7
      const bonus = domain !== undefined && this.#experts[r]!.profile.domain === domain ? wd * (1 - base) : 0;
      relevance[j] = base + bonus;
      parts[j] = { cosine: c, bm25: b, domainBonus: bonus };
    }
    const ids = kept === null ? this.#ids : Array.from(kept, (r) => this.#ids[r]!);
    const features = this.#pool.f32(this.dimensions);
    features.set(work.features); // a copy: the cached one must not change under the caller
    return { ids, relevance, features, parts };
  }

  /**
   * The best experts of a score: descending relevance, equal relevances in id order.
   *
   * @param scored - A result of {@link ProfileScorer.score}.
   * @param k - How many, an integer >= 1; fewer come back when fewer experts were scored.
   * @returns Indices into `scored.ids`, best first.
   *
   * @example
   * ```ts
   * const scored = scorer.score('train a classifier on imbalanced labels');
   * const ranked = Array.from(scorer.top(scored, 3), (i) => scored.ids[i]);
   * ```
   */
  top(scored: ScoredExperts, k: number): Int32Array {
    const relevance = v.float32Array('scored.relevance', (scored as Partial<ScoredExperts> | undefined)?.relevance);
    return topK(relevance, v.integer('k', k, 1), 'scored.relevance');
  }

  /** Row of `id`, or `-(insertion point) - 1` when absent (binary search over the sorted ids). */
  #find(id: string): number {
    const ids = this.#ids;
    let lo = 0;
    let hi = ids.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const m = ids[mid]!;
      if (m === id) return mid;
      if (m < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return -lo - 1;
  }

  #changed(): void {
    this.#active = this.#matrix.subarray(0, this.#ids.length * this.dimensions);
    this.#docs = this.#experts.map((e) => e.doc);
    this.#cache.clear();
  }

  /** Rows not in `exclude`, ascending. */
  #kept(exclude: unknown): Int32Array {
    if (!Array.isArray(exclude)) throw v.typeError('context.exclude', 'array of strings', exclude);
    const out: number[] = [];
    const drop = new Set<string>();
    for (let i = 0; i < exclude.length; i++) drop.add(v.string(`context.exclude[${i}]`, exclude[i]));
    for (let r = 0; r < this.#ids.length; r++) if (!drop.has(this.#ids[r]!)) out.push(r);
    return Int32Array.from(out);
  }

  /** The embedding of a text, checked and scaled to unit length (a copy only when it was not). */
  #embedUnit(text: string, terms: readonly string[]): Float32Array {
    // The default embedder takes the query's terms, tokenized once for it and for BM25.
    // Its vector goes straight into pooled memory (a fresh 1 KiB Float32Array costs about a microsecond).
    const result = (this.#embedder instanceof HashedEmbedder ? [this.#embedder.embedTerms(terms, this.#pool.f32(this.dimensions))] : this.#embedder.embed([text])) as unknown;
    if (result instanceof Promise || typeof (result as { then?: unknown } | null)?.then === 'function') {
      (result as Promise<unknown>).then(undefined, () => undefined); // its rejection is not ours to report
      throw new TypeError(
        'Expected a synchronous embedder for ProfileScorer (routing is synchronous) but embedder.embed() returned a Promise',
      );
    }
    const dims = this.dimensions;
    const vec = Array.isArray(result) && result.length === 1 ? (result[0] as unknown) : undefined;
    if (!(vec instanceof Float32Array) || vec.length !== dims) {
      throw v.typeError('embedder.embed() result', `[Float32Array of length ${dims}]`, Array.isArray(result) ? vec : result);
    }
    let norm = 0;
    for (let i = 0; i < dims; i++) norm += vec[i]! * vec[i]!;
    if (!Number.isFinite(norm)) throw new RangeError(`Expected finite numbers for embedder.embed() result but the vector of '${text.slice(0, 40)}' is not`);
    if (norm === 0 || Math.abs(norm - 1) < 1e-6) return vec;
    const out = this.#pool.f32(dims);
    const scale = 1 / Math.sqrt(norm);
    for (let i = 0; i < dims; i++) out[i] = vec[i]! * scale;
    return out;
  }

  /** Embedding, cosines and raw BM25 of a query, from the cache when there. */
  #work(text: string): QueryWork {
    const hit = this.#cache.get(text);
    if (hit !== undefined) {
      this.#cache.delete(text); // re-inserted last: Map order is the recency order
      this.#cache.set(text, hit);
      return hit;
    }
    const n = this.#ids.length;
    const terms = tokenize(text);
    const features = this.#embedUnit(text, terms);
    const cosine = this.#pool.f32(n);
    if (n > 0) float32Scores(features, this.#active, this.dimensions, { threads: 1, out: cosine });
    const work = { features, cosine, bm25: this.#bm25Scores(text, terms) };
    if (this.#cacheSize > 0) {
      if (this.#cache.size >= this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(text, work);
    }
    return work;
  }

  /** Raw BM25 of the query for each row, exactly as {@link Bm25Index.search} over the profile texts. */
  #bm25Scores(text: string, terms: readonly string[]): Float64Array {
    return this.#bm25.scores(text, terms, this.#docs, this.#pool.f64(this.#docs.length));
  }
}
