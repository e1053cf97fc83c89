/**
 * A {@link BudgetStore} in Redis, for many processes sharing budgets. Every operation is one Lua
 * script (redis-scripts.ts), so Redis runs it whole: no other process's reserve or commit can
 * land between this one's check and its write.
 *
 * Key layout, all under the prefix (default `{capibara}:budget:`):
 * - `<prefix>w:<window key>`  hash {committed, reserved}: numbers as `%.17g` strings (exact doubles);
 *   when the window has an `expiresAt`, PEXPIREAT `expiresAt + 24 h` drops it even if nobody calls again.
 * - `<prefix>windows`         sorted set: window key → expiresAt, swept before each decision.
 * - `<prefix>r:<id>`          hash {amount, keys (JSON), expiresAt, meta, seq} of one open reservation.
 * - `<prefix>reservations`    sorted set: id → expiresAt, swept before each decision.
 * - `<prefix>expired`         list of id, meta pairs released by expiry, not yet reported by `expire()`.
 * - `<prefix>seq`             placement counter: expired reservations are released in placement order.
 * - `<prefix>c:<id>`          marker of an applied charge (24 h), so a charge sent twice counts once.
 * - `<prefix>epoch`           random value written with the namespace, no TTL: its absence, or a
 *                             change, tells a client that saw it that Redis lost the budget state.
 * - `<prefix>epochs:old`      set of epochs superseded by a recorded loss.
 * - `<prefix>lost`            when the last loss was recorded (epoch ms), until `acceptStateLoss()`.
 * - `<prefix>runid`           run_id of the Redis that last checked the namespace.
 * The prefix's `{…}` hash tag puts all of them in one Redis Cluster slot.
 * @module
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';

import type { Cluster, Redis } from 'ioredis';

import { CloseGuard } from '../toolkit/closing';
import { emitSafely } from '../toolkit/listeners';
import * as v from '../validate';
import { createClient, ScriptConnection } from './redis-connection';
import { dec, enc, namespaceKeys, type Script, SCRIPTS } from './redis-scripts';
import { BudgetStateLossError, lossWarning, persistenceRefusal, persistenceWarning, serverFacts, serverName, type StateLossEvent } from './redis-state';
import type { BudgetStore, ChargeOp, ChargeResult, ExpiredReservation, ReserveOp, ReserveResult, SettleResult, WindowUsage } from './store';

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
  /**
   * What to do once Redis has lost the budget state (restarted without an append-only file,
   * flushed, keys evicted), so that windows open at that moment no longer hold what was spent:
   * - `'fail'` (default): a reservation in a window that began before the loss (or whose start
   *   {@link WindowCheck.startsAt} is not given) rejects with {@link BudgetStateLossError}, so
   *   {@link BudgetForcing}'s `onStoreError` decides (fail-closed denies); windows that begin after
   *   the loss work normally; {@link RedisBudgetStore.acceptStateLoss} ends this early.
   * - `'reset'`: those windows go on from zero, as if new (HARD budgets can overspend by what the loss forgot).
   * Either way the loss is recorded in Redis for every process and reported as a `'stateLoss'` event.
   */
  onStateLoss?: 'fail' | 'reset';
  /**
   * What to do about a Redis that does not persist every write, checked once per connection
   * (`CONFIG GET appendonly`, `appendfsync`):
   * - `'warn'` (default): one process warning per store when Redis runs without an append-only
   *   file, syncs it less than always, or refuses CONFIG (as managed Redis often does: then the
   *   warning says it could not be checked).
   * - `'refuse'`: every operation rejects while Redis runs with `appendonly no` ("… requirePersistence
   *   is 'refuse'; nothing was sent"); other cases warn as under `'warn'`.
   * - `'ignore'`: no warning.
   */
  requirePersistence?: 'warn' | 'refuse' | 'ignore';
}

const DEFAULT_URL = 'redis://127.0.0.1:6379';
const DEFAULT_PREFIX = '{capibara}:budget:';
// Window counters outlive their expiresAt by this much in Redis: expiry decisions use the callers'
// `now`, so a caller whose clock lags Redis's must still find the counters.
const WINDOW_GRACE_MS = 24 * 60 * 60 * 1000;
const OPTION_NAMES = ['url', 'client', 'prefix', 'connectTimeoutMs', 'commandTimeoutMs', 'onStateLoss', 'requirePersistence'];

// A script's reply: { epoch, lostAt or '', detected }, then its body.
type Reply = [[string, string, string], unknown];

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
 * State loss: every script first checks the namespace's epoch key against the one this store
 * last saw; a missing or changed epoch means Redis lost the budget state, and the script records
 * the loss in Redis (so processes started later honour it too) before applying `onStateLoss`.
 * At each (re)connect the store also reads Redis's `run_id`, `appendonly` and `appendfsync`: a
 * namespace that outlived a restart of a Redis without an append-only file came from a snapshot
 * and is a loss too; `requirePersistence` warns about, or refuses, a Redis that does not persist.
 * Events: `'stateLoss'` ({@link StateLossEvent}; without a listener, a process warning).
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
export class RedisBudgetStore extends EventEmitter implements BudgetStore {
  readonly #conn: ScriptConnection;
  readonly #prefix: string;
  readonly #namespaceKeys: string[];
  readonly #onStateLoss: 'fail' | 'reset';
  readonly #requirePersistence: 'warn' | 'refuse' | 'ignore';
  readonly #guard = new CloseGuard('The budget store');
  // The namespace's epoch as this store last saw it ('' before its first reply), and the loss
  // marker Redis holds (epoch ms), from the header of every reply.
  #epoch = '';
  #lostAt: number | null = null;
  #warned = false;

  /**
   * Validates the options and, given a URL (or nothing), creates and connects a client.
   *
   * @example
   * ```ts
   * const shared = new RedisBudgetStore({ url: 'redis://redis.internal:6379/2', prefix: '{tenant-a}:budget:' });
   * const onMine = new RedisBudgetStore({ client: myIoredisClient, onStateLoss: 'fail', requirePersistence: 'refuse' });
   * ```
   */
  constructor(options?: RedisBudgetStoreOptions) {
    super();
    const o = v.options<RedisBudgetStoreOptions>('options', options, OPTION_NAMES);
    if (o.url !== undefined && o.client !== undefined) {
      throw new TypeError('Expected one of options.url and options.client but received both');
    }
    this.#prefix = o.prefix === undefined ? DEFAULT_PREFIX : prefixOption(o.prefix);
    const timeoutMs = o.commandTimeoutMs === undefined ? 1000 : v.integer('options.commandTimeoutMs', o.commandTimeoutMs, 1, 600_000);
    this.#onStateLoss = o.onStateLoss === undefined ? 'fail' : v.oneOf('options.onStateLoss', o.onStateLoss, ['fail', 'reset'] as const);
    this.#requirePersistence = o.requirePersistence === undefined
      ? 'warn'
      : v.oneOf('options.requirePersistence', o.requirePersistence, ['warn', 'refuse', 'ignore'] as const);
    this.#namespaceKeys = namespaceKeys(this.#prefix);
    const check = () => this.#checkConnection();
    if (o.client !== undefined) {
      if (!isClient(o.client)) throw v.typeError('options.client', 'ioredis Redis or Cluster client', o.client);
      if (o.connectTimeoutMs !== undefined) {
        throw v.typeError('options.connectTimeoutMs', "undefined with options.client (the client's own connectTimeout applies)", o.connectTimeoutMs);
      }
      this.#conn = new ScriptConnection(o.client, false, timeoutMs, this.#guard, check);
      return;
    }
    const url = o.url === undefined ? DEFAULT_URL : urlOption(o.url);
    const connectTimeout = o.connectTimeoutMs === undefined ? 2000 : v.integer('options.connectTimeoutMs', o.connectTimeoutMs, 1, 600_000);
    this.#conn = new ScriptConnection(createClient(url, connectTimeout), true, timeoutMs, this.#guard, check);
  }

  /**
   * When Redis lost the budget state of this namespace, as last seen in a reply (epoch ms), or
   * null: no loss recorded, or accepted with {@link RedisBudgetStore.acceptStateLoss}.
   *
   * @example
   * ```ts
   * if (store.stateLostAt !== null) console.warn('budget windows open before', new Date(store.stateLostAt), 'are refused');
   * ```
   */
  get stateLostAt(): number | null {
    return this.#lostAt;
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
    const args = [op.id, enc(op.amount), enc(op.expiresAt), op.meta, this.#onStateLoss];
    for (const w of op.windows) {
      const startsAt = w.startsAt === undefined || w.startsAt === null ? '' : enc(w.startsAt);
      args.push(w.key, enc(w.cap), w.expiresAt === null ? '' : enc(w.expiresAt), pexpireAt(w.expiresAt), startsAt);
    }
    const [h, body] = await this.#call('reserve', SCRIPTS.reserve, keys, op.now, args);
    const r = body as Array<string | number>;
    if (r[0] === -1) {
      const w = op.windows[Number(r[1])]!;
      throw new BudgetStateLossError('reserve', dec(h[1]), w.key, w.startsAt ?? null);
    }
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
    const r = (await this.#call('expire', SCRIPTS.expire, this.#namespaceKeys, now, []))[1] as string[];
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
    const r = (await this.#call('usage', SCRIPTS.usage, redisKeys, now, []))[1] as string[];
    return keys.map((_, i) => ({ committed: dec(r[2 * i]), reserved: dec(r[2 * i + 1]) }));
  }

  /**
   * {@inheritDoc BudgetStore.charge}
   *
   * @example
   * ```ts
   * const r = await store.charge({ id: 'unbacked:1', amount: 420, windows: [{ key: 'tokens:daily', expiresAt: Date.now() + 86_400_000 }], now: Date.now() });
   * // one Lua script; sent again with the same id (after a lost reply) it adds nothing: r.applied === false
   * ```
   */
  async charge(op: ChargeOp): Promise<ChargeResult> {
    const P = this.#prefix;
    const keys = [...this.#namespaceKeys, `${P}c:${op.id}`, ...op.windows.map((w) => `${P}w:${w.key}`)];
    const args = [op.id, enc(op.amount)];
    for (const w of op.windows) args.push(w.key, w.expiresAt === null ? '' : enc(w.expiresAt), pexpireAt(w.expiresAt));
    const r = (await this.#call('charge', SCRIPTS.charge, keys, op.now, args))[1] as Array<string | number>;
    return { applied: r[0] === 1, after: op.windows.map((w, i) => ({ key: w.key, committed: dec(r[1 + 2 * i]), reserved: dec(r[2 + 2 * i]) })) };
  }

  /**
   * Accepts a recorded loss of the budget state early: clears the marker in Redis, for every
   * process, so windows open at the loss are used again from what they hold now — what was
   * charged since the loss (commits, reconciled fail-open use), not what was spent before it.
   * Without it, under `onStateLoss: 'fail'`, those windows are refused until they end.
   *
   * @example
   * ```ts
   * store.on('stateLoss', (e) => console.warn('Redis lost the budgets at', new Date(e.lostAt)));
   * // … once an operator has judged the overspend risk acceptable (or restored the counters):
   * await store.acceptStateLoss();
   * ```
   */
  async acceptStateLoss(): Promise<void> {
    await this.#call('acceptStateLoss', SCRIPTS.accept, this.#namespaceKeys, Date.now(), []);
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
    return this.#guard.close(() => this.#conn.close());
  }

  /** {@link RedisBudgetStore.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #settle(op: string, id: string, actual: number, now: number): Promise<SettleResult | null> {
    const keys = [...this.#namespaceKeys, `${this.#prefix}r:${id}`];
    const r = (await this.#call(op, SCRIPTS.settle, keys, now, [id, enc(actual)]))[1] as string[] | null;
    if (r === null) return null;
    const after: SettleResult['after'] = [];
    for (let i = 2; i < r.length; i += 3) after.push({ key: r[i]!, committed: dec(r[i + 1]), reserved: dec(r[i + 2]) });
    return { reserved: dec(r[0]), charged: actual, after, meta: r[1]! };
  }

  // What every script's ARGV starts with: the epoch last seen, and a fresh one in case the script creates it.
  #common(now: number): string[] {
    return [this.#prefix, enc(now), this.#epoch, randomUUID()];
  }

  // Takes in a reply's header: the epoch, and the loss marker (reported once per new value).
  #absorb(h: Reply[0]): void {
    this.#epoch = h[0];
    const lostAt = h[1] === '' ? null : dec(h[1]);
    if (lostAt === this.#lostAt) return;
    this.#lostAt = lostAt;
    if (lostAt === null || this.#guard.closed) return;
    const e: StateLossEvent = { lostAt, recordedHere: h[2] === '1', onStateLoss: this.#onStateLoss };
    if (!emitSafely(this, 'stateLoss', e)) process.emitWarning(lossWarning(this.#prefix, e), { type: 'CapibaraBudgetWarning', code: 'CAPIBARA_BUDGET_STATE_LOST' });
  }

  // Runs one script: the epoch last seen and a fresh one go first in its ARGV, and the reply's
  // header is taken in before the caller sees the reply.
  #call(op: string, s: Script, keys: string[], now: number, args: string[]): Promise<Reply> {
    return this.#conn.run(op, async (late) => {
      const r = (await this.#conn.eval(s, keys, [...this.#common(now), ...args], late)) as Reply;
      this.#absorb(r[0]);
      return r;
    });
  }

  // Once per connection: run_id and persistence, then the epoch (CHECK script). Returns why
  // operations are refused on this connection, or null.
  async #checkConnection(): Promise<string | null> {
    const client = this.#conn.client;
    const facts = await serverFacts(client);
    const reply = (await this.#conn.eval(SCRIPTS.check, this.#namespaceKeys, [...this.#common(Date.now()), facts.runId, facts.appendonly], () => false)) as Reply;
    this.#absorb(reply[0]);
    const where = serverName(client);
    const refusal = this.#requirePersistence === 'refuse' ? persistenceRefusal(facts, where) : null;
    const warning = this.#requirePersistence === 'ignore' || refusal !== null ? null : persistenceWarning(facts, where, this.#onStateLoss);
    if (warning !== null && !this.#warned && !this.#guard.closed) {
      this.#warned = true;
      process.emitWarning(warning, { type: 'CapibaraBudgetWarning', code: 'CAPIBARA_REDIS_PERSISTENCE' });
    }
    return refusal;
  }
}

// When Redis may drop a window's counters by itself: a day after the window ends.
function pexpireAt(expiresAt: number | null): string {
  return expiresAt !== null && Number.isFinite(expiresAt) ? String(Math.ceil(expiresAt) + WINDOW_GRACE_MS) : '';
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
