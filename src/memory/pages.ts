/**
 * Compressed text storage. Small items compress badly alone (1 KB: LZ4 ≈ 1.3×), so new texts
 * wait raw in their item rows until PAGE_BYTES of them accumulate; then they are packed into
 * one page, compressed as a whole, and the rows point into it. Reading an item decompresses
 * its page once (an LRU keeps recent pages).
 * @module
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import type BetterSqlite3 from 'better-sqlite3';

/**
 * How stored text is compressed: `'lz4'` (lz4-napi, fast), `'gzip'` (zlib, smaller) or `'none'`.
 *
 * @example
 * ```ts
 * const memory = new MemAgent({ path: 'memory.db', compression: 'gzip' });
 * ```
 */
export type Compression = 'lz4' | 'gzip' | 'none';

/** Raw bytes gathered before a page is sealed and compressed. */
export const PAGE_BYTES = 32 * 1024;
const CACHED_PAGES = 64;
/** A sealed page whose live bytes fall under this share is repacked on the next cleanup. */
const REPACK_BELOW = 0.5;

type Lz4 = { compressSync(data: Buffer): Buffer; uncompressSync(data: Uint8Array): Buffer };
let lz4: Lz4 | undefined;
const lz4Module = (): Lz4 => (lz4 ??= require('lz4-napi') as Lz4);

/** @internal */
export function compress(codec: Compression, raw: Buffer): Buffer {
  if (codec === 'lz4') return lz4Module().compressSync(raw);
  if (codec === 'gzip') return gzipSync(raw, { level: 6 });
  return raw;
}

/** @internal */
export function decompress(codec: string, data: Buffer): Buffer {
  if (codec === 'lz4') return lz4Module().uncompressSync(data);
  if (codec === 'gzip') return gunzipSync(data);
  if (codec === 'none') return data;
  throw new Error(`MemAgent: a page uses codec '${codec}', unknown to this version`);
}

/**
 * A stored page as the `pages` table holds it.
 * @internal
 */
export interface PageRow {
  codec: string;
  data: Buffer;
}

/**
 * The page row that stores `raw`.
 * @internal
 */
export function encodePage(codec: Compression, raw: Buffer): PageRow {
  return { codec, data: compress(codec, raw) };
}

/**
 * The raw bytes of page `id` from its row: every read of stored text goes through here, so
 * this is where a page's integrity is to be checked.
 * @internal
 */
export function decodePage(id: number, row: PageRow | undefined): Buffer {
  if (row === undefined) throw new Error(`MemAgent: page ${id} is missing from the database`);
  return decompress(row.codec, row.data);
}

/** Where an item's text lives: raw in its row, or at `offset` in a page. */
export interface TextLocation {
  seq: number;
  bytes: number;
  text: Buffer | null;
  pageId: number | null;
  offset: number | null;
}

/** Bytes stored vs raw, for the compression ratio. */
export interface PageTotals {
  rawBytes: number;
  storedBytes: number;
}

export class PageStore {
  readonly #db: BetterSqlite3.Database;
  readonly #codec: Compression;
  readonly #cache = new Map<number, Buffer>();
  readonly #sql;
  /** Raw bytes waiting in item rows. */
  pendingBytes: number;

  constructor(db: BetterSqlite3.Database, codec: Compression) {
    this.#db = db;
    this.#codec = codec;
    this.#sql = {
      page: db.prepare<[number], PageRow>('SELECT codec, data FROM pages WHERE id = ?'),
      pending: db.prepare<[], { seq: number; text: Buffer }>('SELECT seq, text FROM items WHERE text IS NOT NULL ORDER BY seq'),
      insertPage: db.prepare<[string, number, Buffer]>('INSERT INTO pages (codec, raw_bytes, data) VALUES (?, ?, ?)'),
      point: db.prepare<[number, number, number]>('UPDATE items SET text = NULL, page_id = ?, page_offset = ? WHERE seq = ?'),
      unpage: db.prepare<[Buffer, number]>('UPDATE items SET text = ?, page_id = NULL, page_offset = NULL WHERE seq = ?'),
      pageItems: db.prepare<[number], { seq: number; bytes: number; page_offset: number }>('SELECT seq, bytes, page_offset FROM items WHERE page_id = ?'),
      deletePage: db.prepare<[number]>('DELETE FROM pages WHERE id = ?'),
      live: db.prepare<[], { id: number; raw_bytes: number; live: number | null }>(
        'SELECT p.id, p.raw_bytes, (SELECT SUM(bytes) FROM items i WHERE i.page_id = p.id) AS live FROM pages p',
      ),
      totals: db.prepare<[], { raw: number | null; stored: number | null }>('SELECT SUM(raw_bytes) AS raw, SUM(length(data)) AS stored FROM pages'),
      pendingTotal: db.prepare<[], { n: number | null }>('SELECT SUM(bytes) AS n FROM items WHERE text IS NOT NULL'),
    };
    this.pendingBytes = this.#sql.pendingTotal.get()?.n ?? 0;
  }

  /** The text of an item. */
  read(loc: TextLocation): string {
    if (loc.text !== null) return loc.text.toString('utf8');
    const page = this.#page(loc.pageId!);
    return page.subarray(loc.offset!, loc.offset! + loc.bytes).toString('utf8');
  }

  /** Call inside the write transaction after adding `bytes` of raw text: seals a page when enough waits. */
  added(bytes: number): void {
    this.pendingBytes += bytes;
    if (this.pendingBytes >= PAGE_BYTES) this.#seal();
  }

  /** Call inside the write transaction after removing raw (unsealed) text. */
  removedPending(bytes: number): void {
    this.pendingBytes -= bytes;
  }

  /**
   * Deletes pages no item points to and moves the live texts of mostly-dead pages back to
   * their rows (to be packed again). Call inside a transaction after purging items.
   */
  repack(): void {
    for (const p of this.#sql.live.all()) {
      const live = p.live ?? 0;
      if (live >= p.raw_bytes * REPACK_BELOW) continue;
      if (live > 0) {
        const page = this.#page(p.id);
        for (const it of this.#sql.pageItems.all(p.id)) {
          this.#sql.unpage.run(Buffer.from(page.subarray(it.page_offset, it.page_offset + it.bytes)), it.seq);
          this.pendingBytes += it.bytes;
        }
      }
      this.#sql.deletePage.run(p.id);
      this.#cache.delete(p.id);
    }
    if (this.pendingBytes >= PAGE_BYTES) this.#seal();
  }

  totals(): PageTotals {
    const t = this.#sql.totals.get();
    return { rawBytes: (t?.raw ?? 0) + this.pendingBytes, storedBytes: (t?.stored ?? 0) + this.pendingBytes };
  }

  /** Forgets cached pages (after a rolled-back transaction). */
  clearCache(): void {
    this.#cache.clear();
  }

  // Packs every pending text into one page.
  #seal(): void {
    const rows = this.#sql.pending.all();
    if (rows.length === 0) return;
    const raw = Buffer.concat(rows.map((r) => r.text));
    const page = encodePage(this.#codec, raw);
    const id = Number(this.#sql.insertPage.run(page.codec, raw.length, page.data).lastInsertRowid);
    let offset = 0;
    for (const r of rows) {
      this.#sql.point.run(id, offset, r.seq);
      offset += r.text.length;
    }
    this.pendingBytes = 0;
  }

  #page(id: number): Buffer {
    let page = this.#cache.get(id);
    if (page !== undefined) {
      this.#cache.delete(id);
      this.#cache.set(id, page);
      return page;
    }
    page = decodePage(id, this.#sql.page.get(id));
    this.#cache.set(id, page);
    if (this.#cache.size > CACHED_PAGES) this.#cache.delete(this.#cache.keys().next().value!);
    return page;
  }
}
