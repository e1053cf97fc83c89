import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import Database from 'better-sqlite3';
import { compressSync } from 'lz4-napi';
import type { ItemRecord } from '../src/memory/item-index';
import { changedFields, embeddingBlob, embeddingCodes, fromRow, newRecord, toColumns, toItem } from '../src/memory/item-row';
import { contentHash } from '../src/memory/dedup';
import { MemAgent, MemoryPriority, MemoryType } from '../src/index';
import { describeBackends } from './support/postgres-server';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-item-row-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T = Date.UTC(2026, 0, 1);
const record: ItemRecord = {
  seq: 7, id: 'id-7', type: MemoryType.PROCEDURAL, priority: MemoryPriority.HIGH, importance: 0.25, tags: ['ops', 'deploy'],
  metadata: { year: 2026, langs: ['en', null] }, userId: 'u1', agentId: null, sessionId: 's1', createdAt: T, updatedAt: T + 1,
  lastAccessed: T + 2, accessCount: 3, expiresAt: null, pinned: true, hash: 'h', tokens: 4, bytes: 22, row: 5,
};

describe('the item row codec', () => {
  it('maps a record to the columns of the items table and back', () => {
    const columns = toColumns(record);
    expect(columns).toEqual({
      seq: 7, id: 'id-7', type: 'procedural', priority: 2, importance: 0.25, tags: '["ops","deploy"]', metadata: '{"year":2026,"langs":["en",null]}',
      user_id: 'u1', agent_id: null, session_id: 's1', created_at: T, updated_at: T + 1, last_accessed: T + 2, access_count: 3,
      expires_at: null, pinned: 1, content_hash: 'h', tokens: 4, bytes: 22,
    });
    expect(fromRow(columns, 5)).toEqual(record);
    expect(fromRow({ ...columns, pinned: 0 }, 9)).toMatchObject({ pinned: false, row: 9 });
  });

  it('makes the record of a new item: every time is now, no accesses yet', () => {
    const f = { type: MemoryType.SEMANTIC, priority: MemoryPriority.LOW, importance: 0.5, tags: ['t'], metadata: {}, pinned: false, userId: null, agentId: 'a', sessionId: null, expiresAt: T + 9 };
    expect(newRecord(f, 'n1', 'h1', 3, 12, T)).toEqual({
      seq: 0, id: 'n1', ...f, createdAt: T, updatedAt: T, lastAccessed: T, accessCount: 0, hash: 'h1', tokens: 3, bytes: 12, row: -1,
    });
  });

  it('stores embeddings as their int8 bytes, without copying', () => {
    const codes = Int8Array.of(-128, -1, 0, 1, 127);
    const blob = embeddingBlob(codes);
    expect([...blob]).toEqual([128, 255, 0, 1, 127]);
    expect(blob.buffer).toBe(codes.buffer);
    expect(embeddingCodes(blob)).toEqual(codes);
  });

  it('views a record as the API returns it, in the key order the history stores', () => {
    const item = toItem(record, 'Never deploy on Fridays');
    expect(Object.keys(item)).toEqual([
      'id', 'content', 'type', 'priority', 'importance', 'tags', 'metadata', 'scope', 'createdAt', 'updatedAt', 'lastAccessed', 'accessCount',
      'expiresAt', 'pinned', 'tokens',
    ]);
    expect(item.scope).toEqual({ userId: 'u1', sessionId: 's1' });
    item.tags.push('x');
    (item.metadata['langs'] as unknown[]).push('x');
    expect(record.tags).toEqual(['ops', 'deploy']);
    expect(record.metadata['langs']).toEqual(['en', null]);
  });

  it('records only the fields an update changed, content last and only when the text changed', () => {
    const before = toItem(record, 'a');
    const after = toItem({ ...record, tags: ['ops'], updatedAt: T + 9 }, 'b');
    expect(changedFields(before, after)).toEqual({ oldValue: { tags: ['ops', 'deploy'], updatedAt: T + 1, content: 'a' }, newValue: { tags: ['ops'], updatedAt: T + 9, content: 'b' } });
    expect(changedFields(before, toItem(record, 'a'))).toEqual({ oldValue: {}, newValue: {} });
  });
});

// The rows and pages each store writes: the same columns and bytes on SQLite and PostgreSQL
// (PostgreSQL adds change_seq and touch_seq, its own bookkeeping).
describeBackends('the stored format', (backend) => {
  it('writes an item row exactly as schema version 1 had it (version 2 left items as they were)', async () => {
    const m = await backend.open({ sweepIntervalMs: 0, clock: () => T, tokenizer: { countTokens: () => 3 } }, 'golden');
    const id = await m.storeMemory('Deploy on Fridays', MemoryType.PROCEDURAL, MemoryPriority.HIGH, ['ops'], {
      scope: { userId: 'u1' }, metadata: { year: 2026 }, importance: 0.75, ttl: 1000, pinned: true,
    });
    await m.close();
    const [row] = await backend.sql('golden', 'SELECT * FROM {items}');
    const history = await backend.sql('golden', 'SELECT item_id, event, reason, old_value, new_value, at FROM {history}');
    expect(row).toMatchObject({
      seq: 1, id, type: 'procedural', priority: 2, importance: 0.75, tags: '["ops"]', metadata: '{"year":2026}', user_id: 'u1', agent_id: null,
      session_id: null, created_at: T, updated_at: T, last_accessed: T, access_count: 0, expires_at: T + 1000, pinned: 1, deleted_at: null,
      content_hash: contentHash('Deploy on Fridays', { userId: 'u1', agentId: null, sessionId: null }), tokens: 3, bytes: 17,
      text: Buffer.from('Deploy on Fridays'), page_id: null, page_offset: null, embedding_scale: expect.any(Number),
    });
    expect((row!['embedding'] as Buffer).length).toBe(384);
    expect(history).toEqual([{
      item_id: id, event: 'ADD', reason: null, old_value: null, at: T,
      new_value: JSON.stringify({
        id, content: 'Deploy on Fridays', type: 'procedural', priority: 2, importance: 0.75, tags: ['ops'], metadata: { year: 2026 }, scope: { userId: 'u1' },
        createdAt: T, updatedAt: T, lastAccessed: T, accessCount: 0, expiresAt: T + 1000, pinned: true, tokens: 3,
      }),
    }]);
  });

  it('writes a page with its raw size and the CRC-32 of its stored bytes (schema version 2)', async () => {
    const m = await backend.open({ sweepIntervalMs: 0, clock: () => T }, 'golden_page');
    const texts = ['a'.repeat(20_000), 'b'.repeat(20_000)];
    for (const t of texts) await m.storeMemory(t, MemoryType.SEMANTIC, MemoryPriority.LOW);
    await m.close();
    const [page] = await backend.sql<{ id: number; codec: string; raw_bytes: number; data: Buffer; checksum: number }>('golden_page', 'SELECT id, codec, raw_bytes, data, checksum FROM {pages}');
    const rows = await backend.sql('golden_page', 'SELECT seq, text, page_id, page_offset, bytes FROM {items} ORDER BY seq');
    // The schema's own version: SQLite files are at 2; the PostgreSQL schema started at 1 with checksums.
    expect(await backend.sql('golden_page', "SELECT value FROM {meta} WHERE key = 'schema_version'")).toEqual([{ value: backend.name === 'sqlite' ? '2' : '1' }]);
    expect(page).toEqual({ id: 1, codec: 'lz4', raw_bytes: 40_000, data: expect.any(Buffer), checksum: crc32(page!.data) });
    expect(page!.data.readUInt32LE(0)).toBe(40_000); // lz4-napi's size prefix, checked against raw_bytes before decompressing
    const first = rows[0]!['seq'] as number;
    expect(rows).toEqual([
      { seq: first, text: null, page_id: 1, page_offset: 0, bytes: 20_000 },
      { seq: rows[1]!['seq'], text: null, page_id: 1, page_offset: 20_000, bytes: 20_000 },
    ]);
    expect(rows[1]!['seq']).toBeGreaterThan(first);
  });
});

// Versions before the current one exist only for SQLite files: their migration is SQLite's.
describe('the file format', () => {
  // The version-1 schema, as its code created it: files written by it must keep opening.
  const V1_DDL = `
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE pages (id INTEGER PRIMARY KEY, codec TEXT NOT NULL, raw_bytes INTEGER NOT NULL, data BLOB NOT NULL);
    CREATE TABLE items (
      seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, priority INTEGER NOT NULL, importance REAL NOT NULL,
      tags TEXT NOT NULL, metadata TEXT NOT NULL, user_id TEXT, agent_id TEXT, session_id TEXT, created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL, last_accessed INTEGER NOT NULL, access_count INTEGER NOT NULL, expires_at INTEGER,
      pinned INTEGER NOT NULL, deleted_at INTEGER, content_hash TEXT NOT NULL, tokens INTEGER NOT NULL, bytes INTEGER NOT NULL,
      text BLOB, page_id INTEGER REFERENCES pages(id), page_offset INTEGER, embedding BLOB NOT NULL, embedding_scale REAL NOT NULL,
      CHECK ((text IS NULL) <> (page_id IS NULL))
    );
    CREATE INDEX items_page ON items(page_id);
    CREATE INDEX items_pending ON items(seq) WHERE text IS NOT NULL;
    CREATE TABLE history (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL, event TEXT NOT NULL, reason TEXT, old_value TEXT, new_value TEXT, at INTEGER NOT NULL
    );
    CREATE INDEX history_item ON history(item_id, seq);`;

  /** A version-1 file made without this code: `old-1` raw in its row, `old-2` and `old-3` in an LZ4 page without a checksum. */
  function versionOneFile(name: string, page: (data: Buffer) => Buffer = (d) => d): string {
    const path = join(dir, name);
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec(V1_DDL);
    const meta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
    meta.run('application', 'capibara-memagent');
    meta.run('schema_version', '1');
    meta.run('embedding_dimensions', '384');
    const raw = Buffer.from('paged text twoand three');
    db.prepare("INSERT INTO pages (id, codec, raw_bytes, data) VALUES (1, 'lz4', ?, ?)").run(raw.length, page(compressSync(raw)));
    const insert = db.prepare(
      `INSERT INTO items (id, type, priority, importance, tags, metadata, user_id, agent_id, session_id, created_at, updated_at,
        last_accessed, access_count, expires_at, pinned, content_hash, tokens, bytes, text, page_id, page_offset, embedding, embedding_scale)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const codes = new Int8Array(384);
    codes[0] = 127;
    const emb = Buffer.from(codes.buffer);
    insert.run('old-1', 'semantic', 1, 0.5, '["a"]', '{"k":"v"}', null, 'bot', null, T, T + 5, T + 6, 2, null, 0, 'x', 2, 9, Buffer.from('old text!'), null, null, emb, 1 / 127);
    insert.run('old-2', 'episodic', 0, 0.5, '[]', '{}', null, null, null, T, T, T, 0, null, 0, 'y', 3, 14, null, 1, 0, emb, 1 / 127);
    insert.run('old-3', 'episodic', 0, 0.5, '[]', '{}', null, null, null, T, T, T, 0, null, 0, 'z', 2, 9, null, 1, 14, emb, 1 / 127);
    db.close();
    return path;
  }

  it('opens a version-1 file written without this code, and migrates it: pages read back intact get their checksum', async () => {
    const path = versionOneFile('v1.db');
    const ro = new MemAgent({ path, readonly: true, sweepIntervalMs: 0 });
    expect(ro.getMemory('old-2')?.content).toBe('paged text two');
    await ro.close();
    const peek = () => {
      const db = new Database(path, { readonly: true });
      const version = (db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string }).value;
      const page = db.prepare('SELECT * FROM pages').get();
      db.close();
      return { version, page };
    };
    expect(peek().version).toBe('1'); // read-only: not migrated
    const m = new MemAgent({ path, sweepIntervalMs: 0, clock: () => T + 10 });
    expect(m.getMemory('old-1')).toEqual({
      id: 'old-1', content: 'old text!', type: MemoryType.SEMANTIC, priority: MemoryPriority.MEDIUM, importance: 0.5, tags: ['a'], metadata: { k: 'v' },
      scope: { agentId: 'bot' }, createdAt: T, updatedAt: T + 5, lastAccessed: T + 6, accessCount: 2, expiresAt: null, pinned: false, tokens: 2,
    });
    expect([m.getMemory('old-2')?.content, m.getMemory('old-3')?.content]).toEqual(['paged text two', 'and three']);
    expect(m.getMetrics()).toMatchObject({ items: 3, tokensUsed: 7 });
    expect((await m.retrieveMemory({ queryText: 'old text' })).chunks[0]?.id).toBe('old-1');
    await m.close();
    const after = peek();
    expect(after.version).toBe('2');
    expect(after.page).toEqual({ id: 1, codec: 'lz4', raw_bytes: 23, data: expect.any(Buffer), checksum: crc32(compressSync(Buffer.from('paged text twoand three'))) });
  });

  it('checks a version-1 page by its sizes before decompressing it, and leaves it without a checksum when it fails', async () => {
    const path = versionOneFile('v1-bad.db', (d) => {
      d.writeUInt32LE(0xffffffff, 0);
      return d;
    });
    expect(() => new MemAgent({ path, sweepIntervalMs: 0 })).toThrow(
      `MemAgent: ${path}: item old-2 (row 2) is unreadable: page 1: its LZ4 header claims 4294967295 raw bytes but its raw_bytes says 23; ` +
        "open with { onCorrupt: 'skip' } to load every intact item and report the rest",
    );
    const m = new MemAgent({ path, sweepIntervalMs: 0, onCorrupt: 'skip' });
    expect(m.corrupt.map((c) => c.id)).toEqual(['old-2', 'old-3']);
    await m.close();
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT checksum FROM pages').get()).toEqual({ checksum: null });
    db.close();
  });
});
