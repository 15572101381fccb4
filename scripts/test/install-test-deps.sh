#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: kmod (modprobe, the oracle, and
# depmod), qemu and busybox (real kernels), runc (a real runtime), the compressors (fixtures),
# clang and its runtimes (sanitizer build, fuzzing), clang-format (lint), podman (a hooks.d client),
# the arm64 cross compiler (prebuilt addon) and debootstrap (the fresh-host root); and kubectl
# from Debian's kubernetes-client, unpacked into the cache rather than installed (another package
# may own /usr/bin/kubectl): scripts/test/fetch-kubectl.sh, which the manifest tests also run.
#   scripts/test/install-test-deps.sh [PACKAGE...]   (only those packages, e.g. for `npm run demo`)
set -euo pipefail
[ $# -ne 0 ] || bash "$(dirname "$0")/fetch-kubectl.sh" >/dev/null
pkgs=(kmod qemu-system-x86 busybox-static cpio runc podman zstd xz-utils gzip strace util-linux clang libclang-rt-14-dev clang-format
  g++-aarch64-linux-gnu debootstrap)
[ $# -eq 0 ] || pkgs=("$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
