/**
 * Child processes for the chaos scenarios. Every hostile call runs in a child so that a native
 * crash (a signal, an abort, the OOM killer) is a number in the report instead of the end of the
 * run. A child's role is chosen by its arguments: each scenario module is also its own child
 * script (`node <scenario>.mjs child ...`), see {@link isChild}.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import * as readline from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The package root and its built entry: the harness tests what `npm run build:ts` produced. */
export const ROOT = resolve(here, '..', '..');
export const LIB = resolve(ROOT, 'lib', 'index.js');
/** `require` from the package root, for lib/ and the package's own dependencies (better-sqlite3). */
export const requireFromRoot = createRequire(resolve(ROOT, 'package.json'));

/**
 * Exit code of a child whose JavaScript threw where nothing caught it. It tells a JS failure
 * (named, with a message on stderr) apart from a native crash, which ends in a signal or in an
 * exit code the child never chose.
 */
export const JS_ERROR_EXIT = 70;

/**
 * Exit code of a child that could not load the package (lib/ missing or being rebuilt): a fault
 * of the environment, which must not be counted as a crash or as lost data.
 */
export const NO_PACKAGE_EXIT = 71;

/** The built package, in a child; exits with {@link NO_PACKAGE_EXIT} when it cannot be loaded. */
export function loadPackage() {
  try {
    return requireFromRoot(LIB);
  } catch (err) {
    process.stderr.write(`CHAOS-NO-PACKAGE ${err?.message}\n`);
    process.exit(NO_PACKAGE_EXIT);
  }
}

/** True when this module was started as `node <file> child ...`. */
export function isChild(moduleUrl) {
  return process.argv[1] !== undefined && pathToFileURL(process.argv[1]).href === moduleUrl && process.argv[2] === 'child';
}

/**
 * Installs the child's last-resort handlers: an error that escapes is reported on stderr as
 * `CHAOS-JS-ERROR name: message` and ends the child with {@link JS_ERROR_EXIT}.
 */
export function childMain(main) {
  const die = (err) => {
    process.stderr.write(`CHAOS-JS-ERROR ${err?.name ?? typeof err}: ${err?.message ?? String(err)}\n`);
    process.exit(JS_ERROR_EXIT);
  };
  process.on('uncaughtException', die);
  process.on('unhandledRejection', die);
  Promise.resolve().then(() => main(process.argv.slice(3))).then(() => process.exit(0), die);
}

const live = new Set();
// The parent dying first must not leave children (or redis-servers) behind.
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/**
 * Starts a child. `memLimitKb` runs it under `ulimit -v` (bash execs node, so a signal that ends
 * node is seen here as that signal, not as bash's 128+n). `timeoutMs` SIGKILLs it and marks the
 * end `timedOut`. `onLine` gets each stdout line as it arrives. `ipc` opens a message channel.
 * `command: [cmd, args]` starts that program instead of `node file child ...` (redis-server).
 * @returns `{ proc, kill(signal), done }`; `done` resolves to
 *   `{ code, signal, timedOut, killedByUs, stderr (last 4 KiB), ms }`.
 */
export function startChild(file, args = [], { memLimitKb, nodeArgs = [], env, timeoutMs, onLine, ipc = false, command } = {}) {
  const argv = [...nodeArgs, file, 'child', ...args.map(String)];
  const [cmd, cmdArgs] = command
    ? command
    : memLimitKb
      ? ['bash', ['-c', `ulimit -v ${memLimitKb} && exec "$0" "$@"`, process.execPath, ...argv]]
      : [process.execPath, argv];
  const t0 = Date.now();
  const proc = spawn(cmd, cmdArgs, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? ['ipc'] : [])],
  });
  live.add(proc);
  let stderr = '';
  let killedByUs = false;
  let timedOut = false;
  proc.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4096)));
  if (onLine) readline.createInterface({ input: proc.stdout }).on('line', onLine);
  else proc.stdout.resume();
  const kill = (signal = 'SIGKILL') => {
    if (proc.exitCode === null && proc.signalCode === null) {
      killedByUs = true;
      proc.kill(signal);
    }
  };
  const timer = timeoutMs ? setTimeout(() => ((timedOut = true), kill()), timeoutMs) : null;
  const done = new Promise((resolveDone) => {
    // 'close' (not 'exit'): every stdout line has been delivered by then.
    proc.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      live.delete(proc);
      resolveDone({ code, signal, timedOut, killedByUs, stderr, ms: Date.now() - t0 });
    });
    proc.once('error', (err) => {
      stderr += String(err);
    });
  });
  return { proc, kill, done };
}

/**
 * How a child ended, for the report: `ok` (exit 0), `killed` (by us, on purpose), `hang` (ran
 * past its timeout), `js-error` (a JavaScript error nothing caught: not a crash), `crash`
 * (a signal we did not send, or an exit code the child did not choose). A child that could not
 * load the package throws here: the run is void, not failed.
 */
export function outcome(end) {
  if (end.timedOut) return 'hang';
  if (end.killedByUs) return 'killed';
  if (end.signal) return 'crash';
  if (end.code === 0) return 'ok';
  if (end.code === JS_ERROR_EXIT) return 'js-error';
  if (end.code === NO_PACKAGE_EXIT) throw new Error(`a child could not load the package: ${describeEnd(end)} (run npm run build:ts; is lib/ being rebuilt?)`);
  return 'crash';
}

/** One line describing how a child ended, for failure lists. */
export function describeEnd(end) {
  const how = end.signal ? `signal ${end.signal}` : `exit ${end.code}`;
  // The first line says what went wrong (a Rust or C++ abort message), the last one how it ended.
  const lines = end.stderr.trim().split('\n').filter((l) => l.trim());
  const tail = [...new Set([lines[0], lines.at(-1)])].filter(Boolean).join(' … ').slice(0, 300);
  return `${how}${end.timedOut ? ' (timed out)' : ''}${tail ? `: ${tail}` : ''}`;
}

/** Seeded PRNG (mulberry32): every random choice of a child is replayable from its seed. */
export class Rng {
  constructor(seed) {
    this.a = seed >>> 0;
  }
  next() {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo, hi) {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  bool(p = 0.5) {
    return this.next() < p;
  }
  pick(xs) {
    return xs[Math.floor(this.next() * xs.length)];
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or `fallback` after `ms`; the timer is cleared so it never holds the process open. */
export async function within(promise, ms, fallback) {
  let timer;
  const late = new Promise((r) => (timer = setTimeout(() => r(fallback), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** An empty result row; scenarios fill in what they measure (null = not applicable). */
export function row(scenario, name) {
  return { scenario, name, tried: 0, cleanErrors: 0, crashes: 0, lost: null, overspend: null, rss: null, seconds: 0, notes: [], failures: [] };
}
