#!/usr/bin/env bash
# Builds the initramfs that the end-to-end suite boots under qemu, for one kernel tree.
#
#   scripts/test/qemu/build-initramfs.sh [--no-project] [--containerd] ROOT VERSION OUTDIR
#
# ROOT/VERSION come from scripts/test/fetch-kernels.sh. OUTDIR receives:
#   initrd.img   concatenated, uncompressed cpio (newc) archives, which the kernel unpacks in
#                turn (uncompressed: under TCG, gzip -1 delayed /init by ~4.6 s):
#                base (busybox, node, kmod, runc and their libraries; cached),
#                tree (the module subset with every modules.* index; cached per kernel),
#                containerd (with --containerd: Debian 13's containerd, its runc shim, ctr,
#                Debian 13's crun with its own loader and libraries under /opt/crun, and a
#                busybox OCI image; cached; ~100 MB, about 1 s more to boot),
#                project (kmodload as a user installs it, the scenario scripts, and a root
#                with the single executable and no node; always fresh)
#   tree/        the full module tree after recompression and depmod, for host-side oracles
#   modules.txt  the module files copied into the guest
# --no-project leaves kmodload out (to check the harness itself with modprobe only).
# --containerd adds the containerd layer and the CRI client (scenarios 14 and 17).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
project=$(cd "$here/../../.." && pwd)
with_project=1
with_containerd=0
while [ $# -gt 0 ]; do
  case "$1" in
    --no-project) with_project=0 ;;
    --containerd) with_containerd=1 ;;
    *) break ;;
  esac
  shift
done
[ $# -eq 3 ] || { echo "usage: $0 [--no-project] [--containerd] ROOT VERSION OUTDIR" >&2; exit 2; }
root=$1 version=$2 out=$3
moddir="$root/lib/modules/$version"
[ -f "$moddir/modules.dep" ] || { echo "build-initramfs: no module tree at $moddir" >&2; exit 1; }

cache="${KMODLOAD_CACHE:-/var/cache/kmodload}/qemu"
mkdir -p "$cache" "$out"
# Builds for two kernels may run at once (one test file per kernel): the cached layers are
# made by one of them at a time.
exec 9> "$cache/.lock"
flock 9

# A fresh CI machine may lack the tools; they all come from Debian packages.
missing=()
for tool in busybox:busybox-static node:nodejs modprobe:kmod depmod:kmod cpio:cpio runc:runc \
  zstd:zstd xz:xz-utils gzip:gzip; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null \
    || { apt-get update -qq >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
fi

node_bin=$(command -v node)
node_bin=$(readlink -f "$node_bin")
busybox_bin=$(readlink -f "$(command -v busybox)")
kmod_bin=$(readlink -f "$(command -v modprobe)")
runc_bin=$(readlink -f "$(command -v runc)")

# Debian is merged-/usr: /lib, /bin, /sbin and /lib64 are links into /usr. The guest copies
# that layout, so each file lands at its canonical /usr path.
canonical() {
  case "$1" in
    /usr/*) echo "$1" ;;
    /lib64/*|/lib/*|/bin/*|/sbin/*) echo "/usr$1" ;;
    *) echo "$1" ;;
  esac
}

# Copies a file (dereferenced) to its canonical place under the staging dir $1.
put() {
  local stage=$1 src=$2 dest
  dest="$stage$(canonical "${3:-$src}")"
  mkdir -p "$(dirname "$dest")"
  cp -L "$src" "$dest"
}

# Copies an executable (to DEST, default its own path) and every shared library ldd lists
# for it, the dynamic loader included.
put_with_libs() {
  local stage=$1 file=$2 dest=${3:-$2} lib
  put "$stage" "$file" "$dest"
  while read -r lib; do
    [ -n "$lib" ] && put "$stage" "$lib"
  done < <(ldd "$file" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
}

make_cpio() {
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$2"
}

# ---------- base layer: userland, cached on the identity of its inputs ----------
base_key=$(
  {
    stat -c '%n %s %Y' "$node_bin" "$busybox_bin" "$kmod_bin" "$runc_bin"
    sha256sum "$0" | cut -d' ' -f1
  } | sha256sum | cut -c1-16
)
base="$cache/base-$base_key.cpio"
if [ ! -f "$base" ]; then
  stage=$(mktemp -d "$cache/base-stage.XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage"/usr/{bin,sbin,lib,lib64} "$stage"/{dev,proc,sys,tmp,run,etc,root,mnt}
  ln -s usr/bin "$stage/bin"
  ln -s usr/sbin "$stage/sbin"
  ln -s usr/lib "$stage/lib"
  ln -s usr/lib64 "$stage/lib64"

  cp "$busybox_bin" "$stage/usr/bin/busybox"
  # Every applet except the module tools: those must be kmod's, the oracle.
  for applet in $("$busybox_bin" --list); do
    case "$applet" in
      busybox|insmod|rmmod|lsmod|modprobe|depmod|modinfo) continue ;;
    esac
    [ -e "$stage/usr/bin/$applet" ] || ln -s busybox "$stage/usr/bin/$applet"
  done

  put_with_libs "$stage" "$node_bin" /usr/bin/node
  put_with_libs "$stage" "$kmod_bin"
  for tool in modprobe insmod rmmod lsmod depmod modinfo; do
    ln -sf ../bin/kmod "$stage/usr/sbin/$tool"
  done
  put_with_libs "$stage" "$runc_bin"
  [ -e "$stage/usr/sbin/runc" ] || ln -s "$(canonical "$runc_bin")" "$stage/usr/sbin/runc"

  # The addon opens these at run time to decompress modules in user space.
  for soname in libz.so.1 liblzma.so.5 libzstd.so.1; do
    lib=$(ldconfig -p | awk -v n="$soname" '$1 == n && /x86-64/ && !found {print $NF; found = 1}')
    [ -n "$lib" ] || { echo "build-initramfs: $soname not found (apt-get install zlib1g liblzma5 libzstd1)" >&2; exit 1; }
    put "$stage" "$lib"
  done

  # The distribution's own modprobe.d files, as on a real Debian host.
  for conf in /usr/lib/modprobe.d/*.conf; do
    [ -f "$conf" ] && put "$stage" "$conf"
  done

  # A tiny container: a static busybox is its whole root filesystem.
  mkdir -p "$stage/opt/e2e/rootfs/bin"
  cp "$busybox_bin" "$stage/opt/e2e/rootfs/bin/busybox"
  for applet in sh cat echo wc; do ln -s busybox "$stage/opt/e2e/rootfs/bin/$applet"; done

  # The dynamic loader's cache, so node, runc and the addon's dlopen find the libraries.
  cp /etc/ld.so.conf "$stage/etc/"
  [ -d /etc/ld.so.conf.d ] && cp -r /etc/ld.so.conf.d "$stage/etc/"
  ldconfig -r "$stage"

  echo 'root:x:0:0:root:/root:/bin/sh' > "$stage/etc/passwd"
  echo 'root:x:0:' > "$stage/etc/group"
  make_cpio "$stage" "$base.tmp"
  rm -f "$cache"/base-*.cpio
  mv "$base.tmp" "$base"
  rm -rf "$stage"
  trap - EXIT
fi

# ---------- tree layer: the module subset, recompressed where scenarios need it ----------
# Module names whose files are replaced, per format (scenario 3). Separate modules, so each
# format is proven on its own.
case "$version" in
  # 6.1 ships plain .ko and cannot decompress: every format goes through user space.
  6.1.*) recompress="tcp_bic:xz-crc32 tcp_htcp:xz-crc64 tcp_highspeed:zst tcp_hybla:gz-content" ;;
  # 6.12 ships .ko.xz (CRC32) and decompresses xz itself; the rest falls back to user space.
  *) recompress="tcp_htcp:xz-crc64 tcp_highspeed:zst tcp_hybla:gz-content" ;;
esac

tree_key=$(
  {
    echo "$version $recompress"
    stat -c '%n %s %Y' "$moddir/modules.dep"
    sha256sum "$0" "$here/guest/modules.txt" | cut -d' ' -f1
  } | sha256sum | cut -c1-16
)
tree_cpio="$cache/tree-$version-$tree_key.cpio"
work="$cache/tree-$version-$tree_key"
if [ ! -f "$tree_cpio" ] || [ ! -f "$work/.ready" ]; then
  rm -rf "$cache/tree-$version-"*
  mkdir -p "$work/lib/modules"
  # Hard links keep the copy cheap; every file that changes is replaced, never written through.
  cp -al "$moddir" "$work/lib/modules/$version"
  wmod="$work/lib/modules/$version"
  # Prints the path (relative to the tree) of module $1 in modules.dep.
  module_path() {
    awk -v n="$1" -F: '{ f = $1; sub(/.*\//, "", f); sub(/\.ko(\.[a-z]+)?$/, "", f);
      gsub(/-/, "_", f); if (f == n && !found) { print $1; found = 1 } }' "$wmod/modules.dep"
  }
  # Writes the uncompressed module $2 (relative path) to file $1.
  decompress_to() {
    case "$2" in
      *.ko) cp "$wmod/$2" "$1" ;;
      *.ko.xz) xz -dc "$wmod/$2" > "$1" ;;
      *.ko.zst) zstd -qdc "$wmod/$2" > "$1" ;;
    esac
  }
  plain=$(mktemp)
  for item in $recompress; do
    name=${item%%:*} format=${item#*:}
    rel=$(module_path "$name")
    [ -n "$rel" ] || { echo "build-initramfs: $name not in $version" >&2; exit 1; }
    decompress_to "$plain" "$rel"
    stem=${rel%.ko*}.ko
    case "$format" in
      xz-crc32) rm -f "$wmod/$rel"; xz -z -c --check=crc32 "$plain" > "$wmod/$stem.xz" ;;
      xz-crc64) rm -f "$wmod/$rel"; xz -z -c "$plain" > "$wmod/$stem.xz" ;;
      zst) rm -f "$wmod/$rel"; zstd -q -19 -c "$plain" > "$wmod/$stem.zst" ;;
    esac
  done
  # Regenerate the indexes from the changed tree (the copies are links: remove, never rewrite).
  for f in modules.dep modules.dep.bin modules.alias modules.alias.bin modules.softdep \
    modules.symbols modules.symbols.bin modules.builtin.bin modules.builtin.alias.bin \
    modules.devname modules.weakdep; do
    rm -f "$wmod/$f"
  done
  depmod -b "$work" "$version"
  # Debian's kmod is built without zlib: depmod does not index a .ko.gz file. A gzip module
  # therefore keeps its indexed name and only its content changes, which a loader that goes
  # by magic bytes (as the kernel and kmodload do) must still load.
  for item in $recompress; do
    name=${item%%:*} format=${item#*:}
    [ "$format" = gz-content ] || continue
    rel=$(module_path "$name")
    decompress_to "$plain" "$rel"
    rm -f "$wmod/$rel"
    gzip -9 -n -c "$plain" > "$wmod/$rel"
  done
  rm -f "$plain"

  # The closure of every name the scenarios use, as kmod's modprobe computes it (softdeps
  # and every alias match included). Config-free on purpose: the guest's blacklist and
  # install rules must not hide modules from the image.
  empty_conf=$(mktemp -d)
  names=$(grep -v '^\s*#' "$here/guest/modules.txt" | tr -s ' \n' ' ')
  paths=$(modprobe -C "$empty_conf" -d "$work" -S "$version" -a --show-depends $names \
    | awk '$1 == "insmod" {print $2}' | sort -u)
  rmdir "$empty_conf"
  [ -n "$paths" ] || { echo "build-initramfs: empty module closure" >&2; exit 1; }

  stage=$(mktemp -d "$cache/tree-stage.XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  smod="$stage/usr/lib/modules/$version"
  mkdir -p "$smod"
  cp "$wmod"/modules.* "$smod/"
  : > "$work/modules.txt"
  for path in $paths; do
    rel=${path#"$wmod/"}
    mkdir -p "$smod/$(dirname "$rel")"
    cp "$path" "$smod/$rel"
    echo "$rel" >> "$work/modules.txt"
  done
  make_cpio "$stage" "$tree_cpio.tmp"
  mv "$tree_cpio.tmp" "$tree_cpio"
  rm -rf "$stage"
  trap - EXIT
  touch "$work/.ready"
fi

# ---------- containerd layer: Debian 13's containerd 1.7, crun and a local image (scenarios 14, 17) ----------
containerd_cpio=""
if [ "$with_containerd" = 1 ]; then
  read -r _ _ containerd_dir < <(bash "$project/scripts/test/fetch-containerd.sh") \
    || { echo "build-initramfs: scripts/test/fetch-containerd.sh failed" >&2; exit 1; }
  containerd_key=$(
    {
      stat -c '%n %s %Y' "$containerd_dir"/usr/bin/* "$containerd_dir"/opt/crun/*/* "$busybox_bin"
      sha256sum "$0" "$here/make-oci-image.sh" | cut -d' ' -f1
    } | sha256sum | cut -c1-16
  )
  containerd_cpio="$cache/containerd-$containerd_key.cpio"
  if [ ! -f "$containerd_cpio" ]; then
    stage=$(mktemp -d "$cache/containerd-stage.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage/usr/bin" "$stage/etc" "$stage/var/lib" "$stage/opt/cri"
    cp "$containerd_dir"/usr/bin/{containerd,containerd-shim-runc-v2,ctr} "$stage/usr/bin/"
    # crun needs trixie's glibc: its own loader runs it with its own libraries, named on the
    # loader's command line (not LD_LIBRARY_PATH), so the hooks and containers crun starts
    # see none of them. crun re-executes itself from /proc/self/cmdline, which keeps that form.
    mkdir -p "$stage/opt"
    cp -r "$containerd_dir/opt/crun" "$stage/opt/crun"
    printf '%s\n' '#!/bin/sh' \
      'exec /opt/crun/lib/ld-linux-x86-64.so.2 --library-path /opt/crun/lib /opt/crun/bin/crun "$@"' \
      > "$stage/usr/bin/crun"
    chmod 755 "$stage/usr/bin/crun"
    # As on Debian: /var/run is /run (the NRI socket's default path is under /var/run).
    ln -s ../run "$stage/var/run"
    # A host-network pod gets copies of the host's hosts and resolv.conf.
    printf '127.0.0.1 localhost\n::1 localhost\n' > "$stage/etc/hosts"
    : > "$stage/etc/resolv.conf"
    bash "$here/make-oci-image.sh" "$busybox_bin" localhost/kmodload-e2e:1 "$stage/opt/cri/image.tar"
    make_cpio "$stage" "$containerd_cpio.tmp"
    rm -f "$cache"/containerd-*.cpio
    mv "$containerd_cpio.tmp" "$containerd_cpio"
    rm -rf "$stage"
    trap - EXIT
  fi
fi
flock -u 9

# ---------- project layer: kmodload as installed by `npm install -g`, plus the scenarios ----------
stage=$(mktemp -d "${TMPDIR:-/tmp}/kmodload-project.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/opt/e2e" "$stage/etc/modprobe.d"
cp "$here"/guest/*.sh "$here"/guest/*.js "$stage/opt/e2e/"
cp "$here/guest/init" "$stage/init"
chmod 755 "$stage/init" "$stage"/opt/e2e/*.sh
cp "$here/guest/modprobe.conf" "$stage/etc/modprobe.d/kmodload-e2e.conf"
if [ "$with_containerd" = 1 ]; then
  cp "$here/guest/containerd.toml" "$stage/opt/e2e/"
  # The CRI client (test/e2e/cri) in one file: the guest has node but no node_modules.
  (cd "$project" && npx --no-install esbuild test/e2e/cri/main.ts --bundle --platform=node \
    --target=node20 --format=cjs --log-level=warning --outfile="$stage/opt/e2e/cri.js") >&2 \
    || { echo "build-initramfs: bundling the CRI client failed" >&2; exit 1; }
fi

# The container bundle: the runtime spec defaults, a command that proves the container ran,
# and KERNEL_MODULES as the seed asks. The hook entry is filled in inside the guest, from the
# configuration kmodload itself prints for this installation.
spec=$(mktemp -d)
(cd "$spec" && runc spec)
node -e '
  const fs = require("fs");
  const [specPath, outPath] = process.argv.slice(1);
  const c = JSON.parse(fs.readFileSync(specPath, "utf8"));
  c.process.terminal = false;
  c.process.args = ["/bin/sh", "-c", "echo container-ran"];
  c.process.env.push("KERNEL_MODULES=ip_vs,ip_vs_wrr");
  c.root = { path: "/opt/e2e/rootfs", readonly: true };
  fs.writeFileSync(outPath, JSON.stringify(c, null, 2));
' "$spec/config.json" "$stage/opt/e2e/config.template.json"
rm -rf "$spec"

if [ "$with_project" = 1 ]; then
  [ -f "$project/build/Release/kmodload.node" ] \
    || { echo "build-initramfs: build/Release/kmodload.node missing (run npm run build)" >&2; exit 1; }
  pkg="$stage/usr/lib/node_modules/kmodload"
  mkdir -p "$pkg/build/Release"
  # Compile the sources into the package, so the guest never runs a stale dist/.
  (cd "$project" && npx --no-install tsc -p tsconfig.build.json --outDir "$pkg/dist") >&2 \
    || [ -f "$pkg/dist/cli/main.js" ] \
    || { echo "build-initramfs: TypeScript build failed" >&2; exit 1; }
  [ -f "$pkg/dist/cli/main.js" ] || { echo "build-initramfs: dist/cli/main.js not built" >&2; exit 1; }
  # The CLI's bundled files with their code caches, as npm run build makes them.
  node "$project/scripts/make/bundle.js" "$pkg/dist/kmodload.js" \
    || { echo "build-initramfs: scripts/make/bundle.js failed" >&2; exit 1; }
  find "$pkg/dist" -name '*.map' -delete
  cp "$project/package.json" "$pkg/"
  cp -r "$project/bin" "$pkg/bin"
  cp "$project/build/Release/kmodload.node" "$pkg/build/Release/"
  # The runtime dependencies (package.json "dependencies", and theirs), in the package's own
  # node_modules as `npm install -g` puts them.
  node -e '
    const fs = require("fs"), path = require("path");
    const [project, pkg] = process.argv.slice(1);
    const copy = (name, seen) => {
      if (seen.has(name)) return;
      seen.add(name);
      const from = path.join(project, "node_modules", name);
      if (!fs.existsSync(from)) throw new Error(`dependency ${name} is not installed (npm ci)`);
      fs.cpSync(from, path.join(pkg, "node_modules", name), { recursive: true, dereference: true });
      const manifest = JSON.parse(fs.readFileSync(path.join(from, "package.json"), "utf8"));
      for (const dep of Object.keys(manifest.dependencies ?? {})) copy(dep, seen);
    };
    const manifest = JSON.parse(fs.readFileSync(path.join(project, "package.json"), "utf8"));
    const seen = new Set();
    for (const dep of Object.keys(manifest.dependencies ?? {})) copy(dep, seen);
  ' "$project" "$pkg" || { echo "build-initramfs: copying the runtime dependencies failed" >&2; exit 1; }
  # The compiled code may need only Node's own modules, the addon and those dependencies
  # (no devDependency). Fail loudly if it asks for anything else.
  node -e '
    const fs = require("fs"), path = require("path"), builtin = new Set(require("module").builtinModules);
    const root = process.argv[1];
    const installed = (id) => {
      const name = id.startsWith("@") ? id.split("/").slice(0, 2).join("/") : id.split("/")[0];
      return fs.existsSync(path.join(root, "node_modules", name, "package.json"));
    };
    const bad = [];
    const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) { if (e.name !== "node_modules") walk(p); }
      else if (p.endsWith(".js")) for (const m of fs.readFileSync(p, "utf8").matchAll(/(?:require|import)\(\s*["\x27]([^"\x27]+)["\x27]\s*\)/g)) {
        const id = m[1];
        if (!id.startsWith(".") && !builtin.has(id.replace(/^node:/, "")) && !require("module").isBuiltin(id) && !installed(id)) bad.push(`${p}: ${id}`);
      } } };
    walk(root);
    if (bad.length) { console.error("build-initramfs: runtime requires packages:\n" + bad.join("\n")); process.exit(1); }
  ' "$pkg"
  # The addon and its libraries.
  while read -r lib; do
    [ -n "$lib" ] && [ ! -e "$stage$(canonical "$lib")" ] && put "$stage" "$lib"
  done < <(ldd "$pkg/build/Release/kmodload.node" | awk '/=> \// {print $3}')
  mkdir -p "$stage/usr/bin"
  ln -s ../lib/node_modules/kmodload/bin/kmodload.js "$stage/usr/bin/kmodload"
  chmod 755 "$pkg/bin/kmodload.js"
fi
# ---------- a root with the single executable and no node (scenario 12) ----------
# /opt/nonode is chrooted into: build/kmodload, busybox, runc, the libraries they link to and
# the addon's decompression libraries, the modprobe.d files; the guest mounts the module tree,
# /proc, /sys, /dev and the container's rootfs into it.
if [ "$with_project" = 1 ]; then
  nonode="$stage/opt/nonode"
  mkdir -p "$nonode"/usr/{bin,sbin,lib,lib64} "$nonode"/{dev,proc,sys,tmp,run,etc,root}
  for d in bin sbin lib lib64; do ln -s "usr/$d" "$nonode/$d"; done
  node "$project/scripts/make/build-binary.js" "$nonode/usr/bin/kmodload" >&2 \
    || { echo "build-initramfs: npm run build:binary failed" >&2; exit 1; }
  while read -r lib; do
    [ -n "$lib" ] && put "$nonode" "$lib"
  done < <(ldd "$nonode/usr/bin/kmodload" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
  put_with_libs "$nonode" "$runc_bin" /usr/sbin/runc
  cp "$busybox_bin" "$nonode/usr/bin/busybox"
  for applet in sh cat ls test true; do ln -s busybox "$nonode/usr/bin/$applet"; done
  for soname in libz.so.1 liblzma.so.5 libzstd.so.1; do
    put "$nonode" "$(ldconfig -p | awk -v n="$soname" '$1 == n && /x86-64/ && !f {print $NF; f = 1}')"
  done
  mkdir -p "$nonode/etc/modprobe.d" "$nonode/usr/lib/modules" "$nonode/opt/e2e/rootfs"
  cp "$here/guest/modprobe.conf" "$nonode/etc/modprobe.d/kmodload-e2e.conf"
  for conf in /usr/lib/modprobe.d/*.conf; do
    [ -f "$conf" ] && put "$nonode" "$conf"
  done
  cp /etc/ld.so.conf "$nonode/etc/"
  [ -d /etc/ld.so.conf.d ] && cp -r /etc/ld.so.conf.d "$nonode/etc/"
  ldconfig -r "$nonode"
  echo 'root:x:0:0:root:/root:/bin/sh' > "$nonode/etc/passwd"
  echo 'root:x:0:' > "$nonode/etc/group"
fi
make_cpio "$stage" "$out/project.cpio"

cat "$base" "$tree_cpio" $containerd_cpio "$out/project.cpio" > "$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
rm -f "$out/project.cpio"
ln -sfn "$work" "$out/tree"
cp "$work/modules.txt" "$out/modules.txt"
echo "$out/initrd.img"
