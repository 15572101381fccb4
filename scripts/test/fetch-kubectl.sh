#!/usr/bin/env bash
# Unpacks kubectl from Debian's kubernetes-client package into the cache, without installing it
# (another package may own /usr/bin/kubectl), and prints the binary's path:
#   scripts/test/fetch-kubectl.sh   -> e.g. /var/cache/kmodload/kubectl/1.20.5+really1.20.2-1.1+deb12u1/usr/bin/kubectl
# The tests check the Kubernetes manifests with `kubectl create --dry-run=client`.
set -euo pipefail

cache="${KMODLOAD_CACHE:-/var/cache/kmodload}"
mkdir -p "$cache/debs" "$cache/kubectl"

need() { command -v "$1" >/dev/null 2>&1 || { echo "fetch-kubectl: missing $1 (apt-get install $2)" >&2; exit 1; }; }
need dpkg-deb dpkg
need apt-cache apt
need flock util-linux

exec 9>"$cache/.kubectl.lock"
flock 9

scratch=()
cleanup() { [ ${#scratch[@]} -eq 0 ] || rm -rf "${scratch[@]}"; }
trap cleanup EXIT

pkg=kubernetes-client
candidate() { apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2; exit}'; }
ver=$(candidate)
if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
  apt-get update -qq >/dev/null
  ver=$(candidate)
fi
[ -n "$ver" ] && [ "$ver" != "(none)" ] || { echo "fetch-kubectl: apt knows no $pkg" >&2; exit 1; }
root="$cache/kubectl/$ver"
if [ ! -f "$root/.ready" ]; then
  deb=$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | grep -F "_${ver//:/%3a}_" | head -n1 || true)
  if [ -z "$deb" ]; then
    tmp=$(mktemp -d "$cache/debs/.download.XXXXXX")
    scratch+=("$tmp")
    (cd "$tmp" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1) \
      || { echo "fetch-kubectl: apt-get download $pkg=$ver failed" >&2; exit 1; }
    deb=$(ls "$tmp/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
    [ -n "$deb" ] || { echo "fetch-kubectl: apt-get download $pkg gave no .deb" >&2; exit 1; }
    mv "$deb" "$cache/debs/"
    deb="$cache/debs/${deb##*/}"
  fi
  tmp=$(mktemp -d "$cache/kubectl/.unpack.XXXXXX")
  scratch+=("$tmp")
  chmod 755 "$tmp"
  dpkg-deb -x "$deb" "$tmp"
  [ -x "$tmp/usr/bin/kubectl" ] || { echo "fetch-kubectl: $deb has no usr/bin/kubectl" >&2; exit 1; }
  touch "$tmp/.ready"
  rm -rf "$root"
  mv "$tmp" "$root"
fi
echo "$root/usr/bin/kubectl"
