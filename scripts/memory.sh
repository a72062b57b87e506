#!/usr/bin/env bash
# Memory of the desktop app, as a user's machine sees it all day: the total RSS of every process
# it runs (tray process, demo sandbox agent, window process and WebKit's helper processes), idle
# with the window closed, with it open, and closed again.
# Usage: scripts/memory.sh [BIN_DIR]   (default: a release build into $CARGO_TARGET_DIR)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${MEMORY_INSIDE:-}" ]; then
    bin="${1:-}"
    if [ -z "$bin" ]; then
        target="${CARGO_TARGET_DIR:-$here/target}"
        (cd "$here/ui" && npm run build --silent >/dev/null)
        (cd "$here" && cargo build --release -q -p sandbox-forward-tray -p sandbox-agent -p sandbox-forward \
            && cargo build --release -q -p sandbox-forward-app --features custom-protocol)
        bin="$target/release"
    fi
    exec env MEMORY_INSIDE=1 BIN="$(realpath "$bin")" dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" "$0"
fi

work="$(mktemp -d)"
export HOME="$work/home" SANDBOX_FORWARD_TOKEN_STORE=file
mkdir -p "$HOME"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# PIDs of a process and all its descendants.
tree() {
    local all=" $1 " grew=1
    while [ $grew -eq 1 ]; do
        grew=0
        for stat in /proc/[0-9]*/stat; do
            read -r pid _ _ ppid _ < "$stat" 2>/dev/null || continue
            if [[ "$all" == *" $ppid "* && "$all" != *" $pid "* ]]; then all+="$pid "; grew=1; fi
        done
    done
    echo $all
}
# Sum of VmRSS (KiB) over PIDs, and a per-process breakdown on stderr.
rss() {
    local total=0 kb name
    for pid in "$@"; do
        kb="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
        name="$(cat "/proc/$pid/comm" 2>/dev/null || echo gone)"
        [ -n "$kb" ] || kb=0
        echo "    $name ($pid): $((kb / 1024)) MB" >&2
        total=$((total + kb))
    done
    echo $((total / 1024))
}

"$BIN/sandbox-forward-tray" 2>"$work/tray.log" &
tray=$!
pids+=("$tray")
sleep 6 # the demo agent starts, the first probe runs
echo "window closed (tray + demo sandbox):" >&2
closed="$(rss $(tree "$tray"))"

"$BIN/sandbox-forward-app" 2>"$work/app.log" &
app=$!
pids+=("$app")
sleep 10 # the window loads and polls
echo "window open:" >&2
open="$(rss $(tree "$tray") $(tree "$app"))"

# Closing the window ends the window process (and with it every WebKit process).
kill -TERM "$app"
wait "$app" 2>/dev/null || true
sleep 3
echo "window closed again:" >&2
again="$(rss $(tree "$tray"))"
left="$(pgrep -f WebKitWebProcess -P "$app" 2>/dev/null | wc -l || true)"

echo
echo "| state | total RSS of all the app's processes |"
echo "|---|---|"
echo "| idle, window closed | ${closed} MB |"
echo "| window open | ${open} MB |"
echo "| idle, window closed again | ${again} MB |"
[ "${left:-0}" -eq 0 ] || echo "WebKit processes left behind: $left" >&2
