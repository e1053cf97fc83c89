// `npm run bench [-- <filter>...] [--quick]`: runs every bench/*.bench.mjs in a fresh Node
// process (as better-sqlite3 does), so one benchmark's JIT state, heap and native threads
// cannot skew the next. Each child writes its result as JSON to the file named by
// CAPIBARA_BENCH_OUT; this script prints each table as soon as its benchmark ends, shows a
// progress bar with an ETA (from the last run's durations, else the average so far) while the
// next one runs, and saves everything under bench/results/ (see RESULTS_DIR). It builds nothing: benchmarks
// measure what `npm run build` produced.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);
// Results go beside the benchmarks in a checkout; an installed package may be read-only, so
// there they go to ./capibara-bench-results (CAPIBARA_BENCH_RESULTS overrides both).
const RESULTS_DIR =
  process.env.CAPIBARA_BENCH_RESULTS ?? (existsSync(path.join(ROOT, '.git')) ? path.join(BENCH_DIR, 'results') : path.resolve('capibara-bench-results'));

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
const missing = [path.join(ROOT, 'lib', 'index.js'), path.join(ROOT, 'lib', 'native.js'), path.join(ROOT, 'lib', 'cli', 'progress.js'), addon, benchAddon].filter((f) => !existsSync(f));
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

// Seconds each benchmark took in the latest earlier run of the same kind (quick or not): the ETA's basis.
function lastDurations() {
  const dir = RESULTS_DIR;
  if (!existsSync(dir)) return new Map();
  for (const f of readdirSync(dir).filter((x) => /^bench-.*\.json$/.test(x)).sort().reverse()) {
    try {
      const r = JSON.parse(readFileSync(path.join(dir, f), 'utf8'));
      if (r.quick === quick) return new Map(r.results.map((x) => [x.file, x.seconds]));
    } catch {
      // A damaged results file only costs the ETA.
    }
  }
  return new Map();
}

// Runs one benchmark, passing its stderr lines through around the progress bar.
function runOne(file, out, onLine) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(BENCH_DIR, file), ...(quick ? ['--quick'] : [])], {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'pipe'],
      env: { ...process.env, CAPIBARA_BENCH_OUT: out },
    });
    let rest = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      for (const l of lines) onLine(l);
    });
    child.on('error', (err) => resolve({ status: null, error: err }));
    child.on('close', (status, signal) => {
      if (rest !== '') onLine(rest);
      resolve({ status, signal });
    });
  });
}

const { ProgressBar, clock } = await import(pathToFileURL(path.join(ROOT, 'lib', 'cli', 'progress.js')).href);
const printResult = (r) => {
  console.log(`\n${r.title ?? r.name}  [${r.file}, ${r.seconds.toFixed(1)} s]`);
  printTable(r.table ?? []);
};

const startedAt = new Date();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'capibara-bench-'));
const results = [];
const failures = [];
const expected = lastDurations();
const bar = new ProgressBar('bench', files.length);
const spent = [];
// Expected seconds of a benchmark: its last run's, else the mean of those run so far.
const guess = (file) => expected.get(file) ?? (spent.length > 0 ? spent.reduce((a, b) => a + b, 0) / spent.length : undefined);
try {
  for (const [i, file] of files.entries()) {
    const out = path.join(tmp, `${file}.json`);
    const t0 = performance.now();
    const left = files.slice(i).map(guess);
    const note = () => {
      const known = left.every((x) => x !== undefined);
      const eta = known ? left.reduce((a, b) => a + b, 0) - (performance.now() - t0) / 1000 : undefined;
      return `${file}${quick ? ' (quick)' : ''}${eta === undefined ? '' : `, about ${clock(Math.max(eta, 0))} left`}`;
    };
    bar.update(i, files.length, note());
    // Redraw each second on a terminal, so the elapsed time and the ETA move.
    const ticker = setInterval(() => bar.redraw(note()), 1000);
    const child = await runOne(file, out, (line) => {
      bar.clear();
      console.error(line);
      bar.redraw(note());
    });
    clearInterval(ticker);
    const seconds = (performance.now() - t0) / 1000;
    spent.push(seconds);
    bar.clear();
    if (child.status !== 0 || !existsSync(out)) {
      const why = child.error?.message ?? (child.signal ? `signal ${child.signal}` : `exit code ${child.status}`);
      failures.push({ file, reason: why });
      console.error(`bench: ${file} failed (${why})`);
      continue;
    }
    const r = { file, seconds, ...JSON.parse(readFileSync(out, 'utf8')) };
    results.push(r);
    printResult(r);
  }
  bar.finish(`${results.length} done${failures.length > 0 ? `, ${failures.length} failed` : ''}`, files.length);
} finally {
  rmSync(tmp, { recursive: true, force: true });
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
const resultsDir = RESULTS_DIR;
mkdirSync(resultsDir, { recursive: true });
// ISO time with ':' replaced, so the name is valid on every file system.
const file = path.join(resultsDir, `bench-${report.startedAt.replace(/:/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
console.log(`\nbench: results written to ${path.relative(process.cwd(), file)}`);

if (failures.length > 0) {
  console.error(`bench: ${failures.length} benchmark(s) failed: ${failures.map((f) => f.file).join(', ')}`);
  process.exit(1);
}
