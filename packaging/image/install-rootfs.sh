#!/bin/bash
# install-rootfs.sh base|vm LINEBOX.deb TARGET_DIR — the appliance's root
# filesystem: a copy of the cached Debian tree (build-rootfs.sh) with the
# linebox package installed and the system set up as an appliance.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
FLAVOUR=$1
DEB=$(realpath "$2")
TARGET=$(realpath -m "$3")
BASE=$("$HERE/build-rootfs.sh" "$FLAVOUR")

rm -rf "$TARGET"
mkdir -p "$(dirname "$TARGET")"
cp -a --reflink=auto "$BASE" "$TARGET"
rm -f "$TARGET/.complete"

# Appliance-wide settings, before the package so its postinst sees them.
echo linebox >"$TARGET/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tlinebox\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    >"$TARGET/etc/hosts"
ln -sf /usr/share/zoneinfo/Asia/Shanghai "$TARGET/etc/localtime"
echo Asia/Shanghai >"$TARGET/etc/timezone"
# A new machine-id on every first boot: every appliance made from the
# image is its own machine (DHCP client id, journal).
: >"$TARGET/etc/machine-id"
rm -f "$TARGET/var/lib/dbus/machine-id"
install -D -m 0644 "$HERE/files/80-dhcp.network" "$TARGET/etc/systemd/network/80-dhcp.network"
install -D -m 0644 "$HERE/files/wait-online.conf" \
    "$TARGET/etc/systemd/system/systemd-networkd-wait-online.service.d/linebox.conf"
install -D -m 0644 "$HERE/files/journald.conf" "$TARGET/etc/systemd/journald.conf.d/linebox.conf"

cp "$DEB" "$TARGET/var/tmp/linebox.deb"
extra=""
[ "$FLAVOUR" = vm ] && extra="systemd-resolved ssh systemd-timesyncd"
systemd-nspawn --quiet --keep-unit --register=no --as-pid2 -D "$TARGET" \
    --setenv=DEBIAN_FRONTEND=noninteractive \
    sh -ec "dpkg -i /var/tmp/linebox.deb
            rm /var/tmp/linebox.deb
            systemctl enable systemd-networkd linebox.target $extra
            systemctl set-default multi-user.target
            # Debian's own daemons: linebox runs its own instances.
            systemctl mask kamailio.service rtpengine-daemon.service
            # The appliance needs none of these at boot.
            systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
                e2scrub_reap.service fstrim.timer 2>/dev/null || true
            # Root logs in on the console only with a password set by whoever
            # owns the machine; SSH keys are made at first boot.
            passwd -l root >/dev/null
            rm -f /etc/ssh/ssh_host_*"
if [ "$FLAVOUR" = vm ]; then
    ln -sf ../run/systemd/resolve/stub-resolv.conf "$TARGET/etc/resolv.conf"
fi
rm -f "$TARGET/usr/sbin/policy-rc.d"
rm -rf "$TARGET"/var/cache/apt/archives/*.deb "$TARGET"/var/log/journal/* "$TARGET"/tmp/*
echo "$TARGET ($(du -sxm "$TARGET" | cut -f1) MiB)"
