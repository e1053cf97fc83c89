/**
 * What MemAgent says about damaged data: the error a strict open (or a later read) throws, and
 * the report of what a tolerant open (`onCorrupt: 'skip'`) left out. Both name the file, the
 * item's row and id, and the page when the page is at fault.
 * @module
 */

/**
 * One item a MemAgent opened with `onCorrupt: 'skip'` left out because its row or its page
 * did not decode. The row stays in the file, untouched, until
 * {@link MemAgent.discardCorrupt} removes it.
 *
 * @example
 * ```ts
 * const memory = new MemAgent({ path: './memory.db', onCorrupt: 'skip' });
 * for (const c of memory.corrupt) console.warn(`item ${c.id} (row ${c.row}) lost: ${c.reason}`);
 * ```
 */
export interface CorruptItem {
  /** Its row in the `items` table (the `seq` column). */
  row: number;
  /** Its id, or null when the id column itself is unreadable. */
  id: string | null;
  /** The page holding its text when that page is at fault, else null. */
  page: number | null;
  /** What is wrong, e.g. `"page 3: checksum mismatch (its stored bytes changed since they were written)"`. */
  reason: string;
}

/**
 * A MemAgent file holds an item it cannot read: a row whose columns do not decode, or a page
 * (the compressed texts of many items) whose checksum, size or compressed data is wrong.
 * Thrown when such an item is met at open under the default `onCorrupt: 'error'`, or read
 * later (a file damaged while open). The message names the file, the item, its row and the
 * page, and says how to open the file anyway.
 *
 * @example
 * ```ts
 * try {
 *   memory = new MemAgent({ path: './memory.db' });
 * } catch (err) {
 *   if (!(err instanceof MemAgentCorruptionError)) throw err;
 *   console.warn(err.message); // "MemAgent: ./memory.db: item 5f…e1 (row 17) is unreadable: page 3: checksum mismatch …"
 *   memory = new MemAgent({ path: './memory.db', onCorrupt: 'skip' });
 * }
 * ```
 */
export class MemAgentCorruptionError extends Error {
  /** Always `'MemAgentCorruptionError'`. */
  override readonly name = 'MemAgentCorruptionError';
  /** The file (`':memory:'` for an in-memory store). */
  readonly path: string;
  /** The item's row (`seq`). */
  readonly row: number;
  /** The item's id, or null when unreadable. */
  readonly id: string | null;
  /** The page at fault, or null when the row itself is. */
  readonly page: number | null;
  /** What is wrong, as in {@link CorruptItem.reason}. */
  readonly reason: string;

  /**
   * @param path - The file.
   * @param item - The item, and what is wrong with it.
   *
   * @example
   * ```ts
   * new MemAgentCorruptionError('m.db', { row: 3, id: 'a1', page: null, reason: 'column tags: …' });
   * ```
   */
  constructor(path: string, item: CorruptItem) {
    super(
      `MemAgent: ${path}: item ${item.id ?? '(id unreadable)'} (row ${item.row}) is unreadable: ${item.reason}; ` +
        "open with { onCorrupt: 'skip' } to load every intact item and report the rest",
    );
    this.path = path;
    this.row = item.row;
    this.id = item.id;
    this.page = item.page;
    this.reason = item.reason;
  }
}

/**
 * A page that fails its checks; the store turns it into a {@link MemAgentCorruptionError}
 * for the item being read.
 * @internal
 */
export class PageError extends Error {
  constructor(
    readonly page: number,
    readonly problem: string,
  ) {
    super(`page ${page}: ${problem}`);
  }
}

/**
 * A row column that fails its check, or an item's text that lies outside its page.
 * @internal
 */
export class RowError extends Error {}

/**
 * The report entry of item `row` (`id`, when a string) that failed with `err`; anything but a
 * {@link PageError} or {@link RowError} is not corruption and is rethrown.
 * @internal
 */
export function corruptItem(row: number, id: unknown, err: unknown): CorruptItem {
  if (err instanceof PageError) return { row, id: typeof id === 'string' ? id : null, page: err.page, reason: err.message };
  if (err instanceof RowError) return { row, id: typeof id === 'string' ? id : null, page: null, reason: err.message };
  throw err;
}
