import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { MemAgent, type MemAgentOptions, MemoryPriority, MemoryType } from '../src/index';
import { openDatabase } from '../src/memory/schema';
import { describeBackends } from './support/postgres-server';

// How MemAgent meets its file: read-only on purpose or by permission, held by another
// process, and a disk that refuses writes. The child processes load the built lib/.
const lib = resolve(__dirname, '../lib/index.js');
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-memory-files-'));
  chmodSync(dir, 0o755); // an unprivileged child must reach its files
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const file = () => join(dir, `f${files++}.db`);
const open = (o: MemAgentOptions) => new MemAgent({ sweepIntervalMs: 0, dedupThreshold: 2, ...o });
const prose = (i: number) => `Entry ${i}: the keepers wrote down what capybara group ${i % 9} ate near the river, and where it slept after the rain.`;

async function filled(path: string, n: number): Promise<string[]> {
  const m = open({ path });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await m.storeMemory(prose(i), MemoryType.EPISODIC, MemoryPriority.LOW, ['river']));
  await m.close();
  return ids;
}

/** Writes a CommonJS script that gets `lib`'s exports as `core` and runs `body` in an async function. */
function script(body: string): string {
  const path = join(dir, `child-${files++}.cjs`);
  writeFileSync(path, `const core = require(${JSON.stringify(lib)});\n(async () => {\n${body}\n})().catch((e) => { console.log('UNCAUGHT ' + e.stack); process.exit(3); });\n`);
  chmodSync(path, 0o644);
  return path;
}

/** The message of what `f` throws (or rejects with). */
async function message(f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (err) {
    return (err as Error).message;
  }
  return 'no error';
}

// Read-only opens on both stores. What differs, as documented at MemAgentOptions.readonly: a
// read-only SQLite file is read as it was at open and keeps writers out until its readers close;
// PostgreSQL is shared by design, so a writer opens beside readers and they follow its writes.
describeBackends('MemAgent: opened read-only', (backend) => {
  let stores = 0;
  const openAt = (at: string | undefined, o: MemAgentOptions = {}) => backend.open({ sweepIntervalMs: 0, dedupThreshold: 2, ...o }, at);
  const rows = (at: string) => backend.sql(at, 'SELECT id, last_accessed, access_count, tags FROM {items} WHERE deleted_at IS NULL ORDER BY seq');

  it('retrieves, rejects every write naming the store, writes nothing, and shares the store with other readers', async () => {
    const at = `ro${stores++}`;
    const w = await openAt(at);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await w.storeMemory(prose(i), MemoryType.EPISODIC, MemoryPriority.LOW, ['river']));
    await w.close();
    const id = ids[0]!;
    const before = await rows(at);
    const file = backend.name === 'sqlite' ? readFileSync(backend.label(at)) : undefined;
    const a = await openAt(at, { readonly: true });
    const b = await openAt(at, { readonly: true }); // read-only MemAgents share a store
    const r = await a.retrieveMemory({ queryText: 'Entry 0 keepers', topK: 1 });
    expect(r.chunks.map((c) => c.id)).toEqual([id]);
    expect(a.getMemory(id)?.accessCount).toBe(1); // kept in memory
    expect(b.getMetrics().items).toBe(3);
    const refused = (method: string) => `MemAgent: ${backend.label(at)} is open read-only (options.readonly): ${method} would write to it`;
    expect(await message(() => a.storeMemory('new', MemoryType.WORKING, MemoryPriority.LOW))).toBe(refused('storeMemory'));
    expect(await message(() => a.updateMemory(id, { pinned: true }))).toBe(refused('updateMemory'));
    expect(await message(() => a.deleteMemory(id))).toBe(refused('deleteMemory'));
    expect(await message(() => a.sweep())).toBe(refused('sweep'));
    expect(await message(() => a.discardCorrupt())).toBe(refused('discardCorrupt'));
    if (backend.name === 'sqlite') {
      // A writer would change the file under the readers' indexes: it is refused while they hold it.
      expect(await message(() => openAt(at))).toBe(`MemAgent: ${backend.label(at)} is already open in another MemAgent of this process: one MemAgent writes a file at a time, until its close()`);
    } else {
      // Shared by design: a writer opens beside the readers, and they see its writes at their next refresh.
      const writer = await openAt(at);
      const added = await writer.storeMemory('a note the readers did not have', MemoryType.WORKING, MemoryPriority.LOW);
      await writer.deleteMemory(added);
      await writer.close();
      expect(await b.refresh()).toBe(true);
      expect(b.getMemory(added)).toBeNull();
      expect((await b.getHistory(added)).map((e) => e.event)).toEqual(['ADD', 'DELETE']);
    }
    await a.close();
    await b.close();
    expect(await rows(at)).toEqual(before); // no access statistics written
    if (file !== undefined) expect(readFileSync(backend.label(at)).equals(file)).toBe(true);
    const again = await openAt(at);
    expect(again.getMemory(id)?.accessCount).toBe(0);
    await again.close();
    expect(await message(() => openAt(undefined, { readonly: true }))).toMatch(
      backend.name === 'sqlite'
        ? /^Expected options\.path with options\.readonly \(an in-memory MemAgent has nothing to read\) but received no path$/
        : /^MemAgent: PostgreSQL at .* schema 'fresh_\d+' holds no MemAgent store: there is nothing to open read-only$/,
    );
    expect(await message(() => openAt(`ro${stores++}`, { readonly: 'yes' as never }))).toBe("Expected boolean for options.readonly but received 'yes' of type string");
  });

  it.skipIf(backend.name === 'sqlite')('fails no retrieval when the access statistics cannot be written (PostgreSQL refuses them; SQLite: the full-disk test below)', async () => {
    const at = `ro${stores++}`;
    const m = await openAt(at);
    for (let i = 0; i < 20; i++) await m.storeMemory(prose(i), MemoryType.EPISODIC, MemoryPriority.LOW, ['river']);
    await backend.sql(at, `CREATE FUNCTION "at_${at}".no_touch() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'statistics refused'; END $$ LANGUAGE plpgsql`);
    await backend.sql(at, `CREATE TRIGGER no_touch BEFORE UPDATE ON {items} FOR EACH ROW WHEN (NEW.access_count <> OLD.access_count) EXECUTE FUNCTION "at_${at}".no_touch()`);
    const first = await m.retrieveMemory({ queryText: 'Entry 7 keepers', topK: 3 });
    const again = await m.retrieveMemory({ queryText: 'Entry 7 keepers', topK: 3 });
    expect(again.cacheHit).toBe(true);
    expect(m.getMemory(first.chunks[0]!.id)!.accessCount).toBe(2);
    // Written in the background: both retrievals' statistics go in one statement, which fails.
    await vi.waitFor(() => expect(m.getMetrics().accessWriteFailures).toBe(2));
    expect(m.getMemory(first.chunks[0]!.id)!.accessCount).toBe(2); // kept in memory
    await m.storeMemory('a new note', MemoryType.WORKING, MemoryPriority.LOW); // writes go on
    await m.close();
    expect(await backend.sql(at, 'SELECT CAST(SUM(access_count) AS INTEGER) AS n FROM {items}')).toEqual([{ n: 0 }]);
  });
});

describeBackends('MemAgent: access statistics', (backend) => {
  it('repeated retrievals add up in the store, written in batches before the next write and at close', async () => {
    const m = await backend.open({ sweepIntervalMs: 0, dedupThreshold: 2 }, 'touches');
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await m.storeMemory(prose(i), MemoryType.EPISODIC, MemoryPriority.LOW, ['river']));
    for (let i = 0; i < 7; i++) await m.retrieveMemory({ queryText: 'Entry 2 keepers', topK: 2 }); // cache hits count too
    await m.retrieveMemory({ queryText: 'capybara river rain', topK: 4 });
    await m.storeMemory('a note written after the retrievals', MemoryType.WORKING, MemoryPriority.LOW);
    for (let i = 0; i < 3; i++) await m.retrieveMemory({ queryText: 'Entry 1 keepers', topK: 1 });
    const stats = (agent: MemAgent) => ids.map((id) => [agent.getMemory(id)!.lastAccessed, agent.getMemory(id)!.accessCount]);
    const seen = stats(m);
    expect(seen.reduce((a, [, c]) => a + c!, 0)).toBe(7 * 2 + 4 + 3);
    await m.close();
    const again = await backend.open({ sweepIntervalMs: 0, dedupThreshold: 2 }, 'touches');
    expect(stats(again)).toEqual(seen);
    expect(again.getMetrics().accessWriteFailures).toBe(0);
    await again.close();
  });
});

describe('MemAgent: read-only files', () => {
  it('says a missing file cannot be opened read-only', async () => {
    expect(await message(() => open({ path: join(dir, 'absent.db'), readonly: true }))).toMatch(/^MemAgent: cannot open .*absent\.db read-only: /);
  });

  // Root may write any file: the child drops to nobody (65534) where it runs as root.
  const asRoot = process.getuid?.() === 0;
  const setpriv = asRoot && spawnSync('setpriv', ['--version']).status === 0;
  // nobody must reach the built package: a checkout under a private folder (mktemp -d) it cannot enter skips.
  const nobodyLoads =
    !asRoot || (setpriv && spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', `require(${JSON.stringify(lib)})`]).status === 0);
  it.skipIf(process.platform === 'win32' || (asRoot && !nobodyLoads))('says a file it may not write is read-only, and opens it with readonly: true (child process, unprivileged)', async () => {
    const sub = join(dir, 'shared');
    mkdirSync(sub, { mode: 0o777 });
    chmodSync(sub, 0o777);
    const path = join(sub, 'ro.db');
    const [id] = await filled(path, 3);
    chmodSync(path, 0o444);
    const locked = join(dir, 'locked-folder.db'); // writable file, folder it may not write in
    await filled(locked, 1);
    if (asRoot) chownSync(locked, 65534, 65534);
    chmodSync(locked, 0o666);
    const child = script(`
      const out = {};
      for (const [name, options] of [['rw', { path: ${JSON.stringify(path)} }], ['folder', { path: ${JSON.stringify(locked)} }]]) {
        try { new core.MemAgent({ ...options, sweepIntervalMs: 0 }); out[name] = 'opened'; } catch (e) { out[name] = e.message; }
      }
      const m = new core.MemAgent({ path: ${JSON.stringify(path)}, readonly: true, sweepIntervalMs: 0 });
      out.found = (await m.retrieveMemory({ queryText: 'Entry 0 keepers', topK: 1 })).chunks.map((c) => c.id);
      await m.close();
      console.log(JSON.stringify(out));`);
    const argv = asRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, child] : [process.execPath, child];
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      rw: `MemAgent: ${path} is read-only (this process may not write it): open it with { readonly: true } to retrieve from it, or make it writable`,
      folder:
        `MemAgent: ${locked}: its folder is read-only, and SQLite needs to create ${'locked-folder.db'}-wal and locked-folder.db-shm beside a WAL database: ` +
        'make the folder writable, or open the file with { readonly: true } once its -shm file exists',
      found: [id],
    });
  });
});

// SQLite only: one writer per file is SQLite's rule. A PostgreSQL store is shared by every process
// that opens it (memory-postgres.test.ts), and read-only opens follow its writers (above).
describe('MemAgent: a file another process holds', () => {
  it('fails at once with an error naming the file, instead of blocking the event loop for busy_timeout', async () => {
    const path = file();
    await filled(path, 2);
    const child = spawn(process.execPath, [script(`new core.MemAgent({ path: ${JSON.stringify(path)}, sweepIntervalMs: 0 }); console.log('holding'); setInterval(() => {}, 1000);`)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((done) => child.once('exit', done));
    try {
      await new Promise<void>((holding, failed) => {
        child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('holding') && holding());
        child.once('exit', () => failed(new Error('the child exited before holding the file')));
      });
      const held = `MemAgent: ${path} is held by another process (a MemAgent there has it open): one MemAgent writes a file at a time, until its close()`;
      expect(await message(() => open({ path }))).toBe(held);
      expect(await message(() => open({ path, readonly: true }))).toBe(held);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const m = open({ path });
    expect(m.getMetrics().items).toBe(2);
    await m.close();
  });
  // Why the opens above answer at once: SQLite's busy_timeout (5 s by default) blocked each of
  // them before, with the event loop stopped. A connection that never waits for a lock is the cause.
  it('opens every connection with busy_timeout 0', () => {
    for (const readonly of [false, true]) {
      const path = file();
      if (readonly) openDatabase(path, { synchronous: 'normal', readonly: false }).close();
      const opened = openDatabase(path, { synchronous: 'normal', readonly });
      try {
        expect(opened.db.pragma('busy_timeout', { simple: true })).toBe(0);
      } finally {
        opened.close();
      }
    }
  });
});

describe('MemAgent: a disk that refuses writes', () => {
  it.skipIf(process.platform === 'win32')('retrieves anyway: access statistics are best effort (child process, ulimit -f as the full disk)', async () => {
    const path = file();
    const ids = await filled(path, 300);
    const child = script(`
      const m = new core.MemAgent({ path: ${JSON.stringify(path)}, sweepIntervalMs: 0 });
      const first = await m.retrieveMemory({ queryText: 'Entry 7 keepers', topK: 3 });
      const again = await m.retrieveMemory({ queryText: 'Entry 7 keepers', topK: 3 });
      let store = 'stored';
      try { await m.storeMemory('a new note', core.MemoryType.WORKING, core.MemoryPriority.LOW); } catch (e) { store = e.code; }
      const { accessWriteFailures } = m.getMetrics();
      console.log(JSON.stringify({ first: first.chunks.map((c) => c.id), again: again.cacheHit, count: m.getMemory(first.chunks[0].id).accessCount, accessWriteFailures, store }));
      await m.close();`);
    // Writes past 8 KiB fail (EFBIG): the file is larger already, so every write to its WAL fails, as on a full disk.
    const r = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 8; exec "${process.execPath}" "${child}"`], { encoding: 'utf8', timeout: 60_000 });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    const out = JSON.parse(r.stdout) as { first: string[]; again: boolean; count: number; accessWriteFailures: number; store: string };
    expect(out).toEqual({ first: [ids[7], expect.any(String), expect.any(String)], again: true, count: 2, accessWriteFailures: 2, store: expect.stringMatching(/^SQLITE_(IOERR|FULL)/) });
    const db = new Database(path, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(db.prepare('SELECT SUM(access_count) AS n FROM items').get()).toEqual({ n: 0 });
    db.close();
  });
});
