export { BudgetForcing } from './budget-forcing';
export { forceThinkingBudget } from './thinking-budget';
export { RedisBudgetStore, type RedisBudgetStoreOptions } from './redis-store';
export { BudgetStateLossError, type StateLossEvent } from './redis-state';
export { type GpuSample, type ResourceMonitorOptions, type ResourceSample, ResourceMonitor } from './resource-monitor';
export {
  type BudgetStore, type ChargeOp, type ChargeResult, type ChargeWindow, type ExpiredReservation, type KeyedUsage, MemoryBudgetStore, type ReserveOp,
  type ReserveResult, type SettleResult, type WindowCheck, type WindowUsage,
} from './store';
export {
  type BudgetAlert, type BudgetDecision, type BudgetDefinition, type BudgetForcingOptions, type BudgetMetrics, type BudgetRequest, type BudgetScope,
  type BudgetStatus, type BudgetViolation, type CommitResult, EnforcementLevel, type Overdraft, ResourceType,
} from './types';
