#!/usr/bin/env bash
# Everything CI checks, from a fresh Debian machine: set-up, formatting, lints (and that modules
# depend one way), all tests, and a
# short fuzz run of the protocol decoders.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test

step() { printf '\n==> %s\n' "$*" >&2; }

step "format"
cargo fmt --all --check
step "lints"
scripts/layers.py
cargo clippy --workspace --all-targets --locked -- -D warnings
# The node without the overlay (the quick loop for node work) must build and lint clean too.
cargo clippy -p partyline --no-default-features --all-targets --locked -- -D warnings
step "tests"
# Two runs: the protocol's property tests pull in dev-dependency features that would otherwise
# give the app a second build (the integration tests build and run the real `partyline` binary).
cargo test --locked -p partyline-protocol
# The `alone` test binary (steady voice timing through real devices) runs by itself: cargo runs
# test binaries one at a time (`alone` before `e2e`).
cargo test --locked -p partyline -p partyline-tests
step "fuzz smoke run"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
step "all good"
