#!/usr/bin/env bash
# Builds the prebuilt addons that the npm package ships, with prebuildify:
#   prebuilds/linux-x64/kmodload.napi.glibc.node     (this machine's compiler)
#   prebuilds/linux-arm64/kmodload.napi.glibc.node   (g++-aarch64-linux-gnu)
# Node-API, so one file per platform and architecture serves every Node version >= 20.
# Each is checked to need nothing newer than glibc 2.28 (scripts/make/check-glibc.sh).
#   scripts/make/prebuild.sh [--if-missing] [x64] [arm64]     (default: both)
# --if-missing: only the architectures that prebuilds/ lacks (the tests' way to make sure).
# It builds in a scratch copy of the native sources, so the checkout's build/ (the
# development build the tests load) is left as it is. `npm pack` runs it (prepack); its
# progress goes to stderr, so `npm pack --json` keeps stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

if_missing=false
if [ "${1:-}" = --if-missing ]; then
  if_missing=true
  shift
fi
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x64 arm64)

# One build at a time (test files may ask at once); the lock goes when the script exits.
exec 9>"$repo/.prebuilds.lock"
flock 9
# What a prebuild was made from: a prebuild of other sources is stale, as good as missing.
sources=$(cat binding.gyp native/sources.txt native/src/* | sha256sum | cut -d' ' -f1)
if $if_missing; then
  wanted=("${arches[@]}")
  arches=()
  for arch in "${wanted[@]}"; do
    [ -f "prebuilds/linux-$arch/kmodload.napi.glibc.node" ] &&
      [ "$(cat "prebuilds/linux-$arch/.sources" 2>/dev/null)" = "$sources" ] || arches+=("$arch")
  done
  [ ${#arches[@]} -gt 0 ] || exit 0
fi

# node-gyp takes the headers of the Node it runs under from its install prefix, never a download.
if [ -z "${npm_config_nodedir:-}" ]; then
  prefix=$(dirname "$(dirname "$(command -v node)")")
  if [ -f "$prefix/include/node/node_api.h" ]; then export npm_config_nodedir=$prefix; fi
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/kmodload-prebuild.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cp -r binding.gyp package.json native "$scratch/"
ln -s "$repo/node_modules" "$scratch/node_modules"
rm -rf "$scratch/native/build" "$scratch/native/fuzz"

out=$(mktemp -d "$repo/.prebuilds.XXXXXX")
trap 'rm -rf "$scratch" "$out"' EXIT

for arch in "${arches[@]}"; do
  case $arch in
    x64)
      [ "$(uname -m)" = x86_64 ] || { echo "prebuild: x64 is built on an x86-64 machine" >&2; exit 1; }
      env=()
      strip=strip
      ;;
    arm64)
      command -v aarch64-linux-gnu-g++ >/dev/null \
        || { echo "prebuild: missing aarch64-linux-gnu-g++ (apt-get install g++-aarch64-linux-gnu)" >&2; exit 1; }
      env=(CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++
        AR=aarch64-linux-gnu-ar)
      strip=aarch64-linux-gnu-strip
      ;;
    *)
      echo "prebuild: unknown architecture $arch (x64, arm64)" >&2
      exit 1
      ;;
  esac
  rm -rf "$scratch/build"
  env ${env[@]+"${env[@]}"} "$repo/node_modules/.bin/prebuildify" --napi --tag-libc --name kmodload.napi \
    --arch "$arch" --strip --strip-bin "$strip" --out "$out" --quiet "$scratch" \
    || { echo "prebuild: prebuildify for linux-$arch failed" >&2; exit 1; }
  bash scripts/make/check-glibc.sh "$out/prebuilds/linux-$arch/kmodload.napi.glibc.node" >&2
  echo "$sources" >"$out/prebuilds/linux-$arch/.sources"
done

# Replace only the architectures built now.
mkdir -p prebuilds
for arch in "${arches[@]}"; do
  rm -rf "prebuilds/linux-$arch"
  mv "$out/prebuilds/linux-$arch" prebuilds/
done
ls prebuilds/*/*.node >&2
