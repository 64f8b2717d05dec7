#!/usr/bin/env bash
# The one-command demo: installs what is missing (Envoy into .venv; redis-server only with
# --redis; no Node.js or schema tools), builds, and starts Envoy + ext-authz + ratelimit + the
# echo backend on loopback.
# Usage: scripts/demo.sh [--redis]      Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " == *" --redis "* ]]; then
  scripts/install-deps.sh --demo
else
  GATEHOUSE_SKIP_REDIS=1 scripts/install-deps.sh --demo
fi
echo "building the demo (the first build takes several minutes on a small machine)…"
exec cargo run -p e2e --bin demo -- "$@"
