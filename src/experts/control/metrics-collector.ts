/**
 * ExpertMetricsCollector: per-domain metrics from recorded outcomes, and a cross-expert
 * benchmark on labelled queries.
 * @module
 */
import { RewiringExperts, type RoutingContext } from '../routing/index';
import { dict } from '../../dict';
import { CloseGuard } from '../../toolkit/closing';
import * as v from '../../validate';
import { efficiency, meanLatency, successRate } from './counters';
import type { MoEControlAPI } from './moe-control-api';
import { type CollectorView, poolViewOf } from './pool-view';
import { TrafficLedger } from './traffic-ledger';
import type { ManagedExpert } from './types';

const OPTION_KEYS = ['control', 'router', 'experts', 'collectionInterval', 'maxHistory'] as const;
const CASE_KEYS = ['query', 'category', 'expectedExpert', 'context'] as const;
const BENCH_KEYS = ['includeBaselineComparison', 'measureSpecializationOverlap'] as const;

/**
 * Options of {@link ExpertMetricsCollector}: a control plane or a router (one of the two).
 *
 * @example
 * ```ts
 * new ExpertMetricsCollector({ control, experts: control.getAllExperts(), collectionInterval: 30 });
 * ```
 */
export interface ExpertMetricsCollectorOptions {
  /** The control plane whose traffic is counted (from its creation). */
  control?: MoEControlAPI;
  /** A router whose traffic is counted from now (when no control plane is given). */
  router?: RewiringExperts;
  /** Restrict the benchmark to these experts (ids or registry records); default all. */
  experts?: Array<string | ManagedExpert>;
  /** Seconds between snapshots of the domain metrics into `history()`, > 0; default none (no timer). */
  collectionInterval?: number;
  /** Snapshots kept, an integer >= 1; default 1,000. */
  maxHistory?: number;
}

/**
 * Metrics of one domain. A query's domain is its `context.domain` hint, else the
 * specialization (profile domain) of the expert it was routed to; its outcomes — fallbacks
 * included — count for that domain. At most 4,096 domains are kept apart: when a new one would
 * make more, the 1,024 least recently used are folded into the domain `'other'` (hints that
 * vary per request must not grow memory without bound).
 *
 * The seed's domain-specific figures (reasoning quality, theorem usage, originality …) are not
 * provided: they need a grader per domain; `qualityMean` carries whatever quality the caller
 * reports with its outcomes.
 *
 * @example
 * ```ts
 * const m: DomainMetrics = collector.collectDomainMetrics().sql!;
 * console.log(m.queries, m.successRate, m.meanLatencyMs, m.experts);
 * ```
 */
export interface DomainMetrics {
  /** Queries routed. */
  queries: number;
  /** Outcomes recorded. */
  outcomes: number;
  /** Successful outcomes / outcomes (the seed's accuracy); 0 before any. */
  successRate: number;
  /** Mean outcome latency, ms; 0 before any. */
  meanLatencyMs: number;
  /** Mean reported quality, or null when no outcome reported one. */
  qualityMean: number | null;
  /** Successful answers per second of busy time: `successes / (Σ latency / 1000)`. */
  efficiency: number;
  /** Per expert, its share of the domain's routed queries. */
  experts: Record<string, number>;
}

/**
 * The domain metrics at one collection tick, from {@link ExpertMetricsCollector.history}.
 *
 * @example
 * ```ts
 * const last: DomainSnapshot | undefined = collector.history().at(-1);
 * ```
 */
export interface DomainSnapshot {
  /** Clock ms of the tick. */
  at: number;
  /** Per domain, as {@link ExpertMetricsCollector.collectDomainMetrics} returned it then. */
  domains: Record<string, DomainMetrics>;
}

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

/**
 * Collects metrics of an expert pool: per-domain figures from the outcomes recorded through the
 * router, and a benchmark of routing on labelled queries. The benchmark uses
 * {@link RewiringExperts.previewRoute}, so it leaves the router's counters, requests in flight
 * and learned state as they were, and it records no outcome (a label match is not an answer).
 * The seed's named test suites (`"comprehensive_evaluation"`) are not provided: the caller
 * builds the labelled queries.
 *
 * @example
 * ```ts
 * import { ExpertMetricsCollector } from '@capibara/core';
 * const collector = new ExpertMetricsCollector({ control });
 * const domains = collector.collectDomainMetrics();
 * const report = collector.crossExpertBenchmark([{ query: 'slow LEFT JOIN on Postgres', category: 'sql' }]);
 * collector.close();
 * ```
 */
export class ExpertMetricsCollector {
  /** The router measured. */
  readonly router: RewiringExperts;
  readonly #guard = new CloseGuard('ExpertMetricsCollector');
  // The control plane's view, when created over one.
  readonly #view: CollectorView | undefined;
  readonly #ledger: Pick<TrafficLedger, 'domains'>;
  readonly #experts: Set<string> | undefined;
  readonly #history: DomainSnapshot[] = [];
  readonly #maxHistory: number;
  readonly #now: () => number;
  readonly #cleanup: Array<() => void> = [];

  /**
   * @param options A control plane or a router, experts, collection interval.
   * @throws TypeError / RangeError naming a bad option.
   *
   * @example
   * ```ts
   * const collector = new ExpertMetricsCollector({ router });
   * ```
   */
  constructor(options: ExpertMetricsCollectorOptions) {
    if (options === undefined) throw v.typeError('options', 'an options object', options);
    const o = v.options<ExpertMetricsCollectorOptions>('options', options, OPTION_KEYS);
    const control = o.control === undefined ? undefined : poolViewOf('options.control', o.control);
    if (o.router !== undefined && !(o.router instanceof RewiringExperts)) throw v.typeError('options.router', 'RewiringExperts', o.router);
    if ((o.control === undefined) === (o.router === undefined)) throw new TypeError('Expected one of options.control and options.router');
    control?.check();
    if (o.experts !== undefined && !Array.isArray(o.experts)) throw v.typeError('options.experts', 'array of expert ids or records', o.experts);
    this.#experts = o.experts === undefined ? undefined : new Set(o.experts.map((e: unknown, i) => v.nonEmptyString(`options.experts[${i}]`, typeof e === 'object' && e !== null ? (e as ManagedExpert).id : e)));
    this.#maxHistory = o.maxHistory === undefined ? 1000 : v.integer('options.maxHistory', o.maxHistory, 1);
    const seconds = o.collectionInterval === undefined ? undefined : v.finite('options.collectionInterval', o.collectionInterval, { positive: true });
    if (seconds !== undefined && seconds * 1000 > 2 ** 31 - 1) throw v.rangeError('options.collectionInterval', 'number of seconds in (0, 2147483]', seconds);
    this.#view = control;
    if (control !== undefined) {
      this.router = control.router;
      this.#ledger = control.ledger;
      this.#now = () => control.now();
      this.#cleanup.push(control.adopt(this));
    } else {
      const router = o.router!;
      this.router = router;
      this.#now = Date.now;
      let domains = new Map<string, string>();
      const domainOf = (id: string) => {
        if (!domains.has(id)) domains = new Map(router.experts().map((p) => [p.id, p.domain]));
        return domains.get(id) ?? id;
      };
      const ledger = new TrafficLedger({ bucketMs: 60_000, retainMs: 60_000, now: Date.now, domainOf });
      this.#ledger = ledger;
      this.#cleanup.push(ledger.attach(router));
    }
    if (seconds !== undefined) {
      const timer = setInterval(() => {
        try {
          this.#history.push({ at: this.#now(), domains: this.collectDomainMetrics() });
          if (this.#history.length > this.#maxHistory) this.#history.shift();
        } catch {
          // A timer callback never throws (it can only fail once closed, which stops it).
        }
      }, seconds * 1000);
      timer.unref();
      this.#cleanup.push(() => clearInterval(timer));
    }
  }

  /**
   * Per-domain metrics from the queries and outcomes recorded so far (see {@link DomainMetrics}).
   *
   * @returns Per domain.
   *
   * @example
   * ```ts
   * const { sql } = collector.collectDomainMetrics();
   * ```
   */
  collectDomainMetrics(): Record<string, DomainMetrics> {
    this.#guard.check();
    const out = dict<DomainMetrics>();
    for (const [domain, c] of this.#ledger.domains()) {
      out[domain] = {
        queries: c.routed,
        outcomes: c.outcomes,
        successRate: successRate(c),
        meanLatencyMs: meanLatency(c),
        qualityMean: c.qualityCount === 0 ? null : c.qualitySum / c.qualityCount,
        efficiency: efficiency(c),
        experts: dict([...c.byExpert].map(([id, n]) => [id, c.routed === 0 ? 0 : n / c.routed])),
      };
    }
    return out;
  }

  /**
   * Snapshots taken every `collectionInterval` seconds (copies), oldest first.
   *
   * @returns The snapshots.
   *
   * @example
   * ```ts
   * const last = collector.history().at(-1);
   * ```
   */
  history(): DomainSnapshot[] {
    this.#guard.check();
    return this.#history.map((h) => ({
      at: h.at,
      domains: dict(Object.entries(h.domains).map(([d, m]) => [d, { ...m, experts: dict(Object.entries(m.experts)) }])),
    }));
  }

  /**
   * Routes each labelled query with {@link RewiringExperts.previewRoute} (nothing recorded) and
   * reports routing accuracy, per-category rankings, the confusion matrix, per-expert precision
   * and recall, baselines and specialization overlap (see {@link BenchmarkReport}).
   *
   * @param testSuite Labelled queries, at least one.
   * @param options Baselines, overlap.
   * @returns The report.
   * @throws TypeError / RangeError naming the bad case or field (an unknown `expectedExpert` included).
   *
   * @example
   * ```ts
   * const report = collector.crossExpertBenchmark([
   *   { query: 'pandas groupby is slow', category: 'python' },
   *   { query: 'index for a slow JOIN', category: 'sql' },
   * ]);
   * console.log(report.accuracy, report.categories.sql?.rankings);
   * ```
   */
  crossExpertBenchmark(testSuite: readonly BenchmarkCase[], options: BenchmarkOptions = {}): BenchmarkReport {
    this.#guard.check();
    if (!Array.isArray(testSuite)) throw v.typeError('testSuite', 'array of labelled queries (named suites are not provided)', testSuite);
    if (testSuite.length === 0) throw v.rangeError('testSuite', 'at least one labelled query', testSuite);
    const o = v.options<BenchmarkOptions>('options', options, BENCH_KEYS);
    const baselines = o.includeBaselineComparison === undefined ? true : v.boolean('options.includeBaselineComparison', o.includeBaselineComparison);
    const overlapWanted = o.measureSpecializationOverlap === undefined ? true : v.boolean('options.measureSpecializationOverlap', o.measureSpecializationOverlap);
    const profiles = this.router.experts();
    const candidates = profiles.filter((p) => this.#experts === undefined || this.#experts.has(p.id));
    if (candidates.length === 0) throw v.rangeError('options.experts', 'at least one expert of the router', [...(this.#experts ?? [])]);
    const excluded = profiles.filter((p) => !candidates.includes(p)).map((p) => p.id);
    const cases = testSuite.map((c: unknown, i) => this.#case(`testSuite[${i}]`, c, candidates.map((p) => p.id)));

    // Keyed by the caller's labels and ids: Maps, so that no label can reach a prototype.
    const categories = new Map<string, { cases: number; scored: number; right: number; scores: Map<string, number[]>; routed: Map<string, number>; margins: number[] }>();
    const confusion = new Map<string, Map<string, number>>();
    const experts = new Map<string, { routed: number; scoredRouted: number; right: number; rightFor: number }>();
    for (const p of candidates) experts.set(p.id, { routed: 0, scoredRouted: 0, right: 0, rightFor: 0 });
    const pairs = new Map<string, { a: string; b: string; n: number; margin: number }>();
    let scored = 0;
    let right = 0;
    let randomSum = 0;
    for (const c of cases) {
      const context = { ...c.context, exclude: [...new Set([...(c.context.exclude ?? []), ...excluded])] };
      const d = this.router.previewRoute(c.query, context);
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
    const targets = new Map((this.#view?.active() ?? []).map((e) => [e.id, e.performanceTargets.specializationScore]));
    for (const [id, e] of experts) {
      const precision = e.scoredRouted === 0 ? null : e.right / e.scoredRouted;
      report.experts[id] = { routed: e.routed, precision, recall: e.rightFor === 0 ? null : e.right / e.rightFor };
      const target = targets.get(id);
      if (target !== undefined && precision !== null && precision < target) report.belowTarget.push(id);
    }
    if (baselines && scored > 0) {
      const best = Math.max(...[...experts.values()].map((e) => e.rightFor));
      report.baselines = { random: randomSum / scored, majority: best / scored };
    }
    if (overlapWanted) {
      report.overlap = [...pairs.values()]
        .map((p) => ({ experts: [p.a, p.b] as [string, string], share: p.n / cases.length, meanMargin: p.margin / p.n }))
        .sort((a, b) => b.share - a.share);
    }
    return report;
  }

  /**
   * Stops the collection timer and, for a collector over a router, stops counting its traffic.
   * Idempotent; later calls of other methods throw {@link ClosedError}.
   *
   * @example
   * ```ts
   * collector.close();
   * ```
   */
  close(): void {
    this.#guard.closeSync(() => {
      for (const c of this.#cleanup) c();
    });
  }

  /**
   * {@link ExpertMetricsCollector.close}, for `await using`.
   *
   * @example
   * ```ts
   * await using collector = new ExpertMetricsCollector({ control });
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  #case(name: string, value: unknown, ids: readonly string[]): { query: string; label: string; right: Set<string>; context: RoutingContext } {
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
        : new Set(this.router.experts().filter((p) => p.domain === category && ids.includes(p.id)).map((p) => p.id));
    return { query, label: category ?? expected!, right, context };
  }
}
