import { type NativeStats, native } from '../../native';
import * as v from '../../validate';
import { SCORING } from './enums';
import { type LogitsInput, resolveLogits } from './logits';
import type { Scoring, TopkGatingResult } from './topk-gating';

/**
 * Balance statistics of one routed batch. With T tokens, E experts, k slots per token and
 * `loads[i]` = slots routed to expert i (indices outside [0, E) are not counted):
 *
 * @example
 * ```ts
 * const s = routerStats(logits, routing);
 * if (s.maxVio > 0.5) console.warn('expert load is skewed', s.loads);
 * ```
 */
export interface RouterStats {
  /** f_i = loads[i] / (T·k): the share of routed slots expert i received (sums to 1). */
  loadFraction: Float64Array;
  /**
   * P_i = mean router probability of expert i: the softmax probability, or for `sigmoid`
   * scoring the sigmoid normalised over the experts (DeepSeek-V3's s'). Mean over counted tokens.
   */
  meanProb: Float64Array;
  /** Slots routed to each expert. */
  loads: Int32Array;
  /**
   * Switch Transformer auxiliary loss without its coefficient: `E · Σ f_i · P_i`; 1 at perfect
   * balance (for k = 1 it is exactly Switch's, which multiplies by α = 0.01).
   */
  auxLoss: number;
  /** ST-MoE router z-loss without its coefficient: mean over tokens of `(log Σ_j exp x_j)²` (the paper uses 0.001). */
  zLoss: number;
  /** `(max_i loads[i] − mean load) / mean load` (DeepSeek's MaxVio); NaN when nothing is routed. */
  maxVio: number;
  /** Squared coefficient of variation of the loads, `var / mean²` (population variance); NaN when nothing is routed. */
  cv2: number;
  /** Mean over tokens of the entropy (nats) of the router probability distribution. */
  entropy: number;
  /** Tokens with at least one unmasked expert; tokens with all experts masked are excluded from P, z-loss and entropy. */
  countedTokens: number;
}

/** Validates the arguments of {@link routerStats} and {@link routerStatsAsync} into the binding's. */
function prepare(logits: unknown, routing: unknown, options: unknown) {
  const o = v.options<{ experts: number; k: number; scoring: Scoring }>('options', options, ['experts', 'k', 'scoring']);
  let indices: Int32Array;
  let k: number;
  let experts = o.experts;
  if (routing instanceof Int32Array) {
    indices = routing;
    if (o.k === undefined) throw new TypeError('Expected options.k when routing is an Int32Array of indices');
    k = v.integer('k', o.k, 1, 1 << 20);
  } else if (typeof routing === 'object' && routing !== null && (routing as TopkGatingResult).indices instanceof Int32Array) {
    const r = routing as TopkGatingResult;
    indices = r.indices;
    k = v.integer('routing.k', r.k, 1, 1 << 20);
    experts ??= r.experts;
  } else {
    throw v.typeError('routing', 'Int32Array of expert indices or a topkGating result', routing);
  }
  const l = resolveLogits('logits', logits, experts);
  if (k > l.experts) throw v.rangeError('k', `integer in [1, ${l.experts}]`, k);
  if (indices.length !== l.tokens * k) {
    throw new RangeError(`Expected indices of length tokens * k = ${l.tokens * k} but received ${indices.length}`);
  }
  const scoring = o.scoring === undefined ? 'softmax' : v.oneOf('scoring', o.scoring, ['softmax', 'sigmoid'] as const);
  return [l.data, indices, l.tokens, l.experts, k, SCORING[scoring]] as const;
}

/** The public statistics of the binding's raw result. */
function toRouterStats(r: NativeStats): RouterStats {
  return {
    loadFraction: r.loadFraction,
    meanProb: r.meanProb,
    loads: r.loads,
    auxLoss: r.auxLoss,
    zLoss: r.zLoss,
    maxVio: r.maxVio,
    cv2: r.cv2,
    entropy: r.entropy,
    countedTokens: r.countedTokens,
  };
}

/**
 * Router balance statistics for a batch: load fractions, mean probabilities, the Switch
 * auxiliary loss, the ST-MoE z-loss, MaxVio, CV² of the loads and the routing entropy.
 * Computed natively: exponentials and logarithms in vectorized float32, sums in float64
 * (relative error about 1e-6); load counts, MaxVio and CV² are exact.
 *
 * @example
 * ```ts
 * import { topkGating, routerStats } from '@capibara/core';
 * const routing = topkGating(logits, { experts: 64, k: 8 });
 * const { auxLoss, maxVio } = routerStats(logits, routing);
 * ```
 */
export function routerStats(
  logits: LogitsInput,
  routing: Int32Array | TopkGatingResult,
  options: { experts?: number; k?: number; scoring?: Scoring } = {},
): RouterStats {
  return toRouterStats(native().gatingStats(...prepare(logits, routing, options)));
}

/**
 * {@link routerStats} on a worker thread: the same options, result and errors, as a promise. For
 * large batches, whose statistics would block the event loop for a millisecond or more (256
 * experts × 4,096 tokens takes about that on one x86-64 core). Inputs (logits, indices) on an
 * ordinary ArrayBuffer are copied when called, so you may reuse them at once; inputs on a
 * `SharedArrayBuffer` are read in place and must not be written until the promise settles.
 *
 * @example
 * ```ts
 * import { topkGatingAsync, routerStatsAsync } from '@capibara/core';
 * const routing = await topkGatingAsync(logits, { experts: 256, k: 8 });
 * const { auxLoss, maxVio } = await routerStatsAsync(logits, routing);
 * ```
 */
export async function routerStatsAsync(
  logits: LogitsInput,
  routing: Int32Array | TopkGatingResult,
  options: { experts?: number; k?: number; scoring?: Scoring } = {},
): Promise<RouterStats> {
  const site = new Error();
  const args = prepare(logits, routing, options);
  return toRouterStats(await v.atSite(site, () => native().gatingStatsAsync(...args)));
}
