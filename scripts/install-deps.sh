#!/usr/bin/env bash
# Installs what the tests need and a fresh Debian machine lacks. Idempotent: installs nothing
# when everything is already there.
set -euo pipefail

sudo_if_needed() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (Debian package)…"
  sudo_if_needed apt-get update -qq
  # The tests start their own redis-server on free loopback ports; the package's service is not used.
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
redis-server --version
