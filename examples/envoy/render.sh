#!/bin/sh
# Fills the ${NAME} placeholders of an Envoy config from environment variables and prints the
# result; fails if one is left unset. Used by docker-compose (the e2e tests fill them in Rust).
# Usage: render.sh envoy.yaml > /tmp/envoy.yaml
set -eu
config=$(cat "$1")
for name in $(grep -v '^[[:space:]]*#' "$1" | grep -o '\${[A-Z_]*}' | sort -u | tr -d '${}'); do
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    echo "render.sh: $name is not set" >&2
    exit 1
  fi
  config=$(printf '%s' "$config" | sed "s|\${$name}|$value|g")
done
printf '%s\n' "$config"
