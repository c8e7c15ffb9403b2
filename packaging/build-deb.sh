#!/bin/bash
# build-deb.sh OUT_DIR — build the linebox .deb from this checkout.
#
# Stages the tracked source files (git ls-files, plus uncommitted changes to
# them) with packaging/debian as debian/, runs dpkg-buildpackage, and leaves
# linebox_<version>_amd64.deb in OUT_DIR. pip's cache is kept in
# build/cache/pip so a rebuild does not download the wheels again.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${1:-$SRC/build}")
CACHE=${LINEBOX_BUILD_CACHE:-$SRC/build/cache}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/linebox-deb.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/linebox

mkdir -p "$OUT" "$CACHE/pip" "$STAGE"
cd "$SRC"
# Tracked files as they are in the work tree (deleted ones skipped), and
# the new files of the source directories that are not ignored.
git ls-files -z --cached --others --exclude-standard -- appliance web kamailio rtpengine \
    examples packaging pyproject.toml README.md \
    | xargs -0 -I{} sh -c 'test -e "{}" && echo "{}"' \
    | tar -cf - -T - | tar -xf - -C "$STAGE"
cp -r "$STAGE/packaging/debian" "$STAGE/debian"

# The same sources give the same package: reuse the last one (make test
# runs this every time).
cd "$STAGE"
key=$(find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
version=$(dpkg-parsechangelog -S Version)
previous="$OUT/linebox_${version}_amd64.deb"
if [ -f "$previous" ] && [ "$(cat "$OUT/.deb-key" 2>/dev/null)" = "$key" ]; then
    echo "$previous ($(du -h "$previous" | cut -f1), unchanged sources)"
    exit 0
fi
export PIP_CACHE_DIR="$CACHE/pip"
start=$(date +%s)
dpkg-buildpackage -us -uc -b --no-pre-clean >"$OUT/deb-build.log" 2>&1 || {
    tail -40 "$OUT/deb-build.log" >&2
    exit 1
}
deb=$(ls "$WORK"/linebox_*_amd64.deb)
mv "$deb" "$OUT/"
echo "$key" >"$OUT/.deb-key"
echo "$OUT/$(basename "$deb") ($(du -h "$OUT/$(basename "$deb")" | cut -f1), $(( $(date +%s) - start )) s)"
