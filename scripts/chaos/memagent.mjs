/**
 * Scenario 2: MemAgent durability and corrupt files.
 *
 * SIGKILL rounds: a child opens a file, checks every item acknowledged so far, then stores new
 * items and acknowledges each id on stdout once `storeMemory` resolved; the parent SIGKILLs it
 * at a random moment and starts the next round on the same file. An acknowledged item that is
 * missing, or whose text changed, is lost (DESIGN.md, convention 9: a crash loses nothing an API
 * call reported as stored).
 *
 * Corrupt pages: a closed file gets one LZ4 page (or one row) damaged and is opened in a child
 * under `ulimit -v`. A clean JS error, or an open that keeps the intact items, is fine; a signal
 * or an OOM exit is a crash (issue 20, item 1).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { childMain, describeEnd, isChild, loadPackage, outcome, requireFromRoot, Rng, row, sleep, startChild } from './child.mjs';

const FILE = fileURLToPath(import.meta.url);
/** Address-space cap of the child that opens a corrupt file (KiB, as in issue 20). */
const MEM_LIMIT_KB = 3_000_000;
const WORDS = 'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu'.split(' ');

/** The text of item `i` of round `tag`: rebuilt by the verifier, so a changed text is caught too. */
function makeText(tag, i) {
  const r = new Rng([...`${tag}:${i}`].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619), 2166136261));
  const words = Array.from({ length: r.int(20, 120) }, () => r.pick(WORDS));
  return `chaos ${tag} item ${i}: ${words.join(' ')}`;
}

// ---------------------------------------------------------------------------------------------
// Children

function openMemory(lib, file) {
  // Dedup off: every store is a new item, so each acknowledged id must come back as itself.
  return new lib.MemAgent({ path: file, dedupThreshold: 2, maxTokens: 1e9, sweepIntervalMs: 0 });
}

/** `store <file> <acked> <tag>`: verify the acknowledged items, then store until killed. */
async function storeChild(file, ackedFile, tag) {
  const lib = loadPackage();
  const memory = openMemory(lib, file);
  const acked = fs.existsSync(ackedFile) ? fs.readFileSync(ackedFile, 'utf8').split('\n').filter(Boolean) : [];
  for (const line of acked) {
    const [id, t, i] = line.split(' ');
    const item = memory.getMemory(id);
    if (item === null) fs.writeSync(1, `L missing ${line}\n`);
    else if (item.content !== makeText(t, Number(i))) fs.writeSync(1, `L changed ${line}\n`);
  }
  fs.writeSync(1, `V ${acked.length}\n`);
  if (tag === '-') return memory.close(); // verify only
  fs.writeSync(1, 'READY\n');
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      const id = await memory.storeMemory(makeText(tag, i), lib.MemoryType.EPISODIC, lib.MemoryPriority.MEDIUM, [`t${i % 7}`]);
      fs.writeSync(1, `A ${id} ${tag} ${i}\n`); // synchronous: acknowledged only once written
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]); // never ends: the parent kills us
}

/** `make <file> <items>`: an intact file with several sealed LZ4 pages. */
async function makeChild(file, items) {
  const lib = loadPackage();
  const memory = openMemory(lib, file);
  for (let i = 0; i < Number(items); i++) await memory.storeMemory(makeText('page', i), lib.MemoryType.SEMANTIC, lib.MemoryPriority.LOW);
  await memory.close();
}

/** `open <file>`: open a (maybe corrupt) file and read every item back. */
async function openChild(file) {
  const lib = loadPackage();
  let said;
  try {
    const memory = openMemory(lib, file);
    const r = await memory.retrieveMemory({ queryText: 'chaos item', topK: 10_000 });
    said = `OPENED ${r.chunks.length} items readable`;
    await memory.close();
  } catch (err) {
    said = `ERROR ${err?.name}: ${String(err?.message).replace(/\n/g, ' ').slice(0, 300)}`;
  }
  // Peak RSS: an open that survives by allocating what a corrupt length claims shows here.
  fs.writeSync(1, `${process.resourceUsage().maxRSS} ${said}\n`);
}

async function child([role, ...args]) {
  if (role === 'store') return storeChild(...args);
  if (role === 'make') return makeChild(...args);
  if (role === 'open') return openChild(...args);
  throw new Error(`unknown role ${role}`);
}

// ---------------------------------------------------------------------------------------------
// Parent: SIGKILL rounds

/** One child on `file`: verifies what `acked` holds, stores (unless verify-only), killed after `killAfterMs`. */
async function round(file, acked, tag, killAfterMs) {
  const ackedFile = `${file}.acked`;
  fs.writeFileSync(ackedFile, acked.map((a) => `${a}\n`).join(''));
  const got = { verified: null, lost: [], acks: [] };
  let ready;
  const isReady = new Promise((r) => (ready = r));
  const c = startChild(FILE, ['store', file, ackedFile, tag], {
    timeoutMs: 60_000,
    onLine(line) {
      if (line.startsWith('A ')) got.acks.push(line.slice(2));
      else if (line.startsWith('L ')) got.lost.push(line.slice(2));
      else if (line.startsWith('V ')) got.verified = Number(line.slice(2));
      else if (line === 'READY') ready();
    },
  });
  const end = await Promise.race([c.done, isReady.then(() => null)]);
  if (end === null && tag !== '-') {
    await sleep(killAfterMs);
    c.kill('SIGKILL');
  }
  return { ...got, end: await c.done };
}

async function killRounds({ budgetMs, seed, roundsPerFile, maxKillMs, dir }) {
  const t0 = Date.now();
  const r = row('memagent', 'SIGKILL rounds');
  r.lost = 0;
  const rng = new Rng(seed);
  let rounds = 0;
  let files = 0;
  while (Date.now() - t0 < budgetMs) {
    const file = path.join(dir, `kill-${files++}.db`);
    const acked = [];
    // Rounds that store and are killed, then one that only verifies: every round but the first
    // also checks the file the previous kill left.
    for (let k = 0; k <= roundsPerFile; k++) {
      const last = k === roundsPerFile || Date.now() - t0 >= budgetMs;
      const res = await round(file, acked, last ? '-' : `f${files}r${k}`, rng.int(30, maxKillMs));
      rounds++;
      const how = outcome(res.end);
      if (res.verified === null && acked.length) {
        // The file did not open: everything acknowledged in it is out of reach. Next file.
        r.lost += acked.length;
        r.failures.push(`${file} did not reopen after a SIGKILL (${describeEnd(res.end)}): ${acked.length} acknowledged items out of reach`);
        break;
      }
      if (res.lost.length) {
        // Counted once: a lost item leaves the list the next rounds check.
        r.lost += res.lost.length;
        r.failures.push(`${file}: ${res.lost.length} of ${res.verified} acknowledged items lost after a SIGKILL, e.g. ${res.lost.slice(0, 3).join('; ')}`);
        const gone = new Set(res.lost.map((l) => l.slice(l.indexOf(' ') + 1)));
        acked.splice(0, acked.length, ...acked.filter((a) => !gone.has(a)));
      }
      if (how === 'crash' || how === 'hang') {
        r.crashes++;
        r.failures.push(`round ${rounds} ${how}: ${describeEnd(res.end)}`);
      } else if (how === 'js-error') {
        r.cleanErrors++;
        r.failures.push(`round ${rounds} failed with a JS error: ${describeEnd(res.end)}`);
      }
      acked.push(...res.acks);
      r.tried += res.acks.length;
      if (last) break;
    }
  }
  r.notes.push(`${rounds} child rounds on ${files} files; tried = acknowledged stores`);
  r.seconds = (Date.now() - t0) / 1000;
  return r;
}

// ---------------------------------------------------------------------------------------------
// Parent: corrupt pages

/** Ways to damage a closed file. `page` variants change one `pages` blob; `known` cites the issue. */
const DAMAGE = [
  { name: 'intact (control)', page: (b) => b, control: true },
  { name: 'size prefix 0xFFFFFFFF', page: (b) => (b.writeUInt32LE(0xffffffff, 0), b), known: 'issue 20 #1' },
  { name: 'size prefix 64 MiB', page: (b) => (b.writeUInt32LE(64 << 20, 0), b) },
  { name: 'flipped bytes', page: (b, r) => { for (let n = 0; n < 16; n++) b[r.int(4, b.length - 1)] ^= 0xff; return b; }, repeat: true },
  { name: 'truncated blob', page: (b) => b.subarray(0, b.length >> 1) },
  { name: 'zeroed blob', page: (b) => b.fill(0) },
  { name: 'tags not JSON in a row', sql: "UPDATE items SET tags = 'not json' WHERE seq = (SELECT MIN(seq) FROM items)" },
];

function damage(src, dst, d, r) {
  for (const ext of ['', '-wal']) if (fs.existsSync(src + ext)) fs.copyFileSync(src + ext, dst + ext);
  const Database = requireFromRoot('better-sqlite3');
  const db = new Database(dst);
  try {
    if (d.sql) return db.prepare(d.sql).run();
    const pages = db.prepare("SELECT id, data FROM pages WHERE codec = 'lz4' ORDER BY id").all();
    if (pages.length === 0) throw new Error('harness: no LZ4 page to damage');
    const p = r.pick(pages);
    db.prepare('UPDATE pages SET data = ? WHERE id = ?').run(d.page(Buffer.from(p.data), r), p.id);
  } finally {
    db.close();
  }
}

async function corruptPages({ budgetMs, seed, repeats, dir }) {
  const t0 = Date.now();
  const r = row('memagent', `corrupt page, ulimit -v ${MEM_LIMIT_KB}`);
  const rng = new Rng(seed ^ 0x9e3779b9);
  const intact = path.join(dir, 'intact.db');
  const made = await startChild(FILE, ['make', intact, 150], { timeoutMs: 60_000 }).done;
  if (outcome(made) !== 'ok') {
    r.failures.push(`could not build the intact file: ${describeEnd(made)}`);
    return r;
  }
  let opened = 0;
  let n = 0;
  let peakKb = 0;
  for (const d of DAMAGE) {
    // Every kind once; the random repeats only while the budget lasts.
    for (let rep = 0; rep < (d.repeat ? repeats : 1) && (rep === 0 || Date.now() - t0 < budgetMs); rep++) {
      const file = path.join(dir, `damaged-${n++}.db`);
      damage(intact, file, d, rng);
      let said = '';
      let kbHere = 0;
      const end = await startChild(FILE, ['open', file], {
        memLimitKb: MEM_LIMIT_KB,
        timeoutMs: 60_000,
        onLine(line) {
          const [kb] = line.split(' ', 1);
          kbHere = Number(kb);
          peakKb = Math.max(peakKb, kbHere);
          said = line.slice(kb.length + 1);
        },
      }).done;
      const how = outcome(end);
      const label = `${d.name}${d.known ? ` (known: ${d.known})` : ''}`;
      r.tried++;
      if (how === 'ok' && said.startsWith('ERROR')) r.cleanErrors++;
      else if (how === 'ok' && said.startsWith('OPENED')) opened++;
      else {
        r.crashes++;
        r.failures.push(`${label}: ${how}, ${describeEnd(end)}`);
        continue;
      }
      if (d.control && !said.startsWith('OPENED')) r.failures.push(`control did not open: ${said}`);
      if (rep === 0) r.notes.push(`${d.name}: ${said.slice(0, 140)} (peak RSS ${(kbHere / 1024).toFixed(0)} MiB)`);
    }
  }
  r.notes.unshift(`${opened} opened, ${r.cleanErrors} clean errors`);
  r.rss = `max ${(peakKb / 1024).toFixed(0)} MiB (opens that ended)`;
  r.seconds = (Date.now() - t0) / 1000;
  return r;
}

/** Runs both parts; the SIGKILL rounds get two thirds of the budget. */
export async function run({ budgetMs, seed = 1, short = false }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capibara-chaos-mem-'));
  try {
    const kills = await killRounds({ budgetMs: (budgetMs * 2) / 3, seed, roundsPerFile: short ? 3 : 6, maxKillMs: short ? 800 : 2000, dir });
    const corrupt = await corruptPages({ budgetMs: budgetMs / 3, seed, repeats: short ? 2 : 6, dir });
    return [kills, corrupt];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (isChild(import.meta.url)) childMain(child);
