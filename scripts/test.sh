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
# tests check that loading both modules is refused with a clear message; chromium is the
# browser of the HLS browser test (Debian's: no browser is ever downloaded); python3-pip
# fetches a newer ffmpeg (ensure_ffmpeg9).
ensure_packages "${BUILD_PACKAGES[@]}" ffmpeg rtmpdump libnginx-mod-rtmp chromium openssl python3-pip
# VLC and GStreamer (playbin3 + hlsdemux2, avdec_h265) play HEVC over fMP4 HLS and DASH in
# tests/enhanced_players.rs (Debian 12: about 7 MB and 25 MB to download beyond the above).
ensure_packages vlc-bin vlc-plugin-base gstreamer1.0-tools gstreamer1.0-plugins-good \
    gstreamer1.0-plugins-bad gstreamer1.0-libav
# A static ffmpeg 9 publishes Enhanced RTMP (HEVC, AV1, VP9, Opus, ...) for tests/enhanced.rs.
ensure_ffmpeg9
# Node.js drives that browser (playwright-core) and serves hls.js from npm (tests/browser/).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    ensure_packages nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
    echo "warning: Node.js $(node --version 2>/dev/null) is older than 20, which tests/browser" \
         "(playwright-core) needs; the browser test will fail" >&2
fi
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
# tests/browser/node_modules, from its package-lock.json (again only when the lock changed).
if [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
    step "npm ci (tests/browser)" env PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
        npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi
# Integration tests start nginx and run real ffmpeg encoders/decoders: two at a time fits
# a 2-core machine.
step "cargo test" cargo test --no-default-features --no-fail-fast -- --test-threads=2
# Each criterion micro-benchmark once, as a test (the timed runs: scripts/microbench.sh).
step "micro-benchmarks (once each)" cargo test --no-default-features --bench hot_paths
# Every fuzz target for 10 s from its seeds (the long runs: scripts/fuzz.sh [seconds]).
step "fuzz smoke" bash scripts/fuzz.sh --smoke

if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all checks passed"
