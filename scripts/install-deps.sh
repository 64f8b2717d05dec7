#!/usr/bin/env bash
# Installs what the tests need and a fresh Debian machine lacks. Idempotent: installs nothing
# when everything is already there.
set -euo pipefail

sudo_if_needed() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# redis-server (and redis-cli): the tests start their own servers on free loopback ports, as a
# single node, a TLS server, a three-node cluster and a sentinel; the package's service is unused.
# openssl: the TLS tests make their own CA and certificates.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} (Debian packages)…"
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
redis-server --version
