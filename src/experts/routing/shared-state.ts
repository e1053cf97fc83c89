/**
 * The Redis side of routing state shared across replicas: one command connection running the
 * scripts of shared-scripts.ts (each bounded by a deadline), one subscription to cooldown
 * events, a poll on an unref'd timer, and reconnection. Nothing here is awaited by a routing
 * decision: replies and events update the replica's view (see shared-health.ts) when they come.
 * @module
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis';

import * as v from '../../validate';
import { type Script, SCRIPTS } from './shared-scripts';

/**
 * Where a router keeps the state it shares with the other replicas of a service
 * ({@link RewiringExpertsOptions.sharedState}). Give `url` or `client`, not both (neither:
 * `redis://127.0.0.1:6379`).
 *
 * @example
 * ```ts
 * const router = new RewiringExperts({ sharedState: { url: process.env.REDIS_URL, prefix: '{search-api}:routing:' } });
 * ```
 */
export interface SharedRoutingStateOptions {
  /** Redis URL (`redis://[user:pass@]host:port[/db]` or `rediss://…`): the router creates its clients and closes them in `close()`. */
  url?: string;
  /**
   * An ioredis `Redis` or `Cluster` client for the scripts; the router subscribes on a
   * `duplicate()` of it, which it closes, and leaves the client itself open.
   */
  client?: Redis | Cluster;
  /**
   * Prefix of every key, with a Redis Cluster hash tag (`{…}`, non-empty). Routers with the same
   * prefix share health and outcome statistics; different prefixes are independent.
   * Default `{capibara}:routing:`.
   */
  prefix?: string;
  /**
   * Period of the poll that refreshes this replica's view of the fleet's cooldowns, windows and
   * outcomes (ms, an unref'd timer); it bounds how stale the view can get when a cooldown event
   * is missed. Integer in [10, 3,600,000]; default 1000.
   */
  syncIntervalMs?: number;
  /** Bound on one script call, waiting for a connection included (ms, default 1000). */
  commandTimeoutMs?: number;
  /** Bound on one TCP connect attempt of a client the router creates (ms, default 2000); not allowed with `client`. */
  connectTimeoutMs?: number;
}

/** {@link SharedRoutingStateOptions} checked. @internal */
export interface ResolvedSharedState {
  url: string | undefined;
  client: Redis | Cluster | undefined;
  prefix: string;
  syncIntervalMs: number;
  commandTimeoutMs: number;
  connectTimeoutMs: number;
}

const KEYS = ['url', 'client', 'prefix', 'syncIntervalMs', 'commandTimeoutMs', 'connectTimeoutMs'] as const;

/** Checks `sharedState` options written at `path`. @internal */
export function sharedStateOptions(options: unknown, path: string): ResolvedSharedState {
  const o = v.options<SharedRoutingStateOptions>(path, options, KEYS);
  if (o.url !== undefined && o.client !== undefined) throw new TypeError(`Expected one of ${path}.url and ${path}.client but received both`);
  const prefix = o.prefix === undefined ? '{capibara}:routing:' : v.nonEmptyString(`${path}.prefix`, o.prefix);
  const open = prefix.indexOf('{');
  if (open < 0 || prefix.indexOf('}', open + 1) <= open + 1) {
    throw v.rangeError(`${path}.prefix`, "a prefix with a Redis Cluster hash tag such as '{capibara}:routing:'", prefix);
  }
  if (o.client !== undefined) {
    const c = o.client as unknown as Record<string, unknown> | null;
    if (c === null || typeof c !== 'object' || typeof c.status !== 'string' || !['evalsha', 'eval', 'duplicate', 'on'].every((m) => typeof c[m] === 'function')) {
      throw v.typeError(`${path}.client`, 'ioredis Redis or Cluster client', o.client);
    }
    if (o.connectTimeoutMs !== undefined) throw v.typeError(`${path}.connectTimeoutMs`, "undefined with a client (the client's own connectTimeout applies)", o.connectTimeoutMs);
  }
  const url = o.url === undefined ? undefined : v.nonEmptyString(`${path}.url`, o.url);
  if (url !== undefined && !/^rediss?:\/\//.test(url)) throw v.rangeError(`${path}.url`, "a URL starting with 'redis://' or 'rediss://'", url);
  return {
    url: o.client === undefined ? (url ?? 'redis://127.0.0.1:6379') : undefined,
    client: o.client,
    prefix,
    syncIntervalMs: o.syncIntervalMs === undefined ? 1000 : v.integer(`${path}.syncIntervalMs`, o.syncIntervalMs, 10, 3_600_000),
    commandTimeoutMs: o.commandTimeoutMs === undefined ? 1000 : v.integer(`${path}.commandTimeoutMs`, o.commandTimeoutMs, 1, 600_000),
    connectTimeoutMs: o.connectTimeoutMs === undefined ? 2000 : v.integer(`${path}.connectTimeoutMs`, o.connectTimeoutMs, 1, 600_000),
  };
}

/** The health rules sent with every script (each replica sends its own; they should agree). @internal */
export interface SharedRules {
  windowMs: number;
  failureRate: number;
  minRequests: number;
  cooldownMs: number;
}

/** A cooldown as Redis holds it. @internal */
export interface FleetCooldown {
  until: number;
  reason: string;
}

/** Another replica's outcome, from the stream. @internal */
export interface FleetOutcome {
  expertId: string;
  success: boolean;
  latencyMs: number;
  quality: number | undefined;
  at: number;
}

/** What the shared state tells its owner. @internal */
export interface SharedStateHooks {
  now(): number;
  rules: SharedRules;
  /** The router's experts, for the poll's windows. */
  expertIds(): string[];
  /** This replica's own cooldowns, restored to Redis after each new connection. */
  localCooldowns(): Array<[string, FleetCooldown]>;
  /** Every cooldown Redis holds now. */
  cooldowns(list: Map<string, FleetCooldown>): void;
  /** One cooldown that just started somewhere (from the subscription). */
  cooldownStarted(expertId: string, c: FleetCooldown): void;
  /** Requests and failures in the fleet's window of some experts. */
  windows(w: Map<string, { requests: number; failures: number }>): void;
  /** Outcomes of other replicas, oldest first. */
  outcomes(list: FleetOutcome[]): void;
  /** Redis became reachable (true) or not (false, with why). */
  connection(connected: boolean, error: Error | null): void;
}

type Reply = [unknown, unknown[], [string, Array<[string, string[]]>]];

/**
 * A client for the router to own: no offline queue and no resend (an outcome is sent now or not
 * at all: sent late it would count in a window it no longer belongs to), and ioredis's own
 * retry timer off (reconnection runs on an unref'd timer, so an unreachable Redis never holds
 * the process open).
 */
function createClient(url: string, connectTimeout: number, name: string): Redis {
  const { Redis: RedisClient } = require('ioredis') as typeof import('ioredis');
  const options: RedisOptions = {
    connectTimeout, connectionName: name, enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false,
    retryStrategy: () => null, lazyConnect: false,
  };
  return new RedisClient(url, options);
}

/**
 * One replica's link to the shared routing state.
 * @internal
 */
export class SharedRoutingState {
  /** A random id of this replica: its own outcomes in the stream are skipped. */
  readonly replica: string;
  readonly #o: ResolvedSharedState;
  readonly #h: SharedStateHooks;
  readonly #client: Redis | Cluster;
  readonly #sub: Redis | Cluster;
  readonly #owned: Array<Redis | Cluster>;
  readonly #timer: NodeJS.Timeout;
  readonly #reconnects = new Map<Redis | Cluster, { timer: NodeJS.Timeout | undefined; attempts: number }>();
  #closed = false;
  #connected: boolean | null = null;
  #lastId = '';
  // Bumped by every new command connection: the next poll restores this replica's cooldowns.
  #connection = 0;
  #restored = -1;
  #polling: Promise<boolean> | null = null;
  #next: Promise<boolean> | null = null;
  /** Outcomes not sent because Redis was unreachable (they counted locally only). */
  dropped = 0;

  constructor(o: ResolvedSharedState, hooks: SharedStateHooks, replica: string) {
    this.#o = o;
    this.#h = hooks;
    this.replica = replica;
    if (o.client !== undefined) {
      this.#client = o.client;
      this.#sub = o.client.duplicate();
      this.#owned = [this.#sub];
    } else {
      this.#client = createClient(o.url!, o.connectTimeoutMs, 'capibara-routing');
      this.#sub = createClient(o.url!, o.connectTimeoutMs, 'capibara-routing-events');
      this.#owned = [this.#client, this.#sub];
    }
    for (const c of this.#owned) this.#watch(c);
    this.#client.on('ready', () => {
      this.#connection++;
      void this.poll();
    });
    this.#client.on('close', () => this.#setConnected(false, new Error('connection closed')));
    this.#sub.on('ready', () => void (this.#sub as Redis).subscribe(`${o.prefix}events`).catch(() => undefined));
    this.#sub.on('message', (_channel: string, message: string) => this.#event(message));
    if (this.#client.status === 'ready') this.#connection++;
    this.#timer = setInterval(() => void this.poll(), o.syncIntervalMs);
    this.#timer.unref();
  }

  /** Whether the last exchange with Redis succeeded (null before the first). */
  get connected(): boolean | null {
    return this.#connected;
  }

  /** Where the state lives, for messages. */
  get where(): string {
    const opt = (this.#client as { options?: { host?: string; port?: number; path?: string } }).options;
    if ((this.#client as { isCluster?: boolean }).isCluster === true || !opt) return 'the Redis Cluster';
    return opt.path ?? `${opt.host ?? '127.0.0.1'}:${opt.port ?? 6379}`;
  }

  /** Sends one outcome (not awaited by anyone): the reply refreshes the view. */
  record(expertId: string, failed: boolean, nonRetryable: boolean, retryAfterMs: number, latencyMs: number, quality: number | undefined): void {
    if (this.#closed) return;
    if (this.#client.status !== 'ready') {
      this.dropped++;
      return;
    }
    const r = this.#h.rules;
    const args = [
      this.#o.prefix, String(this.#h.now()), String(r.windowMs), String(r.failureRate), String(r.minRequests), String(r.cooldownMs),
      expertId, failed ? '1' : '0', nonRetryable ? '1' : '0', String(retryAfterMs), this.replica, String(latencyMs),
      quality === undefined ? '' : String(quality), this.#lastId,
    ];
    this.#run(SCRIPTS.record, args).then(
      (reply) => {
        const [rf, cooling, out] = reply;
        const [requests, failures] = rf as [number, number];
        this.#h.windows(new Map([[expertId, { requests, failures }]]));
        this.#apply(cooling, out);
      },
      () => void this.dropped++,
    );
  }

  /**
   * Refreshes the view from Redis: every cooldown, the window of each expert, and the outcomes
   * this replica has not read; after a new connection, first restores this replica's own
   * cooldowns. Resolves whether Redis answered. Concurrent calls share a poll started after they were made.
   */
  poll(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    if (this.#next !== null) return this.#next;
    if (this.#polling === null) return this.#start();
    this.#next = this.#polling.then(() => {
      this.#next = null;
      return this.#start();
    });
    return this.#next;
  }

  #start(): Promise<boolean> {
    const p = this.#poll().finally(() => {
      if (this.#polling === p) this.#polling = null;
    });
    this.#polling = p;
    return p;
  }

  async #poll(): Promise<boolean> {
    const ids = this.#h.expertIds();
    const r = this.#h.rules;
    const args = [this.#o.prefix, String(this.#h.now()), String(r.windowMs), String(r.failureRate), String(r.minRequests), String(r.cooldownMs), this.#lastId, String(ids.length), ...ids];
    const connection = this.#connection;
    if (this.#restored !== connection) for (const [id, c] of this.#h.localCooldowns()) args.push(id, String(c.until), c.reason);
    try {
      await this.#ready();
      const [flat, cooling, out] = await this.#run(SCRIPTS.sync, args);
      this.#restored = connection;
      const w = flat as number[];
      this.#h.windows(new Map(ids.map((id, i) => [id, { requests: w[2 * i]!, failures: w[2 * i + 1]! }])));
      this.#apply(cooling, out);
      return true;
    } catch {
      return false;
    }
  }

  /** Stops the poll and reconnection, and closes the clients the router created. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const r of this.#reconnects.values()) clearTimeout(r.timer);
    await Promise.all(this.#owned.map(async (c) => {
      if (c.status === 'ready') {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([c.quit().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#o.commandTimeoutMs)))]);
        clearTimeout(timer);
      }
      if (c.status !== 'end') c.disconnect();
    }));
  }

  #apply(cooling: unknown[], out: [string, Array<[string, string[]]>]): void {
    const list = new Map<string, FleetCooldown>();
    for (let i = 0; i + 1 < cooling.length; i += 2) {
      const c = parseCooldown(String(cooling[i + 1]));
      if (c !== null) list.set(String(cooling[i]), c);
    }
    this.#h.cooldowns(list);
    const [last, entries] = out;
    const fresh: FleetOutcome[] = [];
    for (const [id, fields] of entries) {
      if (this.#lastId !== '' && compareIds(id, this.#lastId) <= 0) continue; // read already (replies can overlap)
      const f = new Map<string, string>();
      for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
      if (f.get('p') === this.replica) continue;
      const latencyMs = Number(f.get('l'));
      const at = Number(f.get('t'));
      const q = f.get('q');
      const expertId = f.get('e');
      if (expertId === undefined || !Number.isFinite(latencyMs) || latencyMs < 0 || !Number.isFinite(at)) continue;
      const quality = q === undefined || q === '' ? undefined : Number(q);
      fresh.push({ expertId, success: f.get('s') === '1', latencyMs, quality: quality !== undefined && quality >= 0 && quality <= 1 ? quality : undefined, at });
    }
    if (this.#lastId === '' || compareIds(last, this.#lastId) > 0) this.#lastId = last;
    this.#setConnected(true, null);
    if (fresh.length > 0) this.#h.outcomes(fresh);
  }

  #event(message: string): void {
    const bar = message.indexOf('|');
    if (bar < 0) return;
    const c = parseCooldown(message.slice(bar + 1));
    if (c !== null) this.#h.cooldownStarted(message.slice(0, bar), c);
  }

  // EVALSHA (EVAL when Redis has not cached the script) within the deadline.
  async #run(s: Script, args: string[]): Promise<Reply> {
    const c = this.#client;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no reply from Redis at ${this.where} within ${this.#o.commandTimeoutMs} ms`)), this.#o.commandTimeoutMs);
    });
    const send = async (): Promise<Reply> => {
      try {
        return (await c.evalsha(s.sha, 0, ...args)) as Reply;
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return (await c.eval(s.lua, 0, ...args)) as Reply;
        throw err;
      }
    };
    const work = send();
    work.catch(() => undefined);
    try {
      return await Promise.race([work, deadline]);
    } catch (err) {
      this.#setConnected(false, err instanceof Error ? err : new Error(String(err)));
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  // Waits (within the command deadline) for a connection in progress.
  async #ready(): Promise<void> {
    const c = this.#client;
    if (c.status === 'ready') return;
    if (c.status === 'wait') c.connect().catch(() => undefined);
    if (c.status !== 'connecting' && c.status !== 'connect' && c.status !== 'wait') {
      const err = new Error(`Redis at ${this.where} is not reachable (connection ${c.status})`);
      this.#setConnected(false, err);
      throw err;
    }
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        c.off('ready', onReady);
        c.off('end', onEnd);
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => done();
      const onEnd = () => done(new Error(`Redis at ${this.where} is not reachable`));
      const timer = setTimeout(() => done(new Error(`Redis at ${this.where} did not answer within ${this.#o.commandTimeoutMs} ms`)), this.#o.commandTimeoutMs);
      c.on('ready', onReady);
      c.on('end', onEnd);
    }).catch((err: Error) => {
      this.#setConnected(false, err);
      throw err;
    });
  }

  #setConnected(connected: boolean, error: Error | null): void {
    if (this.#closed || this.#connected === connected) return;
    this.#connected = connected;
    this.#h.connection(connected, error);
  }

  #watch(c: Redis | Cluster): void {
    const r = { timer: undefined as NodeJS.Timeout | undefined, attempts: 0 };
    this.#reconnects.set(c, r);
    c.on('error', () => undefined); // reported through failed calls and 'close'
    c.on('connect', () => (c as Redis).stream?.unref?.());
    c.on('ready', () => void (r.attempts = 0));
    // ioredis's default back-off, 50 ms more per attempt, at most 2 s, on an unref'd timer.
    c.on('end', () => {
      if (this.#closed || r.timer !== undefined) return;
      r.attempts++;
      r.timer = setTimeout(() => {
        r.timer = undefined;
        if (!this.#closed && c.status === 'end') c.connect().catch(() => undefined);
      }, Math.min(r.attempts * 50, 2000));
      r.timer.unref();
    });
  }
}

function parseCooldown(v: string): FleetCooldown | null {
  const bar = v.indexOf('|');
  const until = Number(v.slice(0, bar));
  return bar < 0 || !Number.isFinite(until) ? null : { until, reason: v.slice(bar + 1) };
}

// Stream ids 'ms-seq' in numeric order.
function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am - bm || as - bs;
}
