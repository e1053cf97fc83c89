/**
 * What {@link RedisBudgetStore} learns about the Redis it talks to: whether the budget state
 * survived (the error and event of a loss), and whether Redis persists it at all (`run_id`,
 * `appendonly`, `appendfsync`, read once per connection), with the warnings and refusals that follow.
 * @module
 */
import type { Cluster, Redis } from 'ioredis';

const iso = (t: number) => (Number.isFinite(t) ? new Date(t).toISOString() : String(t));

/**
 * A reservation refused because Redis lost the budget state (it restarted without an
 * append-only file, or was flushed) and the window began before the loss, so its counters
 * no longer hold what was spent in it. Thrown by {@link RedisBudgetStore.reserve} under
 * `onStateLoss: 'fail'`; {@link BudgetForcing} then applies its `onStoreError` (fail-closed denies,
 * fail-open approves unbacked). Windows that begin after the loss work normally, and
 * {@link RedisBudgetStore.acceptStateLoss} accepts the loss early.
 *
 * @example
 * ```ts
 * try { await store.reserve(op); } catch (err) {
 *   if (err instanceof BudgetStateLossError) console.warn(`state lost at ${new Date(err.lostAt).toISOString()}`);
 * }
 * ```
 */
export class BudgetStateLossError extends Error {
  /** Always `'BudgetStateLossError'`. */
  override readonly name = 'BudgetStateLossError';

  /**
   * @param op - The operation, as the message names it (`'reserve'`).
   * @param lostAt - When the loss was recorded (epoch ms): when the first client noticed it.
   * @param windowKey - Store key of the first window that began before the loss.
   * @param windowStartsAt - When that window began (epoch ms), or null when the caller did not say.
   *
   * @example
   * ```ts
   * const err = new BudgetStateLossError('reserve', Date.now(), 'tokens|*|2026-11-25', Date.UTC(2026, 10, 25));
   * ```
   */
  constructor(
    op: string,
    /** When the loss was recorded (epoch ms): when the first client noticed it. */
    readonly lostAt: number,
    /** Store key of the first window that began before the loss. */
    readonly windowKey: string,
    /** When that window began (epoch ms), or null when the caller did not say (treated as before the loss). */
    readonly windowStartsAt: number | null,
  ) {
    super(
      `RedisBudgetStore.${op}: Redis lost the budget state at ${iso(lostAt)} (restarted without persistence?); ` +
        `windows open then cannot be vouched for until they end, and window '${windowKey}' began ` +
        `${windowStartsAt === null ? 'at an unknown time' : iso(windowStartsAt)} — see the README (BudgetForcing, Redis persistence)`,
    );
  }
}

/**
 * Payload of a {@link RedisBudgetStore} `'stateLoss'` event: the store learned that Redis lost
 * the budget state of its namespace (from its own script, or from the marker another process left).
 *
 * @example
 * ```ts
 * store.on('stateLoss', (e: StateLossEvent) => alertOps(`budget state lost at ${new Date(e.lostAt).toISOString()}`));
 * ```
 */
export interface StateLossEvent {
  /** When the loss was recorded (epoch ms). */
  lostAt: number;
  /** True when this store's own script noticed the loss and recorded it; false when it found the marker. */
  recordedHere: boolean;
  /** The store's `onStateLoss`: what it does with windows open at the loss. */
  onStateLoss: 'fail' | 'reset';
}

/** What one connection tells about its server. */
export interface ServerFacts {
  /** INFO server's run_id ('' = not known: a Cluster client, or INFO refused). */
  runId: string;
  /** CONFIG GET appendonly ('' = not known). */
  appendonly: string;
  /** CONFIG GET appendfsync ('' = not known). */
  appendfsync: string;
  /** Why persistence could not be checked, or null. */
  unchecked: string | null;
}

function isReplyError(err: unknown): err is Error {
  return err instanceof Error && err.name === 'ReplyError';
}

async function config(client: Redis, name: string): Promise<string> {
  const r = (await client.config('GET', name)) as unknown as string[];
  return r[1] ?? '';
}

/**
 * Reads run_id, appendonly and appendfsync over the connection. A refused command (CONFIG
 * renamed or denied, as on managed Redis) leaves its fact unknown; a lost connection rejects.
 */
export async function serverFacts(client: Redis | Cluster): Promise<ServerFacts> {
  if ((client as { isCluster?: boolean }).isCluster === true) {
    return { runId: '', appendonly: '', appendfsync: '', unchecked: 'a Redis Cluster client: check appendonly on every master' };
  }
  const c = client as Redis;
  let unchecked: string | null = null;
  const refused = (what: string) => (err: unknown) => {
    if (!isReplyError(err)) throw err;
    unchecked ??= `${what} was refused: ${err.message}`;
    return '';
  };
  const [info, appendonly, appendfsync] = await Promise.all([
    c.info('server').catch(refused('INFO server')),
    config(c, 'appendonly').catch(refused('CONFIG GET')),
    config(c, 'appendfsync').catch(refused('CONFIG GET')),
  ]);
  const runId = /^run_id:(\w+)/m.exec(info)?.[1] ?? '';
  if (appendonly === '' && unchecked === null) unchecked = 'CONFIG GET appendonly answered nothing';
  return { runId, appendonly, appendfsync, unchecked };
}

/** Where a client connects, for messages. */
export function serverName(client: Redis | Cluster): string {
  const o = (client as { options?: { host?: string; port?: number; path?: string } }).options;
  if ((client as { isCluster?: boolean }).isCluster === true || !o) return 'the Redis Cluster';
  return o.path ? o.path : `${o.host ?? '127.0.0.1'}:${o.port ?? 6379}`;
}

/** Why operations are refused under `requirePersistence: 'refuse'`, or null. */
export function persistenceRefusal(facts: ServerFacts, where: string): string | null {
  if (facts.appendonly !== 'no') return null;
  return `Redis at ${where} runs without an append-only file (appendonly no) and requirePersistence is 'refuse'; nothing was sent (HARD budgets need appendonly yes with appendfsync always)`;
}

/** The one warning a store gives about its server's persistence, or null when nothing is at risk. */
export function persistenceWarning(facts: ServerFacts, where: string, onStateLoss: 'fail' | 'reset'): string | null {
  const need = 'HARD budgets need appendonly yes with appendfsync always (README, BudgetForcing: Redis persistence)';
  if (facts.unchecked !== null) return `RedisBudgetStore: could not check the persistence of Redis at ${where} (${facts.unchecked}); ${need}.`;
  if (facts.appendonly === 'no') {
    const then = onStateLoss === 'fail'
      ? "refuses windows open at the loss until they end (onStateLoss 'fail')"
      : "starts those windows again from zero (onStateLoss 'reset'), so HARD budgets can overspend";
    return `RedisBudgetStore: Redis at ${where} runs without an append-only file (appendonly no): a restart loses every budget counter; the store notices and ${then}. ${need}; requirePersistence: 'refuse' refuses such a Redis, 'ignore' silences this.`;
  }
  if (facts.appendfsync === 'everysec') {
    return `RedisBudgetStore: Redis at ${where} syncs its append-only file once a second (appendfsync everysec): a crash can lose up to 1 s of budget decisions, which HARD budgets may then approve again; appendfsync always loses none.`;
  }
  if (facts.appendfsync === 'no') {
    return `RedisBudgetStore: Redis at ${where} leaves syncing its append-only file to the OS (appendfsync no): a crash can lose the last seconds of budget decisions (about 30 s on Linux), which HARD budgets may then approve again; appendfsync always loses none.`;
  }
  return null;
}

/** The process warning for a loss nobody listens for. */
export function lossWarning(prefix: string, e: StateLossEvent): string {
  const then = e.onStateLoss === 'fail'
    ? "windows open then are refused until they end (onStateLoss 'fail'), or until acceptStateLoss()"
    : "their counters start again from zero (onStateLoss 'reset')";
  return `RedisBudgetStore: Redis lost the budget state of '${prefix}' at ${iso(e.lostAt)} (restarted without persistence?); ${then}. Listen for 'stateLoss' to handle this yourself.`;
}
