/**
 * ExpertMetricsCollector: per-domain metrics from recorded outcomes, and a cross-expert
 * benchmark on labelled queries (computed in routing-benchmark.ts).
 * @module
 */
import { RewiringExperts } from '../routing/index';
import { dict } from '../../dict';
import { CloseGuard } from '../../toolkit/closing';
import * as v from '../../validate';
import { timerSeconds } from './checks';
import { efficiency, meanLatency, successRate } from './counters';
import type { MoEControlAPI } from './moe-control-api';
import { type CollectorView, poolViewOf } from './pool-view';
import { type BenchmarkCase, type BenchmarkOptions, type BenchmarkReport, benchmarkRouting, checkCase } from './routing-benchmark';
import { TrafficLedger } from './traffic-ledger';
import type { ManagedExpert } from './types';

const OPTION_KEYS = ['control', 'router', 'experts', 'collectionInterval', 'maxHistory'] as const;
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
    const seconds = o.collectionInterval === undefined ? undefined : timerSeconds('options.collectionInterval', o.collectionInterval);
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
    const cases = testSuite.map((c: unknown, i) => checkCase(`testSuite[${i}]`, c, profiles, candidates.map((p) => p.id)));
    const targets = new Map((this.#view?.active() ?? []).map((e) => [e.id, e.performanceTargets.specializationScore]));
    return benchmarkRouting(this.router, cases, { candidates: candidates.map((p) => p.id), excluded, targets, baselines, overlap: overlapWanted });
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
}
