import * as fsp from 'node:fs/promises';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { loadState, saveState } from '../src/experts/routing/state-file';

// Every fs call of the module goes through these spies (by default the real functions), so a
// test can make one step fail, as a crash or a full disk would.
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  return { ...real, open: vi.fn(real.open), rename: vi.fn(real.rename) };
});

const real = await vi.importActual<typeof import('node:fs/promises')>('node:fs/promises');
const clockAt = (t: number) => ({ now: () => t });

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-state-'));
  path = join(dir, 'routing.json');
});
afterEach(async () => {
  vi.mocked(fsp.open).mockReset().mockImplementation(real.open);
  vi.mocked(fsp.rename).mockReset().mockImplementation(real.rename);
  await real.rm(dir, { recursive: true, force: true });
});

describe('saveState / loadState', () => {
  it('writes the envelope and reads the state back', async () => {
    const state = { graph: { version: 1, nodes: ['a'], edges: [] }, n: 3, s: 'é\u2028' };
    await saveState(path, state, clockAt(1_234));
    expect(JSON.parse(await real.readFile(path, 'utf8'))).toEqual({ format: 'capibara-routing', version: 1, savedAt: 1_234, state });
    expect(await loadState(path)).toEqual(state);
    expect(await real.readdir(dir)).toEqual(['routing.json']); // no temp file left
  });

  it('saves any JSON value, including null and a toJSON object', async () => {
    await saveState(path, null);
    expect(await loadState(path)).toBeNull();
    await saveState(path, { toJSON: () => [1, 2] });
    expect(await loadState(path)).toEqual([1, 2]);
  });

  it('replaces a previous file, writing only a temporary file beside it', async () => {
    await saveState(path, { v: 1 });
    vi.mocked(fsp.open).mockClear();
    await saveState(path, { v: 2 });
    const written = vi.mocked(fsp.open).mock.calls.filter(([, flags]) => flags !== 'r');
    expect(written).toHaveLength(1);
    expect(String(written[0]![0])).toMatch(/[/\\]\.routing\.json\.\d+\.[0-9a-f]{12}\.tmp$/);
    expect(await loadState(path)).toEqual({ v: 2 });
  });

  it('keeps the previous file whole when the rename fails (crash before the switch)', async () => {
    await saveState(path, { good: true });
    const good = await real.readFile(path, 'utf8');
    vi.mocked(fsp.rename).mockRejectedValueOnce(Object.assign(new Error('EXDEV: simulated crash'), { code: 'EXDEV' }));
    await expect(saveState(path, { good: false, big: 'x'.repeat(100_000) })).rejects.toThrow(
      new Error(`Could not save routing state to ${path}: EXDEV: simulated crash`),
    );
    expect(await real.readFile(path, 'utf8')).toBe(good);
    expect(await real.readdir(dir)).toEqual(['routing.json']);
  });

  it('keeps the previous file whole when the write fails part way', async () => {
    await saveState(path, { good: true });
    const good = await real.readFile(path, 'utf8');
    vi.mocked(fsp.open).mockImplementationOnce(async (...args: Parameters<typeof real.open>) => {
      const fh = await real.open(...args);
      // Half the data reaches the disk, then the device fails.
      fh.writeFile = async (data: unknown) => {
        await fh.write(String(data).slice(0, 10));
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      };
      return fh;
    });
    const err = await saveState(path, { good: false }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe(`Could not save routing state to ${path}: ENOSPC: no space left on device, write`);
    expect(((err as Error).cause as { code: string }).code).toBe('ENOSPC');
    expect(await real.readFile(path, 'utf8')).toBe(good);
    expect(await real.readdir(dir)).toEqual(['routing.json']);
  });

  it('keeps the previous file whole when fsync fails', async () => {
    await saveState(path, { good: true });
    vi.mocked(fsp.open).mockImplementationOnce(async (...args: Parameters<typeof real.open>) => {
      const fh = await real.open(...args);
      fh.sync = async () => {
        throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      };
      return fh;
    });
    await expect(saveState(path, { good: false })).rejects.toThrow(`Could not save routing state to ${path}: EIO: i/o error, fsync`);
    expect(await loadState(path)).toEqual({ good: true });
    expect(await real.readdir(dir)).toEqual(['routing.json']);
  });

  it('still saves where the directory cannot be opened for fsync', async () => {
    vi.mocked(fsp.open).mockImplementation(async (p, flags, mode) => {
      if (flags === 'r') throw Object.assign(new Error('EISDIR: illegal operation on a directory'), { code: 'EISDIR' });
      return real.open(p, flags, mode);
    });
    await saveState(path, { ok: 1 });
    expect(await loadState(path)).toEqual({ ok: 1 });
  });

  it('keeps every concurrent save whole; one of them wins', async () => {
    const saves = Array.from({ length: 8 }, (_, i) => saveState(path, { i, pad: 'p'.repeat(10_000 * i) }));
    await Promise.all(saves);
    const s = (await loadState(path)) as { i: number; pad: string };
    expect(s.pad).toBe('p'.repeat(10_000 * s.i));
    expect(await real.readdir(dir)).toEqual(['routing.json']);
  });
});

describe('saveState / loadState errors', () => {
  it('refuses values with no JSON form before touching the disk', async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(saveState(path, undefined)).rejects.toThrow(new TypeError('Expected JSON-serialisable value for state but received undefined'));
    await expect(saveState(path, () => 1)).rejects.toThrow(new TypeError('Expected JSON-serialisable value for state but received a function'));
    await expect(saveState(path, cyclic)).rejects.toThrow(new TypeError('Expected JSON-serialisable value for state but received object'));
    await expect(saveState(path, { n: 1n })).rejects.toThrow(new TypeError('Expected JSON-serialisable value for state but received object'));
    await expect(saveState('', {})).rejects.toThrow(new RangeError("Expected non-empty string for path but received '' of type string"));
    await expect(saveState(path, {}, { clock: 1 } as never)).rejects.toThrow(new TypeError("Unknown option 'clock' in options (expected one of: now)"));
    expect(await real.readdir(dir)).toEqual([]);
  });

  it('reports a missing file with the file system error and its code', async () => {
    const err = (await loadState(path).catch((e: unknown) => e)) as NodeJS.ErrnoException;
    expect(err.code).toBe('ENOENT');
    expect(err.message).toContain(path);
    await expect(loadState(7 as never)).rejects.toThrow(new TypeError('Expected non-empty string for path but received 7 of type number'));
  });

  it('refuses bad files with errors naming the path', async () => {
    const env = (over: object) => JSON.stringify({ format: 'capibara-routing', version: 1, savedAt: 5, state: {}, ...over });
    const cases: Array<[string, string]> = [
      ['', `Routing state file ${path} is not valid JSON: Unexpected end of JSON input`],
      ['{"format":"capibara-routing","ver', `Routing state file ${path} is not valid JSON: `],
      ['[1]', `Expected an object for the envelope in routing state file ${path} but received Array of length 1`],
      [env({ format: 'other' }), `Expected 'capibara-routing' for format in routing state file ${path} but received 'other' of type string`],
      [JSON.stringify({ nodes: [] }), `Expected 'capibara-routing' for format in routing state file ${path} but received undefined`],
      [env({ version: 0 }), `Expected integer >= 1 for version in routing state file ${path} but received 0 of type number`],
      [env({ version: 2 }), `Routing state file ${path} has version 2, written by a newer @capibara/core; this version reads up to 1`],
      [env({ savedAt: 'today' }), `Expected finite number for savedAt in routing state file ${path} but received 'today' of type string`],
      [JSON.stringify({ format: 'capibara-routing', version: 1, savedAt: 5 }), `Expected a JSON value for state in routing state file ${path} but received undefined`],
    ];
    for (const [text, message] of cases) {
      await real.writeFile(path, text);
      const err = (await loadState(path).catch((e: unknown) => e)) as Error;
      expect(err.constructor).toBe(Error);
      if (message.endsWith(': ')) expect(err.message.startsWith(message)).toBe(true);
      else expect(err.message).toBe(message);
    }
  });
});
