#!/bin/bash
# make-box.sh ROOTFS_DIR OUT.box — a libvirt Vagrant box from the appliance's
# root filesystem (as assemble-disk.sh left it). The box alone gets a
# `vagrant` user with Vagrant's well-known insecure key (Vagrant replaces it
# with a new key on the first `vagrant up`) and password-less sudo: the plain
# image has no such door. ROOTFS_DIR is modified.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOTFS=$(realpath "$1")
OUT=$(realpath -m "$2")
KEY=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub | head -1)
W=$(mktemp -d "${TMPDIR:-/tmp}/linebox-box.XXXXXX")
trap 'rm -rf "$W"' EXIT

systemd-nspawn --quiet --keep-unit --register=no --as-pid2 -D "$ROOTFS" \
    sh -ec 'id vagrant >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo vagrant'
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' >"$ROOTFS/etc/sudoers.d/vagrant"
chmod 440 "$ROOTFS/etc/sudoers.d/vagrant"
uid=$(stat -c %u "$ROOTFS/home/vagrant")
gid=$(stat -c %g "$ROOTFS/home/vagrant")
install -d -m 700 -o "$uid" -g "$gid" "$ROOTFS/home/vagrant/.ssh"
install -m 600 -o "$uid" -g "$gid" "$KEY" "$ROOTFS/home/vagrant/.ssh/authorized_keys"

"$HERE/assemble-disk.sh" "$ROOTFS" "$W/disk.raw" 8192 >/dev/null
qemu-img convert -c -O qcow2 "$W/disk.raw" "$W/box.img"
size_gb=$(( ($(stat -c %s "$W/disk.raw") + (1 << 30) - 1) >> 30 ))
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' "$size_gb" >"$W/metadata.json"
cat >"$W/Vagrantfile" <<'V'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.driver = "kvm"
    lv.memory = 1536
    lv.cpus = 2
  end
end
V
tar -C "$W" -cf "$OUT" metadata.json Vagrantfile box.img
echo "$OUT ($(du -h "$OUT" | cut -f1))"
