export { type CooldownReason, type ExpertProfile, type RoutingContext, type RoutingDecision, type RoutingMetrics, type RoutingOutcome, type RoutingReasons, RoutingStrategy } from './types';
export { DEFAULT_EXPERTS } from './default-experts';
export { RewiringExperts } from './rewiring-experts';
export type { RewiringExpertsOptions } from './rewiring-options';
/** @internal Checks router options under a path (the control plane's options.routerOptions). */
export { rewiringOptions } from './rewiring-options';
export type { SharedRoutingStateOptions } from './shared-state';
export { type FallbackOptions, type FallbackResult } from './fallback';
export { KEYWORD_REPEAT, type ResolvedExpertProfile, profileText, validateProfile } from './profile';
export { ProfileScorer, type ProfileScorerOptions, RELEVANCE_WEIGHTS, type RelevanceParts, type RelevanceWeights, type ScoredExperts } from './profile-scorer';
export { ExpertGraph, type ExpertGraphJSON, type ExpertGraphOptions, type RewireEvent, type RewireResult } from './expert-graph';
export { type ExpertHealth, type ExpertHealthJSON, type HealthOutcome, HealthTracker, type HealthTrackerJSON, type HealthTrackerOptions } from './health';
