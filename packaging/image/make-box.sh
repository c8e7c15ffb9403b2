#!/bin/bash
# make-box.sh DISK.raw OUT.box — a libvirt Vagrant box from the appliance's
# raw disk. The box alone gets a `vagrant` user with Vagrant's well-known
# insecure key (Vagrant replaces it with a new key on the first `vagrant up`)
# and password-less sudo: the plain image has no such door.
set -euo pipefail
SRC=$(realpath "$1")
OUT=$(realpath -m "$2")
KEY=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub | head -1)
W=$(mktemp -d "${TMPDIR:-/tmp}/linebox-box.XXXXXX")
MNT=$W/mnt
LOOP=""
cleanup() {
    set +e
    mountpoint -q "$MNT" && umount "$MNT"
    [ -n "$LOOP" ] && losetup -d "$LOOP"
    rm -rf "$W"
}
trap cleanup EXIT
mkdir "$MNT"
cp --sparse=always "$SRC" "$W/disk.raw"
LOOP=$(losetup --show -fP "$W/disk.raw")
for _ in $(seq 50); do
    [ -b "${LOOP}p1" ] && break
    partprobe "$LOOP" 2>/dev/null || true
    sleep 0.2
done
mount "${LOOP}p1" "$MNT"
chroot "$MNT" useradd -m -s /bin/bash -G sudo vagrant
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' >"$MNT/etc/sudoers.d/vagrant"
chmod 440 "$MNT/etc/sudoers.d/vagrant"
uid=$(chroot "$MNT" id -u vagrant)
gid=$(chroot "$MNT" id -g vagrant)
install -d -m 700 -o "$uid" -g "$gid" "$MNT/home/vagrant/.ssh"
install -m 600 -o "$uid" -g "$gid" "$KEY" "$MNT/home/vagrant/.ssh/authorized_keys"
fstrim "$MNT" 2>/dev/null || true
umount "$MNT"
losetup -d "$LOOP"
LOOP=""
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
