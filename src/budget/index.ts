export { BudgetForcing, type BudgetAlert, type BudgetForcingOptions, type BudgetMetrics, type BudgetStatus, type BudgetViolation, type CommitResult, type Overdraft } from './budget-forcing';
export { RedisBudgetStore, type RedisBudgetStoreOptions } from './redis-store';
export { type GpuSample, type ResourceMonitorOptions, type ResourceSample, ResourceMonitor } from './resource-monitor';
export { type BudgetStore, type ExpiredReservation, type KeyedUsage, MemoryBudgetStore, type ReserveOp, type ReserveResult, type SettleResult, type WindowCheck, type WindowUsage } from './store';
export { type BudgetDecision, type BudgetDefinition, type BudgetRequest, type BudgetScope, EnforcementLevel, ResourceType } from './types';
