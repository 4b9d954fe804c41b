#!/bin/sh
# Lay out the package's /etc/cadent in ETCDIR: conf/ of the source tree, with the system paths
# pinned in every section of carbon.conf, then packaging/etc/'s config files, which take
# precedence: statsd.js, and storage-schemas.conf whose stats* precision is statsd.js's
# flushInterval (one whisper point per flush; a coarser one keeps only the last flush of each).
#
# usage: install-config.sh SRCDIR ETCDIR
set -eu

SRC=$(cd "$1" && pwd)
ETC=$2
PKG="$SRC/packaging"

install -d "$ETC"
awk -v pins="$PKG/etc/system-paths.conf" '
    { print }
    /^\[(cache|relay|aggregator)\][ \t]*$/ {
        while ((getline line < pins) > 0) print line
        close(pins)
    }' "$SRC/conf/carbon.conf" > "$ETC/carbon.conf"
if ! grep -q '^\[api\]' "$ETC/carbon.conf"; then
    { echo; cat "$PKG/etc/api-section.conf"; } >> "$ETC/carbon.conf"
fi
for f in "$SRC"/conf/*.conf "$SRC"/conf/*.example; do
    [ "$(basename "$f")" = carbon.conf ] && continue
    install -m 0644 "$f" "$ETC/"
done
for f in storage-schemas.conf storage-aggregation.conf statsd.js; do
    install -m 0644 "$PKG/etc/$f" "$ETC/$f"
done
chmod 0644 "$ETC"/*
