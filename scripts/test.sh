#!/usr/bin/env bash
# Everything CI checks, from a fresh Debian machine: set-up, formatting, lints, all tests, and a
# short fuzz run of the protocol decoders.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test

step() { printf '\n==> %s\n' "$*" >&2; }

step "format"
cargo fmt --all --check
step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "tests"
cargo test --workspace --locked
step "fuzz smoke run"
scripts/fuzz-smoke.sh "${FUZZ_SECONDS:-20}"
step "all good"
