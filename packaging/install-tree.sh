#!/bin/sh
# Install cadent into DESTDIR with the system layout both the .deb and the .rpm ship:
#
#   /usr/lib/cadent/venv            private virtualenv holding cadent and its dependencies
#   /usr/bin/cadent-*               symlinks to the venv's console scripts
#   /usr/lib/cadent/init-functions  shell library of the init scripts
#   /etc/cadent/                    carbon-named config files (conffiles)
#   /etc/default/cadent             settings of the init scripts and units
#   /etc/init.d/cadent-*            sysvinit scripts, one per role
#   UNITDIR/cadent-*.service        systemd units, one per role, plus cadent-cache@.service
#   /usr/lib/tmpfiles.d/cadent.conf creates /run/cadent at boot
#
# usage: install-tree.sh SRCDIR DESTDIR [UNITDIR]
# env:   PYTHON (default /usr/bin/python3), CADENT_WHEELHOUSE (extra --find-links directory)
set -eu

SRC=$(cd "$1" && pwd)
mkdir -p "$2"
DEST=$(cd "$2" && pwd)
UNITDIR=${3:-/lib/systemd/system}
PYTHON=${PYTHON:-/usr/bin/python3}
PKG="$SRC/packaging"
VENV_FINAL=/usr/lib/cadent/venv
VENV="$DEST$VENV_FINAL"
ROLES="relay aggregator cache statsd api"

# The virtualenv: built in place under DESTDIR, then pointed at its final path.
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
set -- --no-compile --disable-pip-version-check --quiet
if [ -n "${CADENT_WHEELHOUSE:-}" ] && [ -d "${CADENT_WHEELHOUSE}" ]; then
    set -- "$@" --find-links "$CADENT_WHEELHOUSE"
fi
# gunicorn's gevent worker needs its [gevent] extra (packaging); setup.cfg's api extra
# names plain gunicorn.
"$VENV/bin/pip" install "$@" "$SRC[api]" "gunicorn[gevent]"
for f in "$VENV"/bin/*; do
    [ -L "$f" ] && continue
    if head -c 2 "$f" | grep -q '#!' || grep -qI "$VENV" "$f"; then
        sed -i "s|$VENV|$VENV_FINAL|g" "$f"
    fi
done
sed -i "s|$VENV|$VENV_FINAL|g" "$VENV/pyvenv.cfg"
find "$VENV" -name direct_url.json -delete
find "$VENV" -type d -empty -delete
find "$VENV" -name __pycache__ -type d -prune -exec rm -rf {} +
# Byte-code compiled for the final path; unchecked-hash pycs stay valid whatever mtimes the
# package tools give the sources, so nothing is ever written under /usr at run time.
"$VENV/bin/python" -m compileall -q -j 0 --invalidation-mode unchecked-hash \
    -s "$DEST" -p / "$VENV/lib" >/dev/null

install -d "$DEST/usr/bin"
for role in $ROLES; do
    ln -sf "$VENV_FINAL/bin/cadent-$role" "$DEST/usr/bin/cadent-$role"
done

# Config files: conf/ of the source tree, with the system paths pinned in carbon.conf.
ETC="$DEST/etc/cadent"
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
for f in storage-schemas.conf storage-aggregation.conf aggregation-rules.conf statsd.js; do
    [ -e "$ETC/$f" ] || install -m 0644 "$PKG/etc/$f" "$ETC/$f"
done
chmod 0644 "$ETC"/*
install -D -m 0644 "$PKG/etc/default-cadent" "$DEST/etc/default/cadent"

# Service management.
install -D -m 0644 "$PKG/init.d/init-functions" "$DEST/usr/lib/cadent/init-functions"
install -d "$DEST/etc/init.d" "$DEST$UNITDIR"
for role in $ROLES; do
    install -m 0755 "$PKG/init.d/cadent-$role" "$DEST/etc/init.d/cadent-$role"
    install -m 0644 "$PKG/systemd/cadent-$role.service" "$DEST$UNITDIR/"
done
install -m 0644 "$PKG/systemd/cadent-cache@.service" "$DEST$UNITDIR/"
install -D -m 0644 "$PKG/tmpfiles.d/cadent.conf" "$DEST/usr/lib/tmpfiles.d/cadent.conf"
