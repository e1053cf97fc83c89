export { type AllocationPlan, type ExpertAllocation, MAX_REPLICA_BUDGET, type RebalancingStrategy } from './allocation';
export { type ExpertAttentionReason, type RecommendedAction } from './attention-reasons';
export {
  type AutomaticCoordinationOptions, type CoordinationConstraints, type CoordinationObjective, ExpertCoordinator, type CoordinatorOptions, type SystemFigures,
  type SystemOptimizationOptions, type SystemOptimizationPlan,
} from './coordinator';
export { type ExpertCounters } from './counters';
export { type DriftReport, type LifecyclePolicy, type LifecycleReport } from './lifecycle';
export { type DomainMetrics, type DomainSnapshot, ExpertMetricsCollector, type ExpertMetricsCollectorOptions } from './metrics-collector';
export { type BenchmarkCase, type BenchmarkOptions, type BenchmarkReport, type CategoryResult } from './routing-benchmark';
export { MoEControlAPI } from './moe-control-api';
export { type AnalyzeOptions, type BaselineFigures, ExpertMonitor, type ExpertPerformance, type ExpertTrend, type MonitorMetric, type MonitorOptions } from './monitor';
export { type ExpertPoolControl } from './pool-view';
export { jensenShannonDivergence } from './statistics';
export {
  type AllocationOptions, type CreateExpertOptions, type ExpertPoolStatus, type ExpertState, type LoadBalancingOptions, type ManagedExpert, type MergeExpertsOptions,
  type MoEControlAPIOptions, type PerformanceTargets, type RetireReason,
} from './types';
