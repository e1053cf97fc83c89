/**
 * LOAD_BALANCED: the most headroom among the relevant experts.
 * @module
 */
import { RoutingStrategy, type RoutingContext } from '../types';
import { BaseStrategy, SORT_KEYS } from './base';
import type { Candidate, RankedCandidate } from './types';

/**
 * Eligible: relevance >= relevanceFraction × the best relevance (default 0.8), so load never
 * sends a query to an expert far worse at it. Eligible experts come first, by headroom
 * 1 − inFlight / capacity, ties broken by relevance, then by fewer recent outcomes (time-decayed
 * count, so sequential traffic — always 0 in flight — still alternates), then input order.
 * Ineligible experts follow by relevance.
 *
 * score = headroom; reasons: relevance, headroom, eligible (1/0), recent (decayed outcomes).
 */
export class LoadBalancedStrategy extends BaseStrategy {
  readonly name = RoutingStrategy.LOAD_BALANCED;

  protected score(candidates: readonly Candidate[], _features: Float32Array, _context: RoutingContext, now: number, keys: Float64Array): RankedCandidate[] {
    let best = 0;
    for (let i = 0; i < candidates.length; i++) best = Math.max(best, candidates[i]!.relevance);
    const floor = this.options.relevanceFraction * best;
    const out: RankedCandidate[] = new Array(candidates.length);
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      const headroom = 1 - c.inFlight / c.capacity;
      const s = this.experts.get(c.id);
      const recent = s === undefined ? 0 : s.served(s.factor(now, this.options.halfLifeMs));
      const eligible = c.relevance >= floor ? 1 : 0;
      out[i] = { id: c.id, score: headroom, reasons: { relevance: c.relevance, headroom, eligible, recent } };
      const k = i * SORT_KEYS;
      keys[k] = eligible;
      keys[k + 1] = eligible ? headroom : c.relevance;
      keys[k + 2] = eligible ? c.relevance : 0;
      keys[k + 3] = eligible ? -recent : 0;
    }
    return out;
  }
}
