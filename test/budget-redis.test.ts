import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { BudgetForcing, type BudgetRequest, RedisBudgetStore, ResourceType } from '../src/index';
import { hasRedisServer, type RedisServer, redisSkipReason, startRedisServer } from './support/redis-server';

if (!hasRedisServer) console.warn(`budget-redis.test.ts skipped: ${redisSkipReason}`);

const lib = resolve(__dirname, '..', 'lib', 'index.js');
const req = (over: Partial<BudgetRequest> = {}): BudgetRequest => ({
  resourceType: ResourceType.TOKENS, requestedAmount: 1, priority: 1, estimatedDuration: 60, requesterId: 'u1', ...over,
});

/** A child process running `n` concurrent requestBudget calls through its own BudgetForcing + RedisBudgetStore. */
function child(url: string, prefix: string, n: number, limit: number): Promise<number> {
  const code = `
    const { BudgetForcing, RedisBudgetStore, ResourceType } = require(${JSON.stringify(lib)});
    (async () => {
      const b = new BudgetForcing({ store: new RedisBudgetStore({ url: ${JSON.stringify(url)}, prefix: ${JSON.stringify(prefix)} }),
        budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit: ${limit}, shared: true }] });
      const ds = await Promise.all(Array.from({ length: ${n} }, (_, i) => b.requestBudget({ resourceType: ResourceType.TOKENS,
        requestedAmount: 1, priority: 1, estimatedDuration: 60, requesterId: 'p' + process.pid + '-' + i })));
      process.stdout.write(String(ds.filter((d) => d.approved).length));
      await b.close();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  return new Promise((ok, fail) => {
    const p = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (status) => (status === 0 ? ok(Number(out)) : fail(new Error(`child exited with ${status}`))));
  });
}

describe.skipIf(!hasRedisServer)('BudgetForcing over a real redis-server', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('never approves past a HARD limit with 4 processes × 250 concurrent requests', async () => {
    const prefix = `{t${Date.now()}}:budget:`;
    const approved = await Promise.all([0, 1, 2, 3].map(() => child(redis.url, prefix, 250, 300)));
    expect(approved.reduce((a, b) => a + b, 0)).toBe(300);
    const b = new BudgetForcing({ store: new RedisBudgetStore({ url: redis.url, prefix }), budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit: 300, shared: true }] });
    const [s] = await b.status('anyone');
    expect(s).toMatchObject({ reserved: 300, committed: 0 });
    await b.close();
  });

  it('reconnects while a caller loops on offline decisions without yielding', async () => {
    const own = await startRedisServer();
    // onStateLoss 'reset': the restarted server has no persistence, so under the default ('fail') the
    // day's window is refused after the restart (issue 20); this test is about reconnecting.
    const store = new RedisBudgetStore({ url: own.url, commandTimeoutMs: 300, onStateLoss: 'reset' });
    store.on('stateLoss', () => undefined);
    const b = new BudgetForcing({ store, budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit: 1e9 }] });
    try {
      expect((await b.requestBudget(req())).approved).toBe(true);
      await own.stop();
      expect((await b.requestBudget(req())).approved).toBe(false); // fail-closed: the store is offline
      const back = await startRedisServer(own.port);
      try {
        // Before: offline decisions settled as microtasks, so this loop never let the client
        // reconnect (no approval for seconds after Redis was back). The cap only ends a failure.
        const stopAt = Date.now() + 15_000;
        let approved = false;
        while (!approved && Date.now() < stopAt) {
          approved = (await b.requestBudget(req())).approved;
        }
        expect(approved).toBe(true);
      } finally {
        await back.stop();
      }
    } finally {
      await b.close();
      await own.stop();
    }
  });

  it('fails closed, or open when asked, once Redis stops mid-run', async () => {
    const own = await startRedisServer();
    const budgets = [{ resourceType: ResourceType.TOKENS, scope: 'daily' as const, limit: 100 }];
    const closed = new BudgetForcing({ store: new RedisBudgetStore({ url: own.url, commandTimeoutMs: 300 }), budgets });
    const open = new BudgetForcing({ store: new RedisBudgetStore({ url: own.url, commandTimeoutMs: 300 }), budgets, onStoreError: 'fail-open' });
    expect((await closed.requestBudget(req())).approved).toBe(true);
    expect((await open.requestBudget(req())).approved).toBe(true);
    await own.stop();
    const t0 = Date.now();
    const denied = await closed.requestBudget(req());
    expect(denied.approved).toBe(false);
    expect(denied.message).toMatch(/^Denied: the budget store is unavailable \(.+\); onStoreError is 'fail-closed'$/);
    const unbacked = await open.requestBudget(req());
    expect(unbacked).toMatchObject({ approved: true, unbacked: true });
    expect(Date.now() - t0).toBeLessThan(5000); // bounded by the command timeout, no hang
    await closed.close();
    await open.close();
  });
});
