#!/usr/bin/env bash
# Prepares Debian 13 (trixie)'s containerd 1.7 and crun for the qemu guest, cached between runs.
#   scripts/test/fetch-containerd.sh   -> prints "<containerd version> <crun version> <dir>"
# <dir>/usr/bin holds containerd, containerd-shim-runc-v2 and ctr (they link to libc only, so
# they run beside Debian 12's libraries). <dir>/opt/crun holds crun (bin/crun) and, in lib/,
# trixie's dynamic loader and every library crun needs from trixie (glibc 2.41 among them):
# `lib/ld-linux-x86-64.so.2 --library-path lib bin/crun` runs it on Debian 12 without one
# trixie library in the places Debian 12's programs look. The host's apt is left as it is:
# trixie's package lists live in a sources list, an empty parts directory and a lists
# directory of their own under the cache, pointing at the Debian mirror the host already uses.
set -euo pipefail

cache="${KMODLOAD_CACHE:-/var/cache/kmodload}/containerd"
suite=trixie
mkdir -p "$cache"

need() { command -v "$1" >/dev/null 2>&1 || { echo "fetch-containerd: missing $1 (apt-get install $2)" >&2; exit 1; }; }
need dpkg-deb dpkg
need apt-get apt
need flock util-linux

exec 9>"$cache/.lock"
flock 9

apt_dir="$cache/apt"
mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial"
apt_options=(
  -o "Dir::Etc::SourceList=$apt_dir/sources.list"
  -o "Dir::Etc::SourceParts=$apt_dir/parts"
  -o "Dir::State::Lists=$apt_dir/lists"
)

refresh_lists() {
  local mirror
  mirror=$(bash "$(dirname "$0")/debian-mirror.sh") || exit 1
  echo "deb $mirror $suite main" > "$apt_dir/sources.list"
  apt-get "${apt_options[@]}" update -qq >/dev/null 2>&1 \
    || { echo "fetch-containerd: apt-get update of $suite failed" >&2; exit 1; }
}

candidate() { # PACKAGE
  apt-cache "${apt_options[@]}" policy "$1" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" {print $2}'
}

# crun and the packages it depends on, recursively (Depends and Pre-Depends only), as
# PACKAGE=VERSION words.
crun_closure() {
  local pkg version
  apt-cache "${apt_options[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances crun 2>/dev/null \
    | awk '/^[a-z0-9]/ {print $1}' | sort -u \
    | while read -r pkg; do
        version=$(candidate "$pkg")
        [ -n "$version" ] && echo "$pkg=$version"
      done
}

scratch=()
cleanup() { [ ${#scratch[@]} -eq 0 ] || rm -rf "${scratch[@]}"; }
trap cleanup EXIT

resolve() {
  containerd_version=$(candidate containerd)
  crun_version=$(candidate crun)
  [ -n "$containerd_version" ] && [ -n "$crun_version" ]
}

# The versions move: resolve them from the lists (fetched once, then again only when the cached
# lists name a package the mirror no longer has).
[ -f "$apt_dir/sources.list" ] || refresh_lists
resolve || { refresh_lists; resolve; } \
  || { echo "fetch-containerd: no containerd or no crun in $suite" >&2; exit 1; }

download() { # into the current directory
  # shellcheck disable=SC2046
  apt-get "${apt_options[@]}" download -q "containerd=$containerd_version" $(crun_closure) >/dev/null 2>&1
}

dir="$cache/containerd-$containerd_version-crun-$crun_version"
if [ ! -f "$dir/.ready" ]; then
  tmp=$(mktemp -d "$cache/.download.XXXXXX")
  scratch+=("$tmp")
  chmod 755 "$tmp"
  if ! (cd "$tmp" && download); then
    refresh_lists
    resolve || { echo "fetch-containerd: no containerd or no crun in $suite" >&2; exit 1; }
    dir="$cache/containerd-$containerd_version-crun-$crun_version"
    (cd "$tmp" && download) \
      || { echo "fetch-containerd: apt-get download of containerd and crun ($suite) failed" >&2; exit 1; }
  fi
  mkdir "$tmp/unpacked"
  for deb in "$tmp"/*.deb; do
    dpkg-deb -x "$deb" "$tmp/unpacked"
  done
  mkdir -p "$tmp/ready/usr/bin"
  for bin in containerd containerd-shim-runc-v2 ctr; do
    [ -x "$tmp/unpacked/usr/bin/$bin" ] || { echo "fetch-containerd: $bin not in the containerd package" >&2; exit 1; }
    mv "$tmp/unpacked/usr/bin/$bin" "$tmp/ready/usr/bin/"
  done

  # crun with its own loader and libraries: the loader lists what crun needs (as ldd does),
  # every one of which must come from the unpacked packages.
  libdir="$tmp/unpacked/usr/lib/x86_64-linux-gnu"
  loader="$libdir/ld-linux-x86-64.so.2"
  [ -x "$tmp/unpacked/usr/bin/crun" ] || { echo "fetch-containerd: crun not in the crun package" >&2; exit 1; }
  [ -x "$loader" ] || { echo "fetch-containerd: no ld-linux-x86-64.so.2 in $suite's libc6" >&2; exit 1; }
  mkdir -p "$tmp/ready/opt/crun/bin" "$tmp/ready/opt/crun/lib"
  cp "$tmp/unpacked/usr/bin/crun" "$tmp/ready/opt/crun/bin/"
  cp "$loader" "$tmp/ready/opt/crun/lib/"
  listing=$("$loader" --library-path "$libdir" --list "$tmp/unpacked/usr/bin/crun") \
    || { echo "fetch-containerd: crun's libraries do not resolve: $listing" >&2; exit 1; }
  while read -r soname arrow path _; do
    [ "$arrow" = "=>" ] || continue
    case "$soname" in */ld-linux-x86-64.so.2) continue ;; esac
    case "$path" in
      "$libdir"/*) cp -L "$path" "$tmp/ready/opt/crun/lib/$soname" ;;
      *) echo "fetch-containerd: crun's $soname is not in $suite's packages ($path)" >&2; exit 1 ;;
    esac
  done <<< "$listing"

  touch "$tmp/ready/.ready"
  rm -rf "$dir"
  mv "$tmp/ready" "$dir"
  # Older versions are not used any more (~100 MB each).
  find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'containerd-*' ! -name "$(basename "$dir")" \
    -exec rm -rf {} +
fi
echo "$containerd_version $crun_version $dir"
