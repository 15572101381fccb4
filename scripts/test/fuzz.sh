#!/usr/bin/env bash
# Fuzzes the index reader (native/src/index_reader.cc) and the insert path's file handling
# (native/src/module_file.cc, decompress.cc) with libFuzzer + ASan + UBSan, then the policy
# parser and evaluator (scripts/test/fuzz-policy.js, on the compiled dist/).
#   scripts/test/fuzz.sh [SECONDS]     run each for SECONDS (default 30); non-zero exit on a crash
# The corpus starts from the real modules.*.bin of the fixture trees and from a small tree
# made with depmod (small inputs mutate faster); it is kept in .cache/fuzz between runs and
# crashing inputs land in .cache/fuzz/crashes/.
set -euo pipefail

seconds=${1:-30}
repo=$(cd "$(dirname "$0")/../.." && pwd)
work="$repo/.cache/fuzz"
build="$work/build"
seeds="$work/seeds"
corpus="$work/corpus"
mkdir -p "$seeds" "$corpus" "$work/crashes"

command -v clang++ >/dev/null || { echo "fuzz: clang++ is needed (apt-get install clang)" >&2; exit 1; }

cmake -S "$repo/native" -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DKMODLOAD_FUZZ=ON >/dev/null
cmake --build "$build" >/dev/null

# Seeds: every index of every fixture tree, plus the indexes of a tree of a dozen modules.
while read -r flavour root version; do
  dir="$root/lib/modules/$version"
  for bin in "$dir"/modules.*.bin; do
    cp "$bin" "$seeds/$flavour-$(basename "$bin")"
  done
  if [ "$flavour" = 6.1 ] && [ ! -f "$seeds/small-modules.alias.bin" ]; then
    small=$(mktemp -d)
    mkdir -p "$small/lib/modules/$version"
    (cd "$dir" && find kernel/lib kernel/crypto -name '*.ko' | head -n 24 |
      cpio -pdm --quiet "$small/lib/modules/$version")
    depmod -b "$small" "$version"
    for bin in "$small/lib/modules/$version"/modules.*.bin; do
      cp "$bin" "$seeds/small-$(basename "$bin")"
    done
    rm -rf "$small"
  fi
done < <("$repo/scripts/test/fetch-kernels.sh")
# The checked-in depmod-made trees (empty indexes included), and seeds for the target's
# generator of hostile shapes (first byte 0xC5: shared child slots, cycles, many values).
for bin in "$repo"/test/fixtures/trees/*/lib/modules/*/modules.*.bin; do
  [ -f "$bin" ] && cp "$bin" "$seeds/fixture-$(echo "${bin#"$repo"/test/fixtures/trees/}" | tr / -)"
done
for params in '\x05\x20\x5f\x0f\xa0\x01' '\x08\x61\x00\x00\x10\x00ab' \
  '\x02\x2a\x00\x17\x70\x02*' '\x30\x20\x60\x00\x01\x03a*b?'; do
  printf "\xc5$params" >"$seeds/craft-$(printf '%s' "$params" | md5sum | cut -c1-8)"
done

echo "fuzz: running index_fuzz for ${seconds}s (corpus $corpus)"
"$build/index_fuzz" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 \
  -print_final_stats=1 -artifact_prefix="$work/crashes/" "$corpus" "$seeds"

# The insert path's file handling, seeded with a module (its first 48 KiB) compressed each way
# the kernel meets modules, whole and cut short.
files="$work/module-files"
mkdir -p "$files/corpus" "$files/seeds"
if [ ! -f "$files/seeds/plain" ]; then
  module=$("$repo/scripts/test/fetch-kernels.sh" | awk '$1 == "6.1" { print $2 "/lib/modules/" $3 }')
  head -c 49152 "$module/kernel/fs/fat/fat.ko" >"$files/seeds/plain"
  gzip -9 -c "$files/seeds/plain" >"$files/seeds/gzip"
  xz --check=crc32 -c "$files/seeds/plain" >"$files/seeds/xz"
  xz -c "$files/seeds/plain" >"$files/seeds/xz-crc64"
  zstd -q -c "$files/seeds/plain" >"$files/seeds/zstd"
  for kind in gzip xz zstd; do head -c 200 "$files/seeds/$kind" >"$files/seeds/$kind-cut"; done
fi
echo "fuzz: running module_file_fuzz for ${seconds}s (corpus $files/corpus)"
"$build/module_file_fuzz" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 \
  -print_final_stats=1 -artifact_prefix="$work/crashes/" "$files/corpus" "$files/seeds"

[ -f "$repo/dist/policy/index.js" ] || (cd "$repo" && npx tsc -p tsconfig.build.json)
node "$repo/scripts/test/fuzz-policy.js" "$seconds"
