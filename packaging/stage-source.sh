#!/bin/sh
# Copy the source tree (no venv, VCS data, build output or caches) to DEST/cadent-VERSION.
# usage: stage-source.sh SRCDIR DEST   (prints the staged directory)
set -eu
SRC=$(cd "$1" && pwd)
DEST=$2
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$SRC/cadent/__init__.py")
TREE="$DEST/cadent-$VERSION"
rm -rf "$TREE"
mkdir -p "$TREE"
tar -C "$SRC" -cf - \
    --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist --exclude=./var \
    --exclude=./peers --exclude=./debian --exclude='*.egg-info' --exclude=__pycache__ \
    --exclude=.pytest_cache --exclude=./bench/results \
    . | tar -C "$TREE" -xf -
echo "$TREE"
