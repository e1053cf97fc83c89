import { execFile } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { freePort, hasRedisServer, redisSkipReason, startRedisServer, type RedisServer } from './support/redis-server';

// Nothing keeps a process alive after its last call: each case runs a RedisBudgetStore in a child
// process (the built package, lib/) that does its work and returns, and the child must then exit
// by itself. It prints how long after close() (or after its last call) the process exited.
const lib = resolve(__dirname, '..', 'lib', 'index.js');

interface Outcome {
  code: number | null;
  result: { op: string; afterMs: number };
}

function runChild(url: string, plan: 'op' | 'close-mid-connect' | 'close-after-op'): Promise<Outcome> {
  const script = `
    const { RedisBudgetStore } = require(${JSON.stringify(lib)});
    const store = new RedisBudgetStore({ url: ${JSON.stringify(url)}, requirePersistence: 'ignore', commandTimeoutMs: 500 });
    let op = 'none', since = 0;
    process.on('exit', () => console.log(JSON.stringify({ op, afterMs: Date.now() - since })));
    (async () => {
      if (${JSON.stringify(plan)} !== 'close-mid-connect') {
        op = await store.acceptStateLoss().then(() => 'ok', (e) => e.message);
      } else {
        await new Promise((r) => setTimeout(r, 5)); // the socket is connecting or waiting for its ready check
      }
      since = Date.now();
      if (${JSON.stringify(plan)} !== 'op') await store.close();
    })();`;
  return new Promise((done, fail) => {
    const child = execFile(process.execPath, ['-e', script], { timeout: 15_000, encoding: 'utf8' }, (err, stdout) => {
      if (err && err.killed) return fail(new Error(`the child process was still alive after 15 s: ${stdout}`));
      done({ code: child.exitCode, result: JSON.parse(stdout.trim().split('\n').at(-1)!) as Outcome['result'] });
    });
  });
}

describe('RedisBudgetStore lets the process exit', () => {
  // A TCP server that accepts connections and never answers: a Redis that hangs.
  let mute: Server;
  let muteUrl = '';
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    mute = createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    muteUrl = `redis://127.0.0.1:${(mute.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => mute.close(r));
  });

  it('never closed, with nothing listening on its port', async () => {
    const { code, result } = await runChild(`redis://127.0.0.1:${await freePort()}`, 'op');
    expect(code).toBe(0);
    expect(result.op).toMatch(/^RedisBudgetStore\.acceptStateLoss: Redis is not reachable \(connection .*ECONNREFUSED/);
  });

  it('never closed, on a server that never answers', async () => {
    const { code, result } = await runChild(muteUrl, 'op');
    expect(code).toBe(0);
    expect(result.op).toBe('RedisBudgetStore.acceptStateLoss: Redis is not reachable (connection connect) within 500 ms; nothing was sent');
  });

  // ioredis half-closes the socket and waits up to 2 s, on a timer that holds the process, for a
  // peer that never closes its side: twice here (close, then the cut-short ready check).
  it('closed while its connection waits for a server that never answers: exits within 1.5 s of close()', async () => {
    const { code, result } = await runChild(muteUrl, 'close-mid-connect');
    expect(code).toBe(0);
    expect(result.afterMs).toBeLessThan(1500);
  });

  describe.skipIf(!hasRedisServer)('on a real Redis', () => {
    let redis: RedisServer;
    beforeAll(async () => {
      redis = await startRedisServer();
    });
    afterAll(async () => {
      await redis?.stop();
    });

    it('closed during its ready check: exits within 1.5 s of close()', async () => {
      const { code, result } = await runChild(redis.url, 'close-mid-connect');
      expect(code).toBe(0);
      expect(result.afterMs).toBeLessThan(1500);
    });

    it('closed after an operation: exits within 1.5 s of close()', async () => {
      const { code, result } = await runChild(redis.url, 'close-after-op');
      expect(code).toBe(0);
      expect(result.op).toBe('ok');
      expect(result.afterMs).toBeLessThan(1500);
    });
  });
  if (!hasRedisServer) it.skip(`on a real Redis: ${redisSkipReason}`, () => undefined);
});
