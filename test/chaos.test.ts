/**
 * Smoke test of the chaos harness (scripts/chaos, `npm run test:chaos`): that it tells a native
 * crash from a JavaScript error from a clean exit, and that a one-second fuzz run makes calls
 * and reports them. The scenarios themselves run in `npm run test:chaos`, not here: they take
 * minutes, and two of them report defects of issue 20 that are still open.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// @ts-expect-error -- plain ESM JavaScript without type declarations
import { outcome, startChild } from '../scripts/chaos/child.mjs';
// @ts-expect-error -- plain ESM JavaScript without type declarations
import { run as fuzz } from '../scripts/chaos/fuzz.mjs';
import { underAsan } from './support/sanitizer';

const dir = mkdtempSync(join(tmpdir(), 'capibara-chaos-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Ends a child script `body` (run as `node file child`) and classifies how it ended. */
async function ending(body: string, opts: Record<string, unknown> = {}): Promise<string> {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, `import { childMain } from ${JSON.stringify(join(__dirname, '..', 'scripts', 'chaos', 'child.mjs'))};\nchildMain(async () => { ${body} });\n`);
  return outcome(await startChild(file, [], opts).done);
}

describe('chaos harness', () => {
  it('classifies how a child ended', async () => {
    expect(await ending('')).toBe('ok');
    expect(await ending("throw new RangeError('bad');")).toBe('js-error');
    expect(await ending('process.abort();')).toBe('crash');
    // Under the sanitizer run ASan catches the SIGSEGV itself and files a report, which fails that run.
    if (!underAsan) expect(await ending("process.kill(process.pid, 'SIGSEGV');")).toBe('crash');
    expect(await ending('process.exit(3);')).toBe('crash');
    expect(await ending('await new Promise(() => setInterval(() => {}, 1000));', { timeoutMs: 300 })).toBe('hang');
    // A child that cannot load lib/ voids the run instead of counting as a crash or a loss.
    await expect(ending('process.exit(71);')).rejects.toThrow(/could not load the package/);
  });

  it('runs a short fuzz batch through the public kernels', async () => {
    const [row] = await fuzz({ budgetMs: 1500, seed: 7, callsPerBatch: 500 });
    expect(row.tried).toBeGreaterThan(0);
    expect(row.cleanErrors).toBeGreaterThan(0);
    expect(row.crashes, row.failures.join('\n')).toBe(0);
  });
});
