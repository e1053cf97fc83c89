import { describe, expect, it, vi } from 'vitest';
import { DEFAULT_EXPERTS, type ExpertProfile, type LifecyclePolicy, type LifecycleReport, MoEControlAPI, RoutingStrategy, tokenize } from '../src/index';

function clock(start = 1_000_000) {
  const c = { now: start, fn: () => c.now };
  return c;
}

const NEVER_COOL = { health: { failureRate: 1 } };
const OFF: LifecyclePolicy = { idleMs: false, maxFailureRate: false, mergeOverlap: false, driftThreshold: false };
const ABC: ExpertProfile[] = [
  { id: 'a', domain: 'alpha', description: 'alpha questions', keywords: ['alpha'], capacity: 1 },
  { id: 'b', domain: 'beta', description: 'beta questions', keywords: ['beta'], capacity: 1 },
  { id: 'c', domain: 'gamma', description: 'gamma questions', keywords: ['gamma'], capacity: 1 },
];
const SQL = ['This LEFT JOIN query is slow on Postgres', 'How do I add an index to a table?', 'Write a SELECT with GROUP BY and HAVING', 'window function with PARTITION BY in MySQL', 'transaction isolation and row locking', 'query plan shows a sequential scan', 'subquery versus CTE in SQLite'];
const PYTHON = ['How do I read a CSV into a pandas DataFrame?', 'My Python list comprehension is slow', 'pip install fails in my virtualenv', 'asyncio coroutine never awaited', 'numpy array broadcasting error'];

/** Routes each text in turn, n queries in all, recording `outcome`; returns [expert, text] pairs. */
function drive(control: MoEControlAPI, texts: string[], n: number, outcome: ((i: number) => { success: boolean; latencyMs: number }) | null): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < n; i++) {
    const text = texts[i % texts.length]!;
    const d = control.router.routeQuery(text);
    out.push([d.expertId, text]);
    if (outcome) control.router.recordOutcome(d.id, outcome(i));
  }
  return out;
}

/** Independent reference: Jensen–Shannon divergence in bits, from natural logs. */
function jsd(p: number[], q: number[]): number {
  const sp = p.reduce((a, b) => a + b, 0);
  const sq = q.reduce((a, b) => a + b, 0);
  let d = 0;
  for (let i = 0; i < p.length; i++) {
    const x = p[i]! / sp;
    const y = q[i]! / sq;
    const m = 0.5 * (x + y);
    if (x > 0) d += 0.5 * x * Math.log(x / m);
    if (y > 0) d += 0.5 * y * Math.log(y / m);
  }
  return d / Math.LN2;
}

describe('lifecycle rules', () => {
  it('retires idle experts, longest idle first, never below minActive', () => {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts: ABC, clock: c.fn } });
    control.enableDynamicManagement({ ...OFF, idleMs: 10_000, minActive: 2 });
    c.now += 2_000;
    drive(control, ['beta beta'], 1, null);
    c.now += 3_000;
    drive(control, ['alpha alpha'], 1, null);
    const report = control.runLifecycle(1_000_000 + 12_000);
    // c never had traffic: idle since its registration, 12 s; b since 2 s, 10 s; a since 5 s.
    expect(report.retired).toEqual([{ id: 'c', reason: 'idle', idleForMs: 12_000 }]);
    expect(control.getAllExperts().map((e) => e.id)).toEqual(['a', 'b']);
    expect(control.getExpert('c')).toMatchObject({ status: 'retired', retireReason: 'idle', retiredAt: 1_012_000 });
    control.close();
  });

  it('counts fallback tries as use and as load: an expert that answers every query as a fallback is not idle', async () => {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    control.enableDynamicManagement({ ...OFF, idleMs: 30_000 });
    const monitor = control.createMonitor();
    // A minute of traffic: every query is routed to a, which fails; its first fallback answers in 3 s.
    let fallback = '';
    for (let i = 0; i < 20; i++) {
      const d = control.router.routeQuery('alpha alpha');
      fallback = d.fallbacks[0]!;
      control.router.recordOutcome(d.id, { success: false, latencyMs: 100 });
      control.router.recordOutcome(d.id, { success: true, latencyMs: 3000, expertId: fallback });
      c.now += 3000;
    }
    const other = ['b', 'c'].find((id) => id !== fallback)!;
    const status = control.getExpertStatus();
    const served = status.experts.find((e) => e.id === fallback)!;
    expect(served.total).toEqual({ routed: 0, fallbacks: 20, outcomes: 20, successes: 20, failures: 0, latencyMs: 60_000, qualitySum: 0, qualityCount: 0 });
    // Little's law on its attempts: 20 in 60 s, 3 s each → 1 Erlang.
    expect(served.load).toBeCloseTo(1, 12);
    expect(served.lastUsedAt).toBe(1_057_000);
    expect(status.experts.find((e) => e.id === 'a')!.load).toBeCloseTo((20 / 60_000) * 100, 12);
    monitor.sample();
    const analysis = monitor.analyzeExpertPerformance();
    expect(analysis[fallback]!.reasons).not.toContain('idle');
    expect(analysis[fallback]!.utilization).toBeCloseTo(1, 12);
    expect(analysis[other]!.reasons).toContain('idle');
    expect(control.optimizeExpertAllocation().retire).toEqual([other]);
    // The idle rule retires only the expert nobody used.
    expect(control.runLifecycle().retired).toEqual([{ id: other, reason: 'idle', idleForMs: 60_000 }]);
    // routeWithFallback's fallback tries count the same way.
    await control.router.routeWithFallback('alpha alpha', async (e) => {
      if (e.id === 'a') throw new Error('down');
      return e.id;
    });
    expect(control.getExpertStatus().experts.find((e) => e.id === fallback)!.total.fallbacks).toBe(21);
    control.close();
  });

  it('retires experts whose failure rate over the window is above the threshold, with enough outcomes', () => {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    control.enableDynamicManagement({ ...OFF, maxFailureRate: 0.5, minOutcomes: 20 });
    drive(control, ['alpha alpha'], 20, (i) => ({ success: i >= 11, latencyMs: 10 })); // 11 of 20 failed: 0.55
    drive(control, ['beta beta'], 20, (i) => ({ success: i >= 10, latencyMs: 10 })); // 10 of 20: 0.5, not above
    drive(control, ['gamma gamma'], 19, () => ({ success: false, latencyMs: 10 })); // too few outcomes
    const retired: string[] = [];
    control.on('retired', (e) => retired.push(e.id));
    const report = control.runLifecycle();
    expect(report.retired).toEqual([{ id: 'a', reason: 'failing', failureRate: 0.55, outcomes: 20 }]);
    expect(report.window).toEqual({ from: 1_000_000, to: 1_000_000, routed: 59, outcomes: 59 });
    expect(retired).toEqual(['a']);
    // The next window starts empty: b's old failures no longer count.
    drive(control, ['beta beta'], 20, () => ({ success: true, latencyMs: 10 }));
    expect(control.runLifecycle().retired).toEqual([]);
    control.close();
  });

  it('merges experts whose routed traffic overlaps (cosine of routed-query terms) beyond the threshold', () => {
    const sql = DEFAULT_EXPERTS.find((p) => p.id === 'sql')!;
    const python = DEFAULT_EXPERTS.find((p) => p.id === 'python')!;
    const javascript = DEFAULT_EXPERTS.find((p) => p.id === 'javascript')!;
    const control = new MoEControlAPI({ routerOptions: { strategy: RoutingStrategy.LOAD_BALANCED, experts: [sql, python, javascript] } });
    // A second SQL expert with the same profile: LOAD_BALANCED alternates the SQL traffic between them.
    control.createExpert({ specialization: 'sql', baseModel: 'sqlcoder-15b', id: 'sql-2' });
    control.enableDynamicManagement({ ...OFF, mergeOverlap: 0.8, minMergeQueries: 10 });
    const routed = [...drive(control, SQL, 42, () => ({ success: true, latencyMs: 50 })), ...drive(control, PYTHON, 25, () => ({ success: true, latencyMs: 50 }))];
    expect(routed.filter(([id]) => id === 'sql').length).toBe(21);
    expect(routed.filter(([id]) => id === 'sql-2').length).toBe(21);
    expect(routed.filter(([id]) => id === 'python').length).toBe(25);
    // Reference overlap: cosine of the term counts of the queries each got.
    const hist = (id: string) => {
      const m = new Map<string, number>();
      for (const [e, text] of routed) if (e === id) for (const t of tokenize(text)) m.set(t, (m.get(t) ?? 0) + 1);
      return m;
    };
    const cosine = (a: Map<string, number>, b: Map<string, number>) => {
      let dot = 0;
      for (const [t, x] of a) dot += x * (b.get(t) ?? 0);
      const norm = (m: Map<string, number>) => Math.sqrt([...m.values()].reduce((s, x) => s + x * x, 0));
      return dot / (norm(a) * norm(b));
    };
    const expected = cosine(hist('sql'), hist('sql-2'));
    expect(expected).toBeGreaterThan(0.8);
    expect(cosine(hist('sql'), hist('python'))).toBeLessThan(0.2);

    const report = control.runLifecycle();
    expect(report.merged).toHaveLength(1);
    expect(report.merged[0]).toMatchObject({ into: 'sql', from: 'sql-2' });
    expect(report.merged[0]!.overlap).toBeCloseTo(expected, 12);
    expect(control.getExpert('sql-2')).toMatchObject({ status: 'retired', retireReason: 'merged', mergedInto: 'sql' });
    const merged = control.getExpertStatus().experts.find((e) => e.id === 'sql')!;
    expect(merged).toMatchObject({ replicas: 2 });
    expect(merged.total.routed).toBe(42);
    expect(control.router.experts().map((p) => p.id)).toEqual(['sql', 'python', 'javascript']);
    control.close();
  });

  it('counts query terms only once a policy merges: a window not counted from its start merges nothing', () => {
    const sql = DEFAULT_EXPERTS.find((p) => p.id === 'sql')!;
    const control = new MoEControlAPI({ routerOptions: { strategy: RoutingStrategy.LOAD_BALANCED, experts: [sql, { ...sql, id: 'sql-2' }] } });
    // No policy yet: the traffic's terms are not counted (tokenizing costs about 2 µs a query).
    drive(control, SQL, 42, () => ({ success: true, latencyMs: 50 }));
    const first = control.runLifecycle(); // the default policy merges, but this window has no terms
    expect(first.window.routed).toBe(42);
    expect(first.merged).toEqual([]);
    drive(control, SQL, 42, () => ({ success: true, latencyMs: 50 }));
    expect(control.runLifecycle().merged).toMatchObject([{ into: 'sql', from: 'sql-2' }]);
    control.close();
  });

  it('detects drift of the routed query distribution on a shifted mix, not on an unshifted one', () => {
    const control = new MoEControlAPI();
    control.enableDynamicManagement({ ...OFF, driftThreshold: 0.1, minDriftQueries: 20 });
    const drifts: number[] = [];
    control.on('drift', (d) => drifts.push(d.divergence));
    drive(control, PYTHON, 20, null);
    drive(control, SQL, 20, null);
    expect(control.runLifecycle().drift).toBeNull(); // no previous window yet

    // The same mix, sampled again (22 / 18): no drift.
    drive(control, PYTHON, 22, null);
    drive(control, SQL, 18, null);
    const same = control.runLifecycle().drift!;
    expect(same.divergence).toBeCloseTo(jsd([20, 20], [22, 18]), 12);
    expect(same).toMatchObject({ detected: false, threshold: 0.1, previousQueries: 40, currentQueries: 40, poolChanged: false });

    // The mix shifts to SQL only.
    drive(control, SQL, 40, null);
    const shifted = control.runLifecycle().drift!;
    expect(shifted.divergence).toBeCloseTo(jsd([22, 18], [0, 40]), 12);
    expect(shifted.detected).toBe(true);
    expect(shifted.shifts[0]).toEqual({ id: 'python', before: 22 / 40, after: 0 });
    expect(drifts).toEqual([shifted.divergence]);

    // Too few queries in a window: not measured.
    drive(control, SQL, 10, null);
    expect(control.runLifecycle().drift).toBeNull();
    control.close();
  });

  it('flags experts that need attention: targets missed, overloaded, cooling down', () => {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    control.enableDynamicManagement({ ...OFF, minOutcomes: 10 });
    const t = control.createExpert({ specialization: 'delta', baseModel: 'm', keywords: ['delta'], capacity: 1, performanceTargets: { accuracy: 0.9, latency: 100 } });
    const attention: string[] = [];
    control.on('attention', (a) => attention.push(`${a.id}:${a.reasons.join(',')}`));
    // 10 queries of 300 ms in a 2 s window: 1.5 Erlangs on one slot; 70 % success.
    drive(control, ['delta delta'], 10, (i) => ({ success: i < 7, latencyMs: 300 }));
    const d = control.router.routeQuery('alpha alpha');
    control.router.recordOutcome(d.id, { success: false, latencyMs: 5, nonRetryable: true });
    c.now += 2_000;
    const report = control.runLifecycle();
    expect(report.attention).toEqual([
      { id: 'a', reasons: ['cooling-down'] },
      { id: t.id, reasons: ['below-accuracy-target', 'above-latency-target', 'overloaded'] },
    ]);
    expect(attention).toEqual(['a:cooling-down', 'delta:below-accuracy-target,above-latency-target,overloaded']);
    control.close();
  });

  it('applies an allocation plan on each pass with dynamicExpertAllocation', () => {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, dynamicExpertAllocation: true, replicaBudget: 6, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    control.enableDynamicManagement({ ...OFF, targetUtilization: 0.75 });
    for (let i = 0; i < 30; i++) {
      drive(control, ['alpha alpha'], 1, () => ({ success: true, latencyMs: 6000 }));
      c.now += 1000;
    }
    const expected = control.optimizeExpertAllocation({ targetUtilization: 0.75, retireIdle: false });
    const report = control.runLifecycle();
    expect(report.allocation!.replicas).toEqual(expected.replicas);
    expect(report.allocation!.replicas).toEqual({ a: 4, b: 1, c: 1 }); // 3 Erlangs: 4 slots at 0.75
    expect(report.allocation!.retire).toEqual([]);
    expect(control.getExpert('a').replicas).toBe(4);
    control.close();
  });

  it('finishes a timer pass whatever its listeners throw, and never lets the timer throw', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const control = new MoEControlAPI({ dynamicExpertAllocation: true, routerOptions: { experts: ABC, ...NEVER_COOL } });
      const reports: LifecycleReport[] = [];
      const attention: string[] = [];
      const errors: string[] = [];
      control.on('attention', () => {
        throw new Error('attention listener bug');
      });
      control.on('attention', (a) => attention.push(a.id)); // still called
      control.on('lifecycle', (r) => reports.push(r));
      control.on('error', (e: Error) => errors.push(e.message));
      control.enableDynamicManagement({ ...OFF, intervalMs: 1000, minOutcomes: 1 });
      // a is overloaded: 10 queries of 10 s within the first second, on one slot.
      drive(control, ['alpha alpha'], 10, () => ({ success: true, latencyMs: 10_000 }));
      vi.advanceTimersByTime(1000);
      expect(attention).toEqual(['a']);
      expect(reports).toHaveLength(1);
      expect(reports[0]!.attention).toEqual([{ id: 'a', reasons: ['overloaded'] }]);
      // The allocation that follows the attention flags was made and applied.
      expect(reports[0]!.allocation!.replicas).toEqual({ a: 30, b: 1, c: 1 });
      expect(control.getExpert('a').replicas).toBe(30);
      expect(errors).toEqual(['attention listener bug']);

      // An 'error' listener that throws does not escape the timer either.
      control.on('lifecycle', () => {
        throw new Error('lifecycle listener bug');
      });
      control.on('error', () => {
        throw new Error('error listener bug');
      });
      // …its error becomes a process warning.
      const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
      expect(() => vi.advanceTimersByTime(1000)).not.toThrow();
      expect(warn.mock.calls.map((c) => c[0])).toEqual(["an 'error' listener threw: error listener bug"]);
      expect(reports).toHaveLength(2);
      expect(errors).toEqual(['attention listener bug', 'lifecycle listener bug']);
      control.close();
    } finally {
      vi.restoreAllMocks();
      vi.useRealTimers();
    }
  });

  it('runs a manual pass to its end whatever its listeners throw, and returns its report', () => {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts: ABC, clock: c.fn } });
    control.enableDynamicManagement({ ...OFF, idleMs: 10_000 });
    const seen: string[] = [];
    const errors: string[] = [];
    control.on('retired', (e) => {
      seen.push(e.id);
      throw new Error(`listener bug on ${e.id}`);
    });
    control.on('lifecycle', (r) => seen.push(`lifecycle:${r.retired.length}`));
    control.on('error', (e: Error) => errors.push(e.message));
    c.now += 5_000;
    drive(control, ['beta beta'], 1, null);
    c.now += 10_000;
    // A listener that throws changes nothing for the caller: its error goes to 'error'.
    expect(control.runLifecycle().retired.map((r) => r.id)).toEqual(['a', 'c']);
    expect(errors).toEqual(['listener bug on a', 'listener bug on c']);
    // Both idle experts were retired and every listener was called, after the pass.
    expect(seen).toEqual(['a', 'c', 'lifecycle:2']);
    expect(control.getAllExperts().map((e) => e.id)).toEqual(['b']);
    control.close();
  });

  it('runs on an unref’d timer until disabled or closed, and checks its policy', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const control = new MoEControlAPI({ routerOptions: { experts: ABC } });
      const retired: string[] = [];
      control.on('retired', (e) => retired.push(e.id));
      control.enableDynamicManagement({ ...OFF, intervalMs: 1000, idleMs: 2500 });
      setTimeout(() => drive(control, ['beta beta'], 1, null), 1500);
      vi.advanceTimersByTime(2000);
      expect(retired).toEqual([]);
      vi.advanceTimersByTime(1000); // t = 3 s: a and c idle 3 s; b routed at 1.5 s; a goes, then c
      expect(retired).toEqual(['a', 'c']);
      control.disableDynamicManagement();
      vi.advanceTimersByTime(10_000);
      expect(control.getAllExperts().map((e) => e.id)).toEqual(['b']);

      expect(() => control.enableDynamicManagement({ intervalMs: 0 })).toThrow(new RangeError('Expected integer in [1, 2147483647] for policy.intervalMs but received 0 of type number'));
      expect(() => control.enableDynamicManagement({ maxFailureRate: 2 })).toThrow(new RangeError('Expected number in [0, 1] for policy.maxFailureRate but received 2 of type number'));
      expect(() => control.enableDynamicManagement({ driftThreshold: 0 })).toThrow(new RangeError('Expected number in (0, 1] for policy.driftThreshold but received 0 of type number'));
      expect(() => control.enableDynamicManagement({ idleMs: -1 })).toThrow(new RangeError('Expected finite number > 0 for policy.idleMs but received -1 of type number'));
      expect(() => control.enableDynamicManagement({ idle: 5 } as never)).toThrow(/^Unknown option 'idle' in policy/);
      expect(() => control.runLifecycle(Number.NaN)).toThrow(new RangeError('Expected finite number for now but received NaN of type number'));
      control.close();
    } finally {
      vi.useRealTimers();
    }
  });
});
