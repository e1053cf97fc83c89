// MemAgent on PostgreSQL vs SQLite in the same run, on the corpus of memory.bench.mjs (512K
// tokens of node_modules prose; --quick: 64K): retrieveMemory latency p50 / p95 (filters +
// maxTokens 2,000, query cache off, wall time of the call: for PostgreSQL it includes the one
// query that refreshes the process's view), storeMemory throughput with one writer (both stores)
// and with three writer processes on one PostgreSQL schema (SQLite allows one writer per file).
// The server is started here: initdb + postgres in a temp dir on a loopback port, fsync on (as
// the user 'postgres' when run as root). Without the PostgreSQL binaries the PostgreSQL rows say
// so. Runs standalone (`node bench/memory-postgres.bench.mjs [--quick]`) or under bench/run.mjs.
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, chownSync, constants, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { memoryCorpus, pct } from './memory.bench.mjs';

const require = createRequire(import.meta.url);
if (!existsSync(new URL('../lib/index.js', import.meta.url))) {
  console.error('memory-postgres: lib/index.js missing: run `npm run build` first');
  process.exit(1);
}
const LIB = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../lib/index.js');
const { MemAgent } = require(LIB);

const QUICK = process.argv.includes('--quick');
const TARGET_TOKENS = QUICK ? 64_000 : 512_000;
const QUERIES = QUICK ? 40 : 300;
const WRITES = QUICK ? 150 : 600; // per writer process in the throughput rows

// --- a throwaway PostgreSQL server ------------------------------------------------------------
function binDir() {
  const ok = (d) => {
    try {
      accessSync(path.join(d, 'initdb'), constants.X_OK);
      accessSync(path.join(d, 'postgres'), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  for (const d of (process.env.PATH ?? '').split(path.delimiter)) if (d && ok(d)) return d;
  let versions = [];
  try {
    versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
  } catch {
    return null;
  }
  for (const v of versions) if (ok(`/usr/lib/postgresql/${v}/bin`)) return `/usr/lib/postgresql/${v}/bin`;
  return null;
}
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
async function startPostgres(bin) {
  let user;
  if (process.getuid?.() === 0) {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
    if (!line) throw new Error("running as root, PostgreSQL needs a 'postgres' user");
    const [, , uid, gid] = line.split(':');
    user = { uid: Number(uid), gid: Number(gid) };
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'capibara-bench-pg-'));
  if (user) chownSync(dir, user.uid, user.gid);
  execFileSync(path.join(bin, 'initdb'), ['-D', path.join(dir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], { stdio: 'pipe', cwd: dir, ...user });
  const port = await freePort();
  const child = spawn(path.join(bin, 'postgres'), ['-D', path.join(dir, 'data'), '-p', String(port), '-h', '127.0.0.1', '-k', dir, '-c', 'max_connections=100'], {
    stdio: ['ignore', 'pipe', 'pipe'], cwd: dir, ...user,
  });
  await new Promise((resolve, reject) => {
    let log = '';
    const on = (c) => {
      log += c.toString();
      if (log.includes('ready to accept connections')) resolve();
    };
    child.stdout.on('data', on);
    child.stderr.on('data', on);
    child.once('exit', () => reject(new Error(`postgres did not start:\n${log}`)));
  });
  child.stdout.resume();
  child.stderr.resume();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    async stop() {
      child.kill('SIGINT');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// --- the runs -----------------------------------------------------------------------------------
const { items, tokens, queries } = memoryCorpus(TARGET_TOKENS, QUERIES);
const capacity = Math.max(TARGET_TOKENS, tokens) + 1000;

async function fillAndQuery(m) {
  const t0 = performance.now();
  for (const it of items) await m.storeMemory(it.text, it.type, it.priority, [it.pkg], { metadata: { year: it.year } });
  const storeMs = performance.now() - t0;
  const lat = [];
  for (const q of queries) {
    const s = performance.now();
    const r = await m.retrieveMemory(q);
    lat.push(performance.now() - s);
    if (r.totalTokens > 2000) throw new Error('memory-postgres: a retrieval passed maxTokens');
  }
  return { storePerSecond: (items.length * 1000) / storeMs, p50: pct(lat, 50), p95: pct(lat, 95), items: m.getMetrics().items, ratio: m.getMetrics().compression.ratio };
}

// `writers` processes, each storing WRITES distinct items into one fresh schema; items/s over the wall time.
async function writers(url, schema, n) {
  const setup = await MemAgent.open({ sweepIntervalMs: 0, maxTokens: capacity, postgres: { connectionString: url, schema } });
  await setup.close();
  const code = (w) => `
    const { MemAgent } = require(${JSON.stringify(LIB)});
    const items = JSON.parse(require('node:fs').readFileSync(process.argv[1], 'utf8'));
    (async () => {
      const m = await MemAgent.open({ sweepIntervalMs: 0, maxTokens: ${capacity}, postgres: { connectionString: ${JSON.stringify(url)}, schema: ${JSON.stringify(schema)} } });
      process.stdout.write('ready\\n');
      await new Promise((r) => process.stdin.once('data', r));
      for (const it of items) await m.storeMemory('writer ${w}: ' + it.text, it.type, it.priority, [it.pkg]);
      await m.close();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const children = [];
  for (let w = 0; w < n; w++) {
    const mine = Array.from({ length: WRITES }, (_, i) => items[(w * WRITES + i) % items.length]);
    const file = path.join(dir, `${schema}-${w}.json`);
    writeFileSync(file, JSON.stringify(mine));
    const child = spawn(process.execPath, ['-e', code(w), file], { stdio: ['pipe', 'pipe', 'inherit'] });
    const ready = new Promise((r) => child.stdout.once('data', r));
    const exit = new Promise((resolve, reject) => child.once('exit', (c) => (c === 0 ? resolve() : reject(new Error(`writer ${w} exited with ${c}`)))));
    children.push({ child, ready, exit, count: mine.length });
  }
  await Promise.all(children.map((c) => c.ready));
  const t0 = performance.now();
  for (const c of children) c.child.stdin.end('go\n');
  await Promise.all(children.map((c) => c.exit));
  const ms = performance.now() - t0;
  return (children.reduce((a, c) => a + c.count, 0) * 1000) / ms;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'capibara-bench-memory-pg-'));
const rows = [];
let note = '';
try {
  const sqlite = new MemAgent({ path: path.join(dir, 'm.db'), maxTokens: capacity, sweepIntervalMs: 0, queryCacheSize: 0 });
  rows.push({ store: 'SQLite file', ...(await fillAndQuery(sqlite)) });
  await sqlite.close();

  const bin = binDir();
  if (bin === null) note = 'PostgreSQL binaries not found (apt-get install postgresql): PostgreSQL rows skipped';
  else {
    const server = await startPostgres(bin);
    try {
      const pg = await MemAgent.open({ maxTokens: capacity, sweepIntervalMs: 0, queryCacheSize: 0, postgres: { connectionString: server.url, schema: 'bench' } });
      rows.push({ store: 'PostgreSQL', ...(await fillAndQuery(pg)) });
      await pg.close();
      rows.push({ store: 'PostgreSQL, 1 writer process', writers: 1, storePerSecond: await writers(server.url, 'w1', 1) });
      rows.push({ store: 'PostgreSQL, 3 writer processes', writers: 3, storePerSecond: await writers(server.url, 'w3', 3) });
    } finally {
      await server.stop();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const f = (x, d = 2) => (x === undefined ? '' : x.toFixed(d));
const result = {
  name: 'memory-postgres',
  title: `MemAgent on PostgreSQL vs SQLite at ${Math.round(tokens / 1000)}K tokens (${items.length} items): retrieveMemory wall time with filters + maxTokens 2,000 (${QUERIES} queries, query cache off), storeMemory throughput${QUICK ? ' (quick)' : ''}${note ? `; ${note}` : ''}`,
  meta: { tokens, items: items.length, queries: QUERIES, writesPerProcess: WRITES },
  rows,
  table: rows.map((r) => ({
    store: r.store,
    'stored/s': Math.round(r.storePerSecond).toLocaleString('en-US'),
    items: r.items ?? '',
    'text ratio': r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}×`,
    'p50 ms': f(r.p50),
    'p95 ms': f(r.p95),
  })),
};
if (process.env.CAPIBARA_BENCH_OUT) writeFileSync(process.env.CAPIBARA_BENCH_OUT, JSON.stringify(result));
else console.table(result.table);
