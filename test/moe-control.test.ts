import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_EXPERTS, type ExpertProfile, MoEControlAPI, RewiringExperts } from '../src/index';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-moe-control-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function clock(start = 1_000_000) {
  const c = { now: start, fn: () => c.now };
  return c;
}

const NEVER_COOL = { health: { failureRate: 1 } };
const SQL = 'This LEFT JOIN query is slow on Postgres';

/** Three experts with disjoint vocabularies, capacity 1 each: queries go where their word says. */
const ABC: ExpertProfile[] = [
  { id: 'a', domain: 'alpha', description: 'alpha questions', keywords: ['alpha'], capacity: 1 },
  { id: 'b', domain: 'beta', description: 'beta questions', keywords: ['beta'], capacity: 1 },
  { id: 'c', domain: 'gamma', description: 'gamma questions', keywords: ['gamma'], capacity: 1 },
];

/** Routes `text` n times, recording `outcome` for each; returns the experts chosen. */
function drive(control: MoEControlAPI, text: string, n: number, outcome: { success: boolean; latencyMs: number } | null, c?: { now: number }, stepMs = 0): string[] {
  const chosen: string[] = [];
  for (let i = 0; i < n; i++) {
    const d = control.router.routeQuery(text);
    chosen.push(d.expertId);
    if (outcome) control.router.recordOutcome(d.id, outcome);
    if (c) c.now += stepMs;
  }
  return chosen;
}

describe('MoEControlAPI registry', () => {
  it('adopts the router experts, builds experts from specializations, and enforces numExperts', () => {
    const control = new MoEControlAPI();
    expect(control.numExperts).toBe(32);
    expect(control.getAllExperts().map((e) => e.id)).toEqual(DEFAULT_EXPERTS.map((e) => e.id));
    expect(control.getExpert('sql')).toMatchObject({ specialization: 'sql', baseModel: null, status: 'active', replicas: 1, capacity: 4 });
    control.close();

    const seeded = new MoEControlAPI({ expertSpecializations: ['general', 'mathematics', 'sql'] });
    const s = seeded.getExpertStatus();
    expect(s.activeCount).toBe(3);
    expect(s.specializedCount).toBe(2);
    expect(s.specializations).toEqual({ general: 1, mathematics: 1, sql: 1 });
    // The sql expert takes the seed profile of that domain: its words route SQL queries.
    expect(seeded.router.routeQuery(SQL).expertId).toBe('sql');
    seeded.close();

    // With a router of its own, missing specializations are added to it.
    const router = new RewiringExperts();
    const withRouter = new MoEControlAPI({ router, expertSpecializations: ['sql', 'rust'], numExperts: 7 });
    expect(router.experts().map((e) => e.id)).toEqual([...DEFAULT_EXPERTS.map((e) => e.id), 'rust']);
    expect(withRouter.router).toBe(router);
    withRouter.close();

    expect(() => new MoEControlAPI({ numExperts: 4 })).toThrow(new RangeError('Expected integer >= 6 (the experts the pool starts with) for options.numExperts but received 4 of type number'));
    expect(() => new MoEControlAPI({ numExperts: 0 })).toThrow(new RangeError('Expected integer in [1, 4096] for options.numExperts but received 0 of type number'));
    expect(() => new MoEControlAPI({ numExpert: 4 } as never)).toThrow(/^Unknown option 'numExpert' in options/);
    expect(() => new MoEControlAPI({ router: {} as never })).toThrow(new TypeError('Expected RewiringExperts for options.router but received object'));
    expect(() => new MoEControlAPI({ router, routerOptions: {} })).toThrow(new TypeError('Expected options.router or options.routerOptions, not both'));
    expect(() => new MoEControlAPI({ routerOptions: { strategy: 'random' as never } })).toThrow(
      new RangeError("Expected one of 'performance_based', 'load_balanced', 'adaptive', 'predictive' for options.routerOptions.strategy but received 'random' of type string"),
    );
    expect(() => new MoEControlAPI({ expertSpecializations: ['sql', 'sql'] })).toThrow(
      new RangeError("Expected a specialization not listed before for options.expertSpecializations[1] but received 'sql' of type string"),
    );
    expect(() => new MoEControlAPI({ loadBalancing: { rate: -1 } })).toThrow(new RangeError('Expected finite number > 0 for options.loadBalancing.rate but received -1 of type number'));
    expect(() => new MoEControlAPI({ loadWindowMs: 10_000, retainMs: 5_000 })).toThrow(
      new RangeError('Expected integer in [1, 5000] for options.loadWindowMs but received 10000 of type number'),
    );
  });

  it('creates experts (no training: the training-data path is checked and recorded), up to numExperts', () => {
    const c = clock();
    const control = new MoEControlAPI({ numExperts: 8, now: c.fn });
    const corpus = join(dir, 'quantum_physics_corpus.jsonl');
    writeFileSync(corpus, '{"text":"qubits"}\n');
    const created: string[] = [];
    control.on('created', (e) => created.push(e.id));
    const q = control.createExpert({
      specialization: 'quantum_physics',
      baseModel: 'capibara_base',
      trainingData: corpus,
      performanceTargets: { accuracy: 0.95, latency: 150, specializationScore: 0.9 },
      keywords: ['qubit', 'entanglement', 'superposition'],
    });
    expect(q).toMatchObject({
      id: 'quantum_physics',
      specialization: 'quantum_physics',
      baseModel: 'capibara_base',
      trainingData: { path: resolve(corpus), bytes: 18 },
      performanceTargets: { accuracy: 0.95, latency: 150, specializationScore: 0.9 },
      createdAt: c.now,
      status: 'active',
    });
    expect(created).toEqual(['quantum_physics']);
    expect(control.router.routeQuery('why does entanglement break with a qubit measurement').expertId).toBe('quantum_physics');
    // A taken id gets a suffix; the seed profile of the domain is used.
    expect(control.createExpert({ specialization: 'sql', baseModel: 'sqlcoder' }).id).toBe('sql-2');
    const sql2 = control.router.experts().find((p) => p.id === 'sql-2')!;
    expect(sql2.keywords).toEqual(DEFAULT_EXPERTS.find((p) => p.id === 'sql')!.keywords);
    expect(control.getExpertStatus().activeCount).toBe(8);
    expect(() => control.createExpert({ specialization: 'go', baseModel: 'm' })).toThrow(
      new RangeError('MoEControlAPI.createExpert: the pool is full (8 active experts, numExperts 8); retire or merge experts first'),
    );

    const missing = join(dir, 'missing.jsonl');
    expect(() => control.createExpert({ specialization: 'go', baseModel: 'm', trainingData: missing })).toThrow(
      new RangeError(`Expected path of an existing file or directory for options.trainingData but received '${missing.length > 40 ? `${missing.slice(0, 40)}…` : missing}' of type string`),
    );
    expect(() => control.createExpert({ baseModel: 'm' } as never)).toThrow(new TypeError('Expected non-empty string for options.specialization but received undefined'));
    expect(() => control.createExpert({ specialization: 'go' } as never)).toThrow(new TypeError('Expected non-empty string for options.baseModel but received undefined'));
    expect(() => control.createExpert({ specialization: 'go', baseModel: 'm', performanceTargets: { accuracy: 2 } })).toThrow(
      new RangeError('Expected number in [0, 1] for options.performanceTargets.accuracy but received 2 of type number'),
    );
    expect(() => control.createExpert({ specialization: 'go', baseModel: 'm', id: 'sql' })).toThrow(
      new RangeError("Expected an id no expert of the registry has for options.id but received 'sql' of type string"),
    );
    expect(() => control.createExpert({ specialization: 'go', baseModel: 'm', capacity: 0 })).toThrow(
      new RangeError('Expected integer >= 1 for options.capacity but received 0 of type number'),
    );
    control.close();
  });

  it('retires experts, never the last one, and names unknown ids', () => {
    const control = new MoEControlAPI({ routerOptions: { experts: ABC } });
    const retired: string[] = [];
    control.on('retired', (e) => retired.push(`${e.id}:${e.retireReason}`));
    expect(control.retireExpert('c')).toMatchObject({ id: 'c', status: 'retired', retireReason: 'manual' });
    expect(control.router.experts().map((e) => e.id)).toEqual(['a', 'b']);
    expect(() => control.retireExpert('c')).toThrow(new RangeError("Expected id of an active expert (a, b) for id but received 'c' of type string"));
    expect(() => control.retireExpert('zz')).toThrow(new RangeError("Expected id of an active expert (a, b) for id but received 'zz' of type string"));
    expect(() => control.getExpert('zz')).toThrow(new RangeError("Expected id of an expert of the registry (a, b, c) for id but received 'zz' of type string"));
    control.retireExpert('b');
    expect(() => control.retireExpert('a')).toThrow(new RangeError("MoEControlAPI.retireExpert: 'a' is the last active expert (the router needs one)"));
    expect(retired).toEqual(['c:manual', 'b:manual']);
    expect(control.getAllExperts().map((e) => e.id)).toEqual(['a']);
    expect(control.getAllExperts({ includeRetired: true }).map((e) => `${e.id}:${e.status}`)).toEqual(['a:active', 'b:retired', 'c:retired']);
    expect(control.getExpertStatus()).toMatchObject({ activeCount: 1, retiredCount: 2 });
    control.close();
  });

  it('merges experts: union profile, summed replicas, inherited traffic', () => {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    drive(control, 'alpha alpha', 3, { success: true, latencyMs: 100 });
    drive(control, 'beta beta', 2, { success: false, latencyMs: 300 });
    const events: Array<[string, string[]]> = [];
    control.on('merged', (e, from) => events.push([e.id, from]));
    const m = control.mergeExperts(['a', 'b']);
    expect(m).toMatchObject({ id: 'a', replicas: 2, mergedFrom: ['b'], status: 'active' });
    expect(control.getExpert('b')).toMatchObject({ status: 'retired', retireReason: 'merged', mergedInto: 'a' });
    expect(events).toEqual([['a', ['b']]]);
    const profile = control.router.experts().find((p) => p.id === 'a')!;
    expect(profile).toMatchObject({ description: 'alpha questions beta questions', keywords: ['alpha', 'beta'], capacity: 2 });
    expect(control.router.routeQuery('beta beta').expertId).toBe('a');
    const a = control.getExpertStatus().experts.find((e) => e.id === 'a')!;
    expect(a.total).toEqual({ routed: 6, outcomes: 5, successes: 3, failures: 2, latencyMs: 900, qualitySum: 0, qualityCount: 0 });
    expect(a.successRate).toBe(3 / 5);

    // A new id for the merged expert retires every source.
    control.createExpert({ specialization: 'delta', baseModel: 'm', keywords: ['delta'] });
    const n = control.mergeExperts(['c', 'delta'], { id: 'cd', specialization: 'gamma-delta' });
    expect(n).toMatchObject({ id: 'cd', specialization: 'gamma-delta', replicas: 2, mergedFrom: ['c', 'delta'] });
    expect(control.router.experts().map((e) => e.id)).toEqual(['a', 'cd']);

    expect(() => control.mergeExperts(['a'])).toThrow(new RangeError('Expected array of at least 2 expert ids for ids but received Array of length 1'));
    expect(() => control.mergeExperts(['a', 'a'])).toThrow(new RangeError('Expected distinct expert ids for ids but received Array of length 2'));
    expect(() => control.mergeExperts(['a', 'x'])).toThrow(new RangeError("Expected id of an active expert (a, cd) for ids[1] but received 'x' of type string"));
    expect(() => control.mergeExperts('a' as never)).toThrow(new TypeError("Expected array of at least 2 expert ids for ids but received 'a' of type string"));
    expect(() => control.mergeExperts(['a', 'cd'], { id: 'b' })).toThrow(
      new RangeError("Expected one of ids, or an id no expert of the registry has for options.id but received 'b' of type string"),
    );
    control.close();
  });

  it('follows experts added to or removed from the router directly', () => {
    const control = new MoEControlAPI({ routerOptions: { experts: ABC } });
    control.router.addExpert({ id: 'd', domain: 'delta', description: 'delta questions' });
    control.router.removeExpert('b');
    const retired: string[] = [];
    control.on('retired', (e) => retired.push(`${e.id}:${e.retireReason}`));
    expect(control.getAllExperts().map((e) => `${e.id}:${e.specialization}`)).toEqual(['a:alpha', 'c:gamma', 'd:delta']);
    expect(retired).toEqual(['b:removed-from-router']);
    control.close();
  });
});

describe('MoEControlAPI.getExpertStatus', () => {
  it('reports counters, load, utilisation and MaxVio measured from the traffic', () => {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    drive(control, 'alpha alpha', 6, { success: true, latencyMs: 2000 }, c, 1000);
    drive(control, 'beta beta', 3, { success: false, latencyMs: 1000 }, c, 1000);
    const open = control.router.routeQuery('beta beta'); // in flight, no outcome yet
    const s = control.getExpertStatus();
    expect(s.windowRouted).toBe(10);
    expect(s.loadDistribution).toEqual({ a: 0.6, b: 0.4, c: 0 });
    // Per replica loads 6, 4, 0: mean 10/3, MaxVio = (6 − 10/3) / (10/3).
    expect(s.maxVio).toBeCloseTo((6 - 10 / 3) / (10 / 3), 12);
    const [a, b, cc] = s.experts;
    expect(a!.window).toEqual({ routed: 6, outcomes: 6, successes: 6, failures: 0, latencyMs: 12_000, qualitySum: 0, qualityCount: 0 });
    // Little's law over the 60 s window: λ = 6 / 60,000 ms, W = 2000 ms → 0.2 Erlangs, capacity 1.
    expect(a!.load).toBeCloseTo(0.2, 12);
    expect(a!.utilization).toBeCloseTo(0.2, 12);
    expect(b!.load).toBeCloseTo((4 / 60_000) * 1000, 12);
    expect(b!).toMatchObject({ inFlight: 1, successRate: 0, meanLatencyMs: 1000, lastRoutedAt: c.now });
    expect(cc!).toMatchObject({ load: 0, utilization: 0, lastRoutedAt: null, inFlight: 0 });
    // The window slides: a minute later nothing is left in it, the totals stay.
    c.now += 61_000;
    const later = control.getExpertStatus();
    expect(later.windowRouted).toBe(0);
    expect(later.maxVio).toBeNaN();
    expect(later.experts[0]!.total.routed).toBe(6);
    control.router.recordOutcome(open.id, { success: true, latencyMs: 10 });
    control.close();
  });
});

describe('MoEControlAPI.optimizeExpertAllocation', () => {
  function loaded() {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, replicaBudget: 6, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    // a: 30 queries of 6 s in the minute → 3 Erlangs; b: 10 → 1 Erlang; c: idle.
    drive(control, 'alpha alpha', 30, { success: true, latencyMs: 6000 }, c, 1000);
    drive(control, 'beta beta', 10, { success: true, latencyMs: 6000 }, c, 1000);
    return { control, c };
  }

  it('replicates hot experts greedily (EPLB) within the budget and computes the expected utilisation', () => {
    const { control } = loaded();
    const plan = control.optimizeExpertAllocation({ targetUtilization: 0.75, rebalancingStrategy: 'load_based' });
    // By hand: a 1→2 (3 → 1.5), a→3 (1.0), tie a/b at 1.0 goes to a (registry order) → a 4 (0.75),
    // b→2 (0.5): 6 replicas, the budget. Expected utilisation = Σ load / Σ slots = 4 / 6.
    expect(plan.replicas).toEqual({ a: 4, b: 2 });
    expect(plan.retire).toEqual(['c']);
    expect(plan.replicasUsed).toBe(6);
    expect(plan.expectedUtilization).toBeCloseTo(4 / 6, 12);
    expect(plan.maxUtilization).toBeCloseTo(0.75, 12);
    expect(plan.meetsTarget).toBe(true);
    const a = plan.experts[0]!;
    expect(a.load).toBeCloseTo(3, 12);
    expect(a.utilizationBefore).toBeCloseTo(3, 12);
    expect(a.utilizationAfter).toBeCloseTo(0.75, 12);

    // A tighter budget: the target cannot be met and the plan says so.
    const short = control.optimizeExpertAllocation({ targetUtilization: 0.5, replicaBudget: 4 });
    expect(short.replicas).toEqual({ a: 3, b: 1 });
    expect(short.meetsTarget).toBe(false);
    expect(short.maxUtilization).toBeCloseTo(1, 12);

    // Applying records replicas, scales router capacity and retires the idle expert.
    const allocated: unknown[] = [];
    control.on('allocated', (p) => allocated.push(p));
    control.applyAllocationPlan(plan);
    expect(allocated).toEqual([plan]);
    expect(control.getExpert('a').replicas).toBe(4);
    expect(control.router.experts().map((p) => [p.id, p.capacity])).toEqual([['a', 4], ['b', 2]]);
    expect(control.getExpert('c')).toMatchObject({ status: 'retired', retireReason: 'allocation' });
    expect(control.getExpertStatus().experts[0]!.utilization).toBeCloseTo(0.75, 12);
    control.close();
  });

  it("'performance_based' gives a short budget to the hot expert that answers well; a workload overrides the measure", () => {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    drive(control, 'alpha alpha', 10, { success: false, latencyMs: 12_000 }, c, 100);
    drive(control, 'beta beta', 10, { success: true, latencyMs: 12_000 }, c, 100);
    // Both at 2 Erlangs: load_based breaks the tie by registry order, performance_based by success.
    expect(control.optimizeExpertAllocation({ replicaBudget: 3, rebalancingStrategy: 'load_based' }).replicas).toEqual({ a: 2, b: 1 });
    const perf = control.optimizeExpertAllocation({ replicaBudget: 3, rebalancingStrategy: 'performance_based' });
    expect(perf.replicas).toEqual({ a: 1, b: 2 });
    expect(perf.experts.map((e) => e.successEstimate)).toEqual([1 / 12, 11 / 12, 0.5]);
    const forecast = control.optimizeExpertAllocation({ currentWorkload: { c: 3 }, retireIdle: false, replicaBudget: 20 });
    expect(forecast.replicas).toEqual({ a: 3, b: 3, c: 4 });

    expect(() => control.optimizeExpertAllocation({ currentWorkload: { zz: 1 } })).toThrow(
      new RangeError("Expected id of an active expert (a, b, c) for options.currentWorkload key but received 'zz' of type string"),
    );
    expect(() => control.optimizeExpertAllocation({ currentWorkload: { a: Number.NaN } })).toThrow(
      new RangeError('Expected finite number >= 0 for options.currentWorkload.a but received NaN of type number'),
    );
    expect(() => control.optimizeExpertAllocation({ targetUtilization: 0 })).toThrow(new RangeError('Expected number in (0, 1] for options.targetUtilization but received 0 of type number'));
    expect(() => control.optimizeExpertAllocation({ rebalancingStrategy: 'fastest' as never })).toThrow(
      new RangeError("Expected one of 'load_based', 'performance_based' for options.rebalancingStrategy but received 'fastest' of type string"),
    );
    expect(() => control.optimizeExpertAllocation({ replicaBudget: 1 })).toThrow(new RangeError('Expected integer >= 2 (one replica per expert kept) for options.replicaBudget but received 1 of type number'));
    expect(() => control.applyAllocationPlan({ replicas: { a: 0 }, retire: [] })).toThrow(new RangeError('Expected integer >= 1 for plan.replicas.a but received 0 of type number'));
    expect(() => control.applyAllocationPlan({ replicas: {}, retire: ['a', 'b', 'c'] })).toThrow(new RangeError('MoEControlAPI.applyAllocationPlan: the plan retires every active expert'));
    control.close();
  });
});

describe('MoEControlAPI load balancing', () => {
  // Two experts with the same profile text and no outcomes yet (so no learned difference):
  // without balancing the first always wins the tie; the bias is what moves traffic.
  const sql = DEFAULT_EXPERTS.find((p) => p.id === 'sql')!;
  const build = (loadBalancing: false | { rate: number; batchQueries: number; maxBias: number }) =>
    new MoEControlAPI({ loadBalancing, routerOptions: { experts: [sql, { ...sql, id: 'sql-2' }] } });

  it('feeds the loss-free bias controller with the request load of each batch', () => {
    const plain = build(false);
    expect(new Set(drive(plain, SQL, 30, null))).toEqual(new Set(['sql']));
    expect(plain.getExpertStatus().maxVio).toBe(1);
    plain.close();

    const balanced = build({ rate: 0.01, batchQueries: 10, maxBias: 0.05 });
    expect(drive(balanced, SQL, 10, null).every((id) => id === 'sql')).toBe(true);
    // After the first batch (loads 10 and 0, mean 5): b = ∓γ, from that batch only.
    const bias = balanced.getExpertStatus().experts.map((e) => e.bias);
    expect(bias[0]).toBeCloseTo(-0.01, 7);
    expect(bias[1]).toBeCloseTo(0.01, 7);
    const d = balanced.router.routeQuery(SQL);
    expect(d.expertId).toBe('sql-2');
    expect(d.reasons.bias).toBeCloseTo(0.01, 7);
    const rest = drive(balanced, SQL, 89, null);
    const share2 = [d.expertId, ...rest].filter((id) => id === 'sql-2').length / 90;
    expect(share2).toBeGreaterThan(0.3);
    expect(share2).toBeLessThan(0.7);
    expect(balanced.getExpertStatus().maxVio).toBeLessThan(0.5);
    balanced.close();
    // Closing removes the bias from the router.
    expect(balanced.router.routeQuery(SQL).reasons.bias).toBeUndefined();
  });

  it('clips the bias to ±maxBias', () => {
    const control = build({ rate: 0.01, batchQueries: 10, maxBias: 0.004 });
    drive(control, SQL, 10, null);
    const bias = control.getExpertStatus().experts.map((e) => e.bias);
    expect(bias[0]).toBeCloseTo(-0.004, 7);
    expect(bias[1]).toBeCloseTo(0.004, 7);
    control.close();
  });
});

describe('MoEControlAPI.close', () => {
  it('stops the lifecycle timer, detaches from the router, and refuses later calls', () => {
    vi.useFakeTimers();
    try {
      const control = new MoEControlAPI();
      const passes: number[] = [];
      control.on('lifecycle', (r) => passes.push(r.at));
      control.enableDynamicManagement({ intervalMs: 1000, idleMs: false });
      vi.advanceTimersByTime(3000);
      expect(passes).toHaveLength(3);
      expect(control.router.listenerCount('routed')).toBe(1);
      control.close();
      control.close();
      expect(control.closed).toBe(true);
      vi.advanceTimersByTime(5000);
      expect(passes).toHaveLength(3);
      expect(control.router.listenerCount('routed')).toBe(0);
      expect(control.router.listenerCount('outcome')).toBe(0);
      expect(() => control.getExpertStatus()).toThrow(new Error('MoEControlAPI is closed'));
      expect(() => control.runLifecycle()).toThrow(new Error('MoEControlAPI is closed'));
      expect(control.router.routeQuery(SQL).expertId).toBe('sql'); // the router goes on
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('RewiringExperts hooks used by the control plane', () => {
  it("previewRoute decides without recording; setRelevanceBias steers selection only; 'routed' and 'outcome' events", () => {
    const router = new RewiringExperts();
    const events: string[] = [];
    router.on('routed', (d, text, ctx) => events.push(`routed ${d.expertId} ${text} ${JSON.stringify(ctx)}`));
    router.on('outcome', (id, o) => events.push(`outcome ${id === '' ? '' : 'id'} ${o.expertId} ${o.success}`));
    const p = router.previewRoute(SQL);
    expect(p).toMatchObject({ id: '', expertId: 'sql' });
    expect(router.getMetrics()).toMatchObject({ totalRouted: 0, inFlight: { sql: 0 } });
    expect(() => router.recordOutcome(p.id, { success: true, latencyMs: 1 })).toThrow(RangeError);
    const d = router.routeQuery(SQL, { domain: 'sql' });
    router.recordOutcome(d.id, { success: true, latencyMs: 5 });
    expect(events).toEqual([`routed sql ${SQL} {"domain":"sql"}`, 'outcome id sql true']);

    const unbiased = router.previewRoute(SQL);
    router.setRelevanceBias(new Map([['sql', -1]]));
    const biased = router.previewRoute(SQL);
    expect(biased.expertId).not.toBe('sql');
    expect(biased.reasons.bias).toBe(0);
    expect(biased.ranking.find((r) => r.id === 'sql')!.score).toBe(0); // relevance clipped at 0
    router.setRelevanceBias(null);
    expect(router.previewRoute(SQL)).toMatchObject({ expertId: 'sql', reasons: { relevance: unbiased.reasons.relevance } });
    expect(() => router.setRelevanceBias({ sql: 1 } as never)).toThrow(new TypeError('Expected Map of expert id to number, or null for bias but received object'));
    expect(() => router.setRelevanceBias(new Map([['sql', Number.NaN]]))).toThrow(new RangeError("Expected finite number for bias.get('sql') but received NaN of type number"));
  });
});
