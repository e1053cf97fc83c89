import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ClosedError, DEFAULT_EXPERTS, type ExpertProfile, MAX_REPLICA_BUDGET, MoEControlAPI, RewiringExperts, type RoutingDecision } from '../src/index';

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
    expect(() => new MoEControlAPI({ loadBalancing: { rate: -1 } })).toThrow(new RangeError('Expected number in (0, 1] for options.loadBalancing.rate but received -1 of type number'));
    expect(() => new MoEControlAPI({ loadWindowMs: 10_000, retainMs: 5_000 })).toThrow(
      new RangeError('Expected integer in [1000, 5000] for options.loadWindowMs but received 10000 of type number'),
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
    expect(a.total).toEqual({ routed: 6, fallbacks: 0, outcomes: 5, successes: 3, failures: 2, latencyMs: 900, qualitySum: 0, qualityCount: 0 });
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

  it('credits the merged expert with the outcomes of queries still in flight to its sources', () => {
    const control = new MoEControlAPI({ routerOptions: { experts: ABC, ...NEVER_COOL } });
    const d = control.router.routeQuery('alpha alpha');
    const e = control.router.routeQuery('alpha alpha');
    expect(d.expertId).toBe('a');
    control.mergeExperts(['b', 'a']); // a merged into b while d and e are in flight
    control.router.recordOutcome(d.id, { success: false, latencyMs: 100 });
    control.router.recordOutcome(d.id, { success: true, latencyMs: 300, expertId: 'c' });
    control.mergeExperts(['c', 'b']); // chains: a → b → c
    control.router.recordOutcome(e.id, { success: true, latencyMs: 50 });
    const [merged] = control.getExpertStatus().experts;
    expect(merged!.id).toBe('c');
    // All three queries' outcomes are c's now; the fallback try on c stays a fallback.
    expect(merged!.total).toEqual({ routed: 2, fallbacks: 1, outcomes: 3, successes: 2, failures: 1, latencyMs: 450, qualitySum: 0, qualityCount: 0 });
    control.close();
  });

  it('keeps the registry and the router agreeing on capacity whichever id the merge keeps', () => {
    const experts: ExpertProfile[] = [{ ...ABC[0]!, capacity: 1 }, { ...ABC[1]!, capacity: 4 }, ABC[2]!];
    const control = new MoEControlAPI({ routerOptions: { experts } });
    // Merged into ids[1]: capacity per replica is the first expert's, as documented.
    const m = control.mergeExperts(['a', 'b'], { id: 'b' });
    const routerCapacity = () => control.router.experts().find((p) => p.id === 'b')!.capacity;
    expect(m).toMatchObject({ id: 'b', capacity: 1, replicas: 2 });
    expect(routerCapacity()).toBe(2);
    expect(control.getExpert('b')).toMatchObject({ capacity: 1, replicas: 2 });
    control.applyAllocationPlan({ replicas: { b: 3 }, retire: [] });
    expect(routerCapacity()).toBe(3);
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

  it('adopts an expert added to the router beyond numExperts and reports the excess', () => {
    const control = new MoEControlAPI({ numExperts: 3, replicaBudget: 3, dynamicExpertAllocation: true, routerOptions: { experts: ABC } });
    expect(control.getExpertStatus().overCapacity).toBe(0);
    control.router.addExpert({ id: 'd', domain: 'delta', description: 'delta questions' });
    // The router routes to it either way: the registry counts it, and says the pool is over capacity.
    expect(control.getExpertStatus()).toMatchObject({ activeCount: 4, overCapacity: 1, capacity: 3 });
    expect(control.router.routeQuery('delta delta').expertId).toBe('d');
    expect(() => control.createExpert({ specialization: 'go', baseModel: 'm' })).toThrow(
      new RangeError('MoEControlAPI.createExpert: the pool is full (4 active experts, numExperts 3); retire or merge experts first'),
    );
    // The plan of a lifecycle pass names the budget the pool is over: the instance's.
    expect(() => control.runLifecycle()).toThrow(
      new RangeError('Expected integer >= 4 (one replica per expert kept) for MoEControlAPI.replicaBudget but received 3 of type number'),
    );
    control.retireExpert('d');
    expect(control.getExpertStatus().overCapacity).toBe(0);
    expect(control.runLifecycle().allocation!.replicas).toEqual({ a: 1, b: 1, c: 1 });
    control.close();
  });

  it('starts an id added back to the router after its retirement with fresh counters', () => {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    drive(control, 'alpha alpha', 5, { success: false, latencyMs: 9000 });
    control.retireExpert('a');
    c.now += 1000;
    control.router.addExpert(ABC[0]!);
    const a = control.getExpertStatus().experts.find((e) => e.id === 'a')!;
    expect(control.getExpert('a')).toMatchObject({ status: 'active', createdAt: c.now, retireReason: null });
    expect(a.total).toEqual({ routed: 0, fallbacks: 0, outcomes: 0, successes: 0, failures: 0, latencyMs: 0, qualitySum: 0, qualityCount: 0 });
    expect(a).toMatchObject({ window: { routed: 0 }, load: 0, lastUsedAt: null });
    drive(control, 'alpha alpha', 1, { success: true, latencyMs: 10 });
    expect(control.getExpertStatus().experts.find((e) => e.id === 'a')!.total).toMatchObject({ routed: 1, outcomes: 1, successes: 1 });
    control.close();
  });

  it('checks the replica budget against the pool at construction and in createExpert', () => {
    expect(() => new MoEControlAPI({ numExperts: 8, replicaBudget: 2, routerOptions: { experts: ABC } })).toThrow(
      new RangeError('Expected integer >= 3 (one replica per expert the pool starts with) for options.replicaBudget but received 2 of type number'),
    );
    expect(() => new MoEControlAPI({ replicaBudget: MAX_REPLICA_BUDGET + 1 })).toThrow(
      new RangeError('Expected integer in [1, 65536] for options.replicaBudget but received 65537 of type number'),
    );
    const control = new MoEControlAPI({ numExperts: 8, replicaBudget: 4, dynamicExpertAllocation: true, routerOptions: { experts: ABC } });
    control.createExpert({ specialization: 'delta', baseModel: 'm' });
    expect(() => control.createExpert({ specialization: 'epsilon', baseModel: 'm' })).toThrow(
      new RangeError('MoEControlAPI.createExpert: the replica budget is spent (4 active experts, one replica each, replicaBudget 4); retire or merge experts first'),
    );
    // Every lifecycle pass can still plan one replica per expert.
    expect(control.runLifecycle().allocation!.replicasUsed).toBe(4);
    control.close();
  });

  it('requires windows of at least one bucket', () => {
    expect(() => new MoEControlAPI({ bucketMs: 60_000, loadWindowMs: 1_000, routerOptions: { experts: ABC } })).toThrow(
      new RangeError('Expected integer in [60000, 3600000] for options.loadWindowMs but received 1000 of type number'),
    );
    const coarse = new MoEControlAPI({ bucketMs: 120_000, routerOptions: { experts: ABC } });
    expect(coarse.loadWindowMs).toBe(120_000); // the default window is never shorter than a bucket
    drive(coarse, 'alpha alpha', 3, null);
    expect(coarse.getExpertStatus().windowRouted).toBe(3);
    expect(() => coarse.optimizeExpertAllocation({ windowMs: 60_000 })).toThrow(
      new RangeError('Expected integer in [120000, 3600000] for options.windowMs but received 60000 of type number'),
    );
    expect(() => coarse.createCoordinator({ windowMs: 60_000 })).toThrow(
      new RangeError('Expected integer in [120000, 3600000] for options.windowMs but received 60000 of type number'),
    );
    coarse.close();
  });

  it('bounds the load-balancing rate and bias: relevance is in [0, 1]', () => {
    expect(() => new MoEControlAPI({ loadBalancing: { maxBias: 1e39 } })).toThrow(
      new RangeError('Expected number in (0, 1] for options.loadBalancing.maxBias but received 1e+39 of type number'),
    );
    expect(() => new MoEControlAPI({ loadBalancing: { rate: 1e39 } })).toThrow(
      new RangeError('Expected number in (0, 1] for options.loadBalancing.rate but received 1e+39 of type number'),
    );
    expect(() => new MoEControlAPI({ loadBalancing: { maxBias: 0 } })).toThrow(new RangeError('Expected number in (0, 1] for options.loadBalancing.maxBias but received 0 of type number'));
    new MoEControlAPI({ loadBalancing: { rate: 1, maxBias: 1 } }).close();
  });

  it('keeps ids and specializations such as __proto__ as plain keys of its records', () => {
    const odd: ExpertProfile[] = [
      { id: 'constructor', domain: '__proto__', description: 'alpha questions', keywords: ['alpha'] },
      { id: '__proto__', domain: 'toString', description: 'beta questions', keywords: ['beta'] },
    ];
    const control = new MoEControlAPI({ routerOptions: { experts: odd } });
    drive(control, 'alpha alpha', 3, { success: true, latencyMs: 10 });
    const s = control.getExpertStatus();
    expect(Object.keys(s.specializations)).toEqual(['__proto__', 'toString']);
    expect(s.specializations.__proto__).toBe(1);
    expect(Object.keys(s.loadDistribution)).toEqual(['constructor', '__proto__']);
    expect(s.loadDistribution.constructor).toBe(1);
    // A plan retiring an id that only the prototype of a plain object has is not refused.
    control.applyAllocationPlan({ replicas: { constructor: 2 }, retire: ['__proto__'] } as never);
    expect(control.getAllExperts().map((e) => `${e.id}:${e.replicas}`)).toEqual(['constructor:2']);
    expect(({} as Record<string, unknown>).cases).toBeUndefined();
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
    expect(a!.window).toEqual({ routed: 6, fallbacks: 0, outcomes: 6, successes: 6, failures: 0, latencyMs: 12_000, qualitySum: 0, qualityCount: 0 });
    // Little's law over the 9 s counted so far (the control plane is younger than the 60 s
    // window): λ = 6 / 9,000 ms, W = 2000 ms → 4/3 Erlangs, capacity 1.
    expect(a!.load).toBeCloseTo(4 / 3, 12);
    expect(a!.utilization).toBeCloseTo(4 / 3, 12);
    expect(b!.load).toBeCloseTo((4 / 9_000) * 1000, 12);
    expect(b!).toMatchObject({ inFlight: 1, successRate: 0, meanLatencyMs: 1000, lastUsedAt: c.now });
    expect(cc!).toMatchObject({ load: 0, utilization: 0, lastUsedAt: null, inFlight: 0 });
    // Once the control plane is older than the window, the window's full length counts.
    c.now += 51_000;
    expect(control.getExpertStatus().experts[0]!.load).toBeCloseTo((6 / 60_000) * 2000, 12);
    // The window slides: a minute later nothing is left in it, the totals stay.
    c.now += 11_000;
    const later = control.getExpertStatus();
    expect(later.windowRouted).toBe(0);
    expect(later.maxVio).toBeNaN();
    expect(later.experts[0]!.total.routed).toBe(6);
    control.router.recordOutcome(open.id, { success: true, latencyMs: 10 });
    control.close();
  });

  it('divides load by the time counted while the control plane is younger than its window (Little’s law)', () => {
    const c = clock(10_000_000);
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    // 10 s of traffic, one query a second, each 4 s long: 4 requests in service at once.
    drive(control, 'alpha alpha', 10, { success: true, latencyMs: 4000 }, c, 1000);
    expect(control.getExpertStatus().experts[0]!.load).toBeCloseTo(4, 12);
    expect(control.optimizeExpertAllocation().experts[0]!.load).toBeCloseTo(4, 12);
    const plan = control.createCoordinator().optimizeSystemPerformance();
    expect(plan.allocation.experts[0]!.load).toBeCloseTo(4, 12);
    control.close();
  });

  it('bounds the load window by now when the clock steps back', () => {
    const c = clock(10_000_000);
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    for (let minute = 0; minute < 30; minute++) {
      drive(control, 'alpha alpha', 10, { success: true, latencyMs: 100 });
      c.now += 60_000;
    }
    expect(control.getExpertStatus().windowRouted).toBe(10);
    // NTP steps the clock back 10 minutes: the window is [now − 60 s, now], not everything since.
    c.now -= 600_000;
    expect(control.getExpertStatus().windowRouted).toBe(20); // the buckets of minutes 19 and 20
    // Traffic after the step counts at its own time.
    drive(control, 'alpha alpha', 5, { success: true, latencyMs: 100 });
    expect(control.getExpertStatus().windowRouted).toBe(25);
    c.now += 600_000;
    expect(control.getExpertStatus().windowRouted).toBe(10);
    expect(control.getExpertStatus().experts[0]!.total.routed).toBe(305);
    control.close();
  });
});

describe('MoEControlAPI.optimizeExpertAllocation', () => {
  function loaded() {
    const c = clock();
    const control = new MoEControlAPI({ now: c.fn, replicaBudget: 6, routerOptions: { experts: ABC, clock: c.fn, ...NEVER_COOL } });
    // a: 30 queries of 6 s in the minute → 3 Erlangs; b: 10 → 1 Erlang; c: idle.
    c.now += 20_000;
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
    c.now += 58_000; // the last 2 s of a minute of traffic
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
    expect(() => control.applyAllocationPlan({ replicas: { a: 0 }, retire: [] })).toThrow(new RangeError('Expected integer in [1, 65536] for plan.replicas.a but received 0 of type number'));
    expect(() => control.applyAllocationPlan({ replicas: {}, retire: ['a', 'b', 'c'] })).toThrow(new RangeError('MoEControlAPI.applyAllocationPlan: the plan retires every active expert'));
    control.close();
  });

  it('keeps capacity per replica apart from replicas: a second control plane over the router does not compound them', () => {
    const experts = ABC.map((p) => ({ ...p, capacity: 4 }));
    const router = new RewiringExperts({ experts });
    const capacity = () => router.experts().find((p) => p.id === 'a')!.capacity;
    const first = new MoEControlAPI({ router });
    first.applyAllocationPlan({ replicas: { a: 3 }, retire: [] });
    expect(capacity()).toBe(12);
    first.close();
    const second = new MoEControlAPI({ router });
    expect(second.getExpert('a')).toMatchObject({ capacity: 4, replicas: 3 });
    second.applyAllocationPlan({ replicas: { a: 3 }, retire: [] });
    expect(capacity()).toBe(12);
    second.applyAllocationPlan({ replicas: { a: 2 }, retire: [] });
    expect(capacity()).toBe(8);
    expect(second.getExpertStatus().experts[0]).toMatchObject({ capacity: 4, replicas: 2 });
    second.close();
    // A capacity set on the router directly is one replica's.
    router.addExpert({ ...experts[0]!, capacity: 10 });
    const third = new MoEControlAPI({ router });
    expect(third.getExpert('a')).toMatchObject({ capacity: 10, replicas: 1 });
    third.close();
  });

  it('retires each expert of a plan once, even when a listener retired it first', () => {
    const control = new MoEControlAPI({ routerOptions: { experts: [...ABC, { id: 'd', domain: 'delta', description: 'delta questions' }] } });
    const events: string[] = [];
    control.on('retired', (e) => {
      events.push(`${e.id}:${e.retireReason}`);
      if (e.id === 'a' && control.getExpert('b').status === 'active') control.retireExpert('b');
    });
    control.applyAllocationPlan({ replicas: {}, retire: ['a', 'a', 'b'] });
    expect(events).toEqual(['a:allocation', 'b:manual']);
    expect(control.getExpert('b')).toMatchObject({ status: 'retired', retireReason: 'manual' });
    expect(control.getAllExperts().map((e) => e.id)).toEqual(['c', 'd']);
    control.close();
  });

  it('gives replicas as the step-by-step greedy rule does, within a bounded budget', () => {
    const c = clock();
    const experts: ExpertProfile[] = Array.from({ length: 8 }, (_, i) => ({ id: `e${i}`, domain: `d${i}`, description: `topic${i} questions`, keywords: [`topic${i}`], capacity: 1 + (i % 4) }));
    const control = new MoEControlAPI({ now: c.fn, routerOptions: { experts, clock: c.fn, ...NEVER_COOL } });
    // Outcomes of different success rates, for the performance_based weights.
    for (let i = 0; i < 8; i++) for (let k = 0; k < 8; k++) {
      const d = control.router.routeQuery(`topic${i} topic${i}`);
      control.router.recordOutcome(d.id, { success: k < i, latencyMs: 10 });
    }
    // Independent reference: the rule one replica at a time, scanning every expert.
    const greedy = (rows: Array<{ load: number; capacity: number; w: number }>, target: number, budget: number): number[] => {
      const n = rows.map(() => 1);
      const util = (i: number) => rows[i]!.load / (rows[i]!.capacity * n[i]!);
      const key = (i: number) => rows[i]!.w * util(i); // weight × utilisation, as documented
      for (let used = rows.length; used < budget; used++) {
        let best = -1;
        for (let i = 0; i < rows.length; i++) {
          if (util(i) <= target) continue;
          if (best < 0 || key(i) > key(best)) best = i;
        }
        if (best < 0) break;
        n[best]! += 1;
      }
      return n;
    };
    let seed = 7;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    for (let trial = 0; trial < 200; trial++) {
      // Integer loads give ties (registry order breaks them); fractional ones give the rest.
      const load = experts.map(() => (trial % 2 === 0 ? Math.floor(random() * 6) : random() * 20));
      const rebalancingStrategy = trial % 4 < 2 ? 'load_based' : 'performance_based';
      const targetUtilization = 0.25 + 0.75 * random();
      const replicaBudget = 8 + Math.floor(random() * 60);
      const plan = control.optimizeExpertAllocation({ currentWorkload: Object.fromEntries(experts.map((e, i) => [e.id, load[i]!])), retireIdle: false, rebalancingStrategy, targetUtilization, replicaBudget });
      const rows = plan.experts.map((e) => ({ load: e.load, capacity: e.capacity, w: rebalancingStrategy === 'performance_based' ? e.successEstimate : 1 }));
      expect(plan.experts.map((e) => e.replicas)).toEqual(greedy(rows, targetUtilization, replicaBudget));
    }
    expect(() => control.optimizeExpertAllocation({ replicaBudget: MAX_REPLICA_BUDGET + 1 })).toThrow(
      new RangeError('Expected integer in [1, 65536] for options.replicaBudget but received 65537 of type number'),
    );
    // The largest budget on a huge load: every replica left goes to that expert.
    const plan = control.optimizeExpertAllocation({ currentWorkload: { e0: 1e7 }, replicaBudget: MAX_REPLICA_BUDGET, retireIdle: false });
    expect(plan.replicas.e0).toBe(MAX_REPLICA_BUDGET - 7);
    expect(plan.replicasUsed).toBe(MAX_REPLICA_BUDGET);
    control.close();
  });
});

describe('MoEControlAPI load balancing', () => {
  // Two experts with the same profile text and no outcomes yet (so no learned difference):
  // without balancing the first always wins the tie; the bias is what moves traffic.
  const sql = DEFAULT_EXPERTS.find((p) => p.id === 'sql')!;
  // A router of the test's own: closing the control plane leaves it open (one it built, it closes).
  const build = (loadBalancing: false | { rate: number; batchQueries: number; maxBias: number }) =>
    new MoEControlAPI({ loadBalancing, router: new RewiringExperts({ experts: [sql, { ...sql, id: 'sql-2' }] }) });

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
      const router = new RewiringExperts();
      const control = new MoEControlAPI({ router });
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
      expect(() => control.getExpertStatus()).toThrow(new ClosedError('MoEControlAPI'));
      expect(() => control.runLifecycle()).toThrow(new ClosedError('MoEControlAPI'));
      expect(control.router.routeQuery(SQL).expertId).toBe('sql'); // a router it was given goes on
      const own = new MoEControlAPI();
      own.close();
      expect(() => own.router.routeQuery(SQL)).toThrow(new ClosedError('RewiringExperts')); // one it built is closed with it
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('RewiringExperts hooks used by the control plane', () => {
  it("a listener that throws neither fails routing nor undoes the router's bookkeeping", async () => {
    const router = new RewiringExperts({ experts: ABC, health: { minRequests: 1 } });
    // Attached before the control plane's own listeners, which must still be called.
    router.on('routed', () => {
      throw new Error('routed listener bug');
    });
    router.on('outcome', () => {
      throw new Error('outcome listener bug');
    });
    router.on('cooldown', () => {
      throw new Error('cooldown listener bug');
    });
    const control = new MoEControlAPI({ router });
    const errors: string[] = [];
    router.on('error', (e: Error) => errors.push(e.message));
    const d = router.routeQuery('alpha alpha');
    expect(d.expertId).toBe('a');
    expect(router.getMetrics()).toMatchObject({ totalRouted: 1, inFlight: { a: 1 } });
    router.recordOutcome(d.id, { success: true, latencyMs: 5 });
    expect(router.getMetrics().inFlight.a).toBe(0);
    await expect(router.routeWithFallback('alpha alpha', async () => 42)).resolves.toMatchObject({ result: 42, expertId: 'a' });
    const e = router.routeQuery('gamma gamma');
    router.recordOutcome(e.id, { success: false, latencyMs: 5, nonRetryable: true });
    expect(router.expertHealth('c').available).toBe(false);
    expect(control.getExpertStatus().experts.map((x) => x.total.outcomes)).toEqual([2, 0, 1]);
    expect(errors).toEqual([
      'routed listener bug', 'outcome listener bug', 'routed listener bug', 'outcome listener bug',
      'routed listener bug', 'cooldown listener bug', 'outcome listener bug',
    ]);

    // With no 'error' listener, the error becomes a process warning (the one listener policy).
    router.removeAllListeners('error');
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    let f: RoutingDecision;
    try {
      f = router.routeQuery('beta beta');
      expect(warn.mock.calls.map((c) => c[0])).toEqual(["a 'routed' listener threw: routed listener bug"]);
    } finally {
      warn.mockRestore();
    }
    expect(f.expertId).toBe('b');
    expect(router.getMetrics().inFlight.b).toBe(1);
    control.close();
  });

  it('expires pending decisions oldest first past their TTL or the cap, skipping those answered', () => {
    const c = clock();
    const router = new RewiringExperts({ maxPendingDecisions: 64, decisionTtlMs: 2_000, clock: c.fn });
    const texts = ['slow SQL join', 'pandas groupby', 'React hooks', 'REST pagination'];
    // Reference: the open decisions in routing order, expired by hand before each routeQuery.
    const open: Array<{ id: string; at: number }> = [];
    const gone: string[] = [];
    let seed = 11;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 6000; i++) {
      c.now += Math.floor(random() * 40);
      while (open.length > 0 && (c.now - open[0]!.at >= 2_000 || open.length >= 64)) gone.push(open.shift()!.id);
      const d = router.routeQuery(texts[i % texts.length]!);
      open.push({ id: d.id, at: c.now });
      const r = random();
      if (r < 0.6) {
        // Answered: any open decision, not only the oldest.
        const [done] = open.splice(Math.floor(random() * open.length), 1);
        router.recordOutcome(done!.id, { success: true, latencyMs: 1 });
      } else if (r < 0.8) {
        router.recordOutcome(open[Math.floor(random() * open.length)]!.id, { success: false, latencyMs: 1 });
      }
    }
    expect(gone.length).toBeGreaterThan(100);
    for (const id of gone.slice(-50)) expect(() => router.recordOutcome(id, { success: true, latencyMs: 1 })).toThrow(RangeError);
    for (const { id } of open) router.recordOutcome(id, { success: true, latencyMs: 1 });
  });

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

  it('keeps a biased relevance within [0, 1]: skewed traffic under the default balancing never breaks routing', () => {
    const abc: ExpertProfile[] = ['alpha', 'beta', 'gamma'].map((d) => ({ id: d[0]!, domain: d, description: `${d} questions`, keywords: [d] }));
    const control = new MoEControlAPI({ routerOptions: { experts: abc }, loadBalancing: true });
    let last: RoutingDecision | undefined;
    for (let i = 0; i < 2000; i++) last = control.router.routeQuery(i % 50 === 0 ? 'alpha alpha' : 'beta beta');
    expect(last!.expertId).toBe('b');
    control.close();
  });
});
