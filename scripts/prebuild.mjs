// `npm run prebuild` (and `prepack`, so `npm pack` and `npm publish` ship it): builds the addons
// with cmake-js into build-prebuild/ (never build/, which a checkout's tests load) and copies
// them, stripped, into prebuildify's layout, prebuilds/<platform>-<arch>/: capibara.node and the
// bench-only capibara_bench.node, CPU only (see below). Node-API (binary.napi_versions), so one file serves every
// Node.js >= 20.19 on that platform, and the kernels pick their ISA at run time, so one x64 file
// serves every x64 CPU. Then it loads the copy in a fresh process and prints what it needs from
// the C/C++ runtime (the GLIBC/GLIBCXX versions, where objdump is installed).
//   node scripts/prebuild.mjs [extra cmake-js arguments]
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = 'build-prebuild';
const ADDONS = ['capibara.node', 'capibara_bench.node'];
const tuple = `${process.platform}-${process.arch}`;
const require = createRequire(import.meta.url);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`prebuild: ${[cmd, ...args].join(' ')} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})`);
    process.exit(1);
  }
}

const cmakeJs = join(require.resolve('cmake-js/package.json'), '..', 'bin', 'cmake-js');
// CPU only, on every build machine alike (CMake would add the CUDA kernels wherever nvcc is found):
// GPU users compile with the CUDA toolkit (npm rebuild @capibara/core --build-from-source). A
// later --CDCAPIBARA_CUDA=ON on the command line overrides it.
// Configured every time, so that the options given now hold (a `compile` of a configured folder
// keeps its cache), then built: incremental when nothing changed.
const args = ['--runtime', 'node', '--out', OUT, '--CDCAPIBARA_CUDA=OFF', ...process.argv.slice(2)];
run(process.execPath, [cmakeJs, 'configure', ...args]);
run(process.execPath, [cmakeJs, 'build', ...args]);

const dest = join(ROOT, 'prebuilds', tuple);
mkdirSync(dest, { recursive: true });
for (const name of ADDONS) {
  const to = join(dest, name);
  copyFileSync(join(ROOT, OUT, 'Release', name), to);
  // As prebuildify --strip: the symbol table only names static functions in native backtraces.
  if (process.platform === 'linux') run('strip', ['--strip-unneeded', to]);
  else if (process.platform === 'darwin') run('strip', ['-x', to]);
}

// Loads it as a user's process would, with nothing of the build around.
const file = join(dest, 'capibara.node');
const probe = `const m = { exports: {} }; process.dlopen(m, ${JSON.stringify(file)});
  const cuda = m.exports.cuda ? m.exports.cuda.info().compiled : false;
  console.log(JSON.stringify({ abi: m.exports.abiVersion, napi: m.exports.napiVersion, isa: m.exports.kernelIsa, cuda }))`;
const loaded = JSON.parse(execFileSync(process.execPath, ['-e', probe], { encoding: 'utf8' }));
const napi = require('../package.json').binary.napi_versions[0];
if (loaded.napi !== napi) {
  console.error(`prebuild: ${file} was built for Node-API ${loaded.napi}, package.json says ${napi}`);
  process.exit(1);
}
let needs = '';
const objdump = spawnSync('objdump', ['-T', file], { encoding: 'utf8' });
if (objdump.status === 0) {
  // Version strings compared part by part: 2.29 < 2.34 < 3.4.29.
  const newer = (a, b) => {
    const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)];
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
    return false;
  };
  const highest = (lib) =>
    [...objdump.stdout.matchAll(new RegExp(`\\(${lib}_([0-9.]+)\\)`, 'g'))].map((m) => m[1]).reduce((a, b) => (a === undefined || newer(b, a) ? b : a), undefined);
  const parts = [['GLIBC', highest('GLIBC')], ['GLIBCXX', highest('GLIBCXX')]].filter(([, v]) => v).map(([l, v]) => `${l}_${v}`);
  if (parts.length > 0) needs = `; needs ${parts.join(', ')}`;
}
const sizes = ADDONS.map((n) => `${n} ${(statSync(join(dest, n)).size / 1024).toFixed(0)} KiB`).join(', ');
console.log(`prebuild: prebuilds/${tuple}: ${sizes}; Node-API ${loaded.napi}, kernels on ${loaded.isa} here, CUDA ${loaded.cuda ? 'compiled in' : 'not compiled'}${needs}`);
