/**
 * The cross-expert benchmark of {@link ExpertMetricsCollector.crossExpertBenchmark}: labelled
 * queries routed with `previewRoute` (nothing recorded), and the report computed from the
 * decisions.
 * @module
 */
import type { ExpertProfile, RewiringExperts, RoutingContext } from '../routing/index';
import { dict } from '../../dict';
import * as v from '../../validate';

const CASE_KEYS = ['query', 'category', 'expectedExpert', 'context'] as const;

/**
 * One labelled query of a benchmark: the expert that should get it, or its category (the
 * experts whose specialization equals the category are then the right ones).
 *
 * @example
 * ```ts
 * const c: BenchmarkCase = { query: 'Window functions over a partition in Postgres', category: 'sql' };
 * ```
 */
export interface BenchmarkCase {
  /** The query, non-empty. */
  query: string;
  /** Its category. */
  category?: string;
  /** The expert that should get it (an active expert). */
  expectedExpert?: string;
  /** Hints passed to the router. */
  context?: RoutingContext;
}

/**
 * Options of {@link ExpertMetricsCollector.crossExpertBenchmark}.
 *
 * @example
 * ```ts
 * collector.crossExpertBenchmark(cases, { includeBaselineComparison: true, measureSpecializationOverlap: true });
 * ```
 */
export interface BenchmarkOptions {
  /** Report the random and majority baselines; default true. */
  includeBaselineComparison?: boolean;
  /** Report the specialization overlap; default true. */
  measureSpecializationOverlap?: boolean;
}

/**
 * One category's results.
 *
 * @example
 * ```ts
 * const top = report.categories.sql!.rankings[0]; // the expert with the best mean routing score
 * ```
 */
export interface CategoryResult {
  /** Cases of the category. */
  cases: number;
  /** Cases with a right answer known (an expected expert, or an active expert of that specialization). */
  scored: number;
  /** Routed to a right expert / scored; null when none is scored. */
  accuracy: number | null;
  /**
   * Experts ranked by their mean routing score over the category's queries (the strategy's
   * score in each decision's ranking), best first, with the share of the queries routed to each.
   */
  rankings: Array<{
    /** The expert. */
    id: string;
    /** Mean strategy score. */
    meanScore: number;
    /** Share of the category's queries routed to it. */
    routedShare: number;
  }>;
  /**
   * Mean over the queries of `(score₁ − score₂) / |score₁|`, the winner's lead over the
   * runner-up: near 0, the router can hardly tell the two apart (overlapping specializations);
   * null with fewer than two candidates.
   */
  meanMargin: number | null;
}

/**
 * What {@link ExpertMetricsCollector.crossExpertBenchmark} measured.
 *
 * @example
 * ```ts
 * const r = collector.crossExpertBenchmark(cases);
 * console.log(r.accuracy, r.baselines, r.confusion, r.overlap.slice(0, 3));
 * ```
 */
export interface BenchmarkReport {
  /** Cases run. */
  cases: number;
  /** Cases with a right answer known. */
  scored: number;
  /** Routed to a right expert / scored; null when none is scored. */
  accuracy: number | null;
  /** Per category (the label: `category`, else `expectedExpert`). */
  categories: Record<string, CategoryResult>;
  /** Per label, the experts its queries were routed to, with counts. */
  confusion: Record<string, Record<string, number>>;
  /** Per expert: queries routed to it, and its precision and recall on the scored cases (null where undefined). */
  experts: Record<
    string,
    {
      /** Cases routed to it. */
      routed: number;
      /** Right cases routed to it / scored cases routed to it. */
      precision: number | null;
      /** Right cases routed to it / scored cases it was right for. */
      recall: number | null;
    }
  >;
  /** Experts (with the control plane) whose precision is below their `performanceTargets.specializationScore`. */
  belowTarget: string[];
  /** Accuracy of routing at random among the candidates (expected value), and of always routing to the most frequent right expert; null when not asked or nothing is scored. */
  baselines: {
    /** Mean over scored cases of (right experts among the candidates the router could choose / those candidates): at most 1. */
    random: number;
    /** Share of scored cases the most frequent right expert is right for. */
    majority: number;
  } | null;
  /**
   * Specialization overlap: for each pair of experts that were a query's two best candidates,
   * the share of the cases where they were, and their mean margin (as in
   * {@link CategoryResult.meanMargin}); most frequent first. Empty when not asked.
   */
  overlap: Array<{
    /** The two experts. */
    experts: [string, string];
    /** Share of cases with these two on top. */
    share: number;
    /** Mean margin of the winner over the runner-up on those cases. */
    meanMargin: number;
  }>;
}

/** A labelled query checked: its label and the experts right for it. @internal */
export interface LabelledCase {
  query: string;
  /** `category`, else `expectedExpert`. */
  label: string;
  /** The experts right for it; empty when no benchmarked expert is. */
  right: Set<string>;
  context: RoutingContext;
}

/**
 * A labelled query checked against the experts benchmarked (`ids`, among the router's `profiles`).
 * @internal
 */
export function checkCase(name: string, value: unknown, profiles: readonly ExpertProfile[], ids: readonly string[]): LabelledCase {
  if (value === undefined) throw v.typeError(name, 'a labelled query object', value);
  const c = v.options<BenchmarkCase>(name, value, CASE_KEYS);
  const query = v.nonEmptyString(`${name}.query`, c.query);
  const category = c.category === undefined ? undefined : v.nonEmptyString(`${name}.category`, c.category);
  const expected = c.expectedExpert === undefined ? undefined : v.nonEmptyString(`${name}.expectedExpert`, c.expectedExpert);
  if (category === undefined && expected === undefined) throw new TypeError(`Expected ${name}.category or ${name}.expectedExpert`);
  if (expected !== undefined && !ids.includes(expected)) throw v.rangeError(`${name}.expectedExpert`, `id of an expert benchmarked (${ids.join(', ')})`, expected);
  const context = c.context === undefined ? {} : (v.options<RoutingContext>(`${name}.context`, c.context, ['domain', 'complexity', 'latencyBudgetMs', 'exclude']) as RoutingContext);
  const right =
    expected !== undefined
      ? new Set([expected])
      : new Set(profiles.filter((p) => p.domain === category && ids.includes(p.id)).map((p) => p.id));
  return { query, label: category ?? expected!, right, context };
}

/**
 * Routes each case among `candidates` (the router's other experts excluded) and computes the
 * report (see {@link BenchmarkReport}); `targets` are the experts' specialization targets.
 * @internal
 */
export function benchmarkRouting(
  router: Pick<RewiringExperts, 'previewRoute'>,
  cases: readonly LabelledCase[],
  o: { candidates: readonly string[]; excluded: readonly string[]; targets: ReadonlyMap<string, number | undefined>; baselines: boolean; overlap: boolean },
): BenchmarkReport {
  // Keyed by the caller's labels and ids: Maps, so that no label can reach a prototype.
  const categories = new Map<string, { cases: number; scored: number; right: number; scores: Map<string, number[]>; routed: Map<string, number>; margins: number[] }>();
  const confusion = new Map<string, Map<string, number>>();
  const experts = new Map<string, { routed: number; scoredRouted: number; right: number; rightFor: number }>();
  for (const id of o.candidates) experts.set(id, { routed: 0, scoredRouted: 0, right: 0, rightFor: 0 });
  const pairs = new Map<string, { a: string; b: string; n: number; margin: number }>();
  let scored = 0;
  let right = 0;
  let randomSum = 0;
  for (const c of cases) {
    const context = { ...c.context, exclude: [...new Set([...(c.context.exclude ?? []), ...o.excluded])] };
    const d = router.previewRoute(c.query, context);
    let cat = categories.get(c.label);
    if (cat === undefined) categories.set(c.label, (cat = { cases: 0, scored: 0, right: 0, scores: new Map(), routed: new Map(), margins: [] }));
    cat.cases++;
    cat.routed.set(d.expertId, (cat.routed.get(d.expertId) ?? 0) + 1);
    for (const r of d.ranking) {
      const list = cat.scores.get(r.id) ?? [];
      list.push(r.score);
      cat.scores.set(r.id, list);
    }
    let row = confusion.get(c.label);
    if (row === undefined) confusion.set(c.label, (row = new Map()));
    row.set(d.expertId, (row.get(d.expertId) ?? 0) + 1);
    const chosen = experts.get(d.expertId)!;
    chosen.routed++;
    const [first, second] = d.ranking;
    const margin = second === undefined ? undefined : first!.score === 0 ? 0 : (first!.score - second.score) / Math.abs(first!.score);
    if (margin !== undefined) {
      cat.margins.push(margin);
      const key = [first!.id, second!.id].sort().join('\u0000');
      const pair = pairs.get(key) ?? { a: [first!.id, second!.id].sort()[0]!, b: [first!.id, second!.id].sort()[1]!, n: 0, margin: 0 };
      pair.n++;
      pair.margin += margin;
      pairs.set(key, pair);
    }
    if (c.right.size === 0) continue;
    scored++;
    cat.scored++;
    // Routing at random picks among the experts the router could choose: the ranking.
    randomSum += d.ranking.filter((r) => c.right.has(r.id)).length / d.ranking.length;
    chosen.scoredRouted++;
    for (const id of c.right) experts.get(id)!.rightFor++;
    if (c.right.has(d.expertId)) {
      right++;
      cat.right++;
      chosen.right++;
    }
  }

  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const report: BenchmarkReport = {
    cases: cases.length,
    scored,
    accuracy: scored === 0 ? null : right / scored,
    categories: dict(),
    confusion: dict([...confusion].map(([label, row]) => [label, dict(row)])),
    experts: dict(),
    belowTarget: [],
    baselines: null,
    overlap: [],
  };
  for (const [label, cat] of categories) {
    report.categories[label] = {
      cases: cat.cases,
      scored: cat.scored,
      accuracy: cat.scored === 0 ? null : cat.right / cat.scored,
      rankings: [...cat.scores]
        .map(([id, scores]) => ({ id, meanScore: mean(scores), routedShare: (cat.routed.get(id) ?? 0) / cat.cases }))
        .sort((a, b) => b.meanScore - a.meanScore),
      meanMargin: cat.margins.length === 0 ? null : mean(cat.margins),
    };
  }
  for (const [id, e] of experts) {
    const precision = e.scoredRouted === 0 ? null : e.right / e.scoredRouted;
    report.experts[id] = { routed: e.routed, precision, recall: e.rightFor === 0 ? null : e.right / e.rightFor };
    const target = o.targets.get(id);
    if (target !== undefined && precision !== null && precision < target) report.belowTarget.push(id);
  }
  if (o.baselines && scored > 0) {
    const best = Math.max(...[...experts.values()].map((e) => e.rightFor));
    report.baselines = { random: randomSum / scored, majority: best / scored };
  }
  if (o.overlap) {
    report.overlap = [...pairs.values()]
      .map((p) => ({ experts: [p.a, p.b] as [string, string], share: p.n / cases.length, meanMargin: p.margin / p.n }))
      .sort((a, b) => b.share - a.share);
  }
  return report;
}
