#!/usr/bin/env bash
# Prepares real module trees from Debian's kernel packages, cached between runs.
#   scripts/test/fetch-kernels.sh [FLAVOUR...] -> prints "<flavour> <root> <version>" per kernel
# Each root holds lib/modules/<version>/ (with depmod's indexes) and boot/vmlinuz-<version>,
# so it can be given to `modprobe -d <root> -S <version>` and to `kmodload -d`.
# Flavours: 6.1 (plain .ko, no in-kernel decompression), 6.12 (.ko.xz, in-kernel xz); both
# unless some are named.
set -euo pipefail

cache="${KMODLOAD_CACHE:-/var/cache/kmodload}"
mkdir -p "$cache/debs" "$cache/trees"

need() { command -v "$1" >/dev/null 2>&1 || { echo "fetch-kernels: missing $1 (apt-get install $2)" >&2; exit 1; }; }
need depmod kmod
need dpkg-deb dpkg
need apt-cache apt
need flock util-linux

# Test workers run this at the same time on a fresh machine: one prepares, the others wait
# and then find the trees ready. The lock goes when the script exits.
exec 9>"$cache/.lock"
flock 9

# Work in progress lives in temporary directories next to its destination and is moved into
# place only when complete, so a half-made tree or a partial .deb is never visible, not even
# after a crash.
scratch=()
cleanup() { [ ${#scratch[@]} -eq 0 ] || rm -rf "${scratch[@]}"; }
trap cleanup EXIT

# The meta packages name the current image package; the version moves, so resolve it.
resolve() {
  apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'
}

prepare() {
  local flavour=$1 meta=$2 pkg ver root deb tmp
  pkg=$(resolve "$meta")
  if [ -z "$pkg" ]; then
    apt-get update -qq >/dev/null
    pkg=$(resolve "$meta")
  fi
  [ -n "$pkg" ] || { echo "fetch-kernels: cannot resolve $meta" >&2; exit 1; }
  ver=${pkg#linux-image-}
  root="$cache/trees/$ver"
  if [ ! -f "$root/.ready" ]; then
    deb=$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
      tmp=$(mktemp -d "$cache/debs/.download.XXXXXX")
      scratch+=("$tmp")
      (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1) \
        || { echo "fetch-kernels: apt-get download $pkg failed" >&2; exit 1; }
      deb=$(ls "$tmp/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
      [ -n "$deb" ] || { echo "fetch-kernels: apt-get download $pkg gave no .deb" >&2; exit 1; }
      mv "$deb" "$cache/debs/"
      deb="$cache/debs/${deb##*/}"
    fi
    tmp=$(mktemp -d "$cache/trees/.unpack-$ver.XXXXXX")
    scratch+=("$tmp")
    chmod 755 "$tmp" # mktemp's 0700 would lock other users out of the tree
    dpkg-deb -x "$deb" "$tmp"
    depmod -b "$tmp" "$ver"
    touch "$tmp/.ready"
    # A tree without .ready is a leftover of an interrupted older run.
    rm -rf "$root"
    mv "$tmp" "$root"
  fi
  echo "$flavour $root $ver"
}

[ $# -gt 0 ] || set -- 6.1 6.12
for flavour in "$@"; do
  case "$flavour" in
    6.1) prepare 6.1 linux-image-amd64 ;;
    6.12) prepare 6.12 linux-image-6.12-amd64 ;;
    *) echo "fetch-kernels: unknown flavour $flavour (6.1 or 6.12)" >&2; exit 2 ;;
  esac
done
