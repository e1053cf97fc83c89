/**
 * Routing state on disk: one JSON file written atomically, so a crash mid-write leaves either
 * the previous file or the new one at the path, never a torn one.
 * @module
 */

import { readFile } from 'node:fs/promises';

import { writeFileAtomic } from '../../toolkit/atomic-write';
import * as v from '../../validate';

const FORMAT = 'capibara-routing';
const VERSION = 1;

/**
 * The file's content: the caller's state inside a tagged, versioned envelope.
 *
 * @example
 * ```ts
 * const file: RoutingStateEnvelope = { format: 'capibara-routing', version: 1, savedAt: Date.now(), state: { graph } };
 * ```
 */
export interface RoutingStateEnvelope {
  /** Always `'capibara-routing'`: tells this file from any other JSON. */
  format: 'capibara-routing';
  /** Layout version, 1; {@link loadState} refuses newer ones. */
  version: 1;
  /** When it was saved (clock ms). */
  savedAt: number;
  /** The saved state. */
  state: unknown;
}

/**
 * Options of {@link saveState}.
 *
 * @example
 * ```ts
 * await saveState('routing.json', state, { now: () => clock.now() });
 * ```
 */
export interface SaveStateOptions {
  /** Clock for `savedAt` (ms); default `Date.now`. */
  now?: () => number;
}

/**
 * Saves routing state as JSON, atomically: the envelope is written to a temporary file in the
 * same directory (`.<name>.<pid>.<random>.tmp`), flushed with fsync, renamed over `path`
 * (atomic on POSIX and on NTFS), then the directory is fsynced so the rename itself survives a
 * power loss (skipped where the platform cannot open directories, e.g. Windows). Until the
 * rename, `path` keeps its previous content; on any error the temporary file is removed.
 * Concurrent saves to one path each stay whole; the last rename wins. A crash can leave a stray
 * `.tmp` file beside `path`, never a torn `path`.
 *
 * @param path - Destination file.
 * @param state - Any JSON-serialisable value (e.g. `{ health: health.toJSON(), graph: graph.toJSON() }`).
 * @param options - Clock for `savedAt`.
 * @returns Resolves once the file is durable.
 * @example
 * ```ts
 * await saveState('/var/lib/app/routing.json', { health: health.toJSON(), graph: graph.toJSON() });
 * ```
 */
export async function saveState(path: string, state: unknown, options?: SaveStateOptions): Promise<void> {
  v.nonEmptyString('path', path);
  const o = v.options<SaveStateOptions>('options', options, ['now']);
  const now = v.optionalFunction<() => number>('options.now', o.now) ?? Date.now;
  let body: string | undefined;
  try {
    body = JSON.stringify(state);
  } catch (err) {
    // Cycles and BigInts: refuse before touching the disk.
    throw new TypeError(`Expected JSON-serialisable value for state but received ${v.describe(state)}`, { cause: err });
  }
  // undefined, functions and symbols have no JSON form.
  if (body === undefined) throw v.typeError('state', 'JSON-serialisable value', state);
  const head: Omit<RoutingStateEnvelope, 'state'> = { format: FORMAT, version: VERSION, savedAt: now() };
  const text = `${JSON.stringify(head).slice(0, -1)},"state":${body}}`;

  try {
    await writeFileAtomic(path, text);
  } catch (err) {
    throw new Error(`Could not save routing state to ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Loads state saved by {@link saveState}, checking its envelope.
 *
 * @param path - The file.
 * @returns The saved `state`.
 * @throws The file system's error (naming the path, with its `code`, e.g. `'ENOENT'`) when it
 *   cannot be read; an `Error` naming the path when it is not valid JSON, not a
 *   `capibara-routing` envelope, or of a newer version than this library reads.
 * @example
 * ```ts
 * const saved = (await loadState('routing.json')) as { graph: ExpertGraphJSON };
 * const graph = ExpertGraph.fromJSON(saved.graph);
 * ```
 */
export async function loadState(path: string): Promise<unknown> {
  v.nonEmptyString('path', path);
  const text = await readFile(path, 'utf8');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`Routing state file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const bad = (field: string, expected: string, value: unknown): Error =>
    new Error(`Expected ${expected} for ${field} in routing state file ${path} but received ${v.describe(value)}`);
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw bad('the envelope', 'an object', data);
  const e = data as Partial<RoutingStateEnvelope>;
  if (e.format !== FORMAT) throw bad('format', `'${FORMAT}'`, e.format);
  if (typeof e.version !== 'number' || !Number.isInteger(e.version) || e.version < 1) throw bad('version', 'integer >= 1', e.version);
  if (e.version > VERSION) {
    throw new Error(
      `Routing state file ${path} has version ${e.version}, written by a newer @capibara/core; this version reads up to ${VERSION}`,
    );
  }
  if (typeof e.savedAt !== 'number' || !Number.isFinite(e.savedAt)) throw bad('savedAt', 'finite number', e.savedAt);
  if (!('state' in e)) throw bad('state', 'a JSON value', undefined);
  return e.state;
}
