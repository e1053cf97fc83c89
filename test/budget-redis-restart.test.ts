/**
 * HARD budgets across a Redis crash (issue 20, item 3): many concurrent requests against one
 * shared limit, redis-server SIGKILLed mid-run and restarted on the same port, requests going on.
 * With an append-only file the counters survive; without one the store must notice that Redis
 * lost them and refuse what it cannot vouch for. Either way: zero overspend.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { BudgetForcing, EnforcementLevel, RedisBudgetStore, ResourceType } from '../src/index';
import { hasRedisServer, type RedisServer, redisSkipReason, startRedisServer } from './support/redis-server';

if (!hasRedisServer) console.warn(`budget-redis-restart.test.ts skipped: ${redisSkipReason}`);

const LIMIT = 300_000;
const AMOUNT = 1_000;
const INSTANCES = 4;
const LOOPS = 8; // concurrent requesters per instance
const ANSWERED_AFTER = 200; // decisions each instance must get from the restarted server

// A decision the store answered (not one made because Redis could not be reached).
const answered = (message: string) => /^Approved|^Denied: budget '|lost the budget state/.test(message);

interface Run {
  approvedAmount: number;
  approvedBefore: number;
  approvedAfter: number;
  lossDenials: string[];
  /** What each store last saw of a recorded loss (stateLostAt). */
  lostAt: Array<number | null>;
  /** Codes of the process warnings the stores gave. */
  warnings: string[];
  day: string;
  dayStart: number;
}

async function crashRun(server: RedisServer): Promise<Run> {
  const t0 = Date.now();
  const prefix = `{restart-${process.pid}-${t0}}:budget:`;
  const stores: RedisBudgetStore[] = [];
  const budgets = Array.from({ length: INSTANCES }, () => {
    const store = new RedisBudgetStore({ url: server.url, prefix, commandTimeoutMs: 2000 });
    stores.push(store);
    // A frozen clock: the daily window cannot roll over during the test.
    return new BudgetForcing({
      store, enforcementLevel: EnforcementLevel.HARD, onStoreError: 'fail-closed', now: () => t0, sweepIntervalMs: 3_600_000,
      budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit: LIMIT, shared: true }],
    });
  });
  const day = new Date(t0).toISOString().slice(0, 10);
  const run: Run = { approvedAmount: 0, approvedBefore: 0, approvedAfter: 0, lossDenials: [], lostAt: [], warnings: [], day, dayStart: Date.parse(day) };
  const onWarning = (w: Error & { code?: string }) => {
    if (w.name === 'CapibaraBudgetWarning') run.warnings.push(w.code ?? '');
  };
  process.on('warning', onWarning);
  let phase: 'before' | 'down' | 'after' = 'before';
  let done = false;
  const answeredAfter = new Array<number>(INSTANCES).fill(0);
  let halfway!: () => void;
  const reachedHalf = new Promise<void>((resolve) => (halfway = resolve));
  let allAnswered!: () => void;
  const answeredEnough = new Promise<void>((resolve) => (allAnswered = resolve));

  const loop = async (b: BudgetForcing, i: number, j: number) => {
    for (let n = 0; !done; n++) {
      const started = phase;
      const d = await b.requestBudget({ resourceType: ResourceType.TOKENS, requestedAmount: AMOUNT, priority: 1, estimatedDuration: 600, requesterId: `r${i}-${j}` });
      if (d.approved) {
        run.approvedAmount += AMOUNT;
        if (started === 'before') run.approvedBefore++;
        if (started === 'after') run.approvedAfter++;
        if (run.approvedAmount >= LIMIT / 2) halfway();
        // Half are committed in full, half stay reserved: both must survive the crash.
        if (n % 2 === 0) await b.commit(d.allocationId!, AMOUNT).catch(() => undefined);
      } else if (/lost the budget state/.test(d.message)) {
        run.lossDenials.push(d.message);
      }
      if (started === 'after' && answered(d.message) && ++answeredAfter[i]! >= ANSWERED_AFTER && answeredAfter.every((a) => a >= ANSWERED_AFTER)) allAnswered();
      // Offline decisions settle on the next turn of the event loop; approvals need no pause.
    }
  };
  const loops = budgets.flatMap((b, i) => Array.from({ length: LOOPS }, (_, j) => loop(b, i, j)));
  try {
    await reachedHalf;
    phase = 'down';
    await server.kill();
    await server.restart();
    phase = 'after';
    await answeredEnough;
  } finally {
    done = true;
    await Promise.all(loops);
    run.lostAt = stores.map((s) => s.stateLostAt);
    await Promise.all(budgets.map((b) => b.close()));
    process.off('warning', onWarning);
  }
  return run;
}

describe.skipIf(!hasRedisServer)('HARD budgets across a redis-server crash (SIGKILL + restart)', () => {
  const servers: RedisServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('never overspends with appendonly yes + appendfsync always, and keeps approving after the restart', async () => {
    const server = await startRedisServer(undefined, { persistence: 'aof-always' });
    servers.push(server);
    const run = await crashRun(server);
    console.log(`AOF always: ${run.approvedAmount.toLocaleString('en-US')} approved against ${LIMIT.toLocaleString('en-US')} (${run.approvedBefore} before the crash, ${run.approvedAfter} after)`);
    expect(run.approvedAmount).toBeLessThanOrEqual(LIMIT);
    expect(run.approvedAfter).toBeGreaterThan(0);
    // The restart changed Redis's run_id, but the append-only file kept everything: no loss, no warning.
    expect(run.lossDenials).toEqual([]);
    expect(run.lostAt).toEqual([null, null, null, null]);
    expect(run.warnings).toEqual([]);
  }, 120_000);

  it('never overspends without persistence: windows open at the loss are refused', async () => {
    const server = await startRedisServer(undefined, { persistence: 'none' });
    servers.push(server);
    const run = await crashRun(server);
    console.log(`no persistence: ${run.approvedAmount.toLocaleString('en-US')} approved against ${LIMIT.toLocaleString('en-US')} (${run.approvedBefore} before the crash, ${run.approvedAfter} after)`);
    expect(run.approvedAmount).toBeLessThanOrEqual(LIMIT);
    expect(run.approvedAfter).toBe(0);
    expect(run.lossDenials.length).toBeGreaterThan(0);
    // Every store learned of the one loss, recorded by whichever noticed it first.
    const lostAt = run.lostAt[0]!;
    expect(lostAt).toBeGreaterThan(0);
    expect(run.lostAt).toEqual([lostAt, lostAt, lostAt, lostAt]);
    expect(new Set(run.lossDenials)).toEqual(new Set([
      `Denied: the budget store is unavailable (RedisBudgetStore.reserve: Redis lost the budget state at ${new Date(lostAt).toISOString()} ` +
        `(restarted without persistence?); windows open then cannot be vouched for until they end, and window 'tokens:daily:*shared|*|${run.day}' ` +
        `began ${new Date(run.dayStart).toISOString()} — see the README (BudgetForcing, Redis persistence)); onStoreError is 'fail-closed'`,
    ]));
    // One persistence warning per store, and one loss warning per store (nobody listens for 'stateLoss').
    expect(run.warnings.sort()).toEqual([...Array(4).fill('CAPIBARA_BUDGET_STATE_LOST'), ...Array(4).fill('CAPIBARA_REDIS_PERSISTENCE')]);
  }, 120_000);
});
