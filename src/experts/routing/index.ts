export { type ExpertProfile, type RoutingContext, type RoutingOutcome, RoutingStrategy } from './types';
export { DEFAULT_EXPERTS } from './default-experts';
export {
  type FallbackOptions, type FallbackResult, RewiringExperts, type RewiringExpertsOptions, type RoutingDecision, type RoutingMetrics,
  type RoutingReasons,
} from './rewiring-experts';
export { KEYWORD_REPEAT, type ResolvedExpertProfile, profileText, validateProfile } from './profile';
export { ProfileScorer, type ProfileScorerOptions, RELEVANCE_WEIGHTS, type RelevanceParts, type RelevanceWeights, type ScoredExperts } from './profile-scorer';
export { ExpertGraph, type ExpertGraphJSON, type ExpertGraphOptions, type RewireEvent, type RewireResult } from './expert-graph';
export { type CooldownReason, type ExpertHealth, type ExpertHealthJSON, type HealthOutcome, HealthTracker, type HealthTrackerJSON, type HealthTrackerOptions } from './health';
