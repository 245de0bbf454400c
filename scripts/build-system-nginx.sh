#!/usr/bin/env bash
# Builds the module for the nginx you already run (Debian/Ubuntu `nginx` package), so that
# `load_module` accepts it: nginx refuses modules built for another version or signature.
#
#   1. installs nginx-dev (the distribution's nginx source and its configure flags);
#   2. copies /usr/share/nginx/src to build/system-nginx-src and runs ./configure with the
#      flags in its conf_flags file (same version, same module signature);
#   3. builds the module against it (NGINX_SOURCE_DIR / NGINX_BUILD_DIR, no `vendored`
#      feature), in target/system so the vendored build in target/ is left alone;
#   4. copies it to build/system/ngx_rtmp_rs_module.so and prints how to install it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ensure_packages nginx-dev "${BUILD_PACKAGES[@]}"
ensure_cargo

DIST_SRC=/usr/share/nginx/src
SRC=$ROOT/build/system-nginx-src
OUT=$ROOT/build/system/ngx_rtmp_rs_module.so
SYSTEM_NGINX=${SYSTEM_NGINX:-/usr/sbin/nginx}

if [ ! -f "$DIST_SRC/conf_flags" ] || [ ! -x "$DIST_SRC/configure" ]; then
    echo "error: $DIST_SRC has no configure/conf_flags; is nginx-dev installed?" >&2
    exit 1
fi

version_of_src() {
    sed -n 's/^#define NGINX_VERSION[[:space:]]*"\(.*\)"/\1/p' "$1/src/core/nginx.h"
}
src_version=$(version_of_src "$DIST_SRC")
if [ -x "$SYSTEM_NGINX" ]; then
    sys_version=$("$SYSTEM_NGINX" -v 2>&1 | sed -n 's#.*nginx/\([0-9.]*\).*#\1#p')
    if [ "$sys_version" != "$src_version" ]; then
        echo "warning: $SYSTEM_NGINX is $sys_version but nginx-dev has $src_version;" \
             "upgrade both (apt-get install nginx nginx-dev) or the module will not load" >&2
    fi
fi

# Configure a private copy (again when nginx-dev changed or configure never finished).
stamp=$SRC/.configured-from
want="$src_version $(md5sum "$DIST_SRC/conf_flags" | cut -d' ' -f1)"
if [ ! -f "$SRC/objs/ngx_auto_config.h" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    rm -rf "$SRC"
    mkdir -p "$(dirname "$SRC")"
    cp -a "$DIST_SRC" "$SRC"
    (
        cd "$SRC"
        # conf_flags defines the bash array NGX_CONF_FLAGS (the distribution's flags,
        # without its dynamic modules, which need extra libraries and do not matter here).
        # shellcheck disable=SC1091
        . ./conf_flags
        ./configure "${NGX_CONF_FLAGS[@]}" >configure.log 2>&1
    ) || {
        echo "error: nginx ./configure failed; last lines of $SRC/configure.log:" >&2
        tail -n 20 "$SRC/configure.log" >&2
        exit 1
    }
    echo "$want" >"$stamp"
fi

# nginx-sys (ngx 0.5) reads NGINX_SOURCE_DIR (needs src/core/nginx.h) and NGINX_BUILD_DIR
# (needs ngx_auto_config.h and the Makefile configure wrote) and generates bindings and the
# module signature from them.
NGINX_SOURCE_DIR=$SRC NGINX_BUILD_DIR=$SRC/objs CARGO_TARGET_DIR=$ROOT/target/system \
    cargo build --quiet --release

copy_if_changed "$ROOT/target/system/release/libnginx_rtmp_rs.so" "$OUT" 0644

# Check that the installed nginx accepts the module (nginx -t on a minimal config).
if [ -x "$SYSTEM_NGINX" ]; then
    check=$(mktemp -d)
    trap 'rm -rf "$check"' EXIT
    mkdir -p "$check/logs"
    printf 'load_module %s;\nevents {}\n' "$OUT" >"$check/nginx.conf"
    if ! out=$("$SYSTEM_NGINX" -t -p "$check" -c "$check/nginx.conf" -e "$check/logs/error.log" 2>&1); then
        echo "error: $SYSTEM_NGINX does not accept the module:" >&2
        echo "$out" >&2
        exit 1
    fi
fi

cat <<MSG
Built $OUT for nginx $src_version.
Install it into the system nginx:
  sudo install -m 0644 $OUT /usr/lib/nginx/modules/ngx_rtmp_rs_module.so
  echo 'load_module modules/ngx_rtmp_rs_module.so;' | sudo tee /etc/nginx/modules-enabled/50-mod-rtmp-rs.conf
  sudo nginx -t && sudo systemctl reload nginx
Then add an rtmp { } block to /etc/nginx/nginx.conf (see nginx-conf/nginx.conf).
MSG
if [ -e /etc/nginx/modules-enabled/50-mod-rtmp.conf ]; then
    cat <<'MSG'
Note: libnginx-mod-rtmp (the C module) is enabled in /etc/nginx/modules-enabled/50-mod-rtmp.conf.
Load only one of the two: remove that link (or apt-get remove libnginx-mod-rtmp) first.
MSG
fi
