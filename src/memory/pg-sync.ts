/**
 * Reading a PostgreSQL-backed MemAgent's items into a process's mirror: everything (at open,
 * and to rebuild), or the rows changed since the version the process last saw. Rows are
 * checked by the same codec as SQLite's (item-row.ts), pages by the same checksum and sizes
 * (pages.ts).
 * @module
 */
import type { PoolClient } from 'pg';

import { type CorruptItem, corruptItem, PageError } from './corruption';
import { type DecodedRow, decodeRow } from './item-row';
import { CACHED_PAGES, decodePage, type PageRow, readText } from './pages';
import { query } from './pg-connection';

/** One row of a snapshot, as the mirror takes it. @internal */
export type Change =
  | { kind: 'upsert'; row: DecodedRow; content: string }
  | { kind: 'removed'; seq: number }
  | { kind: 'touched'; seq: number; lastAccessed: number; accessCount: number }
  | { kind: 'corrupt'; seq: number; item: CorruptItem };

/** What one read of the database found. @internal */
export interface Snapshot {
  version: number;
  purgedVersion: number;
  rawBytes: number;
  storedBytes: number;
  rows: Change[];
}

/** Where the changes read go: the MemAgent's indexes. @internal */
export interface MirrorHooks {
  /** A new or changed item; `contentChanged` false when only its fields changed. */
  upsert(row: DecodedRow, content: string, contentChanged: boolean): void;
  remove(seq: number): void;
  touched(seq: number, lastAccessed: number, accessCount: number): void;
  /** Forget every item (a rebuild follows). */
  clear(): void;
  corrupt(item: CorruptItem): void;
}

const ITEM_COLUMNS = [
  'seq', 'id', 'type', 'priority', 'importance', 'tags', 'metadata', 'user_id', 'agent_id', 'session_id', 'created_at', 'updated_at',
  'last_accessed', 'access_count', 'expires_at', 'pinned', 'content_hash', 'tokens', 'bytes', 'embedding_scale', 'page_id', 'page_offset',
  'deleted_at', 'change_seq',
];
const STATE = 'version, purged_version, raw_bytes, stored_bytes';

/**
 * Every live item. `inTxn`: the caller holds a transaction in which nothing can change (the
 * writers' lock, or REPEATABLE READ); otherwise one is opened here.
 * @internal
 */
export async function fetchAll(c: PoolClient, s: string, inTxn: boolean, cache: Map<number, Buffer>, dims: number): Promise<Snapshot> {
  if (!inTxn) await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const [state] = await query(c, `SELECT ${STATE} FROM ${s}.memagent_state`);
    const rows = await query(c, `SELECT ${ITEM_COLUMNS.join(', ')}, text, embedding FROM ${s}.memagent_items WHERE deleted_at IS NULL ORDER BY seq`);
    const pages = await fetchPages(c, s, rows, cache);
    if (!inTxn) await c.query('COMMIT');
    return { ...stateOf(state!), rows: decode(rows, pages, -1, dims)! };
  } catch (err) {
    if (!inTxn) await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * The query of {@link syncChanges}, `last` written in (a safe integer): it can then run in the
 * same round trip as the statements that open a write.
 * @internal
 */
export function changesQuery(s: string, last: number): string {
  if (!Number.isSafeInteger(last)) throw new Error(`MemAgent: version ${last} is not an integer (a bug)`);
  const cols = ITEM_COLUMNS.join(', ');
  // Two branches, each on its own index: one OR over both columns scans the whole table (2 ms at
  // 512K tokens, more as updates leave dead rows), since the planner cannot tell how few match.
  return `SELECT s.version AS s_version, s.purged_version AS s_purged, s.raw_bytes AS s_raw, s.stored_bytes AS s_stored, i.*
    FROM ${s}.memagent_state s LEFT JOIN (
      SELECT ${cols}, text, embedding FROM ${s}.memagent_items WHERE change_seq > ${last}
      UNION ALL
      SELECT ${cols}, NULL::bytea, NULL::bytea FROM ${s}.memagent_items WHERE touch_seq > ${last} AND change_seq <= ${last}
    ) i ON true ORDER BY i.seq`;
}

/**
 * The changes in `rows` (from {@link changesQuery}) after version `last`, or null when the
 * database is still at `last`; `undefined` when a page they point to went away meanwhile.
 * @internal
 */
export async function readChanges(c: PoolClient, s: string, last: number, rows: Array<Record<string, unknown>>, cache: Map<number, Buffer>, dims: number): Promise<Snapshot | null | undefined> {
  const head = rows[0]!;
  const state = stateOf({ version: head['s_version'], purged_version: head['s_purged'], raw_bytes: head['s_raw'], stored_bytes: head['s_stored'] });
  if (state.version <= last) return null;
  const items = rows.filter((r) => r['seq'] !== null);
  const changed = items.filter((r) => r['deleted_at'] === null && (r['change_seq'] as number) > last);
  const pages = await fetchPages(c, s, changed, cache);
  const decoded = decode(items, pages, last, dims);
  return decoded === null ? undefined : { ...state, rows: decoded };
}

/**
 * The rows changed or touched after version `last`, or null when the database is still at
 * `last`. One query, plus one for pages not read yet; read again when a page went away between
 * the two (another process repacked it: the row then holds its text again).
 * @internal
 */
export async function syncChanges(c: PoolClient, s: string, last: number, cache: Map<number, Buffer>, dims: number): Promise<Snapshot | null> {
  const sql = changesQuery(s, last);
  for (let attempt = 0; ; attempt++) {
    const snap = await readChanges(c, s, last, await query(c, sql), cache, dims);
    if (snap !== undefined) return snap;
    if (attempt >= 4) throw new Error('MemAgent: pages kept moving while this process read them (5 tries); try again');
  }
}

function stateOf(r: Record<string, unknown>): Omit<Snapshot, 'rows'> {
  return { version: r['version'] as number, purgedVersion: r['purged_version'] as number, rawBytes: r['raw_bytes'] as number, storedBytes: r['stored_bytes'] as number };
}

type PageRead = Map<number, Buffer | PageError | null>;

// The decoded pages the rows point to: from the cache, else read and checked (null: no such page now).
async function fetchPages(c: PoolClient, s: string, rows: Array<Record<string, unknown>>, cache: Map<number, Buffer>): Promise<PageRead> {
  const out: PageRead = new Map();
  const wanted = new Set<number>();
  for (const r of rows) {
    const id = r['page_id'];
    if (typeof id !== 'number' || r['text'] !== null) continue;
    const hit = cache.get(id);
    if (hit !== undefined) out.set(id, hit);
    else wanted.add(id);
  }
  if (wanted.size === 0) return out;
  for (const id of wanted) out.set(id, null);
  const found = await query<PageRow & { id: number }>(c, `SELECT id, codec, raw_bytes, checksum, data FROM ${s}.memagent_pages WHERE id = ANY($1::bigint[])`, [[...wanted]]);
  for (const p of found) {
    try {
      const page = decodePage(p.id, p);
      out.set(p.id, page);
      cache.set(p.id, page);
      if (cache.size > CACHED_PAGES) cache.delete(cache.keys().next().value!);
    } catch (err) {
      if (!(err instanceof PageError)) throw err;
      out.set(p.id, err);
    }
  }
  return out;
}

// The changes of `rows` after version `last` (-1: a full read); null when a page was missing.
function decode(rows: Array<Record<string, unknown>>, pages: PageRead, last: number, dims: number): Change[] | null {
  const out: Change[] = [];
  for (const r of rows) {
    const seq = r['seq'] as number;
    if (r['deleted_at'] !== null) {
      out.push({ kind: 'removed', seq });
      continue;
    }
    if (last >= 0 && (r['change_seq'] as number) <= last) {
      out.push({ kind: 'touched', seq, lastAccessed: r['last_accessed'] as number, accessCount: r['access_count'] as number });
      continue;
    }
    try {
      const row = decodeRow(r, dims);
      const content = readText(row.text, (id) => {
        const p = pages.get(id);
        if (p instanceof PageError) throw p;
        if (p === null || p === undefined) throw new PageError(id, 'missing from the pages table');
        return p;
      });
      out.push({ kind: 'upsert', row, content });
    } catch (err) {
      // A page gone between the two reads of a sync: read again. In a full read (one snapshot) it is damage.
      if (err instanceof PageError && last >= 0 && pages.get(err.page) === null) return null;
      out.push({ kind: 'corrupt', seq, item: corruptItem(seq, r['id'], err) });
    }
  }
  return out;
}
