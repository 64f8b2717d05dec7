#!/usr/bin/env bash
# The benchmarks (on demand, never part of the tests): installs what they need (Envoy, Redis via
# install-deps; wrk and valgrind from Debian), builds in release mode and writes docs/benchmarks.md.
# Usage: scripts/bench.sh [--seconds 3] [--runs 3] [--concurrency 64] [--rate N] [--no-profile]
#                         [--only envoy|profile|caches|algorithms|redis|cost|authz] [--cost-rate 10000]
set -euo pipefail
cd "$(dirname "$0")/.."
GATEHOUSE_SKIP_BROWSER=1 scripts/install-deps.sh >/dev/null
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} (Debian packages)…"
  sudo_if_needed() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
  # A fresh machine has no package lists yet.
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The cost rows run the services' release binaries as processes of their own, beside the bench's:
# built with the system allocator (kept as ratelimit-system-malloc, ext-authz-system-malloc), then
# as released (mimalloc).
cargo build --release -p ratelimit -p ext-authz --no-default-features
for service in ratelimit ext-authz; do cp -f "target/release/$service" "target/release/$service-system-malloc"; done
cargo build --release -p ratelimit -p ext-authz -p bench
exec target/release/bench "$@"
