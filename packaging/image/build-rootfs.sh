#!/bin/bash
# build-rootfs.sh FLAVOUR — print the path of a Debian 12 root filesystem
# with every package linebox needs, built once and cached.
#
#   base  systemd and linebox's dependencies: what `systemd-nspawn --boot`
#         needs (make test)
#   vm    base + kernel, GRUB, udev, SSH: what a virtual machine needs
#         (make image)
#
# The cache key is the package lists, the trim rules and this script, so a
# change to any of them builds anew; the result is never changed afterwards
# (callers copy it). debootstrap's and apt's downloads are kept in
# build/cache/apt, so even a rebuild downloads little.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
FLAVOUR=${1:?usage: build-rootfs.sh base|vm}
CACHE=${LINEBOX_BUILD_CACHE:-$SRC/build/cache}
SUITE=bookworm

# The mirrors: the ones this machine's apt uses (a CI machine may reach no
# other), unless DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR say otherwise. The
# image itself is left pointing at deb.debian.org (LINEBOX_IMAGE_MIRROR,
# LINEBOX_IMAGE_SECURITY_MIRROR), never at a build machine's own mirror.
host_mirror() {  # host_mirror security|main → a URI of that archive, or nothing
    apt-get indextargets --no-release-info --format '$(TARGET_OF) $(RELEASE) $(REPO_URI)' \
        2>/dev/null | awk -v want="$1" -v suite="$SUITE" '
            $1 != "deb" { next }
            { kind = ($2 ~ /-security$/) ? "security" : "main" }
            kind != want { next }
            $2 == suite || $2 == suite "-security" { print $3; found = 1; exit }
            !first { first = $3 }
            END { if (!found && first) print first }' | sed 's|/*$||'
}
MIRROR=${DEBIAN_MIRROR:-$(host_mirror main)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-$(host_mirror security)}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
IMAGE_MIRROR=${LINEBOX_IMAGE_MIRROR:-http://deb.debian.org/debian}
IMAGE_SECURITY_MIRROR=${LINEBOX_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

lists=("$HERE/packages.base")
[ "$FLAVOUR" = vm ] && lists+=("$HERE/packages.vm")
[ "$FLAVOUR" = base ] || [ "$FLAVOUR" = vm ] || { echo "unknown flavour $FLAVOUR" >&2; exit 2; }
packages=$(grep -hv '^#' "${lists[@]}" | xargs)
key=$(cat "${lists[@]}" "$HERE/dpkg-trim.cfg" "$0" | sha256sum | cut -c1-16)
ROOT="$CACHE/rootfs/$FLAVOUR-$key"
if [ -e "$ROOT/.complete" ]; then
    echo "$ROOT"
    exit 0
fi

mkdir -p "$CACHE/rootfs" "$CACHE/apt/archives/partial"
exec 9>"$CACHE/rootfs/.lock"
flock 9
[ -e "$ROOT/.complete" ] && { echo "$ROOT"; exit 0; }

start=$(date +%s)
TMP="$ROOT.tmp"
rm -rf "$TMP"
log="$CACHE/rootfs/$FLAVOUR-$key.log"
# Everything below goes to the log; on failure its end is shown.
exec 3>&1 >"$log" 2>&1
trap 'status=$?; exec >&3 2>&1; echo "rootfs build failed ($status), see $log:" >&2; tail -30 "$log" >&2; exit $status' ERR
# minbase: dpkg, apt and the essentials; apt installs the rest below.
debootstrap --variant=minbase --cache-dir="$CACHE/apt/archives" \
    --include=ca-certificates "$SUITE" "$TMP" "$MIRROR"
install -D -m 0644 "$HERE/dpkg-trim.cfg" "$TMP/etc/dpkg/dpkg.cfg.d/50-linebox-trim"
sources() {  # sources MIRROR SECURITY_MIRROR
    printf 'deb %s %s main\n' "$1" "$SUITE" "$1" "$SUITE-updates" "$2" "$SUITE-security"
}
sources "$MIRROR" "$SECURITY_MIRROR" >"$TMP/etc/apt/sources.list"
# No daemon starts while the image is made.
printf '#!/bin/sh\nexit 101\n' >"$TMP/usr/sbin/policy-rc.d"
chmod +x "$TMP/usr/sbin/policy-rc.d"
# grub-pc asks where to install itself; the image assembly does that.
echo "grub-pc grub-pc/install_devices multiselect" >"$TMP/var/tmp/linebox-preseed"
echo "grub-pc grub-pc/install_devices_empty boolean true" >>"$TMP/var/tmp/linebox-preseed"
# systemd-nspawn runs apt in the new tree with the host's network, no
# mounts of ours to leak; the downloads land in the shared cache.
systemd-nspawn --quiet --keep-unit --register=no --as-pid2 -D "$TMP" \
    --bind="$CACHE/apt/archives:/var/cache/apt/archives" \
    --setenv=DEBIAN_FRONTEND=noninteractive \
    sh -ec "debconf-set-selections /var/tmp/linebox-preseed; rm /var/tmp/linebox-preseed
            apt-get update -q
            apt-get install -y -q --no-install-recommends $packages
            apt-get -y -q upgrade"
# Documentation debootstrap installed before the trim rules existed.
find "$TMP/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
find "$TMP/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
sources "$IMAGE_MIRROR" "$IMAGE_SECURITY_MIRROR" >"$TMP/etc/apt/sources.list"
rm -rf "$TMP"/usr/share/man/* "$TMP"/usr/share/info/* "$TMP"/usr/share/locale/*/ \
    "$TMP"/var/lib/apt/lists/* "$TMP"/var/cache/apt/*.bin "$TMP"/var/log/*.log
exec >&3 2>&1
trap - ERR
echo "$FLAVOUR $key $(( $(date +%s) - start )) s $(du -sxm "$TMP" | cut -f1) MiB from $MIRROR" >>"$CACHE/rootfs/builds.txt"
touch "$TMP/.complete"
rm -rf "$ROOT"
mv "$TMP" "$ROOT"
# Older builds of this flavour are no longer wanted.
for old in "$CACHE/rootfs/$FLAVOUR"-*; do
    [ "$old" = "$ROOT" ] || [ ! -d "$old" ] || rm -rf "$old"
done
echo "$ROOT"
