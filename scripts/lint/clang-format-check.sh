#!/usr/bin/env bash
# Fails when a native source differs from what clang-format (native/.clang-format) makes of it.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v clang-format >/dev/null || { echo "clang-format missing (apt-get install clang-format)" >&2; exit 1; }
mapfile -t files < <(find native -name '*.cc' -o -name '*.h' | sort)
[ ${#files[@]} -gt 0 ] || exit 0
clang-format --dry-run --Werror "${files[@]}"
