#!/usr/bin/env bash
# Builds the Linux packages of Sandbox Forward with the Tauri bundler (`cargo tauri build`): a .deb
# and an .rpm holding, in /usr/bin, the window app (sandbox-forward-app), the tray process
# (sandbox-forward-tray), the CLI (sandbox-forward: the path every ProxyCommand names) and the
# agent (sandbox-agent: the app's demo sandbox runs it), plus the .desktop entry and the icons.
#
# Usage: scripts/package.sh [--debug] [--out DIR]
#   (default)  the release build: what is shipped.
#   --debug    package the debug build instead. CI does this: scripts/test.sh has just built
#              every binary in the debug profile, so the package costs seconds instead of a
#              second, optimised build of the whole dependency tree (tens of minutes on 2 cores);
#              the packaging (layout, metadata, dependencies) is the same.
#   --out DIR  where the packages are copied, with Debian/RPM file names
#              (default: $CARGO_TARGET_DIR/packages/<profile>). Their paths are the last lines
#              printed.
# The Tauri CLI is installed from crates.io at the pinned version below, into
# $CARGO_TARGET_DIR/tools (once). macOS and Windows packages are made on those systems: README,
# "Install".
set -euo pipefail
cd "$(dirname "$0")/.."
here="$PWD"

# Tauri 2 (crates.io also serves 3.0 alphas): exactly this CLI, whose bundler we have tested.
TAURI_CLI_VERSION=2.12.4

profile=release
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --debug) profile=debug ;;
        --out) out="$2"; shift ;;
        *) echo "usage: $0 [--debug] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done

scripts/setup-deps.sh
target="${CARGO_TARGET_DIR:-$here/target}"
mkdir -p "$target"
target="$(cd "$target" && pwd)"
export CARGO_TARGET_DIR="$target"
out="${out:-$target/packages/$profile}"

tools="$target/tools"
if [ "$("$tools/bin/cargo-tauri" --version 2>/dev/null)" != "tauri-cli $TAURI_CLI_VERSION" ]; then
    echo "Installing tauri-cli $TAURI_CLI_VERSION into $tools"
    CARGO_TARGET_DIR="$target/tools-build" \
        cargo install tauri-cli --version "=$TAURI_CLI_VERSION" --locked --root "$tools" --quiet
fi

# Which packages cargo builds, the same in both steps below so that dependencies are resolved
# with the same features and built once. Release: the four packaged programs. Debug: the whole
# workspace, as scripts/test.sh builds it, so nothing but the app is compiled again.
if [ "$profile" = release ]; then
    packages=(-p sandbox-forward-app -p sandbox-forward -p sandbox-forward-tray -p sandbox-agent)
    cargo_profile=(--release)
    tauri_profile=()
else
    packages=(--workspace)
    cargo_profile=()
    tauri_profile=(--debug)
fi

# The binaries beside the app. The bundler takes them as "external binaries" (sidecars), which
# it wants named with the target triple, and installs them as /usr/bin/NAME.
cargo build --locked ${cargo_profile[@]+"${cargo_profile[@]}"} "${packages[@]}" --bin sandbox-forward --bin sandbox-forward-tray --bin sandbox-agent
triple="$(rustc -vV | sed -n 's/^host: //p')"
sidecars="$target/package-sidecars/$profile"
rm -rf "$sidecars"
mkdir -p "$sidecars"
external=()
for bin in sandbox-forward sandbox-forward-tray sandbox-agent; do
    cp "$target/$profile/$bin" "$sidecars/$bin-$triple"
    external+=("\"$sidecars/$bin\"")
done
# Merged over tauri.conf.json for this build only: a plain `cargo build` of the app must not need
# the sidecars (tauri-build copies external binaries and fails when they are missing).
(IFS=,; echo "{\"bundle\": {\"externalBin\": [${external[*]}]}}") >"$sidecars/tauri.sidecars.json"

bundle="$target/$profile/bundle"
rm -rf "$bundle/deb" "$bundle/rpm"
# The CLI runs tauri.conf.json's beforeBuildCommand (the UI build), builds the app with cargo
# (arguments after `--` go to cargo; it adds --bins and, without --debug, --release) and bundles.
PATH="$tools/bin:$PATH" cargo tauri build --ci ${tauri_profile[@]+"${tauri_profile[@]}"} --bundles deb,rpm \
    --config "$sidecars/tauri.sidecars.json" -- --locked "${packages[@]}"

mkdir -p "$out"
deb="$(find "$bundle/deb" -maxdepth 1 -name '*.deb' | head -1)"
rpm="$(find "$bundle/rpm" -maxdepth 1 -name '*.rpm' | head -1)"
[ -n "$deb" ] && [ -n "$rpm" ] || { echo "the bundler made no .deb or .rpm in $bundle" >&2; exit 1; }
# The bundler names files after the product name ("Sandbox Forward_0.1.0_amd64.deb"); the
# usual names use the package name, without a space.
deb_out="$out/$(dpkg-deb -f "$deb" Package)_$(dpkg-deb -f "$deb" Version)_$(dpkg-deb -f "$deb" Architecture).deb"
rpm_out="$out/$(basename "$rpm" | sed 's/^Sandbox Forward-/sandbox-forward-/')"
cp "$deb" "$deb_out"
cp "$rpm" "$rpm_out"
echo "$deb_out"
echo "$rpm_out"
