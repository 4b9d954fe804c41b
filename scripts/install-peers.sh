#!/usr/bin/env bash
# Installs the real programs cadent is compared with in tests and benchmarks:
# Debian's graphite-carbon, carbon-c-relay and graphite-web, and Etsy statsd from npm.
# Idempotent; needs root (or sudo) for apt-get.
#
# Debian starts carbon-cache when graphite-carbon is installed; the tests start their own on
# free ports. While this script's apt-get runs, a policy-rc.d (invoke-rc.d's and
# deb-systemd-invoke's policy hook) denies every service start, so nothing is started that has
# to be stopped again, and nothing already running (an operator's carbon-cache) is touched.
# An existing policy-rc.d is left alone and obeyed instead.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need=()
for pkg in graphite-carbon carbon-c-relay graphite-web python3-whisper; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
POLICY=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
MARK="written by cadent's scripts/install-peers.sh"
drop_policy() {
  if grep -qs "$MARK" "$POLICY"; then $SUDO rm -f "$POLICY"; fi
}
if [ ${#need[@]} -gt 0 ]; then
  if [ ! -e "$POLICY" ]; then
    trap drop_policy EXIT
    printf '#!/bin/sh\n# %s: no service starts while it installs packages\nexit 101\n' "$MARK" \
      | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 0755 "$POLICY"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  drop_policy
  trap - EXIT
fi

if command -v npm >/dev/null 2>&1 && [ ! -x peers/node_modules/.bin/statsd ] && [ ! -f peers/node_modules/statsd/stats.js ]; then
  mkdir -p peers
  (cd peers && npm install --silent --no-audit --no-fund statsd@0.9.0 >/dev/null 2>&1) \
    || echo "install-peers: npm install statsd failed; statsd comparison tests will be skipped" >&2
fi
