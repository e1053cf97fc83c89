
import { native } from '../../native';
import * as v from '../../validate';
import { type LogitsInput, resolveMatrix } from './logits';


/**
 * Options of {@link routerLogits}.
 *
 * @example
 * ```ts
 * const opts: RouterLogitsOptions = { threads: 2 };
 * ```
 */
export interface RouterLogitsOptions {
  /** Hidden size H (row length of `hidden`). Required for a Float32Array; a tensor's last dimension otherwise. */
  hiddenSize?: number;
  /** Upper bound on kernel threads; default `os.availableParallelism()`. */
  threads?: number;
  /** Preallocated output `[tokens, experts]`. */
  out?: Float32Array;
}

function prepare(hidden: unknown, weight: unknown, options: unknown, allocate = true) {
  const o = v.options<RouterLogitsOptions>('options', options, ['hiddenSize', 'threads', 'out']);
  const h = resolveMatrix('hidden', hidden, o.hiddenSize, 'hiddenSize');
  const w = v.float32Array('weight', weight);
  if (w.length === 0 || w.length % h.experts !== 0) {
    throw new RangeError(`Expected weight length to be a positive multiple of hiddenSize (${h.experts}) but received ${w.length}`);
  }
  const experts = w.length / h.experts;
  const threads = v.threads('threads', o.threads);
  const given = o.out !== undefined;
  const out = given ? v.float32Array('out', o.out, h.tokens * experts) : new Float32Array(allocate ? h.tokens * experts : 0);
  return { args: [h.data, w, h.tokens, h.experts, experts, threads, out] as const, out, given };
}

/**
 * The router projection: `logits[T, E] = hidden[T, H] · weight[E, H]ᵀ`, natively, with
 * runtime-selected SIMD and up to `threads` threads.
 *
 * @example
 * ```ts
 * import { routerLogits } from '@capibara/core';
 * const logits = routerLogits(hidden, gateWeight, { hiddenSize: 4096 }); // gateWeight: [experts, 4096]
 * ```
 */
export function routerLogits(hidden: LogitsInput, weight: Float32Array, options: RouterLogitsOptions = {}): Float32Array {
  const { args, out } = prepare(hidden, weight, options);
  native().gatingRouterLogits(...args);
  return out;
}

/**
 * {@link routerLogits} on a worker thread (large batches). Inputs on an ordinary ArrayBuffer are
 * copied when called, so you may reuse them at once; inputs on a `SharedArrayBuffer` are read in
 * place (no copy: the way to go for a large gate weight) and must not be written until the
 * promise settles. With `out`, the result is copied there at the end.
 *
 * @example
 * ```ts
 * const logits = await routerLogitsAsync(hidden, gateWeight, { hiddenSize: 4096 });
 * ```
 */
export async function routerLogitsAsync(hidden: LogitsInput, weight: Float32Array, options: RouterLogitsOptions = {}): Promise<Float32Array> {
  const site = new Error();
  const { args, out, given } = prepare(hidden, weight, options, false);
  const r = await v.atSite(site, () => native().gatingRouterLogitsAsync(args[0], args[1], args[2], args[3], args[4], args[5]));
  if (!given) return r;
  out.set(r);
  return out;
}
