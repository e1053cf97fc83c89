import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { ItemRecord } from '../src/memory/item-index';
import { changedFields, embeddingBlob, embeddingCodes, fromRow, newRecord, toColumns, toItem } from '../src/memory/item-row';
import { contentHash } from '../src/memory/dedup';
import { MemAgent, MemoryPriority, MemoryType } from '../src/index';

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

describe('the file format', () => {
  it('writes an item row exactly as schema version 1 has it', async () => {
    const path = join(dir, 'golden.db');
    const m = new MemAgent({ path, sweepIntervalMs: 0, clock: () => T, tokenizer: { countTokens: () => 3 } });
    const id = await m.storeMemory('Deploy on Fridays', MemoryType.PROCEDURAL, MemoryPriority.HIGH, ['ops'], {
      scope: { userId: 'u1' }, metadata: { year: 2026 }, importance: 0.75, ttl: 1000, pinned: true,
    });
    await m.close();
    const db = new Database(path, { readonly: true });
    const row = db.prepare('SELECT * FROM items').get() as Record<string, unknown>;
    const history = db.prepare('SELECT item_id, event, reason, old_value, new_value, at FROM history').all();
    db.close();
    expect(row).toMatchObject({
      seq: 1, id, type: 'procedural', priority: 2, importance: 0.75, tags: '["ops"]', metadata: '{"year":2026}', user_id: 'u1', agent_id: null,
      session_id: null, created_at: T, updated_at: T, last_accessed: T, access_count: 0, expires_at: T + 1000, pinned: 1, deleted_at: null,
      content_hash: contentHash('Deploy on Fridays', { userId: 'u1', agentId: null, sessionId: null }), tokens: 3, bytes: 17,
      text: Buffer.from('Deploy on Fridays'), page_id: null, page_offset: null, embedding_scale: expect.any(Number),
    });
    expect((row['embedding'] as Buffer).length).toBe(384);
    expect(history).toEqual([{
      item_id: id, event: 'ADD', reason: null, old_value: null, at: T,
      new_value: JSON.stringify({
        id, content: 'Deploy on Fridays', type: 'procedural', priority: 2, importance: 0.75, tags: ['ops'], metadata: { year: 2026 }, scope: { userId: 'u1' },
        createdAt: T, updatedAt: T, lastAccessed: T, accessCount: 0, expiresAt: T + 1000, pinned: true, tokens: 3,
      }),
    }]);
  });

  it('opens a version-1 file written without this code (rows inserted by hand)', async () => {
    const path = join(dir, 'by-hand.db');
    await new MemAgent({ path, sweepIntervalMs: 0 }).close(); // schema and meta only
    const db = new Database(path);
    const insert = db.prepare(
      `INSERT INTO items (id, type, priority, importance, tags, metadata, user_id, agent_id, session_id, created_at, updated_at,
        last_accessed, access_count, expires_at, pinned, content_hash, tokens, bytes, text, embedding, embedding_scale)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const codes = new Int8Array(384);
    codes[0] = 127;
    insert.run('old-1', 'semantic', 1, 0.5, '["a"]', '{"k":"v"}', null, 'bot', null, T, T + 5, T + 6, 2, null, 0, 'x', 2, 9, Buffer.from('old text!'), Buffer.from(codes.buffer), 1 / 127);
    db.close();
    const m = new MemAgent({ path, sweepIntervalMs: 0, clock: () => T + 10 });
    expect(m.getMemory('old-1')).toEqual({
      id: 'old-1', content: 'old text!', type: MemoryType.SEMANTIC, priority: MemoryPriority.MEDIUM, importance: 0.5, tags: ['a'], metadata: { k: 'v' },
      scope: { agentId: 'bot' }, createdAt: T, updatedAt: T + 5, lastAccessed: T + 6, accessCount: 2, expiresAt: null, pinned: false, tokens: 2,
    });
    expect(m.getMetrics()).toMatchObject({ items: 1, tokensUsed: 2 });
    expect((await m.retrieveMemory({ queryText: 'old text' })).chunks.map((c) => c.id)).toEqual(['old-1']);
    await m.close();
  });
});
