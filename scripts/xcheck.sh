#!/usr/bin/env bash
# Type-checks and lints the workspace for Windows and macOS from this Linux machine:
# `cargo clippy --all-targets -- -D warnings` (which is `cargo check` plus the lints) of every
# crate that belongs on that OS, for x86_64-pc-windows-gnu, aarch64-apple-darwin and
# x86_64-apple-darwin. Any error or warning fails.
#
# How: rustup cannot download other targets' std here, so this uses Debian's second Rust
# (rustc-web/cargo-web 1.9x: /usr/bin/rustc, /usr/bin/cargo, std sources under /usr/lib/rustlib/src)
# and builds std for each target from source (`-Zbuild-std`, allowed by RUSTC_BOOTSTRAP=1). The
# rustup toolchain stays first on PATH for everything else and is not touched.
# - Windows: the C parts really compile (aws-lc-sys with mingw-w64 gcc + nasm; resources with
#   mingw's windres).
# - macOS: there is no macOS SDK here, so the C code of `aws-lc-sys` and `mac-notification-sys`
#   is NOT compiled for macOS: a stand-in C compiler emits empty objects (and passes preprocessor
#   queries to clang). A type check links nothing, so the Rust code is fully checked.
# - `sandbox-agent` is the pod side, Linux/Unix only by design: it is checked for macOS, and
#   excluded for Windows (where it refuses to compile with a message saying so).
# Usage: scripts/xcheck.sh [TARGET...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
. scripts/lib.sh

need=()
for pkg in rustc-web cargo-web rust-web-src libstd-rust-web-dev rust-web-clippy gcc-mingw-w64-x86-64 nasm clang; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
install_packages ${need[@]+"${need[@]}"}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-pc-windows-gnu aarch64-apple-darwin x86_64-apple-darwin)

# Its own target dir: another rustc's artifacts would only evict the main build's.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/xcheck"
mkdir -p "$target_dir/bin"

# The stand-in C compiler for Apple targets (see above).
fake_cc="$target_dir/bin/apple-cc-standin"
cat >"$fake_cc" <<'CC'
#!/bin/sh
# Stand-in C compiler for type-checking Apple targets without the macOS SDK: preprocessor-only
# and version queries go to clang; a compile writes an empty object file; nothing is linked.
out=""; compile=0; prev=""
for arg in "$@"; do
    case "$arg" in
        -E|-M|-MM|--version|-dumpversion|-dumpmachine) exec clang "$@" ;;
        -c) compile=1 ;;
    esac
    [ "$prev" = "-o" ] && out="$arg"
    case "$arg" in -o?*) out="${arg#-o}" ;; esac
    prev="$arg"
done
if [ "$compile" = 1 ] && [ -n "$out" ]; then
    printf '' | clang -x c -c -o "$out" -target "${STANDIN_TARGET:-x86_64-apple-darwin}" - && exit 0
fi
exec clang "$@"
CC
chmod +x "$fake_cc"

status=0
for target in "${targets[@]}"; do
    env_vars=(
        PATH="/usr/bin:$PATH"
        RUSTC=/usr/bin/rustc
        RUSTC_BOOTSTRAP=1
        CARGO_TARGET_DIR="$target_dir"
        CARGO_TERM_COLOR=never
    )
    packages=(--workspace)
    case "$target" in
        *windows-gnu)
            env_vars+=(
                CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc
                AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar
                CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
            )
            packages+=(--exclude sandbox-agent)
            ;;
        *apple-darwin)
            t="${target//-/_}"
            env_vars+=(
                "CC_$t=$fake_cc"
                "CXX_$t=$fake_cc"
                "AR_$t=llvm-ar-14"
                STANDIN_TARGET="$target"
                # mac-notification-sys's build script asks for the SDK's version; any answer
                # will do for a check.
                MACOSX_DEPLOYMENT_TARGET=11.0
            )
            ;;
    esac
    echo "== $target: clippy (check + lints), every crate that belongs on it"
    start=$SECONDS
    if ! env "${env_vars[@]}" /usr/bin/cargo clippy -Zbuild-std=std,panic_abort --target "$target" \
        --locked "${packages[@]}" --all-targets -- -D warnings; then
        echo "== $target: FAILED" >&2
        status=1
    else
        echo "== $target: clean ($((SECONDS - start)) s)"
    fi
done
exit $status
