#!/usr/bin/env bash
# The real app, driven over WebDriver under a virtual display and a private D-Bus session.
# Usage: scripts/e2e-app.sh APP_BINARY [SCREENSHOT.png]
# Every process started here is stopped by its PID on exit, also on failure.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
app="$(realpath "$1")"
shot="${2:-}"
if [ -z "${E2E_INSIDE:-}" ]; then
    exec env E2E_INSIDE=1 dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" "$0" "$@"
fi
tools="${CARGO_TARGET_DIR:-$here/target}/tools/bin"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_open() { python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$1)))"; }

work="$(mktemp -d)"
pids=()
cleanup() {
    # The tray process (started by the app, in its own process group) stops its demo agent.
    local tray_pid
    tray_pid="$(cat "$work/home/.config/sandbox/run/tray.pid" 2>/dev/null || true)"
    [ -n "$tray_pid" ] && kill -TERM "$tray_pid" 2>/dev/null || true
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 1
    [ -n "$tray_pid" ] && kill -KILL "$tray_pid" 2>/dev/null || true
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/home" "$work/pod"
echo "hello from the pod" > "$work/pod/hello.txt"
pod_port="$(free_port)"
python3 -m http.server --bind 127.0.0.1 --directory "$work/pod" "$pod_port" >/dev/null 2>&1 &
pids+=($!)
driver_port="$(free_port)"
native_port="$(free_port)"
HOME="$work/home" SANDBOX_FORWARD_TOKEN_STORE=file \
    "$tools/tauri-driver" --port "$driver_port" --native-port "$native_port" >"$work/driver.log" 2>&1 &
pids+=($!)

local_port="$(free_port)"
status=0
APP="$app" APP_HOME="$work/home" DRIVER="http://127.0.0.1:$driver_port" POD_PORT="$pod_port" LOCAL_PORT="$local_port" \
    SCREENSHOT="$shot" node "$here/tests/e2e/app-webdriver.mjs" || status=$?

# The window is closed now; the tray process keeps the forward. Its menu, read over D-Bus the way
# a tray host reads it (StatusNotifierItem + dbusmenu), shows the forward live; clicking that
# check item turns the forward off.
tray_menu() {
    local name
    name="$(gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
        --method org.freedesktop.DBus.ListNames | grep -o 'org.kde.StatusNotifierItem-[0-9-]*' | head -1)"
    [ -n "$name" ] || { echo "no StatusNotifierItem on the session bus" >&2; return 1; }
    echo "$name"
    gdbus call --session --dest "$name" --object-path /MenuBar \
        --method com.canonical.dbusmenu.GetLayout 0 -- -1 '["label"]'
}
if [ "$status" -eq 0 ]; then
    layout="$(tray_menu)" || status=1
    item="$(grep -o "([0-9]*, {'label': <'localhost:$local_port → :$pod_port e2e web — live" <<<"$layout" | grep -o '^([0-9]*' | tr -d '(')"
    if [ -z "$item" ]; then
        echo "tray menu lacks the live forward:"; echo "$layout"; status=1
    elif ! port_open "$local_port"; then
        echo "localhost:$local_port closed although the tray shows it live"; status=1
    else
        gdbus call --session --dest "$(head -1 <<<"$layout")" --object-path /MenuBar \
            --method com.canonical.dbusmenu.Event "$item" clicked '<"">' 0 >/dev/null
        for _ in $(seq 50); do
            port_open "$local_port" || break
            sleep 0.1
        done
        if ! port_open "$local_port"; then
            echo "ok: the tray menu showed the forward live; clicking it closed localhost:$local_port"
        else
            echo "clicking the tray's forward item did not close localhost:$local_port"; status=1
        fi
    fi
fi
if [ "$status" -ne 0 ]; then
    echo "--- tauri-driver log"; tail -n 40 "$work/driver.log"
    echo "--- demo agent log"; tail -n 20 "$work/home/.config/sandbox/demo/agent.log" 2>/dev/null || true
fi
exit "$status"
