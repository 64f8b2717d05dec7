#!/usr/bin/env bash
# The one-command demo: installs what is missing (Envoy into .venv; redis-server only with
# --redis; no Node.js or schema tools), builds, and starts Envoy + ext-authz + ratelimit + the
# echo backend on loopback.
# Usage: [DEMO_PORT=<port>] scripts/demo.sh [--redis]      Ctrl-C stops everything.
#   --redis      count on a redis-server of the demo's own instead of in memory
#   DEMO_PORT    Envoy's listener on 127.0.0.1 (default 10000), the demo's only fixed port. A
#                taken one stops the demo before it starts anything, with one line naming a
#                free port to use instead (exit 69); one that is not a port exits 64.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " == *" --redis "* ]]; then
  scripts/install-deps.sh --demo
else
  GATEHOUSE_SKIP_REDIS=1 scripts/install-deps.sh --demo
fi
echo "building the demo (the first build takes several minutes on a small machine)…"
exec cargo run -p e2e --bin demo -- "$@"
