/**
 * The SQLite file of a MemAgent: opening (read-write and locked, or read-only), pragmas,
 * schema creation, version checks and migrations.
 *
 * Versions: 1, the first; 2 adds `pages.checksum`, the CRC-32 of each page's stored bytes
 * (NULL in pages written by version 1, which are verified by their sizes only and get their
 * checksum once they have been read back intact: see {@link PageStore}).
 * @module
 */
import { accessSync, constants as fsConstants, realpathSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
// PageStore is imported for the doc link.
import type { PageStore } from './pages';

/** Version of the schema this code writes; a file with a newer one is refused. */
export const SCHEMA_VERSION = 2;
const APPLICATION = 'capibara-memagent';

const DDL = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE pages (
  id INTEGER PRIMARY KEY,
  codec TEXT NOT NULL,
  raw_bytes INTEGER NOT NULL,
  data BLOB NOT NULL,
  checksum INTEGER
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
 * An open MemAgent database.
 * @internal
 */
export interface OpenedDatabase {
  db: BetterSqlite3.Database;
  /** Whether the pages table has its checksum column (false only for a version-1 file opened read-only). */
  checksums: boolean;
  /** Closes the database and lets this process open the file again. */
  close(): void;
}

/** Files this process holds open, by real path: to tell "open here" from "held by another process". */
const held = new Map<string, number>();

/**
 * Opens (creating when new) a MemAgent database. `path` undefined is an in-memory database:
 * the same code, nothing on disk. Read-write, the file is locked until close (SQLite's
 * exclusive locking mode); read-only, a read transaction is held until close, so the file
 * stays as it was at open and no writer can open it meanwhile. Neither waits for a lock
 * (`busy_timeout` 0): a file another process holds fails at once.
 *
 * @throws Error naming the file when it is held by another process or MemAgent, read-only
 * (for a read-write open), not a MemAgent database, newer than this version, or fails
 * SQLite's quick check.
 * @internal
 */
export function openDatabase(path: string | undefined, o: { synchronous: 'normal' | 'full'; readonly: boolean }): OpenedDatabase {
  const Database = require('better-sqlite3') as typeof BetterSqlite3;
  let db: BetterSqlite3.Database;
  try {
    db = new Database(path ?? ':memory:', { timeout: 0, readonly: o.readonly, fileMustExist: o.readonly });
  } catch (err) {
    throw new Error(`MemAgent: cannot open ${path}${o.readonly ? ' read-only' : ''}: ${(err as Error).message}`, { cause: err });
  }
  try {
    let checksums = true;
    if (path !== undefined && o.readonly) {
      checksums = ensureSchema(db, path, true) >= 2;
      db.exec('BEGIN');
      db.prepare('SELECT COUNT(*) FROM meta').get(); // the read transaction starts here
    } else {
      if (path !== undefined) {
        // One MemAgent per file: each keeps its own index, so a second writer would diverge.
        // The exclusive lock is taken by the first write below and held until close.
        db.pragma('locking_mode = EXCLUSIVE');
        db.pragma('journal_mode = WAL');
      }
      db.pragma(`synchronous = ${o.synchronous}`);
      db.pragma('foreign_keys = ON');
      ensureSchema(db, path ?? ':memory:', false);
      if (path !== undefined) db.exec('BEGIN IMMEDIATE; COMMIT');
    }
    if (path === undefined) return { db, checksums, close: () => db.close() };
    const key = realpathSync(path);
    held.set(key, (held.get(key) ?? 0) + 1);
    let open = true;
    const close = () => {
      if (!open) return;
      open = false;
      db.close();
      const n = held.get(key)! - 1;
      if (n === 0) held.delete(key);
      else held.set(key, n);
    };
    return { db, checksums, close };
  } catch (err) {
    db.close();
    throw explain(err, path ?? ':memory:', o.readonly);
  }
}

/** The error to throw for a failed open: SQLite's, named and explained where it can be. */
function explain(err: unknown, path: string, readonly: boolean): unknown {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'SQLITE_BUSY') {
    let here = false;
    try {
      here = held.has(realpathSync(path));
    } catch {
      // gone meanwhile: not ours
    }
    const where = here ? 'is already open in another MemAgent of this process' : 'is held by another process (a MemAgent there has it open)';
    return new Error(`MemAgent: ${path} ${where}: one MemAgent writes a file at a time, until its close()`, { cause: err });
  }
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new Error(`MemAgent: ${path} is not a readable SQLite database (${(err as Error).message})`, { cause: err });
  }
  if (/^SQLITE_(READONLY|IOERR|CANTOPEN)/.test(code)) {
    const wal = `${basename(path)}-wal and ${basename(path)}-shm`;
    if (!readonly && !writable(path)) {
      return new Error(`MemAgent: ${path} is read-only (this process may not write it): open it with { readonly: true } to retrieve from it, or make it writable`, { cause: err });
    }
    if (!writable(dirname(path))) {
      const fix = readonly ? 'make the folder writable' : 'make the folder writable, or open the file with { readonly: true } once its -shm file exists';
      return new Error(`MemAgent: ${path}: its folder is read-only, and SQLite needs to create ${wal} beside a WAL database: ${fix}`, { cause: err });
    }
  }
  return err;
}

function writable(path: string): boolean {
  try {
    accessSync(path, fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks (creating it in a new read-write file, migrating an older one) the schema; returns
 * the version the file has now.
 */
function ensureSchema(db: BetterSqlite3.Database, where: string, readonly: boolean): number {
  let tables: string[];
  try {
    tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((r) => r.name);
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_BUSY') throw err; // held elsewhere: explained by the caller
    throw new Error(`MemAgent: ${where} is not a readable SQLite database (${(err as Error).message})`, { cause: err });
  }
  if (tables.length === 0) {
    if (readonly) throw new Error(`MemAgent: ${where} is empty, not a MemAgent database: there is nothing to open read-only`);
    db.transaction(() => {
      db.exec(DDL);
      const put = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
      put.run('application', APPLICATION);
      put.run('schema_version', String(SCHEMA_VERSION));
    })();
    return SCHEMA_VERSION;
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
  if (readonly || version === SCHEMA_VERSION) return version;
  db.transaction(() => {
    // 1 -> 2: page checksums. Old pages keep NULL until read back intact (PageStore.recordChecksums).
    db.exec('ALTER TABLE pages ADD COLUMN checksum INTEGER');
    db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(String(SCHEMA_VERSION));
  })();
  return SCHEMA_VERSION;
}
