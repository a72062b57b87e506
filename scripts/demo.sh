#!/usr/bin/env bash
# Sets everything up and runs the Sandbox Forward desktop app. With nothing configured the app
# offers its local demo sandbox (a sandbox-agent on loopback, token-protected): click Connect,
# or toggle a forward. Without a display (a bare SSH session) it runs on a virtual one.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
(cd ui && npm run build --silent)
cargo build --release --workspace --bins --locked
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"

cat <<MSG
Starting Sandbox Forward: the window opens; closing it leaves the app in the tray.
  CLI beside it:   $bin/sandbox-forward status
  Stop the app:    the tray's Quit, or: kill \$(cat ~/.config/sandbox/run/tray.pid)
MSG
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    exec "$bin/sandbox-forward-app"
fi
echo "(no display: running on a virtual one; screenshots with: DISPLAY=... import -window root shot.png)"
exec dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" "$bin/sandbox-forward-app"
