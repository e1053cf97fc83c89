/**
 * Routing state shared across replicas through Redis (issue 19): health and outcome statistics
 * of several routers on one real redis-server, in one process (two connections each) and across
 * processes (a child running lib/), with Redis killed and restarted underneath.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { RewiringExperts, type RewiringExpertsOptions, RoutingStrategy } from '../src/index';
import { hasRedisServer, type RedisServer, redisSkipReason, startRedisServer } from './support/redis-server';

if (!hasRedisServer) console.warn(`routing-shared-state.test.ts skipped: ${redisSkipReason}`);

const SQL = 'optimise this SQL join with an index on the orders table';
const routers: RewiringExperts[] = [];
let n = 0;

function router(url: string, prefix: string, options: RewiringExpertsOptions = {}): RewiringExperts {
  const r = new RewiringExperts({ ...options, sharedState: { url, prefix, ...options.sharedState } });
  r.on('sharedState', () => undefined); // the tests that kill Redis listen themselves; no warnings
  routers.push(r);
  return r;
}

/** Resolves at the router's next report that Redis answers again. */
function connected(r: RewiringExperts): Promise<void> {
  return new Promise((resolve) => {
    const on = (e: { connected: boolean }) => {
      if (!e.connected) return;
      r.off('sharedState', on);
      resolve();
    };
    r.on('sharedState', on);
  });
}

afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.close()));
});

describe('sharedState options', () => {
  it('rejects bad options, naming them', () => {
    expect(() => new RewiringExperts({ sharedState: { url: 'redis://x', client: {} as never } })).toThrow(
      new TypeError('Expected one of options.sharedState.url and options.sharedState.client but received both'),
    );
    expect(() => new RewiringExperts({ sharedState: { prefix: 'routing:' } })).toThrow(
      new RangeError("Expected a prefix with a Redis Cluster hash tag such as '{capibara}:routing:' for options.sharedState.prefix but received 'routing:' of type string"),
    );
    expect(() => new RewiringExperts({ sharedState: { syncIntervalMs: 5 } })).toThrow(
      new RangeError('Expected integer in [10, 3600000] for options.sharedState.syncIntervalMs but received 5 of type number'),
    );
    expect(() => new RewiringExperts({ sharedState: { url: 'http://x' } })).toThrow(
      new RangeError("Expected a URL starting with 'redis://' or 'rediss://' for options.sharedState.url but received 'http://x' of type string"),
    );
    expect(() => new RewiringExperts({ sharedState: { client: { status: 'ready' } as never } })).toThrow(TypeError);
  });

  it('sync() is false and close() idempotent without shared state; calls after close throw ClosedError', async () => {
    const r = new RewiringExperts();
    expect(await r.sync()).toBe(false);
    const first = r.close();
    expect(r.close()).toBe(first);
    await first;
    expect(() => r.routeQuery(SQL)).toThrow('RewiringExperts is closed');
  });
});

describe.skipIf(!hasRedisServer)('routing state shared through Redis', () => {
  let server: RedisServer;
  let prefix: string;

  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server?.stop();
  });
  const fresh = () => (prefix = `{routing-${process.pid}-${n++}}:routing:`);

  it('a cooldown started on one replica is avoided by the other without waiting for a poll', async () => {
    fresh();
    let t = 1_000_000;
    const clock = () => t;
    const a = router(server.url, prefix, { clock, sharedState: { syncIntervalMs: 3_600_000 } });
    const b = router(server.url, prefix, { clock, sharedState: { syncIntervalMs: 3_600_000 } });
    expect(await a.sync()).toBe(true);
    expect(await b.sync()).toBe(true);
    const d = b.routeQuery(SQL);
    expect(d.expertId).toBe('sql');
    b.recordOutcome(d.id, { success: true, latencyMs: 10 });

    const cooled = once(b, 'cooldown');
    const da = a.routeQuery(SQL);
    a.recordOutcome(da.id, { success: false, latencyMs: 5, nonRetryable: true });
    const [id, status] = await cooled; // the published event, not a poll (the poll runs hourly here)
    expect(id).toBe('sql');
    expect(status).toMatchObject({ available: false, coolingUntil: t + 5000, reason: 'non-retryable' });
    expect(b.routeQuery(SQL).expertId).not.toBe('sql');
    expect(b.expertHealth('sql')).toMatchObject({ available: false, reason: 'non-retryable' });

    // The cooldown ends on every replica at its time, and the fleet's window starts afresh.
    t += 5000;
    const back = once(b, 'recovered');
    expect(b.routeQuery(SQL).expertId).toBe('sql');
    expect((await back)[0]).toBe('sql');
    expect(await b.sync()).toBe(true);
    expect(b.expertHealth('sql')).toMatchObject({ available: true, windowRequests: 0, windowFailures: 0 });
  });

  it('a cooldown whose event was missed reaches a replica with its next poll', async () => {
    fresh();
    const t = 3_000_000;
    const b = router(server.url, prefix, { clock: () => t, sharedState: { syncIntervalMs: 20 } });
    expect(await b.sync()).toBe(true);
    // Written straight into Redis, published nowhere: only the poll can bring it.
    const { Redis } = await import('ioredis');
    const raw = new Redis(server.url);
    try {
      await raw.hset(`${prefix}cooling`, 'sql', `${t + 60_000}|retry-after`);
    } finally {
      raw.disconnect();
    }
    const [id, status] = await once(b, 'cooldown');
    expect(id).toBe('sql');
    expect(status).toMatchObject({ available: false, coolingUntil: t + 60_000, reason: 'retry-after' });
    expect(b.routeQuery(SQL).expertId).not.toBe('sql');
  });

  it('failure rates count the whole fleet: one failure on each of two replicas trips the cooldown', async () => {
    fresh();
    const t = 2_000_000;
    const a = router(server.url, prefix, { clock: () => t, health: { minRequests: 2, failureRate: 0.5 } });
    const b = router(server.url, prefix, { clock: () => t, health: { minRequests: 2, failureRate: 0.5 } });
    await Promise.all([a.sync(), b.sync()]);
    const da = a.routeQuery(SQL);
    a.recordOutcome(da.id, { success: false, latencyMs: 100 });
    expect(await a.sync()).toBe(true);
    // One failure of one request: below minRequests, locally and in the fleet.
    expect(a.expertHealth('sql')).toMatchObject({ available: true, windowRequests: 1, windowFailures: 1 });

    const cooled = once(a, 'cooldown');
    const db = b.routeQuery(SQL);
    b.recordOutcome(db.id, { success: false, latencyMs: 100 });
    const [, status] = await cooled;
    expect(status).toMatchObject({ available: false, reason: 'failure-rate', coolingUntil: t + 5000 });
    await b.sync();
    expect(b.expertHealth('sql')).toMatchObject({ available: false, windowRequests: 2, windowFailures: 2, failureRate: 1 });
    expect(a.routeQuery(SQL).expertId).not.toBe('sql');
  });

  it("other replicas' outcomes feed the strategy's statistics", async () => {
    fresh();
    const a = router(server.url, prefix);
    const b = router(server.url, prefix);
    await Promise.all([a.sync(), b.sync()]);
    expect(b.previewRoute(SQL).reasons.strategy).toMatchObject({ latencyMs: 1000, success: 0.5 });
    for (let i = 0; i < 5; i++) {
      const d = a.routeQuery(SQL);
      a.recordOutcome(d.id, { success: true, latencyMs: 200 });
    }
    await a.sync();
    expect(await b.sync()).toBe(true);
    const s = b.previewRoute(SQL).reasons.strategy;
    expect(s.latencyMs).toBe(200);
    expect(s.success).toBeCloseTo(6 / 7, 2); // Beta(1, 1) over 5 fleet successes, barely decayed
    // b's own counters stay its own.
    expect(b.getMetrics().outcomes).toBe(0);
  });

  it("ADAPTIVE: LinUCB arms stay local; a caller's ioredis client works and stays open", async () => {
    fresh();
    const { Redis } = await import('ioredis');
    const client = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false });
    await once(client, 'ready');
    try {
      const adaptive = { strategy: RoutingStrategy.ADAPTIVE, seed: 3 } as const;
      const a = new RewiringExperts({ ...adaptive, sharedState: { client, prefix } });
      routers.push(a);
      const b = router(server.url, prefix, adaptive);
      const linucb = router(server.url, prefix, { strategy: RoutingStrategy.ADAPTIVE });
      await Promise.all([a.sync(), b.sync(), linucb.sync()]);
      for (let i = 0; i < 6; i++) {
        const d = a.routeQuery(SQL);
        a.recordOutcome(d.id, { success: true, latencyMs: 50, expertId: d.expertId });
      }
      expect(await a.sync()).toBe(true);
      await Promise.all([b.sync(), linucb.sync()]);
      // The router's ADAPTIVE is LinUCB: the other replica's outcomes leave its arms as they were,
      // while the shared statistics moved.
      expect(b.previewRoute(SQL).reasons.strategy.observations).toBe(0);
      expect(linucb.previewRoute(SQL).reasons.strategy.observations).toBe(0);
      // The client the caller gave stays open after close().
      await a.close();
      expect(client.status).toBe('ready');
    } finally {
      client.disconnect();
    }
  });

  it("ADAPTIVE with Thompson sampling counts other replicas' outcomes", async () => {
    // The router takes no adaptiveMethod: Thompson's remote learning is checked on the strategy itself.
    const { createStrategy } = await import('../src/experts/routing/strategies');
    const s = createStrategy(RoutingStrategy.ADAPTIVE, { dimensions: 4, adaptiveMethod: 'thompson', seed: 1 });
    const before = s.rank([{ id: 'x', relevance: 0.5, inFlight: 0, capacity: 4 }], new Float32Array(4), {}, 0)[0]!.reasons.mean;
    for (let i = 0; i < 8; i++) s.observe('x', { success: true, latencyMs: 10 }, 0);
    const after = s.rank([{ id: 'x', relevance: 0.5, inFlight: 0, capacity: 4 }], new Float32Array(4), {}, 0)[0]!.reasons.mean;
    expect(before).toBe(0.5);
    expect(after).toBeCloseTo(9 / 10, 10); // Beta(1 + 8, 1)
    expect(s.stats('x', 0)).toMatchObject({ observations: 8 });
    const lin = createStrategy(RoutingStrategy.ADAPTIVE, { dimensions: 4, seed: 1 });
    lin.observe('x', { success: true, latencyMs: 10 }, 0);
    expect(lin.rank([{ id: 'x', relevance: 0.5, inFlight: 0, capacity: 4 }], Float32Array.of(1, 0, 0, 0), {}, 0)[0]!.reasons.observations).toBe(0);
  });

  it('routes on alone while Redis is down, then restores its cooldowns and resynchronises', async () => {
    const own = await startRedisServer();
    try {
      fresh();
      const a = router(own.url, prefix, { sharedState: { commandTimeoutMs: 500 } });
      const b = router(own.url, prefix, { sharedState: { commandTimeoutMs: 500 } });
      await Promise.all([a.sync(), b.sync()]);
      const down = once(a, 'sharedState');
      await own.kill();
      expect((await down)[0]).toMatchObject({ connected: false });
      expect(await a.sync()).toBe(false);

      // No throw, no wait: decisions go on, and this replica's own outcomes still cool experts down.
      const d = a.routeQuery(SQL);
      expect(d.expertId).toBe('sql');
      a.recordOutcome(d.id, { success: false, latencyMs: 50, retryAfterMs: 60_000 });
      expect(a.routeQuery(SQL).expertId).not.toBe('sql');
      expect(b.routeQuery(SQL).expertId).toBe('sql'); // b cannot know

      const up = Promise.all([connected(a), connected(b)]);
      await own.restart();
      await up;
      // a restored its cooldown into the empty Redis when it reconnected; b reads it.
      expect(await a.sync()).toBe(true);
      expect(await b.sync()).toBe(true);
      expect(b.expertHealth('sql')).toMatchObject({ available: false, reason: 'retry-after' });
      expect(b.routeQuery(SQL).expertId).not.toBe('sql');
    } finally {
      await own.stop();
    }
  });

  it('a replica in another process (lib/) cools an expert down for this one', async () => {
    fresh();
    const b = router(server.url, prefix);
    expect(await b.sync()).toBe(true);
    const lib = path.resolve(__dirname, '../lib/index.js');
    const code = `
      const { RewiringExperts } = require(${JSON.stringify(lib)});
      (async () => {
        const r = new RewiringExperts({ sharedState: { url: ${JSON.stringify(server.url)}, prefix: ${JSON.stringify(prefix)} } });
        await r.sync();
        const d = r.routeQuery(${JSON.stringify(SQL)});
        r.recordOutcome(d.id, { success: false, latencyMs: 20, nonRetryable: true });
        const ok = await r.sync();
        process.stdout.write(JSON.stringify({ expertId: d.expertId, ok, health: r.expertHealth(d.expertId) }));
        await r.close();
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const cooled = once(b, 'cooldown');
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const [code_] = (await once(child, 'exit')) as [number];
    expect(err).toBe('');
    expect(code_).toBe(0);
    const res = JSON.parse(out) as { expertId: string; ok: boolean; health: { reason: string } };
    expect(res).toMatchObject({ expertId: 'sql', ok: true, health: { reason: 'non-retryable' } });
    const [id] = await cooled;
    expect(id).toBe('sql');
    expect(b.routeQuery(SQL).expertId).not.toBe('sql');
  });
});
