#!/bin/sh
# Build the cadent .deb from this checkout: packaging/build-deb.sh [OUTDIR]
# The tree is staged under OUTDIR/src with packaging/debian as debian/, then
# `dpkg-buildpackage -us -uc -b` runs there; the .deb lands in OUTDIR (default: build/deb).
# Build dependencies: apt-get install debhelper python3.11-venv python3.11-dev gcc
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
OUT=$(mkdir -p "${1:-$SRC/build/deb}" && cd "${1:-$SRC/build/deb}" && pwd)
TREE=$(sh "$HERE/stage-source.sh" "$SRC" "$OUT/src")
cp -a "$HERE/debian" "$TREE/debian"
(cd "$TREE" && dpkg-buildpackage -us -uc -b >"$OUT/build.log" 2>&1) || {
    tail -n 40 "$OUT/build.log" >&2
    exit 1
}
for f in "$OUT"/src/cadent_*; do mv -f "$f" "$OUT/"; done
ls "$OUT"/cadent_*.deb
