import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// These tests exercise the built package (lib/), as users get it: `npm test` rebuilds lib/ first.
const root = resolve(__dirname, '..');
const node = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  execFileSync(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', stdio: 'pipe' });

describe('package entry points', () => {
  it('imports from ESM and requires from CommonJS, sharing one instance', () => {
    const out = node([
      '--input-type=module',
      '-e',
      `import { topkGating, MoEGate } from '@capibara/core';
       import { createRequire } from 'node:module';
       const cjs = createRequire(import.meta.url)('@capibara/core');
       const r = topkGating(new Float32Array([1, 3, 2, 0]), { experts: 4, k: 2 });
       console.log(JSON.stringify({ idx: Array.from(r.indices), same: cjs.MoEGate === MoEGate && cjs.topkGating === topkGating }));`,
    ]);
    expect(JSON.parse(out)).toEqual({ idx: [1, 2], same: true });
    const cjsOut = node(['-e', `const { topkGating } = require('@capibara/core'); console.log(Array.from(topkGating(new Float32Array([0, 5]), { experts: 2, k: 1 }).indices).join())`]);
    expect(cjsOut.trim()).toBe('1');
  });

  it('ships types for both import and require', () => {
    const tsc = resolve(root, 'node_modules/typescript/bin/tsc');
    expect(() => node([tsc, '-p', 'test/fixtures/types/tsconfig.json'])).not.toThrow();
  });
});

describe('native loader', () => {
  const dir = mkdtempSync(join(tmpdir(), 'capibara-loader-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // A copy of lib/ with no build/ beside it, so only the override can load.
  cpSync(join(root, 'lib'), join(dir, 'lib'), { recursive: true });
  const load = (env: NodeJS.ProcessEnv) =>
    node(['-e', `try { require(${JSON.stringify(join(dir, 'lib', 'native.js'))}).native(); console.log('loaded') } catch (e) { console.log(e.message) }`], env);

  it('throws one error naming the platform, each path tried and how to build', () => {
    const msg = load({ CAPIBARA_NATIVE_PATH: '' });
    expect(msg).toContain(`Could not load the @capibara/core native addon for ${process.platform}-${process.arch}`);
    expect(msg).toContain(`${join(dir, 'build', 'Release', 'capibara.node')}: file not found`);
    expect(msg).toContain(`${join(dir, 'build', 'Debug', 'capibara.node')}: file not found`);
    expect(msg).toContain(`${join(dir, 'prebuilds', `${process.platform}-${process.arch}`, 'capibara.node')}: file not found`);
    // Commands that work in an app that installed the package, then the one of a checkout.
    expect(msg).toContain("Run the package's install script (npm install --ignore-scripts skips it): npm rebuild @capibara/core (");
    expect(msg).toContain('npm rebuild @capibara/core --build-from-source, or CAPIBARA_BUILD_FROM_SOURCE=1 npm rebuild @capibara/core (needs CMake >= 3.15 and a C++17 compiler');
    expect(msg).toContain('in a checkout of the repository: npm run build:native.');
  });

  it('reports a broken override with its real error, and loads a good one', () => {
    const bad = join(dir, 'bad.node');
    writeFileSync(bad, 'not a shared object');
    const msg = load({ CAPIBARA_NATIVE_PATH: bad });
    expect(msg).toMatch(new RegExp(`- ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .+`));
    const good = join(dir, 'good.node');
    cpSync(join(root, 'build', 'Release', 'capibara.node'), good);
    expect(load({ CAPIBARA_NATIVE_PATH: good }).trim()).toBe('loaded');
  });
});
