# Shared by the scripts: install Debian packages that are missing, as root or through sudo.
# Usage: install_packages PKG...   (does nothing without arguments)
install_packages() {
    [ $# -gt 0 ] || return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "Installing: $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
