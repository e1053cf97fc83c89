/**
 * ExpertMonitor: samples an expert pool's counters into a ring of windows and analyses them
 * (utilisation, efficiency, trends, baselines, attention).
 * @module
 */
import { dict } from '../../dict';
import { CloseGuard } from '../../toolkit/closing';
import * as v from '../../validate';
import { attentionReasons, type ExpertAttentionReason, recommend, type RecommendedAction } from './attention-reasons';
import { duration, timerSeconds } from './checks';
import { addCounters, efficiency, emptyCounters, type ExpertCounters, meanLatency, offeredLoad, successRate, utilization } from './counters';
import { type ExpertPoolControl, type MonitorView, poolViewOf } from './pool-view';
import { leastSquaresSlope } from './statistics';
import type { LedgerTap } from './traffic-ledger';

/**
 * What a monitor watches (the seed's metric names in camelCase). Every figure of
 * {@link ExpertPerformance} is always computed; the metrics chosen decide which of them can
 * flag an expert:
 *
 * - `'utilizationRate'`: `'idle'`, `'overloaded'`;
 * - `'performanceScore'`: `'degrading'`, `'below-accuracy-target'`, `'above-latency-target'`, `'cooling-down'`;
 * - `'resourceEfficiency'`: `'low-efficiency'`;
 * - `'specializationDrift'`: `'share-shift'` (needs `compareToBaseline`).
 *
 * @example
 * ```ts
 * const metrics: MonitorMetric[] = ['utilizationRate', 'performanceScore'];
 * ```
 */
export type MonitorMetric = 'utilizationRate' | 'performanceScore' | 'specializationDrift' | 'resourceEfficiency';

const METRICS: readonly MonitorMetric[] = ['utilizationRate', 'performanceScore', 'specializationDrift', 'resourceEfficiency'];
const OPTION_KEYS = ['monitoringFrequency', 'metrics', 'maxSamples', 'minOutcomes', 'efficiencyRatio', 'shareShift'] as const;
const ANALYZE_KEYS = ['timeWindow', 'includeTrends', 'compareToBaseline'] as const;

/** A fitted success-rate change beyond ±0.05 over the window decides the trend. */
const SUCCESS_CHANGE = 0.05;
/** Else a fitted latency change beyond ±20 % of the mean latency does. */
const LATENCY_CHANGE = 0.2;

/**
 * Options of {@link MoEControlAPI.createMonitor}.
 *
 * @example
 * ```ts
 * control.createMonitor({ monitoringFrequency: 60, metrics: ['utilizationRate', 'performanceScore', 'resourceEfficiency'] });
 * ```
 */
export interface MonitorOptions {
  /** Seconds between samples (the seed's unit), > 0; default 60. Each sample is one window of the analysis. */
  monitoringFrequency?: number;
  /** What can flag an expert (see {@link MonitorMetric}); default all four. */
  metrics?: MonitorMetric[];
  /** Samples kept (oldest dropped first), an integer >= 2; default 1,440 (24 h at 60 s). */
  maxSamples?: number;
  /** Outcomes an expert needs in the window before its rates, targets and efficiency count, an integer >= 1; default 10. */
  minOutcomes?: number;
  /** `'low-efficiency'` when an expert's efficiency is below this × the pool's, in [0, 1]; default 0.5. */
  efficiencyRatio?: number;
  /** `'share-shift'` when an expert's traffic share moved by more than this from the baseline, in [0, 1]; default 0.1. */
  shareShift?: number;
}

/**
 * Options of {@link ExpertMonitor.analyzeExpertPerformance}.
 *
 * @example
 * ```ts
 * monitor.analyzeExpertPerformance({ timeWindow: '24h', includeTrends: true, compareToBaseline: true });
 * ```
 */
export interface AnalyzeOptions {
  /**
   * The window analysed: the samples that ended less than `timeWindow` before the end of the
   * last sample; ms, or `'90s'`, `'15m'`, `'24h'`, `'7d'`. Default `'24h'`.
   */
  timeWindow?: number | string;
  /** Fit trends (see {@link ExpertTrend}); default true. */
  includeTrends?: boolean;
  /** Compare with the samples before the window (see {@link BaselineFigures}); default false. */
  compareToBaseline?: boolean;
}

/**
 * An expert's performance trend over the window's samples: least-squares lines of its success
 * rate and of its mean latency against time, fitted over the samples in which it had outcomes.
 * The fitted change is the slope × the time between the first and last of those samples.
 * `direction`: `'degrading'` when the success rate's fitted change is below −0.05, `'improving'`
 * above +0.05; otherwise by latency — `'degrading'` when its fitted change exceeds +20 % of
 * the window's mean latency, `'improving'` below −20 %; else `'stable'`. `'unknown'` with fewer
 * than 3 such samples.
 *
 * @example
 * ```ts
 * const t: ExpertTrend | null = analysis.sql!.trend;
 * if (t?.direction === 'degrading') console.warn(t.successRateSlopePerHour);
 * ```
 */
export interface ExpertTrend {
  /** See above. */
  direction: 'improving' | 'stable' | 'degrading' | 'unknown';
  /** Slope of the success rate, per hour. */
  successRateSlopePerHour: number;
  /** Slope of the mean latency, ms per hour. */
  latencySlopeMsPerHour: number;
  /** Samples fitted. */
  points: number;
}

/**
 * The same figures over the monitor's samples before the window: the expert's own history.
 *
 * @example
 * ```ts
 * const b = analysis.sql!.baseline;
 * if (b) console.log(analysis.sql!.successRate - b.successRate);
 * ```
 */
export interface BaselineFigures {
  /** Queries routed to it. */
  routed: number;
  /** Its share of the routed queries. */
  trafficShare: number;
  /** Successes / outcomes (0 before any). */
  successRate: number;
  /** Mean outcome latency, ms (0 before any). */
  meanLatencyMs: number;
  /** Successes per second of busy time (see {@link ExpertPerformance.efficiency}). */
  efficiency: number;
}

/**
 * One expert's analysis over the window.
 *
 * @example
 * ```ts
 * for (const [id, a] of Object.entries(monitor.analyzeExpertPerformance({ timeWindow: '1h' }))) {
 *   console.log(id, a.trend?.direction, (100 * a.utilization).toFixed(1), a.efficiency.toFixed(3));
 *   if (a.needsAttention) console.log('  →', a.recommendedAction, a.reasons);
 * }
 * ```
 */
export interface ExpertPerformance {
  /** The expert. */
  id: string;
  /** Queries routed to it in the window. */
  routed: number;
  /** Outcomes recorded for it. */
  outcomes: number;
  /** Its share of the queries routed to the active experts in the window. */
  trafficShare: number;
  /** Successes / outcomes (0 before any). */
  successRate: number;
  /** Mean outcome latency, ms (0 before any). */
  meanLatencyMs: number;
  /**
   * Busy share of its request slots: `load / (capacity × replicas)`, with load in Erlangs by
   * Little's law (attempts — queries routed plus fallback tries — per ms of the window × mean latency in ms; all-time mean latency
   * when the window has none). 1 = saturated.
   */
  utilization: number;
  /** Successful answers per second of busy time: `successes / (Σ latency / 1000)`; 0 with no latency. */
  efficiency: number;
  /** Its trend, or null when `includeTrends` is false. */
  trend: ExpertTrend | null;
  /** Its own earlier figures, or null (not asked, or no earlier sample with traffic). */
  baseline: BaselineFigures | null;
  /** Whether any watched metric flagged it. */
  needsAttention: boolean;
  /** Why. */
  reasons: ExpertAttentionReason[];
  /** What to do (see {@link RecommendedAction}). */
  recommendedAction: RecommendedAction;
}

/** One sample: a window of counters. */
interface Sample {
  from: number;
  to: number;
  experts: Map<string, ExpertCounters>;
}

/**
 * Watches an expert pool: every `monitoringFrequency` seconds (a timer that does not keep the
 * process alive) or on {@link ExpertMonitor.sample}, it closes a window of the pool's counters
 * (counted exactly, event to event) and keeps it in a ring of `maxSamples` windows; the
 * analysis reads the windows that ended within `timeWindow`. Create it with
 * {@link MoEControlAPI.createMonitor}.
 *
 * @example
 * ```ts
 * const monitor = control.createMonitor({ monitoringFrequency: 60 });
 * // … traffic …
 * const analysis = monitor.analyzeExpertPerformance({ timeWindow: '24h', includeTrends: true, compareToBaseline: true });
 * monitor.close();
 * ```
 */
export class ExpertMonitor {
  /** Seconds between samples. */
  readonly monitoringFrequency: number;
  /** What can flag an expert. */
  readonly metrics: readonly MonitorMetric[];
  /** Samples kept. */
  readonly maxSamples: number;
  readonly #guard = new CloseGuard('ExpertMonitor');
  readonly #view: MonitorView;
  readonly #tap: LedgerTap;
  readonly #samples: Sample[] = [];
  readonly #timer: NodeJS.Timeout;
  readonly #forget: () => void;
  readonly #minOutcomes: number;
  readonly #efficiencyRatio: number;
  readonly #shareShift: number;

  /**
   * Use {@link MoEControlAPI.createMonitor}.
   *
   * @param control The control plane of the pool (open).
   * @param options See {@link MonitorOptions}.
   * @throws ClosedError when the control plane is closed.
   *
   * @example
   * ```ts
   * const monitor = new ExpertMonitor(control, { monitoringFrequency: 30 });
   * ```
   */
  constructor(control: ExpertPoolControl, options: MonitorOptions = {}) {
    const view: MonitorView = poolViewOf('control', control);
    view.check();
    const o = v.options<MonitorOptions>('options', options, OPTION_KEYS);
    this.monitoringFrequency = o.monitoringFrequency === undefined ? 60 : timerSeconds('options.monitoringFrequency', o.monitoringFrequency);
    if (o.metrics !== undefined && !Array.isArray(o.metrics)) throw v.typeError('options.metrics', 'array of metric names', o.metrics);
    this.metrics = Object.freeze(o.metrics === undefined ? [...METRICS] : o.metrics.map((m: unknown, i) => v.oneOf(`options.metrics[${i}]`, m, METRICS)));
    this.maxSamples = o.maxSamples === undefined ? 1440 : v.integer('options.maxSamples', o.maxSamples, 2);
    this.#minOutcomes = o.minOutcomes === undefined ? 10 : v.integer('options.minOutcomes', o.minOutcomes, 1);
    this.#efficiencyRatio = o.efficiencyRatio === undefined ? 0.5 : v.unitInterval('options.efficiencyRatio', o.efficiencyRatio);
    this.#shareShift = o.shareShift === undefined ? 0.1 : v.unitInterval('options.shareShift', o.shareShift);
    this.#view = view;
    this.#tap = view.ledger.tap(false);
    this.#timer = setInterval(() => {
      try {
        this.sample();
      } catch {
        // A timer callback never throws; sample() throws only once closed, which stops the timer.
      }
    }, this.monitoringFrequency * 1000);
    this.#timer.unref();
    this.#forget = view.adopt(this);
  }

  /**
   * Samples kept now.
   *
   * @example
   * ```ts
   * console.log(monitor.sampleCount);
   * ```
   */
  get sampleCount(): number {
    return this.#samples.length;
  }

  /**
   * Closes the current window at `now` and keeps it as a sample (the timer calls this).
   *
   * @param now Clock ms; default the control plane's clock.
   * @returns The window closed: its start, end and queries routed.
   *
   * @example
   * ```ts
   * monitor.sample(); // e.g. before analysing, to include the traffic since the last tick
   * ```
   */
  sample(now?: number): {
    /** Clock ms the window opened. */
    from: number;
    /** Clock ms it closed. */
    to: number;
    /** Queries routed in it. */
    routed: number;
  } {
    this.#guard.check();
    const at = now === undefined ? this.#view.now() : v.finite('now', now);
    const w = this.#tap.take(at);
    this.#samples.push({ from: w.from, to: w.to, experts: w.experts });
    if (this.#samples.length > this.maxSamples) this.#samples.shift();
    return { from: w.from, to: w.to, routed: w.routed };
  }

  /**
   * Analyses each active expert over the samples that ended within `timeWindow` of the last
   * sample. Definitions are on {@link ExpertPerformance}, {@link ExpertTrend} and
   * {@link BaselineFigures}; attention reasons on {@link ExpertAttentionReason} (as filtered by
   * {@link MonitorMetric}).
   *
   * @param options Window, trends, baseline.
   * @returns Per active expert id, its analysis.
   *
   * @example
   * ```ts
   * const a = monitor.analyzeExpertPerformance({ timeWindow: '24h', includeTrends: true, compareToBaseline: true });
   * ```
   */
  analyzeExpertPerformance(options: AnalyzeOptions = {}): Record<string, ExpertPerformance> {
    this.#guard.check();
    const o = v.options<AnalyzeOptions>('options', options, ANALYZE_KEYS);
    const windowMs = o.timeWindow === undefined ? 86_400_000 : duration('options.timeWindow', o.timeWindow);
    const includeTrends = o.includeTrends === undefined ? true : v.boolean('options.includeTrends', o.includeTrends);
    const compare = o.compareToBaseline === undefined ? false : v.boolean('options.compareToBaseline', o.compareToBaseline);
    const end = this.#samples[this.#samples.length - 1]?.to ?? this.#view.now();
    const inWindow = this.#samples.filter((s) => s.to > end - windowMs);
    const before = this.#samples.filter((s) => s.to <= end - windowMs);
    const active = this.#view.active();
    const sum = (samples: Sample[]) => {
      const m = new Map<string, ExpertCounters>(active.map((r) => [r.id, emptyCounters()]));
      for (const s of samples) for (const [id, c] of s.experts) if (m.has(id)) addCounters(m.get(id)!, c);
      return m;
    };
    const span = (samples: Sample[]) => samples.reduce((t, s) => t + (s.to - s.from), 0);
    const now = sum(inWindow);
    const then = sum(before);
    const routedAll = [...now.values()].reduce((t, c) => t + c.routed, 0);
    const routedBefore = [...then.values()].reduce((t, c) => t + c.routed, 0);
    const pool = [...now.values()].reduce((acc, c) => addCounters(acc, c), emptyCounters());
    const poolEfficiency = efficiency(pool);
    const watch = new Set(this.metrics);
    const performance = watch.has('performanceScore');
    const efficiencyFloor = watch.has('resourceEfficiency') && pool.outcomes >= this.#minOutcomes ? this.#efficiencyRatio * poolEfficiency : undefined;
    const out = dict<ExpertPerformance>();
    for (const r of active) {
      const c = now.get(r.id)!;
      const total = this.#view.ledger.totals(r.id);
      const util = utilization(offeredLoad(c, span(inWindow), meanLatency(total)), r.capacity, r.replicas);
      const trend = includeTrends ? fitTrend(inWindow, r.id) : null;
      const b = then.get(r.id)!;
      const baseline: BaselineFigures | null =
        compare && b.routed > 0
          ? { routed: b.routed, trafficShare: b.routed / routedBefore, successRate: successRate(b), meanLatencyMs: meanLatency(b), efficiency: efficiency(b) }
          : null;
      const share = routedAll === 0 ? 0 : c.routed / routedAll;
      const reasons: ExpertAttentionReason[] = attentionReasons({
        window: c,
        minOutcomes: this.#minOutcomes,
        ...(performance ? { available: this.#view.available(r.id), trend: trend?.direction ?? null, targets: r.performanceTargets } : {}),
        ...(watch.has('utilizationRate') ? { poolRouted: routedAll, utilization: util } : {}),
        efficiencyFloor,
        shareShifted: watch.has('specializationDrift') && baseline !== null && Math.abs(share - baseline.trafficShare) > this.#shareShift,
      });
      out[r.id] = {
        id: r.id,
        routed: c.routed,
        outcomes: c.outcomes,
        trafficShare: share,
        successRate: successRate(c),
        meanLatencyMs: meanLatency(c),
        utilization: util,
        efficiency: efficiency(c),
        trend,
        baseline,
        needsAttention: reasons.length > 0,
        reasons,
        recommendedAction: recommend(reasons),
      };
    }
    return out;
  }

  /**
   * Stops the timer and drops the samples. Idempotent; later calls of other methods throw
   * {@link ClosedError}.
   *
   * @example
   * ```ts
   * monitor.close();
   * ```
   */
  close(): void {
    this.#guard.closeSync(() => {
      clearInterval(this.#timer);
      this.#tap.close();
      this.#samples.length = 0;
      this.#forget();
    });
  }

  /**
   * {@link ExpertMonitor.close}, for `await using`.
   *
   * @example
   * ```ts
   * await using monitor = control.createMonitor();
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}

/** The trend of one expert over samples (see {@link ExpertTrend}). */
function fitTrend(samples: readonly Sample[], id: string): ExpertTrend {
  const x: number[] = [];
  const success: number[] = [];
  const latency: number[] = [];
  let latencySum = 0;
  let outcomes = 0;
  for (const s of samples) {
    const c = s.experts.get(id);
    if (c === undefined || c.outcomes === 0) continue;
    x.push((s.from + s.to) / 2 / 3_600_000);
    success.push(c.successes / c.outcomes);
    latency.push(c.latencyMs / c.outcomes);
    latencySum += c.latencyMs;
    outcomes += c.outcomes;
  }
  const successRateSlopePerHour = leastSquaresSlope(x, success);
  const latencySlopeMsPerHour = leastSquaresSlope(x, latency);
  if (x.length < 3) return { direction: 'unknown', successRateSlopePerHour, latencySlopeMsPerHour, points: x.length };
  const hours = x[x.length - 1]! - x[0]!;
  const ds = successRateSlopePerHour * hours;
  const mean = latencySum / outcomes;
  const dl = mean === 0 ? 0 : (latencySlopeMsPerHour * hours) / mean;
  const direction =
    ds < -SUCCESS_CHANGE ? 'degrading' : ds > SUCCESS_CHANGE ? 'improving' : dl > LATENCY_CHANGE ? 'degrading' : dl < -LATENCY_CHANGE ? 'improving' : 'stable';
  return { direction, successRateSlopePerHour, latencySlopeMsPerHour, points: x.length };
}
