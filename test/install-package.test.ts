/**
 * The package as an app gets it: `npm run prebuild`, `npm pack`, then `npm install <tarball>` into
 * fresh apps in a temporary folder, with no C/C++ compiler, CMake or make on PATH, none of this
 * repository's npm settings, and dependencies from the npm registry (the machine's npm cache
 * first). Two apps: one installed with --ignore-scripts (no install script runs: the loader must
 * find the prebuilt addon by itself), one installed as usual with the documented ONNX Runtime flag
 * in its .npmrc (its install script must take the prebuilt addon and compile nothing).
 *
 * What it does not prove: better-sqlite3's install script downloads its binary from GitHub, which
 * this machine cannot reach; the second app gets that binary through better-sqlite3's documented
 * offline route (a local prebuild folder, README "Offline"), filled here from this repository's
 * own compiled copy. The pack runs with --ignore-scripts after the prebuild, because its
 * `prepare` would rebuild lib/ under the other test files (the test checks that `prepack` runs
 * the prebuild). Skipped, saying why, when npm cannot reach the registry.
 */
import { execFile, execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { underAsan } from './support/sanitizer';

const root = resolve(__dirname, '..');
const tuple = `${process.platform}-${process.arch}`;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  repository?: { url: string };
  homepage?: string;
  bugs?: { url: string };
  scripts: Record<string, string>;
};

function onPath(name: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    const file = join(dir, name);
    if (dir && existsSync(file)) return realpathSync(file);
  }
  return null;
}

// npm's settings from the `npm test` that runs this (npm_config_*, npm_package_*) stay out of the
// apps, and so does an addon override (CAPIBARA_NATIVE_PATH): the apps load what they installed.
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'CAPIBARA_NATIVE_PATH')) as NodeJS.ProcessEnv;

function registrySkipReason(): string | null {
  // The sanitizer run preloads ASan into every process (npm, cmake, the compiler too) and points
  // the loader at its own addon; what this file checks is the release package.
  if (underAsan) return 'the sanitizer run checks the addon, not the package (npm test does)';
  const npm = onPath('npm');
  if (!npm) return 'npm not found on PATH';
  const r = spawnSync(process.execPath, [npm, 'ping'], { env: cleanEnv, encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? null : `npm cannot reach the registry (npm ping: ${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)})`;
}
const skipReason = registrySkipReason();

describe.skipIf(skipReason !== null)('the packed package installed into a fresh app', () => {
  // vitest collects a skipped describe too: the folder is made only when the tests run.
  const work = skipReason === null ? mkdtempSync(join(tmpdir(), 'capibara-install-')) : join(tmpdir(), 'capibara-install-skipped');
  const appIgnore = join(work, 'app-ignore-scripts');
  const appScripts = join(work, 'app-scripts');
  // PATH with node, npm and sh only: no cc, c++, g++, clang, cmake or make.
  const bin = join(work, 'bin');
  const npmCli = onPath('npm')!;
  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    ...cleanEnv,
    PATH: bin,
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    npm_config_prefer_offline: 'true',
    ...extra,
  });
  const npm = (cwd: string, args: string[], extra?: NodeJS.ProcessEnv): SpawnSyncReturns<string> =>
    spawnSync(process.execPath, [npmCli, ...args], { cwd, env: env(extra), encoding: 'utf8', timeout: 240_000 });
  // The two installs run side by side (npm's cache takes concurrent use).
  const npmAsync = (cwd: string, args: string[], extra?: NodeJS.ProcessEnv): Promise<string> =>
    new Promise((done, fail) =>
      execFile(process.execPath, [npmCli, ...args], { cwd, env: env(extra), encoding: 'utf8', timeout: 240_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
        err ? fail(new Error(`npm ${args.join(' ')} in ${cwd} failed: ${err.message}\n${stdout}\n${stderr}`)) : done(stdout + stderr),
      ),
    );
  const ok = (r: SpawnSyncReturns<string>, what: string): string => {
    if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.error?.message}):\n${r.stdout}\n${r.stderr}`);
    return r.stdout + r.stderr;
  };
  const installed = (app: string) => join(app, 'node_modules', '@capibara', 'core');
  let files: string[] = [];
  let tarball = '';
  let scriptsLog = '';

  beforeAll(async () => {
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync(npmCli, join(bin, 'npm'));
    symlinkSync(onPath('sh') ?? '/bin/sh', join(bin, 'sh'));

    // The prebuilt addons (an incremental cmake-js build in build-prebuild/), then the tarball.
    execFileSync(process.execPath, [join(root, 'scripts', 'prebuild.mjs')], { cwd: root, env: cleanEnv, stdio: 'pipe' });
    const packed = execFileSync(process.execPath, [npmCli, 'pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: root, env: cleanEnv, encoding: 'utf8' });
    const [entry] = JSON.parse(packed) as [{ filename: string; files: { path: string }[] }];
    files = entry.files.map((f) => f.path);
    tarball = join(work, entry.filename);

    // App 1: npm install --ignore-scripts, no .npmrc at all.
    mkdirSync(appIgnore);
    writeFileSync(join(appIgnore, 'package.json'), JSON.stringify({ name: 'app-ignore-scripts', version: '1.0.0', private: true }));
    const ignoring = npmAsync(appIgnore, ['install', tarball, '--ignore-scripts']);

    // App 2: npm install with scripts; .npmrc holds the ONNX Runtime flag the README documents.
    // better-sqlite3's binary comes from a local prebuild folder (its offline route): this
    // repository's compiled copy, packed as its GitHub release asset is, for the same version.
    const bsqlDir = join(root, 'node_modules', 'better-sqlite3');
    const bsqlVersion = (JSON.parse(readFileSync(join(bsqlDir, 'package.json'), 'utf8')) as { version: string }).version;
    const prebuilds = join(work, 'better-sqlite3-prebuilds');
    mkdirSync(join(prebuilds, 'stage', 'build', 'Release'), { recursive: true });
    cpSync(join(bsqlDir, 'build', 'Release', 'better_sqlite3.node'), join(prebuilds, 'stage', 'build', 'Release', 'better_sqlite3.node'));
    const asset = `better-sqlite3-v${bsqlVersion}-node-v${process.versions.modules}-${tuple}.tar.gz`;
    execFileSync('tar', ['-czf', join(prebuilds, asset), '-C', join(prebuilds, 'stage'), 'build']);
    mkdirSync(appScripts);
    writeFileSync(
      join(appScripts, 'package.json'),
      JSON.stringify({ name: 'app-scripts', version: '1.0.0', private: true, overrides: { 'better-sqlite3': bsqlVersion } }),
    );
    writeFileSync(join(appScripts, '.npmrc'), 'onnxruntime-node-install=skip\n');
    const running = npmAsync(appScripts, ['install', tarball, '--foreground-scripts'], { npm_config_better_sqlite3_local_prebuilds: prebuilds });
    [, scriptsLog] = await Promise.all([ignoring, running]);
  }, 300_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }), 120_000);

  it('ships the prebuilt addons, LICENSE, the testing entry, the benchmarks and the sources to compile; no source maps, no src/', () => {
    for (const f of [`prebuilds/${tuple}/capibara.node`, `prebuilds/${tuple}/capibara_bench.node`, 'LICENSE', 'README.md', 'testing/index.js', 'testing/index.d.ts', 'bench/run.mjs', 'scripts/install.mjs', 'scripts/make-tiny-model.mjs', 'CMakeLists.txt', 'native/addon.cc', 'lib/index.d.mts', 'schema/capibara.config.schema.json']) {
      expect(files).toContain(f);
    }
    expect(files.filter((f) => f.endsWith('.map') || f.startsWith('src/') || f.startsWith('test/') || f.startsWith('bench/results/'))).toEqual([]);
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toContain('Copyright (c) 2026 the @capibara/core authors');
    expect([pkg.repository?.url, pkg.homepage, pkg.bugs?.url]).toEqual([
      'git+https://github.com/capibara-ai/capibara-core.git',
      'https://github.com/capibara-ai/capibara-core#readme',
      'https://github.com/capibara-ai/capibara-core/issues',
    ]);
    expect(pkg.scripts['prepack']).toBe('npm run prebuild');
    expect(pkg.scripts['install']).toBe('node scripts/install.mjs');
  });

  it('with --ignore-scripts and no compiler: every native entry point runs from the prebuilt addon, checked against references', () => {
    expect(existsSync(join(installed(appIgnore), 'build'))).toBe(false);
    cpSync(join(root, 'test', 'fixtures', 'install', 'native-entries.cjs'), join(appIgnore, 'native-entries.cjs'));
    const out = execFileSync(process.execPath, ['native-entries.cjs'], { cwd: appIgnore, env: env(), encoding: 'utf8' });
    const r = JSON.parse(out) as { file: string; exported: string[]; called: string[]; noDevice: string[]; cuda: { compiled: boolean; reason: string } };
    expect(r.file).toBe(join(installed(appIgnore), 'prebuilds', tuple, 'capibara.node'));
    expect(r.exported.length).toBeGreaterThanOrEqual(17);
    expect(r.called).toEqual(r.exported);
    // The prebuilt addon is CPU only (scripts/prebuild.mjs): GPU users compile it with the CUDA toolkit.
    expect([r.cuda.compiled, r.cuda.reason, r.noDevice]).toEqual([false, 'not compiled: built with CAPIBARA_CUDA=OFF', []]);
  });

  it('its install script takes the prebuilt addon and compiles nothing', () => {
    expect(scriptsLog).toContain(`@capibara/core: using the prebuilt addon prebuilds/${tuple}/capibara.node (kernels on `);
    expect(scriptsLog).not.toContain('compiling the addon');
    expect(existsSync(join(installed(appScripts), 'build'))).toBe(false);
    // ONNX Runtime's install script honoured the app's .npmrc: no CUDA provider fetched.
    expect(readdirSync(join(appScripts, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64')).filter((f) => f.includes('cuda'))).toEqual([]);
  });

  it('the examples run from the app and leave no temporary folder behind', () => {
    const examples = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.mjs'));
    cpSync(join(root, 'examples'), join(appScripts, 'examples'), { recursive: true });
    const tmp = join(work, 'examples-tmp');
    mkdirSync(tmp);
    for (const example of examples) {
      const r = spawnSync(process.execPath, [join('examples', example)], { cwd: appScripts, env: env({ TMPDIR: tmp }), encoding: 'utf8', timeout: 60_000 });
      // thinking-budget.mjs needs a completions server and says so.
      if (example === 'thinking-budget.mjs') expect([r.status, r.stderr]).toEqual([2, 'usage: node examples/thinking-budget.mjs <baseURL> <model> ["question"]\n']);
      else expect([example, r.status, r.status === 0 ? '' : r.stderr]).toEqual([example, 0, '']);
    }
    // ONNX Runtime writes $TMPDIR/.ses (its session id) whenever it creates a session.
    expect(readdirSync(tmp).filter((f) => f !== '.ses')).toEqual([]);
  }, 180_000);

  it('type-checks in a strict TypeScript app (no skipLibCheck) under nodenext, node10 and bundler resolution', async () => {
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    for (const f of ['consumer.ts', 'consumer.mts']) cpSync(join(root, 'test', 'fixtures', 'install', 'consumer.ts'), join(appIgnore, f));
    const common = ['--noEmit', '--strict', '--target', 'es2022', '--lib', 'es2023', '--types', 'node'];
    const modes: [string, string[]][] = [
      ['nodenext', ['--module', 'nodenext', '--moduleResolution', 'nodenext', 'consumer.ts', 'consumer.mts']],
      ['node10', ['--module', 'commonjs', '--moduleResolution', 'node10', 'consumer.ts']],
      ['bundler', ['--module', 'esnext', '--moduleResolution', 'bundler', 'consumer.ts']],
    ];
    const results = await Promise.all(
      modes.map(
        ([name, args]) =>
          new Promise<[string, number, string]>((done) =>
            execFile(process.execPath, [tsc, ...common, ...args], { cwd: appIgnore, env: env(), encoding: 'utf8' }, (err, stdout) =>
              done([name, err ? Number(err.code ?? 1) : 0, stdout]),
            ),
          ),
      ),
    );
    expect(results).toEqual(modes.map(([name]) => [name, 0, '']));
  }, 120_000);

  it("without a loadable addon, the loader's advice works in the app: npm rebuild @capibara/core", () => {
    const dir = installed(appIgnore);
    renameSync(join(dir, 'prebuilds'), join(work, 'prebuilds-aside'));
    const load = () => spawnSync(process.execPath, ['-e', "require('@capibara/core').topkGating(new Float32Array(2), { experts: 2, k: 1 })"], { cwd: appIgnore, env: env(), encoding: 'utf8' });
    const failed = load();
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain(`Could not load the @capibara/core native addon for ${tuple}`);
    expect(failed.stderr).toContain(`${join(dir, 'prebuilds', tuple, 'capibara.node')}: file not found`);
    expect(failed.stderr).toContain('npm rebuild @capibara/core');
    // No prebuilt addon and no compiler: the install script tries to compile and says what it needs.
    const rebuild = npm(appIgnore, ['rebuild', '@capibara/core', '--foreground-scripts']);
    expect(rebuild.status).not.toBe(0);
    expect(rebuild.stdout).toContain(`@capibara/core: compiling the addon from native/ (no prebuilt addon for ${tuple} in the package)`);
    expect(rebuild.stderr).toContain('It needs CMake >= 3.15 and a C++17 compiler');
    // A prebuilt addon that does not load here (a damaged file standing in for a binary built for
    // another C library or a newer glibc): the loader says why, the install script compiles instead.
    mkdirSync(join(dir, 'prebuilds', tuple), { recursive: true });
    writeFileSync(join(dir, 'prebuilds', tuple, 'capibara.node'), 'not a shared object');
    const damaged = load();
    expect(damaged.stderr).toMatch(new RegExp(`- ${join(dir, 'prebuilds', tuple, 'capibara.node').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*(invalid ELF header|too short)`));
    const rebuild2 = npm(appIgnore, ['rebuild', '@capibara/core', '--foreground-scripts']);
    expect(rebuild2.status).not.toBe(0);
    expect(rebuild2.stdout).toMatch(new RegExp(`@capibara/core: compiling the addon from native/ \\(the prebuilt prebuilds/${tuple}/capibara.node does not load here \\(Error: .+\\)\\)`));
    // With the prebuilt addon back, the same command takes it, and the package loads.
    rmSync(join(dir, 'prebuilds'), { recursive: true });
    renameSync(join(work, 'prebuilds-aside'), join(dir, 'prebuilds'));
    expect(ok(npm(appIgnore, ['rebuild', '@capibara/core', '--foreground-scripts']), 'npm rebuild')).toContain('@capibara/core: using the prebuilt addon');
    expect(load().status).toBe(0);
  }, 120_000);
});

if (skipReason !== null) it.skip(`the packed package installed into a fresh app: ${skipReason}`, () => undefined);
