// Budgets: BudgetForcing decisions (requestBudget + commit, validation, windows and events
// included) and the bare store operations under them (reserve + commit pairs, two windows each),
// in process (MemoryBudgetStore) and in a local Redis (RedisBudgetStore: one Lua script per call,
// over loopback), one pair at a time (latency) and 64 pairs in flight (throughput). The floor
// row is two PINGs per pair on a plain ioredis client: the round trips alone, without scripts.
// Starts its own redis-server on a free loopback port; without one, only the in-process rows run.
// Runs standalone (`node bench/budget-store.bench.mjs [--quick]`) or under bench/run.mjs.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { measure } from './common.mjs';

const require = createRequire(import.meta.url);
for (const f of ['../lib/budget/store.js', '../lib/budget/redis-store.js', '../lib/index.js']) {
  if (!existsSync(new URL(f, import.meta.url))) {
    console.error(`budget-store: ${f.slice(3)} missing: run \`npm run build\` first`);
    process.exit(1);
  }
}
const { MemoryBudgetStore } = require('../lib/budget/store.js');
const { RedisBudgetStore } = require('../lib/budget/redis-store.js');
const { BudgetForcing, ResourceType } = require('../lib/index.js');

const QUICK = process.argv.includes('--quick');
const BATCH = 200;
const IN_FLIGHT = 64;
// Requesters with a live window in the scaling row (issue: decisions slowed down with them).
const MANY = QUICK ? 20_000 : 100_000;
const TIMING = QUICK ? { warmup: 2, timeMs: 300, minRounds: 5 } : { warmup: 5, timeMs: 3000, minRounds: 15 };

async function startRedis() {
  if (spawnSync('redis-server', ['--version']).error) return null;
  const port = await new Promise((resolve, reject) => {
    const srv = net.createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port: p } = srv.address();
      srv.close(() => resolve(p));
    });
  });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'capibara-bench-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    let log = '';
    child.stdout.on('data', (c) => {
      log += c;
      if (log.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${log}`)));
  });
  child.stdout.resume();
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Batches of `one()`: one after another, or IN_FLIGHT lanes at once.
function batches(one) {
  return {
    sequential: async () => {
      for (let i = 0; i < BATCH; i++) await one();
    },
    concurrent: async () => {
      let left = BATCH;
      const lane = async () => {
        while (left-- > 0) await one();
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
    },
  };
}

// One pair: reserve in a daily and a per-user window, then commit a little less than reserved.
function pairs(store) {
  let n = 0;
  const day = Date.now() + 86_400_000;
  const windows = [{ key: 'team:daily', cap: Infinity, expiresAt: day }, { key: 'user:7', cap: Infinity, expiresAt: null }];
  const one = async () => {
    const id = `b${n++}`;
    const now = Date.now();
    const r = await store.reserve({ id, amount: 1000, windows, now, expiresAt: now + 60_000, meta: 'bench' });
    if (!r.placed) throw new Error('budget-store: a reservation was refused');
    await store.commit(id, 800, now);
  };
  return batches(one);
}

// One decision: reserve 1,000 tokens for one of `users` users (a per-user daily and a shared
// monthly window, plus a per-request cap), then commit 800. With many users every one of them
// has a live window before timing starts: a decision must cost the same as with 50.
async function decisions(store, users = 50) {
  const budgets = new BudgetForcing({
    store,
    budgets: [
      { resourceType: ResourceType.TOKENS, scope: 'daily', limit: 1e15 },
      { resourceType: ResourceType.TOKENS, scope: 'monthly', limit: 1e15, shared: true },
      { resourceType: ResourceType.TOKENS, scope: 'request', limit: 4000 },
    ],
  });
  let n = 0;
  const one = async () => {
    const d = await budgets.requestBudget({ resourceType: ResourceType.TOKENS, requestedAmount: 1000, priority: 1, estimatedDuration: 60, requesterId: `user_${n++ % users}` });
    if (!d.approved) throw new Error(`budget: a decision was refused: ${d.message}`);
    await budgets.commit(d.allocationId, 800);
  };
  opened.push(budgets);
  if (users > 50) for (let i = 0; i < users; i++) await one();
  return batches(one);
}

const memory = new MemoryBudgetStore();
const opened = []; // BudgetForcing instances to close at the end
const redis = await startRedis();
const red = redis ? new RedisBudgetStore({ url: redis.url, prefix: '{bench}:budget:' }) : null;
const { Redis } = require('ioredis');
const plain = redis ? new Redis(redis.url) : null;
const rows = [];
try {
  const mem = pairs(memory);
  const memDecisions = await decisions(new MemoryBudgetStore());
  const manyDecisions = await decisions(new MemoryBudgetStore(), MANY);
  const contenders = [
    ['BudgetForcing, memory, 1 at a time', memDecisions.sequential, true],
    [`BudgetForcing, memory, 1 at a time, ${MANY.toLocaleString('en-US')} requesters live`, manyDecisions.sequential, true],
    [`BudgetForcing, memory, ${IN_FLIGHT} in flight`, memDecisions.concurrent, true],
    ['memory, 1 at a time', mem.sequential, true],
    [`memory, ${IN_FLIGHT} in flight`, mem.concurrent, true],
  ];
  if (red) {
    const r = pairs(red);
    const redDecisions = await decisions(new RedisBudgetStore({ url: redis.url, prefix: '{bench-decisions}:budget:' }));
    contenders.push(
      ['BudgetForcing, redis, 1 at a time', redDecisions.sequential, true],
      [`BudgetForcing, redis, ${IN_FLIGHT} in flight`, redDecisions.concurrent, true],
    );
    const floor = batches(async () => {
      await plain.ping();
      await plain.ping();
    });
    contenders.push(
      ['redis, 1 at a time', r.sequential, true],
      [`redis, ${IN_FLIGHT} in flight`, r.concurrent, true],
      ['floor: 2 PINGs, 1 at a time', floor.sequential, true],
      [`floor: 2 PINGs, ${IN_FLIGHT} in flight`, floor.concurrent, true],
    );
  }
  const t = await measure(contenders, TIMING);
  const base = t['memory, 1 at a time'].median;
  const floorOf = {
    'redis, 1 at a time': 'floor: 2 PINGs, 1 at a time',
    [`redis, ${IN_FLIGHT} in flight`]: `floor: 2 PINGs, ${IN_FLIGHT} in flight`,
    'BudgetForcing, redis, 1 at a time': 'floor: 2 PINGs, 1 at a time',
    [`BudgetForcing, redis, ${IN_FLIGHT} in flight`]: `floor: 2 PINGs, ${IN_FLIGHT} in flight`,
  };
  for (const [name] of contenders) {
    const ms = t[name].median;
    const vsFloor = floorOf[name] ? ms / t[floorOf[name]].median : null;
    rows.push({ store: name, pairsPerSecond: (BATCH * 1000) / ms, usPerPair: (ms * 1000) / BATCH, vsMemory: ms / base, vsFloor, samples: t[name].samples });
  }
} finally {
  for (const b of opened) await b.close();
  await red?.close();
  await plain?.quit();
  await memory.close();
  await redis?.stop();
}

const result = {
  name: 'budget',
  title: `Budgets: requestBudget + commit decisions, and the store's reserve + commit pairs (2 windows), batches of ${BATCH}, median${redis ? '' : ' (redis-server not found: Redis rows skipped; apt-get install redis-server)'}${QUICK ? ' (quick)' : ''}`,
  meta: { batch: BATCH, inFlight: IN_FLIGHT, redis: Boolean(redis) },
  rows,
  table: rows.map((r) => ({
    what: r.store,
    'pairs/s': Math.round(r.pairsPerSecond).toLocaleString('en-US'),
    'µs/pair': r.usPerPair.toFixed(1),
    'time vs memory 1-at-a-time': `${r.vsMemory.toFixed(1)}×`,
    'time vs floor': r.vsFloor === null ? '' : `${r.vsFloor.toFixed(2)}×`,
  })),
};
if (process.env.CAPIBARA_BENCH_OUT) writeFileSync(process.env.CAPIBARA_BENCH_OUT, JSON.stringify(result));
else console.table(result.table);
