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

if ! have cargo; then
    echo "cargo not found: install Rust from https://rustup.rs (or the distribution's rustup package)" >&2
    exit 1
fi
