
import { native } from '../../native';
import * as v from '../../validate';
import { GROUP_SCORE, SCORING } from './enums';
import { type LogitsInput, resolveLogits } from './logits';


/** How router logits become expert scores: `softmax` over experts (Mixtral, Qwen) or per-expert `sigmoid` (DeepSeek-V3). */
export type Scoring = 'softmax' | 'sigmoid';

/**
 * Group-limited routing (DeepSeek-V3): experts are split into `count` equal groups, each
 * token keeps its `topkGroups` best groups and picks its k experts inside them.
 *
 * @example
 * ```ts
 * const groups: GroupLimit = { count: 8, topkGroups: 4 }; // DeepSeek-V3: 256 experts, top-8
 * ```
 */
export interface GroupLimit {
  /** Number of groups; must divide the expert count. */
  count: number;
  /** Groups kept per token, in [1, count]. */
  topkGroups: number;
  /**
   * A group's score: the sum of its two best selection scores (`'top2-sum'`, DeepSeek-V3,
   * the default) or its best one (`'max'`, DeepSeek-V2). Masked experts do not count.
   */
  score?: 'top2-sum' | 'max';
}

/**
 * Options of {@link topkGating}.
 *
 * @example
 * ```ts
 * const opts: TopkGatingOptions = { experts: 64, k: 8, scoring: 'softmax', renormalize: true };
 * ```
 */
export interface TopkGatingOptions {
  /** Experts chosen per token, in [1, experts]. */
  k: number;
  /** Number of experts (row length). Required for a Float32Array; taken from a tensor's last dimension otherwise. */
  experts?: number;
  /** Score function; default `'softmax'`. */
  scoring?: Scoring;
  /**
   * Per-expert correction bias added to the scores for *selection only* (loss-free balancing,
   * see {@link BiasBalancer}); the weights use the unbiased scores. Length `experts`, finite.
   */
  bias?: Float32Array | readonly number[];
  /** Divide the k weights by their sum (default `true`). */
  renormalize?: boolean;
  /** Multiplies every weight (DeepSeek-V3 uses 2.5); default 1. */
  routeScale?: number;
  /** Group-limited routing; omitted means all experts compete. */
  groups?: GroupLimit;
  /**
   * Expert-parallel range `[start, end)` served locally: a winner outside it is reported as
   * index `experts` (its weight is kept). Default: all experts.
   */
  expertRange?: readonly [number, number];
  /** Upper bound on kernel threads (only large calls use more than one); default `os.availableParallelism()`. */
  threads?: number;
  /** Preallocated outputs of length `tokens * k`, to route without allocating. */
  out?: {
    /** Receives the weights. */
    weights: Float32Array;
    /** Receives the indices. */
    indices: Int32Array;
  };
}

/**
 * Result of {@link topkGating}: row-major `[tokens, k]`, best expert first.
 *
 * @example
 * ```ts
 * const { weights, indices, tokens, k } = topkGating(logits, { experts: 8, k: 2 });
 * const firstChoiceOfToken0 = indices[0];
 * ```
 */
export interface TopkGatingResult {
  /** Gate weights `[tokens, k]`; 0 where a slot is unfilled. */
  weights: Float32Array;
  /**
   * Expert indices `[tokens, k]`, descending score, ties to the lower index. `experts` marks
   * a winner outside `expertRange`; `-1` marks a slot left unfilled because every remaining
   * expert was masked (`-Infinity`).
   */
  indices: Int32Array;
  /** Number of tokens (rows). */
  tokens: number;
  /** Number of experts (columns of the logits). */
  experts: number;
  /** Experts per token. */
  k: number;
}

const KEYS = ['k', 'experts', 'scoring', 'bias', 'renormalize', 'routeScale', 'groups', 'expertRange', 'threads', 'out'];

type Prepared = {
  args: Parameters<ReturnType<typeof native>['gatingTopk']>;
  result: TopkGatingResult;
  /** Whether the caller supplied the output arrays. */
  out: boolean;
};

/** Checks a call's logits and options and builds its native arguments and result (CudaGating checks with it too). @internal */
export function prepare(logits: unknown, options: unknown, allocate = true): Prepared {
  const o = v.options<TopkGatingOptions>('options', options, KEYS);
  const { data, tokens, experts } = resolveLogits('logits', logits, o.experts);
  const k = v.integer('k', o.k, 1, experts);
  const scoring = o.scoring === undefined ? 'softmax' : v.oneOf('scoring', o.scoring, ['softmax', 'sigmoid'] as const);
  const bias = o.bias === undefined ? null : v.finiteVector('bias', o.bias, experts);
  const renormalize = o.renormalize === undefined ? true : v.boolean('renormalize', o.renormalize);
  const routeScale = o.routeScale === undefined ? 1 : v.finite('routeScale', o.routeScale, { positive: true });
  if (!Number.isFinite(Math.fround(routeScale))) throw v.rangeError('routeScale', 'number within float32 range', routeScale);

  let groups = 1;
  let topkGroups = 1;
  let groupScore: keyof typeof GROUP_SCORE = 'top2-sum';
  if (o.groups !== undefined) {
    const g = v.options<GroupLimit>('groups', o.groups, ['count', 'topkGroups', 'score']);
    groups = v.integer('groups.count', g.count, 1, experts);
    if (experts % groups !== 0) {
      throw new RangeError(`Expected groups.count to divide experts (${experts}) but received ${groups}`);
    }
    topkGroups = v.integer('groups.topkGroups', g.topkGroups, 1, groups);
    if (g.score !== undefined) groupScore = v.oneOf('groups.score', g.score, ['top2-sum', 'max'] as const);
    const reachable = topkGroups * (experts / groups);
    if (k > reachable) {
      throw new RangeError(`Expected k <= groups.topkGroups * experts / groups.count (${reachable}) but received ${k}`);
    }
  }

  let start = 0;
  let end = experts;
  if (o.expertRange !== undefined) {
    const r = o.expertRange;
    if (!Array.isArray(r) || r.length !== 2) throw v.typeError('expertRange', '[start, end) pair', r);
    start = v.integer('expertRange[0]', r[0], 0, experts);
    end = v.integer('expertRange[1]', r[1], start, experts);
  }
  const threads = v.threads('threads', o.threads);

  let weights: Float32Array;
  let indices: Int32Array;
  if (o.out !== undefined) {
    const out = v.options<{ weights: Float32Array; indices: Int32Array }>('out', o.out, ['weights', 'indices']);
    weights = v.float32Array('out.weights', out.weights, tokens * k);
    indices = v.int32Array('out.indices', out.indices, tokens * k);
  } else {
    // The async form gets its outputs from the worker; empty placeholders keep one code path.
    weights = new Float32Array(allocate ? tokens * k : 0);
    indices = new Int32Array(allocate ? tokens * k : 0);
  }
  return {
    out: o.out !== undefined,
    args: [data, tokens, experts, k, SCORING[scoring], bias, renormalize, routeScale, groups, topkGroups,
      GROUP_SCORE[groupScore], start, end, threads, weights, indices],
    result: { weights, indices, tokens, experts, k },
  };
}

/**
 * Token-level MoE gating: scores each token's router logits, picks its top-k experts and
 * returns their weights (vLLM `topk_softmax`, DeepSeek-V3 gate). Runs natively in one
 * vectorized pass per row in the common case; synchronous, microseconds for typical batches.
 *
 * Selection uses the scores plus `bias`; weights use the unbiased scores — softmax
 * probabilities or sigmoids — optionally renormalised over the k winners, times `routeScale`.
 * `-Infinity` logits are masked experts (never chosen); NaN or +Infinity is a `RangeError`
 * naming the token and expert.
 *
 * @example
 * ```ts
 * import { topkGating } from '@capibara/core';
 * const logits = new Float32Array([0.1, 2.0, -1.0, 0.5,   3.0, 0.0, 0.2, -Infinity]);
 * const { weights, indices } = topkGating(logits, { experts: 4, k: 2 });
 * // indices: [1, 3, 0, 2]; weights of each row sum to 1
 * ```
 */
export function topkGating(logits: LogitsInput, options: TopkGatingOptions): TopkGatingResult {
  const { args, result } = prepare(logits, options);
  native().gatingTopk(...args);
  return result;
}

/**
 * {@link topkGating} on a worker thread, for large batches (tens of thousands of tokens) that
 * would block the event loop for more than a millisecond. Inputs (logits, bias) on an ordinary
 * ArrayBuffer are copied when called, so you may reuse them at once; inputs on a
 * `SharedArrayBuffer` are read in place (no copy) and must not be written until the promise
 * settles. The worker writes into arrays of its own; with `out`, results are copied there when
 * the promise resolves.
 *
 * @example
 * ```ts
 * const { indices } = await topkGatingAsync(logits, { experts: 256, k: 8, scoring: 'sigmoid' });
 * ```
 */
export async function topkGatingAsync(logits: LogitsInput, options: TopkGatingOptions): Promise<TopkGatingResult> {
  const site = new Error();
  const { args, result, out } = prepare(logits, options, false);
  const [logitsData, tokens, experts, k, scoring, bias, renormalize, routeScale, groups, topkGroups, groupScore, start, end, threads] = args;
  const r = await v.atSite(site, () =>
    native().gatingTopkAsync(logitsData, tokens, experts, k, scoring, bias, renormalize, routeScale, groups, topkGroups, groupScore, start, end, threads),
  );
  if (!out) return { ...result, weights: r.weights, indices: r.indices };
  result.weights.set(r.weights);
  result.indices.set(r.indices);
  return result;
}
