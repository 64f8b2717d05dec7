#!/usr/bin/env bash
# The benchmarks (on demand, never part of the tests): installs what they need (Envoy, Redis via
# install-deps; wrk from Debian), builds in release mode and writes docs/benchmarks.md.
# Usage: scripts/bench.sh [--seconds 3] [--runs 3] [--concurrency 64] [--only envoy]
set -euo pipefail
cd "$(dirname "$0")/.."
GATEHOUSE_SKIP_BROWSER=1 scripts/install-deps.sh >/dev/null
if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian package)…"
  if [[ $(id -u) -eq 0 ]]; then apt-get install -y -qq wrk >/dev/null; else sudo apt-get install -y -qq wrk >/dev/null; fi
fi
exec cargo run --release -p bench -- "$@"
