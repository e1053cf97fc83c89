import * as v from '../../validate';
import { BiasBalancer, type BiasBalancerOptions } from './bias-balancer';
import { type DispatchPlan, type DispatchPlanOptions, dispatchPlan } from './dispatch-plan';
import { type LogitsInput, MAX_EXPERTS } from './logits';
import { routerLogits, routerLogitsAsync } from './router-logits';
import { type RouterStats, routerStats } from './router-stats';
import { type GroupLimit, type Scoring, type TopkGatingOptions, type TopkGatingResult, topkGating, topkGatingAsync } from './topk-gating';

/**
 * Options of {@link MoEGate}.
 *
 * @example
 * ```ts
 * const opts: MoEGateOptions = {
 *   experts: 256, k: 8, scoring: 'sigmoid', routeScale: 2.5,
 *   groups: { count: 8, topkGroups: 4 }, balancer: { rate: 0.001 },
 * };
 * ```
 */
export interface MoEGateOptions {
  /** Number of experts. */
  experts: number;
  /** Experts per token. */
  k: number;
  /** Score function; default `'softmax'`. */
  scoring?: Scoring;
  /** Renormalise the k weights; default true. */
  renormalize?: boolean;
  /** Weight multiplier; default 1. */
  routeScale?: number;
  /** Group-limited routing. */
  groups?: GroupLimit;
  /** Local expert-parallel range; winners outside it are reported as index `experts`. */
  expertRange?: readonly [number, number];
  /**
   * Router projection `[experts, hiddenSize]`. With it, {@link MoEGate.route} takes hidden
   * states `[tokens, hiddenSize]` and computes the logits natively; without it, it takes logits.
   */
  weight?: Float32Array;
  /** Loss-free balancing: `true` for DeepSeek-V3 defaults, or the balancer's options. Default off. */
  balancer?: boolean | Omit<BiasBalancerOptions, 'experts'>;
  /** Build a dispatch plan for every batch with these options (capacity, block size, drop policy). */
  dispatch?: Omit<DispatchPlanOptions, 'experts' | 'k' | 'weights'>;
  /** Compute {@link RouterStats} for every batch; default false. */
  stats?: boolean;
  /** Upper bound on kernel threads; default `os.availableParallelism()`. */
  threads?: number;
}

/**
 * One routed batch.
 *
 * @example
 * ```ts
 * const r = gate.route(hidden);
 * console.log(r.indices, r.loads, r.plan?.dropped.length);
 * ```
 */
export interface MoERouting extends TopkGatingResult {
  /** The router logits `[tokens, experts]` (computed, or the input). */
  logits: Float32Array;
  /** Slots routed to each expert in this batch (before any capacity). */
  loads: Int32Array;
  /** The bias used for selection in this batch (from previous batches), or null without a balancer. */
  bias: Float32Array | null;
  /** The dispatch plan, when `dispatch` options were given. */
  plan: DispatchPlan | null;
  /** Balance statistics, when `stats` is on. */
  stats: RouterStats | null;
}

const KEYS = ['experts', 'k', 'scoring', 'renormalize', 'routeScale', 'groups', 'expertRange', 'weight', 'balancer', 'dispatch', 'stats', 'threads'];

/**
 * One MoE layer's router: optional projection to logits, top-k gating with the balancer's
 * bias, dispatch plan and statistics, then a balancer update from this batch's loads (so
 * the next batch is steered, never this one).
 *
 * @example
 * ```ts
 * import { MoEGate } from '@capibara/core';
 * const gate = new MoEGate({ experts: 64, k: 8, scoring: 'sigmoid', balancer: true, dispatch: { capacityFactor: 1.25 } });
 * for (const batch of batches) {
 *   const { indices, weights, plan } = gate.route(batch); // batch: Float32Array logits [tokens, 64]
 * }
 * ```
 */
export class MoEGate {
  /** Number of experts. */
  readonly experts: number;
  /** Experts per token. */
  readonly k: number;
  /** Hidden size when the gate owns a projection, else null. */
  readonly hiddenSize: number | null;
  /** The balancer, when enabled. */
  readonly balancer: BiasBalancer | null;
  readonly #gating: Omit<TopkGatingOptions, 'bias' | 'out'>;
  readonly #weight: Float32Array | null;
  readonly #dispatch: MoEGateOptions['dispatch'] | null;
  readonly #stats: boolean;
  readonly #threads: number | undefined;

  /** Creates the gate; every option is checked here, not on the first batch. */
  constructor(options: MoEGateOptions) {
    if (options === undefined) throw v.typeError('options', 'an options object', options);
    const o = v.options<MoEGateOptions>('options', options, KEYS);
    this.experts = v.integer('experts', o.experts, 1, MAX_EXPERTS);
    this.k = v.integer('k', o.k, 1, this.experts);
    this.#gating = { experts: this.experts, k: this.k, scoring: o.scoring, renormalize: o.renormalize, routeScale: o.routeScale, groups: o.groups, expertRange: o.expertRange, threads: o.threads };
    this.#threads = o.threads;
    if (o.weight !== undefined) {
      const w = v.float32Array('weight', o.weight);
      if (w.length === 0 || w.length % this.experts !== 0) {
        throw new RangeError(`Expected weight length to be a positive multiple of experts (${this.experts}) but received ${w.length}`);
      }
      this.#weight = w;
      this.hiddenSize = w.length / this.experts;
    } else {
      this.#weight = null;
      this.hiddenSize = null;
    }
    if (o.balancer === undefined || o.balancer === false) this.balancer = null;
    else if (o.balancer === true) this.balancer = new BiasBalancer({ experts: this.experts });
    else this.balancer = new BiasBalancer({ ...v.options<Omit<BiasBalancerOptions, 'experts'>>('balancer', o.balancer, ['rate', 'mode', 'center', 'initialBias']), experts: this.experts });
    this.#dispatch = o.dispatch === undefined ? null : v.options('dispatch', o.dispatch, ['capacity', 'capacityFactor', 'minCapacity', 'blockSize', 'dropPolicy']);
    this.#stats = o.stats === undefined ? false : v.boolean('stats', o.stats);
    // Fail at construction, not on the first batch, when the gating options are wrong.
    topkGating(new Float32Array(0), this.#gating as TopkGatingOptions);
    if (this.#dispatch) dispatchPlan(new Int32Array(0), { ...this.#dispatch, experts: this.experts, k: this.k });
  }

  /**
   * Routes one batch. Input: hidden states `[tokens, hiddenSize]` when the gate has a
   * `weight`, else router logits `[tokens, experts]`.
   *
   * @example
   * ```ts
   * const gate = new MoEGate({ experts: 64, k: 8, weight: routerWeight }); // routerWeight: Float32Array [64, 4096]
   * const { indices, weights, loads } = gate.route(hidden); // hidden: Float32Array [tokens, 4096]
   * ```
   */
  route(input: LogitsInput): MoERouting {
    const logits = this.#weight ? routerLogits(input, this.#weight, { hiddenSize: this.hiddenSize ?? undefined, threads: this.#threads }) : input;
    const bias = this.balancer?.bias ?? null;
    const routing = topkGating(logits, { ...this.#gating, ...(bias ? { bias } : {}) } as TopkGatingOptions);
    return this.#finish(logits, routing, bias);
  }

  /**
   * {@link MoEGate.route} with the projection and gating on worker threads.
   *
   * @example
   * ```ts
   * const { indices, weights, plan } = await gate.routeAsync(logits); // logits: Float32Array [tokens, experts]
   * ```
   */
  async routeAsync(input: LogitsInput): Promise<MoERouting> {
    const logits = this.#weight ? await routerLogitsAsync(input, this.#weight, { hiddenSize: this.hiddenSize ?? undefined, threads: this.#threads }) : input;
    const bias = this.balancer?.bias ?? null;
    const routing = await topkGatingAsync(logits, { ...this.#gating, ...(bias ? { bias } : {}) } as TopkGatingOptions);
    return this.#finish(logits, routing, bias);
  }

  #finish(input: LogitsInput, routing: TopkGatingResult, bias: Float32Array | null): MoERouting {
    const logits = input instanceof Float32Array ? input : (input.data as Float32Array);
    const plan = this.#dispatch ? dispatchPlan(routing, this.#dispatch) : null;
    let loads: Int32Array;
    if (plan) {
      loads = plan.loads;
    } else {
      loads = new Int32Array(this.experts);
      for (const e of routing.indices) if (e >= 0 && e < this.experts) loads[e]! += 1;
    }
    const stats = this.#stats ? routerStats(logits, routing, { scoring: this.#gating.scoring ?? 'softmax' }) : null;
    this.balancer?.update(loads);
    return { ...routing, logits, loads, bias, plan, stats };
  }
}
