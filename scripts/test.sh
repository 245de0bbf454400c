#!/usr/bin/env bash
# Everything CI runs (.ci/run): build, formatting, lints, unit and integration tests.
# Exits non-zero if any step fails; later steps still run so one report shows every failure.
#
# Integration tests run the nginx and module from build/ (NGINX_BIN / RTMP_MODULE override
# them; RTMP_IT_TARGET=c runs them on Debian's nginx + the C nginx-rtmp-module instead).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# ffmpeg/ffprobe publish, play and probe; rtmpdump is a librtmp player; the C module lets the
# tests check that loading both modules is refused with a clear message.
ensure_packages "${BUILD_PACKAGES[@]}" ffmpeg rtmpdump libnginx-mod-rtmp
ensure_cargo
for tool in rustfmt clippy; do
    if ! cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null 2>&1; then
            rustup component add "$tool" >/dev/null
        else
            echo "error: cargo $tool is missing (rustup component add $tool)" >&2
            exit 1
        fi
    fi
done

echo "==> scripts/build.sh"
scripts/build.sh
# The module for Debian's own nginx too (tests/system_nginx.rs loads it there).
echo "==> scripts/build-system-nginx.sh"
scripts/build-system-nginx.sh >/dev/null

failed=()
step() {
    local name=$1
    shift
    echo "==> $name"
    if ! "$@"; then
        failed+=("$name")
    fi
}

step "cargo fmt" cargo fmt --all -- --check
step "clippy (pure core, all targets)" \
    cargo clippy --quiet --no-default-features --all-targets -- -D warnings
step "clippy (module, vendored nginx)" \
    cargo clippy --quiet --release --features vendored --lib -- -D warnings
# Integration tests start nginx and run real ffmpeg encoders/decoders: two at a time fits
# a 2-core machine.
step "cargo test" cargo test --no-default-features --no-fail-fast -- --test-threads=2

if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all checks passed"
