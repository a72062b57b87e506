#!/usr/bin/env bash
# Sets everything up and runs Sandbox Forward against a local demo sandbox: a sandbox-agent on
# loopback in dev mode, registered as the ssh host "demo".
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
cargo build --release --bins --locked
bin="$PWD/target/release"
[ -n "${CARGO_TARGET_DIR:-}" ] && bin="$CARGO_TARGET_DIR/release"

workspace="${SANDBOX_DEMO_WORKSPACE:-$HOME/sandbox-demo-workspace}"
mkdir -p "$workspace"
port="${SANDBOX_DEMO_PORT:-19877}"

"$bin/sandbox-agent" --api-addr "127.0.0.1:$port" --workspace "$workspace" --dev-mode \
    > /tmp/sandbox-demo-agent.out 2> /tmp/sandbox-demo-agent.log &
agent=$!
trap 'kill $agent 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q listening /tmp/sandbox-demo-agent.out 2>/dev/null && break; sleep 0.1; done

"$bin/sandbox-forward" ssh-setup demo --server "http://127.0.0.1:$port"
cat <<MSG

The demo sandbox is running (workspace: $workspace).
  ssh demo                                     # a shell in the sandbox
  code --remote ssh-remote+demo $workspace     # VS Code
  $bin/sandbox-forward proxy --server http://127.0.0.1:$port --port 5173   # forward a dev server
Agent log: /tmp/sandbox-demo-agent.log. Press Ctrl-C to stop; \`$bin/sandbox-forward forget demo\` removes the demo from ~/.ssh/config.
MSG
wait $agent
