#!/usr/bin/env bash
# Prepares Debian 13 (trixie)'s containerd 1.7 for the qemu guest, cached between runs.
#   scripts/test/fetch-containerd.sh   -> prints "<package version> <dir>"
# <dir>/usr/bin holds containerd, containerd-shim-runc-v2 and ctr (they link to libc only, so
# they run beside Debian 12's libraries). The host's apt is left as it is: trixie's package
# lists live in a sources list, an empty parts directory and a lists directory of their own
# under the cache, pointing at the Debian mirror the host already uses.
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

candidate() {
  apt-cache "${apt_options[@]}" policy containerd 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" {print $2}'
}

scratch=()
cleanup() { [ ${#scratch[@]} -eq 0 ] || rm -rf "${scratch[@]}"; }
trap cleanup EXIT

# The version moves: resolve it from the lists (fetched once, then again only when the cached
# lists name a package the mirror no longer has).
[ -f "$apt_dir/sources.list" ] || refresh_lists
version=$(candidate)
[ -n "$version" ] || { refresh_lists; version=$(candidate); }
[ -n "$version" ] || { echo "fetch-containerd: no containerd in $suite" >&2; exit 1; }

dir="$cache/$version"
if [ ! -f "$dir/.ready" ]; then
  tmp=$(mktemp -d "$cache/.download.XXXXXX")
  scratch+=("$tmp")
  chmod 755 "$tmp"
  if ! (cd "$tmp" && apt-get "${apt_options[@]}" download -q "containerd=$version" >/dev/null 2>&1); then
    refresh_lists
    version=$(candidate)
    dir="$cache/$version"
    (cd "$tmp" && apt-get "${apt_options[@]}" download -q "containerd=$version" >/dev/null 2>&1) \
      || { echo "fetch-containerd: apt-get download containerd=$version failed" >&2; exit 1; }
  fi
  deb=$(ls "$tmp"/containerd_*.deb 2>/dev/null | head -n1 || true)
  [ -n "$deb" ] || { echo "fetch-containerd: apt-get download gave no .deb" >&2; exit 1; }
  mkdir "$tmp/unpacked"
  dpkg-deb -x "$deb" "$tmp/unpacked"
  mkdir -p "$tmp/ready/usr/bin"
  for bin in containerd containerd-shim-runc-v2 ctr; do
    [ -x "$tmp/unpacked/usr/bin/$bin" ] || { echo "fetch-containerd: $bin not in $(basename "$deb")" >&2; exit 1; }
    mv "$tmp/unpacked/usr/bin/$bin" "$tmp/ready/usr/bin/"
  done
  touch "$tmp/ready/.ready"
  rm -rf "$dir"
  mv "$tmp/ready" "$dir"
  # Older versions are not used any more (~100 MB each).
  find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name apt ! -name "$version" ! -name '.*' \
    -exec rm -rf {} +
fi
echo "$version $dir"
