#!/usr/bin/env bash
# Runs every fuzz target (the property tests in */tests/fuzz.rs) for a chosen time each, in
# batches of fresh random cases, stopping at the first failure (proptest prints the smallest
# failing input). The test command runs the same targets with a few hundred cases each.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 600)] [[CRATE:]TARGET_FILTER]
#   e.g. scripts/fuzz.sh 60 ext-authz:tokens
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
filter=${2:-}
only_crate=""
if [[ $filter == *:* ]]; then only_crate=${filter%%:*}; filter=${filter#*:}; fi
batch=${FUZZ_BATCH_CASES:-2000}

for crate in shared ratelimit ext-authz; do
  [[ -z $only_crate || $crate == "$only_crate" ]] || continue
  binary=$(cargo test --release -p "$crate" --test fuzz --no-run 2>&1 | grep -o 'target/release/deps/fuzz-[0-9a-f]*' | tail -n 1)
  [[ -x $binary ]] || { echo "fuzz.sh: no fuzz binary for $crate" >&2; exit 1; }
  for target in $("$binary" --list 2>/dev/null | sed -n 's/: test$//p'); do
    [[ -z $filter || $target == *"$filter"* ]] || continue
    deadline=$((SECONDS + seconds))
    batches=0
    while ((SECONDS < deadline)); do
      if ! PROPTEST_CASES=$batch "$binary" --exact "$target" --quiet >"/tmp/fuzz-$crate-$target.log" 2>&1; then
        cat "/tmp/fuzz-$crate-$target.log" >&2
        echo "FAILED: $crate $target after $((batches * batch)) cases" >&2
        exit 1
      fi
      batches=$((batches + 1))
    done
    echo "ok: $crate $target — $((batches * batch)) cases in ${seconds}s"
  done
done
