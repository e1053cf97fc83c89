/**
 * RedisBudgetStore when Redis loses the budget state (issue 20, item 3): the epoch check in every
 * script, the loss marker other processes honour, onStateLoss, acceptStateLoss(), the run_id
 * signal at reconnect, requirePersistence, and BudgetForcing over a lost state.
 */
import { once } from 'node:events';

import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { BudgetForcing, BudgetStateLossError, RedisBudgetStore, type RedisBudgetStoreOptions, ResourceType, type StateLossEvent, type WindowCheck } from '../src/index';
import { hasRedisServer, type RedisServer, redisSkipReason, startRedisServer } from './support/redis-server';

if (!hasRedisServer) console.warn(`budget-redis-state-loss.test.ts skipped: ${redisSkipReason}`);

let prefixes = 0;
const freshPrefix = () => `{loss-${process.pid}-${prefixes++}}:budget:`;
const iso = (t: number) => new Date(t).toISOString();
const win = (key: string, cap: number, startsAt?: number | null): WindowCheck => ({ key, cap, expiresAt: null, startsAt });
const reserve = (s: RedisBudgetStore, id: string, amount: number, windows: WindowCheck[], now = Date.now()) =>
  s.reserve({ id, amount, windows, now, expiresAt: now + 600_000, meta: id });
// A client that never reconnects by itself: the test decides when it comes back.
const MANUAL: RedisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false, retryStrategy: () => null };
const lossMessage = (lostAt: number, key: string, began: string) =>
  `RedisBudgetStore.reserve: Redis lost the budget state at ${iso(lostAt)} (restarted without persistence?); windows open then cannot be ` +
  `vouched for until they end, and window '${key}' began ${began} — see the README (BudgetForcing, Redis persistence)`;

/** Process warnings of the budget stores while a test runs (delivered on the next tick). */
function budgetWarnings() {
  const seen: Array<{ code: string; message: string }> = [];
  const on = (w: Error & { code?: string }) => {
    if (w.name === 'CapibaraBudgetWarning') seen.push({ code: w.code ?? '', message: w.message });
  };
  process.on('warning', on);
  return {
    async read() {
      await new Promise((resolve) => setImmediate(resolve));
      return seen;
    },
    stop: () => process.off('warning', on),
  };
}

describe.skipIf(!hasRedisServer)('RedisBudgetStore after Redis lost the budget state', () => {
  let server: RedisServer;
  const open: Array<{ close(): Promise<void> }> = [];
  const store = (options: RedisBudgetStoreOptions) => {
    const s = new RedisBudgetStore({ ...(options.client ? {} : { url: server.url }), requirePersistence: 'ignore', ...options });
    open.push(s);
    return s;
  };
  beforeAll(async () => {
    server = await startRedisServer(undefined, { persistence: 'none' });
  });
  afterAll(async () => {
    await Promise.all(open.map((s) => s.close()));
    await server?.stop();
  });

  // A store that used the namespace, then Redis restarted without persistence; resolves once the store has noticed.
  async function lose(options: RedisBudgetStoreOptions = {}) {
    const prefix = options.prefix ?? freshPrefix();
    const a = store({ ...options, prefix });
    const events: StateLossEvent[] = [];
    a.on('stateLoss', (e: StateLossEvent) => events.push(e));
    const t0 = Date.now();
    expect((await reserve(a, 'before', 10, [win('w', 10, t0 - 1000)], t0)).placed).toBe(true);
    const killedAt = Date.now();
    const noticed = once(a, 'stateLoss');
    await server.restart(); // SIGKILL, then a fresh redis-server on the same port: empty
    await noticed; // the store reconnects by itself and checks the new connection
    return { a, prefix, t0, killedAt, events, lostAt: a.stateLostAt! };
  }

  it("refuses windows that began before the loss with a clear error; windows begun after it work (onStateLoss 'fail')", async () => {
    const { a, t0, killedAt, events, lostAt } = await lose();
    expect(events).toEqual([{ lostAt, recordedHere: true, onStateLoss: 'fail' }]);
    expect(lostAt).toBeGreaterThanOrEqual(killedAt);

    const err = (await reserve(a, 'r1', 1, [win('w', 10, t0 - 1000)]).catch((e: unknown) => e)) as BudgetStateLossError;
    expect(err).toBeInstanceOf(BudgetStateLossError);
    expect(err.message).toBe(lossMessage(lostAt, 'w', iso(t0 - 1000)));
    expect(err).toMatchObject({ name: 'BudgetStateLossError', lostAt, windowKey: 'w', windowStartsAt: t0 - 1000 });
    // A window whose start the caller does not give cannot be vouched for either.
    await expect(reserve(a, 'r2', 1, [win('fresh', 10, lostAt), win('unknown', 10)])).rejects.toThrow(lossMessage(lostAt, 'unknown', 'at an unknown time'));
    // All or nothing: the window begun after the loss got nothing from the refused reservation.
    expect(await reserve(a, 'r3', 10, [win('fresh', 10, lostAt)])).toEqual({ placed: true, before: [{ committed: 0, reserved: 0 }], refusedBy: -1 });
    expect(await a.usage(['fresh', 'w'], Date.now())).toEqual([{ committed: 0, reserved: 10 }, { committed: 0, reserved: 0 }]);
    expect(events).toHaveLength(1);
  });

  it('makes a client started after the loss honour it, and acceptStateLoss() ends it for every client', async () => {
    const { a, prefix, t0, lostAt } = await lose();
    const c = store({ prefix });
    const seen: StateLossEvent[] = [];
    c.on('stateLoss', (e: StateLossEvent) => seen.push(e));
    await expect(reserve(c, 'c1', 1, [win('w', 10, t0 - 1000)])).rejects.toThrow(lossMessage(lostAt, 'w', iso(t0 - 1000)));
    expect(seen).toEqual([{ lostAt, recordedHere: false, onStateLoss: 'fail' }]);
    expect(c.stateLostAt).toBe(lostAt);

    await a.acceptStateLoss();
    expect(a.stateLostAt).toBeNull();
    // The other client learns it from its next reply; the window counts from what it holds now: nothing.
    expect(await reserve(c, 'c2', 10, [win('w', 10, t0 - 1000)])).toEqual({ placed: true, before: [{ committed: 0, reserved: 0 }], refusedBy: -1 });
    expect(c.stateLostAt).toBeNull();
    const later = store({ prefix });
    expect((await reserve(later, 'l1', 0, [win('w', 10, t0 - 1000)])).placed).toBe(true);
    expect(later.stateLostAt).toBeNull();
  });

  it('notices the loss when a client that never knew the old state wrote the namespace first', async () => {
    const prefix = freshPrefix();
    const client = new Redis(server.url, MANUAL);
    client.on('error', () => undefined);
    const a = store({ client, prefix });
    const t0 = Date.now();
    expect((await reserve(a, 'a1', 10, [win('w', 10, t0 - 1000)], t0)).placed).toBe(true);
    const ended = once(client, 'end');
    await server.restart();
    await ended;
    // A new process cannot tell an empty Redis from a new namespace: it starts one.
    const n = store({ prefix });
    expect((await reserve(n, 'n1', 10, [win('w', 10, t0 - 1000)])).placed).toBe(true);
    expect(n.stateLostAt).toBeNull();
    // The old client comes back with the old epoch: the epoch changed and was never superseded, so state was lost.
    const noticed = once(a, 'stateLoss') as Promise<[StateLossEvent]>;
    await client.connect();
    const [e] = await noticed;
    expect(e).toEqual({ lostAt: e.lostAt, recordedHere: true, onStateLoss: 'fail' });
    await expect(reserve(n, 'n2', 1, [win('w', 10, t0 - 1000)])).rejects.toThrow(BudgetStateLossError);
    await expect(reserve(a, 'a2', 1, [win('w', 10, t0 - 1000)])).rejects.toThrow(lossMessage(e.lostAt, 'w', iso(t0 - 1000)));
    client.disconnect();
  });

  it("goes on from zero under onStateLoss 'reset', and still reports the loss", async () => {
    const { a, t0, events, lostAt } = await lose({ onStateLoss: 'reset' });
    expect(events).toEqual([{ lostAt, recordedHere: true, onStateLoss: 'reset' }]);
    expect(await reserve(a, 'r1', 10, [win('w', 10, t0 - 1000)])).toEqual({ placed: true, before: [{ committed: 0, reserved: 0 }], refusedBy: -1 });
  });

  it('counts a namespace that outlived a restart of Redis without an append-only file as lost (another run_id: a snapshot)', async () => {
    const prefix = freshPrefix();
    const a = store({ prefix });
    const events: StateLossEvent[] = [];
    a.on('stateLoss', (e: StateLossEvent) => events.push(e));
    const t0 = Date.now();
    expect((await reserve(a, 'a1', 10, [win('w', 10, t0 - 1000)], t0)).placed).toBe(true);
    const admin = new Redis(server.url);
    try {
      // As if Redis had loaded the namespace from an RDB snapshot taken by an earlier run of itself.
      await admin.set(`${prefix}runid`, 'an-earlier-run');
      const noticed = once(a, 'stateLoss');
      await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes'); // the store reconnects and checks again
      await noticed;
      expect(events).toEqual([{ lostAt: a.stateLostAt, recordedHere: true, onStateLoss: 'fail' }]);
      await expect(reserve(a, 'a2', 0, [win('w', 10, t0 - 1000)])).rejects.toThrow(BudgetStateLossError);
      expect(await admin.get(`${prefix}runid`)).toMatch(/^\w{40}$/);
    } finally {
      admin.disconnect();
    }
  });

  it('BudgetForcing: fail-open approves what the store cannot vouch for and reconciles it; windows begun after the loss work', async () => {
    const { lostAt, prefix } = await lose();
    const clock = { t: lostAt + 1_000 };
    const s = store({ prefix });
    s.on('stateLoss', () => undefined);
    const b = new BudgetForcing({
      store: s, onStoreError: 'fail-open', now: () => clock.t, sessionTtlMs: 60_000, sweepIntervalMs: 3_600_000,
      budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit: 100, shared: true }, { resourceType: ResourceType.TOKENS, scope: 'session', limit: 50 }],
    });
    const req = { resourceType: ResourceType.TOKENS, requestedAmount: 10, priority: 1, estimatedDuration: 60, requesterId: 'u1', sessionId: 's1' };
    // The day began before the loss, and the session may have (it can be up to 60 s old).
    const d1 = await b.requestBudget(req);
    expect(d1).toMatchObject({ approved: true, unbacked: true });
    expect(await b.commit(d1.allocationId!, 30)).toEqual({ charged: 30, returned: 0, overLimit: false, unbacked: true });
    await b.sweep();
    expect(await b.getMetrics()).toMatchObject({ reconciledCommits: 1, reconciledAmount: 30, unreconciledCommits: 0, unreconciledAmount: 0 });
    // Charged to both windows, on the counters Redis holds since the loss.
    const day = new Date(clock.t).toISOString().slice(0, 10);
    expect((await b.status('u1', 's1')).map((w) => [w.window, w.committed, w.reserved])).toEqual([[day, 30, 0], ['session:s1', 30, 0]]);
    // The next day's window, and a session that cannot have begun before the loss, are vouched for.
    const nextDay = Date.parse(day) + 86_400_000;
    clock.t = nextDay + 1_000;
    expect(await b.requestBudget(req)).toMatchObject({ approved: true, unbacked: false });
    await b.close();
  });
});

describe.skipIf(!hasRedisServer)('RedisBudgetStore: requirePersistence', () => {
  let plain: RedisServer;
  let aof: RedisServer;
  let noConfig: RedisServer;
  const opened: RedisBudgetStore[] = [];
  const store = (server: RedisServer, options: RedisBudgetStoreOptions = {}) => {
    const s = new RedisBudgetStore({ url: server.url, prefix: freshPrefix(), ...options });
    opened.push(s);
    return s;
  };
  beforeAll(async () => {
    [plain, aof, noConfig] = await Promise.all([
      startRedisServer(undefined, { persistence: 'none' }),
      startRedisServer(undefined, { persistence: 'aof-always' }),
      startRedisServer(undefined, { persistence: 'aof-always', extraArgs: ['--rename-command', 'CONFIG', ''] }),
    ]);
  });
  afterAll(async () => {
    await Promise.all(opened.map((s) => s.close()));
    await Promise.all([plain, aof, noConfig].map((s) => s?.stop()));
  });
  const w = () => [win('w', 10, 0)];

  it("'warn' (the default): one warning per store about a Redis without an append-only file", async () => {
    const warnings = budgetWarnings();
    const client = new Redis(plain.url, MANUAL);
    client.on('error', () => undefined);
    try {
      const s = store(plain, { client, url: undefined });
      await reserve(s, 'r1', 1, w());
      const ended = once(client, 'end');
      const admin = new Redis(plain.url);
      await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      admin.disconnect();
      await ended;
      await client.connect(); // a new connection is checked again, without a second warning
      await reserve(s, 'r2', 1, w());
      expect(await warnings.read()).toEqual([{
        code: 'CAPIBARA_REDIS_PERSISTENCE',
        message: `RedisBudgetStore: Redis at 127.0.0.1:${plain.port} runs without an append-only file (appendonly no): a restart loses every budget counter; ` +
          "the store notices and refuses windows open at the loss until they end (onStateLoss 'fail'). HARD budgets need appendonly yes with appendfsync always " +
          "(README, BudgetForcing: Redis persistence); requirePersistence: 'refuse' refuses such a Redis, 'ignore' silences this.",
      }]);
      await reserve(store(plain, { onStateLoss: 'reset' }), 'x', 1, w());
      expect((await warnings.read())[1]!.message).toContain("starts those windows again from zero (onStateLoss 'reset'), so HARD budgets can overspend.");
    } finally {
      warnings.stop();
      client.disconnect();
    }
  });

  it("'refuse': every operation rejects while Redis runs without an append-only file", async () => {
    const warnings = budgetWarnings();
    try {
      const s = store(plain, { requirePersistence: 'refuse' });
      const why = `Redis at 127.0.0.1:${plain.port} runs without an append-only file (appendonly no) and requirePersistence is 'refuse'; nothing was sent (HARD budgets need appendonly yes with appendfsync always)`;
      await expect(reserve(s, 'r1', 1, w())).rejects.toThrow(new Error(`RedisBudgetStore.reserve: ${why}`));
      await expect(s.usage(['w'], Date.now())).rejects.toThrow(new Error(`RedisBudgetStore.usage: ${why}`));
      await expect(s.commit('r1', 1, Date.now())).rejects.toThrow(new Error(`RedisBudgetStore.commit: ${why}`));
      await expect(s.acceptStateLoss()).rejects.toThrow(new Error(`RedisBudgetStore.acceptStateLoss: ${why}`));
      // With an append-only file the same options work.
      expect((await reserve(store(aof, { requirePersistence: 'refuse' }), 'r1', 1, w())).placed).toBe(true);
      expect(await warnings.read()).toEqual([]);
    } finally {
      warnings.stop();
    }
  });

  it("'ignore' says nothing; appendfsync always says nothing; everysec and CONFIG refused are named", async () => {
    const warnings = budgetWarnings();
    const admin = new Redis(aof.url);
    try {
      await reserve(store(plain, { requirePersistence: 'ignore' }), 'r1', 1, w());
      await reserve(store(aof), 'r1', 1, w());
      expect(await warnings.read()).toEqual([]);

      await admin.config('SET', 'appendfsync', 'everysec');
      await reserve(store(aof), 'r1', 1, w());
      await admin.config('SET', 'appendfsync', 'always');
      // Managed Redis often refuses CONFIG: the store says it could not check, and works (even under 'refuse').
      expect((await reserve(store(noConfig, { requirePersistence: 'refuse' }), 'r1', 1, w())).placed).toBe(true);
      const [everysec, unchecked, ...rest] = await warnings.read();
      expect(rest).toEqual([]);
      expect(everysec).toEqual({
        code: 'CAPIBARA_REDIS_PERSISTENCE',
        message: `RedisBudgetStore: Redis at 127.0.0.1:${aof.port} syncs its append-only file once a second (appendfsync everysec): a crash can lose up to 1 s ` +
          'of budget decisions, which HARD budgets may then approve again; appendfsync always loses none.',
      });
      expect(unchecked!.message).toMatch(new RegExp(
        `^RedisBudgetStore: could not check the persistence of Redis at 127\\.0\\.0\\.1:${noConfig.port} \\(CONFIG GET was refused: ERR unknown command '(?:CONFIG|config)'.*\\); ` +
          'HARD budgets need appendonly yes with appendfsync always \\(README, BudgetForcing: Redis persistence\\)\\.$',
      ));
    } finally {
      warnings.stop();
      admin.disconnect();
    }
  });

  it('does not count a restart as a loss when Redis has an append-only file (another run_id, same epoch)', async () => {
    const client = new Redis(aof.url, MANUAL);
    client.on('error', () => undefined);
    const s = store(aof, { client, url: undefined, requirePersistence: 'ignore' });
    const events: StateLossEvent[] = [];
    s.on('stateLoss', (e: StateLossEvent) => events.push(e));
    const t0 = Date.now();
    expect((await reserve(s, 'a1', 10, [win('w', 10, t0 - 1000)], t0)).placed).toBe(true);
    const ended = once(client, 'end');
    await aof.restart(); // SIGKILL and restart: the append-only file brings everything back
    await ended;
    await client.connect();
    expect(await s.usage(['w'], Date.now())).toEqual([{ committed: 0, reserved: 10 }]);
    expect(await s.commit('a1', 7, Date.now())).toMatchObject({ reserved: 10, charged: 7 });
    expect(events).toEqual([]);
    expect(s.stateLostAt).toBeNull();
    client.disconnect();
  });
});
