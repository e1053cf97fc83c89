/**
 * Throwaway PostgreSQL servers for tests: `initdb` into a temp dir, `postgres` on a free
 * loopback port (trust authentication, user `postgres`), killed (SIGKILL, as a crash) and
 * restarted on the same port and data, stopped and removed at the end. As root (CI) the server
 * runs as the `postgres` user, since PostgreSQL refuses to run as root. When the binaries are
 * missing, suites skip with {@link postgresSkipReason}.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { accessSync, chownSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll, describe } from 'vitest';

import { MemAgent, type MemAgentOptions } from '../../src/index';
import { freePort } from './redis-server';

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

// initdb and postgres: on PATH, else under Debian's /usr/lib/postgresql/<version>/bin (newest first).
function findBinDir(): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && executable(path.join(dir, 'initdb')) && executable(path.join(dir, 'postgres'))) return dir;
  }
  let versions: string[] = [];
  try {
    versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
  } catch {
    return null;
  }
  for (const v of versions) {
    const dir = `/usr/lib/postgresql/${v}/bin`;
    if (executable(path.join(dir, 'initdb')) && executable(path.join(dir, 'postgres'))) return dir;
  }
  return null;
}

const binDir = findBinDir();
/** Whether PostgreSQL-backed suites can run. */
export const hasPostgres = binDir !== null;
/** What a skipped suite prints. */
export const postgresSkipReason = 'PostgreSQL binaries (initdb, postgres) not found: install them (apt-get install postgresql) to run these tests';

// As root, the server runs as 'postgres' (uid and gid from /etc/passwd).
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error("running as root, PostgreSQL needs a 'postgres' user to run as (apt-get install postgresql creates it)");
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** A running PostgreSQL server. */
export interface PostgresServer {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/<database>`. */
  url(database?: string): string;
  /** Creates a database (through the `postgres` one) and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** SIGKILL of the postmaster, as a crash; waits for it to exit. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and data directory. */
  restart(): Promise<void>;
  /** Stops the server (SIGINT, fast shutdown) and removes its data. Idempotent. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
const stoppers = new Set<() => Promise<void>>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});
afterAll(async () => {
  await Promise.all([...stoppers].map((s) => s()));
});

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

// The sanitizer run (scripts/test-sanitize.sh) preloads the ASan runtime into every child; PostgreSQL
// is not built for it and hangs at start under it (postgres -V never returned): run it without.
const PG_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'LD_PRELOAD' && !k.startsWith('ASAN_') && !k.startsWith('UBSAN_')));

async function spawnServer(dir: string, port: number, user: { uid: number; gid: number } | undefined, fsync: boolean): Promise<ChildProcess> {
  const args = [
    '-D', path.join(dir, 'data'), '-p', String(port), '-h', '127.0.0.1', '-k', dir, '-c', `fsync=${fsync ? 'on' : 'off'}`,
    '-c', 'max_connections=200', '-c', 'shared_buffers=64MB', '-c', 'logging_collector=off',
  ];
  const child = spawn(path.join(binDir!, 'postgres'), args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir, env: PG_ENV, ...(user ?? {}) });
  running.add(child);
  let log = '';
  const ready = await new Promise<boolean>((resolve) => {
    const onData = (c: Buffer) => {
      log += c.toString();
      if (log.includes('database system is ready to accept connections')) resolve(true);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', () => resolve(false));
  });
  if (!ready) {
    running.delete(child);
    throw new Error(`postgres did not start on port ${port}:\n${log}`);
  }
  return child;
}

/**
 * initdb + postgres on a free loopback port. `fsync: false` (default true) speeds up tests
 * that do not crash the machine (a killed server still loses nothing it committed).
 */
export async function startPostgres(options: { fsync?: boolean } = {}): Promise<PostgresServer> {
  if (binDir === null) throw new Error(postgresSkipReason);
  const user = runAs();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'capibara-pg-'));
  if (user) chownSync(dir, user.uid, user.gid);
  execFileSync(path.join(binDir, 'initdb'), ['-D', path.join(dir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], {
    stdio: 'pipe', cwd: dir, env: PG_ENV, ...(user ?? {}),
  });
  const fsync = options.fsync ?? true;
  let port = 0;
  let child: ChildProcess | undefined;
  for (let attempt = 0; attempt < 3 && child === undefined; attempt++) {
    port = await freePort();
    child = await spawnServer(dir, port, user, fsync).catch((err: Error) => {
      if (attempt === 2) throw err;
      return undefined;
    });
  }
  let current = child!;
  let stopping: Promise<void> | null = null;
  const url = (db = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${db}`;
  const stop = () => {
    stoppers.delete(stop);
    return (stopping ??= (async () => {
      if (current.exitCode === null && current.signalCode === null) {
        current.kill('SIGINT');
        const hard = setTimeout(() => current.kill('SIGKILL'), 10_000);
        await exited(current);
        clearTimeout(hard);
      }
      running.delete(current);
      rmSync(dir, { recursive: true, force: true });
    })());
  };
  stoppers.add(stop);
  return {
    port,
    url,
    async createDatabase(name) {
      const { Client } = require('pg') as typeof import('pg');
      const c = new Client({ connectionString: url() });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      } finally {
        await c.end();
      }
      return url(name);
    },
    async kill() {
      current.kill('SIGKILL');
      await exited(current);
      running.delete(current);
    },
    async restart() {
      if (stopping) throw new Error('postgres was stopped');
      if (current.exitCode === null && current.signalCode === null) {
        current.kill('SIGKILL');
        await exited(current);
      }
      running.delete(current);
      // The killed postmaster's children exit when they notice; the port may take a moment.
      let last: unknown;
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          current = await spawnServer(dir, port, user, fsync);
          return;
        } catch (err) {
          last = err;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      throw last;
    },
    stop,
  };
}

/**
 * One way to open a MemAgent, for suites that run against both stores. `open(options, at)`:
 * without `at`, a fresh store (SQLite in memory; a new PostgreSQL schema); with `at`, the store
 * of that name, the same one each time (a SQLite file; a PostgreSQL schema), as a reopen.
 */
export interface MemoryBackend {
  readonly name: 'sqlite' | 'postgres';
  /** Why this backend's suites are skipped (PostgreSQL binaries missing); undefined when they run. */
  readonly skip: string | undefined;
  open(options?: MemAgentOptions, at?: string): Promise<MemAgent>;
  /** How errors name the store `at` (the SQLite file's path; `PostgreSQL at host:port/db (schema '…')`), once a store was opened. */
  label(at: string): string;
  /**
   * Runs one statement on the store `at` (opened at least once; open or closed), as a damaged
   * disk, a bad copy or another program would: `{items}`, `{pages}`, `{history}` and `{meta}`
   * name its tables, `$1`… its parameters (on either store). Integers come back as numbers.
   */
  sql<R = Record<string, unknown>>(at: string, text: string, values?: unknown[]): Promise<R[]>;
}

let shared: Promise<{ server: PostgresServer; url: string }> | undefined;
let sharedPort: number | undefined;
let schemas = 0;
const TABLES = ['items', 'pages', 'history', 'meta'] as const;

function sharedServer(): Promise<{ server: PostgresServer; url: string }> {
  return (shared ??= (async () => {
    const server = await startPostgres({ fsync: false });
    sharedPort = server.port;
    return { server, url: await server.createDatabase('memory') };
  })());
}

/**
 * The stores a MemAgent suite runs against: SQLite always, PostgreSQL when its binaries are
 * installed (one server per test file, started at the first open, a schema per store); without
 * them the PostgreSQL entry carries {@link postgresSkipReason} in `skip`.
 */
export function memoryBackends(): MemoryBackend[] {
  let dir: string | undefined;
  const file = (at: string) => {
    dir ??= mkdtempSync(path.join(os.tmpdir(), 'capibara-memory-'));
    return path.join(dir, `${at}.db`);
  };
  const sqlite: MemoryBackend = {
    name: 'sqlite',
    skip: undefined,
    open: async (options = {}, at) => (at === undefined ? new MemAgent(options) : new MemAgent({ ...options, path: file(at) })),
    label: file,
    sql: async <R>(at: string, text: string, values: unknown[] = []) => {
      const Database = require('better-sqlite3') as typeof import('better-sqlite3');
      const ordered: unknown[] = [];
      const sql = text.replace(/\{(\w+)\}/g, (_, t: string) => t).replace(/\$(\d+)/g, (_, n: string) => {
        ordered.push(values[Number(n) - 1]);
        return '?';
      });
      const db = new Database(file(at));
      try {
        const st = db.prepare(sql);
        return (st.reader ? st.all(...ordered) : (st.run(...ordered), [])) as R[];
      } finally {
        db.close();
      }
    },
  };
  const schema = (at: string) => `at_${at}`;
  const postgres: MemoryBackend = {
    name: 'postgres',
    skip: hasPostgres ? undefined : postgresSkipReason,
    open: async (options = {}, at) => {
      const { url } = await sharedServer();
      const { path: _file, ...rest } = options;
      return MemAgent.open({ ...rest, postgres: { connectionString: url, schema: at === undefined ? `fresh_${schemas++}` : schema(at) } });
    },
    label: (at) => {
      if (sharedPort === undefined) throw new Error('label(at): open a store of this backend first');
      return `PostgreSQL at 127.0.0.1:${sharedPort}/memory (schema '${schema(at)}')`;
    },
    sql: async <R>(at: string, text: string, values: unknown[] = []) => {
      const { url } = await sharedServer();
      const { Client, types } = require('pg') as typeof import('pg');
      const c = new Client({ connectionString: url });
      await c.connect();
      try {
        const sql = text.replace(/\{(\w+)\}/g, (_, t: string) => {
          if (!(TABLES as readonly string[]).includes(t)) throw new Error(`sql: unknown table {${t}}`);
          return `"${schema(at)}".memagent_${t}`;
        });
        const int8 = (oid: number, format?: 'text' | 'binary') => (oid === 20 ? (x: string) => Number(x) : types.getTypeParser(oid, format as 'text'));
        return (await c.query({ text: sql, values, types: { getTypeParser: int8 as never } })).rows as R[];
      } finally {
        await c.end();
      }
    },
  };
  return [sqlite, postgres];
}

/**
 * `describe(title (name), body)` once per store of {@link memoryBackends}; a store whose
 * binaries are missing is `describe.skip`ped with the reason in its title.
 */
export function describeBackends(title: string, body: (backend: MemoryBackend) => void): void {
  for (const b of memoryBackends()) {
    if (b.skip === undefined) describe(`${title} (${b.name})`, () => body(b));
    else describe.skip(`${title} (${b.name}: skipped, ${b.skip})`, () => body(b));
  }
}
