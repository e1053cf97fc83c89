// `npm run bench [-- <filter>...] [--quick]`: runs every bench/*.bench.mjs in a fresh Node
// process (as better-sqlite3 does), so one benchmark's JIT state, heap and native threads
// cannot skew the next. Each child writes its result as JSON to the file named by
// CAPIBARA_BENCH_OUT; this script prints the tables and saves everything under bench/results/.
// It builds nothing: benchmarks measure what `npm run build` produced.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const unknown = args.filter((a) => a.startsWith('-') && a !== '--quick');
if (unknown.length > 0) {
  console.error(`bench: unknown option ${unknown.join(', ')}; usage: npm run bench -- [filter...] [--quick]`);
  process.exit(1);
}
const filters = args.filter((a) => !a.startsWith('-'));

// Same places the loader (src/native.ts) looks, minus build/Debug: debug timings mean nothing.
const addon = process.env.CAPIBARA_NATIVE_PATH
  ? path.resolve(process.env.CAPIBARA_NATIVE_PATH)
  : path.join(ROOT, 'build', 'Release', 'capibara.node');
// The floors live in a bench-only addon built next to it (bench/common.mjs).
const benchAddon = path.join(path.dirname(addon), 'capibara_bench.node');
const missing = [path.join(ROOT, 'lib', 'index.js'), path.join(ROOT, 'lib', 'native.js'), addon, benchAddon].filter((f) => !existsSync(f));
if (missing.length > 0) {
  const shown = missing.map((f) => (f.startsWith(ROOT + path.sep) ? path.relative(ROOT, f) : f));
  console.error(`bench: ${shown.join(', ')} missing: run \`npm run build\` first`);
  process.exit(1);
}

const files = readdirSync(BENCH_DIR)
  .filter((f) => f.endsWith('.bench.mjs'))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`bench: no bench/*.bench.mjs matches ${filters.join(', ')}`);
  process.exit(1);
}

// Aligned text: console.table quotes strings and adds an index column, which hurts reading ratios.
function printTable(rows) {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]);
  const cells = [cols, ...rows.map((r) => cols.map((c) => String(r[c] ?? '')))];
  const width = cols.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => r.map((v, i) => v.padStart(width[i])).join('  ');
  console.log(line(cells[0]));
  console.log(width.map((w) => '-'.repeat(w)).join('  '));
  for (const r of cells.slice(1)) console.log(line(r));
}

const startedAt = new Date();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'capibara-bench-'));
const results = [];
const failures = [];
try {
  for (const file of files) {
    const out = path.join(tmp, `${file}.json`);
    console.error(`bench: ${file}${quick ? ' (quick)' : ''}`);
    const t0 = performance.now();
    const child = spawnSync(process.execPath, [path.join(BENCH_DIR, file), ...(quick ? ['--quick'] : [])], {
      cwd: ROOT,
      stdio: 'inherit',
      env: { ...process.env, CAPIBARA_BENCH_OUT: out },
    });
    const seconds = (performance.now() - t0) / 1000;
    if (child.status !== 0 || !existsSync(out)) {
      const why = child.error?.message ?? (child.signal ? `signal ${child.signal}` : `exit code ${child.status}`);
      failures.push({ file, reason: why });
      console.error(`bench: ${file} failed (${why})`);
      continue;
    }
    results.push({ file, seconds, ...JSON.parse(readFileSync(out, 'utf8')) });
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

for (const r of results) {
  console.log(`\n${r.title ?? r.name}  [${r.file}, ${r.seconds.toFixed(1)} s]`);
  printTable(r.table ?? []);
}

const report = {
  startedAt: startedAt.toISOString(),
  finishedAt: new Date().toISOString(),
  quick,
  filters,
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  cpu: os.cpus()[0]?.model,
  cores: os.availableParallelism(),
  results,
  failures,
};
const resultsDir = path.join(BENCH_DIR, 'results');
mkdirSync(resultsDir, { recursive: true });
// ISO time with ':' replaced, so the name is valid on every file system.
const file = path.join(resultsDir, `bench-${report.startedAt.replace(/:/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
console.log(`\nbench: results written to ${path.relative(process.cwd(), file)}`);

if (failures.length > 0) {
  console.error(`bench: ${failures.length} benchmark(s) failed: ${failures.map((f) => f.file).join(', ')}`);
  process.exit(1);
}
