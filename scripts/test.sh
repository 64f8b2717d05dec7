#!/usr/bin/env bash
# The project's one test command: installs what is missing, then checks formatting, lints and
# runs every test (unit tests of the pure core, and integration tests against a real Redis that
# the tests start on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
