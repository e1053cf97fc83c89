/**
 * Throwaway redis-server processes for tests: loopback only, one per call, without persistence
 * unless asked for an append-only file ({@link RedisServerOptions}). A server can be killed
 * (SIGKILL) and restarted on the same port and data directory, as a crashed Redis would be.
 * When `redis-server` is not installed, suites skip with {@link redisSkipReason}.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { afterAll } from 'vitest';

function findOnPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** Absolute path of `redis-server`, or null when it is not on PATH. */
export const redisServerPath = findOnPath('redis-server');
/** Whether Redis-backed suites can run. */
export const hasRedisServer = redisServerPath !== null;
/** What a skipped suite prints. */
export const redisSkipReason = 'redis-server not found: install it (apt-get install redis-server) to run these tests';

/** How a server keeps its data. */
export interface RedisServerOptions {
  /**
   * `'none'` (default): `--save '' --appendonly no`, a restart starts empty. `'aof-always'`:
   * `--appendonly yes --appendfsync always`, every write is on disk before Redis answers.
   */
  persistence?: 'none' | 'aof-always';
  /** More redis-server arguments, e.g. `['--rename-command', 'CONFIG', '']` as a managed Redis that refuses CONFIG. */
  extraArgs?: string[];
}

/** A running redis-server. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** SIGSTOP: the server keeps its connections but answers nothing. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** SIGKILL, as a crash: waits for the process to exit and keeps the data directory for {@link RedisServer.restart}. */
  kill(): Promise<void>;
  /** Starts redis-server again on the same port, data directory and options (after {@link RedisServer.kill}). */
  restart(): Promise<void>;
  /** SIGTERM, then waits for the process to exit, and removes the data directory. Idempotent. */
  stop(): Promise<void>;
}

/** A loopback port that was free a moment ago (the OS picks it for a socket bound to port 0). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

const running = new Set<ChildProcess>();
const stoppers = new Set<() => Promise<void>>();
// A test process that dies without its afterAll must not leave servers behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Stops every server started here and not stopped yet. */
export async function stopAllRedisServers(): Promise<void> {
  await Promise.all([...stoppers].map((stop) => stop()));
}
// Registered on the importing test file: runs even after a test timed out before its own cleanup
// (the 'exit' hook above does not run when the runner kills its worker).
afterAll(stopAllRedisServers);

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

// Resolves on "+PONG" from a fresh connection, rejects on anything else.
function ping(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let reply = '';
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (chunk: string) => {
      reply += chunk;
      if (!reply.includes('\r\n')) return;
      sock.destroy();
      if (reply.startsWith('+PONG')) resolve();
      else reject(new Error(`redis-server answered PING with ${JSON.stringify(reply)}`));
    });
    sock.once('error', reject);
  });
}

interface Spawned {
  child: ChildProcess;
  log: string;
}

// Starts one redis-server process; null (with its log) when it exits before it is ready.
async function spawnServer(port: number, dir: string, options: RedisServerOptions): Promise<Spawned | string> {
  const store = options.persistence === 'aof-always' ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...store, '--dir', dir, ...(options.extraArgs ?? [])];
  const child = spawn(redisServerPath!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let log = '';
  // Ready when the server says so, or failed when it exits first (e.g. the port was taken meanwhile).
  const ready = await new Promise<boolean>((resolve) => {
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('Ready to accept connections')) resolve(true);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', () => resolve(false));
    child.once('error', (err) => {
      log += String(err);
      resolve(false);
    });
  });
  if (!ready) {
    await end(child, 'SIGKILL');
    return log;
  }
  child.stdout!.resume();
  child.stderr!.resume();
  await ping(port);
  return { child, log };
}

async function end(child: ChildProcess, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGCONT'); // a paused server cannot act on SIGTERM
    child.kill(signal);
    const kill = signal === 'SIGTERM' ? setTimeout(() => child.kill('SIGKILL'), 5000) : undefined;
    await exited(child);
    clearTimeout(kill);
  }
  running.delete(child);
}

async function startOn(port: number, options: RedisServerOptions): Promise<RedisServer | string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'capibara-redis-'));
  const first = await spawnServer(port, dir, options);
  if (typeof first === 'string') {
    rmSync(dir, { recursive: true, force: true });
    return first;
  }
  let child = first.child;
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stoppers.delete(stop);
    return (stopping ??= end(child, 'SIGTERM').then(() => rmSync(dir, { recursive: true, force: true })));
  };
  stoppers.add(stop);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    kill: () => end(child, 'SIGKILL'),
    restart: async () => {
      if (stopping) throw new Error('redis-server was stopped');
      await end(child, 'SIGKILL');
      // The port was ours a moment ago: a few tries cover a slow release of the socket.
      let log = '';
      for (let attempt = 0; attempt < 3; attempt++) {
        const next = await spawnServer(port, dir, options);
        if (typeof next !== 'string') {
          child = next.child;
          return;
        }
        log = next;
      }
      throw new Error(`redis-server did not restart on port ${port}:\n${log}`);
    },
    stop,
  };
}

/**
 * Starts redis-server on `port` (default: a free one; retried on a race for it) and waits until
 * it answers PING.
 */
export async function startRedisServer(port?: number, options: RedisServerOptions = {}): Promise<RedisServer> {
  if (!redisServerPath) throw new Error(redisSkipReason);
  let log = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const result = await startOn(port ?? (await freePort()), options);
    if (typeof result !== 'string') return result;
    log = result;
  }
  throw new Error(`redis-server did not start:\n${log}`);
}
