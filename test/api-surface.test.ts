/**
 * The public API only grows: every export and member of the 0.1.0 surface
 * (test/fixtures/api-surface.json, taken from src/index.ts before the architecture step) is
 * still there with the same declared type. Additions are free; a change needs a reason below.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { apiSurface, portable } from './support/api-surface';

const CHANGED: Record<string, { from: string; to: string; why: string }> = {
  'RewiringExpertsOptions.embedder?': {
    from: 'Embedder | undefined',
    to: 'SyncEmbedder | undefined',
    why: 'routing answers synchronously; an async embedder was accepted by the type and refused at run time',
  },
  'ProfileScorerOptions.embedder?': {
    from: 'Embedder | undefined',
    to: 'SyncEmbedder | undefined',
    why: 'as RewiringExpertsOptions.embedder',
  },
  // A widening: MoEControlAPI implements ExpertPoolControl, so every existing call still compiles.
  'ExpertMonitor (class)': {
    from: '(control: MoEControlAPI, options?: MonitorOptions) => ExpertMonitor',
    to: '(control: ExpertPoolControl, options?: MonitorOptions) => ExpertMonitor',
    why: 'naming MoEControlAPI in the monitor is an import cycle (the control plane creates monitors)',
  },
  'ExpertCoordinator (class)': {
    from: '(control: MoEControlAPI, options?: CoordinatorOptions) => ExpertCoordinator',
    to: '(control: ExpertPoolControl, options?: CoordinatorOptions) => ExpertCoordinator',
    why: 'as ExpertMonitor',
  },
};

/**
 * A union of literals as a sorted set: TypeScript prints a union's members in the order the
 * checker first met them, which an unrelated file can change ('lz4' | 'gzip' | 'none' came
 * back as 'none' | 'lz4' | 'gzip'). Any other type text is kept as it is.
 */
function literalSet(type: string): string {
  const literal = '(?:"[^"]*"|-?\\d+(?:\\.\\d+)?|true|false|null|undefined)';
  if (!new RegExp(`^${literal}(?: \\| ${literal})+$`).test(type)) return type;
  return type.split(' | ').sort().join(' | ');
}

it('keeps every export and member of the published surface', () => {
  const before = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'api-surface.json'), 'utf8')) as Record<string, string>;
  const now = apiSurface(join(__dirname, '..', 'src', 'index.ts'));
  const diff: string[] = [];
  for (const [key, recorded] of Object.entries(before)) {
    const type = portable(recorded);
    const allowed = CHANGED[key];
    const expected = allowed && allowed.from === type ? allowed.to : type;
    if (!(key in now)) diff.push(`removed ${key}: ${type}`);
    else if (literalSet(now[key]!) !== literalSet(expected)) diff.push(`changed ${key}: ${type} -> ${now[key]}`);
  }
  expect(diff).toEqual([]);
}, 60_000);
