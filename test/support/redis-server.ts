/**
 * Throwaway redis-server processes for tests: loopback only, no persistence, one per call.
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

/** A running redis-server. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** SIGSTOP: the server keeps its connections but answers nothing. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** SIGTERM, then waits for the process to exit. Idempotent. */
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

async function startOn(port: number): Promise<RedisServer | string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'capibara-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
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
  const cleanup = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT'); // a paused server cannot act on SIGTERM
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited(child);
      clearTimeout(kill);
    }
    running.delete(child);
    rmSync(dir, { recursive: true, force: true });
  };
  if (!ready) {
    await cleanup();
    return log;
  }
  child.stdout!.resume();
  child.stderr!.resume();
  await ping(port);
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stoppers.delete(stop);
    return (stopping ??= cleanup());
  };
  stoppers.add(stop);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    stop,
  };
}

/** Starts redis-server on `port` (default: a free one; retried on a race for it) and waits until it answers PING. */
export async function startRedisServer(port?: number): Promise<RedisServer> {
  if (!redisServerPath) throw new Error(redisSkipReason);
  let log = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const result = await startOn(port ?? (await freePort()));
    if (typeof result !== 'string') return result;
    log = result;
  }
  throw new Error(`redis-server did not start:\n${log}`);
}
