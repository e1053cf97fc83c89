/**
 * The options of a control plane, checked and with their defaults, and the router they name or
 * build.
 * @module
 */
import { RewiringExperts, type RewiringExpertsOptions, rewiringOptions } from '../routing/index';
import * as v from '../../validate';
import { MAX_REPLICA_BUDGET } from './allocation';
import { checkSpecializations, resolveBalancing } from './checks';
import type { BalancerSettings } from './request-balancer';
import { specializationProfile } from './specialization-profile';
import type { MoEControlAPIOptions } from './types';

const OPTION_KEYS = [
  'numExperts', 'expertSpecializations', 'dynamicExpertAllocation', 'loadBalancing', 'router', 'routerOptions', 'replicaBudget', 'loadWindowMs', 'bucketMs',
  'retainMs', 'now',
] as const;

/** {@link MoEControlAPIOptions} checked, with the router. @internal */
export interface ControlSettings {
  numExperts: number;
  now: () => number;
  /** Specializations the pool starts with, one expert each. */
  specializations: string[];
  dynamicExpertAllocation: boolean;
  balancing: BalancerSettings | undefined;
  replicaBudget: number;
  bucketMs: number;
  retainMs: number;
  loadWindowMs: number;
  router: RewiringExperts;
  /** The router was built here (from `routerOptions`): the control plane closes it. */
  ownsRouter: boolean;
}

/**
 * Checks the options, in the order they are documented, and takes or builds the router.
 * @throws TypeError / RangeError naming the bad option.
 * @internal
 */
export function resolveControlOptions(options: unknown): ControlSettings {
  const o = v.options<MoEControlAPIOptions>('options', options, OPTION_KEYS);
  const numExperts = o.numExperts === undefined ? 32 : v.integer('options.numExperts', o.numExperts, 1, 4096);
  const now = v.optionalFunction<() => number>('options.now', o.now) ?? Date.now;
  const specializations = o.expertSpecializations === undefined ? [] : checkSpecializations('options.expertSpecializations', o.expertSpecializations);
  const dynamicExpertAllocation = o.dynamicExpertAllocation === undefined ? false : v.boolean('options.dynamicExpertAllocation', o.dynamicExpertAllocation);
  const balancing = resolveBalancing('options.loadBalancing', o.loadBalancing);
  const replicaBudget = o.replicaBudget === undefined ? numExperts : v.integer('options.replicaBudget', o.replicaBudget, 1, MAX_REPLICA_BUDGET);
  const bucketMs = o.bucketMs === undefined ? 1000 : v.integer('options.bucketMs', o.bucketMs, 1);
  const retainMs = o.retainMs === undefined ? 3_600_000 : v.integer('options.retainMs', o.retainMs, bucketMs);
  // A window shorter than a bucket would hold no bucket at all.
  const loadWindowMs = o.loadWindowMs === undefined ? Math.min(Math.max(60_000, bucketMs), retainMs) : v.integer('options.loadWindowMs', o.loadWindowMs, bucketMs, retainMs);
  let router: RewiringExperts;
  if (o.router !== undefined) {
    if (!(o.router instanceof RewiringExperts)) throw v.typeError('options.router', 'RewiringExperts', o.router);
    if (o.routerOptions !== undefined) throw new TypeError('Expected options.router or options.routerOptions, not both');
    router = o.router;
  } else {
    // Checked as given first, so that an error names what the caller wrote; then the router
    // takes them checked again with the control plane's defaults (its clock, experts for its
    // specializations), under the same path.
    rewiringOptions(o.routerOptions, 'options.routerOptions');
    const given: RewiringExpertsOptions = o.routerOptions ?? {};
    const experts = given.experts ?? (specializations.length > 0 ? specializations.map((s) => specializationProfile(s, s, {})) : undefined);
    router = new RewiringExperts(rewiringOptions({ clock: now, ...given, ...(experts === undefined ? {} : { experts }) }, 'options.routerOptions'));
  }
  return { numExperts, now, specializations, dynamicExpertAllocation, balancing, replicaBudget, bucketMs, retainMs, loadWindowMs, router, ownsRouter: o.router === undefined };
}
