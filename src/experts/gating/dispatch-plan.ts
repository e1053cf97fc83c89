import { native } from '../../native';
import * as v from '../../validate';
import { DROP_POLICY } from './enums';
import { MAX_EXPERTS } from './logits';
import type { TopkGatingResult } from './topk-gating';

/** Value of padding entries in {@link DispatchPlan.permutation}. */
export const DISPATCH_PAD = -1;

/**
 * Options of {@link dispatchPlan}. Give `capacity` or `capacityFactor` to cap each expert;
 * give neither for a dropless plan.
 *
 * @example
 * ```ts
 * const opts: DispatchPlanOptions = { experts: 64, k: 2, capacityFactor: 1.25, blockSize: 16 };
 * ```
 */
export interface DispatchPlanOptions {
  /** Number of experts. Taken from a gating result when one is passed. */
  experts?: number;
  /** Slots per token. Required with an Int32Array; taken from a gating result otherwise. */
  k?: number;
  /** Fixed slots per expert (integer >= 0). */
  capacity?: number;
  /**
   * Capacity as a multiple of the balanced share: `C = max(minCapacity, ceil(tokens * k / experts * capacityFactor))`
   * (DeepSpeed's rule; for k = 2 it equals its top-2 capacity).
   */
  capacityFactor?: number;
  /** Floor of a factor-derived capacity; default 8. */
  minCapacity?: number;
  /** Each expert's segment is padded to a multiple of this (vLLM `moe_align_block_size`); default 1. */
  blockSize?: number;
  /**
   * Which slots an over-full expert drops: `'position'` keeps every token's first choice before
   * any second choice, in token order (GShard/DeepSpeed); `'probability'` keeps the highest
   * weights. Default `'position'`.
   */
  dropPolicy?: 'position' | 'probability';
  /** Gate weights `[tokens, k]`, needed by `'probability'`; taken from a gating result by default. */
  weights?: Float32Array;
}

/**
 * Where every routed token slot goes. A slot is `token * k + j` (the j-th choice of a token).
 *
 * @example
 * ```ts
 * const plan = dispatchPlan(routing, { capacityFactor: 1.0 });
 * for (let e = 0; e < plan.experts; e++) {
 *   const slots = plan.permutation.subarray(plan.offsets[e], plan.offsets[e + 1]); // pads are DISPATCH_PAD
 * }
 * ```
 */
export interface DispatchPlan {
  /** Number of experts. */
  experts: number;
  /** Number of tokens. */
  tokens: number;
  /** Slots per token. */
  k: number;
  /** Slots per expert, or `null` when dropless. */
  capacity: number | null;
  /** Padding granularity of each expert's segment. */
  blockSize: number;
  /** Slots routed to each expert before capacity (length `experts`): the load the balancer sees. */
  loads: Int32Array;
  /** Slots kept per expert (length `experts`). */
  counts: Int32Array;
  /** Segment starts (length `experts + 1`): expert e owns `permutation[offsets[e] .. offsets[e+1])`. */
  offsets: Int32Array;
  /** Kept slot ids grouped by expert, in token order, each segment padded with {@link DISPATCH_PAD}. */
  permutation: Int32Array;
  /** For each slot, its index in `permutation`, or -1 when dropped or not routed here. */
  slotPosition: Int32Array;
  /** Slots dropped for capacity, ascending. Slots with index -1 or `experts` are neither kept nor dropped. */
  dropped: Int32Array;
}

const KEYS = ['experts', 'k', 'capacity', 'capacityFactor', 'minCapacity', 'blockSize', 'dropPolicy', 'weights'];

/** A dispatch plan's checked arguments (CudaGating plans with them too). @internal */
export interface CheckedDispatch {
  indices: Int32Array;
  tokens: number;
  k: number;
  experts: number;
  capacity: number | null;
  blockSize: number;
  dropPolicy: 'position' | 'probability';
  weights: Float32Array | undefined;
}

/** Checks {@link dispatchPlan}'s arguments. @internal */
export function checkDispatch(routing: Int32Array | TopkGatingResult, options: DispatchPlanOptions = {}): CheckedDispatch {
  const o = v.options<DispatchPlanOptions>('options', options, KEYS);
  let indices: Int32Array;
  let k: number;
  let experts: number;
  let weights: Float32Array | undefined;
  if (routing instanceof Int32Array) {
    indices = routing;
    if (o.k === undefined) throw new TypeError('Expected options.k when routing is an Int32Array of indices');
    if (o.experts === undefined) throw new TypeError('Expected options.experts when routing is an Int32Array of indices');
    experts = v.integer('experts', o.experts, 1, MAX_EXPERTS);
    k = v.integer('k', o.k, 1, MAX_EXPERTS);
  } else if (typeof routing === 'object' && routing !== null && routing.indices instanceof Int32Array) {
    indices = routing.indices;
    k = v.integer('routing.k', routing.k, 1, MAX_EXPERTS);
    experts = v.integer('routing.experts', routing.experts, 1, MAX_EXPERTS);
    if (o.k !== undefined && o.k !== k) throw v.rangeError('k', `${k} (the routing's k)`, o.k);
    if (o.experts !== undefined && o.experts !== experts) throw v.rangeError('experts', `${experts} (the routing's experts)`, o.experts);
    weights = routing.weights;
  } else {
    throw v.typeError('routing', 'Int32Array of expert indices or a topkGating result', routing);
  }
  if (indices.length % k !== 0) {
    throw new RangeError(`Expected indices length to be a multiple of k (${k}) but received ${indices.length}`);
  }
  const tokens = indices.length / k;
  if (o.weights !== undefined) weights = v.float32Array('weights', o.weights, indices.length);

  if (o.capacity !== undefined && o.capacityFactor !== undefined) {
    throw new TypeError('Expected either capacity or capacityFactor, not both');
  }
  let capacity: number | null = null;
  if (o.capacity !== undefined) capacity = v.integer('capacity', o.capacity, 0, 2 ** 31 - 1);
  if (o.capacityFactor !== undefined) {
    const f = v.finite('capacityFactor', o.capacityFactor, { positive: true });
    const min = o.minCapacity === undefined ? 8 : v.integer('minCapacity', o.minCapacity, 0, 2 ** 31 - 1);
    capacity = Math.min(2 ** 31 - 1, Math.max(min, Math.ceil(((tokens * k) / experts) * f)));
  } else if (o.minCapacity !== undefined) {
    throw new TypeError('Expected minCapacity only together with capacityFactor');
  }
  const blockSize = o.blockSize === undefined ? 1 : v.integer('blockSize', o.blockSize, 1, 65536);
  const dropPolicy = o.dropPolicy === undefined ? 'position' : v.oneOf('dropPolicy', o.dropPolicy, ['position', 'probability'] as const);
  if (dropPolicy === 'probability' && capacity !== null && weights === undefined) {
    throw new TypeError("Expected weights (or a topkGating result) for dropPolicy 'probability'");
  }

  return { indices, tokens, k, experts, capacity, blockSize, dropPolicy, weights };
}

/**
 * Builds the dispatch plan of one batch: per-expert counts and offsets, the permutation of
 * token slots grouped by expert (padded to `blockSize`), and the slots dropped when an
 * expert is over capacity. Entries `-1` (masked) and `experts` (outside the local expert
 * range) are not routed here. Conservation holds: every kept slot appears exactly once.
 *
 * @example
 * ```ts
 * import { topkGating, dispatchPlan } from '@capibara/core';
 * const routing = topkGating(logits, { experts: 8, k: 2 });
 * const plan = dispatchPlan(routing, { capacityFactor: 1.25, blockSize: 4 });
 * console.log(plan.counts, plan.dropped.length);
 * ```
 */
export function dispatchPlan(routing: Int32Array | TopkGatingResult, options: DispatchPlanOptions = {}): DispatchPlan {
  const { indices, tokens, k, experts, capacity, blockSize, dropPolicy, weights } = checkDispatch(routing, options);
  const r = native().gatingDispatch(indices, tokens, k, experts, capacity ?? -1, blockSize, DROP_POLICY[dropPolicy], weights ?? null);
  return {
    experts,
    tokens,
    k,
    capacity,
    blockSize,
    loads: r.loads,
    counts: r.counts,
    offsets: r.offsets,
    permutation: r.permutation,
    slotPosition: r.slotPosition,
    dropped: r.dropped,
  };
}
