#!/usr/bin/env bash
# Runs the benchmarks (release build): party joining, and voice (latency, PESQ-WB under loss,
# mixing cost, bytes on the wire), and the others; `--concealment` runs the concealment lab.
# Installs what they need first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
python3 -c "import numpy, scipy, soundfile, pesq" 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check numpy scipy soundfile pesq
if [[ "${1:-}" == "--concealment" ]]; then
  # The concealment lab (tests/concealment): its own workspace and target dir, as it links its
  # own libopus 1.6.
  speech="${TMPDIR:-/tmp}/partyline-test-audio/speech-v1.wav"
  [[ -f "$speech" ]] || { echo "bench: run the voice benchmark once first (it makes $speech)" >&2; exit 1; }
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/concealment"
  cargo run --release --quiet --manifest-path tests/concealment/Cargo.toml -- \
    "$speech" "$(mktemp -d)" scripts/pesq_score.py
  exit
fi
cargo bench --locked -p partyline-tests "$@"
