#!/usr/bin/env bash
# Writes a one-layer OCI image (an image-layout tar, as `ctr images import` reads it) whose root
# filesystem is a static busybox and whose entrypoint sleeps. The guest's containerd uses it
# both as the pod sandbox ("pause") image and as the containers' image.
#
#   scripts/qemu/make-oci-image.sh BUSYBOX REFERENCE OUT.tar
#
# Deterministic: the same busybox gives the same bytes (fixed names, owners and times).
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 BUSYBOX REFERENCE OUT.tar" >&2; exit 2; }
busybox=$1 reference=$2 out=$3

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
deterministic_tar() { # DIR OUT: the tree under DIR, sorted, owned by root, at time 0
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$1" -cf "$2" .
}
sha256() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/proc" "$work/rootfs/sys" \
  "$work/rootfs/dev" "$work/rootfs/tmp" "$work/layout/blobs/sha256"
cp "$busybox" "$work/rootfs/bin/busybox"
chmod 755 "$work/rootfs/bin/busybox"
for applet in sh sleep cat echo ls; do ln -s busybox "$work/rootfs/bin/$applet"; done
echo 'root:x:0:0:root:/:/bin/sh' > "$work/rootfs/etc/passwd"
echo 'root:x:0:' > "$work/rootfs/etc/group"
deterministic_tar "$work/rootfs" "$work/layer.tar"

# Uncompressed layer: its digest is also the config's diff_id.
layer=$(sha256 "$work/layer.tar")
cp "$work/layer.tar" "$work/layout/blobs/sha256/$layer"

# The entrypoint sleeps "forever" (busybox sleep takes seconds; a pod sandbox and the
# scenario's containers are stopped long before).
printf '%s' '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Entrypoint":["/bin/sleep","2147483647"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:'"$layer"'"]}}' \
  > "$work/config.json"
config=$(sha256 "$work/config.json")
cp "$work/config.json" "$work/layout/blobs/sha256/$config"

printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$config"'","size":'"$(size "$work/config.json")"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:'"$layer"'","size":'"$(size "$work/layer.tar")"'}]}' \
  > "$work/manifest.json"
manifest=$(sha256 "$work/manifest.json")
cp "$work/manifest.json" "$work/layout/blobs/sha256/$manifest"

# containerd names the imported image from io.containerd.image.name; the OCI ref.name
# annotation carries the same full reference for other readers.
printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$manifest"'","size":'"$(size "$work/manifest.json")"',"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"'"$reference"'","org.opencontainers.image.ref.name":"'"$reference"'"}}]}' \
  > "$work/layout/index.json"
printf '%s' '{"imageLayoutVersion":"1.0.0"}' > "$work/layout/oci-layout"

deterministic_tar "$work/layout" "$out.tmp"
mv "$out.tmp" "$out"
