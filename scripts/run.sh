#!/usr/bin/env bash
# Builds and runs Partyline (release build). With no arguments it hosts your party and prints its
# link; pass arguments as to `partyline`, e.g. `scripts/run.sh join partyline://join/...`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release --quiet --locked -p partyline -- "$@"
