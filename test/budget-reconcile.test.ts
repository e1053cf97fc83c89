/**
 * Reconciliation of fail-open approvals (issue 20, item 3): what an allocation approved while the
 * store could not be reached commits is charged to its windows once the store answers again,
 * and BudgetForcing's metrics say how much was charged, waits, or never will be.
 */
import { once } from 'node:events';

import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  BudgetForcing, type BudgetForcingOptions, type BudgetRequest, type BudgetStore, type BudgetViolation, type ChargeOp, MemoryBudgetStore, RedisBudgetStore,
  ResourceType,
} from '../src/index';
import { hasRedisServer, type RedisServer, redisSkipReason, startRedisServer } from './support/redis-server';

if (!hasRedisServer) console.warn(`budget-reconcile.test.ts (Redis part) skipped: ${redisSkipReason}`);

const T = ResourceType.TOKENS;
const req = (over: Partial<BudgetRequest> = {}): BudgetRequest => ({ resourceType: T, requestedAmount: 10, priority: 1, estimatedDuration: 60, requesterId: 'u1', ...over });
const DOWN = 'connect ECONNREFUSED 127.0.0.1:6379';
const NONE = { reconciledCommits: 0, reconciledAmount: 0, unreconciledCommits: 0, unreconciledAmount: 0, unchargedCommits: 0, unchargedAmount: 0 };

/** A MemoryBudgetStore behind a switch: while `down`, every operation fails as an unreachable Redis would. */
function switchable(options: { loseFirstChargeReply?: boolean; withoutCharge?: boolean } = {}) {
  const inner = new MemoryBudgetStore();
  const state = { down: false, charges: [] as ChargeOp[], loseReply: options.loseFirstChargeReply ?? false };
  const gate = <R>(f: () => Promise<R>): Promise<R> => (state.down ? Promise.reject(new Error(DOWN)) : f());
  const store: BudgetStore = {
    reserve: (op) => gate(() => inner.reserve(op)),
    commit: (id, actual, now) => gate(() => inner.commit(id, actual, now)),
    release: (id, now) => gate(() => inner.release(id, now)),
    expire: (now) => gate(() => inner.expire(now)),
    usage: (keys, now) => gate(() => inner.usage(keys, now)),
    close: async () => undefined, // the inner store stays readable after BudgetForcing closes
  };
  if (!options.withoutCharge) {
    store.charge = (op) => gate(async () => {
      state.charges.push(op);
      const r = await inner.charge(op);
      if (state.loseReply) {
        state.loseReply = false;
        throw new Error('RedisBudgetStore.charge: no reply from Redis within 1000 ms; it may or may not have been applied');
      }
      return r;
    });
  }
  return { store, inner, state };
}

const budgets = [
  { resourceType: T, scope: 'daily' as const, limit: 100 },
  { resourceType: T, scope: 'monthly' as const, limit: 1_000, shared: true },
];
const make = (o: BudgetForcingOptions) => new BudgetForcing({ onStoreError: 'fail-open', sweepIntervalMs: 3_600_000, now: () => Date.UTC(2026, 10, 25, 12), budgets, ...o });

describe('BudgetForcing: reconciling fail-open approvals', () => {
  it('charges what fail-open allocations committed to their windows once the store answers again', async () => {
    const { store, state } = switchable();
    const b = make({ store });
    state.down = true;
    const ds = await Promise.all([10, 20, 30, 40].map((a) => b.requestBudget(req({ requestedAmount: a }))));
    expect(ds.map((d) => [d.approved, d.unbacked])).toEqual([[true, true], [true, true], [true, true], [true, true]]);
    expect(await b.commit(ds[0]!.allocationId!, 7)).toEqual({ charged: 7, returned: 0, overLimit: false, unbacked: true });
    expect(await b.commit(ds[1]!.allocationId!, 25.5)).toEqual({ charged: 25.5, returned: 0, overLimit: false, unbacked: true }); // more than asked: a fact
    expect(await b.release(ds[2]!.allocationId!)).toBe(true); // nothing used, nothing charged
    expect(await b.commit(ds[3]!.allocationId!, 0)).toEqual({ charged: 0, returned: 0, overLimit: false, unbacked: true });
    await expect(b.sweep()).rejects.toThrow(DOWN);
    expect(await b.getMetrics()).toMatchObject({ ...NONE, unreconciledCommits: 2, unreconciledAmount: 32.5 });
    expect(state.charges).toEqual([]);

    state.down = false;
    await b.sweep();
    expect(await b.getMetrics()).toMatchObject({ ...NONE, reconciledCommits: 2, reconciledAmount: 32.5 });
    // In commit order, each to the daily (per requester) and the monthly (shared) window it fell in.
    expect(state.charges.map((c) => [c.id, c.amount, c.windows.map((w) => w.key)])).toEqual([
      [ds[0]!.allocationId, 7, ['tokens:daily:*each|u1|2026-11-25', 'tokens:monthly:*shared|*|2026-11']],
      [ds[1]!.allocationId, 25.5, ['tokens:daily:*each|u1|2026-11-25', 'tokens:monthly:*shared|*|2026-11']],
    ]);
    expect((await b.status('u1')).map((s) => [s.window, s.committed, s.reserved])).toEqual([['2026-11-25', 32.5, 0], ['2026-11', 32.5, 0]]);
    // Charged: a HARD limit now counts it.
    expect((await b.requestBudget(req({ requestedAmount: 68 }))).approved).toBe(false);
    expect((await b.requestBudget(req({ requestedAmount: 67.5 }))).approved).toBe(true);
    await b.close();
  });

  it('charges at the next successful store operation, without waiting for the sweep', async () => {
    const { store, state, inner } = switchable();
    const b = make({ store });
    state.down = true;
    const d = await b.requestBudget(req({ requestedAmount: 10 }));
    await b.commit(d.allocationId!, 9);
    state.down = false;
    const reconciled = once(b, 'reconciled');
    expect(await b.requestBudget(req({ requestedAmount: 1 }))).toMatchObject({ approved: true, unbacked: false });
    expect(await reconciled).toEqual([{ allocationId: d.allocationId, amount: 9, requesterId: 'u1' }]);
    expect(await inner.usage(['tokens:daily:*each|u1|2026-11-25'], Date.UTC(2026, 10, 25, 12))).toEqual([{ committed: 9, reserved: 1 }]);
    expect(await b.getMetrics()).toMatchObject({ ...NONE, reconciledCommits: 1, reconciledAmount: 9 });
    await b.close();
  });

  it('records a violation when the charge takes a window past its limit', async () => {
    const { store, state } = switchable();
    const violations: BudgetViolation[] = [];
    const b = make({ store, onViolation: (x) => violations.push(x) });
    const backed = await b.requestBudget(req({ requestedAmount: 80 }));
    await b.commit(backed.allocationId!, 80);
    state.down = true;
    const d = await b.requestBudget(req({ requestedAmount: 30 }));
    await b.commit(d.allocationId!, 30);
    state.down = false;
    await b.sweep();
    expect(violations).toEqual([
      { budgetId: 'tokens:daily:*each', budget: budgets[0], requesterId: 'u1', cause: 'commit', used: 110, limit: 100, allocationId: d.allocationId },
    ]);
    expect(await b.getMetrics()).toMatchObject({ ...NONE, reconciledCommits: 1, reconciledAmount: 30, violations: 1, wouldOverspend: 1 });
    await b.close();
  });

  it('keeps at most maxUnreconciled commits waiting, and counts the rest as never charged', async () => {
    const { store, state } = switchable();
    const b = make({ store, maxUnreconciled: 1 });
    state.down = true;
    const [d1, d2, d3] = await Promise.all([1, 2, 3].map(() => b.requestBudget(req())));
    expect((await b.commit(d1!.allocationId!, 5)).charged).toBe(5);
    expect(await b.commit(d2!.allocationId!, 6)).toEqual({ charged: 0, returned: 0, overLimit: false, unbacked: true });
    expect((await b.commit(d3!.allocationId!, 7)).charged).toBe(0);
    expect(await b.getMetrics()).toMatchObject({ ...NONE, unreconciledCommits: 1, unreconciledAmount: 5, unchargedCommits: 2, unchargedAmount: 13 });
    state.down = false;
    await b.sweep();
    expect(await b.getMetrics()).toMatchObject({ ...NONE, reconciledCommits: 1, reconciledAmount: 5, unchargedCommits: 2, unchargedAmount: 13 });
    await b.close();
  });

  it('counts fail-open use as never charged with a store that has no charge()', async () => {
    const { store, state } = switchable({ withoutCharge: true });
    const b = make({ store });
    state.down = true;
    const d = await b.requestBudget(req());
    expect((await b.commit(d.allocationId!, 4)).charged).toBe(0);
    state.down = false;
    await b.sweep();
    expect(await b.getMetrics()).toMatchObject({ ...NONE, unchargedCommits: 1, unchargedAmount: 4 });
    await b.close();
  });

  it('charges once when a charge whose reply was lost is sent again', async () => {
    const { store, state, inner } = switchable({ loseFirstChargeReply: true });
    const b = make({ store });
    const errors: unknown[] = [];
    b.on('storeError', (e) => errors.push(e));
    state.down = true;
    const d = await b.requestBudget(req());
    await b.commit(d.allocationId!, 8);
    errors.length = 0;
    state.down = false;
    expect(await b.sweep()).toBe(0); // the charge applied, its reply lost: still waiting
    expect(errors).toEqual([new Error('RedisBudgetStore.charge: no reply from Redis within 1000 ms; it may or may not have been applied')]);
    expect(await b.getMetrics()).toMatchObject({ ...NONE, unreconciledCommits: 1, unreconciledAmount: 8 });
    await b.sweep();
    expect(state.charges.map((c) => c.id)).toEqual([d.allocationId, d.allocationId]);
    expect(await inner.usage(['tokens:daily:*each|u1|2026-11-25'], Date.UTC(2026, 10, 25, 12))).toEqual([{ committed: 8, reserved: 0 }]);
    expect(await b.getMetrics()).toMatchObject({ ...NONE, reconciledCommits: 1, reconciledAmount: 8 });
    await b.close();
  });

  it('tries once more at close(), and refuses a commit of a fail-open allocation that expired', async () => {
    const { store, state, inner } = switchable();
    let now = Date.UTC(2026, 10, 25, 12);
    const b = make({ store, now: () => now });
    state.down = true;
    const late = await b.requestBudget(req({ estimatedDuration: 1 }));
    const d = await b.requestBudget(req());
    await b.commit(d.allocationId!, 3);
    now += 1_000;
    await expect(b.commit(late.allocationId!, 1)).rejects.toThrow(new RangeError(`Unknown allocation '${late.allocationId}': it was never approved, is already settled, or expired`));
    state.down = false;
    await b.close();
    expect(await inner.usage(['tokens:daily:*each|u1|2026-11-25'], now)).toEqual([{ committed: 3, reserved: 0 }]);
  });

  it('rejects a bad maxUnreconciled', () => {
    expect(() => make({ maxUnreconciled: -1 })).toThrow(new RangeError('Expected integer in [0, 2147483647] for maxUnreconciled but received -1 of type number'));
  });
});

describe.skipIf(!hasRedisServer)('BudgetForcing: reconciling fail-open approvals over a real Redis outage', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer(undefined, { persistence: 'aof-always' });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('charges what was committed while redis-server was down once it is back (metrics exact)', async () => {
    // A client the test reconnects itself, so that "back" is an event, not a wait.
    const client = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false, retryStrategy: () => null });
    client.on('error', () => undefined);
    const store = new RedisBudgetStore({ client, prefix: `{reconcile-${process.pid}}:budget:`, commandTimeoutMs: 2000 });
    const b = new BudgetForcing({ store, onStoreError: 'fail-open', sweepIntervalMs: 3_600_000, budgets: [{ resourceType: T, scope: 'daily', limit: 1_000, shared: true }] });
    try {
      const backed = await b.requestBudget(req({ requestedAmount: 100 }));
      await b.commit(backed.allocationId!, 100);
      const ended = once(client, 'end');
      await server.kill();
      await ended;
      const ds = await Promise.all([50, 50, 50, 50].map((a) => b.requestBudget(req({ requestedAmount: a }))));
      expect(ds.every((d) => d.approved && d.unbacked)).toBe(true);
      const charged = await Promise.all([40, 25.25, 0].map((a, i) => b.commit(ds[i]!.allocationId!, a)));
      expect(charged.map((c) => c.charged)).toEqual([40, 25.25, 0]);
      await b.release(ds[3]!.allocationId!);
      // Readable during the outage: the counters are this process's own; utilisation needs the store.
      expect(await b.getMetrics()).toMatchObject({ ...NONE, unreconciledCommits: 2, unreconciledAmount: 65.25, utilisation: { [T]: null } });

      await server.restart();
      await client.connect();
      await b.sweep();
      expect(await b.getMetrics()).toMatchObject({ ...NONE, reconciledCommits: 2, reconciledAmount: 65.25, utilisation: { [T]: 0.16525 } });
      expect((await b.status('u1')).map((s) => [s.committed, s.reserved])).toEqual([[165.25, 0]]);
    } finally {
      await b.close();
      client.disconnect();
    }
  });
});
