/**
 * What the four strategies share: argument checks, the per-expert statistics, persistence.
 * @module
 */
import type { RoutingContext, RoutingStrategy } from '../types';
import { ExpertStats, type ExpertStatsJSON } from './expert-stats';
import { checkRank, checkUpdate } from './options';
import { Prng } from './prng';
import type { Candidate, ExpertStatsView, RankedCandidate, ResolvedStrategyOptions, Strategy, StrategyOutcome } from './types';

/** JSON form of a strategy: `version` guards the layout; `experts[id].model` is strategy-specific. */
export interface StrategyJSON {
  version: 1;
  strategy: RoutingStrategy;
  options: Omit<ResolvedStrategyOptions, 'halfLifeMs'> & { halfLifeMs: number | null };
  rng: number;
  experts: Record<string, { stats: ExpertStatsJSON; model?: unknown }>;
}

/** Sort keys per candidate (see `BaseStrategy.score`). */
export const SORT_KEYS = 4;

/** Lexicographic comparison of the keys of items i and j: > 0 when i ranks first. */
function compareKeys(keys: Float64Array, i: number, j: number): number {
  const a = i * SORT_KEYS;
  const b = j * SORT_KEYS;
  return keys[a]! - keys[b]! || keys[a + 1]! - keys[b + 1]! || keys[a + 2]! - keys[b + 2]! || keys[a + 3]! - keys[b + 3]!;
}

// The insertion sort's index order, reused: a fresh Int32Array of more than 64 bytes lives
// outside the V8 heap and costs about as much as sorting 32 items.
const ORDER = new Int32Array(64);

/**
 * Orders `items` by their keys, lexicographically descending, stable. Up to 64 items (the usual
 * case), a binary insertion sort over indices (about n·log₂n comparisons, 130 for 32 items,
 * against n²/4 for a linear one): several times faster than `Array.prototype.sort` with a
 * comparator; above, that sort, for its O(n log n) moves.
 */
export function sortByKeys<T>(items: T[], keys: Float64Array): T[] {
  const n = items.length;
  const out: T[] = new Array(n);
  if (n > 64) {
    const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => compareKeys(keys, j, i));
    for (let i = 0; i < n; i++) out[i] = items[order[i]!]!;
    return out;
  }
  const order = ORDER;
  for (let i = 0; i < n; i++) {
    // The first place whose item i strictly outranks: after every item it ties with (stable).
    let lo = 0;
    let hi = i;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(keys, i, order[mid]!) > 0) hi = mid;
      else lo = mid + 1;
    }
    for (let j = i; j > lo; j--) order[j] = order[j - 1]!;
    order[lo] = i;
  }
  for (let i = 0; i < n; i++) out[i] = items[order[i]!]!;
  return out;
}

/** Quality's share of the score: 0.25 on easy queries rising to 1 on the hardest (complexity 1); unknown complexity counts as 0.5. */
export function qualityFactor(qualityMean: number, complexity: number | undefined): number {
  const w = 0.25 + 0.75 * (complexity ?? 0.5);
  return 1 - w + w * qualityMean;
}

/** Base of the strategies: subclasses implement `score` (and `learn` / model persistence when they keep a model). */
export abstract class BaseStrategy implements Strategy {
  abstract readonly name: RoutingStrategy;
  readonly options: Readonly<ResolvedStrategyOptions>;
  protected readonly rng: Prng;
  protected readonly experts = new Map<string, ExpertStats>();
  #keys = new Float64Array(64 * SORT_KEYS);

  constructor(options: ResolvedStrategyOptions, rngState?: number) {
    this.options = Object.freeze({ ...options });
    this.rng = new Prng(rngState ?? options.seed);
  }

  rank(candidates: readonly Candidate[], features: Float32Array, context: RoutingContext, now: number): RankedCandidate[] {
    checkRank(candidates, features, context, now, this.options.dimensions);
    const n = candidates.length;
    if (this.#keys.length < n * SORT_KEYS) this.#keys = new Float64Array(n * SORT_KEYS * 2);
    const scored = this.score(candidates, features, context, now, this.#keys);
    return sortByKeys(scored, this.#keys);
  }

  update(id: string, features: Float32Array, outcome: StrategyOutcome, now: number): void {
    checkUpdate(id, features, outcome, now, this.options.dimensions);
    let s = this.experts.get(id);
    if (s === undefined) {
      s = new ExpertStats();
      this.experts.set(id, s);
    }
    s.observe(outcome, now, this.options.halfLifeMs);
    this.learn(id, features, outcome, now);
  }

  observe(id: string, outcome: StrategyOutcome, now: number): void {
    let s = this.experts.get(id);
    if (s === undefined) {
      s = new ExpertStats();
      this.experts.set(id, s);
    }
    s.observe(outcome, now, this.options.halfLifeMs);
    this.learnBlind(id, outcome, now);
  }

  remove(id: string): void {
    this.experts.delete(id);
    this.forget(id);
  }

  stats(id: string, now: number): ExpertStatsView | undefined {
    return this.experts.get(id)?.view(now, this.options.halfLifeMs);
  }

  toJSON(): StrategyJSON {
    // fromEntries defines own properties, so an id such as '__proto__' stays an ordinary key.
    const experts: StrategyJSON['experts'] = Object.fromEntries(
      [...this.experts].map(([id, s]) => {
        const model = this.modelJSON(id);
        return [id, model === undefined ? { stats: s.toJSON() } : { stats: s.toJSON(), model }];
      }),
    );
    const { halfLifeMs, ...rest } = this.options;
    return {
      version: 1,
      strategy: this.name,
      options: { ...rest, halfLifeMs: halfLifeMs === Infinity ? null : halfLifeMs },
      rng: this.rng.state,
      experts,
    };
  }

  /** Restores state saved by `toJSON` (already validated by the caller). */
  restore(experts: Map<string, { stats: ExpertStats; model: unknown }>): void {
    for (const [id, e] of experts) {
      this.experts.set(id, e.stats);
      if (e.model !== undefined) this.restoreModel(id, e.model);
    }
  }

  /**
   * Scores every candidate (entry i for candidates[i]) and writes its sort keys to
   * `keys[SORT_KEYS·i …]`: the ranking orders by key 0 descending, then key 1, key 2, key 3,
   * then input order.
   */
  protected abstract score(candidates: readonly Candidate[], features: Float32Array, context: RoutingContext, now: number, keys: Float64Array): RankedCandidate[];

  /** Extra learning beyond the shared statistics. */
  protected learn(_id: string, _features: Float32Array, _outcome: StrategyOutcome, _now: number): void {}
  /** Extra learning from an outcome whose query features are unknown (another replica's). */
  protected learnBlind(_id: string, _outcome: StrategyOutcome, _now: number): void {}
  /** Drops the extra state of `id`. */
  protected forget(_id: string): void {}
  /** Extra state of `id` for JSON, or undefined. */
  protected modelJSON(_id: string): unknown {
    return undefined;
  }
  /** Loads extra state of `id` saved by `modelJSON` (validated: throws on a bad shape). */
  protected restoreModel(_id: string, _model: unknown): void {}
}
