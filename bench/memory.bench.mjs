// MemAgent at 512K tokens of real English prose that this project did not write: the Markdown
// documentation npm installed under node_modules plus the JSDoc prose of @types/node and
// TypeScript's lib.*.d.ts, split
// into paragraph chunks. For each codec (lz4, gzip, none): fill a durable store (a SQLite file
// in a temp folder) and measure storeMemory throughput and the compression ratio; then
// retrieveMemory latency (p50 / p95, filters + maxTokens 2,000, query cache off) against a
// plain TypeScript linear scan over the same items (float32 cosine + term overlap, filter, sort,
// pack) — the seed claims "10× faster search". Raw codec speed is measured on 32 KiB pages.
// Runs standalone (`node bench/memory.bench.mjs [--quick]`) or under bench/run.mjs.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';

import { prng } from './common.mjs';

export { pct };
const estimate = (t) => Math.ceil(Buffer.byteLength(t) / 4);

const require = createRequire(import.meta.url);
if (!existsSync(new URL('../lib/index.js', import.meta.url))) {
  console.error('memory: lib/index.js missing: run `npm run build` first');
  process.exit(1);
}
const { MemAgent, MemoryType, MemoryPriority, HashedEmbedder } = require('../lib/index.js');
const { tokenize } = require('../lib/text/tokenize.js');
const lz4 = require('lz4-napi');

const QUICK = process.argv.includes('--quick');
const TARGET_TOKENS = QUICK ? 64_000 : 512_000;
const QUERIES = QUICK ? 40 : 300;
const ROOT = path.dirname(path.dirname(new URL(import.meta.url).pathname));
const TYPES = Object.values(MemoryType);

// --- the corpus: paragraphs of Markdown and JSDoc prose, in a fixed order -------------------
/**
 * Items of about `targetTokens` tokens of node_modules prose (with a type, priority, package
 * tag and year each) and `count` queries over them; also used by memory-postgres.bench.mjs.
 */
export function memoryCorpus(targetTokens, count) {
  function walk(dir, out) {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const s = statSync(p, { throwIfNoEntry: false });
      if (s?.isDirectory()) walk(p, out);
      else if (s?.isFile()) out.push(p);
    }
    return out;
  }
  function paragraphs(text) {
    const out = [];
    let inCode = false;
    let cur = [];
    for (const line of text.split('\n')) {
      if (line.trim().startsWith('```')) {
        inCode = !inCode;
        continue;
      }
      if (inCode) continue;
      if (line.trim() === '') {
        if (cur.length) out.push(cur.join(' '));
        cur = [];
      } else cur.push(line.trim());
    }
    if (cur.length) out.push(cur.join(' '));
    return out;
  }
  const files = walk(path.join(ROOT, 'node_modules'), []);
  const sources = [];
  for (const f of files) {
    if (f.endsWith('.md') && !/license/i.test(path.basename(f))) sources.push([f, readFileSync(f, 'utf8')]);
    else if (f.endsWith('.d.ts') && (f.includes(`${path.sep}@types${path.sep}node${path.sep}`) || /typescript[/\\]lib[/\\]lib\.[a-z0-9.]+\.d\.ts$/.test(f))) {
      const prose = readFileSync(f, 'utf8').split('\n').filter((l) => /^\s*\* /.test(l)).map((l) => l.replace(/^\s*\* ?/, '')).filter((l) => !l.startsWith('@'));
      sources.push([f, prose.join('\n')]);
    }
  }
  // Chunks of 40–400 words (small paragraphs merged, long ones split), with the package as a tag.
  const chunks = [];
  for (const [f, text] of sources) {
    const pkg = path.relative(path.join(ROOT, 'node_modules'), f).split(path.sep).slice(0, 2).join('/').replace(/\/[^@].*$/, '').replace(/\/.*\.md$/, '');
    let words = [];
    for (const p of paragraphs(text)) {
      const w = p.split(/\s+/).filter(Boolean);
      if (w.length < 3) continue;
      words.push(...w);
      while (words.length >= 400) chunks.push({ pkg, text: words.splice(0, 400).join(' ') });
      if (words.length >= 40) chunks.push({ pkg, text: words.splice(0).join(' ') });
    }
    if (words.length >= 3) chunks.push({ pkg, text: words.join(' ') });
  }
  const rand = prng(7);
  const items = [];
  let tokens = 0;
  const seen = new Set();
  for (const c of chunks) {
    if (tokens >= targetTokens) break;
    const key = c.text.toLowerCase();
    if (seen.has(key)) continue; // READMEs repeated across nested node_modules copies
    seen.add(key);
    items.push({ ...c, type: TYPES[Math.floor(rand() * TYPES.length)], priority: Math.floor(rand() * 4), year: 2015 + Math.floor(rand() * 12) });
    tokens += estimate(c.text);
  }
  if (tokens < targetTokens) console.error(`memory: the corpus holds only ${tokens} tokens (target ${targetTokens})`);

  // Queries: 3–6 consecutive words from random items, with a type filter and a minimum priority.
  const queries = Array.from({ length: count }, () => {
    const it = items[Math.floor(rand() * items.length)];
    const w = it.text.split(' ');
    const n = 3 + Math.floor(rand() * 4);
    const at = Math.floor(rand() * Math.max(1, w.length - n));
    return { queryText: w.slice(at, at + n).join(' '), memoryTypes: [it.type, TYPES[(TYPES.indexOf(it.type) + 1) % TYPES.length]], minPriority: MemoryPriority.MEDIUM, maxTokens: 2000, topK: 20 };
  });
  return { items, tokens, queries };
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

// Run as a script (not when memory-postgres.bench.mjs imports the corpus).
if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) await main();

async function main() {
const { items, tokens, queries } = memoryCorpus(TARGET_TOKENS, QUERIES);
const dir = mkdtempSync(path.join(os.tmpdir(), 'capibara-bench-memory-'));
const rows = [];
const codecRows = [];
let scanRow;
try {
  for (const compression of ['lz4', 'gzip', 'none']) {
    const m = new MemAgent({ path: path.join(dir, `${compression}.db`), compression, maxTokens: Math.max(TARGET_TOKENS, tokens) + 1000, sweepIntervalMs: 0, queryCacheSize: 0 });
    const t0 = performance.now();
    for (const it of items) {
      await m.storeMemory(it.text, it.type, it.priority, [it.pkg], { metadata: { year: it.year } });
    }
    const storeMs = performance.now() - t0;
    const metrics = m.getMetrics();
    const lat = [];
    let returned = 0;
    for (const q of queries) {
      const r = await m.retrieveMemory(q);
      if (r.totalTokens > 2000) throw new Error('memory: a retrieval passed maxTokens');
      lat.push(r.searchTimeMs);
      returned += r.chunks.length;
    }
    rows.push({
      compression,
      items: metrics.items,
      tokens: metrics.tokensUsed,
      ratio: metrics.compression.ratio,
      storePerSecond: (items.length * 1000) / storeMs,
      p50: pct(lat, 50),
      p95: pct(lat, 95),
      meanReturned: returned / queries.length,
    });
    await m.close();
  }

  // The plain TypeScript linear scan a naive memory would do over the same items.
  const embedder = new HashedEmbedder();
  const vecs = embedder.embed(items.map((it) => it.text));
  const terms = items.map((it) => new Set(tokenize(it.text)));
  const lat = [];
  for (const q of queries) {
    const t0 = performance.now();
    const qv = embedder.embed([q.queryText])[0];
    const qt = tokenize(q.queryText);
    const scored = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (!q.memoryTypes.includes(it.type) || it.priority < q.minPriority) continue;
      let dot = 0;
      const v = vecs[i];
      for (let d = 0; d < v.length; d++) dot += v[d] * qv[d];
      let overlap = 0;
      for (const t of qt) if (terms[i].has(t)) overlap++;
      scored.push([dot + overlap / qt.length, i]);
    }
    scored.sort((a, b) => b[0] - a[0]);
    let left = 2000;
    const out = [];
    for (const [, i] of scored) {
      if (out.length === 20) break;
      const n = estimate(items[i].text);
      if (n <= left) {
        out.push(i);
        left -= n;
      }
    }
    lat.push(performance.now() - t0);
  }
  scanRow = { p50: pct(lat, 50), p95: pct(lat, 95) };

  // Raw codec speed on the corpus cut into 32 KiB pages.
  const all = Buffer.from(items.map((it) => it.text).join('\n'));
  const pages = [];
  for (let i = 0; i < all.length; i += 32 * 1024) pages.push(all.subarray(i, i + 32 * 1024));
  for (const [name, c, d] of [
    ['lz4', (b) => lz4.compressSync(b), (b) => lz4.uncompressSync(b)],
    ['gzip', (b) => gzipSync(b, { level: 6 }), (b) => gunzipSync(b)],
  ]) {
    let t0 = performance.now();
    const packed = pages.map(c);
    const cMs = performance.now() - t0;
    t0 = performance.now();
    for (const p of packed) d(p);
    const dMs = performance.now() - t0;
    const stored = packed.reduce((a, p) => a + p.length, 0);
    codecRows.push({ codec: name, ratio: all.length / stored, compressMBs: all.length / 1e6 / (cMs / 1000), decompressMBs: all.length / 1e6 / (dMs / 1000) });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const result = {
  name: 'memory',
  title: `MemAgent at ${Math.round(tokens / 1000)}K tokens of node_modules prose (${items.length} items): storeMemory to a SQLite file, retrieveMemory with filters + maxTokens 2,000 (${QUERIES} queries, query cache off)${QUICK ? ' (quick)' : ''}`,
  meta: { tokens, items: items.length, queries: QUERIES },
  rows,
  codecs: codecRows,
  scan: scanRow,
  table: [
    ...rows.map((r) => ({
      what: `MemAgent, ${r.compression}`,
      'stored/s': Math.round(r.storePerSecond).toLocaleString('en-US'),
      'text ratio': `${r.ratio.toFixed(2)}×`,
      'p50 ms': r.p50.toFixed(2),
      'p95 ms': r.p95.toFixed(2),
      'scan p50 / p50': `${(scanRow.p50 / r.p50).toFixed(1)}×`,
    })),
    { what: 'plain TS linear scan', 'stored/s': '', 'text ratio': '', 'p50 ms': scanRow.p50.toFixed(2), 'p95 ms': scanRow.p95.toFixed(2), 'scan p50 / p50': '1.0×' },
    ...codecRows.map((c) => ({
      what: `codec ${c.codec}, 32 KiB pages`,
      'stored/s': '',
      'text ratio': `${c.ratio.toFixed(2)}×`,
      'p50 ms': `${Math.round(c.compressMBs)} MB/s in`,
      'p95 ms': `${Math.round(c.decompressMBs)} MB/s out`,
      'scan p50 / p50': '',
    })),
  ],
};
if (process.env.CAPIBARA_BENCH_OUT) writeFileSync(process.env.CAPIBARA_BENCH_OUT, JSON.stringify(result));
else console.table(result.table);
}
