#!/usr/bin/env bash
# Prepares a Debian root with debootstrap --variant=minbase, cached between runs:
#   scripts/test/fetch-roots.sh                -> prints "bullseye <root>": Debian 11 (glibc
#       2.31), a host with no compiler, no make, no python and no Node, on which the packed
#       tarball is installed (test/deploy)
#   scripts/test/fetch-roots.sh trixie-podman  -> prints "trixie-podman <root>": Debian 13 with
#       its podman (5.4), runc and crun, the second CDI engine (test/runtime/podman-cdi)
# The packages come from the Debian mirror this machine's apt already uses, or from
# KMODLOAD_DEBIAN_MIRROR (scripts/test/debian-mirror.sh).
set -euo pipefail

cache="${KMODLOAD_CACHE:-/var/cache/kmodload}"
name=${1:-bullseye}
case "$name" in
  bullseye) suite=bullseye include="" ;;
  trixie-podman) suite=trixie include="--include=podman,runc,crun" ;;
  *) echo "fetch-roots: unknown root '$name' (bullseye or trixie-podman)" >&2; exit 2 ;;
esac
root="$cache/roots/$name"
mkdir -p "$cache/roots"

need() { command -v "$1" >/dev/null 2>&1 || { echo "fetch-roots: missing $1 (apt-get install $2)" >&2; exit 1; }; }
need debootstrap debootstrap
need flock util-linux

exec 9>"$cache/.roots.lock"
flock 9

if [ -f "$root/.ready" ]; then
  echo "$name $root"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "fetch-roots: debootstrap needs root" >&2; exit 1; }

mirror=$(bash "$(dirname "$0")/debian-mirror.sh") || exit 1

scratch=""
cleanup() { [ -z "$scratch" ] || rm -rf "$scratch"; }
trap cleanup EXIT
scratch=$(mktemp -d "$cache/roots/.debootstrap-$name.XXXXXX")
chmod 755 "$scratch"
# $include is one word or none.
# shellcheck disable=SC2086
if ! debootstrap --variant=minbase $include "$suite" "$scratch" "$mirror" >"$scratch.log" 2>&1; then
  tail -n 20 "$scratch.log" >&2
  rm -f "$scratch.log"
  echo "fetch-roots: debootstrap $suite from $mirror failed" >&2
  exit 1
fi
rm -f "$scratch.log"
# Only what debootstrap's minbase brings (and the packages named): the deploy test relies on
# there being no toolchain.
rm -rf "$scratch/var/cache/apt/archives/"*.deb
touch "$scratch/.ready"
rm -rf "$root"
mv "$scratch" "$root"
scratch=""
echo "$name $root"
