#!/bin/bash
# build-image.sh OUT_DIR — the appliance image, timed step by step:
#   OUT_DIR/linebox_<version>_amd64.deb   the package
#   OUT_DIR/linebox.raw                   BIOS-bootable raw disk (sparse, 8 GiB)
#   OUT_DIR/linebox.qcow2                 the same, compressed
#   OUT_DIR/linebox-libvirt.box           Vagrant box (libvirt)
#   OUT_DIR/linebox-virtualbox.box        Vagrant box (VirtualBox: OVF + VMDK)
# The Debian tree is cached in build/cache (see build-rootfs.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "${1:-$HERE/../../build}")
mkdir -p "$OUT"
STEPS="$OUT/image-steps.txt"
: >"$STEPS"
step() {
    local name=$1 t0
    shift
    t0=$(date +%s)
    "$@"
    echo "$name $(( $(date +%s) - t0 )) s" | tee -a "$STEPS"
}
total0=$(date +%s)
step deb "$HERE/../build-deb.sh" "$OUT"
DEB=$(ls -t "$OUT"/linebox_*_amd64.deb | head -1)
step rootfs-cached "$HERE/build-rootfs.sh" vm
step rootfs "$HERE/install-rootfs.sh" vm "$DEB" "$OUT/rootfs-vm"
step disk "$HERE/assemble-disk.sh" "$OUT/rootfs-vm" "$OUT/linebox.raw" 8192
step qcow2 qemu-img convert -c -O qcow2 "$OUT/linebox.raw" "$OUT/linebox.qcow2"
# The Vagrant boxes alone get a `vagrant` user with Vagrant's insecure key.
step box "$HERE/make-box.sh" "$OUT/rootfs-vm" "$OUT/linebox-libvirt.box" \
    "$OUT/linebox-virtualbox.box"
rm -rf "$OUT/rootfs-vm"
echo "total $(( $(date +%s) - total0 )) s" | tee -a "$STEPS"
du -h --apparent-size "$OUT/linebox.raw" | sed 's/^/apparent /'
du -h "$OUT/linebox.raw" "$OUT/linebox.qcow2" "$OUT/linebox-libvirt.box" \
    "$OUT/linebox-virtualbox.box" | tee -a "$STEPS"
