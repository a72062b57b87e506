#!/usr/bin/env bash
# Sets everything up and runs every test: formatting, lints, unit and end-to-end tests, the
# window's UI tests in headless Chromium, and the real app driven over WebDriver.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
export CARGO_TERM_COLOR=never
# The app embeds the built UI (ui/dist): build it before any cargo step compiles the app.
(cd ui && npm run build --silent)
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# What may enter the dependency tree: licences, duplicate versions, sources (deny.toml).
scripts/deny.sh
# The same check and lints for Windows and macOS (Debian's second Rust, std built from source).
scripts/xcheck.sh
# The end-to-end tests run the real binaries: build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked
# The parsers of what peers and users write, fuzzed for a bounded time each (fuzz/).
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
# The Windows build's core, wire and desk tests and a CLI flow, under Wine.
scripts/wine-test.sh
(cd ui && npm test --silent)
scripts/e2e-app.sh "${CARGO_TARGET_DIR:-target}/debug/sandbox-forward-app"
# The .deb of this build: installed with apt, used (ssh, the app under Xvfb), purged.
scripts/package-test.sh
