#!/usr/bin/env bash
# Prepares real module trees from Debian's kernel packages, cached between runs.
#   scripts/fetch-kernels.sh            -> prints "<flavour> <root> <version>" per kernel
# Each root holds lib/modules/<version>/ (with depmod's indexes) and boot/vmlinuz-<version>,
# so it can be given to `modprobe -d <root> -S <version>` and to `kmodload -d`.
# Flavours: 6.1 (plain .ko, no in-kernel decompression), 6.12 (.ko.xz, in-kernel xz).
set -euo pipefail

cache="${KMODLOAD_CACHE:-/var/cache/kmodload}"
mkdir -p "$cache/debs" "$cache/trees"

need() { command -v "$1" >/dev/null 2>&1 || { echo "fetch-kernels: missing $1 (apt-get install $2)" >&2; exit 1; }; }
need depmod kmod
need dpkg-deb dpkg
need apt-cache apt

# The meta packages name the current image package; the version moves, so resolve it.
resolve() {
  apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'
}

prepare() {
  local flavour=$1 meta=$2 pkg ver root deb
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
      (cd "$cache/debs" && apt-get download -q "$pkg" >/dev/null 2>&1) \
        || { echo "fetch-kernels: apt-get download $pkg failed" >&2; exit 1; }
      deb=$(ls "$cache/debs/${pkg}_"*.deb | head -n1)
    fi
    rm -rf "$root" && mkdir -p "$root"
    dpkg-deb -x "$deb" "$root"
    depmod -b "$root" "$ver"
    touch "$root/.ready"
  fi
  echo "$flavour $root $ver"
}

prepare 6.1 linux-image-amd64
prepare 6.12 linux-image-6.12-amd64
