/**
 * How one routing decision is made from a query's scores: each expert's relevance (with the load
 * controller's bias), those cooling down set aside (all of them kept, as `'degraded'`, when none
 * is available), the strategy's ranking, and fallbacks in the expert graph's order, experts
 * cooling down last. Pure with respect to the router: nothing is recorded here.
 * @module
 */
import type { ExpertGraph } from './expert-graph';
import type { FallbackOrder } from './fallback-order';
import type { ScoredExperts } from './profile-scorer';
import type { HealthView } from './shared-health';
import type { Candidate, Strategy } from './strategies';
import type { RoutingContext, RoutingDecision, RoutingStrategy } from './types';

/**
 * What a decision reads of the router.
 * @internal
 */
export interface DecisionInputs {
  strategy: RoutingStrategy;
  policy: Strategy;
  health: HealthView;
  graph: ExpertGraph;
  fallbacks: FallbackOrder;
  /** Requests in flight for an expert. */
  inFlight(id: string): number;
  capacity(id: string): number;
}

/**
 * The decision for a query whose experts were scored (`scored`, at least one expert), with the
 * load controller's `bias` (see RewiringExperts.setRelevanceBias), under the id `id`.
 * @internal
 */
export function decide(
  r: DecisionInputs, bias: ReadonlyMap<string, number> | undefined, scored: ScoredExperts, ctx: RoutingContext, now: number, id: string,
): RoutingDecision {
  const policy = r.policy;
  const n = scored.ids.length;
  const all: Candidate[] = new Array<Candidate>(n);
  const available: Candidate[] = [];
  for (let i = 0; i < n; i++) {
    const expert = scored.ids[i]!;
    const relevance = bias === undefined ? scored.relevance[i]! : Math.min(1, Math.max(0, scored.relevance[i]! + (bias.get(expert) ?? 0)));
    const c = { id: expert, relevance, inFlight: r.inFlight(expert), capacity: r.capacity(expert) };
    all[i] = c;
    if (r.health.isAvailable(expert)) available.push(c);
  }
  let candidates = available;
  const degraded = candidates.length === 0;
  if (degraded) candidates = all;
  const ranking = policy.rank(candidates, scored.features, ctx, now);
  const best = ranking[0]!;
  const rest = new Array<string>(ranking.length - 1);
  for (let k = 1; k < ranking.length; k++) rest[k - 1] = ranking[k]!.id;
  const order = r.fallbacks;
  let fallbacks = order.select(r.graph, best.id, rest);
  if (!degraded && fallbacks.length < order.max && candidates.length < all.length) {
    // Experts cooling down come last: routeWithFallback can wait for them.
    const cooling = policy.rank(all.filter((c) => !candidates.includes(c)), scored.features, ctx, now);
    fallbacks = [...fallbacks, ...order.select(r.graph, best.id, cooling.map((x) => x.id))].slice(0, order.max);
  }
  const i = scored.ids.indexOf(best.id);
  const part = scored.parts[i]!;
  return {
    id,
    expertId: best.id,
    score: best.score,
    fallbacks,
    strategy: r.strategy,
    reasons: {
      relevance: scored.relevance[i]!,
      cosine: part.cosine,
      bm25: part.bm25,
      domainBonus: part.domainBonus,
      strategy: best.reasons,
      inFlight: r.inFlight(best.id),
      health: degraded ? 'degraded' : 'available',
      ...(bias === undefined ? {} : { bias: bias.get(best.id) ?? 0 }),
    },
    ranking: ranking.map((x) => ({ id: x.id, score: x.score })),
  };
}
