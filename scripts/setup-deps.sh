#!/usr/bin/env bash
# Installs what building and testing need on Debian/Ubuntu; does nothing for what is there.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ssh || need+=(openssh-client)
have sftp || need+=(openssh-client)
{ [ -x /usr/sbin/nginx ] || [ -x /usr/bin/nginx ]; } || need+=(nginx-light)
have cc || need+=(build-essential)
have pkg-config || need+=(pkg-config)
have sha256sum || need+=(coreutils)
have curl || need+=(curl)
# OIDC tests: the routing service is Apache httpd + mod_auth_openidc (binary and modules only:
# apache2-bin, not apache2, which would set up a system service); openssl makes the X.509
# certificate of the test provider's signing key that mod_auth_openidc verifies with.
[ -x /usr/sbin/apache2 ] || need+=(apache2-bin)
[ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || need+=(libapache2-mod-auth-openidc)
have openssl || need+=(openssl)
# The OIDC tests' provider runs on Node.js (this machine kind ships Node 20; Debian's own
# package is the fallback where none is installed).
have node || need+=(nodejs)
have npm || need+=(npm)

# The desktop app (Tauri 2 on WebKitGTK): build libraries, and to run and test it a virtual
# display, a private D-Bus session, WebKit's WebDriver, and Chromium for the UI tests.
for pkg in libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libssl-dev \
    libsoup-3.0-dev libjavascriptcoregtk-4.1-dev libxdo-dev xdg-utils; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
have Xvfb || need+=(xvfb)
have xauth || need+=(xauth)
have dbus-run-session || need+=(dbus-x11)
have WebKitWebDriver || need+=(webkit2gtk-driver)
[ -x /usr/libexec/at-spi-bus-launcher ] || need+=(at-spi2-core)
have import || need+=(imagemagick)
have chromium || need+=(chromium)
have python3 || need+=(python3)
have gdbus || need+=(libglib2.0-bin)
# The keychain test (tests/keychain_e2e.rs): a real Secret Service, gnome-keyring-daemon on a
# private D-Bus session, and secret-tool to look inside it.
have gnome-keyring-daemon || need+=(gnome-keyring)
have secret-tool || need+=(libsecret-tools)
have dbus-daemon || need+=(dbus-daemon)

install_packages ${need[@]+"${need[@]}"}

# OIDC tests: the OpenID provider is node-oidc-provider (tests/oidc), pinned by its lockfile.
if ! have node || ! have npm; then
    echo "node/npm not found: the OIDC tests need Node.js 20.19+ (22 LTS preferred) with npm" >&2
    exit 1
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -f "$here/tests/oidc/node_modules/oidc-provider/package.json" ]; then
    echo "Installing tests/oidc node modules (npm ci)"
    (cd "$here/tests/oidc" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The window's UI (ui/): Vite, TypeScript, Playwright (drives Debian's chromium; never
# downloads browsers), pinned by its lockfile.
if [ ! -f "$here/ui/node_modules/.package-lock.json" ] || [ "$here/ui/package-lock.json" -nt "$here/ui/node_modules/.package-lock.json" ]; then
    echo "Installing ui node modules (npm ci)"
    (cd "$here/ui" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

if ! have cargo; then
    echo "cargo not found: install Rust from https://rustup.rs (or the distribution's rustup package)" >&2
    exit 1
fi

# WebDriver for the real app: tauri-driver (crates.io) in front of WebKitWebDriver. Kept with the
# build cache so CI installs it once.
tools="${CARGO_TARGET_DIR:-$here/target}/tools"
if [ ! -x "$tools/bin/tauri-driver" ]; then
    echo "Installing tauri-driver into $tools"
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}/tools-build" \
        cargo install tauri-driver --locked --root "$tools" --quiet
fi
