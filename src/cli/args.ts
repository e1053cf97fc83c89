/**
 * What every subcommand of `capibara` shares: the usage error (exit 2), option parsing in the
 * validator's words, and the tiny model the demos run on.
 * @module
 * @internal
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as v from '../validate';

/** A bad command line: the command prints it with the usage and exits 2. */
export class UsageError extends Error {}

/** The package's root folder (lib/cli/ → ../..). */
export const ROOT = resolve(__dirname, '..', '..');

/** An integer option (`--port 8000`), checked as the validator does, named `--port`. */
export function int(name: string, value: string | undefined, min: number, max?: number): number | undefined {
  if (value === undefined) return undefined;
  return v.integer(name, /^-?\d+$/.test(value) ? Number(value) : value, min, max);
}

/** A number option. */
export function num(name: string, value: string | undefined, opts: { min?: number; positive?: boolean; max?: number } = {}): number | undefined {
  if (value === undefined) return undefined;
  const x = v.finite(name, /^-?(\d+\.?\d*|\.\d+)(e-?\d+)?$/i.test(value) ? Number(value) : value, opts);
  if (opts.max !== undefined && x > opts.max) throw v.rangeError(name, `number in [${opts.min ?? 0}, ${opts.max}]`, x);
  return x;
}

/** Makes the tiny test model (random weights) in a new temporary folder; returns the folder and the model's. */
export async function tinyModel(prefix: string): Promise<{ dir: string; modelDir: string }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const { makeTinyModel } = (await import(pathToFileURL(join(ROOT, 'scripts', 'make-tiny-model.mjs')).href)) as {
    makeTinyModel(dir: string): Promise<{ dir: string }>;
  };
  const { dir: modelDir } = await makeTinyModel(join(dir, 'tiny'));
  return { dir, modelDir };
}

/** `1234.5` ms as `1.23 s` or `12.3 ms`. */
export function ms(x: number): string {
  return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : x >= 10 ? `${x.toFixed(1)} ms` : `${x.toFixed(2)} ms`;
}
