#!/usr/bin/env bash
# Runs each fuzz target (fuzz/, cargo fuzz + libFuzzer) for a bounded time.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 30 s, every target)
#
# The corpus grows in the build cache (${CARGO_TARGET_DIR}/fuzz-corpus), so every run starts
# from what earlier runs found; fuzz/seeds holds the hand-written starting inputs. A crash
# stops the script with the input's path: turn it into a regression test in the crate it hit.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame_decoder handshake ssh_config_editor known_hosts proc_net)

cache="${CARGO_TARGET_DIR:-$PWD/target}"
tools="$cache/tools"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
    echo "Installing cargo-fuzz into $tools"
    CARGO_TARGET_DIR="$cache/tools-build" cargo install cargo-fuzz --version 0.13.2 --locked --root "$tools" --quiet
fi
export PATH="$tools/bin:$PATH"

# libFuzzer's instrumentation needs nightly flags: the nightly toolchain when rustup has one,
# else the stable compiler with its unstable features unlocked (no new download either way).
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

for target in "${targets[@]}"; do
    corpus="$cache/fuzz-corpus/$target"
    mkdir -p "$corpus" "$cache/fuzz-artifacts/$target"
    echo "fuzz: $target for ${seconds}s"
    log="$cache/fuzz-artifacts/$target/last-run.log"
    if ! "${fuzz[@]}" run --fuzz-dir fuzz --target-dir "$cache/fuzz" "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$cache/fuzz-artifacts/$target/" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz: $target FAILED; the input is in $cache/fuzz-artifacts/$target/ (log: $log)" >&2
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|peak_rss_mb|new_units_added)' "$log" | tr '\n' ' ' || true
    echo
done
