import * as v from '../../validate';
import { MAX_EXPERTS } from './logits';

/**
 * Options of {@link BiasBalancer}.
 *
 * @example
 * ```ts
 * const opts: BiasBalancerOptions = { experts: 256, rate: 0.001, mode: 'sign' };
 * ```
 */
export interface BiasBalancerOptions {
  /** Number of experts. */
  experts: number;
  /** Update speed γ; default 0.001 (DeepSeek-V3). */
  rate?: number;
  /**
   * `'sign'`: `b_i ← b_i − γ·sign(load_i − mean)` (DeepSeek-V3, the default);
   * `'proportional'`: `b_i ← b_i − γ·(load_i − mean) / mean`.
   */
  mode?: 'sign' | 'proportional';
  /** Subtract the bias mean after each update, keeping it centred on 0 (selection is unchanged by a common shift). Default false. */
  center?: boolean;
  /** Starting bias (length `experts`); default zeros. */
  initialBias?: Float32Array | readonly number[];
}

/**
 * The loss-free load-balancing controller of DeepSeek-V3: a per-expert bias, added to the
 * router scores for selection only, nudged after each batch against that batch's load. The
 * bias used for a batch therefore depends only on previous batches, never the current one.
 *
 * @example
 * ```ts
 * import { BiasBalancer, topkGating, dispatchPlan } from '@capibara/core';
 * const balancer = new BiasBalancer({ experts: 64 });
 * const routing = topkGating(logits, { experts: 64, k: 8, scoring: 'sigmoid', bias: balancer.bias });
 * balancer.update(dispatchPlan(routing).loads); // applies to the next batch
 * ```
 */
export class BiasBalancer {
  /** Number of experts. */
  readonly experts: number;
  /** Update speed γ. */
  readonly rate: number;
  /** Update rule. */
  readonly mode: 'sign' | 'proportional';
  /** Whether the bias is re-centred after each update. */
  readonly center: boolean;
  #bias: Float32Array;
  #frozen = false;
  #updates = 0;

  /** Creates a balancer with a zero (or the given initial) bias; throws on bad options. */
  constructor(options: BiasBalancerOptions) {
    const o = v.options<BiasBalancerOptions>('options', options, ['experts', 'rate', 'mode', 'center', 'initialBias']);
    if (options === undefined) throw v.typeError('options', 'an options object', options);
    this.experts = v.integer('experts', o.experts, 1, MAX_EXPERTS);
    this.rate = o.rate === undefined ? 0.001 : v.finite('rate', o.rate, { positive: true });
    this.mode = o.mode === undefined ? 'sign' : v.oneOf('mode', o.mode, ['sign', 'proportional'] as const);
    this.center = o.center === undefined ? false : v.boolean('center', o.center);
    this.#bias = o.initialBias === undefined ? new Float32Array(this.experts) : Float32Array.from(v.finiteVector('initialBias', o.initialBias, this.experts));
  }

  /**
   * A copy of the current bias (length `experts`), ready to pass as `topkGating`'s `bias`.
   *
   * @example
   * ```ts
   * const routing = topkGating(logits, { experts: 64, k: 8, scoring: 'sigmoid', bias: balancer.bias });
   * ```
   */
  get bias(): Float32Array {
    return this.#bias.slice();
  }

  /**
   * Whether updates are ignored (e.g. during evaluation).
   *
   * @example
   * ```ts
   * if (balancer.frozen) console.log('bias fixed at', balancer.bias);
   * ```
   */
  get frozen(): boolean {
    return this.#frozen;
  }
  /**
   * Freezes (`true`) or resumes (`false`) updates.
   *
   * @example
   * ```ts
   * balancer.frozen = true; // evaluation: update() now returns false and leaves the bias alone
   * // … evaluate …
   * balancer.frozen = false;
   * ```
   */
  set frozen(value: boolean) {
    this.#frozen = v.boolean('frozen', value);
  }

  /**
   * Updates applied so far (ignored ones while frozen, or with zero total load, are not counted).
   *
   * @example
   * ```ts
   * const balancer = new BiasBalancer({ experts: 4 });
   * balancer.update([3, 1, 2, 2]);
   * console.log(balancer.updates); // 1
   * ```
   */
  get updates(): number {
    return this.#updates;
  }

  /**
   * Applies one batch's per-expert loads (slots routed to each expert, e.g. `DispatchPlan.loads`).
   * Returns whether the bias changed.
   *
   * @example
   * ```ts
   * const balancer = new BiasBalancer({ experts: 4, rate: 0.01 });
   * balancer.update([5, 1, 1, 1]); // true: mean load 2, so the bias becomes ≈ [-0.01, 0.01, 0.01, 0.01]
   * ```
   */
  update(loads: Int32Array | Float32Array | Float64Array | readonly number[]): boolean {
    const isNumeric = loads instanceof Int32Array || loads instanceof Float32Array || loads instanceof Float64Array || Array.isArray(loads);
    if (!isNumeric) throw v.typeError('loads', `Int32Array, Float64Array or number[] of length ${this.experts}`, loads);
    if (loads.length !== this.experts) throw v.rangeError('loads', `length ${this.experts}`, loads);
    let total = 0;
    for (let i = 0; i < loads.length; i++) {
      const x = loads[i] as number;
      if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) {
        throw new RangeError(`Expected finite non-negative loads but loads[${i}] is ${String(x)}`);
      }
      total += x;
    }
    if (this.#frozen || total === 0) return false;
    const mean = total / this.experts;
    const b = this.#bias;
    for (let i = 0; i < this.experts; i++) {
      const diff = (loads[i] as number) - mean;
      b[i] = (b[i] as number) - (this.mode === 'sign' ? this.rate * Math.sign(diff) : (this.rate * diff) / mean);
    }
    if (this.center) {
      let m = 0;
      for (let i = 0; i < this.experts; i++) m += b[i] as number;
      m /= this.experts;
      for (let i = 0; i < this.experts; i++) b[i] = (b[i] as number) - m;
    }
    this.#updates++;
    return true;
  }

  /**
   * Sets the bias back to zeros.
   *
   * @example
   * ```ts
   * balancer.reset(); // bias all zeros, updates back to 0
   * ```
   */
  reset(): void {
    this.#bias.fill(0);
    this.#updates = 0;
  }
}
