/**
 * @capibara/core — inference-time optimizations for LLM services on Node.js.
 *
 * Hot paths run in a C++ Node-API addon (runtime-dispatched SIMD) and ONNX Runtime.
 * Parts: MoE gating and request routing with its control plane, DuoAttention, MemAgent memory,
 * budgets (resource and s1 thinking budgets), LLM backends, an OpenAI-compatible server and
 * multi-round thinking (Think Twice), and the OptimizationPipeline that chains them in the serving
 * path with Prometheus metrics. docs/ARCHITECTURE.md describes the layers. The addon ships
 * prebuilt for Linux x64 and compiles elsewhere (README, Installing in an app);
 * `@capibara/core/testing` holds tiny-model builders for an app's tests.
 *
 * @example
 * ```ts
 * import { topkGating } from '@capibara/core';
 * const { weights, indices } = topkGating(new Float32Array([1, 3, 2, 0]), { experts: 4, k: 2 });
 * ```
 * @packageDocumentation
 */
export * from './experts/gating/index';
export * from './budget/index';
export { type CudaInfo, type NativeInfo, nativeInfo } from './info';
export { ClosedError } from './toolkit/closing';
export * from './llm/index';
export { type MinUnmetReason, type ThinkingBudgetOptions, type ThinkingBudgetResult, type ThinkingRound, forceThinkingBudget } from './budget/thinking-budget';
export * from './serve/index';
export * from './text/index';
export * from './memory/index';
export * from './experts/routing/index';
export * from './experts/control/index';
export * from './attention/index';
export * from './thinking/index';
export * from './pipeline/index';
export * from './metrics/index';
