#!/bin/bash
# assemble-disk.sh ROOTFS_DIR OUTPUT.raw [SIZE] — a BIOS-bootable raw disk
# (MBR, one ext4 partition, GRUB on the serial console and the screen) from
# a root filesystem with a kernel and grub-pc in it (build-rootfs.sh vm).
#
# Uses a loop device and a mount (no vfat here: BIOS boot, no EFI partition);
# both are undone on every exit. No udev either, so GRUB's root= is written
# as root=UUID=… by hand.
set -euo pipefail
ROOTFS=$(realpath "$1")
OUT=$(realpath -m "$2")
SIZE=${3:-8G}
MNT=$(mktemp -d "${TMPDIR:-/tmp}/linebox-disk.XXXXXX")
LOOP=""
cleanup() {
    set +e
    for m in run sys proc dev/pts dev; do
        mountpoint -q "$MNT/$m" && umount -l "$MNT/$m"
    done
    mountpoint -q "$MNT" && umount "$MNT"
    [ -n "$LOOP" ] && losetup -d "$LOOP"
    rmdir "$MNT"
}
trap cleanup EXIT

rm -f "$OUT"
truncate -s "$SIZE" "$OUT"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$OUT"
LOOP=$(losetup --show -fP "$OUT")
for _ in $(seq 50); do
    [ -b "${LOOP}p1" ] && break
    partprobe "$LOOP" 2>/dev/null || true
    sleep 0.2
done
[ -b "${LOOP}p1" ] || { echo "no partition device for $LOOP" >&2; exit 1; }
mkfs.ext4 -q -L linebox-root -E lazy_itable_init=1,lazy_journal_init=1 "${LOOP}p1"
UUID=$(blkid -s UUID -o value "${LOOP}p1")
mount "${LOOP}p1" "$MNT"
cp -a "$ROOTFS"/. "$MNT"/
echo "UUID=$UUID / ext4 errors=remount-ro,noatime 0 1" >"$MNT/etc/fstab"
for m in dev dev/pts proc sys run; do mount --bind "/$m" "$MNT/$m"; done

mkdir -p "$MNT/etc/default/grub.d"
cat >"$MNT/etc/default/grub.d/50-linebox.cfg" <<'GRUB'
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR="linebox"
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 net.ifnames=0"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB
# grub-pc upgrades install to the disk by its stable name, without asking.
echo "grub-pc grub-pc/install_devices multiselect /dev/vda" | chroot "$MNT" debconf-set-selections
chroot "$MNT" update-initramfs -c -k all >/dev/null
chroot "$MNT" grub-install --target=i386-pc "$LOOP" 2>&1 | grep -v "^Installing for" || true
chroot "$MNT" update-grub 2>/dev/null
sed -i "s|root=${LOOP}p1|root=UUID=$UUID|g" "$MNT/boot/grub/grub.cfg"
grep -q "root=UUID=$UUID" "$MNT/boot/grub/grub.cfg" || { echo "grub.cfg has no root=UUID" >&2; exit 1; }
rm -rf "$MNT"/var/lib/apt/lists/* "$MNT"/var/cache/apt/*.bin "$MNT"/var/cache/apt/archives/*.deb
sync
fstrim "$MNT" 2>/dev/null || true
echo "$OUT: $(df -BM --output=used "$MNT" | tail -1 | tr -d ' ') used of $SIZE, root UUID $UUID"
