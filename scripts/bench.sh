#!/usr/bin/env bash
# The benchmark, one command: installs what is missing (iperf3 and websockify from apt, websocat
# from crates.io into $TARGET/tools), builds release, runs every contender on loopback and
# writes BENCHMARKS.md. Ours runs twice, tunnel protocol v2 (the default) and v1
# (SANDBOX_FORWARD_TUNNEL_PROTOCOL=v1), side by side, plus how fast each recovers from a reset.
#
#   scripts/bench.sh            full run (a few minutes), writes BENCHMARKS.md
#   scripts/bench.sh --smoke    tiny sizes, debug build, checks every contender moved correct
#                               bytes; writes nothing (CI runs this via `cargo test -p sandbox-bench`)
# Extra arguments go to sandbox-bench (e.g. --reps 5).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh

smoke=0
args=()
for a in "$@"; do
    if [ "$a" = "--smoke" ]; then smoke=1; else args+=("$a"); fi
done

target="${CARGO_TARGET_DIR:-$PWD/target}"
tools="$target/tools"
export PATH="$tools/bin:$PATH"
have() { command -v "$1" >/dev/null 2>&1; }

need=()
have iperf3 || need+=(iperf3)
have websockify || need+=(websockify)
have ssh || need+=(openssh-client)
install_packages ${need[@]+"${need[@]}"}
if ! have websocat; then
    echo "Installing websocat into $tools (takes a minute or two)"
    CARGO_TARGET_DIR="$target/tools-build" cargo install websocat --locked --root "$tools"
fi

if [ "$smoke" = 1 ]; then
    cargo build -p sandbox-forward -p sandbox-agent -p sandbox-bench
    exec "$target/debug/sandbox-bench" --smoke --tools "$tools/bin" "${args[@]}"
fi
cargo build --release -p sandbox-forward -p sandbox-agent -p sandbox-bench
"$target/release/sandbox-bench" --tools "$tools/bin" --out BENCHMARKS.md "${args[@]}"
