/**
 * Lifecycle rules of an expert pool: the policy, its validation, and the drift and overlap
 * measures the rules act on.
 * @module
 */
import * as v from '../../validate';
import type { AllocationPlan, RebalancingStrategy } from './allocation';
import type { ExpertAttentionReason } from './attention-reasons';
import { cosineSimilarity, jensenShannonDivergence } from './statistics';

/**
 * The rules {@link MoEControlAPI.enableDynamicManagement} runs every `intervalMs`, and
 * {@link MoEControlAPI.runLifecycle} runs once. Each pass looks at the *window* since the
 * previous pass (counted exactly, event by event). A rule set to `false` is off.
 *
 * The seed's switches map onto these: automatic retirement → `idleMs`, `maxFailureRate`;
 * expert merging → `mergeOverlap`; drift detection → `driftThreshold`; performance monitoring →
 * the attention flags; load-aware scaling → the `dynamicExpertAllocation` option. Not provided:
 * automatic creation (a new expert needs a model or service to serve it, which only its owner
 * can provide), re-specialization, knowledge transfer and continuous learning (training is out
 * of scope by design), memory optimisation and computation sharing (nothing measured to act on).
 *
 * @example
 * ```ts
 * control.enableDynamicManagement({ intervalMs: 60_000, idleMs: 3_600_000, maxFailureRate: 0.5, mergeOverlap: 0.8, driftThreshold: 0.1 });
 * ```
 */
export interface LifecyclePolicy {
  /** Timer period, ms, >= 1; default 60,000. */
  intervalMs?: number;
  /**
   * Retire an expert not used for this long — no query routed to it and no outcome recorded for
   * it (a fallback try counts as use) — ms, > 0; counted from its registration when it never was.
   * Default 3,600,000.
   */
  idleMs?: number | false;
  /** Retire an expert whose failures / outcomes in the window is strictly above this, in [0, 1]. Default 0.5. */
  maxFailureRate?: number | false;
  /** Outcomes an expert needs in the window before its failure rate or its targets count, an integer >= 1; default 20. */
  minOutcomes?: number;
  /**
   * Merge two experts when the *overlap* of their routed traffic in the window is at least this,
   * in [0, 1]: the cosine similarity of the term histograms (the query terms of `tokenize`) of
   * the queries routed to each. Queries that look alike go to both: the router cannot tell them
   * apart. Default 0.8. Counting query terms costs about 2 µs per routed query, so terms are
   * counted only while the policy has this rule: from the control plane's first pass with it, or
   * from `enableDynamicManagement` with it. A window whose queries were not all counted (traffic
   * came before) merges nothing; `false` stops counting.
   */
  mergeOverlap?: number | false;
  /** Queries each of two experts needs in the window before their overlap counts, an integer >= 1; default 20. */
  minMergeQueries?: number;
  /**
   * Report drift when the Jensen–Shannon divergence (bits, see {@link jensenShannonDivergence})
   * between the distribution of routed queries over experts in this window and in the previous
   * one is at least this, in (0, 1]. Default 0.1: a 50/50 split becoming 80/20 gives 0.073 (not
   * detected), 90/10 gives 0.147, 100/0 gives 0.311.
   */
  driftThreshold?: number | false;
  /** Queries each of the two windows needs before drift is measured, an integer >= 1; default 20. */
  minDriftQueries?: number;
  /** Retirements and merges never leave fewer active experts than this, an integer >= 1; default 1. */
  minActive?: number;
  /** With `dynamicExpertAllocation`: the utilisation plans aim at, in (0, 1]; default 0.75. */
  targetUtilization?: number;
  /** With `dynamicExpertAllocation`: the plans' rule; default `'load_based'`. */
  rebalancingStrategy?: RebalancingStrategy;
}

/** {@link LifecyclePolicy} with its defaults filled in. */
export interface ResolvedPolicy {
  intervalMs: number;
  idleMs: number | false;
  maxFailureRate: number | false;
  minOutcomes: number;
  mergeOverlap: number | false;
  minMergeQueries: number;
  driftThreshold: number | false;
  minDriftQueries: number;
  minActive: number;
  targetUtilization: number;
  rebalancingStrategy: RebalancingStrategy;
}

const POLICY_KEYS = [
  'intervalMs', 'idleMs', 'maxFailureRate', 'minOutcomes', 'mergeOverlap', 'minMergeQueries', 'driftThreshold', 'minDriftQueries',
  'minActive', 'targetUtilization', 'rebalancingStrategy',
] as const;

/** Checks a policy and fills its defaults. */
export function resolvePolicy(policy: unknown): ResolvedPolicy {
  const p = v.options<LifecyclePolicy>('policy', policy, POLICY_KEYS);
  const rule = <T>(key: keyof LifecyclePolicy, dflt: number, check: (name: string, x: unknown) => T): T | false | number =>
    p[key] === undefined ? dflt : p[key] === false ? false : check(`policy.${key}`, p[key]);
  const int = (key: 'minOutcomes' | 'minMergeQueries' | 'minDriftQueries' | 'minActive', dflt: number) =>
    p[key] === undefined ? dflt : v.integer(`policy.${key}`, p[key], 1);
  return {
    intervalMs: p.intervalMs === undefined ? 60_000 : v.integer('policy.intervalMs', p.intervalMs, 1, 2 ** 31 - 1),
    idleMs: rule('idleMs', 3_600_000, (n, x) => v.finite(n, x, { positive: true })),
    maxFailureRate: rule('maxFailureRate', 0.5, v.unitInterval),
    minOutcomes: int('minOutcomes', 20),
    mergeOverlap: rule('mergeOverlap', 0.8, v.unitInterval),
    minMergeQueries: int('minMergeQueries', 20),
    driftThreshold: rule('driftThreshold', 0.1, positiveUnit),
    minDriftQueries: int('minDriftQueries', 20),
    minActive: int('minActive', 1),
    targetUtilization: p.targetUtilization === undefined ? 0.75 : positiveUnit('policy.targetUtilization', p.targetUtilization),
    rebalancingStrategy: p.rebalancingStrategy === undefined ? 'load_based' : v.oneOf('policy.rebalancingStrategy', p.rebalancingStrategy, REBALANCING),
  };
}

/** The rebalancing strategies, for validation. */
export const REBALANCING: readonly RebalancingStrategy[] = ['load_based', 'performance_based'];

/** A number in (0, 1]. */
export function positiveUnit(name: string, x: unknown): number {
  if (typeof x !== 'number') throw v.typeError(name, 'number in (0, 1]', x);
  if (!(x > 0 && x <= 1)) throw v.rangeError(name, 'number in (0, 1]', x);
  return x;
}

/**
 * Drift of the routed query distribution between two consecutive lifecycle windows.
 *
 * @example
 * ```ts
 * control.on('drift', (d: DriftReport) => console.warn(`drift ${d.divergence.toFixed(3)} bits`, d.shifts[0]));
 * ```
 */
export interface DriftReport {
  /** Jensen–Shannon divergence (bits, in [0, 1]) between the shares of routed queries per expert in the previous and the current window. */
  divergence: number;
  /** The policy's threshold. */
  threshold: number;
  /** `divergence >= threshold`. */
  detected: boolean;
  /** Queries routed in the previous window. */
  previousQueries: number;
  /** Queries routed in the current window. */
  currentQueries: number;
  /**
   * Whether experts were retired or merged between the two windows: their traffic moved to
   * other experts, which this measure registers as drift too.
   */
  poolChanged: boolean;
  /** Per expert, its share before and after, largest absolute change first. */
  shifts: Array<{
    /** The expert. */
    id: string;
    /** Share of the previous window's routed queries. */
    before: number;
    /** Share of the current window's. */
    after: number;
  }>;
}

/**
 * What one lifecycle pass found and did, from {@link MoEControlAPI.runLifecycle}.
 *
 * @example
 * ```ts
 * const r = control.runLifecycle();
 * console.log(r.retired, r.merged, r.drift?.detected, r.attention);
 * ```
 */
export interface LifecycleReport {
  /** Clock ms of the pass. */
  at: number;
  /** The window the pass looked at. */
  window: {
    /** Clock ms it opened (the previous pass, or when the instance was created). */
    from: number;
    /** Clock ms it closed (this pass). */
    to: number;
    /** Queries routed in it. */
    routed: number;
    /** Outcomes recorded in it. */
    outcomes: number;
  };
  /** Drift against the previous window; null on the first pass, when the rule is off, or when a window had fewer than `minDriftQueries` queries. */
  drift: DriftReport | null;
  /** Experts retired by the idle and failing rules, with the measured evidence. */
  retired: Array<{
    /** The expert. */
    id: string;
    /** The rule. */
    reason: 'idle' | 'failing';
    /** For `'idle'`: ms since it was last used (see {@link LifecyclePolicy.idleMs}), or since its registration. */
    idleForMs?: number;
    /** For `'failing'`: failures / outcomes in the window. */
    failureRate?: number;
    /** For `'failing'`: outcomes in the window. */
    outcomes?: number;
  }>;
  /** Merges made by the overlap rule. */
  merged: Array<{
    /** The surviving expert (the one with more queries in the window). */
    into: string;
    /** The expert merged into it. */
    from: string;
    /** Their overlap (cosine of routed-query term histograms). */
    overlap: number;
  }>;
  /** Active experts flagged, with the reasons. */
  attention: Array<{
    /** The expert. */
    id: string;
    /** Why. */
    reasons: ExpertAttentionReason[];
  }>;
  /** The allocation plan applied (with `dynamicExpertAllocation`), or null. */
  allocation: AllocationPlan | null;
}

/** Drift between two windows' routed counts per expert, or null below the minimum sample. */
export function measureDrift(
  previous: ReadonlyMap<string, number>,
  current: ReadonlyMap<string, number>,
  threshold: number,
  minQueries: number,
  poolChanged: boolean,
): DriftReport | null {
  const total = (m: ReadonlyMap<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  const before = total(previous);
  const after = total(current);
  if (before < minQueries || after < minQueries) return null;
  const ids = [...new Set([...previous.keys(), ...current.keys()])];
  const p = ids.map((id) => previous.get(id) ?? 0);
  const q = ids.map((id) => current.get(id) ?? 0);
  const divergence = jensenShannonDivergence(p, q);
  const shifts = ids
    .map((id, i) => ({ id, before: p[i]! / before, after: q[i]! / after }))
    .sort((a, b) => Math.abs(b.after - b.before) - Math.abs(a.after - a.before));
  return { divergence, threshold, detected: divergence >= threshold, previousQueries: before, currentQueries: after, poolChanged, shifts };
}

/**
 * Pairs of experts whose routed traffic overlaps at least `threshold`, best first; each needs
 * `minQueries` routed queries in the window.
 */
export function overlappingPairs(
  routed: ReadonlyMap<string, number>,
  terms: ReadonlyMap<string, ReadonlyMap<string, number>>,
  active: readonly string[],
  threshold: number,
  minQueries: number,
): Array<{ a: string; b: string; overlap: number }> {
  const ids = active.filter((id) => (routed.get(id) ?? 0) >= minQueries && terms.has(id));
  const out: Array<{ a: string; b: string; overlap: number }> = [];
  for (let i = 0; i < ids.length; i++) {
    for (let j = i + 1; j < ids.length; j++) {
      const overlap = cosineSimilarity(terms.get(ids[i]!)!, terms.get(ids[j]!)!);
      if (overlap >= threshold) out.push({ a: ids[i]!, b: ids[j]!, overlap });
    }
  }
  return out.sort((x, y) => y.overlap - x.overlap);
}
