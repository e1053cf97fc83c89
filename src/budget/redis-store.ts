/**
 * A {@link BudgetStore} in Redis, for many processes sharing budgets. Every operation is one Lua
 * script, so Redis runs it whole: no other process's reserve or commit can land between this
 * one's check and its write.
 *
 * Key layout, all under the prefix (default `{capibara}:budget:`):
 * - `<prefix>w:<window key>`  hash {committed, reserved}: numbers as `%.17g` strings (exact doubles);
 *   when the window has an `expiresAt`, PEXPIREAT `expiresAt + 24 h` drops it even if nobody calls again.
 * - `<prefix>windows`         sorted set: window key → expiresAt, swept before each decision.
 * - `<prefix>r:<id>`          hash {amount, keys (JSON), expiresAt, meta, seq} of one open reservation.
 * - `<prefix>reservations`    sorted set: id → expiresAt, swept before each decision.
 * - `<prefix>expired`         list of id, meta pairs released by expiry, not yet reported by `expire()`.
 * - `<prefix>seq`             placement counter: expired reservations are released in placement order.
 * The prefix's `{…}` hash tag puts all of them in one Redis Cluster slot.
 * @module
 */
import { createHash } from 'node:crypto';

import type { Cluster, Redis, RedisOptions } from 'ioredis';

import { CloseGuard } from '../toolkit/closing';
import * as v from '../validate';
import type { BudgetStore, ExpiredReservation, ReserveOp, ReserveResult, SettleResult, WindowUsage } from './store';

/**
 * Options of {@link RedisBudgetStore}. Give `url` or `client`, not both (neither: `redis://127.0.0.1:6379`).
 *
 * @example
 * ```ts
 * const options: RedisBudgetStoreOptions = { url: process.env.REDIS_URL, prefix: '{team-a}:budget:', commandTimeoutMs: 300 };
 * const store = new RedisBudgetStore(options);
 * ```
 */
export interface RedisBudgetStoreOptions {
  /** Redis URL (`redis://[user:pass@]host:port[/db]` or `rediss://…`): the store creates the client and closes it in `close()`. */
  url?: string;
  /**
   * An ioredis `Redis` or `Cluster` client to use; `close()` leaves it open. Configure it with
   * `enableOfflineQueue: false`, `maxRetriesPerRequest: 0` and `autoResendUnfulfilledCommands: false`
   * as the store does for its own client, or a command sent just before a disconnect may run twice.
   */
  client?: Redis | Cluster;
  /**
   * Prefix of every key. It must contain a Redis Cluster hash tag (`{…}`, non-empty): the scripts
   * touch keys they find inside other keys (a reservation's windows), so one namespace's keys must
   * live in one slot. Different prefixes are independent budget namespaces. Default `{capibara}:budget:`.
   */
  prefix?: string;
  /** Bound on one TCP connect attempt of a client the store creates (ms, default 2000); not allowed with `client`. */
  connectTimeoutMs?: number;
  /**
   * Bound on every operation, waiting for a connection in progress included (ms, default 1000).
   * Past it the operation rejects; if the script had been sent it may still have run.
   */
  commandTimeoutMs?: number;
}

const DEFAULT_URL = 'redis://127.0.0.1:6379';
const DEFAULT_PREFIX = '{capibara}:budget:';
// Window counters outlive their expiresAt by this much in Redis: expiry decisions use the callers'
// `now`, so a caller whose clock lags Redis's must still find the counters.
const WINDOW_GRACE_MS = 24 * 60 * 60 * 1000;
// Internal reason of a failed wait for the connection; callers reword it with their operation.
const UNREACHABLE = 'unreachable';
const OPTION_NAMES = ['url', 'client', 'prefix', 'connectTimeoutMs', 'commandTimeoutMs'];

// Shared by every script. Numbers cross as strings: JS String(x) and Lua's '%.17g' both
// round-trip a double exactly, so sums here equal the in-process store's to the last bit.
const PRELUDE = `
local P, NOW = ARGV[1], ARGV[2]
local RZ, WZ, EXPIRED, SEQ = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local function num(s)
  if s == 'inf' then return math.huge elseif s == '-inf' then return -math.huge end
  return tonumber(s)
end
local function fmt(x) return string.format('%.17g', x) end

-- Frees a reservation: its amount leaves each window's reserved, actual joins committed.
local function settle(id, rkey, actual)
  local r = redis.call('HMGET', rkey, 'amount', 'keys', 'meta')
  local amount = num(r[1])
  redis.call('DEL', rkey)
  redis.call('ZREM', RZ, id)
  local after = {}
  for _, k in ipairs(cjson.decode(r[2])) do
    local wkey = P .. 'w:' .. k
    local w = redis.call('HMGET', wkey, 'committed', 'reserved')
    local committed, reserved = 0, 0
    if w[1] then
      committed, reserved = num(w[1]), num(w[2])
    else
      -- Dropped meanwhile: starts again with no expiry, as the in-process store does.
      redis.call('ZREM', WZ, k)
    end
    reserved = math.max(0, reserved - amount)
    committed = committed + actual
    redis.call('HSET', wkey, 'committed', fmt(committed), 'reserved', fmt(reserved))
    after[#after + 1] = k
    after[#after + 1] = fmt(committed)
    after[#after + 1] = fmt(reserved)
  end
  return amount, after, r[3]
end

-- Releases reservations whose expiry has passed (in placement order, so float sums match the
-- in-process store), queues them for expire(), and drops expired windows that hold nothing.
local function sweep()
  local due = redis.call('ZRANGEBYSCORE', RZ, '-inf', NOW)
  if #due > 0 then
    local list = {}
    for _, id in ipairs(due) do
      local rkey = P .. 'r:' .. id
      local seq = redis.call('HGET', rkey, 'seq')
      if seq then list[#list + 1] = { tonumber(seq), id, rkey } else redis.call('ZREM', RZ, id) end
    end
    table.sort(list, function(a, b) return a[1] < b[1] end)
    for _, e in ipairs(list) do
      local _, _, meta = settle(e[2], e[3], 0)
      redis.call('RPUSH', EXPIRED, e[2], meta)
    end
  end
  for _, k in ipairs(redis.call('ZRANGEBYSCORE', WZ, '-inf', NOW)) do
    local wkey = P .. 'w:' .. k
    local reserved = redis.call('HGET', wkey, 'reserved')
    if not reserved then
      redis.call('ZREM', WZ, k)
    elseif num(reserved) == 0 then
      redis.call('DEL', wkey)
      redis.call('ZREM', WZ, k)
    end
  end
end
`;

// KEYS: 4 namespace keys, reservation, windows…  ARGV: P, now, id, amount, expiresAt, meta,
// then per window: key, cap, expiresAt ('' = none), PEXPIREAT ms ('' = none).
// Returns {placed 0/1, refusedBy, committed1, reserved1, …} (usage before).
const RESERVE = `${PRELUDE}
sweep()
local amount = num(ARGV[4])
local rkey = KEYS[5]
local n = #KEYS - 5
local out = { 0, -1 }
local keys = {}
for i = 1, n do
  local wkey = KEYS[5 + i]
  local a = 6 + (i - 1) * 4
  local k, cap, wexp, at = ARGV[a + 1], num(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4]
  keys[i] = k
  local w = redis.call('HMGET', wkey, 'committed', 'reserved')
  local committed, reserved = 0, 0
  if w[1] then
    committed, reserved = num(w[1]), num(w[2])
  else
    -- Created even when refused: a window's expiry is fixed by whoever first names it.
    redis.call('HSET', wkey, 'committed', '0', 'reserved', '0')
    if wexp ~= '' then
      redis.call('ZADD', WZ, wexp, k)
      if at ~= '' then redis.call('PEXPIREAT', wkey, at) end
    end
  end
  out[#out + 1] = fmt(committed)
  out[#out + 1] = fmt(reserved)
  if out[2] < 0 and committed + reserved + amount > cap then out[2] = i - 1 end
end
if out[2] >= 0 then return out end
-- Re-read each window: a key named twice is charged twice, as in the in-process store.
for i = 1, n do
  local wkey = KEYS[5 + i]
  redis.call('HSET', wkey, 'reserved', fmt(num(redis.call('HGET', wkey, 'reserved')) + amount))
end
local seq = redis.call('HGET', rkey, 'seq') or redis.call('INCR', SEQ)
redis.call('DEL', rkey)
redis.call('HSET', rkey, 'amount', ARGV[4], 'keys', cjson.encode(keys), 'expiresAt', ARGV[5], 'meta', ARGV[6], 'seq', seq)
redis.call('ZADD', RZ, ARGV[5], ARGV[3])
out[1] = 1
return out
`;

// KEYS: 4 namespace keys, reservation.  ARGV: P, now, id, actual ('0' = release).
// Returns nil, or {amount, meta, key1, committed1, reserved1, …} (usage after).
const SETTLE = `${PRELUDE}
sweep()
if redis.call('EXISTS', KEYS[5]) == 0 then return false end
local amount, after, meta = settle(ARGV[3], KEYS[5], num(ARGV[4]))
table.insert(after, 1, meta)
table.insert(after, 1, fmt(amount))
return after
`;

// KEYS: 4 namespace keys.  Returns {id1, meta1, …} and empties the list.
const EXPIRE = `${PRELUDE}
sweep()
local out = redis.call('LRANGE', EXPIRED, 0, -1)
redis.call('DEL', EXPIRED)
return out
`;

// KEYS: 4 namespace keys, windows….  Returns {committed1, reserved1, …}.
const USAGE = `${PRELUDE}
sweep()
local out = {}
for i = 5, #KEYS do
  local w = redis.call('HMGET', KEYS[i], 'committed', 'reserved')
  out[#out + 1] = w[1] or '0'
  out[#out + 1] = w[2] or '0'
end
return out
`;

interface Script {
  lua: string;
  sha: string;
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

const SCRIPTS = { reserve: script(RESERVE), settle: script(SETTLE), expire: script(EXPIRE), usage: script(USAGE) };

// Lua's tonumber() and '%.17g' spell infinities 'inf'; JS's String() spells them 'Infinity'.
function enc(x: number): string {
  if (Number.isFinite(x)) return String(x);
  return x > 0 ? 'inf' : x < 0 ? '-inf' : 'nan';
}

function dec(s: unknown): number {
  const n = Number(s);
  if (!Number.isNaN(n)) return n;
  return s === 'inf' ? Infinity : s === '-inf' ? -Infinity : NaN;
}

function isClient(value: unknown): value is Redis | Cluster {
  if (value === null || typeof value !== 'object') return false;
  const c = value as Record<string, unknown>;
  return typeof c.status === 'string' && ['evalsha', 'eval', 'on', 'off', 'connect'].every((m) => typeof c[m] === 'function');
}

// The first '{' and the next '}' with something between: Redis Cluster hashes only that part.
function hasHashTag(prefix: string): boolean {
  const open = prefix.indexOf('{');
  const close = open < 0 ? -1 : prefix.indexOf('}', open + 1);
  return close > open + 1;
}

/**
 * A {@link BudgetStore} in Redis with exactly the semantics of {@link MemoryBudgetStore}, shared
 * by every process that uses the same Redis and prefix. Each operation is one Lua script
 * (EVALSHA, falling back to EVAL when Redis has not cached it), so it is atomic across processes;
 * amounts stay exact doubles (sums equal the in-process store's bit for bit).
 *
 * Failure behaviour, for the caller's fail-open / fail-closed choice: every operation settles
 * within `commandTimeoutMs`. While the client is reconnecting after a lost connection, or has
 * ended, operations reject at once without sending anything; while a connection attempt is in
 * progress they wait for it, within the same bound. A rejection that says the script may have been
 * sent (no reply in time, or the connection dropped mid-call) can hide an applied operation: a
 * reservation placed that way is released at its `expiresAt`. `expire()` drains one queue per
 * namespace, so with several processes each expired reservation is reported to one of them.
 * One deliberate addition to the in-process semantics: Redis itself deletes a window's counters
 * 24 hours (by its own clock) after the window's `expiresAt`, so dead windows do not pile up.
 *
 * @example
 * ```ts
 * import { BudgetForcing, RedisBudgetStore } from '@capibara/core';
 * const store = new RedisBudgetStore({ url: 'redis://127.0.0.1:6379', commandTimeoutMs: 500 });
 * const budgets = new BudgetForcing({ store, onStoreError: 'fail-closed' });
 * // … on shutdown
 * await budgets.close();
 * await store.close();
 * ```
 */
export class RedisBudgetStore implements BudgetStore {
  readonly #client: Redis | Cluster;
  readonly #owned: boolean;
  readonly #prefix: string;
  readonly #namespaceKeys: string[];
  readonly #timeoutMs: number;
  readonly #guard = new CloseGuard('The budget store');
  #lastError: Error | null = null;
  // Reconnection of a client this store created: an unref'd timer, so that an unreachable
  // Redis never holds the process open (ioredis's own retry timer would).
  #reconnect: NodeJS.Timeout | undefined;
  #attempts = 0;
  // One wait for the connection shared by all operations that arrive before it is ready.
  #readyWait: { promise: Promise<void>; reject: (err: Error) => void } | null = null;

  /**
   * Validates the options and, given a URL (or nothing), creates and connects a client.
   *
   * @example
   * ```ts
   * const shared = new RedisBudgetStore({ url: 'redis://redis.internal:6379/2', prefix: '{tenant-a}:budget:' });
   * const onMine = new RedisBudgetStore({ client: myIoredisClient });
   * ```
   */
  constructor(options?: RedisBudgetStoreOptions) {
    const o = v.options<RedisBudgetStoreOptions>('options', options, OPTION_NAMES);
    if (o.url !== undefined && o.client !== undefined) {
      throw new TypeError('Expected one of options.url and options.client but received both');
    }
    this.#prefix = o.prefix === undefined ? DEFAULT_PREFIX : prefixOption(o.prefix);
    this.#timeoutMs = o.commandTimeoutMs === undefined ? 1000 : v.integer('options.commandTimeoutMs', o.commandTimeoutMs, 1, 600_000);
    this.#namespaceKeys = ['reservations', 'windows', 'expired', 'seq'].map((k) => this.#prefix + k);

    if (o.client !== undefined) {
      if (!isClient(o.client)) throw v.typeError('options.client', 'ioredis Redis or Cluster client', o.client);
      if (o.connectTimeoutMs !== undefined) {
        throw v.typeError('options.connectTimeoutMs', "undefined with options.client (the client's own connectTimeout applies)", o.connectTimeoutMs);
      }
      this.#client = o.client;
      this.#owned = false;
      return;
    }
    const url = o.url === undefined ? DEFAULT_URL : urlOption(o.url);
    const connectTimeout = o.connectTimeoutMs === undefined ? 2000 : v.integer('options.connectTimeoutMs', o.connectTimeoutMs, 1, 600_000);
    // Loaded here, not at the top: ioredis costs ~90 ms to load, and only this path needs it.
    const { Redis: RedisClient } = require('ioredis') as typeof import('ioredis');
    const clientOptions: RedisOptions = {
      connectTimeout,
      connectionName: 'capibara-budget-store',
      // Never queue while disconnected and never resend after a reconnect: a budget operation
      // either runs now or fails now, and a resent reserve could be charged twice.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: () => null,
    };
    const client = new RedisClient(url, clientOptions);
    this.#client = client;
    this.#owned = true;
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

  /**
   * {@inheritDoc BudgetStore.reserve}
   *
   * @example
   * ```ts
   * const store = new RedisBudgetStore({ url: 'redis://127.0.0.1:6379' });
   * const now = Date.now();
   * const r = await store.reserve({ id: 'a1', amount: 500, windows: [{ key: 'tokens:daily', cap: 10_000, expiresAt: now + 86_400_000 }], now, expiresAt: now + 60_000, meta: '{}' });
   * // one Lua script: no other process's reserve lands between its check and its write
   * ```
   */
  async reserve(op: ReserveOp): Promise<ReserveResult> {
    const P = this.#prefix;
    const keys = [...this.#namespaceKeys, `${P}r:${op.id}`, ...op.windows.map((w) => `${P}w:${w.key}`)];
    const args = [P, enc(op.now), op.id, enc(op.amount), enc(op.expiresAt), op.meta];
    for (const w of op.windows) {
      const at = w.expiresAt !== null && Number.isFinite(w.expiresAt) ? String(Math.ceil(w.expiresAt) + WINDOW_GRACE_MS) : '';
      args.push(w.key, enc(w.cap), w.expiresAt === null ? '' : enc(w.expiresAt), at);
    }
    const r = (await this.#call('reserve', SCRIPTS.reserve, keys, args)) as Array<string | number>;
    const before: WindowUsage[] = [];
    for (let i = 2; i < r.length; i += 2) before.push({ committed: dec(r[i]), reserved: dec(r[i + 1]) });
    return { placed: r[0] === 1, before, refusedBy: Number(r[1]) };
  }

  /**
   * {@inheritDoc BudgetStore.commit}
   *
   * @example
   * ```ts
   * const s = await store.commit('a1', 420, Date.now()); // null if 'a1' is unknown or expired
   * ```
   */
  async commit(id: string, actual: number, now: number): Promise<SettleResult | null> {
    return this.#settle('commit', id, actual, now);
  }

  /**
   * {@inheritDoc BudgetStore.release}
   *
   * @example
   * ```ts
   * const s = await store.release('a1', Date.now()); // s?.charged === 0
   * ```
   */
  async release(id: string, now: number): Promise<SettleResult | null> {
    return this.#settle('release', id, 0, now);
  }

  /**
   * {@inheritDoc BudgetStore.expire}
   *
   * @example
   * ```ts
   * const expired = await store.expire(Date.now()); // with several processes, each expiry is reported to one of them
   * ```
   */
  async expire(now: number): Promise<ExpiredReservation[]> {
    const r = (await this.#call('expire', SCRIPTS.expire, this.#namespaceKeys, [this.#prefix, enc(now)])) as string[];
    const out: Array<{ id: string; meta: string }> = [];
    for (let i = 0; i < r.length; i += 2) out.push({ id: r[i]!, meta: r[i + 1]! });
    return out;
  }

  /**
   * {@inheritDoc BudgetStore.usage}
   *
   * @example
   * ```ts
   * const [daily] = await store.usage(['tokens:daily'], Date.now()); // exact doubles; zeros for an unknown key
   * ```
   */
  async usage(keys: string[], now: number): Promise<WindowUsage[]> {
    const redisKeys = [...this.#namespaceKeys, ...keys.map((k) => `${this.#prefix}w:${k}`)];
    const r = (await this.#call('usage', SCRIPTS.usage, redisKeys, [this.#prefix, enc(now)])) as string[];
    return keys.map((_, i) => ({ committed: dec(r[2 * i]), reserved: dec(r[2 * i + 1]) }));
  }

  /**
   * Marks the store closed (later calls reject with "The budget store is closed") and, for a
   * client it created, sends QUIT after the replies already due and disconnects. A client passed
   * in `options.client` stays open. Idempotent.
   *
   * @example
   * ```ts
   * process.once('SIGTERM', () => void store.close());
   * ```
   */
  close(): Promise<void> {
    return this.#guard.close(async () => {
      clearTimeout(this.#reconnect);
      this.#readyWait?.reject(this.#guard.error());
      if (this.#owned) await this.#shutdown();
    });
  }

  /** {@link RedisBudgetStore.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    const c = this.#client;
    if (c.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#timeoutMs)));
      await Promise.race([c.quit().catch(() => undefined), late]);
      clearTimeout(timer);
    }
    if (c.status !== 'end') c.disconnect();
  }

  async #settle(op: string, id: string, actual: number, now: number): Promise<SettleResult | null> {
    const keys = [...this.#namespaceKeys, `${this.#prefix}r:${id}`];
    const r = (await this.#call(op, SCRIPTS.settle, keys, [this.#prefix, enc(now), id, enc(actual)])) as string[] | null;
    if (r === null) return null;
    const after: SettleResult['after'] = [];
    for (let i = 2; i < r.length; i += 3) after.push({ key: r[i]!, committed: dec(r[i + 1]), reserved: dec(r[i + 2]) });
    return { reserved: dec(r[0]), charged: actual, after, meta: r[1]! };
  }

  // Runs one script within the operation's deadline; errors keep the caller's stack.
  async #call(op: string, s: Script, keys: string[], args: string[]): Promise<unknown> {
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
    const send = (): Promise<unknown> => {
      // Past the deadline the caller has its answer: sending now could apply an operation it was told failed.
      if (state.late) return Promise.resolve(undefined);
      if (this.#guard.closed) return Promise.reject(this.#guard.error());
      state.sent = true;
      return this.#eval(s, keys, args, () => state.late);
    };
    const wait = this.#whenReady();
    // When ready, the script is written synchronously: a close() called right after this
    // operation sends QUIT behind it, so the operation still gets its reply.
    const work = wait
      ? wait.then(send, (err: unknown) => {
          if (err instanceof Error && err.message === UNREACHABLE) {
            throw new Error(`RedisBudgetStore.${op}: Redis is not reachable (${this.#connectionState()}); nothing was sent`);
          }
          throw err;
        })
      : send();
    work.catch(() => undefined);
    try {
      return await Promise.race([work, deadline]);
    } catch (err) {
      throw v.rebase(state.sent && !state.late ? this.#sentError(op, err) : err, site);
    } finally {
      clearTimeout(timer);
    }
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
    const status = `connection ${this.#reconnect !== undefined ? 'reconnecting' : this.#client.status}`;
    return this.#lastError ? `${status}, last error: ${this.#lastError.message}` : status;
  }

  // Resolves once the client is ready; rejects at once while it is reconnecting or ended.
  #whenReady(): Promise<void> | void {
    const c = this.#client;
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

  async #eval(s: Script, keys: string[], args: string[], late: () => boolean): Promise<unknown> {
    const c = this.#client;
    try {
      return await c.evalsha(s.sha, keys.length, ...keys, ...args);
    } catch (err) {
      // NOSCRIPT: Redis restarted or flushed its script cache, and the script did not run. Resend
      // it whole, unless the caller was already told this operation failed.
      if (err instanceof Error && err.message.startsWith('NOSCRIPT') && !late()) return c.eval(s.lua, keys.length, ...keys, ...args);
      throw err;
    }
  }

}

function prefixOption(value: unknown): string {
  const expected = "string with a non-empty Redis Cluster hash tag, like '{capibara}:budget:'";
  if (typeof value !== 'string') throw v.typeError('options.prefix', expected, value);
  if (!hasHashTag(value)) throw v.rangeError('options.prefix', expected, value);
  return value;
}

function urlOption(value: unknown): string {
  const expected = "Redis URL ('redis://host:port[/db]' or 'rediss://…')";
  if (typeof value !== 'string') throw v.typeError('options.url', expected, value);
  if (!/^rediss?:\/\/./.test(value)) throw v.rangeError('options.url', expected, value);
  return value;
}
