#!/bin/sh
# Build the cadent .rpm from this checkout: packaging/build-rpm.sh [OUTDIR]
# Stages the tree as Source0 and runs `rpmbuild -bb packaging/rpm/cadent.spec` with
# _topdir OUTDIR/rpmbuild; the .rpm lands in OUTDIR (default: build/rpm).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
OUT=$(mkdir -p "${1:-$SRC/build/rpm}" && cd "${1:-$SRC/build/rpm}" && pwd)
TOP="$OUT/rpmbuild"
mkdir -p "$TOP/SOURCES" "$TOP/SPECS"
TREE=$(sh "$HERE/stage-source.sh" "$SRC" "$OUT/src")
tar -C "$(dirname "$TREE")" -czf "$TOP/SOURCES/$(basename "$TREE").tar.gz" "$(basename "$TREE")"
rm -rf "$OUT/src"
rpmbuild -bb --define "_topdir $TOP" --nodeps "$HERE/rpm/cadent.spec" >"$OUT/build.log" 2>&1 || {
    tail -n 40 "$OUT/build.log" >&2
    exit 1
}
find "$TOP/RPMS" -name 'cadent-*.rpm' -exec mv -f {} "$OUT/" \;
ls "$OUT"/cadent-*.rpm
