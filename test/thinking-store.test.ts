import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import {
  MemoryThinkingStore, MultiRoundThinking, SqliteThinkingStore, type ThinkingRoundRecord, type ThinkingSession, type ThinkingStore, type ThinkingSynthesis,
} from '../src/index';
import { ScriptedGenerator } from './support/scripted-generator';

let dir: string;
let n = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-thinking-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = () => join(dir, `t${n++}.db`);

const session = (id: string): ThinkingSession => ({
  id, problem: `problem ${id}`, status: 'active', maxRounds: 3, tokenBudget: null, thinkingMode: null, reasoningType: null, rounds: [], tokensUsed: 0,
  durationMs: 0, createdAt: 1_700_000_000_000,
});
const round = (k: number, extra: Partial<ThinkingRoundRecord> = {}): ThinkingRoundRecord => ({
  round: k, thinkingMode: null, modeUsed: null, reasoningType: null, prompt: `p${k}`, thinking: `t${k}`, answer: ` a${k}`, thinkingTokens: 10 * k,
  answerTokens: k, finishReason: 'eos', thinkingForcedEnd: false, minThinkingReached: true, continuationsUsed: 0, thinkingCap: 100, startedAt: 1_700_000_000_000 + k,
  durationMs: 1.5 * k, ...extra,
});
const synthesis: ThinkingSynthesis = { finalAnswer: 'a2', finalRound: 2, confidence: 0.5, answerLogprob: -0.25, votes: [{ answer: 'a2', rounds: [2] }, { answer: 'a1', rounds: [1] }] };

const STORES: Array<[string, () => ThinkingStore, string]> = [
  ['MemoryThinkingStore', () => new MemoryThinkingStore(), 'MemoryThinkingStore'],
  ['SqliteThinkingStore', () => new SqliteThinkingStore({ path: file() }), 'SqliteThinkingStore'],
];

describe.each(STORES)('%s keeps the ThinkingStore contract', (_name, make, what) => {
  it('stores sessions, rounds, spends and completions; reads back copies', async () => {
    const s = make();
    await s.createSession(session('a'));
    await s.createSession(session('b'));
    await s.appendRound('a', round(1, { thinkingMode: 'adaptive' as never, modeUsed: 'critical' as never, adaptiveRule: 'last-two-differ', answerLogprob: -0.5 }), { tokens: 11, durationMs: 1.5 });
    await s.addSpend('a', { tokens: 4, durationMs: 0.25 });
    await s.appendRound('a', round(2, { reasoningType: 'causal' as never, thinkingForcedEnd: true, finishReason: 'length' }), { tokens: 22, durationMs: 3 });
    const got = (await s.getSession('a'))!;
    expect(got).toEqual({
      ...session('a'),
      rounds: [round(1, { thinkingMode: 'adaptive' as never, modeUsed: 'critical' as never, adaptiveRule: 'last-two-differ', answerLogprob: -0.5 }), round(2, { reasoningType: 'causal' as never, thinkingForcedEnd: true, finishReason: 'length' })],
      tokensUsed: 37,
      durationMs: 4.75,
    });
    got.rounds.pop();
    expect((await s.getSession('a'))!.rounds).toHaveLength(2);
    await s.completeSession('a', { stopReason: 'agreement', completedAt: 1_700_000_000_100, synthesis, spend: { tokens: 5, durationMs: 1 } });
    expect(await s.getSession('a')).toMatchObject({ status: 'completed', stopReason: 'agreement', completedAt: 1_700_000_000_100, synthesis, tokensUsed: 42, durationMs: 5.75 });
    expect(await s.sessionIds()).toEqual(['a', 'b']);
    expect(await s.sessionIds('active')).toEqual(['b']);
    expect(await s.sessionIds('completed')).toEqual(['a']);
    expect(await s.getSession('zz')).toBeUndefined();
    await s.appendRound('b', round(1), { tokens: 11, durationMs: 1 });
    expect(await s.stats()).toEqual({
      sessionsCompleted: 1, sessionsActive: 1, completedRounds: 2, confidenceSum: 0.5, answerLogprobSum: -0.25, answerLogprobCount: 1, completedMs: 5.75,
      modesUsed: { critical: 1, none: 2 }, stopReasons: { agreement: 1 },
    });
    await s.close();
  });

  it('refuses what would corrupt a session, naming it; after close every call throws ClosedError', async () => {
    const s = make();
    await s.createSession(session('a'));
    expect(() => s.createSession(session('a'))).toThrow(`${what}: a thinking session 'a' already exists`);
    expect(() => s.appendRound('a', round(2), { tokens: 0, durationMs: 0 })).toThrow(`${what}: round 2 appended to session 'a', which has 0 rounds`);
    expect(() => s.appendRound('x', round(1), { tokens: 0, durationMs: 0 })).toThrow(`${what}: no thinking session 'x'`);
    expect(() => s.addSpend('x', { tokens: 1, durationMs: 0 })).toThrow(`${what}: no thinking session 'x'`);
    expect(() => s.completeSession('x', { stopReason: 'caller', completedAt: 0, synthesis, spend: { tokens: 0, durationMs: 0 } })).toThrow(`${what}: no thinking session 'x'`);
    await s.completeSession('a', { stopReason: 'caller', completedAt: 0, synthesis, spend: { tokens: 0, durationMs: 0 } });
    expect(() => s.completeSession('a', { stopReason: 'caller', completedAt: 0, synthesis, spend: { tokens: 0, durationMs: 0 } })).toThrow(`${what}: thinking session 'a' is already completed`);
    await s.close();
    await s.close();
    for (const call of [() => s.getSession('a'), () => s.sessionIds(), () => s.stats(), () => s.createSession(session('c')), () => s.addSpend('a', { tokens: 1, durationMs: 0 })]) {
      expect(call).toThrow(`${what} is closed`);
    }
    const thinking = new MultiRoundThinking({ generator: new ScriptedGenerator(() => ''), store: s });
    await expect(thinking.startThinkingSession('Q?')).rejects.toThrow(`${what} is closed`);
    await expect(thinking.getMetrics()).rejects.toThrow(`${what} is closed`);
  });
});

/** A deterministic thinker for the SQLite tests: answers count up by call, so no two rounds agree. */
function counting(answers = 0) {
  let thoughts = 0;
  return new ScriptedGenerator((p) => (p.endsWith('Final Answer:') ? ` ${++answers}` : `thought ${++thoughts}</think>`));
}

describe('SqliteThinkingStore', () => {
  it('resumes a session after the store is reopened (a restart), with its settings, rounds and metrics', async () => {
    const path = file();
    const first = new SqliteThinkingStore({ path });
    const a = new MultiRoundThinking({ generator: counting(), store: first, thinkingBudget: { maxThinkingTokens: 50, answerMaxTokens: 4 } });
    const id = await a.startThinkingSession('Count with me.', { maxRounds: 4, tokenBudget: 500, thinkingMode: 'adaptive' as never });
    await a.executeThinkingRound(id);
    await a.executeThinkingRound(id);
    const before = (await a.getSession(id))!;
    await a.close();
    await first.close();

    const second = new SqliteThinkingStore({ path, synchronous: 'full' });
    const generator = counting(2); // the restarted process goes on counting from 3
    const b = new MultiRoundThinking({ generator, store: second, thinkingBudget: { maxThinkingTokens: 50, answerMaxTokens: 4 } });
    expect(await second.sessionIds('active')).toEqual([id]);
    expect(await b.getSession(id)).toEqual(before);
    const done = await b.resume(id);
    expect(done.rounds.slice(0, 2)).toEqual(before.rounds);
    expect(done).toMatchObject({ status: 'completed', stopReason: 'max-rounds', maxRounds: 4, tokenBudget: 500, thinkingMode: 'adaptive' });
    // Round 3 is the first the new process ran: it re-answers round 2's answer.
    expect(generator.calls[0]!.prompt).toBe("Count with me.\n\nThe assistant's previous answer is: <answer>2</answer>, and please re-answer.\n\n" +
      `${(await import('../src/index')).MODE_INSTRUCTIONS.critical}\n<think>`);
    expect(done.rounds.map((r) => r.adaptiveRule)).toEqual(['first-round', 'default', 'last-two-differ', 'three-answers-differ']);
    expect(done.tokensUsed).toBe(done.rounds.reduce((x, r) => x + r.thinkingTokens + r.answerTokens, 0));
    await b.close();
    await second.close();

    const third = new SqliteThinkingStore({ path });
    const c = new MultiRoundThinking({ generator: counting(), store: third });
    expect(await c.getMetrics()).toMatchObject({ sessionsCompleted: 1, sessionsActive: 0, meanRoundsPerSession: 4, meanConfidence: 0.25 });
    expect(await c.getSession(id)).toEqual(done);
    await c.close();
    await third.close();
  });

  it('loses no round that executeThinkingRound resolved when the process is killed (SIGKILL)', async () => {
    const path = file();
    const script = join(dir, 'thinker.cjs');
    writeFileSync(
      script,
      `const { MultiRoundThinking, SqliteThinkingStore } = require(${JSON.stringify(resolve(__dirname, '../lib/index.js'))});
       // One token per character; answers spell the session and round so the parent can check them.
       let calls = 0;
       const generator = {
         async generate(prompt, o) {
           calls++;
           const m = /^S(\\d+)/.exec(prompt);
           const rounds = (prompt.match(/please re-answer/g) || []).length;
           const text = prompt.endsWith('Final Answer:') ? ' s' + m[1] + 'r' + (rounds + 1) + 'c' + calls : 'ok</think>';
           const cut = text.indexOf('</think>');
           const stop = o.stop && cut >= 0 && cut + 8 <= o.maxTokens;
           const out = stop ? text.slice(0, cut) : text.slice(0, o.maxTokens);
           return { text: out, tokens: stop ? cut + 8 : out.length, finishReason: stop ? 'stop' : out.length < text.length ? 'length' : 'eos', ...(stop ? { stopSequence: '</think>' } : {}) };
         },
         countTokens: (t) => t.length,
       };
       const thinking = new MultiRoundThinking({ generator, store: new SqliteThinkingStore({ path: ${JSON.stringify(path)} }), maxRounds: 100 });
       (async () => { for (let s = 0; ; s++) {
         const id = await thinking.startThinkingSession('S' + s + ' count');
         for (let r = 0; r < 7; r++) {
           const round = await thinking.executeThinkingRound(id);
           process.stdout.write(id + ' ' + round.round + ' ' + round.answer + '\\n');
         }
       } })();`,
    );
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const resolved: Array<[string, number, string]> = [];
    await new Promise<void>((done) => {
      let buf = '';
      child.stdout.on('data', (chunk: Buffer) => {
        buf += chunk;
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const l of lines) {
          const [, id, r, answer] = /^(\S+) (\d+) (.*)$/.exec(l)!;
          resolved.push([id!, Number(r), answer!]);
        }
        if (resolved.length >= 300 && child.exitCode === null) child.kill('SIGKILL');
      });
      child.once('exit', () => done());
    });
    expect(child.signalCode).toBe('SIGKILL');
    expect(resolved.length).toBeGreaterThanOrEqual(300);
    const store = new SqliteThinkingStore({ path });
    const sessions = new Map<string, ThinkingSession>();
    for (const [id, r, answer] of resolved) {
      if (!sessions.has(id)) sessions.set(id, (await store.getSession(id))!);
      const s = sessions.get(id)!;
      expect(s.rounds[r - 1]?.answer, `${id} round ${r}`).toBe(answer);
    }
    // Each stored session's totals are its rounds' sums: no round row without its spend, nor the reverse.
    for (const s of sessions.values()) expect(s.tokensUsed).toBe(s.rounds.reduce((x, r) => x + r.thinkingTokens + r.answerTokens, 0));
    await store.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
  }, 60_000);

  it('refuses files it cannot trust, with a clear error', async () => {
    const foreign = file();
    const db = new Database(foreign);
    db.exec('CREATE TABLE users (id INTEGER)');
    db.close();
    expect(() => new SqliteThinkingStore({ path: foreign })).toThrow(`SqliteThinkingStore: ${foreign} is a SQLite database of something else (tables: users); refusing to use it`);
    const newer = file();
    await new SqliteThinkingStore({ path: newer }).close();
    const db2 = new Database(newer);
    db2.prepare("UPDATE meta SET value = '2' WHERE key = 'schema_version'").run();
    db2.close();
    expect(() => new SqliteThinkingStore({ path: newer })).toThrow(`SqliteThinkingStore: ${newer} has schema version 2, newer than this @capibara/core understands (1); upgrade the package`);
    const garbage = file();
    writeFileSync(garbage, Buffer.alloc(8192, 7));
    expect(() => new SqliteThinkingStore({ path: garbage })).toThrow(`SqliteThinkingStore: ${garbage} is not a readable SQLite database (file is not a database)`);
    const held = file();
    const holder = new SqliteThinkingStore({ path: held });
    expect(() => new SqliteThinkingStore({ path: held })).toThrow(`SqliteThinkingStore: ${held} is open in another SqliteThinkingStore (this or another process); one store per file`);
    await holder.close();
    await new SqliteThinkingStore({ path: held }).close();
    expect(() => new SqliteThinkingStore({ path: '' })).toThrow(new RangeError("Expected non-empty string for options.path but received '' of type string"));
    expect(() => new SqliteThinkingStore({ path: held, synchronous: 'off' as never })).toThrow(new RangeError("Expected one of 'normal', 'full' for options.synchronous but received 'off' of type string"));
    expect(() => new SqliteThinkingStore(undefined as never)).toThrow(new TypeError('Expected an options object for options but received undefined'));
  });

  it("keeps the seed's thinking_sessions table and a rounds table, in WAL mode", async () => {
    const path = file();
    await new SqliteThinkingStore({ path }).close();
    const db = new Database(path, { readonly: true });
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name);
    expect(tables).toEqual(['meta', 'thinking_rounds', 'thinking_sessions']);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });
});
