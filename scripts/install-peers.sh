#!/usr/bin/env bash
# Installs the real programs cadent is compared with in tests and benchmarks:
# Debian's graphite-carbon, carbon-c-relay and graphite-web, and Etsy statsd from npm.
# Idempotent; needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need=()
for pkg in graphite-carbon carbon-c-relay graphite-web python3-whisper; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Debian starts carbon-cache on install where an init system runs; the tests start their own.
$SUDO pkill -f '/usr/bin/carbon-cache' 2>/dev/null || true

if command -v npm >/dev/null 2>&1 && [ ! -x peers/node_modules/.bin/statsd ] && [ ! -f peers/node_modules/statsd/stats.js ]; then
  mkdir -p peers
  (cd peers && npm install --silent --no-audit --no-fund statsd@0.9.0 >/dev/null 2>&1) \
    || echo "install-peers: npm install statsd failed; statsd comparison tests will be skipped" >&2
fi
