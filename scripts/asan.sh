#!/usr/bin/env bash
# Builds nginx and the module with AddressSanitizer (+ LeakSanitizer) and runs integration
# tests against them. Fails if a test fails or if any process wrote an ASan/LSan report.
#
# Usage: scripts/asan.sh [options] [TEST_FILE...] [-- TEST_BINARY_ARGS...]
#   TEST_FILE        tests/<name>.rs to run (default: live hostile callbacks multiworker)
#   -- ARGS          passed to the test binaries after --test-threads=1 (e.g. a test name filter)
#   --build-only     build build/asan/ and stop
#   --skip-build     use the build/asan/ binaries that are there
#   -h, --help       this text
# Environment:
#   ASAN_RUST=1            0: build the module without -Zsanitizer=address (see below)
#   ASAN_RUST_TOOLCHAIN=   e.g. nightly: build with `cargo +nightly` instead of RUSTC_BOOTSTRAP=1
#   ASAN_OPTIONS=          extra ASan options, appended to the script's (so they win)
# Examples:
#   scripts/asan.sh                             the default suite
#   scripts/asan.sh names                       one file
#   scripts/asan.sh live -- duplicate_publish   the tests of live.rs whose name has duplicate_publish
#
# Output (nothing of the normal build is touched):
#   target/asan/                              cargo target dir of the sanitized build
#   build/asan/sbin/nginx                     nginx 1.28 (the ngx crate's vendored source)
#   build/asan/modules/ngx_rtmp_rs_module.so  the module
#   build/asan/reports/asan.<pid>             one file per process that reported something
#
# How it is built (and why):
# - nginx: the `nginx-src` crate behind `ngx`'s `vendored` feature runs nginx's configure with
#   `--with-cc-opt=$NGX_CFLAGS` and `--with-ld-opt=$NGX_LDFLAGS` (it also honours
#   NGX_CONFIGURE_ARGS, and reconfigures when any of them changes), so
#   NGX_CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" NGX_LDFLAGS=-fsanitize=address
#   gives an nginx linked with GCC's libasan: every malloc/free of nginx, OpenSSL, PCRE2 and
#   of the module (Rust's allocator is malloc) goes through ASan, and nginx's own code is
#   instrumented. nginx's pools carve many small objects out of larger blocks, so an overflow
#   *inside* a pool block is only seen when it crosses the block's end.
# - The module: RUSTFLAGS=-Zsanitizer=address instruments our Rust code too (its unsafe FFI
#   reads and writes of nginx structures and buffers are checked where they happen, not only
#   when they corrupt a malloc boundary). -Z flags need a nightly compiler; like
#   scripts/fuzz.sh, RUSTC_BOOTSTRAP=1 unlocks them on the installed toolchain, so no nightly
#   download is needed (ASAN_RUST_TOOLCHAIN=nightly uses `cargo +nightly` instead, if rustup
#   has it). The build passes `--target <host>` so RUSTFLAGS reach only the module's crates,
#   not build scripts and proc macros (an instrumented proc macro cannot be loaded by rustc).
#   On Linux rustc does not link an ASan runtime into a cdylib: the module's __asan_* calls are
#   resolved, at load_module time, by the libasan in the nginx executable (same shadow layout
#   and __asan_version_mismatch_check_v8 ABI). ASAN_RUST=0 builds the module uninstrumented
#   (ASan then still catches bad frees, double frees and overflows of malloc'd memory it
#   touches, via the nginx runtime).
# - Tests: the test binaries are nginx's clients (they link only the pure core with
#   --no-default-features), so they are built normally, in the usual target dir, and pointed
#   at the sanitized server through NGINX_BIN and RTMP_MODULE (tests/common/mod.rs).
# - Runtime: ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=build/asan/reports/asan
#   (your own $ASAN_OPTIONS are appended, so they win). The harness runs nginx with `daemon
#   off; master_process on`: the master and each forked worker inherit the options (parsed at
#   the master's start, so nginx clearing the workers' environment does not matter) and each
#   writes its own report file, asan.<pid>. abort_on_error makes a faulting worker die of
#   SIGABRT, which the master logs as "exited on signal 6" and the harness fails the test on;
#   leaks are reported when a process exits (graceful stop, `nginx -t`).
# - The module is linked with `-z nodelete`: nginx dlclose()s it when a process ends (the
#   cycle pool's cleanup), which would unmap the module's statics before LeakSanitizer runs
#   at exit, so everything they point to (registered at load_module / configuration time)
#   would be reported as leaked, from "<unknown module>" frames. With the flag dlclose leaves
#   it mapped: only really unreachable memory is reported, with symbolized frames. (nginx
#   never unloads a module while running, reloads included, so nothing else changes.)
#   ASan makes nginx ~2x slower and bigger: tests run one at a time (--test-threads=1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

DEFAULT_TESTS=(live hostile callbacks multiworker)
BUILD=1
RUN=1
tests=()
test_args=()
while (($#)); do
    case $1 in
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        --build-only) RUN=0 ;;
        --skip-build) BUILD=0 ;;
        --)
            shift
            test_args=("$@")
            break
            ;;
        -*)
            echo "error: unknown option $1 (try --help)" >&2
            exit 2
            ;;
        *)
            if [ ! -f "tests/$1.rs" ]; then
                echo "error: no test file tests/$1.rs" >&2
                exit 2
            fi
            tests+=("$1")
            ;;
    esac
    shift
done
((${#tests[@]})) || tests=("${DEFAULT_TESTS[@]}")

ASAN_RUST=${ASAN_RUST:-1}
ASAN_RUST_TOOLCHAIN=${ASAN_RUST_TOOLCHAIN:-}
OUT=$ROOT/build/asan
REPORTS=$OUT/reports
ASAN_TARGET_DIR=$ROOT/target/asan
NGINX_OUT=$OUT/sbin/nginx
MODULE_OUT=$OUT/modules/ngx_rtmp_rs_module.so

# ---------------------------------------------------------------------------- cleanup

# The test run is started in its own session (setsid): the nginx servers the harness starts
# put themselves in their own process groups but stay in that session, so on exit or ^C
# every process of the session is ended by PID, even nginx processes orphaned by a killed
# test binary.
TEST_PID=
session_pids() {
    local sid=$1 f line fields
    for f in /proc/[0-9]*/stat; do
        read -r line <"$f" 2>/dev/null || continue
        # pid (comm) state ppid pgrp session ...: comm may hold spaces, so after the last ')'.
        read -r -a fields <<<"${line##*) }"
        [ "${fields[3]:-}" = "$sid" ] && echo "${f//[^0-9]/}"
    done
    return 0
}
cleanup() {
    [ -n "$TEST_PID" ] || return 0
    local pids
    pids=$(session_pids "$TEST_PID")
    if [ -n "$pids" ]; then
        echo "==> stopping the test run (session $TEST_PID): $(echo $pids)" >&2
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null || true
        sleep 1
        pids=$(session_pids "$TEST_PID")
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    fi
    TEST_PID=
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------- build

build() {
    ensure_packages "${BUILD_PACKAGES[@]}"
    ensure_cargo
    local host cargo=(cargo)
    host=$(rustc -vV | sed -n 's/^host: //p')
    if [ -n "$ASAN_RUST_TOOLCHAIN" ]; then
        cargo=(cargo "+$ASAN_RUST_TOOLCHAIN")
    fi
    # -z nodelete: see the header (module globals must stay mapped for LeakSanitizer).
    local rustflags="-Clink-arg=-Wl,-z,nodelete"
    if [ "$ASAN_RUST" = 1 ]; then
        rustflags="-Zsanitizer=address -Cforce-frame-pointers=yes $rustflags"
    fi
    echo "==> building nginx (ASan) and the module (${rustflags:-not instrumented}) into $ASAN_TARGET_DIR"
    echo "    NGX_CFLAGS='-fsanitize=address -fno-omit-frame-pointer -g' NGX_LDFLAGS=-fsanitize=address"
    echo "    RUSTC_BOOTSTRAP=1 RUSTFLAGS='$rustflags' ${cargo[*]} build --release --features vendored --target $host"
    # ASAN_OPTIONS of the caller must not reach nginx's configure (its feature probes are
    # linked with ASan and run).
    env -u ASAN_OPTIONS \
        CARGO_TARGET_DIR="$ASAN_TARGET_DIR" \
        NGX_CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" \
        NGX_LDFLAGS="-fsanitize=address" \
        RUSTC_BOOTSTRAP=1 \
        RUSTFLAGS="$rustflags" \
        "${cargo[@]}" build --quiet --release --features vendored --target "$host"

    local nginx_bin module="$ASAN_TARGET_DIR/$host/release/libnginx_rtmp_rs.so"
    nginx_bin=$(newest "$ASAN_TARGET_DIR"/{"$host"/,}release/build/nginx-sys-*/out/objs/nginx || true)
    if [ -z "$nginx_bin" ] || [ ! -x "$nginx_bin" ]; then
        echo "error: no nginx binary under $ASAN_TARGET_DIR/.../build/nginx-sys-*/out/objs/" >&2
        exit 1
    fi
    [ -f "$module" ] || { echo "error: $module was not built" >&2; exit 1; }
    copy_if_changed "$nginx_bin" "$NGINX_OUT" 0755
    copy_if_changed "$module" "$MODULE_OUT" 0644
}

# Checks that nginx carries ASan and that it loads the module (an ABI mismatch between the
# module's instrumentation and nginx's libasan would show here, not in the middle of a test).
preflight() {
    local f
    for f in "$NGINX_OUT" "$MODULE_OUT"; do
        [ -f "$f" ] || { echo "error: $f is missing (run without --skip-build)" >&2; exit 1; }
    done
    # (Outputs captured first: `cmd | grep -q` can fail under pipefail when grep exits early.)
    local libs syms asan_lib
    libs=$(ldd "$NGINX_OUT")
    asan_lib=$(awk '/libasan/ { print $1 }' <<<"$libs")
    if [ -z "$asan_lib" ]; then
        echo "error: $NGINX_OUT is not linked with libasan" >&2
        exit 1
    fi
    syms=$(nm -D --undefined-only "$MODULE_OUT" 2>/dev/null || true)
    local inst="no (built with ASAN_RUST=0)"
    if grep -q __asan_init <<<"$syms"; then
        inst="yes (-Zsanitizer=address)"
    fi
    echo "==> nginx: $NGINX_OUT ($asan_lib)"
    echo "    module: $MODULE_OUT, instrumented: $inst"
    local p=$OUT/preflight
    rm -rf "$p"
    mkdir -p "$p/logs"
    cat >"$p/nginx.conf" <<EOF
load_module $MODULE_OUT;
error_log $p/logs/error.log info;
pid $p/logs/nginx.pid;
events { worker_connections 16; }
rtmp { server { listen 127.0.0.1:1935; application live { live on; } } }
EOF
    # detect_leaks=0: `nginx -t` ends without freeing its cycle; not what is looked at here.
    if ! ASAN_OPTIONS=detect_leaks=0 "$NGINX_OUT" -t -p "$p" -c "$p/nginx.conf" \
        -e "$p/logs/error.log" >"$p/out.log" 2>&1; then
        echo "error: the ASan nginx cannot load the module:" >&2
        cat "$p/out.log" >&2
        exit 1
    fi
    echo "    nginx -t with the module: ok"
}

# ---------------------------------------------------------------------------- run

if ((BUILD)); then
    build
fi
preflight
((RUN)) || exit 0

ensure_packages ffmpeg rtmpdump openssl
mkdir -p "$REPORTS"
rm -f "$REPORTS"/asan.*
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$REPORTS/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
# nginx's own leaks at exit (scripts/asan.supp); `nginx -t` runs of the tests add
# detect_leaks=0 themselves (tests/common/mod.rs), as the preflight above does.
export LSAN_OPTIONS="suppressions=$ROOT/scripts/asan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
if command -v llvm-symbolizer >/dev/null 2>&1; then
    export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer)}
fi
test_flags=()
for t in "${tests[@]}"; do test_flags+=(--test "$t"); done
cmd=(cargo test --no-default-features --no-fail-fast "${test_flags[@]}" -- --test-threads=1 "${test_args[@]}")
echo "==> ASAN_OPTIONS=$ASAN_OPTIONS"
echo "==> NGINX_BIN=${NGINX_OUT#"$ROOT"/} RTMP_MODULE=${MODULE_OUT#"$ROOT"/} ${cmd[*]}"
test_rc=0
NGINX_BIN=$NGINX_OUT RTMP_MODULE=$MODULE_OUT setsid "${cmd[@]}" &
TEST_PID=$!
sleep 0.2
if [ -z "$(session_pids "$TEST_PID")" ] && kill -0 "$TEST_PID" 2>/dev/null; then
    echo "warning: the test run is not a session of its own; ^C cleanup may miss nginx processes" >&2
fi
wait "$TEST_PID" || test_rc=$?
cleanup

shopt -s nullglob
reports=("$REPORTS"/asan.*)
shopt -u nullglob
if ((${#reports[@]})); then
    echo
    echo "==> ${#reports[@]} sanitizer report(s) in ${REPORTS#"$ROOT"/}/:"
    for r in "${reports[@]}"; do
        echo "---- $r"
        # Leak reports can be long: the first 80 lines, then the SUMMARY line.
        lines=$(wc -l <"$r")
        head -n 80 "$r"
        if ((lines > 80)); then
            echo "... ($((lines - 80)) more lines)"
            grep -m1 '^SUMMARY' "$r" || true
        fi
    done
fi
echo
if [ "$test_rc" -ne 0 ] || ((${#reports[@]})); then
    echo "ASan run FAILED: tests exit $test_rc, ${#reports[@]} sanitizer report(s)" >&2
    exit 1
fi
echo "ASan run passed: ${tests[*]} (no sanitizer reports)"
