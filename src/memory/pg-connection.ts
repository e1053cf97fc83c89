/**
 * The connection side of a PostgreSQL-backed MemAgent: its options, the node-postgres pool
 * (bigints read as numbers), the wording of every way a call can fail to reach the database,
 * and the lock that keeps one process's view of the items from changing under a write.
 * @module
 */
import type { Pool, PoolClient, QueryConfig, QueryResultRow } from 'pg';

import * as v from '../validate';

/**
 * Where a MemAgent keeps its items in PostgreSQL ({@link MemAgent.open}). Give
 * `connectionString` or `pool`, not both.
 *
 * @example
 * ```ts
 * const memory = await MemAgent.open({ maxTokens: 512_000, postgres: { connectionString: process.env.DATABASE_URL, schema: 'agents' } });
 * ```
 */
export interface PostgresMemoryOptions {
  /** A libpq connection string (`postgres://user:password@host:5432/db`): the MemAgent creates a pool and ends it in `close()`. */
  connectionString?: string;
  /** A node-postgres `Pool` to use (at least 3 connections); `close()` leaves it open. */
  pool?: Pool;
  /**
   * The PostgreSQL schema holding the tables (created when missing); MemAgents on one schema
   * share one memory, other schemas are independent memories. A plain identifier. Default `'public'`.
   */
  schema?: string;
  /** Bound on opening a connection of a pool the MemAgent creates (ms, default 5000); not allowed with `pool`. */
  connectTimeoutMs?: number;
  /** Bound on one statement, waiting for another process's write included (ms, default 30,000); not allowed with `pool`. */
  queryTimeoutMs?: number;
}

/** {@link PostgresMemoryOptions} checked. @internal */
export interface ResolvedPostgres {
  connectionString: string | undefined;
  pool: Pool | undefined;
  schema: string;
  connectTimeoutMs: number;
  queryTimeoutMs: number;
}

const KEYS = ['connectionString', 'pool', 'schema', 'connectTimeoutMs', 'queryTimeoutMs'] as const;

/** Checks `options.postgres`. @internal */
export function postgresOptions(options: unknown): ResolvedPostgres {
  const o = v.options<PostgresMemoryOptions>('options.postgres', options, KEYS);
  if (o.connectionString !== undefined && o.pool !== undefined) {
    throw new TypeError('Expected one of options.postgres.connectionString and options.postgres.pool but received both');
  }
  if (o.connectionString === undefined && o.pool === undefined) {
    throw new TypeError('Expected options.postgres.connectionString or options.postgres.pool but received neither');
  }
  const schema = o.schema === undefined ? 'public' : v.string('options.postgres.schema', o.schema);
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) throw v.rangeError('options.postgres.schema', 'a plain identifier (letters, digits, _; at most 63)', schema);
  if (o.pool !== undefined) {
    const p = o.pool as unknown as Record<string, unknown> | null;
    if (p === null || typeof p !== 'object' || typeof p.connect !== 'function' || typeof p.query !== 'function') {
      throw v.typeError('options.postgres.pool', 'a node-postgres Pool', o.pool);
    }
    for (const k of ['connectTimeoutMs', 'queryTimeoutMs'] as const) {
      if (o[k] !== undefined) throw v.typeError(`options.postgres.${k}`, "undefined with a pool (the pool's own settings apply)", o[k]);
    }
  }
  return {
    connectionString: o.connectionString === undefined ? undefined : v.nonEmptyString('options.postgres.connectionString', o.connectionString),
    pool: o.pool,
    schema,
    connectTimeoutMs: o.connectTimeoutMs === undefined ? 5000 : v.integer('options.postgres.connectTimeoutMs', o.connectTimeoutMs, 1, 600_000),
    queryTimeoutMs: o.queryTimeoutMs === undefined ? 30_000 : v.integer('options.postgres.queryTimeoutMs', o.queryTimeoutMs, 1, 3_600_000),
  };
}

// bigint columns (times, sizes, versions) as numbers: every value stored fits in 2^53.
const INT8 = 20;
let types: QueryConfig['types'] | undefined;
function typeParsers(): NonNullable<QueryConfig['types']> {
  if (types === undefined) {
    const pg = require('pg') as typeof import('pg');
    types = {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8 ? (x: string) => Number(x) : pg.types.getTypeParser(oid, format as 'text')) as NonNullable<QueryConfig['types']>['getTypeParser'],
    };
  }
  return types;
}

/** One statement with this module's type parsers (bigints as numbers). @internal */
export async function query<R extends QueryResultRow = Record<string, unknown>>(c: PoolClient | Pool, text: string, values?: unknown[]): Promise<R[]> {
  const r = await c.query<R>({ text, ...(values === undefined ? {} : { values }), types: typeParsers() });
  return r.rows;
}

/** Several statements without parameters in one round trip; the rows of each. @internal */
export async function queries(c: PoolClient, text: string): Promise<Array<Array<Record<string, unknown>>>> {
  const r = (await c.query({ text, types: typeParsers() })) as unknown as Array<{ rows: Array<Record<string, unknown>> }> | { rows: Array<Record<string, unknown>> };
  return Array.isArray(r) ? r.map((x) => x.rows) : [r.rows];
}

/** The pool a MemAgent creates for itself. @internal */
export function createPool(o: ResolvedPostgres): Pool {
  const { Pool: PgPool } = require('pg') as typeof import('pg');
  const pool = new PgPool({
    connectionString: o.connectionString,
    max: 4,
    connectionTimeoutMillis: o.connectTimeoutMs,
    query_timeout: o.queryTimeoutMs,
    idleTimeoutMillis: 10_000,
    allowExitOnIdle: true,
    application_name: 'capibara-memagent',
    // Every statement here is short: compiling one with JIT costs more than running it.
    options: '-c jit=off',
  });
  return pool;
}

/** Where a pool connects, for messages: `127.0.0.1:5432/memory`. @internal */
export function poolName(pool: Pool): string {
  const o = (pool as unknown as { options?: { host?: string; port?: number; database?: string; connectionString?: string } }).options ?? {};
  if (o.connectionString) {
    try {
      const u = new URL(o.connectionString);
      return `${u.hostname}:${u.port || 5432}${u.pathname}`;
    } catch {
      return 'the configured server';
    }
  }
  return `${o.host ?? 'localhost'}:${o.port ?? 5432}/${o.database ?? ''}`;
}

/** Whether an error means the server could not be reached or the connection broke (not an SQL error). @internal */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^(ECONN|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EPIPE|57P0[1-3]|08)/.test(code)) return true;
  return /Connection terminated|timeout|not queryable|Client has encountered a connection error|Connection ended/i.test(err.message);
}

/**
 * A mutual-exclusion lock: `acquire` resolves with its release once every earlier holder has
 * released. @internal
 */
export class Mutex {
  #tail: Promise<void> = Promise.resolve();

  acquire(): Promise<() => void> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const ready = this.#tail.then(() => release);
    this.#tail = this.#tail.then(() => held);
    return ready;
  }
}
