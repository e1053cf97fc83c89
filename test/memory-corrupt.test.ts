import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import Database from 'better-sqlite3';
import { MemAgent, MemAgentCorruptionError, type MemAgentOptions, MemoryPriority, MemoryType } from '../src/index';
import { describeBackends } from './support/postgres-server';
import { underAsan } from './support/sanitizer';

// Under the sanitizer run (ASan preloaded) `ulimit -v` cannot be used: ASan's shadow memory needs
// terabytes of address space and aborts at start. The release run covers these two.

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-memory-corrupt-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const file = () => join(dir, `c${files++}.db`);
const open = (o: MemAgentOptions) => new MemAgent({ sweepIntervalMs: 0, dedupThreshold: 2, ...o });
const prose = (i: number) =>
  `Entry ${i}: the capybara colony near the river moved ${i % 7} times this season, and the keepers wrote down ` +
  `what each group ate, where it slept and how the young ones grew. Note ${i} repeats the usual observations.`;

/** A closed file of `n` items: the first ones sealed into pages, the last ones still raw in their rows. */
async function filled(compression: 'lz4' | 'gzip' | 'none', n = 400): Promise<{ path: string; ids: string[] }> {
  const path = file();
  const m = open({ path, compression });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await m.storeMemory(prose(i), MemoryType.EPISODIC, MemoryPriority.MEDIUM, [`t${i % 5}`]));
  await m.close();
  return { path, ids };
}

/** Runs `sql` on the closed file (as a damaged disk or a bad copy would leave it) and returns what a query gives. */
function tamper<T = unknown>(path: string, body: (db: Database.Database) => T): T {
  const db = new Database(path);
  try {
    return body(db);
  } finally {
    db.close();
  }
}
const onPage = (path: string, page: number) =>
  tamper(path, (db) => (db.prepare('SELECT seq, id FROM items WHERE page_id = ? ORDER BY seq').all(page) as Array<{ seq: number; id: string }>));

describe('MemAgent: a corrupt LZ4 page', () => {
  const lib = resolve(__dirname, '../lib/index.js');

  /** Opens `path` in a child whose address space is limited to ~2.9 GB, and returns what it printed and how it ended. */
  function openLimited(path: string, options: object) {
    const script = join(dir, `open-${files++}.cjs`);
    writeFileSync(
      script,
      `const { MemAgent } = require(${JSON.stringify(lib)});
       try {
         const m = new MemAgent({ path: ${JSON.stringify(path)}, sweepIntervalMs: 0, ...${JSON.stringify(options)} });
         console.log(JSON.stringify({ items: m.getMetrics().items, corrupt: m.corrupt }));
       } catch (err) {
         console.log(JSON.stringify({ error: err.name + ': ' + err.message }));
       }`,
    );
    const r = spawnSync('bash', ['-c', `ulimit -v 3000000; exec "${process.execPath}" "${script}"`], { encoding: 'utf8', timeout: 60_000 });
    return { signal: r.signal, status: r.status, out: r.stdout.trim(), err: r.stderr.slice(-2000) };
  }

  it.skipIf(underAsan)('ends in a clear error, not an abort, when its size prefix claims 4 GiB (child process, ulimit -v 3000000)', async () => {
    const { path } = await filled('lz4');
    const victims = onPage(path, 1);
    expect(victims.length).toBeGreaterThan(0);
    tamper(path, (db) => {
      const { data } = db.prepare('SELECT data FROM pages WHERE id = 1').get() as { data: Buffer };
      data.writeUInt32LE(0xffffffff, 0);
      db.prepare('UPDATE pages SET data = ? WHERE id = 1').run(data);
    });
    const strict = openLimited(path, {});
    expect({ signal: strict.signal, status: strict.status, err: strict.err }).toEqual({ signal: null, status: 0, err: '' });
    expect(JSON.parse(strict.out)).toEqual({
      error:
        `MemAgentCorruptionError: MemAgent: ${path}: item ${victims[0]!.id} (row ${victims[0]!.seq}) is unreadable: page 1: ` +
        `checksum mismatch (its stored bytes changed since they were written); open with { onCorrupt: 'skip' } to load every intact item and report the rest`,
    });
    const skipped = openLimited(path, { onCorrupt: 'skip' });
    expect({ signal: skipped.signal, status: skipped.status }).toEqual({ signal: null, status: 0 });
    const report = JSON.parse(skipped.out) as { items: number; corrupt: Array<{ row: number; id: string; page: number; reason: string }> };
    expect(report.items).toBe(400 - victims.length);
    expect(report.corrupt).toEqual(victims.map((v) => ({ row: v.seq, id: v.id, page: 1, reason: 'page 1: checksum mismatch (its stored bytes changed since they were written)' })));
  }, 120_000);

  it.skipIf(underAsan)('allocates nothing from the claimed size even when the page row agrees with it and the checksum matches', async () => {
    const { path } = await filled('lz4');
    const victims = onPage(path, 2);
    const stored = tamper(path, (db) => {
      const { data } = db.prepare('SELECT data FROM pages WHERE id = 2').get() as { data: Buffer };
      data.writeUInt32LE(0xffffffff, 0);
      db.prepare('UPDATE pages SET data = ?, raw_bytes = ?, checksum = ? WHERE id = 2').run(data, 0xffffffff, crc32(data));
      return data.length;
    });
    const r = openLimited(path, {});
    expect({ signal: r.signal, status: r.status, err: r.err }).toEqual({ signal: null, status: 0, err: '' });
    expect(JSON.parse(r.out)).toEqual({
      error:
        `MemAgentCorruptionError: MemAgent: ${path}: item ${victims[0]!.id} (row ${victims[0]!.seq}) is unreadable: page 2: ` +
        `raw_bytes 4294967295 is impossible for ${stored} stored bytes of LZ4 (at most ${256 * (stored - 4)}); open with { onCorrupt: 'skip' } to load every intact item and report the rest`,
    });
  }, 120_000);
});

// The same damage on both stores: rows and pages of PostgreSQL go through the same row codec and
// page checks as SQLite's. What only a file can suffer (its size prefix read under an address-space
// cap in a child process, above; SQLite's own integrity check) stays SQLite-only.
describeBackends('MemAgent: corrupt rows and pages', (backend) => {
  const hint = "; open with { onCorrupt: 'skip' } to load every intact item and report the rest";
  let stores = 0;
  const openAt = (at: string, o: MemAgentOptions = {}) => backend.open({ sweepIntervalMs: 0, dedupThreshold: 2, ...o }, at);
  /** A closed store of `n` items: the first ones sealed into pages, the last ones still raw in their rows. */
  async function filledAt(compression: 'lz4' | 'gzip' | 'none', n = 400): Promise<{ at: string; ids: string[] }> {
    const at = `corrupt${stores++}`;
    const m = await openAt(at, { compression });
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(await m.storeMemory(prose(i), MemoryType.EPISODIC, MemoryPriority.MEDIUM, [`t${i % 5}`]));
    await m.close();
    return { at, ids };
  }
  const pageOf = (at: string, page: number) => backend.sql<{ seq: number; id: string }>(at, 'SELECT seq, id FROM {items} WHERE page_id = $1 ORDER BY seq', [page]);
  const pageData = async (at: string, page: number) => (await backend.sql<{ data: Buffer }>(at, 'SELECT data FROM {pages} WHERE id = $1', [page]))[0]!.data;
  const rejection = (p: Promise<unknown>): Promise<Error> => p.then(() => { throw new Error('expected an error'); }, (err: Error) => err);

  it('names the store, the item and the row of a row that does not decode', async () => {
    const cases: Array<[string, unknown, string]> = [
      ['tags', '{"a":1}', `column tags: expected a JSON array of non-empty strings but found '{"a":1}'`],
      ['tags', '[1', `column tags: expected a JSON array of non-empty strings but found '[1'`],
      ['metadata', '{"k":{"deep":1}}', `column metadata: expected a JSON object of scalars and arrays of scalars but found '{"k":{"deep":1}}'`],
      ['type', 'dream', "column type: expected one of episodic, semantic, procedural, working, long_term but found 'dream'"],
      ['priority', 9, 'column priority: expected an integer in [0, 3] but found 9'],
      ['embedding', Buffer.alloc(10), 'column embedding: expected a blob of 384 bytes (one int8 per dimension) but found a blob of 10 bytes'],
      ['text', Buffer.alloc(10), `column text: expected a blob of ${Buffer.byteLength(prose(1))} bytes (the item's bytes) but found a blob of 10 bytes`],
      ['tokens', -3, 'column tokens: expected an integer >= 0 but found -3'],
    ];
    // SQLite columns take any type; PostgreSQL's bytea column cannot hold a string at all.
    if (backend.name === 'sqlite') cases.push(['text', 'a string', `column text: expected a blob of ${Buffer.byteLength(prose(1))} bytes (the item's bytes) but found a string`]);
    for (const [column, value, reason] of cases) {
      const { at, ids } = await filledAt('lz4', 3); // three items, their texts raw in their rows
      await backend.sql(at, `UPDATE {items} SET ${column} = $1 WHERE id = $2`, [value, ids[1]]);
      const [{ seq: row }] = (await backend.sql<{ seq: number }>(at, 'SELECT seq FROM {items} WHERE id = $1', [ids[1]])) as [{ seq: number }];
      const err = (await rejection(openAt(at))) as MemAgentCorruptionError;
      const path = backend.label(at);
      expect(err).toBeInstanceOf(MemAgentCorruptionError);
      expect(err.message).toBe(`MemAgent: ${path}: item ${ids[1]} (row ${row}) is unreadable: ${reason}${hint}`);
      expect({ path: err.path, row: err.row, id: err.id, page: err.page, reason: err.reason }).toEqual({ path, row, id: ids[1], page: null, reason });
    }
  });

  it('checks every page before decompressing it: a flipped byte, a size prefix claiming 4 GiB, a truncated page, a lying raw_bytes, an offset outside it', async () => {
    for (const compression of ['lz4', 'gzip', 'none'] as const) {
      const { at } = await filledAt(compression);
      const [victim] = await pageOf(at, 1);
      const data = await pageData(at, 1);
      data[data.length >> 1] ^= 0x20; // a flip in the middle: 'none' would read back altered text without the checksum
      await backend.sql(at, 'UPDATE {pages} SET data = $1 WHERE id = 1', [data]);
      expect((await rejection(openAt(at))).message).toBe(
        `MemAgent: ${backend.label(at)}: item ${victim!.id} (row ${victim!.seq}) is unreadable: page 1: checksum mismatch (its stored bytes changed since they were written)${hint}`,
      );
    }
    {
      // The page row agrees with the claim and the checksum matches: only the sizes give it away.
      const { at } = await filledAt('lz4');
      const [victim] = await pageOf(at, 2);
      const data = await pageData(at, 2);
      data.writeUInt32LE(0xffffffff, 0);
      await backend.sql(at, 'UPDATE {pages} SET data = $1, raw_bytes = $2, checksum = $3 WHERE id = 2', [data, 0xffffffff, crc32(data)]);
      expect((await rejection(openAt(at))).message).toBe(
        `MemAgent: ${backend.label(at)}: item ${victim!.id} (row ${victim!.seq}) is unreadable: page 2: ` +
          `raw_bytes 4294967295 is impossible for ${data.length} stored bytes of LZ4 (at most ${256 * (data.length - 4)})${hint}`,
      );
    }
    const { at } = await filledAt('gzip', 600);
    const [a] = await pageOf(at, 1);
    const [b] = await pageOf(at, 2);
    const [c] = await pageOf(at, 3);
    const cut = (await pageData(at, 1)).subarray(0, -40);
    await backend.sql(at, 'UPDATE {pages} SET data = $1, checksum = $2 WHERE id = 1', [cut, crc32(cut)]);
    await backend.sql(at, 'UPDATE {pages} SET raw_bytes = raw_bytes + 1 WHERE id = 2');
    await backend.sql(at, 'UPDATE {items} SET page_offset = 40000 WHERE seq = $1', [c!.seq]);
    const [{ raw_bytes: rawOf2 }] = (await backend.sql<{ raw_bytes: number }>(at, 'SELECT raw_bytes FROM {pages} WHERE id = 2')) as [{ raw_bytes: number }];
    const m = await openAt(at, { onCorrupt: 'skip' });
    const reasons = new Map(m.corrupt.map((x) => [x.row, x.reason]));
    expect(reasons.get(a!.seq)).toMatch(/^page 1: gzip data does not decode \(.+\)$/);
    expect(reasons.get(b!.seq)).toBe(`page 2: it decodes to ${rawOf2 - 1} bytes but its raw_bytes says ${rawOf2}`);
    expect(reasons.get(c!.seq)).toMatch(/^its text \(\d+ bytes at offset 40000\) lies outside page 3 \(\d+ bytes\)$/);
    await m.close();
  });

  it("onCorrupt: 'skip' keeps every intact item usable, reports the rest, and discardCorrupt() leaves a store that opens strictly", async () => {
    const { at, ids } = await filledAt('lz4');
    const onPage1 = await pageOf(at, 1);
    await backend.sql(at, 'UPDATE {pages} SET data = $1 WHERE id = 1', [(await pageData(at, 1)).subarray(0, 100)]);
    const [badRow] = (await backend.sql<{ seq: number; id: string }>(at, 'SELECT seq, id FROM {items} ORDER BY seq DESC LIMIT 1')) as [{ seq: number; id: string }];
    await backend.sql(at, "UPDATE {items} SET tags = 'oops' WHERE seq = $1", [badRow.seq]);
    const lost = new Set([...onPage1.map((r) => r.id), badRow.id]);
    const m = await openAt(at, { onCorrupt: 'skip', retainDeletedMs: 0 });
    expect(m.corrupt).toEqual([
      ...onPage1.map((r) => ({ row: r.seq, id: r.id, page: 1, reason: 'page 1: checksum mismatch (its stored bytes changed since they were written)' })),
      { row: badRow.seq, id: badRow.id, page: null, reason: "column tags: expected a JSON array of non-empty strings but found 'oops'" },
    ]);
    expect(m.getMetrics()).toMatchObject({ items: 400 - lost.size, corruptItems: lost.size });
    ids.forEach((id, i) => expect(m.getMemory(id)?.content).toBe(lost.has(id) ? undefined : prose(i)));
    const best = (await m.retrieveMemory({ queryText: 'Entry 250', topK: 1 })).chunks[0]!;
    expect(best.id).toBe(ids[250]);
    // Writes go on around the damaged rows: new pages are sealed, deletions purged and pages repacked.
    const added: string[] = [];
    for (let i = 400; i < 700; i++) added.push(await m.storeMemory(prose(i), MemoryType.EPISODIC, MemoryPriority.MEDIUM));
    for (const id of ids.slice(0, 350)) await m.deleteMemory(id);
    await m.sweep();
    expect(m.corrupt.map((c) => c.id)).toEqual([...lost]); // each reported once, whatever the writes re-read
    await m.close();
    await expect(openAt(at)).rejects.toThrow(MemAgentCorruptionError); // still there: skipping writes nothing
    const again = await openAt(at, { onCorrupt: 'skip', retainDeletedMs: 0 });
    expect(again.corrupt.map((c) => c.id)).toEqual([...lost]);
    let purged = 0;
    if (backend.name === 'postgres') {
      // Another process purges: this one then reads the whole store again, and still lists each damaged item once.
      const purger = await openAt(at, { onCorrupt: 'skip', retainDeletedMs: 0 });
      await purger.deleteMemory(added[0]!);
      await purger.sweep();
      await purger.close();
      expect(await again.refresh()).toBe(true);
      expect(again.getMemory(added[0]!)).toBeNull();
      expect(again.corrupt.map((c) => c.id)).toEqual([...lost]);
      purged = 1;
    }
    expect(await again.discardCorrupt()).toBe(lost.size);
    expect(again.corrupt).toEqual([]);
    expect((await again.getHistory(badRow.id)).at(-1)).toMatchObject({ event: 'DELETE', reason: 'corrupt', oldValue: null, newValue: null });
    await again.close();
    const clean = await openAt(at);
    expect(clean.getMetrics()).toMatchObject({ items: 50 - (lost.has(ids[399]!) ? 1 : 0) + 300 - purged, corruptItems: 0 });
    added.forEach((id, i) => expect(clean.getMemory(id)?.content).toBe(i < purged ? undefined : prose(400 + i)));
    await clean.close();
    expect(await backend.sql(at, 'SELECT COUNT(*) AS n FROM {pages} WHERE id = 1')).toEqual([{ n: 0 }]);
    if (backend.name === 'sqlite') {
      const db = new Database(backend.label(at), { readonly: true });
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      db.close();
    }
  });
});
