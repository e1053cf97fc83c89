import { describe, expect, it } from 'vitest';

import {
  type BudgetAlert,
  BudgetForcing,
  ClosedError,
  type BudgetRequest,
  type BudgetStore,
  type BudgetViolation,
  EnforcementLevel,
  MemoryBudgetStore,
  ResourceMonitor,
  ResourceType,
} from '../src/index';

const T = ResourceType.TOKENS;
const req = (over: Partial<BudgetRequest> = {}): BudgetRequest => ({
  resourceType: T,
  requestedAmount: 10,
  priority: 1,
  estimatedDuration: 60,
  requesterId: 'u1',
  ...over,
});

/** A controllable clock. */
function clock(start: number) {
  let now = start;
  return { now: () => now, set: (t: number) => (now = t), advance: (ms: number) => (now += ms) };
}

function make(opts: ConstructorParameters<typeof BudgetForcing>[0] = {}) {
  return new BudgetForcing({ sweepIntervalMs: 3_600_000, ...opts });
}

describe('BudgetForcing: reservations', () => {
  it('reserves, commits less than reserved and returns the rest', async () => {
    const b = make({ budgets: [{ resourceType: T, scope: 'daily', limit: 100 }] });
    const d = await b.requestBudget(req({ requestedAmount: 60 }));
    expect(d).toMatchObject({ approved: true, overLimit: false, unbacked: false });
    expect((await b.status('u1'))[0]).toMatchObject({ committed: 0, reserved: 60, limit: 100 });
    expect(await b.commit(d.allocationId!, 25)).toEqual({ charged: 25, returned: 35, overLimit: false, unbacked: false });
    expect((await b.status('u1'))[0]).toMatchObject({ committed: 25, reserved: 0 });
    await expect(b.commit(d.allocationId!, 1)).rejects.toThrow(new RangeError(`Unknown allocation '${d.allocationId}': it was never approved, is already settled, or expired`));
    await b.close();
  });

  it('charges a commit of more than reserved and records the violation when it crosses the limit', async () => {
    const violations: BudgetViolation[] = [];
    const b = make({ budgets: [{ resourceType: T, scope: 'daily', limit: 100 }], onViolation: (x) => violations.push(x) });
    const d = await b.requestBudget(req({ requestedAmount: 50 }));
    expect(await b.commit(d.allocationId!, 130)).toEqual({ charged: 130, returned: 0, overLimit: true, unbacked: false });
    expect(violations).toHaveLength(1);
    expect(violations[0]).toMatchObject({ cause: 'commit', used: 130, limit: 100, requesterId: 'u1' });
    expect((await b.requestBudget(req({ requestedAmount: 1 }))).approved).toBe(false);
    const m = await b.getMetrics();
    expect(m).toMatchObject({ approved: 1, denied: 1, violations: 1, wouldOverspend: 2, prevented: 1, preventionRate: 0.5 });
    await b.close();
  });

  it('releases a reservation, and expires one after its estimated duration', async () => {
    const c = clock(Date.UTC(2026, 10, 25, 12));
    const b = make({ now: c.now, budgets: [{ resourceType: T, scope: 'daily', limit: 100 }] });
    const expired: unknown[] = [];
    b.on('expired', (e) => expired.push(e));
    const a = await b.requestBudget(req({ requestedAmount: 100 }));
    expect((await b.requestBudget(req({ requestedAmount: 1 }))).approved).toBe(false);
    expect(await b.release(a.allocationId!)).toBe(true);
    expect(await b.release(a.allocationId!)).toBe(false);
    const held = await b.requestBudget(req({ requestedAmount: 100, estimatedDuration: 30 }));
    c.advance(29_999);
    expect((await b.requestBudget(req({ requestedAmount: 1 }))).approved).toBe(false);
    c.advance(1);
    expect(await b.sweep()).toBe(1);
    expect(expired).toEqual([{ allocationId: held.allocationId, requesterId: 'u1', resourceType: T }]);
    expect((await b.requestBudget(req({ requestedAmount: 100 }))).approved).toBe(true);
    await expect(b.commit(held.allocationId!, 5)).rejects.toThrow(RangeError);
    await b.close();
  });

  it('is all-or-nothing across every matching budget', async () => {
    const b = make({
      budgets: [
        { resourceType: T, scope: 'daily', limit: 100 },
        { resourceType: T, scope: 'monthly', limit: 150, shared: true },
        { resourceType: T, scope: 'request', limit: 80 },
        { resourceType: ResourceType.CPU, scope: 'daily', limit: 1 },
      ],
    });
    expect((await b.requestBudget(req({ requestedAmount: 81 }))).message).toBe("Denied: u1 asked for 81 tokens but budget 'tokens:request:*each' allows 80 per request");
    expect((await b.requestBudget(req({ requestedAmount: 80, requesterId: 'u1' }))).approved).toBe(true);
    expect((await b.requestBudget(req({ requestedAmount: 80, requesterId: 'u2' }))).approved).toBe(false); // shared monthly: 70 left
    const st = await b.status('u2');
    expect(st.find((s) => s.budget.scope === 'daily')).toMatchObject({ reserved: 0 }); // nothing held after the refusal
    expect((await b.requestBudget(req({ requestedAmount: 70, requesterId: 'u2' }))).approved).toBe(true);
    await b.close();
  });

  it('keeps requesters apart whatever their ids contain', async () => {
    const b = make({ budgets: [{ resourceType: T, scope: 'session', limit: 10 }] });
    expect((await b.requestBudget(req({ requesterId: 'u|session:x', sessionId: 'y', requestedAmount: 10 }))).approved).toBe(true);
    expect((await b.requestBudget(req({ requesterId: 'u', sessionId: 'x|session:y', requestedAmount: 10 }))).approved).toBe(true);
    await b.close();
  });

  it('keeps session budgets per session', async () => {
    const b = make({ budgets: [{ resourceType: T, scope: 'session', limit: 10 }] });
    expect((await b.requestBudget(req({ sessionId: 's1', requestedAmount: 10 }))).approved).toBe(true);
    expect((await b.requestBudget(req({ sessionId: 's1', requestedAmount: 1 }))).approved).toBe(false);
    expect((await b.requestBudget(req({ sessionId: 's2', requestedAmount: 10 }))).approved).toBe(true);
    expect((await b.requestBudget(req({ requestedAmount: 50 }))).approved).toBe(true); // no session: session budgets do not apply
    await b.close();
  });
});

describe('BudgetForcing: enforcement levels', () => {
  const budgets = [{ resourceType: T, scope: 'daily' as const, limit: 100 }];

  it('HARD denies anything over the limit, at any priority', async () => {
    const b = make({ enforcementLevel: EnforcementLevel.HARD, budgets });
    expect((await b.requestBudget(req({ requestedAmount: 100 }))).approved).toBe(true);
    const d = await b.requestBudget(req({ requestedAmount: 1, priority: 10 }));
    expect(d).toEqual({ approved: false, allocationId: null, overLimit: false, unbacked: false,
      message: "Denied: budget 'tokens:daily:*each' (daily tokens, window 2026-11-25) has 0 of 100 left; u1 asked for 1".replace('2026-11-25', (await b.status('u1'))[0]!.window) });
    expect((await b.getMetrics()).preventionRate).toBe(1);
    await b.close();
  });

  it('MEDIUM allows the stated overdraft for high priority only', async () => {
    const b = make({ enforcementLevel: EnforcementLevel.MEDIUM, overdraft: { ratio: 0.2, minPriority: 5 }, budgets });
    expect((await b.requestBudget(req({ requestedAmount: 100 }))).approved).toBe(true);
    expect((await b.requestBudget(req({ requestedAmount: 5, priority: 4 }))).approved).toBe(false);
    const hi = await b.requestBudget(req({ requestedAmount: 20, priority: 5 }));
    expect(hi).toMatchObject({ approved: true, overLimit: true });
    expect((await b.requestBudget(req({ requestedAmount: 1, priority: 9 }))).approved).toBe(false); // overdraft used up
    const m = await b.getMetrics();
    expect(m).toMatchObject({ approved: 2, denied: 2, violations: 1, wouldOverspend: 3, prevented: 2 });
    await b.close();
  });

  it('SOFT approves, records the violation and emits it', async () => {
    const seen: BudgetViolation[] = [];
    const b = make({ enforcementLevel: EnforcementLevel.SOFT, budgets });
    b.on('violation', (x) => seen.push(x));
    expect((await b.requestBudget(req({ requestedAmount: 150 }))).overLimit).toBe(true);
    expect(seen[0]).toMatchObject({ cause: 'request', used: 150, limit: 100 });
    expect((await b.getMetrics()).preventionRate).toBe(0);
    await b.close();
  });

  it('alerts once when a window crosses its soft threshold', async () => {
    const alerts: BudgetAlert[] = [];
    const b = make({ budgets: [{ resourceType: T, scope: 'daily', limit: 100, softThreshold: 0.8 }], onAlert: (a) => alerts.push(a) });
    await b.requestBudget(req({ requestedAmount: 70 }));
    expect(alerts).toHaveLength(0);
    await b.requestBudget(req({ requestedAmount: 15 }));
    await b.requestBudget(req({ requestedAmount: 5 }));
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.fraction).toBeCloseTo(0.85, 12);
    await b.close();
  });

  it('alerts when a commit reaches the threshold, and only once per window', async () => {
    const alerts: BudgetAlert[] = [];
    const b = make({ enforcementLevel: EnforcementLevel.SOFT, budgets: [{ resourceType: T, scope: 'daily', limit: 100, softThreshold: 0.8 }], onAlert: (a) => alerts.push(a) });
    const d = await b.requestBudget(req({ requestedAmount: 10 }));
    await b.commit(d.allocationId!, 90);
    expect(alerts.map((a) => a.fraction)).toEqual([0.9]);
    const again = await b.requestBudget(req({ requestedAmount: 5 }));
    await b.release(again.allocationId!);
    await b.requestBudget(req({ requestedAmount: 5 }));
    expect(alerts).toHaveLength(1);
    await b.close();
  });
});

describe('BudgetForcing: calendar windows', () => {
  it('resets daily at local midnight in the budget time zone', async () => {
    const c = clock(Date.UTC(2026, 2, 28, 22, 59)); // 23:59 in Madrid (UTC+1)
    const b = make({ now: c.now, budgets: [{ resourceType: T, scope: 'daily', limit: 10, timeZone: 'Europe/Madrid' }] });
    expect((await b.requestBudget(req({ requestedAmount: 10 }))).approved).toBe(true);
    expect((await b.requestBudget(req({ requestedAmount: 1 }))).approved).toBe(false);
    const [s] = await b.status('u1');
    expect(s).toMatchObject({ window: '2026-03-28', resetsAt: Date.UTC(2026, 2, 28, 23) });
    c.set(Date.UTC(2026, 2, 28, 23)); // 00:00 Madrid
    expect((await b.requestBudget(req({ requestedAmount: 10 }))).approved).toBe(true);
    // The next midnight comes 23 hours later: clocks move forward that night.
    expect((await b.status('u1'))[0]).toMatchObject({ window: '2026-03-29', resetsAt: Date.UTC(2026, 2, 29, 22) });
    await b.close();
  });

  it('starts a day at its first instant where clocks skip midnight (America/Santiago)', async () => {
    // 2024-09-08: clocks jump from 00:00 to 01:00 local, so the 7th ends at 04:00Z, not 03:00Z.
    const c = clock(Date.UTC(2024, 8, 8, 1)); // Sep 7, 22:00 local
    const b = make({ now: c.now, budgets: [{ resourceType: T, scope: 'daily', limit: 100, timeZone: 'America/Santiago' }] });
    await b.commit((await b.requestBudget(req({ requestedAmount: 100 }))).allocationId!, 100);
    c.set(Date.UTC(2024, 8, 8, 3, 30)); // still Sep 7, 23:30 local
    expect((await b.status('u1'))[0]).toMatchObject({ window: '2024-09-07', committed: 100, resetsAt: Date.UTC(2024, 8, 8, 4) });
    expect((await b.requestBudget(req({ requestedAmount: 1 }))).approved).toBe(false);
    c.set(Date.UTC(2024, 8, 8, 4)); // Sep 8, 01:00 local: a new day
    expect((await b.requestBudget(req({ requestedAmount: 100 }))).approved).toBe(true);
    await b.close();
  });

  it('resets weekly on ISO Monday and monthly on the 1st', async () => {
    const c = clock(Date.UTC(2026, 11, 31, 12)); // Thursday, ISO week 2026-W53
    const b = make({ now: c.now, budgets: [{ resourceType: T, scope: 'weekly', limit: 5 }, { resourceType: T, scope: 'monthly', limit: 8 }] });
    const first = await b.requestBudget(req({ requestedAmount: 5 }));
    await b.commit(first.allocationId!, 5);
    expect((await b.status('u1')).map((s) => s.window)).toEqual(['2026-W53', '2026-12']);
    c.set(Date.UTC(2027, 0, 3, 23, 59)); // Sunday: same ISO week, new month
    expect((await b.requestBudget(req({ requestedAmount: 1 }))).approved).toBe(false);
    c.set(Date.UTC(2027, 0, 4)); // Monday: new week
    expect((await b.requestBudget(req({ requestedAmount: 5 }))).approved).toBe(true);
    expect((await b.status('u1')).map((s) => s.window)).toEqual(['2027-W01', '2027-01']);
    await b.close();
  });
});

describe('BudgetForcing: concurrency', () => {
  it('never approves past a HARD limit under 1,000 concurrent requests', async () => {
    const b = make({ budgets: [{ resourceType: T, scope: 'daily', limit: 250, shared: true }] });
    const decisions = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => b.requestBudget(req({ requestedAmount: 1 + (i % 3), requesterId: `u${i % 17}` }))),
    );
    const approved = decisions.filter((d) => d.approved);
    const total = decisions.reduce((a, d, i) => a + (d.approved ? 1 + (i % 3) : 0), 0);
    expect(total).toBeLessThanOrEqual(250);
    expect(total).toBeGreaterThanOrEqual(248); // it fills up: only the last amounts can fail to fit
    expect(approved.every((d) => !d.overLimit)).toBe(true);
    const [s] = await b.status('u1');
    expect(s!.reserved).toBe(total);
    await b.close();
  });
});

describe('BudgetForcing: store failures', () => {
  const broken: BudgetStore = Object.assign(new MemoryBudgetStore(), {
    reserve: async () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
    },
  });

  it('fails closed by default', async () => {
    const b = make({ store: broken, budgets: [{ resourceType: T, scope: 'daily', limit: 10 }] });
    const errors: unknown[] = [];
    b.on('storeError', (e) => errors.push(e));
    const d = await b.requestBudget(req());
    expect(d).toMatchObject({ approved: false, unbacked: false });
    expect(d.message).toBe("Denied: the budget store is unavailable (connect ECONNREFUSED 127.0.0.1:6379); onStoreError is 'fail-closed'");
    expect(errors).toHaveLength(1);
    await b.close();
  });

  it('fails open when asked, with an unbacked allocation', async () => {
    const b = make({ store: broken, onStoreError: 'fail-open', budgets: [{ resourceType: T, scope: 'daily', limit: 10 }] });
    const d = await b.requestBudget(req());
    expect(d).toMatchObject({ approved: true, unbacked: true });
    // charged: 3, not 0: the use is queued and charged to the allocation's windows once the store answers (issue 20).
    expect(await b.commit(d.allocationId!, 3)).toEqual({ charged: 3, returned: 0, overLimit: false, unbacked: true });
    await expect(b.commit(d.allocationId!, 3)).rejects.toThrow(RangeError); // settles once
    await expect(b.release('unbacked:made-up')).resolves.toBe(false);
    await b.close();
  });

  it('needs no store for per-request budgets alone', async () => {
    const b = make({ store: broken, budgets: [{ resourceType: T, scope: 'request', limit: 10 }] });
    expect((await b.requestBudget(req({ requestedAmount: 10 }))).approved).toBe(true);
    expect((await b.requestBudget(req({ requestedAmount: 11 }))).approved).toBe(false);
    await b.close();
  });
});

describe('BudgetForcing: listeners', () => {
  it("returns the decision when an 'approved' listener throws, so the reservation can be settled", async () => {
    const b = make({ budgets: [{ resourceType: T, scope: 'daily', limit: 100 }] });
    const errors: unknown[] = [];
    b.on('approved', () => {
      throw new Error('listener bug');
    });
    b.on('error', (err) => errors.push(err));
    const d = await b.requestBudget(req({ requestedAmount: 60 }));
    expect(d).toMatchObject({ approved: true, unbacked: false });
    expect(errors).toEqual([new Error('listener bug')]);
    expect(await b.release(d.allocationId!)).toBe(true);
    expect((await b.status('u1'))[0]).toMatchObject({ committed: 0, reserved: 0 });
    await b.close();
  });

  it("reports a listener's error as a process warning when nobody listens for 'error'", async () => {
    const b = make({ budgets: [{ resourceType: T, scope: 'daily', limit: 5 }] });
    b.on('denied', () => {
      throw new Error('denied listener bug');
    });
    const warned = new Promise<Error>((resolve) => process.once('warning', resolve));
    const d = await b.requestBudget(req({ requestedAmount: 60 }));
    expect(d.approved).toBe(false);
    expect((await warned).message).toBe("a 'denied' listener threw: denied listener bug");
    await b.close();
    await b.close(); // idempotent
    await expect(b.requestBudget(req())).rejects.toThrow(new ClosedError('BudgetForcing'));
  });
});

describe('BudgetForcing: bad input', () => {
  const cases: Array<[string, Partial<Record<keyof BudgetRequest, unknown>>, ErrorConstructor, string]> = [
    ['resourceType', { resourceType: 'gold' }, RangeError,
      "Expected one of 'cpu', 'memory', 'gpu', 'tpu', 'network', 'storage', 'api_calls', 'tokens' for request.resourceType but received 'gold' of type string"],
    ['requestedAmount zero', { requestedAmount: 0 }, RangeError, 'Expected finite number > 0 for request.requestedAmount but received 0 of type number'],
    ['requestedAmount NaN', { requestedAmount: NaN }, RangeError, 'Expected finite number > 0 for request.requestedAmount but received NaN of type number'],
    ['requestedAmount string', { requestedAmount: '5' }, TypeError, "Expected finite number > 0 for request.requestedAmount but received '5' of type string"],
    ['priority', { priority: 11 }, RangeError, 'Expected integer in [0, 10] for request.priority but received 11 of type number'],
    ['estimatedDuration', { estimatedDuration: -1 }, RangeError, 'Expected finite number > 0 for request.estimatedDuration but received -1 of type number'],
    ['requesterId', { requesterId: '' }, RangeError, "Expected non-empty string for request.requesterId but received '' of type string"],
    ['requesterId kind', { requesterId: 7 }, TypeError, 'Expected non-empty string for request.requesterId but received 7 of type number'],
    ['justification', { justification: 5 }, TypeError, 'Expected string for request.justification but received 5 of type number'],
    ['sessionId', { sessionId: null }, TypeError, 'Expected non-empty string for request.sessionId but received null'],
  ];
  for (const [name, over, Kind, message] of cases) {
    it(`rejects a bad ${name}`, async () => {
      const b = make();
      await expect(b.requestBudget(req(over as Partial<BudgetRequest>))).rejects.toThrow(Kind);
      await expect(b.requestBudget(req(over as Partial<BudgetRequest>))).rejects.toThrow(message);
      await b.close();
    });
  }

  it('rejects bad options, budgets and calls', async () => {
    expect(() => make({ enforcementLevel: 'strict' as never })).toThrow(new RangeError("Expected one of 'soft', 'medium', 'hard' for enforcementLevel but received 'strict' of type string"));
    expect(() => make({ onStoreError: 'ignore' as never })).toThrow(new RangeError("Expected one of 'fail-open', 'fail-closed' for onStoreError but received 'ignore' of type string"));
    expect(() => make({ budgets: [{ resourceType: T, scope: 'yearly' as never, limit: 1 }] })).toThrow(
      new RangeError("Expected one of 'request', 'session', 'daily', 'weekly', 'monthly' for budget.scope but received 'yearly' of type string"),
    );
    expect(() => make({ budgets: [{ resourceType: T, scope: 'daily', limit: -1 }] })).toThrow(new RangeError('Expected finite number >= 0 for budget.limit but received -1 of type number'));
    expect(() => make({ budgets: [{ resourceType: T, scope: 'daily', limit: 1, timeZone: 'Mars/Olympus' }] })).toThrow(
      new RangeError("Expected an IANA time zone (e.g. 'UTC', 'Europe/Madrid') for budget.timeZone but received 'Mars/Olympus'"),
    );
    expect(() => make({ budgets: [{ resourceType: T, scope: 'daily', limit: 1, softThreshold: 1.5 }] })).toThrow(
      new RangeError('Expected fraction in (0, 1] for budget.softThreshold but received 1.5 of type number'),
    );
    const b = make();
    await expect(b.commit('x', -1)).rejects.toThrow(new RangeError('Expected finite number >= 0 for actualAmount but received -1 of type number'));
    await expect(b.commit(5 as never, 1)).rejects.toThrow(new TypeError('Expected an allocation id string for allocationId but received 5 of type number'));
    await b.close();
    await expect(b.requestBudget(req())).rejects.toThrow(new ClosedError('BudgetForcing'));
    expect(b.closed).toBe(true);
  });
});

describe('ResourceMonitor', () => {
  it('samples real CPU and memory use', async () => {
    const m = new ResourceMonitor({ intervalMs: 60_000, gpu: false });
    // Burn 20 ms of this process's CPU time (not wall time: a loaded machine may not schedule us).
    const start = process.cpuUsage();
    let x = 0;
    while (process.cpuUsage(start).user < 20_000) x += Math.sqrt(x + 1);
    const s = await m.sample();
    // CPU time over wall time: positive once CPU was used, whatever else the machine is doing.
    expect(s.cpuCores).toBeGreaterThan(0);
    expect(s.rssBytes).toBeGreaterThan(10 * 2 ** 20);
    expect(s.gpus).toBeNull();
    expect(m.latest).toBe(s);
    m.close();
    expect(m.closed).toBe(true);
    expect(() => new ResourceMonitor({ intervalMs: 0 })).toThrow(new RangeError('Expected integer in [1, 2147483647] for intervalMs but received 0 of type number'));
  });
});
