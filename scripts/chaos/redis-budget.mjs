/**
 * Scenario 3: HARD budgets shared through Redis while Redis is SIGKILLed and restarted.
 *
 * Several child processes ask a shared HARD limit for budget (`BudgetForcing` over
 * `RedisBudgetStore`, `onStoreError: 'fail-closed'`) until well past the limit; mid-run Redis is
 * SIGKILLed and restarted on the same port and directory. Approvals past the limit, summed over
 * every process, are overspend. Two modes: no persistence (`--save '' --appendonly no`), where a
 * restart forgets every reservation unless the store notices (issue 20, item 3), and AOF with
 * `appendfsync always`, where Redis keeps them.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { childMain, describeEnd, isChild, loadPackage, outcome, row, sleep, startChild, within } from './child.mjs';

const FILE = fileURLToPath(import.meta.url);
const MODES = {
  'no AOF': ['--save', '', '--appendonly', 'no'],
  'AOF always': ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always'],
};

// ---------------------------------------------------------------------------------------------
// Child: one process of requesters

async function child([url, prefix, limit, ms, concurrency]) {
  const { BudgetForcing, EnforcementLevel, RedisBudgetStore, ResourceType } = loadPackage();
  const budgets = new BudgetForcing({
    store: new RedisBudgetStore({ url, prefix, commandTimeoutMs: 500 }),
    enforcementLevel: EnforcementLevel.HARD,
    onStoreError: 'fail-closed',
    // 'monthly': a window boundary inside a minute-long run is unlikely (and would show as overspend).
    budgets: [{ resourceType: ResourceType.TOKENS, scope: 'monthly', limit: Number(limit), shared: true }],
  });
  const n = { approved: 0, deniedLimit: 0, deniedStore: 0, threw: 0 };
  const report = (tag) => process.stdout.write(`${tag} ${n.approved} ${n.deniedLimit} ${n.deniedStore} ${n.threw}\n`);
  const timer = setInterval(() => report('P'), 200);
  const end = Date.now() + Number(ms);
  const worker = async (w) => {
    while (Date.now() < end) {
      try {
        const d = await budgets.requestBudget({
          resourceType: ResourceType.TOKENS, requestedAmount: 1, priority: 1,
          estimatedDuration: 86_400, // reservations outlive the run: none expires and frees room
          requesterId: `p${process.pid}-${w}`,
        });
        if (d.approved) n.approved++;
        else if (/store is unavailable/.test(d.message)) n.deniedStore++;
        else n.deniedLimit++;
        // Denials are cheap: pace them so the run measures Redis restarts, not two busy cores.
        await (d.approved ? new Promise(setImmediate) : sleep(5));
      } catch {
        n.threw++;
        await sleep(5);
      }
    }
  };
  await Promise.all(Array.from({ length: Number(concurrency) }, (_, w) => worker(w)));
  clearInterval(timer);
  report('F');
  await budgets.close();
}

// ---------------------------------------------------------------------------------------------
// Parent

async function freePort() {
  const srv = net.createServer();
  await new Promise((ok, fail) => srv.once('error', fail).listen(0, '127.0.0.1', ok));
  const { port } = srv.address();
  await new Promise((ok) => srv.close(ok));
  return port;
}

/** Starts redis-server on 127.0.0.1:port, data in `dir`; resolves once it says it is ready. */
async function startRedis(port, dir, modeArgs) {
  let ready;
  const isReady = new Promise((r) => (ready = r));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...modeArgs];
  const c = startChild(null, [], {
    command: ['redis-server', args],
    onLine: (l) => l.includes('Ready to accept connections') && ready(true),
  });
  const end = await within(Promise.race([isReady, c.done]), 10_000, { code: null, signal: null, stderr: 'no "Ready" in 10 s' });
  if (end !== true) {
    c.kill();
    throw new Error(`redis-server did not start: ${describeEnd({ stderr: '', ...end })}`);
  }
  return c;
}

async function runMode(mode, { ms, processes, concurrency, limit, kills }) {
  const t0 = Date.now();
  const r = row('redis budget', `HARD, Redis SIGKILLed, ${mode}`);
  r.overspend = 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capibara-chaos-redis-'));
  const port = await freePort();
  let redis = await startRedis(port, dir, MODES[mode]);
  const last = [];
  const prefix = `{chaos${Date.now()}}:budget:`;
  const kids = Array.from({ length: processes }, (_, i) => {
    last[i] = { approved: 0, deniedLimit: 0, deniedStore: 0, threw: 0, final: false };
    return startChild(FILE, [`redis://127.0.0.1:${port}`, prefix, limit, ms, concurrency], {
      timeoutMs: ms + 30_000,
      onLine(line) {
        const [tag, approved, deniedLimit, deniedStore, threw] = line.split(' ');
        if (tag === 'P' || tag === 'F') last[i] = { approved: +approved, deniedLimit: +deniedLimit, deniedStore: +deniedStore, threw: +threw, final: tag === 'F' };
      },
    });
  });
  const approvedNow = () => last.reduce((s, x) => s + x.approved, 0);
  try {
    for (const at of kills) {
      await sleep(Math.max(0, t0 + at * ms - Date.now()));
      const before = approvedNow();
      redis.kill('SIGKILL');
      await redis.done;
      await sleep(300); // an outage the clients notice: their commands fail, fail-closed denies
      redis = await startRedis(port, dir, MODES[mode]);
      r.notes.push(`killed at ${Math.round(at * 100)}% (${before} approved so far)`);
      if (before < limit) r.notes.push(`limit not yet reached at that kill: overspend there is not probed`);
    }
    const ends = await Promise.all(kids.map((k) => k.done));
    ends.forEach((end, i) => {
      const how = outcome(end);
      if (how !== 'ok' || !last[i].final) {
        r.crashes += how === 'js-error' ? 0 : 1;
        r.cleanErrors += how === 'js-error' ? 1 : 0;
        r.failures.push(`requester process ${i}: ${how}, ${describeEnd(end)}`);
      }
    });
  } finally {
    redis.kill('SIGKILL');
    await redis.done;
    for (const k of kids) k.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const sum = (k) => last.reduce((s, x) => s + x[k], 0);
  const approved = sum('approved');
  r.tried = approved + sum('deniedLimit') + sum('deniedStore') + sum('threw');
  r.cleanErrors += sum('deniedStore') + sum('threw');
  r.overspend = Math.max(0, approved - limit);
  if (r.overspend) r.failures.push(`${approved} approved against a HARD limit of ${limit} (${processes} processes)`);
  r.notes.unshift(`${approved} approved / limit ${limit}; ${sum('deniedLimit')} denied at the limit, ${sum('deniedStore')} denied store-down (fail-closed), ${sum('threw')} threw`);
  r.seconds = (Date.now() - t0) / 1000;
  return r;
}

/** Both modes, each with half the budget. */
export async function run({ budgetMs, short = false }) {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    const r = row('redis budget', 'skipped');
    r.notes.push('redis-server not found on PATH: apt-get install redis-server');
    return [r];
  }
  const opts = { ms: budgetMs / 2 - 1500, processes: short ? 2 : 3, concurrency: 8, limit: short ? 500 : 2000, kills: short ? [0.4] : [0.35, 0.7] };
  const rows = [];
  for (const mode of Object.keys(MODES)) rows.push(await runMode(mode, opts));
  return rows;
}

if (isChild(import.meta.url)) childMain(child);
