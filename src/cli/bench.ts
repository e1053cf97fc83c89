/**
 * `capibara bench`: runs the benchmarks (bench/run.mjs, each in a fresh process), which print
 * each table as soon as it is measured, with a progress bar and an ETA between benchmarks.
 * @module
 * @internal
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { nativePath } from '../native';
import { ROOT } from './args';

/** Runs bench/run.mjs with the filters; resolves with its exit code. */
export async function bench(filters: string[], quick: boolean): Promise<number> {
  const runner = join(ROOT, 'bench', 'run.mjs');
  if (!existsSync(runner)) {
    process.stderr.write(`capibara bench: ${runner} not found\n`);
    return 1;
  }
  // On the addon this package loads (a local build, else the prebuilt one), with the bench-only
  // capibara_bench.node from the same folder (bench/run.mjs looks only in build/Release otherwise).
  let addon = process.env['CAPIBARA_NATIVE_PATH'];
  try {
    addon ||= nativePath();
  } catch (err) {
    process.stderr.write(`capibara bench: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  const env = { ...process.env, CAPIBARA_NATIVE_PATH: addon };
  const child = spawn(process.execPath, [runner, ...filters, ...(quick ? ['--quick'] : [])], { cwd: ROOT, env, stdio: 'inherit' });
  const forward = (s: NodeJS.Signals) => child.kill(s);
  process.on('SIGINT', forward).on('SIGTERM', forward);
  try {
    return await new Promise<number>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
  } finally {
    process.off('SIGINT', forward).off('SIGTERM', forward);
  }
}
