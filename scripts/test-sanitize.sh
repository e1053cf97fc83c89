#!/usr/bin/env bash
# Runs the native tests against the AddressSanitizer + UndefinedBehaviorSanitizer build of
# the addon (CMake option CAPIBARA_SANITIZE, see CMakeLists.txt).
#
#   npm run test:sanitize                              # build, then every test file
#   npm run test:sanitize -- test/native-fuzz.test.ts  # build, then only these files
#   npm run test:sanitize -- test/native-fuzz.test.ts -t 'known crashes'   (any vitest args)
#   CAPIBARA_SANITIZE_NO_BUILD=1 npm run test:sanitize # reuse build-sanitize/ and lib/
#
# Node itself is not built with ASan, so the compiler's ASan runtime is LD_PRELOADed into every
# process of the run (vitest, its fork workers, children they spawn): it must be the first
# library loaded so that its malloc/free interceptors see all memory. vitest and its rolldown
# binding run unchanged under it. The first report aborts its process; the run fails when
# vitest fails, when any ASan report file appears under $CAPIBARA_SANITIZE_LOGS (default
# build-sanitize/logs), or when a report shows up in the captured output (vitest.log there),
# so a crash in a process vitest does not watch still counts. The whole run is bounded by
# CAPIBARA_SANITIZE_TIMEOUT seconds (default 900) in case something hangs; fuzz-trace.txt in
# the log folder names the last fuzz call started.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BUILD_DIR="$ROOT/build-sanitize"
LOG_DIR="${CAPIBARA_SANITIZE_LOGS:-$BUILD_DIR/logs}"
TIMEOUT_S="${CAPIBARA_SANITIZE_TIMEOUT:-900}"

say() { printf '[test:sanitize] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

start=$SECONDS

if [[ "${CAPIBARA_SANITIZE_NO_BUILD:-0}" != 1 ]]; then
  say "building the sanitizer addon (npm run build:native:sanitize)"
  npm run --silent build:native:sanitize
  # Some tests load the compiled lib/ (worker threads, child processes), as `npm test` does.
  say "building lib/ (npm run build:ts)"
  npm run --silent build:ts
fi

# cmake-js --debug puts the addon in <out>/Debug; look elsewhere only if that ever changes.
ADDON="$BUILD_DIR/Debug/capibara.node"
if [[ ! -f "$ADDON" ]]; then
  ADDON="$(find "$BUILD_DIR" -name capibara.node -type f -print -quit 2>/dev/null || true)"
  [[ -n "$ADDON" ]] || die "no capibara.node under $BUILD_DIR after the build"
fi

# The runtime the addon was linked against (libasan.so.N), resolved by the compiler CMake used.
ASAN_SONAME="$(readelf -d "$ADDON" | sed -n 's/.*NEEDED.*\[\(libasan\.so[^]]*\)\].*/\1/p' | head -n 1)"
[[ -n "$ASAN_SONAME" ]] || die "$ADDON is not linked against libasan: was it built with -DCAPIBARA_SANITIZE=ON (GCC)?"
CXX="$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null | head -n 1)"
CXX="${CXX:-g++}"
LIBASAN="$("$CXX" -print-file-name="$ASAN_SONAME")"
[[ "$LIBASAN" == /* && -f "$LIBASAN" ]] || die "cannot find $ASAN_SONAME with $CXX -print-file-name"
say "addon:   $ADDON"
say "runtime: $LIBASAN"

rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

# vitest arguments: the script's (files, -t filters), else none: vitest then runs every file
# its config includes (test/**/*.test.ts), as `npm test` does; all of them load the addon,
# directly or through the public API.
ARGS=("$@")

# detect_leaks=0: V8 keeps memory until exit by design, LeakSanitizer would report all of it.
# allow_user_segv_handler=0: Node installs its own SIGSEGV handler (WebAssembly traps) that
#   would hide a wild access behind a bare "Segmentation fault"; keep ASan's, which reports it.
# abort_on_error / halt_on_error: the first report kills the process (vitest sees the worker die).
# ASan also writes each report to $LOG_DIR/asan.<pid>, so a crash in a process whose output
# nobody forwards still fails the run. UBSan reports go to stderr (GCC's UBSan runtime does not
# honour log_path reliably next to ASan's), which is captured in $LOG_DIR/vitest.log and searched.
export LD_PRELOAD="$LIBASAN${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allow_user_segv_handler=0:print_summary=1:log_path=$LOG_DIR/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export CAPIBARA_NATIVE_PATH="$ADDON"
# test/native-fuzz.test.ts then checks, inside the fork worker, that libasan and this addon
# are really what got loaded (so the environment did reach the workers).
export CAPIBARA_EXPECT_SANITIZER=1
export CAPIBARA_FUZZ_TRACE="$LOG_DIR/fuzz-trace.txt"

say "vitest run ${ARGS[*]:-(all test files)} under ASan + UBSan (timeout ${TIMEOUT_S}s)"
set +e
timeout --kill-after=30 "$TIMEOUT_S" "$ROOT/node_modules/.bin/vitest" run --pool=forks "${ARGS[@]}" 2>&1 \
  | tee "$LOG_DIR/vitest.log"
rc=${PIPESTATUS[0]}
set -e
unset LD_PRELOAD

reports=()
while IFS= read -r -d '' f; do reports+=("$f"); done < <(find "$LOG_DIR" -type f \( -name 'asan.*' -o -name 'ubsan.*' \) -print0)
for f in "${reports[@]}"; do
  say "sanitizer report $f:"
  cat "$f" >&2
done
# Reports printed to stderr (UBSan, or ASan in a process that overrode log_path).
printed="$(grep -Ec '(^|[^A-Za-z])(ERROR: AddressSanitizer|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer))|: runtime error: ' "$LOG_DIR/vitest.log" || true)"
if [[ ${#reports[@]} -gt 0 || "$printed" -gt 0 ]]; then
  say "sanitizer output found: ${#reports[@]} report file(s), $printed report line(s) in $LOG_DIR/vitest.log"
  grep -E -A3 ': runtime error: |ERROR: AddressSanitizer' "$LOG_DIR/vitest.log" | head -n 40 >&2 || true
  if [[ -s "$CAPIBARA_FUZZ_TRACE" ]]; then
    say "last fuzz calls started ($CAPIBARA_FUZZ_TRACE; async ones may still have been running):"
    tail -n 3 "$CAPIBARA_FUZZ_TRACE" >&2
  fi
  [[ $rc -ne 0 ]] || rc=1
fi

elapsed=$((SECONDS - start))
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
  say "FAILED: timed out after ${TIMEOUT_S}s (a hang?); last fuzz call: $(tail -n 1 "$CAPIBARA_FUZZ_TRACE" 2>/dev/null)"
elif [[ $rc -ne 0 ]]; then
  say "FAILED (exit $rc) in ${elapsed}s"
else
  say "passed clean under ASan + UBSan in ${elapsed}s"
fi
exit "$rc"
