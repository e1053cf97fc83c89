import { describe, expect, it, vi } from 'vitest';
import { type BenchmarkCase, ClosedError, ExpertCoordinator, ExpertMetricsCollector, ExpertMonitor, type ExpertProfile, MoEControlAPI, RewiringExperts, type RoutingDecision } from '../src/index';
import { TrafficLedger } from '../src/experts/control/traffic-ledger';
import { QUERIES } from './support/labelled-queries';

function clock(start = 1_000_000) {
  const c = { now: start, fn: () => c.now };
  return c;
}

const NEVER_COOL = { health: { failureRate: 1 } };
const ABC: ExpertProfile[] = [
  { id: 'a', domain: 'alpha', description: 'alpha questions', keywords: ['alpha'], capacity: 1 },
  { id: 'b', domain: 'beta', description: 'beta questions', keywords: ['beta'], capacity: 1 },
  { id: 'c', domain: 'gamma', description: 'gamma questions', keywords: ['gamma'], capacity: 1 },
];

/** Routes `text` n times with the outcome of `outcome(i)`, checking each goes to `expect`. */
function drive(control: MoEControlAPI, text: string, n: number, outcome: (i: number) => { success: boolean; latencyMs: number; quality?: number }, to?: string): void {
  for (let i = 0; i < n; i++) {
    const d = control.router.routeQuery(text);
    if (to !== undefined) expect(d.expertId).toBe(to);
    control.router.recordOutcome(d.id, outcome(i));
  }
}

/** Independent reference: least-squares slope. */
function slope(x: number[], y: number[]): number {
  const n = x.length;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (x[i]! - mx) * (y[i]! - my);
    den += (x[i]! - mx) ** 2;
  }
  return num / den;
}

describe('ExpertMonitor', () => {
  function monitored() {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    const monitor = control.createMonitor({ monitoringFrequency: 60 });
    // Three one-minute samples: a's success falls 1 → 0.8 → 0.5 while its latency rises.
    const a = [
      { ok: 10, ms: 600 },
      { ok: 8, ms: 800 },
      { ok: 5, ms: 1000 },
    ];
    for (const s of a) {
      drive(control, 'alpha alpha', 10, (i) => ({ success: i < s.ok, latencyMs: s.ms }), 'a');
      drive(control, 'beta beta', 5, () => ({ success: true, latencyMs: 100 }), 'b');
      c.now += 60_000;
      monitor.sample();
    }
    return { c, control, monitor };
  }

  it('computes utilisation, efficiency, trend and attention as defined, against hand-computed values', () => {
    const { control, monitor } = monitored();
    expect(monitor.sampleCount).toBe(3);
    const r = monitor.analyzeExpertPerformance({ timeWindow: '3m', includeTrends: true });
    const a = r.a!;
    expect(a).toMatchObject({ routed: 30, outcomes: 30, successRate: 23 / 30, meanLatencyMs: 800 });
    expect(a.trafficShare).toBeCloseTo(30 / 45, 12);
    // Little's law: 30 queries / 180,000 ms × 800 ms = 0.1333 Erlangs on 1 slot.
    expect(a.utilization).toBeCloseTo((30 / 180_000) * 800, 12);
    // 23 successes per 24 s of busy time.
    expect(a.efficiency).toBeCloseTo(23 / 24, 12);
    const x = [30_000, 90_000, 150_000].map((ms) => (1_000_000 + ms) / 3_600_000);
    expect(a.trend!.successRateSlopePerHour).toBeCloseTo(slope(x, [1, 0.8, 0.5]), 6);
    expect(a.trend!.latencySlopeMsPerHour).toBeCloseTo(slope(x, [600, 800, 1000]), 6);
    expect(a.trend).toMatchObject({ direction: 'degrading', points: 3 });
    expect(a).toMatchObject({ needsAttention: true, reasons: ['degrading'], recommendedAction: 'investigate', baseline: null });
    expect(r.b).toMatchObject({ trafficShare: 15 / 45, successRate: 1, efficiency: 15 / 1.5, needsAttention: false, recommendedAction: 'none' });
    expect(r.b!.trend!.direction).toBe('stable');
    expect(r.c).toMatchObject({ routed: 0, utilization: 0, needsAttention: true, reasons: ['idle'], recommendedAction: 'retire' });
    expect(r.c!.trend!.direction).toBe('unknown');
    expect(monitor.analyzeExpertPerformance({ timeWindow: 180_000, includeTrends: false }).a!.trend).toBeNull();
    control.close();
  });

  it('compares to the baseline of earlier samples, and flags only the metrics watched', () => {
    const { control, monitor } = monitored();
    const r = monitor.analyzeExpertPerformance({ timeWindow: '2m', compareToBaseline: true });
    expect(r.a).toMatchObject({ routed: 20, successRate: 13 / 20 });
    expect(r.a!.baseline).toEqual({ routed: 10, trafficShare: 10 / 15, successRate: 1, meanLatencyMs: 600, efficiency: 10 / 6 });
    expect(r.c!.baseline).toBeNull();
    const quiet = control.createMonitor({ metrics: ['utilizationRate'] });
    expect(quiet.metrics).toEqual(['utilizationRate']);
    quiet.close();

    expect(() => monitor.analyzeExpertPerformance({ timeWindow: '24x' })).toThrow(
      new RangeError("Expected duration: ms > 0, or a string like '90s', '15m', '24h' for options.timeWindow but received '24x' of type string"),
    );
    expect(() => control.createMonitor({ metrics: ['cpu' as never] })).toThrow(
      new RangeError("Expected one of 'utilizationRate', 'performanceScore', 'specializationDrift', 'resourceEfficiency' for options.metrics[0] but received 'cpu' of type string"),
    );
    expect(() => control.createMonitor({ monitoringFrequency: 0 })).toThrow(new RangeError('Expected finite number > 0 for options.monitoringFrequency but received 0 of type number'));
    control.close();
    // Closing the control plane closes its monitors.
    expect(() => monitor.sample()).toThrow(new ClosedError('ExpertMonitor'));
  });

  it('is refused over a closed control plane, starting no timer', () => {
    vi.useFakeTimers();
    try {
      const control = new MoEControlAPI({ routerOptions: { experts: ABC } });
      control.close();
      expect(() => new ExpertMonitor(control, { monitoringFrequency: 1 })).toThrow(new ClosedError('MoEControlAPI'));
      expect(() => new ExpertCoordinator(control)).toThrow(new ClosedError('MoEControlAPI'));
      expect(() => new ExpertMetricsCollector({ control, collectionInterval: 1 })).toThrow(new ClosedError('MoEControlAPI'));
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('samples on an unref’d timer until closed', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const control = new MoEControlAPI({ routerOptions: { experts: ABC } });
      const monitor = control.createMonitor({ monitoringFrequency: 1 });
      vi.advanceTimersByTime(3_000);
      expect(monitor.sampleCount).toBe(3);
      monitor.close();
      vi.advanceTimersByTime(3_000);
      expect(() => monitor.analyzeExpertPerformance()).toThrow(new ClosedError('ExpertMonitor'));
      control.close();
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('ExpertMetricsCollector', () => {
  it('collects per-domain metrics from recorded outcomes (hint, else the expert specialization)', () => {
    const control = new MoEControlAPI();
    const collector = new ExpertMetricsCollector({ control });
    drive(control, 'This LEFT JOIN query is slow on Postgres', 4, () => ({ success: true, latencyMs: 100, quality: 0.8 }), 'sql');
    // A query hinted 'data' that went to python and failed.
    const d = control.router.routeQuery('pandas DataFrame groupby', { domain: 'data' });
    control.router.recordOutcome(d.id, { success: false, latencyMs: 300 });
    // A SQL query whose first expert failed and whose fallback answered: both count for sql.
    const f = control.router.routeQuery('add an index to a slow table');
    control.router.recordOutcome(f.id, { success: false, latencyMs: 50 });
    control.router.recordOutcome(f.id, { success: true, latencyMs: 150, expertId: f.fallbacks[0] });
    const m = collector.collectDomainMetrics();
    expect(Object.keys(m).sort()).toEqual(['data', 'sql']);
    expect(m.sql).toEqual({ queries: 5, outcomes: 6, successRate: 5 / 6, meanLatencyMs: 600 / 6, qualityMean: 0.8, efficiency: 5 / 0.6, experts: { sql: 1 } });
    expect(m.data).toEqual({ queries: 1, outcomes: 1, successRate: 0, meanLatencyMs: 300, qualityMean: null, efficiency: 0, experts: { [d.expertId]: 1 } });
    collector.close();
    expect(() => collector.collectDomainMetrics()).toThrow(new ClosedError('ExpertMetricsCollector'));
    control.close();
  });

  it('benchmarks routing on labelled queries without touching the router state', () => {
    const control = new MoEControlAPI();
    const collector = new ExpertMetricsCollector({ control, experts: control.getAllExperts() });
    const suite: BenchmarkCase[] = Object.entries(QUERIES).flatMap(([category, qs]) => qs.map((query) => ({ query, category })));
    const before = control.router.getMetrics();
    const report = collector.crossExpertBenchmark(suite);
    expect(control.router.getMetrics()).toEqual(before); // nothing routed, nothing in flight
    // Reference: the same queries routed by an untouched router.
    const fresh = new RewiringExperts();
    const right = suite.filter((c) => fresh.routeQuery(c.query).expertId === c.category).length;
    expect(report).toMatchObject({ cases: 18, scored: 18, accuracy: right / 18 });
    expect(report.accuracy!).toBeGreaterThanOrEqual(0.8);
    for (const [category, row] of Object.entries(report.confusion)) {
      expect(Object.values(row).reduce((a, b) => a + b, 0)).toBe(3);
      expect(report.categories[category]!.cases).toBe(3);
    }
    const cat = report.categories.sql!;
    expect(cat.rankings[0]!.id).toBe('sql');
    expect(cat.rankings.map((r) => r.meanScore)).toEqual([...cat.rankings.map((r) => r.meanScore)].sort((x, y) => y - x));
    expect(cat.meanMargin!).toBeGreaterThan(0);
    // Each case has one right expert among six candidates; the most frequent right expert is right for 3.
    expect(report.baselines!.random).toBeCloseTo(1 / 6, 12);
    expect(report.baselines!.majority).toBeCloseTo(3 / 18, 12);
    expect(report.overlap.reduce((s, o) => s + o.share, 0)).toBeCloseTo(1, 12);
    const routedTotal = Object.values(report.experts).reduce((s, e) => s + e.routed, 0);
    expect(routedTotal).toBe(18);
    expect(collector.crossExpertBenchmark(suite, { includeBaselineComparison: false, measureSpecializationOverlap: false })).toMatchObject({ baselines: null, overlap: [] });

    expect(() => collector.crossExpertBenchmark('comprehensive_evaluation' as never)).toThrow(
      new TypeError("Expected array of labelled queries (named suites are not provided) for testSuite but received 'comprehensive_evaluation' of type string"),
    );
    expect(() => collector.crossExpertBenchmark([])).toThrow(new RangeError('Expected at least one labelled query for testSuite but received Array of length 0'));
    expect(() => collector.crossExpertBenchmark([{ query: 'x' }])).toThrow(new TypeError('Expected testSuite[0].category or testSuite[0].expectedExpert'));
    expect(() => collector.crossExpertBenchmark([{ query: '', category: 'sql' }])).toThrow(new RangeError("Expected non-empty string for testSuite[0].query but received '' of type string"));
    expect(() => collector.crossExpertBenchmark([{ query: 'x', expectedExpert: 'rust' }])).toThrow(
      new RangeError("Expected id of an expert benchmarked (python, sql, javascript, debug, ml, api) for testSuite[0].expectedExpert but received 'rust' of type string"),
    );
    control.close();
  });

  it('reports precision against the specialization target, and benchmarks a subset of experts', () => {
    const control = new MoEControlAPI();
    control.createExpert({ specialization: 'rust', baseModel: 'rust-coder', keywords: ['rust', 'cargo', 'borrow checker', 'lifetime'], performanceTargets: { specializationScore: 0.9 } });
    const collector = new ExpertMetricsCollector({ control });
    const report = collector.crossExpertBenchmark([
      { query: 'the borrow checker rejects my lifetime in Rust', category: 'rust' },
      { query: 'cargo build fails on a Rust crate', expectedExpert: 'rust' },
      { query: 'a Rust lifetime question filed under python', category: 'python' }, // mislabelled on purpose
    ]);
    expect(report.experts.rust).toEqual({ routed: 3, precision: 2 / 3, recall: 1 });
    expect(report.belowTarget).toEqual(['rust']);
    const subset = new ExpertMetricsCollector({ control, experts: ['sql', 'python'] });
    const r = subset.crossExpertBenchmark(QUERIES.ml!.map((query) => ({ query, category: 'ml' })));
    expect(Object.keys(r.experts).sort()).toEqual(['python', 'sql']);
    expect(r).toMatchObject({ scored: 0, accuracy: null, baselines: null });
    control.close();
  });

  it('keeps labels such as __proto__ as plain keys: nothing reaches Object.prototype', () => {
    const control = new MoEControlAPI({ routerOptions: { experts: [...ABC, { id: 'constructor', domain: 'delta', description: 'delta questions', keywords: ['delta'] }] } });
    const collector = new ExpertMetricsCollector({ control });
    const d = control.router.routeQuery('alpha alpha', { domain: '__proto__' });
    control.router.recordOutcome(d.id, { success: true, latencyMs: 10 });
    control.router.routeQuery('delta delta', { domain: 'constructor' });
    const m = collector.collectDomainMetrics();
    expect(Object.keys(m)).toEqual(['__proto__', 'constructor']);
    expect(m.__proto__).toMatchObject({ queries: 1, outcomes: 1, experts: { a: 1 } });
    expect(Object.keys(m.constructor!.experts)).toEqual(['constructor']);
    const report = collector.crossExpertBenchmark([
      { query: 'alpha alpha', category: '__proto__' },
      { query: 'delta delta', expectedExpert: 'constructor' },
      { query: 'beta beta', category: 'toString' },
    ]);
    expect(({} as Record<string, unknown>).cases).toBeUndefined();
    expect(Object.keys(report.categories)).toEqual(['__proto__', 'constructor', 'toString']);
    expect(report.categories.__proto__).toMatchObject({ cases: 1, scored: 0 });
    expect(report.confusion.__proto__).toEqual({ a: 1 });
    expect(report.experts.constructor).toEqual({ routed: 1, precision: 1, recall: 1 });
    control.close();
  });

  it('bases the random baseline on the experts the router could choose (never above 1)', () => {
    const experts: ExpertProfile[] = [
      { id: 's1', domain: 'sql', description: 'sql join index', keywords: ['sql'] },
      { id: 's2', domain: 'sql', description: 'sql query plan', keywords: ['sql'] },
      { id: 'p', domain: 'python', description: 'python pandas', keywords: ['python'] },
    ];
    const collector = new ExpertMetricsCollector({ router: new RewiringExperts({ experts }) });
    // Two right experts, but s2 is excluded: of the two candidates, one is right.
    const one = collector.crossExpertBenchmark([{ query: 'sql join', category: 'sql', context: { exclude: ['s2'] } }]);
    expect(one.baselines!.random).toBe(1 / 2);
    const only = collector.crossExpertBenchmark([{ query: 'sql join', category: 'sql', context: { exclude: ['s2', 'p'] } }]);
    expect(only.baselines!.random).toBe(1);
    collector.close();
  });

  it('keeps at most 4,096 domains, folding the least recently used into other', () => {
    const control = new MoEControlAPI({ routerOptions: { experts: ABC } });
    const collector = new ExpertMetricsCollector({ control });
    // A domain hint per request (a user id, say): 4,097 distinct domains.
    for (let i = 0; i < 4097; i++) control.router.routeQuery('alpha alpha', { domain: `user-${i}` });
    const m = collector.collectDomainMetrics();
    // The 4,097th made more than 4,096: the 1,024 least recently used were folded.
    expect(Object.keys(m)).toHaveLength(4097 - 1024 + 1);
    expect(m.other).toMatchObject({ queries: 1024, experts: { a: 1 } });
    expect(m['user-1023']).toBeUndefined();
    expect(m['user-1024']).toMatchObject({ queries: 1 });
    expect(Object.values(m).reduce((s, x) => s + x.queries, 0)).toBe(4097);
    // A domain in use stays: recency, not age, decides.
    control.router.routeQuery('alpha alpha', { domain: 'user-1024' });
    for (let i = 0; i < 1023; i++) control.router.routeQuery('alpha alpha', { domain: `later-${i}` });
    const n = collector.collectDomainMetrics();
    expect(n['user-1024']).toMatchObject({ queries: 2 });
    expect(n['user-1025']).toBeUndefined();
    control.close();
  });

  it('remembers the domain of the 8,192 latest open decisions, however many were answered meanwhile', () => {
    let now = 1_000_000;
    const ledger = new TrafficLedger({ bucketMs: 1000, retainMs: 60_000, now: () => now, domainOf: () => 'fallback-domain' });
    const routed = (id: string, expertId: string, domain: string) => ledger.routed({ id, expertId } as RoutingDecision, 'q', { domain });
    routed('kept', 'a', 'hinted');
    // 40,000 decisions answered at once: none of them pushes 'kept' out.
    for (let i = 0; i < 40_000; i++) {
      routed(`x${i}`, 'a', 'busy');
      ledger.outcome(`x${i}`, { success: true, latencyMs: 1, expertId: 'a' });
      now += 1;
    }
    ledger.outcome('kept', { success: false, latencyMs: 1, expertId: 'a' });
    // 8,192 newer decisions left open: 'kept' is the oldest open one, and goes.
    for (let i = 0; i < 8192; i++) routed(`y${i}`, 'a', 'open');
    ledger.outcome('kept', { success: true, latencyMs: 1, expertId: 'b' });
    ledger.outcome('y0', { success: true, latencyMs: 1, expertId: 'b' });
    const domains = ledger.domains();
    expect(domains.get('hinted')).toMatchObject({ routed: 1, outcomes: 1 });
    expect(domains.get('fallback-domain')).toMatchObject({ routed: 0, outcomes: 1, fallbacks: 0 });
    expect(domains.get('open')).toMatchObject({ routed: 8192, outcomes: 1, fallbacks: 1 }); // y0 was routed to a
    expect(ledger.totals('b')).toMatchObject({ outcomes: 2, fallbacks: 1 });
  });

  it('works over a bare router, and checks its options', () => {
    const router = new RewiringExperts();
    const collector = new ExpertMetricsCollector({ router });
    const d = router.routeQuery('This LEFT JOIN query is slow on Postgres');
    router.recordOutcome(d.id, { success: true, latencyMs: 200 });
    expect(collector.collectDomainMetrics().sql).toMatchObject({ queries: 1, outcomes: 1, successRate: 1, meanLatencyMs: 200 });
    collector.close();
    expect(router.listenerCount('routed')).toBe(0);
    expect(() => new ExpertMetricsCollector({} as never)).toThrow(new TypeError('Expected one of options.control and options.router'));
    expect(() => new ExpertMetricsCollector({ router, collectionInterval: 0 })).toThrow(new RangeError('Expected finite number > 0 for options.collectionInterval but received 0 of type number'));
  });

  it('keeps snapshots every collectionInterval seconds until closed', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const router = new RewiringExperts();
      const collector = new ExpertMetricsCollector({ router, collectionInterval: 30 });
      const d = router.routeQuery('This LEFT JOIN query is slow on Postgres');
      router.recordOutcome(d.id, { success: true, latencyMs: 200 });
      vi.advanceTimersByTime(60_000);
      expect(collector.history().map((h) => [h.at, h.domains.sql!.queries])).toEqual([[1_030_000, 1], [1_060_000, 1]]);
      collector.close();
      vi.advanceTimersByTime(60_000);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('ExpertCoordinator', () => {
  function pool() {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    drive(control, 'alpha alpha', 20, () => ({ success: true, latencyMs: 1000 }), 'a');
    drive(control, 'beta beta', 20, () => ({ success: true, latencyMs: 3000 }), 'b');
    drive(control, 'gamma gamma', 10, (i) => ({ success: i < 2, latencyMs: 2000 }), 'c');
    c.now += 60_000; // a minute counted: the window's full length
    return { c, control };
  }

  it('plans from measured data: shifts traffic off experts breaking a constraint and projects the effects', () => {
    const { control } = pool();
    const monitor = control.createMonitor();
    const coordinator = control.createCoordinator({ router: control.router, monitor });
    const plan = coordinator.optimizeSystemPerformance({ objectives: ['throughput', 'quality'], constraints: { minSuccessRate: 0.8, minOutcomes: 10 } });
    expect(plan.shiftAway).toEqual([{ id: 'c', reason: 'below-min-success-rate', successRate: 0.2, meanLatencyMs: 2000 }]);
    expect(plan.constraintsMet).toBe(true);
    // Shares 0.4 / 0.4 / 0.2; success 1 / 1 / 0.2; latency 1 s / 3 s / 2 s.
    expect(plan.current.successRate).toBeCloseTo(0.84, 12);
    expect(plan.current.meanLatencyMs).toBeCloseTo(2000, 9);
    expect(plan.current.efficiency).toBeCloseTo(0.42, 12);
    expect(plan.current.throughputCapacity).toBeCloseTo(1 + 1 / 3 + 1 / 2, 12);
    // c's share moves to a and b in proportion: 0.5 / 0.5.
    expect(plan.projected.successRate).toBeCloseTo(1, 12);
    expect(plan.projected.meanLatencyMs).toBeCloseTo(2000, 9);
    // Loads λ·s'·W with λ = 50 queries / 60,000 ms: a 0.4167, b 1.25 → b gets a second replica (0.625).
    expect(plan.allocation.rebalancingStrategy).toBe('load_based');
    expect(plan.allocation.replicas).toEqual({ a: 1, b: 2, c: 1 });
    expect(plan.projected.throughputCapacity).toBeCloseTo(1 + 2 / 3, 12);
    expect(plan.projected.utilization).toBeCloseTo(((50 / 60_000) * (0.5 * 1000 + 0.5 * 3000)) / 3, 12);
    expect(plan.throughputGain!).toBeCloseTo((1 + 2 / 3) / (1 + 1 / 3 + 1 / 2) - 1, 12);
    expect(plan.qualityPreservation!).toBeCloseTo(1 / 0.84, 12);
    expect(plan.efficiencyGain!).toBeCloseTo(0.5 / 0.42 - 1, 12);
    expect(plan.attention).toEqual([]); // the monitor has no sample yet
    expect(coordinator.optimizeSystemPerformance({ objectives: ['quality'] }).allocation.rebalancingStrategy).toBe('performance_based');

    coordinator.optimizeSystemPerformance({ constraints: { minSuccessRate: 0.8 }, apply: true });
    expect(control.getExpert('b').replicas).toBe(2);

    expect(() => coordinator.optimizeSystemPerformance({ objectives: ['specialization' as never] })).toThrow(
      new RangeError("Expected one of 'throughput', 'quality', 'efficiency', 'latency' for options.objectives[0] but received 'specialization' of type string"),
    );
    expect(() => coordinator.optimizeSystemPerformance({ constraints: { memory_budget: 1 } as never })).toThrow(/^Unknown option 'memory_budget' in options\.constraints/);
    expect(() => control.createCoordinator({ router: new RewiringExperts() })).toThrow(
      new RangeError("Expected the control plane's router for options.router but received RewiringExperts object"),
    );
    control.close();
  });

  it('shifts nothing when every expert with traffic breaks a constraint', () => {
    const { control } = pool();
    const plan = control.createCoordinator().optimizeSystemPerformance({ constraints: { maxLatencyMs: 500 } });
    expect(plan).toMatchObject({ shiftAway: [], constraintsMet: false });
    expect(plan.projected.successRate).toBeCloseTo(plan.current.successRate, 12);
    control.close();
  });

  it('keeps its timer from throwing, whatever its listeners throw', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const { control } = pool();
      const coordinator = control.createCoordinator();
      const plans: number[] = [];
      const errors: string[] = [];
      coordinator.on('plan', () => {
        throw new Error('plan listener bug');
      });
      coordinator.on('plan', (p) => plans.push(p.createdAt));
      coordinator.on('error', (e: Error) => errors.push(e.message));
      coordinator.on('error', () => {
        throw new Error('error listener bug');
      });
      coordinator.enableAutomaticCoordination({ coordinationFrequency: 1 });
      const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
      expect(() => vi.advanceTimersByTime(2000)).not.toThrow();
      // The 'error' listener that throws becomes a process warning.
      expect(warn.mock.calls.map((c) => c[0])).toEqual(Array(2).fill("an 'error' listener threw: error listener bug"));
      expect(plans).toHaveLength(2);
      expect(errors).toEqual(['plan listener bug', 'plan listener bug']);
      control.close();
    } finally {
      vi.restoreAllMocks();
      vi.useRealTimers();
    }
  });

  it('coordinates on an unref’d timer until closed', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const { control } = pool();
      const coordinator = control.createCoordinator();
      const plans: number[] = [];
      coordinator.enableAutomaticCoordination({ coordinationFrequency: 300, constraints: { minSuccessRate: 0.8 } }).on('plan', (p) => plans.push(p.createdAt));
      vi.advanceTimersByTime(600_000);
      expect(plans).toHaveLength(2);
      control.close(); // closes the coordinator too
      vi.advanceTimersByTime(600_000);
      expect(plans).toHaveLength(2);
      expect(() => coordinator.optimizeSystemPerformance()).toThrow(new ClosedError('ExpertCoordinator'));
    } finally {
      vi.useRealTimers();
    }
  });
});
