/**
 * ADAPTIVE: learns from outcomes which expert answers which kind of query (LinUCB over the query
 * features), or which expert answers best overall (Thompson sampling).
 * @module
 */
import { RoutingStrategy, type RoutingContext } from '../types';
import { BaseStrategy, SORT_KEYS } from './base';
import { decayFactor } from './expert-stats';
import { num, numbers, object } from './json';
import { LinUcbArm, outerPacked, RandomProjection } from './linucb';
import type { Candidate, RankedCandidate, ResolvedStrategyOptions, StrategyOutcome } from './types';

/**
 * LinUCB learns r − REWARD_PRIOR, so an arm with no data estimates 0.5 (the Beta(1, 1) mean the
 * other strategies start from), not 0: a new expert is then tried even next to an incumbent that
 * succeeds 95 % of the time, instead of losing to it forever.
 */
export const REWARD_PRIOR = 0.5;

/** Thompson state of one expert: time-decayed pseudo-counts of reward and its complement. */
interface BetaArm {
  wins: number;
  losses: number;
  time: number;
}

/**
 * Reward of an outcome, in [−latencyPenalty, 1]: success ? (quality ?? 1) : 0, minus
 * latencyPenalty × L / (L + referenceLatencyMs) — half the penalty at the reference latency,
 * approaching all of it for very slow answers.
 */
export function reward(outcome: StrategyOutcome, options: ResolvedStrategyOptions): number {
  const base = outcome.success ? (outcome.quality ?? 1) : 0;
  if (options.latencyPenalty === 0) return base;
  const l = outcome.latencyMs;
  return base - options.latencyPenalty * (l / (l + options.referenceLatencyMs));
}

/**
 * score = relevanceWeight × relevance + learned term, where the learned term is
 * - `linucb`: 0.5 + θᵀx + α√(xᵀA⁻¹x) of the expert's disjoint LinUCB arm fitted to r − 0.5
 *   (`REWARD_PRIOR`), x = [R·features; 1] (R the seeded random projection to
 *   `projectedDimensions`; the 1 lets each arm learn a query-independent level). An expert with no
 *   outcomes has θ = 0 and A = λI: the same estimate and bonus for every cold expert, so cold start
 *   ranks by relevance. Reasons: relevance, estimate (0.5 + θᵀx), bonus (α√(xᵀA⁻¹x)), observations.
 * - `thompson`: a sample of Beta(1 + wins, 1 + losses) with time-decayed fractional counts
 *   (wins += r, losses += 1 − r for r clipped to [0, 1]); feature-blind. Each `rank` draws from the
 *   seeded PRNG, so two rankings of the same query differ (the PRNG state is saved by `toJSON`).
 *   Reasons: relevance, sample, mean.
 */
export class AdaptiveStrategy extends BaseStrategy {
  readonly name = RoutingStrategy.ADAPTIVE;
  readonly #projection: RandomProjection | undefined;
  readonly #d: number;
  readonly #x: Float64Array;
  readonly #q: Float64Array;
  readonly #arms = new Map<string, LinUcbArm>();
  readonly #beta = new Map<string, BetaArm>();

  constructor(options: ResolvedStrategyOptions, rngState?: number) {
    super(options, rngState);
    if (options.adaptiveMethod === 'linucb') {
      this.#projection = new RandomProjection(options.dimensions, options.projectedDimensions, options.seed);
      this.#d = this.#projection.outDims + 1;
    } else {
      this.#d = 0;
    }
    this.#x = new Float64Array(this.#d);
    this.#q = new Float64Array((this.#d * (this.#d + 1)) / 2);
  }

  /** x = [R·features; 1], into the shared scratch vector. */
  #context(features: Float32Array): Float64Array {
    const x = this.#x;
    this.#projection!.apply(features, x);
    x[this.#d - 1] = 1;
    return x;
  }

  protected score(candidates: readonly Candidate[], features: Float32Array, _context: RoutingContext, now: number, keys: Float64Array): RankedCandidate[] {
    const out = this.options.adaptiveMethod === 'linucb' ? this.#scoreLinUcb(candidates, features, now) : this.#scoreThompson(candidates, now);
    for (let i = 0; i < out.length; i++) {
      const k = i * SORT_KEYS;
      keys[k] = out[i]!.score;
      keys[k + 1] = candidates[i]!.relevance;
      keys[k + 2] = 0;
      keys[k + 3] = 0;
    }
    return out;
  }

  #scoreLinUcb(candidates: readonly Candidate[], features: Float32Array, now: number): RankedCandidate[] {
    const { alpha, lambda, halfLifeMs, relevanceWeight } = this.options;
    const x = this.#context(features);
    const q = this.#q;
    outerPacked(x, this.#d, q);
    let xx = 0;
    for (let i = 0; i < this.#d; i++) xx += x[i]! * x[i]!;
    const coldBonus = alpha * Math.sqrt(xx / lambda);
    const out: RankedCandidate[] = new Array(candidates.length);
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      const arm = this.#arms.get(c.id);
      const estimate = REWARD_PRIOR + (arm === undefined ? 0 : arm.estimate(x));
      const bonus = arm === undefined ? coldBonus : alpha * Math.sqrt(arm.variance(q, now, halfLifeMs));
      out[i] = {
        id: c.id,
        score: relevanceWeight * c.relevance + estimate + bonus,
        reasons: { relevance: c.relevance, estimate, bonus, observations: arm === undefined ? 0 : arm.n },
      };
    }
    return out;
  }

  #scoreThompson(candidates: readonly Candidate[], now: number): RankedCandidate[] {
    const { halfLifeMs, relevanceWeight } = this.options;
    const out: RankedCandidate[] = new Array(candidates.length);
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      const arm = this.#beta.get(c.id);
      const g = arm === undefined ? 0 : decayFactor(now - arm.time, halfLifeMs);
      const a = 1 + (arm === undefined ? 0 : arm.wins * g);
      const b = 1 + (arm === undefined ? 0 : arm.losses * g);
      const sample = this.rng.beta(a, b);
      out[i] = {
        id: c.id,
        score: relevanceWeight * c.relevance + sample,
        reasons: { relevance: c.relevance, sample, mean: a / (a + b) },
      };
    }
    return out;
  }

  // Thompson's counts are feature-blind: another replica's outcome counts as one of ours. LinUCB
  // would need that query's features (and the same embedder and projection), so its arms stay local.
  protected override learnBlind(id: string, outcome: StrategyOutcome, now: number): void {
    if (this.options.adaptiveMethod === 'thompson') this.#learnBeta(id, reward(outcome, this.options), now);
  }

  protected override learn(id: string, features: Float32Array, outcome: StrategyOutcome, now: number): void {
    const r = reward(outcome, this.options);
    const { lambda, halfLifeMs } = this.options;
    if (this.options.adaptiveMethod === 'linucb') {
      let arm = this.#arms.get(id);
      if (arm === undefined) {
        arm = new LinUcbArm(this.#d, lambda);
        this.#arms.set(id, arm);
      }
      arm.update(this.#context(features), r - REWARD_PRIOR, now, lambda, halfLifeMs);
      return;
    }
    this.#learnBeta(id, r, now);
  }

  #learnBeta(id: string, r: number, now: number): void {
    const { halfLifeMs } = this.options;
    let arm = this.#beta.get(id);
    if (arm === undefined) {
      arm = { wins: 0, losses: 0, time: now };
      this.#beta.set(id, arm);
    }
    if (now > arm.time) {
      const g = decayFactor(now - arm.time, halfLifeMs);
      arm.wins *= g;
      arm.losses *= g;
      arm.time = now;
    }
    const p = Math.min(1, Math.max(0, r));
    arm.wins += p;
    arm.losses += 1 - p;
  }

  protected override forget(id: string): void {
    this.#arms.delete(id);
    this.#beta.delete(id);
  }

  protected override modelJSON(id: string): unknown {
    if (this.options.adaptiveMethod === 'linucb') return this.#arms.get(id)?.toJSON();
    const arm = this.#beta.get(id);
    return arm === undefined ? undefined : { ...arm };
  }

  protected override restoreModel(id: string, model: unknown): void {
    const path = `json.experts.${id}.model`;
    const m = object(path, model);
    if (this.options.adaptiveMethod === 'thompson') {
      this.#beta.set(id, { wins: num(`${path}.wins`, m.wins, 0), losses: num(`${path}.losses`, m.losses, 0), time: num(`${path}.time`, m.time) });
      return;
    }
    const d = this.#d;
    this.#arms.set(id, LinUcbArm.fromJSON({
      n: num(`${path}.n`, m.n, 0),
      time: num(`${path}.time`, m.time),
      rho: num(`${path}.rho`, m.rho, 0),
      a: numbers(`${path}.a`, m.a, d * d),
      ainv: numbers(`${path}.ainv`, m.ainv, d * d),
      b: numbers(`${path}.b`, m.b, d),
      theta: [],
    }, d, this.options.lambda));
  }
}
