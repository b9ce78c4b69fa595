#!/usr/bin/env bash
# Runs each protocol fuzz target for a few seconds ($1, default 20). libFuzzer's instrumentation
# needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/../protocol"
seconds="${1:-20}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for target in link message content; do
  echo "fuzz: $target for ${seconds}s" >&2
  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$seconds" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target found a problem (see above; the input is saved under protocol/fuzz/artifacts)" >&2
    exit 1
  fi
  grep -E "^Done" "$log" >&2 || true
done
