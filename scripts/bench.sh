#!/usr/bin/env bash
# Runs the benchmarks (release build): party joining, and voice (latency, PESQ-WB under loss,
# mixing cost, bytes on the wire). Installs what they need first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
python3 -c "import numpy, scipy, soundfile, pesq" 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check numpy scipy soundfile pesq
cargo bench --locked -p partyline-tests "$@"
