#!/bin/bash
# assemble-disk.sh ROOTFS_DIR OUTPUT.raw [SIZE_MiB] — a BIOS-bootable raw
# disk (MBR, one ext4 partition, GRUB on the serial console and the screen)
# from a root filesystem with a kernel and grub-pc in it (build-rootfs.sh vm).
#
# No loop device, no mount: the kernel here neither scans loop partitions nor
# has vfat. The initramfs and GRUB's core image are made inside the tree
# (systemd-nspawn), the file system is written straight into the disk file
# at the partition's offset (mkfs.ext4 -d), and GRUB's boot sector and core
# image are written before it. ROOTFS_DIR is modified (boot files, fstab).
set -euo pipefail
ROOTFS=$(realpath "$1")
OUT=$(realpath -m "$2")
SIZE_MIB=${3:-8192}
OFFSET_MIB=1

KVER=$(ls "$ROOTFS/lib/modules" | sort -V | tail -1)
UUID=$(cat /proc/sys/kernel/random/uuid)
nspawn() {
    systemd-nspawn --quiet --keep-unit --register=no --as-pid2 -D "$ROOTFS" "$@"
}
[ -e "$ROOTFS/boot/initrd.img-$KVER" ] || nspawn update-initramfs -c -k "$KVER" >/dev/null
nspawn grub-mkimage -O i386-pc -o /var/tmp/core.img -p "(hd0,msdos1)/boot/grub" \
    biosdisk part_msdos ext2 serial terminal
mv "$ROOTFS/var/tmp/core.img" "$ROOTFS.core.img"
trap 'rm -f "$ROOTFS.core.img"' EXIT
core_sectors=$(( ($(stat -c %s "$ROOTFS.core.img") + 511) / 512 ))
[ "$core_sectors" -lt 2047 ] || { echo "GRUB core image too big" >&2; exit 1; }

rm -rf "$ROOTFS/boot/grub/i386-pc"
mkdir -p "$ROOTFS/boot/grub"
cp -r "$ROOTFS/usr/lib/grub/i386-pc" "$ROOTFS/boot/grub/"
cat >"$ROOTFS/boot/grub/grub.cfg" <<GRUB
# Written by linebox's image build; update-grub on the appliance replaces it.
set timeout=1
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
insmod part_msdos
insmod ext2
search --no-floppy --fs-uuid --set=root $UUID
menuentry 'linebox (Debian 12)' {
  linux /boot/vmlinuz-$KVER root=UUID=$UUID ro quiet console=tty0 console=ttyS0,115200n8 net.ifnames=0
  initrd /boot/initrd.img-$KVER
}
GRUB
mkdir -p "$ROOTFS/etc/default/grub.d"
cat >"$ROOTFS/etc/default/grub.d/50-linebox.cfg" <<'GRUB'
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR="linebox"
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 net.ifnames=0"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB
# grub-pc upgrades install to the disk by its name in the VM, without asking.
echo "grub-pc grub-pc/install_devices multiselect /dev/vda" >"$ROOTFS/var/tmp/grub.debconf"
nspawn debconf-set-selections /var/tmp/grub.debconf
rm -f "$ROOTFS/var/tmp/grub.debconf"
echo "UUID=$UUID / ext4 errors=remount-ro,noatime 0 1" >"$ROOTFS/etc/fstab"
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin

rm -f "$OUT"
truncate -s "${SIZE_MIB}M" "$OUT"
printf 'label: dos\nstart=%d, type=83, bootable\n' $((OFFSET_MIB * 2048)) | sfdisk -q "$OUT"
mkfs.ext4 -q -L linebox-root -U "$UUID" -d "$ROOTFS" \
    -E offset=$((OFFSET_MIB << 20)),lazy_itable_init=1 "$OUT" "$(( (SIZE_MIB - OFFSET_MIB) * 256 ))"
# GRUB's boot sector (the first 440 bytes: the partition table stays) and
# its core image in the gap before the partition.
dd if="$ROOTFS/usr/lib/grub/i386-pc/boot.img" of="$OUT" bs=440 count=1 conv=notrunc status=none
dd if="$ROOTFS.core.img" of="$OUT" bs=512 seek=1 conv=notrunc status=none
echo "$OUT: ${SIZE_MIB} MiB disk, $(du -m "$OUT" | cut -f1) MiB used, root UUID $UUID"
