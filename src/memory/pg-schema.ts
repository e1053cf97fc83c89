/**
 * The PostgreSQL schema of a MemAgent shared by several processes: tables, versioned
 * migrations (run once, under an advisory lock, however many processes open at once), and the
 * checks an open makes (whose tables these are, which version, which embedding dimensions).
 *
 * Tables, all in one schema and prefixed `memagent_`:
 * - `memagent_meta`     key → value: application, schema_version, embedding_dimensions.
 * - `memagent_state`    one row: `version`, the counter every write transaction increments first
 *                       (the row lock serialises writers, so versions commit in order); the highest
 *                       version of a purged row (`purged_version`); text totals for the metrics.
 * - `memagent_items`    the items, as in the SQLite file, plus `change_seq` (version of the last
 *                       change) and `touch_seq` (version of the last recorded access).
 * - `memagent_pages`    LZ4 / gzip pages of texts with their CRC-32, as in the SQLite file.
 * - `memagent_history`  every item's events.
 * @module
 */
import type { PoolClient } from 'pg';

/** Version of the schema this code writes; a database with a newer one is refused. */
export const PG_SCHEMA_VERSION = 1;
const APPLICATION = 'capibara-memagent';

/** Migrations by the version they lead to; each runs in the transaction of the open that needs it. */
const MIGRATIONS: ReadonlyArray<(s: string) => string> = [
  // 0 -> 1: the first schema.
  (s) => `
CREATE TABLE ${s}.memagent_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE ${s}.memagent_state (
  id integer PRIMARY KEY CHECK (id = 1),
  version bigint NOT NULL,
  purged_version bigint NOT NULL,
  raw_bytes bigint NOT NULL,
  stored_bytes bigint NOT NULL
);
INSERT INTO ${s}.memagent_state VALUES (1, 0, 0, 0, 0);
CREATE TABLE ${s}.memagent_pages (
  id bigserial PRIMARY KEY,
  codec text NOT NULL,
  raw_bytes bigint NOT NULL,
  data bytea NOT NULL,
  checksum bigint
);
CREATE TABLE ${s}.memagent_items (
  seq bigint PRIMARY KEY,
  id text NOT NULL UNIQUE,
  type text NOT NULL,
  priority smallint NOT NULL,
  importance double precision NOT NULL,
  tags text NOT NULL,
  metadata text NOT NULL,
  user_id text,
  agent_id text,
  session_id text,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  last_accessed bigint NOT NULL,
  access_count bigint NOT NULL,
  expires_at bigint,
  pinned smallint NOT NULL,
  deleted_at bigint,
  content_hash text NOT NULL,
  tokens bigint NOT NULL,
  bytes bigint NOT NULL,
  text bytea,
  page_id bigint REFERENCES ${s}.memagent_pages(id),
  page_offset bigint,
  embedding bytea NOT NULL,
  embedding_scale double precision NOT NULL,
  change_seq bigint NOT NULL,
  touch_seq bigint NOT NULL DEFAULT 0,
  CHECK ((text IS NULL) <> (page_id IS NULL))
);
CREATE INDEX memagent_items_change ON ${s}.memagent_items (change_seq);
CREATE INDEX memagent_items_touch ON ${s}.memagent_items (touch_seq);
CREATE INDEX memagent_items_page ON ${s}.memagent_items (page_id);
CREATE INDEX memagent_items_pending ON ${s}.memagent_items (seq) WHERE text IS NOT NULL;
CREATE INDEX memagent_items_deleted ON ${s}.memagent_items (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE TABLE ${s}.memagent_history (
  seq bigserial PRIMARY KEY,
  item_id text NOT NULL,
  event text NOT NULL,
  reason text,
  old_value text,
  new_value text,
  at bigint NOT NULL
);
CREATE INDEX memagent_history_item ON ${s}.memagent_history (item_id, seq);`,
];

/**
 * Creates or migrates the schema and checks it: returns nothing, throws naming the database
 * when it holds something else, a newer version, or embeddings of other dimensions. Opens of
 * many processes at once serialise on an advisory lock, so each migration runs once.
 * @internal
 */
export async function ensurePgSchema(c: PoolClient, schema: string, where: string, dims: number, readonly: boolean): Promise<void> {
  const s = quoteIdent(schema);
  await c.query('BEGIN');
  try {
    // One lock per schema name: hashtext folds the name to the advisory lock's key.
    await c.query("SELECT pg_advisory_xact_lock(hashtext('capibara-memagent:' || $1))", [schema]);
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    const tables = (await c.query<{ name: string }>('SELECT table_name AS name FROM information_schema.tables WHERE table_schema = $1', [schema])).rows.map((r) => r.name);
    let version = 0;
    if (tables.length > 0) {
      if (!tables.includes('memagent_meta')) {
        throw new Error(`MemAgent: ${where} schema '${schema}' holds tables of something else (${tables.slice(0, 8).join(', ')}); refusing to use it`);
      }
      const meta = new Map((await c.query<{ key: string; value: string }>(`SELECT key, value FROM ${s}.memagent_meta`)).rows.map((r) => [r.key, r.value]));
      if (meta.get('application') !== APPLICATION) throw new Error(`MemAgent: ${where} schema '${schema}' is not a MemAgent store (its memagent_meta says ${JSON.stringify(meta.get('application'))})`);
      version = Number(meta.get('schema_version'));
      if (!Number.isInteger(version) || version < 1) throw new Error(`MemAgent: ${where} schema '${schema}' has an unreadable schema_version ${JSON.stringify(meta.get('schema_version'))}`);
      if (version > PG_SCHEMA_VERSION) {
        throw new Error(`MemAgent: ${where} schema '${schema}' has schema version ${version}, newer than this @capibara/core understands (${PG_SCHEMA_VERSION}); upgrade the package`);
      }
    }
    if (version < PG_SCHEMA_VERSION) {
      if (readonly) throw new Error(`MemAgent: ${where} schema '${schema}' ${version === 0 ? 'holds no MemAgent store' : `is at schema version ${version}`}: there is nothing to open read-only`);
      for (let to = version + 1; to <= PG_SCHEMA_VERSION; to++) await c.query(MIGRATIONS[to - 1]!(s));
      if (version === 0) await c.query(`INSERT INTO ${s}.memagent_meta (key, value) VALUES ('application', $1), ('schema_version', $2)`, [APPLICATION, String(PG_SCHEMA_VERSION)]);
      else await c.query(`UPDATE ${s}.memagent_meta SET value = $1 WHERE key = 'schema_version'`, [String(PG_SCHEMA_VERSION)]);
    }
    const stored = (await c.query<{ value: string }>(`SELECT value FROM ${s}.memagent_meta WHERE key = 'embedding_dimensions'`)).rows[0]?.value;
    if (stored === undefined) {
      if (!readonly) await c.query(`INSERT INTO ${s}.memagent_meta (key, value) VALUES ('embedding_dimensions', $1)`, [String(dims)]);
    } else if (stored !== String(dims)) {
      throw new Error(`MemAgent: ${where} schema '${schema}' holds ${stored}-dimensional embeddings but the embedder makes ${dims}: open it with the embedder it was filled with`);
    }
    // Statistics of the one-row state table: without them the planner guesses ~1,000 rows, prices
    // every refresh query high enough for JIT compilation, and a 0.3 ms query takes 10 ms.
    if (!readonly) await c.query(`ANALYZE ${s}.memagent_state`);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** A schema name as an SQL identifier (names are checked to be plain identifiers first). @internal */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
