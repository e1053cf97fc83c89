/**
 * The SQLite file of a MemAgent: opening, pragmas, schema creation and version checks.
 * @module
 */
import type BetterSqlite3 from 'better-sqlite3';

/** Version of the schema this code writes; a file with a newer one is refused. */
export const SCHEMA_VERSION = 1;
const APPLICATION = 'capibara-memagent';

const DDL = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE pages (
  id INTEGER PRIMARY KEY,
  codec TEXT NOT NULL,
  raw_bytes INTEGER NOT NULL,
  data BLOB NOT NULL
);
CREATE TABLE items (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  priority INTEGER NOT NULL,
  importance REAL NOT NULL,
  tags TEXT NOT NULL,
  metadata TEXT NOT NULL,
  user_id TEXT,
  agent_id TEXT,
  session_id TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_accessed INTEGER NOT NULL,
  access_count INTEGER NOT NULL,
  expires_at INTEGER,
  pinned INTEGER NOT NULL,
  deleted_at INTEGER,
  content_hash TEXT NOT NULL,
  tokens INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  text BLOB,
  page_id INTEGER REFERENCES pages(id),
  page_offset INTEGER,
  embedding BLOB NOT NULL,
  embedding_scale REAL NOT NULL,
  CHECK ((text IS NULL) <> (page_id IS NULL))
);
CREATE INDEX items_page ON items(page_id);
CREATE INDEX items_pending ON items(seq) WHERE text IS NOT NULL;
CREATE TABLE history (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  item_id TEXT NOT NULL,
  event TEXT NOT NULL,
  reason TEXT,
  old_value TEXT,
  new_value TEXT,
  at INTEGER NOT NULL
);
CREATE INDEX history_item ON history(item_id, seq);
`;

/**
 * Opens (creating when new) a MemAgent database. `path` undefined is an in-memory database:
 * the same code, nothing on disk.
 */
export function openDatabase(path: string | undefined, synchronous: 'normal' | 'full'): BetterSqlite3.Database {
  const Database = require('better-sqlite3') as typeof BetterSqlite3;
  let db: BetterSqlite3.Database;
  try {
    db = new Database(path ?? ':memory:');
  } catch (err) {
    throw new Error(`MemAgent: cannot open ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    if (path !== undefined) {
      // One MemAgent per file: each keeps its own index, so a second writer would diverge.
      // The exclusive lock is taken by the first write below and held until close.
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
    }
    db.pragma(`synchronous = ${synchronous}`);
    db.pragma('foreign_keys = ON');
    ensureSchema(db, path ?? ':memory:');
    if (path !== undefined) db.exec('BEGIN IMMEDIATE; COMMIT');
    return db;
  } catch (err) {
    db.close();
    const code = (err as { code?: string }).code;
    if (code === 'SQLITE_BUSY') {
      throw new Error(`MemAgent: ${path} is open in another MemAgent (this or another process); one store per file`, { cause: err });
    }
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
      throw new Error(`MemAgent: ${path} is not a readable SQLite database (${(err as Error).message})`, { cause: err });
    }
    throw err;
  }
}

function ensureSchema(db: BetterSqlite3.Database, where: string): void {
  let tables: string[];
  try {
    tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((r) => r.name);
  } catch (err) {
    throw new Error(`MemAgent: ${where} is not a readable SQLite database (${(err as Error).message})`, { cause: err });
  }
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
    throw new Error(`MemAgent: ${where} is a SQLite database of something else (tables: ${tables.join(', ')}); refusing to use it`);
  }
  const version = Number(get('schema_version'));
  if (!Number.isInteger(version) || version < 1) throw new Error(`MemAgent: ${where} has an unreadable schema_version ${JSON.stringify(get('schema_version'))}`);
  if (version > SCHEMA_VERSION) {
    throw new Error(`MemAgent: ${where} has schema version ${version}, newer than this @capibara/core understands (${SCHEMA_VERSION}); upgrade the package`);
  }
  const check = db.pragma('quick_check', { simple: true });
  if (check !== 'ok') throw new Error(`MemAgent: ${where} failed SQLite's quick_check: ${String(check)}`);
}
