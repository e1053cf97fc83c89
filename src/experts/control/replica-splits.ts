/**
 * The replica split of a router's experts. The router holds one concurrency per expert, the
 * product `capacity × replicas`; control planes keep the two factors apart. Every control plane
 * over the same router must read the same split (a second one must not take the product for one
 * replica's capacity), so the split lives with the router object itself, under a private symbol,
 * rather than in a module-level table keyed by routers.
 * @module
 */
import type { RewiringExperts } from '../routing/index';

/** One expert's capacity per replica and replicas. @internal */
export interface ReplicaSplit {
  capacity: number;
  replicas: number;
}

const SPLITS = Symbol('capibara.replicaSplits');

type Holder = { [SPLITS]?: Map<string, ReplicaSplit> };

/**
 * The splits recorded on `router` (the same Map for every control plane over it): only experts
 * that run more than one replica are listed.
 * @internal
 */
export function replicaSplits(router: RewiringExperts): Map<string, ReplicaSplit> {
  const holder = router as unknown as Holder;
  let splits = holder[SPLITS];
  if (splits === undefined) {
    splits = new Map();
    // Non-enumerable: invisible to the router's own iteration and serialisation.
    Object.defineProperty(router, SPLITS, { value: splits });
  }
  return splits;
}
