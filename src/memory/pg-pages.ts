/**
 * Page maintenance of a PostgreSQL-backed MemAgent, run at the end of each write transaction
 * (under the writers' lock): repack mostly-empty pages after a purge, seal the texts waiting in
 * item rows into one compressed page once `PAGE_BYTES` of them wait, and record the totals the
 * metrics report. The same rules as the SQLite page store (pages.ts); pages are never changed
 * once written, only deleted, so a page id read once stays valid.
 * @module
 */
import type { PoolClient } from 'pg';

import { PageError } from './corruption';
import { decodePage, encodePage, PAGE_BYTES, type PageRow, type Compression, type PageTotals, REPACK_BELOW } from './pages';
import { query } from './pg-connection';

/**
 * Repacks (when `repack`), seals when enough text waits, and stores the totals in the state
 * row; returns them. Rows in `quarantined` (undecodable) are left where they are.
 * @internal
 */
export async function maintainPages(c: PoolClient, s: string, codec: Compression, repack: boolean, quarantined: ReadonlySet<number>): Promise<PageTotals> {
  const skip = [...quarantined];
  if (repack) await repackPages(c, s, skip);
  let t = await totals(c, s);
  if (t.pending >= PAGE_BYTES) {
    const rows = await query<{ seq: number; text: Buffer }>(c, `SELECT seq, text FROM ${s}.memagent_items WHERE text IS NOT NULL AND NOT (seq = ANY($1::bigint[])) ORDER BY seq`, [skip]);
    if (rows.length > 0) {
      const page = encodePage(codec, Buffer.concat(rows.map((r) => r.text)));
      const [{ id }] = (await query<{ id: number }>(c, `INSERT INTO ${s}.memagent_pages (codec, raw_bytes, checksum, data) VALUES ($1, $2, $3, $4) RETURNING id`, [
        page.codec, page.raw_bytes, page.checksum, page.data,
      ])) as [{ id: number }];
      const offsets: number[] = [];
      let at = 0;
      for (const r of rows) {
        offsets.push(at);
        at += r.text.length;
      }
      await query(c, `UPDATE ${s}.memagent_items i SET text = NULL, page_id = $1, page_offset = x.o FROM unnest($2::bigint[], $3::bigint[]) AS x(s, o) WHERE i.seq = x.s`, [
        id, rows.map((r) => r.seq), offsets,
      ]);
      t = await totals(c, s);
    }
  }
  return { rawBytes: t.rawBytes, storedBytes: t.storedBytes };
}

// Pages plus texts waiting in rows (counted raw on both sides, as the SQLite store does).
async function totals(c: PoolClient, s: string): Promise<PageTotals & { pending: number }> {
  const [r] = await query<{ raw_bytes: number; stored_bytes: number; pending: number }>(c, `
    WITH p AS (SELECT COALESCE(SUM(raw_bytes), 0)::bigint AS r, COALESCE(SUM(length(data)), 0)::bigint AS s FROM ${s}.memagent_pages),
         q AS (SELECT COALESCE(SUM(bytes), 0)::bigint AS n FROM ${s}.memagent_items WHERE text IS NOT NULL)
    UPDATE ${s}.memagent_state SET raw_bytes = p.r + q.n, stored_bytes = p.s + q.n FROM p, q RETURNING raw_bytes, stored_bytes, q.n AS pending`);
  return { rawBytes: r!.raw_bytes, storedBytes: r!.stored_bytes, pending: r!.pending };
}

// Deletes pages nobody points to; moves the live texts of mostly-dead pages back into their rows.
async function repackPages(c: PoolClient, s: string, skip: number[]): Promise<void> {
  const pages = await query<{ id: number; raw_bytes: number; live: number }>(c, `
    SELECT p.id, p.raw_bytes, COALESCE(SUM(i.bytes), 0)::bigint AS live FROM ${s}.memagent_pages p LEFT JOIN ${s}.memagent_items i ON i.page_id = p.id
    GROUP BY p.id, p.raw_bytes HAVING COALESCE(SUM(i.bytes), 0) < p.raw_bytes * ${REPACK_BELOW}`);
  for (const p of pages) {
    if (p.live > 0) {
      const items = await query<{ seq: number; bytes: number; page_offset: number }>(c, `SELECT seq, bytes, page_offset FROM ${s}.memagent_items WHERE page_id = $1`, [p.id]);
      if (items.some((it) => skip.includes(it.seq))) continue;
      const [row] = await query<PageRow>(c, `SELECT codec, raw_bytes, checksum, data FROM ${s}.memagent_pages WHERE id = $1`, [p.id]);
      let page: Buffer;
      try {
        page = decodePage(p.id, row);
      } catch (err) {
        if (err instanceof PageError) continue; // damaged: left as it is
        throw err;
      }
      await query(c, `UPDATE ${s}.memagent_items i SET text = x.t, page_id = NULL, page_offset = NULL FROM unnest($1::bigint[], $2::bytea[]) AS x(s, t) WHERE i.seq = x.s`, [
        items.map((it) => it.seq), items.map((it) => Buffer.from(page.subarray(it.page_offset, it.page_offset + it.bytes))),
      ]);
    }
    await query(c, `DELETE FROM ${s}.memagent_pages WHERE id = $1`, [p.id]);
  }
}
