/**
 * MoE gating on a CUDA device: the same top-k routing and dispatch plan as {@link topkGating}
 * and {@link dispatchPlan}, computed by the addon's CUDA kernels (native/cuda/gating.cu,
 * dispatch.cu) in device memory that a {@link CudaGating} owns until it is closed.
 * @module
 */
import { type CudaHandle, cudaDevice } from '../../cuda-binding';
import { ClosedError } from '../../toolkit/closing';
import * as v from '../../validate';
import { type DispatchPlan, type DispatchPlanOptions, checkDispatch } from './dispatch-plan';
import type { LogitsInput } from './logits';
import { type TopkGatingOptions, type TopkGatingResult, prepare } from './topk-gating';

/** Most experts per token the device kernel selects (its top-k lives in registers). */
const MAX_K = 32;
/** Most groups of group-limited routing on the device (a 64-bit mask per token). */
const MAX_GROUPS = 64;
/** Most experts of a device dispatch plan (its per-expert counters live in shared memory). */
const MAX_DISPATCH_EXPERTS = 4096;

/**
 * Whether the CPU kernel takes its token-tile path for these options (native/gating/topk.cc,
 * UsesTiles): the device then sums a row's softmax normaliser in the same order, so that both
 * give the same scores bit for bit.
 */
function cpuUsesTiles(k: number, experts: number, groups: number, bias: boolean): boolean {
  const general = bias || groups > 1;
  const most = general ? 1024 : k <= 4 ? 512 : 128;
  return k <= 8 && groups <= 64 && experts <= most;
}

/**
 * A gating workspace on the CUDA device (device 0): logits, routing results and the dispatch
 * plan's buffers, grown to the largest call and kept until {@link CudaGating.close}. Results
 * equal the CPU kernels' (same indices; weights within float32 rounding of the normaliser's
 * sum), so the two are interchangeable. Each call copies its inputs to the device, runs the
 * kernels and waits for them; the routing stays on the device for a following
 * {@link CudaGating.dispatchPlan}.
 *
 * Device limits: k ≤ 32 (`topk`), groups ≤ 64, experts ≤ 4,096 and `dropPolicy: 'position'`
 * (`dispatchPlan`); beyond them the CPU functions apply.
 *
 * @example
 * ```ts
 * import { CudaGating, nativeInfo } from '@capibara/core';
 * if (nativeInfo().cuda.status === 'available') {
 *   using gate = new CudaGating();
 *   const routing = gate.topk(logits, { experts: 256, k: 8, scoring: 'sigmoid', bias, routeScale: 2.5, groups: { count: 8, topkGroups: 4 } });
 *   const plan = gate.dispatchPlan(routing, { blockSize: 64 });
 * }
 * ```
 */
export class CudaGating {
  readonly #cuda;
  #handle: CudaHandle | null;
  /** The last routing computed on the device, whose indices the device still holds. */
  #last: TopkGatingResult | null = null;

  /**
   * @throws Error `"CudaGating needs a CUDA device, and none is usable: <reason>"` (see {@link NativeInfo.cuda}).
   */
  constructor() {
    this.#cuda = cudaDevice('CudaGating');
    this.#handle = this.#cuda.gatingOpen();
  }

  /** Whether {@link CudaGating.close} has run. */
  get closed(): boolean {
    return this.#handle === null;
  }

  #open(): CudaHandle {
    if (this.#handle === null) throw new ClosedError('CudaGating');
    return this.#handle;
  }

  /**
   * {@link topkGating} on the device: same options (`threads` is ignored), same result.
   *
   * @throws RangeError as topkGating does, and for k > 32 or groups.count > 64; Error with the
   * CUDA error's name and message when the device fails; ClosedError after close().
   *
   * @example
   * ```ts
   * const { weights, indices } = gate.topk(logits, { experts: 64, k: 6 });
   * ```
   */
  topk(logits: LogitsInput, options: TopkGatingOptions): TopkGatingResult {
    const handle = this.#open();
    const { args, result } = prepare(logits, options);
    const [data, tokens, experts, k, scoring, bias, renormalize, routeScale, groups, topkGroups, groupScore, start, end, , weights, indices] = args;
    if (k > MAX_K) throw v.rangeError('k', `integer in [1, ${MAX_K}] on the device`, k);
    if (groups > MAX_GROUPS) throw v.rangeError('groups.count', `integer in [1, ${MAX_GROUPS}] on the device`, groups);
    const sum16 = !cpuUsesTiles(k, experts, groups, bias !== null);
    this.#last = null;
    this.#cuda.gatingTopk(
      handle, data, tokens, experts, k, scoring, bias, renormalize, routeScale, groups, topkGroups, groupScore, start, end, sum16, weights, indices,
    );
    this.#last = result;
    return result;
  }

  /**
   * {@link dispatchPlan} on the device, same options and result. Given the result of this
   * object's last {@link CudaGating.topk}, it plans from the indices still on the device.
   *
   * @throws TypeError / RangeError as dispatchPlan does; RangeError for `dropPolicy:
   * 'probability'` with a capacity, and for more than 4,096 experts; ClosedError after close().
   *
   * @example
   * ```ts
   * const plan = gate.dispatchPlan(gate.topk(logits, { experts: 64, k: 6 }), { capacityFactor: 1.25, blockSize: 16 });
   * ```
   */
  dispatchPlan(routing: Int32Array | TopkGatingResult, options: DispatchPlanOptions = {}): DispatchPlan {
    const handle = this.#open();
    const c = checkDispatch(routing, options);
    if (c.capacity !== null && c.dropPolicy === 'probability') {
      throw v.rangeError('dropPolicy', "'position' on the device (the CPU dispatchPlan drops by probability)", c.dropPolicy);
    }
    if (c.experts > MAX_DISPATCH_EXPERTS) throw v.rangeError('experts', `integer in [1, ${MAX_DISPATCH_EXPERTS}] on the device`, c.experts);
    const onDevice = routing === this.#last && this.#last !== null && this.#last.indices === c.indices;
    const r = this.#cuda.gatingDispatch(handle, onDevice ? null : c.indices, c.tokens, c.k, c.experts, c.capacity ?? -1, c.blockSize);
    return {
      experts: c.experts, tokens: c.tokens, k: c.k, capacity: c.capacity, blockSize: c.blockSize,
      loads: r.loads, counts: r.counts, offsets: r.offsets, permutation: r.permutation, slotPosition: r.slotPosition, dropped: r.dropped,
    };
  }

  /**
   * Frees the device memory. Idempotent; later calls throw {@link ClosedError}.
   *
   * @example
   * ```ts
   * gate.close();
   * ```
   */
  close(): void {
    if (this.#handle === null) return;
    const h = this.#handle;
    this.#handle = null;
    this.#last = null;
    this.#cuda.close(h);
  }

  /** {@link CudaGating.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
