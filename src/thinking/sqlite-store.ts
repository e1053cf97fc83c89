/**
 * {@link ThinkingStore} on one SQLite file (better-sqlite3, WAL): sessions in the seed's
 * `thinking_sessions` table, rounds in `thinking_rounds`. Every write is one transaction,
 * committed before the call returns, so a round a caller saw resolve survives a crash.
 * @module
 */
import type BetterSqlite3 from 'better-sqlite3';
import { dict } from '../dict';
import { CloseGuard } from '../toolkit/closing';
import * as v from '../validate';
import { roundOutOfOrder, type ThinkingCompletion, type ThinkingSpend, type ThinkingStore, type ThinkingStoreStats, unknownSession } from './store';
import type { ThinkingRoundRecord, ThinkingSession } from './records';

/** Version of the schema this code writes; a file with a newer one is refused. */
const SCHEMA_VERSION = 1;
const APPLICATION = 'capibara-thinking';
const WHAT = 'SqliteThinkingStore';

const DDL = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE thinking_sessions (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  problem TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('active', 'completed')),
  max_rounds INTEGER NOT NULL,
  token_budget INTEGER,
  thinking_mode TEXT,
  reasoning_type TEXT,
  tokens_used INTEGER NOT NULL,
  duration_ms REAL NOT NULL,
  created_at INTEGER NOT NULL,
  completed_at INTEGER,
  stop_reason TEXT,
  confidence REAL,
  answer_logprob REAL,
  synthesis TEXT
);
CREATE TABLE thinking_rounds (
  session_id TEXT NOT NULL REFERENCES thinking_sessions(id),
  round INTEGER NOT NULL,
  thinking_mode TEXT,
  mode_used TEXT,
  adaptive_rule TEXT,
  reasoning_type TEXT,
  prompt TEXT NOT NULL,
  thinking TEXT NOT NULL,
  answer TEXT NOT NULL,
  thinking_tokens INTEGER NOT NULL,
  answer_tokens INTEGER NOT NULL,
  finish_reason TEXT NOT NULL,
  thinking_forced_end INTEGER NOT NULL,
  min_thinking_reached INTEGER NOT NULL,
  continuations_used INTEGER NOT NULL,
  thinking_cap INTEGER NOT NULL,
  answer_logprob REAL,
  started_at INTEGER NOT NULL,
  duration_ms REAL NOT NULL,
  PRIMARY KEY (session_id, round)
) WITHOUT ROWID;
`;

const ROUND_COLUMNS = [
  'session_id', 'round', 'thinking_mode', 'mode_used', 'adaptive_rule', 'reasoning_type', 'prompt', 'thinking', 'answer', 'thinking_tokens',
  'answer_tokens', 'finish_reason', 'thinking_forced_end', 'min_thinking_reached', 'continuations_used', 'thinking_cap', 'answer_logprob',
  'started_at', 'duration_ms',
] as const;

/**
 * Options of {@link SqliteThinkingStore}.
 *
 * @example
 * ```ts
 * const opts: SqliteThinkingStoreOptions = { path: './data/thinking.db', synchronous: 'full' };
 * ```
 */
export interface SqliteThinkingStoreOptions {
  /** The database file, created when missing. One store per file (it is locked while open). */
  path: string;
  /**
   * SQLite `synchronous`: `'normal'` (default) loses nothing on a process crash; `'full'` also
   * survives a power loss or an OS crash, at an fsync per write.
   */
  synchronous?: 'normal' | 'full';
}

type Row = Record<string, unknown>;

/**
 * A {@link ThinkingStore} on SQLite: sessions survive restarts, so
 * {@link MultiRoundThinking.resume} continues a session another process started. Writes are
 * synchronous transactions (better-sqlite3), committed before the call returns.
 *
 * @example
 * ```ts
 * import { MultiRoundThinking, SqliteThinkingStore } from '@capibara/core';
 * const store = new SqliteThinkingStore({ path: './thinking.db' });
 * const thinking = new MultiRoundThinking({ generator, store });
 * for (const id of store.sessionIds('active')) await thinking.resume(id); // after a restart
 * ```
 */
export class SqliteThinkingStore implements ThinkingStore {
  /**
   * The database file.
   *
   * @example
   * ```ts
   * console.log(store.path);
   * ```
   */
  readonly path: string;
  readonly #db: BetterSqlite3.Database;
  readonly #guard = new CloseGuard(WHAT);
  readonly #q: Record<'session' | 'rounds' | 'insertSession' | 'insertRound' | 'countRounds' | 'spend' | 'complete', BetterSqlite3.Statement>;

  /**
   * Opens (creating when new) the store's file.
   *
   * @param options The file and its durability.
   * @throws TypeError or RangeError for bad options; Error when the file is held by another
   * store, belongs to something else, has a newer schema or is not SQLite.
   *
   * @example
   * ```ts
   * const store = new SqliteThinkingStore({ path: '/var/lib/app/thinking.db' });
   * ```
   */
  constructor(options: SqliteThinkingStoreOptions) {
    if (options === undefined) throw v.typeError('options', 'an options object', options);
    const o = v.options<SqliteThinkingStoreOptions>('options', options, ['path', 'synchronous']);
    this.path = v.nonEmptyString('options.path', o.path);
    const sync = o.synchronous === undefined ? 'normal' : v.oneOf('options.synchronous', o.synchronous, ['normal', 'full'] as const);
    this.#db = open(this.path, sync);
    const db = this.#db;
    this.#q = {
      session: db.prepare('SELECT * FROM thinking_sessions WHERE id = ?'),
      rounds: db.prepare('SELECT * FROM thinking_rounds WHERE session_id = ? ORDER BY round'),
      insertSession: db.prepare(
        `INSERT INTO thinking_sessions (id, problem, status, max_rounds, token_budget, thinking_mode, reasoning_type, tokens_used, duration_ms, created_at)
         VALUES (?, ?, 'active', ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertRound: db.prepare(`INSERT INTO thinking_rounds (${ROUND_COLUMNS.join(', ')}) VALUES (${ROUND_COLUMNS.map(() => '?').join(', ')})`),
      countRounds: db.prepare('SELECT COUNT(*) AS n FROM thinking_rounds WHERE session_id = ?'),
      spend: db.prepare('UPDATE thinking_sessions SET tokens_used = tokens_used + ?, duration_ms = duration_ms + ? WHERE id = ?'),
      complete: db.prepare(
        `UPDATE thinking_sessions SET status = 'completed', stop_reason = ?, completed_at = ?, confidence = ?, answer_logprob = ?, synthesis = ?,
           tokens_used = tokens_used + ?, duration_ms = duration_ms + ? WHERE id = ? AND status = 'active'`,
      ),
    };
  }

  /**
   * {@inheritDoc ThinkingStore.createSession}
   * @example
   * ```ts
   * store.createSession({ id: 's', problem: 'p', status: 'active', maxRounds: 5, tokenBudget: null, thinkingMode: null, reasoningType: null, rounds: [], tokensUsed: 0, durationMs: 0, createdAt: Date.now() });
   * ```
   */
  createSession(s: ThinkingSession): void {
    this.#guard.check();
    try {
      this.#q.insertSession.run(s.id, s.problem, s.maxRounds, s.tokenBudget, s.thinkingMode, s.reasoningType, s.tokensUsed, s.durationMs, s.createdAt);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new Error(`${WHAT}: a thinking session '${s.id}' already exists`, { cause: err });
      throw err;
    }
  }

  /**
   * {@inheritDoc ThinkingStore.getSession}
   * @example
   * ```ts
   * const s = store.getSession(id);
   * ```
   */
  getSession(id: string): ThinkingSession | undefined {
    this.#guard.check();
    const r = this.#q.session.get(id) as Row | undefined;
    if (r === undefined) return undefined;
    const s: ThinkingSession = {
      id: r['id'] as string,
      problem: r['problem'] as string,
      status: r['status'] as ThinkingSession['status'],
      maxRounds: r['max_rounds'] as number,
      tokenBudget: r['token_budget'] as number | null,
      thinkingMode: r['thinking_mode'] as ThinkingSession['thinkingMode'],
      reasoningType: r['reasoning_type'] as ThinkingSession['reasoningType'],
      rounds: (this.#q.rounds.all(id) as Row[]).map(roundOf),
      tokensUsed: r['tokens_used'] as number,
      durationMs: r['duration_ms'] as number,
      createdAt: r['created_at'] as number,
    };
    if (r['completed_at'] !== null) s.completedAt = r['completed_at'] as number;
    if (r['stop_reason'] !== null) s.stopReason = r['stop_reason'] as ThinkingSession['stopReason'];
    if (r['synthesis'] !== null) s.synthesis = JSON.parse(r['synthesis'] as string);
    return s;
  }

  /**
   * {@inheritDoc ThinkingStore.appendRound}
   * @example
   * ```ts
   * store.appendRound(id, round, { tokens: round.thinkingTokens + round.answerTokens, durationMs: round.durationMs });
   * ```
   */
  appendRound(id: string, round: ThinkingRoundRecord, spend: ThinkingSpend): void {
    this.#guard.check();
    this.#db.transaction(() => {
      if (this.#q.session.get(id) === undefined) throw unknownSession(WHAT, id);
      const have = (this.#q.countRounds.get(id) as { n: number }).n;
      if (round.round !== have + 1) throw roundOutOfOrder(WHAT, id, round.round, have);
      const r = round;
      this.#q.insertRound.run(
        id, r.round, r.thinkingMode, r.modeUsed, r.adaptiveRule ?? null, r.reasoningType, r.prompt, r.thinking, r.answer, r.thinkingTokens,
        r.answerTokens, r.finishReason, r.thinkingForcedEnd ? 1 : 0, r.minThinkingReached ? 1 : 0, r.continuationsUsed, r.thinkingCap,
        r.answerLogprob ?? null, r.startedAt, r.durationMs,
      );
      this.#q.spend.run(spend.tokens, spend.durationMs, id);
    }).immediate();
  }

  /**
   * {@inheritDoc ThinkingStore.addSpend}
   * @example
   * ```ts
   * store.addSpend(id, { tokens: 40, durationMs: 12 });
   * ```
   */
  addSpend(id: string, spend: ThinkingSpend): void {
    this.#guard.check();
    if (this.#q.spend.run(spend.tokens, spend.durationMs, id).changes === 0) throw unknownSession(WHAT, id);
  }

  /**
   * {@inheritDoc ThinkingStore.completeSession}
   * @example
   * ```ts
   * store.completeSession(id, { stopReason: 'caller', completedAt: Date.now(), synthesis, spend: { tokens: 0, durationMs: 0 } });
   * ```
   */
  completeSession(id: string, c: ThinkingCompletion): void {
    this.#guard.check();
    const syn = c.synthesis;
    const { changes } = this.#q.complete.run(
      c.stopReason, c.completedAt, syn.confidence, syn.answerLogprob ?? null, JSON.stringify(syn), c.spend.tokens, c.spend.durationMs, id,
    );
    if (changes === 0) {
      if (this.#q.session.get(id) === undefined) throw unknownSession(WHAT, id);
      throw new Error(`${WHAT}: thinking session '${id}' is already completed`);
    }
  }

  /**
   * {@inheritDoc ThinkingStore.sessionIds}
   * @example
   * ```ts
   * for (const id of store.sessionIds('active')) await thinking.resume(id);
   * ```
   */
  sessionIds(status?: 'active' | 'completed'): string[] {
    this.#guard.check();
    if (status !== undefined) v.oneOf('status', status, ['active', 'completed'] as const);
    const rows = status === undefined
      ? this.#db.prepare('SELECT id FROM thinking_sessions ORDER BY seq').all()
      : this.#db.prepare('SELECT id FROM thinking_sessions WHERE status = ? ORDER BY seq').all(status);
    return (rows as Array<{ id: string }>).map((r) => r.id);
  }

  /**
   * {@inheritDoc ThinkingStore.stats}
   * @example
   * ```ts
   * const { sessionsCompleted } = store.stats();
   * ```
   */
  stats(): ThinkingStoreStats {
    this.#guard.check();
    const db = this.#db;
    const s = db.prepare(
      `SELECT COALESCE(SUM(status = 'completed'), 0) AS completed, COALESCE(SUM(status = 'active'), 0) AS active,
         COALESCE(SUM(CASE WHEN status = 'completed' THEN confidence END), 0) AS confidence,
         COALESCE(SUM(CASE WHEN status = 'completed' THEN answer_logprob END), 0) AS logprob,
         COALESCE(SUM(status = 'completed' AND answer_logprob IS NOT NULL), 0) AS logprobs,
         COALESCE(SUM(CASE WHEN status = 'completed' THEN duration_ms END), 0) AS ms
       FROM thinking_sessions`,
    ).get() as Record<string, number>;
    const rounds = db.prepare(
      "SELECT COUNT(*) AS n FROM thinking_rounds r JOIN thinking_sessions s ON s.id = r.session_id WHERE s.status = 'completed'",
    ).get() as { n: number };
    const modes = db.prepare("SELECT COALESCE(mode_used, 'none') AS k, COUNT(*) AS n FROM thinking_rounds GROUP BY k").all() as Array<{ k: string; n: number }>;
    const stops = db.prepare("SELECT stop_reason AS k, COUNT(*) AS n FROM thinking_sessions WHERE status = 'completed' GROUP BY k")
      .all() as Array<{ k: string; n: number }>;
    return {
      sessionsCompleted: s['completed']!,
      sessionsActive: s['active']!,
      completedRounds: rounds.n,
      confidenceSum: s['confidence']!,
      answerLogprobSum: s['logprob']!,
      answerLogprobCount: s['logprobs']!,
      completedMs: s['ms']!,
      modesUsed: dict(modes.map((m) => [m.k, m.n] as const)),
      stopReasons: dict(stops.map((m) => [m.k, m.n] as const)),
    };
  }

  /**
   * Closes the database; later calls throw {@link ClosedError}.
   * @example
   * ```ts
   * await store.close();
   * ```
   */
  close(): Promise<void> {
    return this.#guard.close(() => {
      this.#db.close();
    });
  }

  /** {@link SqliteThinkingStore.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function roundOf(r: Row): ThinkingRoundRecord {
  const out: ThinkingRoundRecord = {
    round: r['round'] as number,
    thinkingMode: r['thinking_mode'] as ThinkingRoundRecord['thinkingMode'],
    modeUsed: r['mode_used'] as ThinkingRoundRecord['modeUsed'],
    reasoningType: r['reasoning_type'] as ThinkingRoundRecord['reasoningType'],
    prompt: r['prompt'] as string,
    thinking: r['thinking'] as string,
    answer: r['answer'] as string,
    thinkingTokens: r['thinking_tokens'] as number,
    answerTokens: r['answer_tokens'] as number,
    finishReason: r['finish_reason'] as ThinkingRoundRecord['finishReason'],
    thinkingForcedEnd: r['thinking_forced_end'] === 1,
    minThinkingReached: r['min_thinking_reached'] === 1,
    continuationsUsed: r['continuations_used'] as number,
    thinkingCap: r['thinking_cap'] as number,
    startedAt: r['started_at'] as number,
    durationMs: r['duration_ms'] as number,
  };
  if (r['adaptive_rule'] !== null) out.adaptiveRule = r['adaptive_rule'] as ThinkingRoundRecord['adaptiveRule'];
  if (r['answer_logprob'] !== null) out.answerLogprob = r['answer_logprob'] as number;
  return out;
}

/** Opens the file: one store per file (an exclusive lock), WAL, the schema created or checked. */
function open(path: string, synchronous: 'normal' | 'full'): BetterSqlite3.Database {
  const Database = require('better-sqlite3') as typeof BetterSqlite3;
  let db: BetterSqlite3.Database;
  try {
    // No busy wait: the only other holder is another store (the lock is exclusive), which
    // will not let go, and a killed process's lock is released by the OS at once.
    db = new Database(path, { timeout: 0 });
  } catch (err) {
    throw new Error(`${WHAT}: cannot open ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    // Two stores on one file would run the same session twice; the lock is taken by the
    // first write below and held until close (a killed process releases it).
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous}`);
    db.pragma('foreign_keys = ON');
    ensureSchema(db, path);
    db.exec('BEGIN IMMEDIATE; COMMIT');
    return db;
  } catch (err) {
    db.close();
    const code = (err as { code?: string }).code;
    if (code === 'SQLITE_BUSY') {
      throw new Error(`${WHAT}: ${path} is open in another SqliteThinkingStore (this or another process); one store per file`, { cause: err });
    }
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
      throw new Error(`${WHAT}: ${path} is not a readable SQLite database (${(err as Error).message})`, { cause: err });
    }
    throw err;
  }
}

function ensureSchema(db: BetterSqlite3.Database, path: string): void {
  const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((r) => r.name);
  if (tables.length === 0) {
    db.transaction(() => {
      db.exec(DDL);
      const put = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
      put.run('application', APPLICATION);
      put.run('schema_version', String(SCHEMA_VERSION));
    })();
    return;
  }
  const meta = tables.includes('meta') ? (db.prepare('SELECT key, value FROM meta').all() as Array<{ key: string; value: string }>) : [];
  const get = (k: string) => meta.find((r) => r.key === k)?.value;
  if (get('application') !== APPLICATION) {
    throw new Error(`${WHAT}: ${path} is a SQLite database of something else (tables: ${tables.join(', ')}); refusing to use it`);
  }
  const version = Number(get('schema_version'));
  if (!Number.isInteger(version) || version < 1) throw new Error(`${WHAT}: ${path} has an unreadable schema_version ${JSON.stringify(get('schema_version'))}`);
  if (version > SCHEMA_VERSION) {
    throw new Error(`${WHAT}: ${path} has schema version ${version}, newer than this @capibara/core understands (${SCHEMA_VERSION}); upgrade the package`);
  }
}
