#!/usr/bin/env bash
# cargo deny over the dependency tree, with the rules in deny.toml.
# Usage: scripts/deny.sh              licences, bans (duplicates, wildcards), sources — offline
#        scripts/deny.sh --advisories the RustSec advisory database as well: needs to fetch it
#                                     from GitHub, so run it on a connected machine
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${CARGO_TARGET_DIR:-$PWD/target}"
tools="$cache/tools"
if [ ! -x "$tools/bin/cargo-deny" ]; then
    echo "Installing cargo-deny into $tools"
    CARGO_TARGET_DIR="$cache/tools-build" cargo install cargo-deny --version 0.20.2 --locked --root "$tools" --quiet
fi

checks=(licenses bans sources)
[ "${1:-}" = "--advisories" ] && checks+=(advisories)
exec "$tools/bin/cargo-deny" --log-level error check "${checks[@]}"
