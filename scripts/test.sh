#!/usr/bin/env bash
# Sets everything up and runs every test: formatting, lints, unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
export CARGO_TERM_COLOR=never
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The end-to-end tests run the real binaries: build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked
