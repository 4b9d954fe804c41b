#!/bin/sh
# Install cadent into DESTDIR with the system layout both the .deb and the .rpm ship:
#
#   /usr/lib/cadent/venv            private virtualenv holding cadent and its dependencies
#   /usr/bin/cadent-*               symlinks to the venv's console scripts
#   /usr/lib/cadent/init-functions  shell library of the init scripts
#   /etc/cadent/                    carbon-named config files (conffiles; install-config.sh)
#   DEFAULTS/cadent                 settings of the init scripts and units (/etc/default,
#                                   or /etc/sysconfig in the rpm)
#   /etc/init.d/cadent-*            sysvinit scripts, one per role
#   UNITDIR/cadent-*.service        systemd units, one per role, plus cadent-cache@.service
#   /usr/lib/tmpfiles.d/cadent.conf creates /run/cadent at boot
#
# usage: install-tree.sh SRCDIR DESTDIR [UNITDIR [DEFAULTS]]
# env:   PYTHON (default /usr/bin/python3.11, the interpreter the packages depend on; the venv
#        runs on the very binary it was built with), CADENT_WHEELHOUSE (extra --find-links)
set -eu

SRC=$(cd "$1" && pwd)
mkdir -p "$2"
DEST=$(cd "$2" && pwd)
UNITDIR=${3:-/lib/systemd/system}
DEFAULTS=${4:-/etc/default}
PYTHON=${PYTHON:-/usr/bin/python3.11}
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

# Config files (packaging/install-config.sh says which).
sh "$PKG/install-config.sh" "$SRC" "$DEST/etc/cadent"
install -D -m 0644 "$PKG/etc/default-cadent" "$DEST$DEFAULTS/cadent"
# The Cassandra schema, for `cqlsh -f` or `cadent-cache --create-schema`.
install -D -m 0644 "$SRC/conf/cassandra-schema.cql" "$DEST/usr/lib/cadent/cassandra-schema.cql"

# Service management.
install -D -m 0644 "$PKG/init.d/init-functions" "$DEST/usr/lib/cadent/init-functions"
install -d "$DEST/etc/init.d" "$DEST$UNITDIR"
for role in $ROLES; do
    install -m 0755 "$PKG/init.d/cadent-$role" "$DEST/etc/init.d/cadent-$role"
    install -m 0644 "$PKG/systemd/cadent-$role.service" "$DEST$UNITDIR/"
done
install -m 0644 "$PKG/systemd/cadent-cache@.service" "$DEST$UNITDIR/"
install -D -m 0644 "$PKG/tmpfiles.d/cadent.conf" "$DEST/usr/lib/tmpfiles.d/cadent.conf"
