#!/usr/bin/env bash
# Prints the URL of the main Debian archive this machine's apt already uses (from the sources
# under /etc/apt, through apt-cache policy), or $KMODLOAD_DEBIAN_MIRROR when set.
#   scripts/test/debian-mirror.sh   -> e.g. "http://HOST/debian"
# The archive is the package file whose release is labelled Debian (not Debian-Security) with a
# plain codename (not -updates). A machine whose lists were never fetched shows no package
# files: then apt-get update runs once (root only).
set -euo pipefail

if [ -n "${KMODLOAD_DEBIAN_MIRROR:-}" ]; then
  echo "$KMODLOAD_DEBIAN_MIRROR"
  exit 0
fi

find_mirror() {
  apt-cache policy 2>/dev/null | awk '
    /^ *[0-9]+ (https?|file):/ { url = $2; next }
    /release / && url != "" {
      if ($0 ~ /l=Debian,/ && $0 ~ /n=[a-z]+,/) { print url; exit }
      url = ""
    }'
}

mirror=$(find_mirror)
if [ -z "$mirror" ] && [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  mirror=$(find_mirror)
fi
[ -n "$mirror" ] || { echo "debian-mirror: no Debian mirror in apt's sources (set KMODLOAD_DEBIAN_MIRROR)" >&2; exit 1; }
echo "$mirror"
