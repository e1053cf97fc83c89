/**
 * `capibara bench`: runs the benchmarks (bench/run.mjs, each in a fresh process), which print
 * each table as soon as it is measured, with a progress bar and an ETA between benchmarks.
 * @module
 * @internal
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './args';

/** Runs bench/run.mjs with the filters; resolves with its exit code. */
export async function bench(filters: string[], quick: boolean): Promise<number> {
  const runner = join(ROOT, 'bench', 'run.mjs');
  if (!existsSync(runner)) {
    process.stderr.write(`capibara bench: ${runner} not found: the benchmarks come with a checkout of the repository, not the npm package\n`);
    return 1;
  }
  const child = spawn(process.execPath, [runner, ...filters, ...(quick ? ['--quick'] : [])], { cwd: ROOT, stdio: 'inherit' });
  const forward = (s: NodeJS.Signals) => child.kill(s);
  process.on('SIGINT', forward).on('SIGTERM', forward);
  try {
    return await new Promise<number>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
  } finally {
    process.off('SIGINT', forward).off('SIGTERM', forward);
  }
}
