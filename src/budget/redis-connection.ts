/**
 * The connection side of {@link RedisBudgetStore}: one ioredis client, each operation bounded by
 * a deadline, reconnection of a client the store created, a check of every new connection
 * before operations use it, and the wording of every way an operation can fail to reach Redis.
 * @module
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis';

import type { CloseGuard } from '../toolkit/closing';
import * as v from '../validate';
import type { Script } from './redis-scripts';

// Internal reason of a failed wait for the connection; callers reword it with their operation.
const UNREACHABLE = 'unreachable';

/**
 * A client for the store to own: it never queues while disconnected and never resends after a
 * reconnect (a budget operation either runs now or fails now, and a resent reserve could be
 * charged twice), and ioredis's own retry timer is off (the connection reconnects on an unref'd one).
 * A disconnect destroys the socket at once: ioredis otherwise half-closes it and waits up to 2 s,
 * on a timer that holds the process open, for a peer that may never answer (a Redis that stalls,
 * or one whose ready check was cut short by close()); nothing is left to send when it disconnects.
 */
export function createClient(url: string, connectTimeout: number): Redis {
  // Loaded here, not at the top: ioredis costs ~90 ms to load, and only this path needs it.
  const { Redis: RedisClient } = require('ioredis') as typeof import('ioredis');
  const options: RedisOptions = {
    connectTimeout,
    connectionName: 'capibara-budget-store',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: () => null,
    disconnectTimeout: 0,
  };
  return new RedisClient(url, options);
}

/**
 * Runs one store's operations on an ioredis client. Every operation settles within `timeoutMs`.
 * While the client is reconnecting after a lost connection, or has ended, operations reject at
 * once without sending anything; while a connection attempt is in progress they wait for it,
 * within the same bound. Each new connection is first checked by `check`, once, which may
 * return a reason to refuse every operation on it.
 * @internal
 */
export class ScriptConnection {
  readonly client: Redis | Cluster;
  readonly #owned: boolean;
  readonly #timeoutMs: number;
  readonly #guard: CloseGuard;
  readonly #check: () => Promise<string | null>;
  readonly #detach: () => void;
  #lastError: Error | null = null;
  // Reconnection of a client the store created: an unref'd timer, so that an unreachable
  // Redis never holds the process open (ioredis's own retry timer would).
  #reconnect: NodeJS.Timeout | undefined;
  #attempts = 0;
  // One wait for the connection shared by all operations that arrive before it is ready.
  #readyWait: { promise: Promise<void>; reject: (err: Error) => void } | null = null;
  // #connection counts connections opened and closed; #verified is the one checked.
  #connection = 0;
  #verified = -1;
  #verifying: { connection: number; promise: Promise<void> } | null = null;
  // Why operations are refused on the checked connection, or null.
  #refusal: string | null = null;

  constructor(client: Redis | Cluster, owned: boolean, timeoutMs: number, guard: CloseGuard, check: () => Promise<string | null>) {
    this.client = client;
    this.#owned = owned;
    this.#timeoutMs = timeoutMs;
    this.#guard = guard;
    this.#check = check;
    if (owned) this.#watch(client as Redis);
    // A new connection is checked before use, and at once, so that a restart is noticed early.
    const onReady = () => {
      this.#connection++;
      this.#verify().catch(() => undefined);
    };
    const onClose = () => void this.#connection++;
    client.on('ready', onReady);
    client.on('close', onClose);
    this.#detach = () => {
      client.off('ready', onReady);
      client.off('close', onClose);
    };
  }

  #watch(client: Redis): void {
    // Errors reach callers through rejected operations; keep the last one for their messages.
    client.on('error', (err: Error) => (this.#lastError = err));
    client.on('ready', () => {
      this.#lastError = null;
      this.#attempts = 0;
    });
    // Operations in flight keep the process alive by their own deadline timers; an idle
    // connection does not (a store the caller forgot to close never hangs its exit).
    client.on('connect', () => client.stream?.unref?.());
    client.on('end', () => this.#scheduleReconnect(client));
  }

  // ioredis's default back-off: 50 ms more per attempt, at most 2 s.
  #scheduleReconnect(client: Redis): void {
    if (this.#guard.closed || this.#reconnect !== undefined) return;
    this.#attempts++;
    this.#reconnect = setTimeout(() => {
      this.#reconnect = undefined;
      if (!this.#guard.closed && client.status === 'end') client.connect().catch(() => undefined);
    }, Math.min(this.#attempts * 50, 2000));
    this.#reconnect.unref();
  }

  // Checks the current connection once; a failed check is tried again by the next operation.
  #verify(): Promise<void> {
    const connection = this.#connection;
    if (this.#verifying?.connection === connection) return this.#verifying.promise;
    const promise = this.#check().then((refusal) => {
      if (connection !== this.#connection) return; // closed meanwhile: the next one is checked again
      this.#refusal = refusal;
      this.#verified = connection;
    });
    this.#verifying = { connection, promise };
    promise.catch(() => {
      if (this.#verifying?.promise === promise) this.#verifying = null;
    });
    return promise;
  }

  /**
   * Runs `send` once the connection is ready and checked, within the deadline; errors keep the
   * caller's stack. `send` must write its command synchronously: a close() called right after
   * this operation then sends QUIT behind it, so the operation still gets its reply.
   */
  async run<T>(op: string, send: (late: () => boolean) => Promise<T>): Promise<T> {
    this.#guard.check();
    const site = new Error();
    const state = { sent: false, late: false };
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        state.late = true;
        reject(
          state.sent
            ? new Error(`RedisBudgetStore.${op}: no reply from Redis within ${this.#timeoutMs} ms; it may or may not have been applied`)
            : new Error(`RedisBudgetStore.${op}: Redis is not reachable (${this.#connectionState()}) within ${this.#timeoutMs} ms; nothing was sent`),
        );
      }, this.#timeoutMs);
    });
    const attempt = (): Promise<T> => {
      // Past the deadline the caller has its answer: sending now could apply an operation it was told failed.
      if (state.late) return Promise.resolve(undefined as never);
      if (this.#guard.closed) return Promise.reject(this.#guard.error());
      if (this.#verified !== this.#connection) {
        return this.#verify().then(attempt, (err: unknown) => {
          const reason = err instanceof Error ? err.message : String(err);
          throw Object.assign(new Error(`RedisBudgetStore.${op}: Redis is not reachable (checking the connection failed: ${reason}); nothing was sent`), { cause: err });
        });
      }
      if (this.#refusal !== null) return Promise.reject(new Error(`RedisBudgetStore.${op}: ${this.#refusal}`));
      state.sent = true;
      return send(() => state.late);
    };
    const wait = this.#whenReady();
    const work: Promise<T> = wait
      ? wait.then(attempt, (err: unknown) => {
          if (err instanceof Error && err.message === UNREACHABLE) {
            throw new Error(`RedisBudgetStore.${op}: Redis is not reachable (${this.#connectionState()}); nothing was sent`);
          }
          throw err;
        })
      : attempt();
    work.catch(() => undefined);
    try {
      return await Promise.race([work, deadline]);
    } catch (err) {
      clearTimeout(timer);
      // Some failures settle without any I/O (a socket half closed while the status still says
      // ready, a refusal): a caller looping on them must still let the socket's events run.
      if (!state.late) await new Promise((resolve) => setImmediate(resolve));
      throw v.rebase(state.sent && !state.late ? this.#sentError(op, err) : err, site);
    } finally {
      clearTimeout(timer);
    }
  }

  /** EVALSHA, or EVAL when Redis has forgotten the script and the caller is still waiting. */
  async eval(s: Script, keys: string[], args: string[], late: () => boolean): Promise<unknown> {
    const c = this.client;
    try {
      return await c.evalsha(s.sha, keys.length, ...keys, ...args);
    } catch (err) {
      // NOSCRIPT: Redis restarted or flushed its script cache, and the script did not run. Resend
      // it whole, unless the caller was already told this operation failed.
      if (err instanceof Error && err.message.startsWith('NOSCRIPT') && !late()) return c.eval(s.lua, keys.length, ...keys, ...args);
      throw err;
    }
  }

  /** Stops reconnecting, fails a wait in progress and, for a client the store created, sends QUIT after the replies due. */
  async close(): Promise<void> {
    clearTimeout(this.#reconnect);
    this.#detach();
    this.#readyWait?.reject(this.#guard.error());
    if (this.#owned) await this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    const c = this.client;
    if (c.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#timeoutMs)));
      await Promise.race([c.quit().catch(() => undefined), late]);
      clearTimeout(timer);
    }
    if (c.status !== 'end') c.disconnect();
  }

  #sentError(op: string, err: unknown): Error {
    if (!(err instanceof Error)) return new Error(`RedisBudgetStore.${op}: ${String(err)}`);
    // The socket was half closed while the status still said ready: ioredis refused to write.
    if (err.message.startsWith("Stream isn't writeable")) {
      return Object.assign(new Error(`RedisBudgetStore.${op}: Redis is not reachable (connection closing); nothing was sent`), { cause: err });
    }
    // ioredis rejects calls in flight when the connection drops (maxRetriesPerRequest: 0 words it oddly).
    const dropped = err.name === 'MaxRetriesPerRequestError' || err.message === 'Connection is closed.';
    const message = dropped
      ? `RedisBudgetStore.${op}: the connection to Redis closed before the reply; it may or may not have been applied`
      : `RedisBudgetStore.${op}: ${err.message}`;
    return Object.assign(new Error(message), { cause: err });
  }

  #connectionState(): string {
    // Between the store's own reconnection attempts ioredis says 'end'.
    const status = `connection ${this.#reconnect !== undefined ? 'reconnecting' : this.client.status}`;
    return this.#lastError ? `${status}, last error: ${this.#lastError.message}` : status;
  }

  // Resolves once the client is ready; rejects at once while it is reconnecting or ended.
  #whenReady(): Promise<void> | void {
    const c = this.client;
    if (c.status === 'ready') return;
    if (c.status === 'reconnecting' || c.status === 'end' || c.status === 'close') {
      // Rejected on the next turn of the event loop, not as a microtask: a caller that loops on
      // offline decisions must still let the reconnection timer and the socket run.
      return new Promise((_, reject) => setImmediate(() => reject(new Error(UNREACHABLE))));
    }
    if (c.status === 'wait') c.connect().catch(() => undefined);
    if (!this.#readyWait) {
      let reject!: (err: Error) => void;
      const promise = new Promise<void>((resolve, rej) => {
        const done = (err?: Error) => {
          c.off('ready', onReady);
          c.off('reconnecting', onLost);
          c.off('end', onLost);
          this.#readyWait = null;
          if (err) rej(err);
          else resolve();
        };
        const onReady = () => done();
        const onLost = () => done(new Error(UNREACHABLE));
        reject = done;
        c.on('ready', onReady);
        c.on('reconnecting', onLost);
        c.on('end', onLost);
      });
      promise.catch(() => undefined);
      this.#readyWait = { promise, reject };
    }
    return this.#readyWait.promise;
  }
}
