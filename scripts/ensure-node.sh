#!/usr/bin/env bash
# Prints the path of a Node.js 20 or newer for the test OpenID Provider. The system's `node` when
# it is new enough; else (Debian 12's nodejs is 18) Node 20 from the npm registry — the `node`
# package, whose binary is itself an npm package, not a download from elsewhere — installed once
# into .tools/node, where the tests look first (shared::testing::node_binary).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
local_node="$root/.tools/node/node_modules/.bin/node"
major() { "$1" -p 'process.versions.node.split(".")[0]'; }
if [[ -x $local_node ]] && (($(major "$local_node") >= 20)); then
  echo "$local_node"
  exit 0
fi
system_node=$(command -v node)
if (($(major "$system_node") >= 20)); then
  echo "$system_node"
  exit 0
fi
echo "Node.js $("$system_node" --version) is older than 20: installing Node 20 from the npm registry into .tools/node…" >&2
npm install --prefix "$root/.tools/node" --no-audit --no-fund --loglevel=error 'node@20' >&2
(($(major "$local_node") >= 20)) || { echo "error: .tools/node has no Node 20" >&2; exit 1; }
echo "$local_node"
