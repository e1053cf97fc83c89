/**
 * Compressed text storage. Small items compress badly alone (1 KB: LZ4 ≈ 1.3×), so new texts
 * wait raw in their item rows until PAGE_BYTES of them accumulate; then they are packed into
 * one page, compressed as a whole, and the rows point into it. Reading an item decompresses
 * its page once (an LRU keeps recent pages).
 *
 * Every page read goes through {@link decodePage}, which checks the page before decompressing
 * it: its CRC-32 (schema version 2; pages written by version 1 have none), and every size it
 * claims against the bytes actually there, so that a damaged page ends in a
 * {@link PageError}, never in an allocation of whatever size its header claims.
 * @module
 */
import { constants as bufferConstants, isUtf8 } from 'node:buffer';
import { crc32, gunzipSync, gzipSync } from 'node:zlib';
import type * as BetterSqlite3 from 'better-sqlite3';
import { PageError, RowError } from './corruption';

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
/** Decoded pages kept per store (LRU). @internal */
export const CACHED_PAGES = 64;
/** A sealed page whose live bytes fall under this share is repacked on the next cleanup. */
export const REPACK_BELOW = 0.5;
/**
 * LZ4 expands at most ~255× (a match-length byte stands for 255 bytes): a page whose claimed
 * raw size passes this many times its block is damaged, whatever its header and row say.
 */
const LZ4_MAX_EXPANSION = 256;
/** Largest page a page row may claim: what one Buffer can hold. */
const MAX_RAW_BYTES = bufferConstants.MAX_LENGTH;

type Lz4 = { compressSync(data: Buffer): Buffer; uncompressSync(data: Uint8Array): Buffer };
let lz4: Lz4 | undefined;
const lz4Module = (): Lz4 => (lz4 ??= require('lz4-napi') as Lz4);

/** @internal */
export function compress(codec: Compression, raw: Buffer): Buffer {
  if (codec === 'lz4') return lz4Module().compressSync(raw);
  if (codec === 'gzip') return gzipSync(raw, { level: 6 });
  return raw;
}

/**
 * A stored page as the `pages` table holds it: untrusted until {@link decodePage} checked it.
 * @internal
 */
export interface PageRow {
  codec: unknown;
  /** Length of the page's raw text. */
  raw_bytes: unknown;
  /** CRC-32 of `data` (zlib.crc32); null in pages written by schema version 1. */
  checksum: unknown;
  data: unknown;
}

/**
 * The page row that stores `raw`.
 * @internal
 */
export function encodePage(codec: Compression, raw: Buffer): { codec: Compression; raw_bytes: number; checksum: number; data: Buffer } {
  const data = compress(codec, raw);
  return { codec, raw_bytes: raw.length, checksum: crc32(data), data };
}

/**
 * The raw bytes of page `id` from its row: every read of stored text goes through here. The
 * checksum and the sizes are checked first, and a decoder is given at most `raw_bytes` of
 * output, itself bounded by what the stored bytes can expand to.
 * @throws {@link PageError} naming what is wrong.
 * @internal
 */
export function decodePage(id: number, row: PageRow | undefined): Buffer {
  if (row === undefined) throw new PageError(id, 'missing from the pages table');
  const { codec, raw_bytes: raw, checksum, data } = row;
  if (!Buffer.isBuffer(data)) throw new PageError(id, `its data is ${data === null ? 'null' : `a ${typeof data}`}, not a blob`);
  if (checksum !== null && checksum !== crc32(data)) throw new PageError(id, 'checksum mismatch (its stored bytes changed since they were written)');
  if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 1 || raw > MAX_RAW_BYTES) {
    throw new PageError(id, `raw_bytes ${JSON.stringify(raw)} is not a page size`);
  }
  let out: Buffer;
  if (codec === 'none') out = data;
  else if (codec === 'lz4') {
    const claimed = data.length >= 4 ? data.readUInt32LE(0) : -1;
    if (claimed !== raw) throw new PageError(id, `its LZ4 header claims ${claimed} raw bytes but its raw_bytes says ${raw}`);
    const most = LZ4_MAX_EXPANSION * (data.length - 4);
    if (raw > most) throw new PageError(id, `raw_bytes ${raw} is impossible for ${data.length} stored bytes of LZ4 (at most ${most})`);
    out = decoded(id, 'LZ4', () => lz4Module().uncompressSync(data));
  } else if (codec === 'gzip') {
    out = decoded(id, 'gzip', () => gunzipSync(data, { maxOutputLength: raw }));
  } else {
    throw new PageError(id, `codec ${JSON.stringify(codec)} is unknown to this version`);
  }
  if (out.length !== raw) throw new PageError(id, `it decodes to ${out.length} bytes but its raw_bytes says ${raw}`);
  return out;
}

function decoded(id: number, codec: string, decode: () => Buffer): Buffer {
  try {
    return decode();
  } catch (err) {
    throw new PageError(id, `${codec} data does not decode (${(err as Error).message})`);
  }
}

/**
 * The text at `loc`, its page (when it is in one) from `page`.
 * @throws {@link PageError} from `page`, {@link RowError} when the text is not where its row
 * says or is not UTF-8.
 * @internal
 */
export function readText(loc: TextLocation, page: (id: number) => Buffer): string {
  let text: Buffer;
  if (loc.text !== null) {
    if (!Buffer.isBuffer(loc.text)) throw new RowError(`column text: expected a blob but found a ${typeof loc.text}`);
    text = loc.text;
  } else {
    const data = page(loc.pageId!);
    const at = loc.offset!;
    if (!Number.isSafeInteger(at) || at < 0 || at + loc.bytes > data.length) {
      throw new RowError(`its text (${loc.bytes} bytes at offset ${at}) lies outside page ${loc.pageId} (${data.length} bytes)`);
    }
    text = data.subarray(at, at + loc.bytes);
  }
  if (!isUtf8(text)) throw new RowError(`its text${loc.pageId === null ? '' : ` in page ${loc.pageId}`} is not valid UTF-8`);
  return text.toString('utf8');
}

/** Where an item's text lives: raw in its row, or at `offset` in a page. */
export interface TextLocation {
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
  readonly #codec: Compression;
  readonly #cache = new Map<number, Buffer>();
  readonly #sql;
  /** Rows left out at open (`onCorrupt: 'skip'`): never sealed, repacked or counted as pending. */
  readonly #quarantined = new Set<number>();
  /** Pages found damaged, with why: not decoded again. */
  readonly #bad = new Map<number, PageError>();
  /** Pages of schema version 1 (no checksum) that decoded to their raw_bytes, with their CRC-32. */
  readonly #verified = new Map<number, number>();
  /** Raw bytes waiting in item rows. */
  pendingBytes = 0;

  /** `checksums`: whether the pages table has its checksum column (a version-1 file opened read-only has not). */
  constructor(db: BetterSqlite3.Database, codec: Compression, checksums: boolean) {
    this.#codec = codec;
    this.#sql = {
      page: db.prepare<[number], PageRow>(`SELECT codec, raw_bytes, ${checksums ? 'checksum' : 'NULL AS checksum'}, data FROM pages WHERE id = ?`),
      pending: db.prepare<[], { seq: number; text: Buffer }>('SELECT seq, text FROM items WHERE text IS NOT NULL ORDER BY seq'),
      pendingSizes: db.prepare<[], { seq: number; n: number }>('SELECT seq, length(text) AS n FROM items WHERE text IS NOT NULL'),
      // Writes, prepared only where the column exists (a version-1 file opened read-only is never written).
      insertPage: checksums ? db.prepare<[string, number, number, Buffer]>('INSERT INTO pages (codec, raw_bytes, checksum, data) VALUES (?, ?, ?, ?)') : undefined,
      setChecksum: checksums ? db.prepare<[number, number]>('UPDATE pages SET checksum = ? WHERE id = ? AND checksum IS NULL') : undefined,
      point: db.prepare<[number, number, number]>('UPDATE items SET text = NULL, page_id = ?, page_offset = ? WHERE seq = ?'),
      unpage: db.prepare<[Buffer, number]>('UPDATE items SET text = ?, page_id = NULL, page_offset = NULL WHERE seq = ?'),
      pageItems: db.prepare<[number], { seq: number; bytes: number; page_offset: number }>('SELECT seq, bytes, page_offset FROM items WHERE page_id = ?'),
      deletePage: db.prepare<[number]>('DELETE FROM pages WHERE id = ?'),
      live: db.prepare<[], { id: number; raw_bytes: number; live: number | null }>(
        'SELECT p.id, p.raw_bytes, (SELECT SUM(bytes) FROM items i WHERE i.page_id = p.id) AS live FROM pages p',
      ),
      totals: db.prepare<[], { raw: number | null; stored: number | null }>('SELECT SUM(raw_bytes) AS raw, SUM(length(data)) AS stored FROM pages'),
    };
    this.reset();
  }

  /**
   * The text of item `seq` at `loc`.
   * @throws {@link PageError} when its page is damaged, {@link RowError} when its text is not
   * where its row says or is not UTF-8.
   */
  read(loc: TextLocation): string {
    return readText(loc, (id) => this.#page(id));
  }

  /** Leaves these rows out of every page operation from now on (see `#quarantined`). */
  quarantine(seqs: Iterable<number>): void {
    for (const seq of seqs) this.#quarantined.add(seq);
    this.reset();
  }

  /** Takes rows back from quarantine (once they are deleted). */
  release(seqs: Iterable<number>): void {
    for (const seq of seqs) this.#quarantined.delete(seq);
    this.reset();
  }

  /**
   * Gives the version-1 pages verified so far their checksum (call inside a transaction);
   * returns how many.
   */
  recordChecksums(): number {
    for (const [id, crc] of this.#verified) this.#sql.setChecksum!.run(crc, id);
    const n = this.#verified.size;
    this.#verified.clear();
    return n;
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
   * their rows (to be packed again). Call inside a transaction after purging items. A page
   * that is damaged or holds a quarantined row stays as it is.
   */
  repack(): void {
    for (const p of this.#sql.live.all()) {
      const live = p.live ?? 0;
      if (live >= p.raw_bytes * REPACK_BELOW) continue;
      if (live > 0) {
        if (this.#bad.has(p.id)) continue;
        const items = this.#sql.pageItems.all(p.id);
        if (items.some((it) => this.#quarantined.has(it.seq))) continue;
        const page = this.#page(p.id);
        for (const it of items) {
          this.#sql.unpage.run(Buffer.from(page.subarray(it.page_offset, it.page_offset + it.bytes)), it.seq);
          this.pendingBytes += it.bytes;
        }
      }
      this.#sql.deletePage.run(p.id);
      this.#cache.delete(p.id);
      this.#bad.delete(p.id);
    }
    if (this.pendingBytes >= PAGE_BYTES) this.#seal();
  }

  totals(): PageTotals {
    const t = this.#sql.totals.get();
    return { rawBytes: (t?.raw ?? 0) + this.pendingBytes, storedBytes: (t?.stored ?? 0) + this.pendingBytes };
  }

  /** Forgets cached pages and recounts the pending bytes (at open, and after a rolled-back transaction). */
  reset(): void {
    this.#cache.clear();
    this.pendingBytes = 0;
    for (const r of this.#sql.pendingSizes.iterate()) if (!this.#quarantined.has(r.seq)) this.pendingBytes += r.n;
  }

  // Packs every pending text into one page.
  #seal(): void {
    const rows = this.#sql.pending.all().filter((r) => !this.#quarantined.has(r.seq));
    if (rows.length === 0) return;
    const raw = Buffer.concat(rows.map((r) => r.text));
    const page = encodePage(this.#codec, raw);
    const id = Number(this.#sql.insertPage!.run(page.codec, page.raw_bytes, page.checksum, page.data).lastInsertRowid);
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
    const bad = this.#bad.get(id);
    if (bad !== undefined) throw bad;
    const row = this.#sql.page.get(id);
    try {
      page = decodePage(id, row);
    } catch (err) {
      if (err instanceof PageError) this.#bad.set(id, err);
      throw err;
    }
    if (row!.checksum === null) this.#verified.set(id, crc32(row!.data as Buffer));
    this.#cache.set(id, page);
    if (this.#cache.size > CACHED_PAGES) this.#cache.delete(this.#cache.keys().next().value!);
    return page;
  }
}
