#!/usr/bin/env bash
# Side by side: the attention kernel of revision A against revision B (a git revision, or
# "worktree" for native/ as it is now), on the same buffers, decode of 32 query / 8 KV heads x 128.
#   scripts/attention-ab/run.sh A B [FORMAT...]     (formats: f32 f16 bf16 int8; default all)
# Env: CONTEXTS (default "4096 32768 131072"), REPEATS (default 2), THREADS (default 1).
# Prints B's speed relative to A per format and context ("B vs A 1.10x" = B 10 % faster).
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
[ $# -ge 2 ] || { sed -n 2,6p "$0"; exit 2; }
a=$1 b=$2
shift 2
formats=${*:-f32 f16 bf16 int8}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree() {  # $1 revision, $2 destination
  mkdir -p "$2"
  if [ "$1" = worktree ]; then cp -r "$root/native/." "$2"; else git -C "$root" archive "$1" native | tar -x -C "$2" --strip-components=1; fi
}
tree "$a" "$work/a"
tree "$b" "$work/b"
sed -e 's/namespace capibara/namespace capb/' -e 's/#pragma once//' "$work/b/attention/kernels.h" > "$work/kernels_b.h"
flags=(-O3 -std=c++17 -Wno-psabi -pthread)
g++ "${flags[@]}" -I"$work/a" -c "$work/a/attention/attend.cc" -o "$work/a.o" &
g++ "${flags[@]}" -I"$work/b" -Dcapibara=capb -c "$work/b/attention/attend.cc" -o "$work/b.o" &
wait
g++ "${flags[@]}" -I"$root/native" -c "$root/native/bench/floors.cc" -o "$work/floors.o"
g++ "${flags[@]}" -I"$work/a" -I"$work" "$root/scripts/attention-ab/ab.cc" "$work/a.o" "$work/b.o" "$work/floors.o" -o "$work/ab"
for ((i = 0; i < ${REPEATS:-2}; i++)); do
  for f in $formats; do
    for c in ${CONTEXTS:-4096 32768 131072}; do
      # About a second of kernel time per build and context.
      rounds=$((1 + 20000000 / (c * 8)))
      "$work/ab" "$c" "$rounds" "$f" "${THREADS:-1}"
    done
  done
done
