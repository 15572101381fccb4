#!/usr/bin/env bash
# Fails when an addon needs a symbol version newer than the oldest supported host has:
# glibc 2.28 (EL8, openEuler 20.03) and its GCC 8 libstdc++ (GLIBCXX_3.4.25, CXXABI_1.3.11).
# Reads the dynamic symbol table with objdump -T (aarch64-linux-gnu-objdump for arm64 files).
#   scripts/make/check-glibc.sh FILE.node...
set -euo pipefail

max_glibc=2.28
max_glibcxx=3.4.25
max_cxxabi=1.3.11

[ $# -gt 0 ] || { echo "usage: check-glibc.sh FILE.node..." >&2; exit 2; }

# newer A B: whether version A is above B.
newer() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n1)" = "$1" ]; }

status=0
for file in "$@"; do
  [ -f "$file" ] || { echo "check-glibc: $file: no such file" >&2; exit 2; }
  objdump=objdump
  if LC_ALL=C readelf -h "$file" | grep -q 'Machine:.*AArch64'; then
    objdump=aarch64-linux-gnu-objdump
  fi
  command -v "$objdump" >/dev/null || { echo "check-glibc: missing $objdump (binutils)" >&2; exit 2; }
  syms=$("$objdump" -T "$file") || { echo "check-glibc: $objdump -T $file failed" >&2; exit 2; }
  # Lines of undefined symbols: "... *UND* ... (GLIBC_2.34) dlopen" or " GLIBC_2.34  dlopen".
  bad=$(printf '%s\n' "$syms" | awk '/\*UND\*/ {
      for (i = 1; i <= NF; i++) if ($i ~ /^\(?(GLIBC|GLIBCXX|CXXABI)_[0-9.]+\)?$/) {
        v = $i; gsub(/[()]/, "", v); print v, $NF
      }
    }' | while read -r ver sym; do
    case $ver in
      GLIBC_*) newer "${ver#GLIBC_}" "$max_glibc" && echo "$ver $sym" ;;
      GLIBCXX_*) newer "${ver#GLIBCXX_}" "$max_glibcxx" && echo "$ver $sym" ;;
      CXXABI_*) newer "${ver#CXXABI_}" "$max_cxxabi" && echo "$ver $sym" ;;
    esac
  done || true)
  highest=$(printf '%s\n' "$syms" | { grep -o 'GLIBC_[0-9.]*' || true; } | sort -uV | tail -n1)
  if [ -n "$bad" ]; then
    echo "check-glibc: $file needs more than glibc $max_glibc: $(echo "$bad" | sort -uV | tr '\n' ' ')" >&2
    status=1
  else
    echo "check-glibc: $file: highest ${highest:-none} (at most GLIBC_$max_glibc)"
  fi
done
exit $status
