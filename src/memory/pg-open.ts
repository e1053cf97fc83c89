/**
 * `MemAgent.open`'s PostgreSQL path: its options checked, the store opened.
 * @module
 */
import * as v from '../validate';
import { checkOptions, type MemAgentConfig } from './checks';
import type { MemAgentOpenOptions } from './mem-agent-types';
import { postgresOptions } from './pg-connection';
import { PgItemStore } from './pg-store';

/**
 * A PostgreSQL store opened for a MemAgent, with the MemAgent's options checked.
 * @internal
 */
export interface OpenedPostgres {
  config: MemAgentConfig;
  store: PgItemStore;
}

// Options that only mean something for a SQLite file.
const FILE_ONLY = ['path', 'synchronous'] as const;

/**
 * Opens the PostgreSQL store `options.postgres` names, or returns null when there is none (the
 * MemAgent is then a SQLite one).
 * @internal
 */
export async function openPostgres(options: MemAgentOpenOptions): Promise<OpenedPostgres | null> {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw v.typeError('options', 'an options object', options);
  const { postgres, ...rest } = options;
  if (postgres === undefined) return null;
  for (const k of FILE_ONLY) {
    if (rest[k] !== undefined) throw v.typeError(`options.${k}`, 'undefined with options.postgres (the items live in PostgreSQL)', rest[k]);
  }
  const pg = postgresOptions(postgres);
  const readonly = rest.readonly === undefined ? false : v.boolean('options.readonly', rest.readonly);
  const config = { ...checkOptions({ ...rest, readonly: undefined }), readonly };
  const store = await PgItemStore.open(pg, config.codec, config.embedder.dimensions, readonly, config.onCorrupt === 'skip');
  return { config, store };
}
