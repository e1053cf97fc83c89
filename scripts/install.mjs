// The package's install script (`npm install`, `npm rebuild @capibara/core`), as node-gyp-build's:
// the prebuilt addon for this platform (prebuilds/<platform>-<arch>/capibara.node, shipped in the
// package) is used when it loads here; otherwise the addon is compiled from native/ with cmake-js
// into build/ (CMake >= 3.15 and a C++17 compiler). It compiles anyway with `--build-from-source`
// (npm_config_build_from_source=true) or CAPIBARA_BUILD_FROM_SOURCE=1, and in a checkout of the repository
// (a .git folder), where native/ is what is being worked on. Nothing is downloaded.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const tuple = `${process.platform}-${process.arch}`;
const say = (line) => console.log(`@capibara/core: ${line}`);

function onPath(name) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, name)));
}

// prebuildify's folders: linux-x64, or several architectures in one (darwin-x64+arm64); one
// architecture first. Same choice as the loader (src/native.ts).
function prebuildFolder() {
  let names = [];
  try {
    names = readdirSync(join(ROOT, 'prebuilds'));
  } catch {
    return undefined;
  }
  const fits = names
    .map((name) => ({ name, parts: name.split('-') }))
    .filter(({ parts }) => parts.length === 2 && parts[0] === process.platform && parts[1].split('+').includes(process.arch))
    .sort((a, b) => a.parts[1].split('+').length - b.parts[1].split('+').length);
  return fits[0] && join(ROOT, 'prebuilds', fits[0].name);
}

// Loads the prebuilt addon in a fresh process, as the package will: a binary for another C
// library (musl), or one that needs a newer glibc or libstdc++ than this machine has, fails here.
function tryPrebuild() {
  const folder = prebuildFolder();
  if (!folder) return `no prebuilt addon for ${tuple} in the package`;
  const file = join(folder, 'capibara.node');
  if (!existsSync(file)) return `${relative(ROOT, file)} is missing`;
  const probe = `const m = { exports: {} }; process.dlopen(m, ${JSON.stringify(file)});
    if (typeof m.exports.abiVersion !== 'number') throw new Error('not a capibara addon');
    process.stdout.write(m.exports.kernelIsa);`;
  const r = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' });
  if (r.status === 0) {
    say(`using the prebuilt addon ${relative(ROOT, file)} (kernels on ${r.stdout} on this CPU)`);
    // The prebuilt addon is CPU only (scripts/prebuild.mjs); the CUDA kernels are compiled in here.
    if (onPath('nvcc')) say('it has no CUDA kernels; with the CUDA toolkit found (nvcc), `CAPIBARA_BUILD_FROM_SOURCE=1 npm rebuild @capibara/core` compiles them in');
    return null;
  }
  const reason = (r.stderr.split('\n').find((l) => /^\w*Error\b/.test(l)) ?? r.error?.message ?? `exit ${r.status}`).trim();
  return `the prebuilt ${relative(ROOT, file)} does not load here (${reason})`;
}

function compile(why) {
  say(`compiling the addon from native/ (${why})`);
  const require = createRequire(import.meta.url);
  let cmakeJs;
  try {
    cmakeJs = join(require.resolve('cmake-js/package.json'), '..', 'bin', 'cmake-js');
  } catch {
    say('cmake-js, a dependency of this package, is not installed: reinstall @capibara/core');
    process.exit(1);
  }
  const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--runtime', 'node', '--out', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(
      [
        `@capibara/core: compiling the addon failed (${why}).`,
        '  It needs CMake >= 3.15 and a C++17 compiler with GCC/Clang vector extensions (g++ 9+ or clang++ 10+; on Windows clang-cl),',
        '  then: npm rebuild @capibara/core',
      ].join('\n'),
    );
    process.exit(r.status ?? 1);
  }
}

// npm 11 passes --build-from-source on but warns that its next major will not: CAPIBARA_BUILD_FROM_SOURCE=1 lasts.
if (process.env.npm_config_build_from_source === 'true' || process.env.CAPIBARA_BUILD_FROM_SOURCE === '1') compile('build from source asked for');
else if (existsSync(join(ROOT, '.git'))) compile('a checkout of the repository');
else {
  const why = tryPrebuild();
  if (why !== null) compile(why);
}
