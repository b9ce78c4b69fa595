#!/usr/bin/env bash
# Fuzzes the protocol decoders with cargo-fuzz (libFuzzer).
#   scripts/fuzz.sh [SECONDS]          smoke run (CI): each target SECONDS (default 20), stops at the
#                                      first crash and fails
#   scripts/fuzz.sh --long SECONDS     each target SECONDS in a forked worker that goes on past
#                                      crashes, timeouts and out-of-memory inputs; prints executions
#                                      and those counts per target, fails if any were found
# Inputs that crash are saved under protocol/fuzz/artifacts/TARGET. libFuzzer's instrumentation needs
# nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/../protocol"
long=false
if [[ "${1:-}" == "--long" ]]; then
  long=true
  shift
fi
seconds="${1:-20}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
targets=(link message content)
found=0

smoke() {
  local target="$1"
  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$seconds" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target found a problem (see above; the input is saved under protocol/fuzz/artifacts)" >&2
    exit 1
  fi
  grep -E "^Done" "$log" >&2 || true
}

# Prints "TARGET RUNS OOMS TIMEOUTS CRASHES SECONDS" from the last status line of a forked run.
long_run() {
  local target="$1"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="$seconds" -fork=1 \
    -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 >"$log" 2>&1 || true
  local status
  status="$(grep -E '^#[0-9]+: .*oom/timeout/crash:' "$log" | tail -n 1 || true)"
  if [[ -z "$status" ]]; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target did not run (see above)" >&2
    exit 1
  fi
  sed -E 's|^#([0-9]+): .*oom/timeout/crash: ([0-9]+)/([0-9]+)/([0-9]+) time: ([0-9]+)s.*|'"$target"' \1 \2 \3 \4 \5|' <<<"$status"
}

if ! $long; then
  for target in "${targets[@]}"; do
    echo "fuzz: $target for ${seconds}s" >&2
    smoke "$target"
  done
  exit 0
fi

printf '%-8s %12s %6s %8s %7s %7s %9s\n' target executions ooms timeouts crashes seconds "exec/s"
for target in "${targets[@]}"; do
  read -r name runs ooms timeouts crashes took < <(long_run "$target")
  printf '%-8s %12s %6s %8s %7s %7s %9s\n' "$name" "$runs" "$ooms" "$timeouts" "$crashes" "$took" \
    "$((runs / (took > 0 ? took : 1)))"
  found=$((found + ooms + timeouts + crashes))
done
if ((found > 0)); then
  echo "fuzz: $found problem inputs found; they are under protocol/fuzz/artifacts" >&2
  exit 1
fi
