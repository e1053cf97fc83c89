/**
 * MemAgent on PostgreSQL (issue 19) beyond the shared suites (memory-store, memory-close run on
 * both stores): several MemAgents and processes on one database — deduplication and capacity
 * under concurrency, three child processes (lib/) with one SIGKILLed mid-write, the database
 * killed and restarted — and the checks an open makes. A real server, started here.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MemAgent, type MemAgentOpenOptions, MemoryPriority, MemoryType } from '../src/index';
import { hasPostgres, type PostgresServer, postgresSkipReason, startPostgres } from './support/postgres-server';

if (!hasPostgres) console.warn(`memory-postgres.test.ts skipped: ${postgresSkipReason}`);

const words = { countTokens: (t: string) => t.split(/\s+/).filter(Boolean).length };

describe('MemAgent.open options', () => {
  it('rejects bad PostgreSQL options, naming them, before connecting', async () => {
    await expect(MemAgent.open({ postgres: {} })).rejects.toThrow(
      new TypeError('Expected options.postgres.connectionString or options.postgres.pool but received neither'),
    );
    await expect(MemAgent.open({ postgres: { connectionString: 'postgres://x', pool: {} as never } })).rejects.toThrow(
      new TypeError('Expected one of options.postgres.connectionString and options.postgres.pool but received both'),
    );
    await expect(MemAgent.open({ path: 'm.db', postgres: { connectionString: 'postgres://x' } })).rejects.toThrow(
      new TypeError("Expected undefined with options.postgres (the items live in PostgreSQL) for options.path but received 'm.db' of type string"),
    );
    await expect(MemAgent.open({ postgres: { connectionString: 'postgres://x', schema: 'a;drop' } })).rejects.toThrow(
      new RangeError("Expected a plain identifier (letters, digits, _; at most 63) for options.postgres.schema but received 'a;drop' of type string"),
    );
    await expect(MemAgent.open({ maxTokens: 0, postgres: { connectionString: 'postgres://x' } })).rejects.toThrow(/options\.maxTokens/);
    await expect(MemAgent.open({ postgres: { connectionString: 'postgres://x', colour: 1 } as never })).rejects.toThrow(/Unknown option 'colour' in options\.postgres/);
  });

  it('opens SQLite without postgres', async () => {
    const m = await MemAgent.open({ sweepIntervalMs: 0 });
    expect(await m.refresh()).toBe(false);
    await m.close();
  });
});

describe.skipIf(!hasPostgres)('MemAgent on PostgreSQL, shared', () => {
  let pg: PostgresServer;
  let url: string;
  let n = 0;
  beforeAll(async () => {
    pg = await startPostgres({ fsync: false });
    url = await pg.createDatabase('shared');
  });
  afterAll(async () => {
    await pg?.stop();
  });
  const agents: MemAgent[] = [];
  const open = async (schema: string, o: MemAgentOpenOptions = {}) => {
    const m = await MemAgent.open({ sweepIntervalMs: 0, tokenizer: words, ...o, postgres: { connectionString: url, schema, ...o.postgres } });
    agents.push(m);
    return m;
  };
  afterAll(async () => {
    await Promise.all(agents.map((m) => m.close()));
  });

  it('creates the schema once however many processes open at once, and refuses what it cannot trust', async () => {
    const s = `schema_${n++}`;
    const opened = await Promise.all(Array.from({ length: 4 }, () => open(s)));
    await opened[0]!.storeMemory('one store for all four', MemoryType.SEMANTIC, MemoryPriority.LOW);
    await opened[3]!.refresh();
    expect(opened[3]!.getMetrics().items).toBe(1);
    const { Client } = await import('pg');
    const c = new Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(`UPDATE ${s}.memagent_meta SET value = '99' WHERE key = 'schema_version'`);
      await expect(open(s)).rejects.toThrow(
        new RegExp(`^MemAgent: PostgreSQL at 127\\.0\\.0\\.1:\\d+/shared \\(schema '${s}'\\) schema '${s}' has schema version 99, newer than this @capibara/core understands \\(1\\); upgrade the package$`),
      );
      await c.query(`UPDATE ${s}.memagent_meta SET value = '1' WHERE key = 'schema_version'`);
      const dims = { dimensions: 8, embed: (texts: string[]) => texts.map(() => new Float32Array(8).fill(1)) };
      await expect(open(s, { embedder: dims })).rejects.toThrow(/holds 384-dimensional embeddings but the embedder makes 8: open it with the embedder it was filled with$/);
      await c.query('CREATE SCHEMA other; CREATE TABLE other.users (id int)');
      await expect(open('other')).rejects.toThrow(/schema 'other' holds tables of something else \(users\); refusing to use it$/);
      await expect(open('empty_one', { readonly: true })).rejects.toThrow(/schema 'empty_one' holds no MemAgent store: there is nothing to open read-only$/);
    } finally {
      await c.end();
    }
    const ro = await open(s, { readonly: true });
    expect(ro.getMetrics().items).toBe(1);
    await expect(ro.storeMemory('x', MemoryType.SEMANTIC, MemoryPriority.LOW)).rejects.toThrow(/^MemAgent: PostgreSQL at .* is open read-only \(options\.readonly\): storeMemory would write to it$/);
  });

  it('stores the same text once when two MemAgents store it at once', async () => {
    const s = `dedup_${n++}`;
    const [a, b] = [await open(s), await open(s)];
    const texts = Array.from({ length: 25 }, (_, i) => `the capybara fact number ${i} told twice`);
    const ids = await Promise.all(texts.flatMap((t, i) => [
      a.storeMemory(t, MemoryType.SEMANTIC, MemoryPriority.LOW, [`a${i}`]),
      b.storeMemory(t.toUpperCase(), MemoryType.SEMANTIC, MemoryPriority.LOW, [`b${i}`]),
    ]));
    for (let i = 0; i < texts.length; i++) expect(ids[2 * i]).toBe(ids[2 * i + 1]);
    await a.refresh();
    expect(a.getMetrics().items).toBe(25);
    expect(a.getMemory(ids[0]!)!.tags.sort()).toEqual(['a0', 'b0']);
    const history = await b.getHistory(ids[0]!);
    expect(history.map((e) => [e.event, e.reason])).toEqual([['ADD', null], ['UPDATE', 'duplicate']]);
    // A third process opening later sees exactly the same.
    const c = await open(s);
    expect(c.getMetrics()).toMatchObject({ items: 25, tokensUsed: a.getMetrics().tokensUsed });
  });

  it('keeps capacity under concurrent writers: never over maxTokens, nothing evicted twice', async () => {
    const s = `cap_${n++}`;
    const maxTokens = 60;
    const writers = await Promise.all([open(s, { maxTokens, dedupThreshold: 2 }), open(s, { maxTokens, dedupThreshold: 2 }), open(s, { maxTokens, dedupThreshold: 2 })]);
    const stored = await Promise.all(writers.flatMap((m, w) => Array.from({ length: 30 }, (_, i) => m.storeMemory(`writer ${w} note ${i} five`, MemoryType.EPISODIC, MemoryPriority.LOW))));
    expect(new Set(stored).size).toBe(90);
    const check = await open(s, { maxTokens });
    const m = check.getMetrics();
    expect(m.tokensUsed).toBeLessThanOrEqual(maxTokens);
    expect(m.items).toBe(12); // 5 tokens each
    const evicted = writers.reduce((a, w) => a + w.getMetrics().evicted, 0);
    expect(evicted).toBe(90 - 12);
    for (const id of stored) {
      const deletes = (await check.getHistory(id)).filter((e) => e.event === 'DELETE');
      expect(deletes.length).toBeLessThanOrEqual(1);
      expect(deletes.length === 0).toBe(check.getMemory(id) !== null);
    }
  });

  it('shares updates, deletes and access statistics between processes', async () => {
    const s = `share_${n++}`;
    const [a, b] = [await open(s), await open(s)];
    const id = await a.storeMemory('the keeper feeds the capybaras at noon', MemoryType.PROCEDURAL, MemoryPriority.MEDIUM, ['zoo'], { scope: { userId: 'u1' } });
    const found = await b.retrieveMemory({ queryText: 'when are capybaras fed', scope: { userId: 'u1' } });
    expect(found.chunks.map((c) => c.id)).toEqual([id]);
    await b.updateMemory(id, { content: 'the keeper feeds the capybaras at one', tags: ['zoo', 'moved'] });
    await a.refresh();
    expect(a.getMemory(id)).toMatchObject({ content: 'the keeper feeds the capybaras at one', tags: ['zoo', 'moved'] });
    expect((await a.retrieveMemory({ queryText: 'capybaras fed at one' })).chunks[0]!.explain.bm25.raw).toBeGreaterThan(0);
    await b.refresh();
    expect(b.getMemory(id)!.accessCount).toBeGreaterThanOrEqual(1);
    expect(await a.deleteMemory(id)).toBe(true);
    expect((await b.retrieveMemory({ queryText: 'capybaras' })).chunks).toEqual([]);
    expect(b.getMemory(id)).toBeNull();
  });

  it('a write the database refuses at commit leaves nothing behind, in the database or in the view', async () => {
    const s = `refuse_${n++}`;
    const m = await open(s, { dedupThreshold: 2 });
    const kept = await m.storeMemory('kept before', MemoryType.SEMANTIC, MemoryPriority.LOW, ['ok']);
    const { Client } = await import('pg');
    const c = new Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(`CREATE FUNCTION ${s}.refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'no booms here'; END $$ LANGUAGE plpgsql;
        CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON ${s}.memagent_items FOR EACH ROW WHEN (NEW.tags LIKE '%boom%') EXECUTE FUNCTION ${s}.refuse()`);
    } finally {
      await c.end();
    }
    await expect(m.storeMemory('refused text', MemoryType.SEMANTIC, MemoryPriority.LOW, ['boom'])).rejects.toThrow(
      /^MemAgent\.storeMemory: PostgreSQL at .* refused it: no booms here; nothing was written$/,
    );
    // The write path had already added it to this process's view: the next call rebuilds the view.
    await expect(m.updateMemory(kept, { tags: ['ok', 'boom'] })).rejects.toThrow(/refused it: no booms here/);
    expect((await m.retrieveMemory({ queryText: 'refused text' })).chunks.map((x) => x.content)).toEqual(['kept before']);
    expect(m.getMetrics().items).toBe(1);
    expect(m.getMemory(kept)!.tags).toEqual(['ok']);
    const next = await m.storeMemory('stored after', MemoryType.SEMANTIC, MemoryPriority.LOW);
    expect(m.getMemory(next)!.content).toBe('stored after');
    expect((await m.getHistory(kept)).map((e) => e.event)).toEqual(['ADD']);
  });

  it('fails calls clearly while the database is down, loses nothing acknowledged, and resumes', async () => {
    const own = await startPostgres({ fsync: true });
    try {
      const dbUrl = await own.createDatabase('down');
      const m = await MemAgent.open({ sweepIntervalMs: 0, postgres: { connectionString: dbUrl, connectTimeoutMs: 1000, queryTimeoutMs: 2000 } });
      try {
        const before = await m.storeMemory('stored before the crash', MemoryType.SEMANTIC, MemoryPriority.HIGH);
        await own.kill();
        await expect(m.storeMemory('stored while down', MemoryType.SEMANTIC, MemoryPriority.LOW)).rejects.toThrow(
          /^MemAgent\.storeMemory: PostgreSQL at 127\.0\.0\.1:\d+\/down \(schema 'public'\) is not reachable or the connection broke \(.*\); nothing was (sent|written)$/,
        );
        await expect(m.retrieveMemory({ queryText: 'crash' })).rejects.toThrow(/^MemAgent\.retrieveMemory: PostgreSQL at .* is not reachable/);
        await own.restart();
        const after = await m.storeMemory('stored after the restart', MemoryType.SEMANTIC, MemoryPriority.LOW);
        const r = await m.retrieveMemory({ queryText: 'stored' });
        expect(r.chunks.map((c) => c.id).sort()).toEqual([before, after].sort());
        const again = await MemAgent.open({ sweepIntervalMs: 0, postgres: { connectionString: dbUrl } });
        expect(again.getMetrics().items).toBe(2);
        expect(again.getMemory(before)!.content).toBe('stored before the crash');
        await again.close();
      } finally {
        await m.close();
      }
    } finally {
      await own.stop();
    }
  });

  it('a connection that breaks between checkout and its first query does not crash the process', async () => {
    // The race seen when the server dies: the pool hands out an idle connection whose reset
    // arrives before the store's first query on it, and the connection emits 'error'.
    const { Pool } = await import('pg');
    const pool = new Pool({ connectionString: url, max: 4 });
    pool.on('error', () => undefined);
    const connect = pool.connect.bind(pool) as () => Promise<import('pg').PoolClient>;
    let emitted = 0;
    (pool as { connect: unknown }).connect = async () => {
      const c = await connect();
      setImmediate(() => {
        c.emit('error', new Error('read ECONNRESET'));
        emitted++;
      });
      return c;
    };
    const m = await MemAgent.open({ sweepIntervalMs: 0, postgres: { pool, schema: `reset_${n++}` } });
    try {
      const id = await m.storeMemory('stored over a connection that reported a reset', MemoryType.SEMANTIC, MemoryPriority.LOW);
      expect(m.getMemory(id)!.content).toBe('stored over a connection that reported a reset');
      expect(emitted).toBeGreaterThan(0);
    } finally {
      await m.close();
      await pool.end();
    }
  });

  it('three processes share one memory; one SIGKILLed mid-write loses nothing it reported', async () => {
    const s = `procs_${n++}`;
    const lib = path.resolve(__dirname, '../lib/index.js');
    // Each child stores items for three users, printing "stored <id> <i>" once each resolves; on
    // "read" it refreshes and prints which writers' items it sees for every user.
    const code = (w: number, count: number) => `
      const { MemAgent, MemoryType, MemoryPriority } = require(${JSON.stringify(lib)});
      (async () => {
        const m = await MemAgent.open({ sweepIntervalMs: 0, dedupThreshold: 2, postgres: { connectionString: ${JSON.stringify(url)}, schema: ${JSON.stringify(s)} } });
        // The same text from every process, at about the same time: stored once.
        process.stdout.write('shared ' + (await m.storeMemory('The fact every writer knows', MemoryType.SEMANTIC, MemoryPriority.HIGH, ['all'])) + '\\n');
        for (let i = 0; i < ${count}; i++) {
          const id = await m.storeMemory('writer ${w} remembers item ' + i + ' for user u' + (i % 3), MemoryType.EPISODIC, MemoryPriority.LOW, ['w${w}'], { scope: { userId: 'u' + (i % 3) } });
          process.stdout.write('stored ' + id + ' ' + i + '\\n');
        }
        process.stdout.write('done\\n');
        process.stdin.once('data', async () => {
          const seen = {};
          for (const u of ['u0', 'u1', 'u2']) {
            const r = await m.retrieveMemory({ scope: { userId: u }, topK: 10000, maxTokens: 1e9 });
            seen[u] = [...new Set(r.chunks.flatMap((c) => c.tags))].sort();
          }
          process.stdout.write('seen ' + JSON.stringify(seen) + '\\n');
          await m.close();
        });
      })().catch((e) => { console.error(e); process.exit(1); });`;
    await open(s); // creates the schema before the children race to
    const reported = new Map<string, number>();
    const shared: string[] = [];
    const children: Array<{ child: ChildProcess; lines: string[]; done: Promise<void>; seen: Promise<string> }> = [];
    for (let w = 0; w < 3; w++) {
      const child = spawn(process.execPath, ['-e', code(w, w === 0 ? 100_000 : 60)], { stdio: ['pipe', 'pipe', 'pipe'] });
      const lines: string[] = [];
      let buf = '';
      let err = '';
      let doneResolve!: () => void;
      let seenResolve!: (s: string) => void;
      const done = new Promise<void>((r) => (doneResolve = r));
      const seen = new Promise<string>((r) => (seenResolve = r));
      child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
      child.stdout!.on('data', (c: Buffer) => {
        buf += c.toString();
        const parts = buf.split('\n');
        buf = parts.pop()!;
        for (const l of parts) {
          lines.push(l);
          if (l.startsWith('stored ')) reported.set(l.split(' ')[1]!, w);
          if (l.startsWith('shared ')) shared.push(l.slice(7));
          if (l === 'done') doneResolve();
          if (l.startsWith('seen ')) seenResolve(l.slice(5));
          // Writer 0 dies mid-stream, with writes in flight, once it has stored 40.
          if (w === 0 && l.startsWith('stored ') && l.endsWith(' 40')) child.kill('SIGKILL');
        }
      });
      child.on('exit', (code, signal) => {
        if (code === 0 || signal === 'SIGKILL') return;
        // A child that failed ends the waits with its error, so the test fails at once, saying why.
        doneResolve();
        seenResolve(`exit ${code}: ${err}`);
      });
      children.push({ child, lines, done, seen });
    }
    await Promise.all([children[1]!.done, children[2]!.done]);
    if (children[0]!.child.exitCode === null && children[0]!.child.signalCode === null) await new Promise((r) => children[0]!.child.once('exit', r));
    expect(children[0]!.child.signalCode).toBe('SIGKILL');
    for (const w of [1, 2]) children[w]!.child.stdin!.write('read\n');
    const seen = await Promise.all([children[1]!.seen, children[2]!.seen]);
    for (const s1 of seen) {
      expect(JSON.parse(s1)).toEqual({ u0: ['w0', 'w1', 'w2'], u1: ['w0', 'w1', 'w2'], u2: ['w0', 'w1', 'w2'] });
    }
    // Every write a child reported is there, once.
    const check = await open(s);
    const all = await check.retrieveMemory({ topK: 100_000, maxTokens: 1e9 });
    const ids = all.chunks.map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const [id] of reported) expect(check.getMemory(id)).not.toBeNull();
    expect(shared).toHaveLength(3);
    expect(new Set(shared).size).toBe(1);
    expect(all.chunks.filter((c) => c.content === 'The fact every writer knows').map((c) => c.id)).toEqual([shared[0]]);
    const byWriter = [0, 1, 2].map((w) => all.chunks.filter((c) => c.tags.includes(`w${w}`)).length);
    expect(byWriter[1]).toBe(60);
    expect(byWriter[2]).toBe(60);
    // Writer 0: at least what it reported; at most one more (the write in flight may have committed).
    const w0 = [...reported.values()].filter((w) => w === 0).length;
    expect(byWriter[0]).toBeGreaterThanOrEqual(w0);
    expect(byWriter[0]).toBeLessThanOrEqual(w0 + 1);
    const contents = all.chunks.map((c) => c.content);
    expect(new Set(contents).size).toBe(contents.length);
  });
});
