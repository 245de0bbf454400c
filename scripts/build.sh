#!/usr/bin/env bash
# Builds the module and an nginx (1.28.x, from the ngx crate's vendored source) to run it:
#   build/sbin/nginx
#   build/modules/ngx_rtmp_rs_module.so
# Installs missing build packages with apt-get first. Quiet on success; safe to re-run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ensure_packages "${BUILD_PACKAGES[@]}"
ensure_cargo

cargo build --quiet --release --features vendored

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
nginx_bin=$(newest "$TARGET_DIR"/release/build/nginx-sys-*/out/objs/nginx || true)
module="$TARGET_DIR/release/libnginx_rtmp_rs.so"
if [ -z "$nginx_bin" ] || [ ! -x "$nginx_bin" ]; then
    echo "error: no nginx binary under $TARGET_DIR/release/build/nginx-sys-*/out/objs/" >&2
    exit 1
fi
if [ ! -f "$module" ]; then
    echo "error: $module was not built" >&2
    exit 1
fi

copy_if_changed "$nginx_bin" build/sbin/nginx 0755
copy_if_changed "$module" build/modules/ngx_rtmp_rs_module.so 0644
