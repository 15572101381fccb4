#!/usr/bin/env bash
# Builds the addon with AddressSanitizer + UndefinedBehaviorSanitizer (cmake-js, same
# sources as node-gyp) and runs the native tests against it.
#   scripts/test/test-asan.sh [VITEST ARGS...]     (default: test/native)
# The sanitizer runtime must be the first library in the process, so it is LD_PRELOADed into
# node. Leak detection is off: node itself keeps memory until exit by design. Any sanitizer
# report, in any process, fails the run.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

npx cmake-js compile -d native --out build-asan --CDKMODLOAD_SANITIZE=ON >/dev/null
addon="$repo/build-asan/Release/kmodload.node"
[ -f "$addon" ] || { echo "test-asan: $addon was not built" >&2; exit 1; }

# The runtime of the compiler that built the addon.
cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' build-asan/CMakeCache.txt)
if "$cxx" --version | grep -qi clang; then
  runtime=$("$cxx" -print-file-name=libclang_rt.asan-x86_64.so)
else
  runtime=$("$cxx" -print-file-name=libasan.so)
fi
[ -f "$runtime" ] || { echo "test-asan: no ASan runtime for $cxx ($runtime)" >&2; exit 1; }

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT

status=0
KMODLOAD_ADDON="$addon" \
  LD_PRELOAD="$runtime" \
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$reports/asan" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan" \
  npx vitest run "${@:-test/native}" || status=$?

if compgen -G "$reports/*" >/dev/null; then
  echo "test-asan: sanitizer reports:" >&2
  cat "$reports"/* >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "test-asan: tests failed under the sanitizers (status $status)" >&2
  exit "$status"
fi
echo "test-asan: no sanitizer reports ($runtime)"
