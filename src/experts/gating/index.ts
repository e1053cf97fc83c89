export { BiasBalancer, type BiasBalancerOptions } from './bias-balancer';
export { DISPATCH_PAD, type DispatchPlan, type DispatchPlanOptions, dispatchPlan } from './dispatch-plan';
export type { Float32Tensor, LogitsInput } from './logits';
export { MoEGate, type MoEGateOptions, type MoERouting } from './moe-gate';
export { type RouterLogitsOptions, routerLogits, routerLogitsAsync } from './router-logits';
export { type RouterStats, routerStats, routerStatsAsync } from './router-stats';
export { type GroupLimit, type Scoring, type TopkGatingOptions, type TopkGatingResult, topkGating, topkGatingAsync } from './topk-gating';
export { CudaGating } from './cuda-gating';
