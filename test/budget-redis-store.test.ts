import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { once } from 'node:events';
import * as os from 'node:os';
import * as path from 'node:path';

import { Redis } from 'ioredis';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';

import { RedisBudgetStore } from '../src/budget/redis-store';
import { type BudgetStore, MemoryBudgetStore, type WindowCheck } from '../src/budget/store';
import { rng } from './support/random';
import { type RedisServer, freePort, hasRedisServer, redisSkipReason, startRedisServer } from './support/redis-server';

if (!hasRedisServer) console.warn(redisSkipReason);

const CLOSED = 'The budget store is closed';
let server: RedisServer | undefined;
let prefixes = 0;
// One namespace per store: tests share one server without seeing each other's keys.
const freshPrefix = () => `{t${process.pid}-${prefixes++}}:budget:`;

beforeAll(async () => {
  if (hasRedisServer) server = await startRedisServer();
});
// test/support/redis-server.ts stops every server it started after this file's tests.

const win = (key: string, cap: number, expiresAt: number | null = null): WindowCheck => ({ key, cap, expiresAt });

function reserve(s: BudgetStore, id: string, amount: number, windows: WindowCheck[], now: number, expiresAt = now + 60_000, meta = `meta of ${id}`) {
  return s.reserve({ id, amount, windows, now, expiresAt, meta });
}

// Every case runs against both stores: the Redis store must behave as the in-process one does.
interface Case {
  name: string;
  run(s: BudgetStore, t: number): Promise<void>;
}

const cases: Case[] = [
  {
    name: 'places a reservation in every window or in none',
    async run(s, t) {
      const ws = [win('a', 10), win('b', 5)];
      expect(await reserve(s, 'r1', 4, ws, t)).toEqual({ placed: true, before: [{ committed: 0, reserved: 0 }, { committed: 0, reserved: 0 }], refusedBy: -1 });
      expect(await reserve(s, 'r2', 3, ws, t)).toEqual({ placed: false, before: [{ committed: 0, reserved: 4 }, { committed: 0, reserved: 4 }], refusedBy: 1 });
      expect(await s.usage(['a', 'b'], t)).toEqual([{ committed: 0, reserved: 4 }, { committed: 0, reserved: 4 }]);
      expect(await s.commit('r2', 3, t)).toBeNull();
    },
  },
  {
    name: 'allows committed + reserved + amount exactly equal to the cap',
    async run(s, t) {
      const ws = [win('a', 10)];
      expect((await reserve(s, 'r1', 6, ws, t)).placed).toBe(true);
      await s.commit('r1', 6, t);
      expect(await reserve(s, 'r2', 4, ws, t)).toEqual({ placed: true, before: [{ committed: 6, reserved: 0 }], refusedBy: -1 });
      expect(await reserve(s, 'r3', 1, ws, t)).toEqual({ placed: false, before: [{ committed: 6, reserved: 4 }], refusedBy: 0 });
      expect((await reserve(s, 'r4', 0, ws, t)).placed).toBe(true);
    },
  },
  {
    name: 'reports the index of the first window that refuses',
    async run(s, t) {
      await reserve(s, 'c', 5, [win('c', 5)], t);
      await reserve(s, 'd', 5, [win('d', 5)], t);
      const r = await reserve(s, 'x', 1, [win('a', 100), win('b', Infinity), win('c', 5), win('d', 5)], t);
      expect(r).toEqual({
        placed: false,
        before: [{ committed: 0, reserved: 0 }, { committed: 0, reserved: 0 }, { committed: 0, reserved: 5 }, { committed: 0, reserved: 5 }],
        refusedBy: 2,
      });
      expect(await s.usage(['a', 'b'], t)).toEqual([{ committed: 0, reserved: 0 }, { committed: 0, reserved: 0 }]);
    },
  },
  {
    name: 'commit charges the actual amount, less or more than reserved, and frees the reservation',
    async run(s, t) {
      const ws = [win('a', 10), win('b', 100)];
      await reserve(s, 'r1', 8, ws, t);
      expect(await s.commit('r1', 5, t)).toEqual({
        reserved: 8,
        charged: 5,
        after: [{ key: 'a', committed: 5, reserved: 0 }, { key: 'b', committed: 5, reserved: 0 }],
        meta: 'meta of r1',
      });
      await reserve(s, 'r2', 5, ws, t);
      expect((await s.commit('r2', 7, t))!.after).toEqual([{ key: 'a', committed: 12, reserved: 0 }, { key: 'b', committed: 12, reserved: 0 }]);
      expect(await reserve(s, 'r3', 1, ws, t)).toMatchObject({ placed: false, refusedBy: 0 });
    },
  },
  {
    name: 'release frees the reservation without charging',
    async run(s, t) {
      await reserve(s, 'r1', 8, [win('a', 10)], t);
      expect(await s.release('r1', t)).toEqual({ reserved: 8, charged: 0, after: [{ key: 'a', committed: 0, reserved: 0 }], meta: 'meta of r1' });
      expect(await s.usage(['a'], t)).toEqual([{ committed: 0, reserved: 0 }]);
      expect((await reserve(s, 'r2', 10, [win('a', 10)], t)).placed).toBe(true);
    },
  },
  {
    name: 'settles a reservation once: a second commit or release returns null',
    async run(s, t) {
      await reserve(s, 'r1', 1, [win('a', 10)], t);
      expect(await s.commit('r1', 1, t)).not.toBeNull();
      expect(await s.commit('r1', 1, t)).toBeNull();
      expect(await s.release('r1', t)).toBeNull();
      await reserve(s, 'r2', 1, [win('a', 10)], t);
      expect(await s.release('r2', t)).not.toBeNull();
      expect(await s.commit('r2', 1, t)).toBeNull();
      expect(await s.usage(['a'], t)).toEqual([{ committed: 1, reserved: 0 }]);
    },
  },
  {
    name: 'returns null for unknown ids',
    async run(s, t) {
      expect(await s.commit('nobody', 1, t)).toBeNull();
      expect(await s.release('nobody', t)).toBeNull();
    },
  },
  {
    name: 'releases expired reservations before deciding and reports each once, in placement order',
    async run(s, t) {
      const ws = [win('a', 10)];
      await reserve(s, 'r1', 10, ws, t, t + 100, 'm1');
      expect((await reserve(s, 'r2', 1, ws, t + 99)).placed).toBe(false);
      expect(await reserve(s, 'r2', 1, ws, t + 100, t + 10_000)).toEqual({ placed: true, before: [{ committed: 0, reserved: 0 }], refusedBy: -1 });
      expect(await s.commit('r1', 10, t + 100)).toBeNull();
      expect(await s.expire(t + 100)).toEqual([{ id: 'r1', meta: 'm1' }]);
      expect(await s.expire(t + 100)).toEqual([]);
      // Same expiry: reported in the order they were placed, not by id.
      await reserve(s, 'z', 1, ws, t + 100, t + 300, 'mz');
      await reserve(s, 'a', 1, ws, t + 100, t + 300, 'ma');
      expect(await s.usage(['a'], t + 300)).toEqual([{ committed: 0, reserved: 1 }]);
      expect(await s.expire(t + 1000)).toEqual([{ id: 'z', meta: 'mz' }, { id: 'a', meta: 'ma' }]);
      expect(await s.expire(t + 1000)).toEqual([]);
    },
  },
  {
    name: 'reports zeros for windows it has never seen',
    async run(s, t) {
      expect(await s.usage(['never', 'seen'], t)).toEqual([{ committed: 0, reserved: 0 }, { committed: 0, reserved: 0 }]);
      expect(await s.usage([], t)).toEqual([]);
    },
  },
  {
    name: 'keeps amounts as exact doubles (0.1 + 0.2 > 0.3)',
    async run(s, t) {
      await reserve(s, 'p', 0.1, [win('tight', 0.3)], t);
      expect(await reserve(s, 'q', 0.2, [win('tight', 0.3)], t)).toEqual({ placed: false, before: [{ committed: 0, reserved: 0.1 }], refusedBy: 0 });
      for (const [id, x] of [['x', 0.1], ['y', 0.2], ['z', 1 / 3]] as const) await reserve(s, id, x, [win('f', 1)], t);
      await s.commit('x', 0.1, t);
      await s.commit('y', 0.2, t);
      expect(await s.usage(['f'], t)).toEqual([{ committed: 0.1 + 0.2, reserved: Math.max(0, Math.max(0, 0.1 + 0.2 + 1 / 3 - 0.1) - 0.2) }]);
      expect((await s.release('z', t))!.reserved).toBe(1 / 3);
    },
  },
  {
    name: "drops a window's counters after its expiresAt once nothing is reserved",
    async run(s, t) {
      const ws = [win('day', 10, t + 1000)];
      await reserve(s, 'r1', 3, ws, t, t + 5000);
      await s.commit('r1', 3, t);
      await reserve(s, 'r2', 2, ws, t, t + 5000);
      expect(await s.usage(['day'], t + 1000)).toEqual([{ committed: 3, reserved: 2 }]);
      expect((await s.release('r2', t + 1000))!.after).toEqual([{ key: 'day', committed: 3, reserved: 0 }]);
      expect(await s.usage(['day'], t + 1000)).toEqual([{ committed: 0, reserved: 0 }]);
      expect((await reserve(s, 'r3', 10, [win('day', 10, t + 2000)], t + 1001)).placed).toBe(true);
    },
  },
  {
    name: 'keeps meta text as given',
    async run(s, t) {
      const meta = 'requester: ü 🐙\nline 2\t"quoted" {"json": [1]}';
      await reserve(s, 'm', 1, [win('a', 10)], t, t + 10, meta);
      await reserve(s, 'e', 1, [win('a', 10)], t, t + 10_000, '');
      expect(await s.expire(t + 10)).toEqual([{ id: 'm', meta }]);
      expect((await s.commit('e', 1, t + 10))!.meta).toBe('');
    },
  },
  {
    name: 'places exactly cap reservations out of 1,000 concurrent ones',
    async run(s, t) {
      const ws = [win('hot', 100)];
      const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => reserve(s, `c${i}`, 1, ws, t)));
      expect(results.filter((r) => r.placed)).toHaveLength(100);
      expect(results.filter((r) => !r.placed).every((r) => r.refusedBy === 0)).toBe(true);
      expect(await s.usage(['hot'], t)).toEqual([{ committed: 0, reserved: 100 }]);
    },
  },
  {
    name: 'charge adds to committed in every window, past any cap, once per id',
    async run(s, t) {
      await reserve(s, 'r1', 4, [win('a', 10)], t);
      const op = { id: 'c1', amount: 7, windows: [{ key: 'a', expiresAt: null }, { key: 'new', expiresAt: t + 1000 }], now: t };
      const after = [{ key: 'a', committed: 7, reserved: 4 }, { key: 'new', committed: 7, reserved: 0 }];
      expect(await s.charge!(op)).toEqual({ applied: true, after });
      // Sent again (a reply that never came): nothing more is added.
      expect(await s.charge!(op)).toEqual({ applied: false, after });
      expect(await s.charge!({ ...op, id: 'c2', amount: 0.5, windows: [{ key: 'a', expiresAt: null }, { key: 'a', expiresAt: null }] })).toEqual({
        applied: true,
        after: [{ key: 'a', committed: 8, reserved: 4 }, { key: 'a', committed: 8, reserved: 4 }], // a key named twice is charged twice
      });
      expect(await reserve(s, 'r2', 1, [win('a', 12)], t)).toMatchObject({ placed: false, before: [{ committed: 8, reserved: 4 }] });
      // A window the charge created goes at its expiresAt like any other.
      expect(await s.usage(['new'], t + 1000)).toEqual([{ committed: 0, reserved: 0 }]);
    },
  },
  {
    name: 'rejects every call after close(), which is idempotent',
    async run(s, t) {
      await s.usage(['a'], t);
      await s.close();
      await s.close();
      await expect(reserve(s, 'r', 1, [win('a', 1)], t)).rejects.toThrow(CLOSED);
      await expect(s.commit('r', 1, t)).rejects.toThrow(CLOSED);
      await expect(s.release('r', t)).rejects.toThrow(CLOSED);
      await expect(s.expire(t)).rejects.toThrow(CLOSED);
      await expect(s.usage(['a'], t)).rejects.toThrow(CLOSED);
      await expect(s.charge!({ id: 'c', amount: 1, windows: [], now: t })).rejects.toThrow(CLOSED);
    },
  },
];

const kinds: Array<[string, () => BudgetStore]> = [
  ['MemoryBudgetStore', () => new MemoryBudgetStore()],
  ['RedisBudgetStore', () => new RedisBudgetStore({ url: server!.url, prefix: freshPrefix() })],
];

describe.each(kinds)('%s', (kind, make) => {
  describe.skipIf(kind === 'RedisBudgetStore' && !hasRedisServer)('behaviour', () => {
    it.each(cases)('$name', async ({ run }) => {
      const s = make();
      try {
        // Real epoch times: the Redis store also hands them to PEXPIREAT.
        await run(s, Date.now());
      } finally {
        await s.close();
      }
    });
  });
});

describe('RedisBudgetStore options', () => {
  it('rejects bad options with the argument, the expectation and the value', () => {
    const lazy = new Redis({ lazyConnect: true });
    const bad: Array<[unknown, ErrorConstructor, string]> = [
      [5, TypeError, 'Expected an options object for options but received 5 of type number'],
      [{ host: 'x' }, TypeError, "Unknown option 'host' in options (expected one of: url, client, prefix, connectTimeoutMs, commandTimeoutMs, onStateLoss, requirePersistence)"],
      [{ onStateLoss: 'ignore' }, RangeError, "Expected one of 'fail', 'reset' for options.onStateLoss but received 'ignore' of type string"],
      [{ requirePersistence: true }, TypeError, "Expected one of 'warn', 'refuse', 'ignore' for options.requirePersistence but received true of type boolean"],
      [{ url: 'redis://x', client: {} }, TypeError, 'Expected one of options.url and options.client but received both'],
      [{ url: 6379 }, TypeError, "Expected Redis URL ('redis://host:port[/db]' or 'rediss://…') for options.url but received 6379 of type number"],
      [{ url: 'localhost:6379' }, RangeError, "Expected Redis URL ('redis://host:port[/db]' or 'rediss://…') for options.url but received 'localhost:6379' of type string"],
      [{ prefix: 7 }, TypeError, "Expected string with a non-empty Redis Cluster hash tag, like '{capibara}:budget:' for options.prefix but received 7 of type number"],
      [{ prefix: 'capibara:budget:' }, RangeError, "Expected string with a non-empty Redis Cluster hash tag, like '{capibara}:budget:' for options.prefix but received 'capibara:budget:' of type string"],
      [{ prefix: '{}:budget:' }, RangeError, "Expected string with a non-empty Redis Cluster hash tag, like '{capibara}:budget:' for options.prefix but received '{}:budget:' of type string"],
      [{ commandTimeoutMs: 0 }, RangeError, 'Expected integer in [1, 600000] for options.commandTimeoutMs but received 0 of type number'],
      [{ commandTimeoutMs: '5' }, TypeError, "Expected integer in [1, 600000] for options.commandTimeoutMs but received '5' of type string"],
      [{ connectTimeoutMs: 1.5 }, RangeError, 'Expected integer in [1, 600000] for options.connectTimeoutMs but received 1.5 of type number'],
      [{ client: { status: 'ready' } }, TypeError, 'Expected ioredis Redis or Cluster client for options.client but received object'],
      [
        { client: lazy, connectTimeoutMs: 5 },
        TypeError,
        "Expected undefined with options.client (the client's own connectTimeout applies) for options.connectTimeoutMs but received 5 of type number",
      ],
    ];
    for (const [options, Kind, message] of bad) {
      let caught: unknown;
      try {
        new RedisBudgetStore(options as never);
      } catch (err) {
        caught = err;
      }
      expect(caught, message).toBeInstanceOf(Kind);
      expect((caught as Error).message).toBe(message);
    }
    lazy.disconnect();
  });
});

describe.skipIf(!hasRedisServer)('RedisBudgetStore with Redis', () => {
  it('gives the same results as MemoryBudgetStore over a random sequence of operations', async () => {
    const rand = rng(20240611);
    const mem = new MemoryBudgetStore();
    const red = new RedisBudgetStore({ url: server!.url, prefix: freshPrefix() });
    const t0 = Date.now();
    // Fixed caps and expiries per key, as a budget's windows have.
    const pool = [win('a', 10), win('b', 5.5, t0 + 3000), win('c', Infinity, t0 + 8000), win('d', 3), win('e', 0.7, t0 + 500)];
    const amounts = [0.1, 0.2, 0.3, 1, 2.5, 0];
    const ids: string[] = [];
    let now = t0;
    try {
      for (let step = 0; step < 400; step++) {
        now += Math.floor(rand() * 60);
        const pick = rand();
        const id = ids.length > 0 && rand() < 0.9 ? ids[Math.floor(rand() * ids.length)]! : `unknown${step}`;
        let call: (s: BudgetStore) => Promise<unknown>;
        if (pick < 0.4) {
          const windows = pool.filter(() => rand() < 0.5);
          const amount = rand() < 0.7 ? amounts[Math.floor(rand() * amounts.length)]! : rand() * 3;
          const rid = `r${step}`;
          ids.push(rid);
          const expiresAt = now + 50 + Math.floor(rand() * 3000);
          call = (s) => s.reserve({ id: rid, amount, windows, now, expiresAt, meta: `step ${step}` });
        } else if (pick < 0.6) {
          const actual = rand() * 2;
          call = (s) => s.commit(id, actual, now);
        } else if (pick < 0.7) {
          call = (s) => s.release(id, now);
        } else if (pick < 0.8) {
          call = (s) => s.expire(now);
        } else {
          call = (s) => s.usage(['a', 'b', 'c', 'd', 'e', 'zz'], now);
        }
        const [m, r] = [await call(mem), await call(red)];
        expect(r, `step ${step}`).toEqual(m);
      }
    } finally {
      await red.close();
    }
  });

  it('keeps every key of a namespace under its prefix, with window expiry in Redis', async () => {
    const prefix = freshPrefix();
    const s = new RedisBudgetStore({ url: server!.url, prefix });
    const peek = new Redis(server!.url);
    try {
      const t = Date.now();
      await reserve(s, 'r1', 1, [win('daily', 10, t + 60_000), win('forever', 10)], t, t + 10);
      await reserve(s, 'r2', 1, [win('daily', 10, t + 60_000)], t, t + 60_000);
      await s.commit('r2', 1, t);
      await reserve(s, 'r3', 1, [win('daily', 10, t + 60_000)], t, t + 60_000);
      await s.usage([], t + 10); // sweeps r1 into the expired list
      const keys = (await peek.keys(`${prefix}*`)).sort();
      // epoch: written with the namespace (state-loss detection); runid: the Redis that last checked it.
      expect(keys).toEqual(['epoch', 'expired', 'r:r3', 'reservations', 'runid', 'seq', 'w:daily', 'w:forever', 'windows'].map((k) => prefix + k));
      const ttl = await peek.pexpiretime(`${prefix}w:daily`);
      expect(ttl).toBe(t + 60_000 + 24 * 3600 * 1000);
      expect(await peek.pexpiretime(`${prefix}w:forever`)).toBe(-1);
      expect(await peek.hgetall(`${prefix}w:daily`)).toEqual({ committed: '1', reserved: '1' });
    } finally {
      await s.close();
      await peek.quit();
    }
  });

  it('falls back to EVAL when Redis has forgotten its scripts', async () => {
    const s = new RedisBudgetStore({ url: server!.url, prefix: freshPrefix() });
    const admin = new Redis(server!.url);
    try {
      const t = Date.now();
      await reserve(s, 'r1', 1, [win('a', 10)], t);
      await admin.script('FLUSH');
      expect((await s.commit('r1', 1, t))!.charged).toBe(1);
      expect(await s.usage(['a'], t)).toEqual([{ committed: 1, reserved: 0 }]);
    } finally {
      await s.close();
      await admin.quit();
    }
  });

  it('places exactly cap reservations when 4 processes reserve at once', async () => {
    const dir = transpileStore();
    const prefix = freshPrefix();
    const now = Date.now();
    // Each child connects, says "ready", waits for "go" on stdin, then fires 250 reserves at once.
    const child = `
      const { RedisBudgetStore } = require(${JSON.stringify(path.join(dir, 'budget', 'redis-store.js'))});
      const me = process.env.ME, now = Number(process.env.NOW);
      const store = new RedisBudgetStore({ url: process.env.URL, prefix: process.env.PREFIX });
      store.usage([], now).then(() => {
        process.stdout.write('ready\\n');
        process.stdin.on('data', () => {});
        process.stdin.once('end', async () => {
          const windows = [{ key: 'global', cap: 100, expiresAt: null }, { key: 'proc-' + me, cap: 40, expiresAt: null }];
          const rs = await Promise.all(Array.from({ length: 250 }, (_, i) =>
            store.reserve({ id: me + '-' + i, amount: 1, windows, now, expiresAt: now + 60000, meta: me })));
          process.stdout.write(JSON.stringify({ placed: rs.filter((r) => r.placed).length }) + '\\n');
          await store.close();
        });
      }, (err) => { console.error(err); process.exit(1); });`;
    const env = { ...process.env, NODE_PATH: path.resolve('node_modules'), URL: server!.url, PREFIX: prefix, NOW: String(now) };
    const children: ChildProcess[] = [];
    const outputs: string[] = ['', '', '', ''];
    try {
      const ready = [0, 1, 2, 3].map((i) => {
        const c = spawn(process.execPath, ['-e', child], { env: { ...env, ME: `p${i}` }, stdio: ['pipe', 'pipe', 'inherit'] });
        children.push(c);
        return new Promise<void>((resolve, reject) => {
          c.stdout!.on('data', (chunk: Buffer) => {
            outputs[i] += chunk.toString();
            if (outputs[i]!.startsWith('ready\n')) resolve();
          });
          c.once('exit', (code) => reject(new Error(`child ${i} exited with ${code} before it was ready`)));
        });
      });
      await Promise.all(ready);
      const exits = children.map((c) => once(c, 'exit'));
      for (const c of children) c.stdin!.end();
      const codes = (await Promise.all(exits)).map(([code]) => code);
      expect(codes).toEqual([0, 0, 0, 0]);
      const placed = outputs.map((o) => (JSON.parse(o.split('\n')[1]!) as { placed: number }).placed);
      expect(placed.reduce((a, b) => a + b, 0)).toBe(100);
      expect(placed.every((p) => p <= 40)).toBe(true);

      const s = new RedisBudgetStore({ url: server!.url, prefix });
      const usage = await s.usage(['global', 'proc-p0', 'proc-p1', 'proc-p2', 'proc-p3'], now);
      await s.close();
      expect(usage[0]).toEqual({ committed: 0, reserved: 100 });
      // All or nothing: every placed reservation is in its process's window too, and only those.
      expect(usage.slice(1).map((u) => u.reserved)).toEqual(placed);
    } finally {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('close() ends a client it created, after the replies of calls already made', async () => {
    const s = new RedisBudgetStore({ url: server!.url, prefix: freshPrefix() });
    const peek = new Redis(server!.url);
    try {
      const t = Date.now();
      await s.usage([], t);
      expect(await peek.client('LIST')).toContain('name=capibara-budget-store');
      const pending = Array.from({ length: 50 }, (_, i) => reserve(s, `r${i}`, 1, [win('a', 100)], t));
      await s.close();
      expect((await Promise.all(pending)).every((r) => r.placed)).toBe(true);
      await expect(s.usage(['a'], t)).rejects.toThrow(CLOSED);
      expect(await peek.client('LIST')).not.toContain('name=capibara-budget-store');
    } finally {
      await peek.quit();
    }
  });

  it('close() leaves a client it was given open', async () => {
    const client = new Redis(server!.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false });
    try {
      const s = new RedisBudgetStore({ client, prefix: freshPrefix() });
      const t = Date.now();
      expect((await reserve(s, 'r1', 1, [win('a', 1)], t)).placed).toBe(true);
      await s.close();
      await expect(s.commit('r1', 1, t)).rejects.toThrow(CLOSED);
      expect(await client.ping()).toBe('PONG');
    } finally {
      await client.quit();
    }
  });
});

describe('RedisBudgetStore and the process lifetime', () => {
  // Before: ioredis's own retry timer kept reconnecting forever, so a process that created a store
  // for an unreachable Redis and never closed it never exited.
  it('lets a process exit that never closed a store whose Redis is unreachable', async () => {
    const port = await freePort();
    const lib = JSON.stringify(path.resolve(__dirname, '../lib/index.js'));
    const code = `const { RedisBudgetStore } = require(${lib});
      const s = new RedisBudgetStore({ url: 'redis://127.0.0.1:${port}', commandTimeoutMs: 200, connectTimeoutMs: 200 });
      s.usage(['a'], Date.now()).then(() => process.exit(3), (e) => console.log(e.message));`;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    // The test's own timeout is the bound: the child must end by itself, not be killed.
    try {
      const [status, signal] = (await once(child, 'exit')) as [number | null, string | null];
      expect({ status, signal }).toEqual({ status: 0, signal: null });
      expect(out).toMatch(/^RedisBudgetStore\.usage: Redis is not reachable/);
    } finally {
      child.kill('SIGKILL');
    }
  }, 20_000);
});

describe.skipIf(!hasRedisServer)('RedisBudgetStore when Redis fails', () => {
  const TIMEOUT = 400;

  it('rejects at once, sending nothing, once Redis has stopped mid-run', async () => {
    const own = await startRedisServer();
    const s = new RedisBudgetStore({ url: own.url, prefix: freshPrefix(), commandTimeoutMs: TIMEOUT });
    try {
      const t = Date.now();
      expect((await reserve(s, 'before', 1, [win('a', 1000)], t)).placed).toBe(true);
      // Calls in flight when the server goes: each settles, as a result or a clear error.
      const inFlight = Array.from({ length: 200 }, (_, i) => reserve(s, `f${i}`, 1, [win('a', 1000)], t));
      // Observe them before stopping: those that fail while the server goes are handled, not unhandled rejections.
      const settling = Promise.allSettled(inFlight);
      await own.stop();
      const settled = await settling;
      for (const r of settled) {
        if (r.status === 'rejected') expect((r.reason as Error).message).toMatch(/^RedisBudgetStore\.reserve: /);
      }
      const err = await reserve(s, 'after', 1, [win('a', 1000)], t).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(Error);
      // The client may learn of the lost connection only from this call. Either way it answers
      // at once: the message of a call that waited out commandTimeoutMs says 'within 400 ms'.
      expect((err as Error).message).toMatch(/^RedisBudgetStore\.reserve: (the connection to Redis closed before the reply; it may or may not have been applied|Redis is not reachable \(connection (reconnecting|connecting|close|closing)\b.*\); nothing was sent)$/);
      expect((err as Error).stack).toContain('budget-redis-store.test.ts');
      await expect(s.usage(['a'], t)).rejects.toThrow(/^RedisBudgetStore\.usage: Redis is not reachable/);
    } finally {
      await s.close();
      await own.stop();
    }
  });

  it('rejects after commandTimeoutMs when a sent call gets no reply, and works again after', async () => {
    const own = await startRedisServer();
    const s = new RedisBudgetStore({ url: own.url, prefix: freshPrefix(), commandTimeoutMs: TIMEOUT });
    const admin = new Redis(own.url);
    try {
      const t = Date.now();
      await reserve(s, 'r0', 1, [win('a', 10)], t); // Redis now holds the script: the late call runs as EVALSHA
      own.pause();
      const t0 = performance.now();
      await expect(reserve(s, 'r1', 1, [win('a', 10)], t)).rejects.toThrow(
        `RedisBudgetStore.reserve: no reply from Redis within ${TIMEOUT} ms; it may or may not have been applied`,
      );
      expect(performance.now() - t0).toBeGreaterThanOrEqual(TIMEOUT - 5);
      own.resume();
      // The late reserve did run: this is the case the message warns about.
      expect(await s.usage(['a'], t)).toEqual([{ committed: 0, reserved: 2 }]);
      // Without the script cached, the NOSCRIPT answer comes after the deadline: the store must not send EVAL then.
      await admin.script('FLUSH');
      own.pause();
      await expect(reserve(s, 'r2', 1, [win('a', 10)], t)).rejects.toThrow(/no reply from Redis/);
      own.resume();
      expect(await s.usage(['a'], t)).toEqual([{ committed: 0, reserved: 2 }]);
    } finally {
      own.resume();
      await s.close();
      admin.disconnect();
      await own.stop();
    }
  });

  it('names the connection error when Redis was never reachable', async () => {
    const port = await freePort();
    const s = new RedisBudgetStore({ url: `redis://127.0.0.1:${port}`, prefix: freshPrefix(), commandTimeoutMs: TIMEOUT });
    try {
      await expect(s.usage(['a'], Date.now())).rejects.toThrow(
        new RegExp(`^RedisBudgetStore\\.usage: Redis is not reachable \\(connection \\w+, last error: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\)`),
      );
    } finally {
      await s.close();
    }
  });

  it('rejects within commandTimeoutMs while a connection never becomes ready', async () => {
    // Accepts TCP connections and never answers: the client stays in its handshake.
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((sock) => sockets.add(sock));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    const s = new RedisBudgetStore({ url: `redis://127.0.0.1:${port}`, prefix: freshPrefix(), commandTimeoutMs: TIMEOUT, connectTimeoutMs: 5000 });
    try {
      await expect(s.expire(Date.now())).rejects.toThrow(
        new RegExp(`^RedisBudgetStore\\.expire: Redis is not reachable \\(connection \\w+\\) within ${TIMEOUT} ms; nothing was sent$`),
      );
    } finally {
      await s.close();
      for (const sock of sockets) sock.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('bounds calls on a given client that queues offline, and recovers when Redis is back', async () => {
    const own = await startRedisServer();
    // ioredis defaults: offline queue on, 20 retries per request. The store still answers in time.
    const client = new Redis(own.url);
    client.on('error', () => undefined);
    const s = new RedisBudgetStore({ client, prefix: freshPrefix(), commandTimeoutMs: TIMEOUT });
    try {
      const t = Date.now();
      await s.usage([], t);
      // Once the client has seen the connection go, the store answers without sending anything.
      const lost = new Promise((resolve) => client.once('close', resolve));
      await own.stop();
      await lost;
      await expect(s.release('r1', t)).rejects.toThrow(/^RedisBudgetStore\.release: Redis is not reachable \(connection \w+\)/);
      // Listening first: the client may reconnect before the server has answered our PING.
      // (Not events.once: it would reject on the client's connection-refused 'error' events.)
      const readyAgain = new Promise((resolve) => client.once('ready', resolve));
      const back = await startRedisServer(own.port);
      try {
        await readyAgain;
        expect(await s.usage(['a'], t)).toEqual([{ committed: 0, reserved: 0 }]);
      } finally {
        await back.stop();
      }
    } finally {
      await s.close();
      client.disconnect();
    }
  });
});

// The child processes load the store as plain CommonJS: transpile its two source files.
function transpileStore(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'capibara-store-'));
  for (const file of ['budget/redis-store.ts', 'budget/redis-connection.ts', 'budget/redis-scripts.ts', 'budget/redis-state.ts', 'validate.ts', 'toolkit/closing.ts', 'toolkit/listeners.ts']) {
    const source = readFileSync(path.resolve('src', file), 'utf8');
    const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } });
    const out = path.join(dir, file.replace(/\.ts$/, '.js'));
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, outputText);
  }
  return dir;
}
