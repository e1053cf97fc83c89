#!/usr/bin/env node
/**
 * `npm run test:chaos [-- --short] [--only=fuzz,memagent,redis,http] [--seed=N]`
 *
 * Runs the hostile scenarios of issue 20 against the built package (lib/ and build/Release),
 * loopback only, each under a wall-clock budget: a few minutes in all, about 75 s with `--short`
 * (CI). Prints one markdown table (tried / clean errors / crashes / lost / overspend / RSS), writes
 * the figures to bench/results/chaos.json, and exits 1 when any scenario had a crash, lost an
 * acknowledged write or approved past a HARD limit (2 when the harness itself failed).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

import { LIB, ROOT } from './child.mjs';
import * as fuzz from './fuzz.mjs';
import * as http from './http.mjs';
import * as memagent from './memagent.mjs';
import * as redis from './redis-budget.mjs';

const args = process.argv.slice(2);
const flag = (name) => args.find((a) => a === `--${name}` || a.startsWith(`--${name}=`))?.split('=')[1];
const short = args.includes('--short');
const seed = Number(flag('seed') ?? Date.now() % 1e6);
const only = flag('only')?.split(',');

/** Wall-clock budget of each scenario, in seconds. */
const SCENARIOS = [
  { key: 'fuzz', mod: fuzz, budget: short ? 20 : 90 },
  { key: 'memagent', mod: memagent, budget: short ? 20 : 60 },
  { key: 'redis', mod: redis, budget: short ? 18 : 60 },
  { key: 'http', mod: http, budget: short ? 15 : 45 },
];

// Ctrl-C must still run the 'exit' hook that kills children and redis-servers.
process.on('SIGINT', () => process.exit(130));

/** The harness tests lib/: say so when src/ has changed since it was built. */
function staleness() {
  if (!fs.existsSync(LIB)) return `${path.relative(ROOT, LIB)} is missing: run npm run build:ts first`;
  const built = fs.statSync(LIB).mtimeMs;
  const newest = (dir) => fs.readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .reduce((m, e) => Math.max(m, fs.statSync(path.join(e.parentPath ?? e.path, e.name)).mtimeMs), 0);
  return newest(path.join(ROOT, 'src')) > built ? 'warning: src/ is newer than lib/ (npm run build:ts); testing lib/ as built' : null;
}

const cell = (v) => (v === null || v === undefined ? '—' : String(v));

function table(rows) {
  const head = ['scenario', 'case', 'tried', 'clean errors', 'crashes', 'lost', 'overspend', 'RSS', 's'];
  const lines = rows.map((r) => [r.scenario, r.name, r.tried, r.cleanErrors, r.crashes, r.lost, r.overspend, r.rss, r.seconds.toFixed(1)].map(cell));
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [fmt(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
}

async function main() {
  const warning = staleness();
  if (warning?.includes('missing')) {
    console.error(warning);
    process.exit(2);
  }
  if (warning) console.log(warning);
  console.log(`chaos: ${short ? 'short' : 'full'} run, seed ${seed} (rerun with --seed=${seed})\n`);
  const rows = [];
  let harnessFailed = false;
  for (const s of SCENARIOS.filter((x) => !only || only.includes(x.key))) {
    process.stdout.write(`${s.key} (up to ${s.budget} s)… `);
    try {
      const got = await s.mod.run({ budgetMs: s.budget * 1000, seed, short });
      rows.push(...got);
      console.log(got.map((r) => `${r.name}: ${r.tried} tried, ${r.crashes} crashes`).join('; '));
    } catch (err) {
      harnessFailed = true;
      console.log(`harness error: ${err?.stack ?? err}`);
    }
  }
  console.log(`\n${table(rows)}\n`);
  for (const r of rows) {
    for (const n of r.notes) console.log(`- ${r.scenario} / ${r.name}: ${n}`);
  }
  const bad = rows.filter((r) => r.crashes > 0 || r.lost > 0 || r.overspend > 0);
  if (rows.some((r) => r.failures.length)) console.log('\nProblems:');
  for (const r of rows) {
    for (const f of r.failures.slice(0, 5)) console.log(`- ${r.scenario} / ${r.name}: ${f}`);
    if (r.failures.length > 5) console.log(`- ${r.scenario} / ${r.name}: … and ${r.failures.length - 5} more (bench/results/chaos.json)`);
  }

  let commit = null;
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    // not a git checkout
  }
  const out = path.join(ROOT, 'bench', 'results', 'chaos.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const ok = !bad.length && !harnessFailed;
  fs.writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), commit, node: process.version, short, seed, ok, rows }, null, 2)}\n`);
  console.log(`\nfigures: ${path.relative(ROOT, out)}; ${ok ? 'no crash, nothing lost, no overspend' : `${bad.length} case(s) failed`}`);
  process.exit(harnessFailed ? 2 : bad.length ? 1 : 0);
}

main();
