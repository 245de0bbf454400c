#!/usr/bin/env bash
# Benchmarks our module against the C nginx-rtmp-module, side by side in one run, with the
# same configuration (different ports), the same media and the same load tools:
#
#   ours: build/sbin/nginx + build/modules/ngx_rtmp_rs_module.so (scripts/build.sh)
#   C:    Debian's /usr/sbin/nginx + libnginx-mod-rtmp (ngx_rtmp_module.so)
#
# Usage: scripts/bench.sh [--smoke]
#   --smoke   a quick end-to-end check (10 players, 5 s, one ingest size, 5 joins)
#
# Figures (each for ours and the C module, and ours/C):
#   fan-out  1 publisher (~2.5 Mbit/s H.264 + AAC, 720p25, `ffmpeg -re -stream_loop -1 -c copy`
#            of a file encoded once) and N RTMP players (tools/rtmp-load): nginx worker
#            CPU-seconds per GB delivered, peak worker RSS (VmHWM), players that kept up;
#   ingest   N publishers with HLS + DASH on: worker CPU-seconds per publisher-minute, RSS;
#            and the floor: scripts/ingest-floor.c receiving the same streams and writing each
#            byte twice, nothing else (the lowest CPU any server writing HLS + DASH can reach);
#            fan-out's floor is scripts/fanout-floor.c writing the stream's bytes to N sockets;
#   latency  RTMP join time (play -> first video frame / first keyframe), HLS and DASH segment
#            availability (listed vs. when its last frame was published), DASH segments
#            announced in the MPD before their file existed;
#   workers  ours only: fan-out with worker_processes 1, 2, 4 (`listen ... reuseport`);
#   HTTP-FLV ours only (BENCH_FLV_PLAYERS): in one nginx and one publisher, N RTMP players
#            and N HTTP-FLV players (`flv_live on`), two runs each in ABBA order: worker
#            CPU-seconds per GB of each, and HTTP-FLV/RTMP.
# A Markdown table is printed at the end and written to $BENCH_DIR/bench-results.md.
#
# Environment:
#   BENCH_PLAYERS="50 200 500 1000"   fan-out player counts
#   BENCH_SECONDS=30                   length of each measurement
#   BENCH_PUBLISHERS="1 8 32"          ingest publisher counts
#   BENCH_JOINS=20                     RTMP joins measured for the latency figures
#   BENCH_WORKERS="1 2 4"              worker counts (ours only); a list set empty skips its part
#   BENCH_WORKER_PLAYERS=<largest of BENCH_PLAYERS>  player counts of the worker runs
#   BENCH_FLV_PLAYERS=                 HTTP-FLV vs RTMP player counts (e.g. "500"; empty: skipped)
#   BENCH_LATENCY=1                    0 skips the latency part
#   BENCH_LATENCY_SECONDS=<max(BENCH_SECONDS, 20)>   how long HLS/DASH are watched
#   BENCH_DIR=build/bench              work directory (media, server prefixes, results)
#   BENCH_LOAD_THREADS=                threads of the load client (default: its own choice)
#   BENCH_OURS=vendored                `system`: ours runs on Debian's nginx too, with the
#                                      module from scripts/build-system-nginx.sh (same nginx
#                                      binary for both sides)
#   BENCH_SKIP_BUILD=1                 use the module and nginx builds that are there
#   BENCH_RS_APP="play_flush_interval off;"  extra directives for our application only
#
# Measure on a quiet machine: the load client, the publisher(s) and nginx share the CPUs,
# and the load client's own CPU is reported next to each fan-out figure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

COMMAND="scripts/bench.sh $*"
SMOKE=0
for arg in "$@"; do
    case $arg in
        --smoke) SMOKE=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "error: unknown argument $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

if ((SMOKE)); then
    BENCH_PLAYERS=${BENCH_PLAYERS-10}
    BENCH_SECONDS=${BENCH_SECONDS:-5}
    BENCH_PUBLISHERS=${BENCH_PUBLISHERS-2}
    BENCH_JOINS=${BENCH_JOINS:-5}
    BENCH_LATENCY_SECONDS=${BENCH_LATENCY_SECONDS:-10}
fi
# Lists set empty (BENCH_WORKERS= ...) skip their part.
BENCH_PLAYERS=${BENCH_PLAYERS-50 200 500 1000}
BENCH_SECONDS=${BENCH_SECONDS:-30}
BENCH_PUBLISHERS=${BENCH_PUBLISHERS-1 8 32}
BENCH_JOINS=${BENCH_JOINS:-20}
BENCH_WORKERS=${BENCH_WORKERS-1 2 4}
# shellcheck disable=SC2086
max_players=$(printf '%s\n' $BENCH_PLAYERS | sort -n | tail -n 1)
BENCH_WORKER_PLAYERS=${BENCH_WORKER_PLAYERS-$max_players}
BENCH_FLV_PLAYERS=${BENCH_FLV_PLAYERS:-}
BENCH_LATENCY=${BENCH_LATENCY:-1}
BENCH_LATENCY_SECONDS=${BENCH_LATENCY_SECONDS:-$((BENCH_SECONDS > 20 ? BENCH_SECONDS : 20))}
BENCH_DIR=${BENCH_DIR:-$ROOT/build/bench}
BENCH_LOAD_THREADS=${BENCH_LOAD_THREADS:-}
BENCH_OURS=${BENCH_OURS:-vendored}
BENCH_SKIP_BUILD=${BENCH_SKIP_BUILD:-}
BENCH_RS_APP=${BENCH_RS_APP:-}
# The test media: 720p25, GOP 2 s, ~2.3 Mbit/s video + 128 kbit/s AAC.
FPS=25
MEDIA_SECONDS=30

C_NGINX=/usr/sbin/nginx
C_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
case $BENCH_OURS in
    vendored)
        RS_NGINX=$ROOT/build/sbin/nginx
        RS_MODULE=$ROOT/build/modules/ngx_rtmp_rs_module.so
        ;;
    system)
        RS_NGINX=$C_NGINX
        RS_MODULE=$ROOT/build/system/ngx_rtmp_rs_module.so
        ;;
    *)
        echo "error: BENCH_OURS=$BENCH_OURS: expected vendored or system" >&2
        exit 2
        ;;
esac
LOAD=$ROOT/tools/rtmp-load/target/release/rtmp-load

# ---------------------------------------------------------------------------- setup

ensure_packages ffmpeg nginx libnginx-mod-rtmp jq procps iproute2 gcc
ensure_cargo
if [ -z "$BENCH_SKIP_BUILD" ]; then
    echo "==> building the module (scripts/build.sh)" >&2
    scripts/build.sh
    if [ "$BENCH_OURS" = system ]; then
        scripts/build-system-nginx.sh >/dev/null
    fi
fi
echo "==> building the load client (tools/rtmp-load)" >&2
(cd tools/rtmp-load && cargo build --quiet --release)
INGEST_FLOOR=$BENCH_DIR/ingest-floor
FANOUT_FLOOR=$BENCH_DIR/fanout-floor
mkdir -p "$BENCH_DIR"
cc -O2 -o "$INGEST_FLOOR" scripts/ingest-floor.c
cc -O2 -o "$FANOUT_FLOOR" scripts/fanout-floor.c
for f in "$RS_NGINX" "$RS_MODULE" "$C_NGINX" "$C_MODULE" "$LOAD"; do
    if [ ! -e "$f" ]; then
        echo "error: $f is missing (run without BENCH_SKIP_BUILD)" >&2
        exit 1
    fi
done

mkdir -p "$BENCH_DIR/media" "$BENCH_DIR/runs"
RUNS=$BENCH_DIR/runs
rm -f "$RUNS"/*.json "$RUNS"/*.log
MEDIA=$BENCH_DIR/media/testsrc2-720p25-2500k-${MEDIA_SECONDS}s.flv
if [ ! -s "$MEDIA" ]; then
    echo "==> encoding the test media once: $MEDIA" >&2
    ffmpeg -nostdin -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=1280x720:rate=$FPS" \
        -f lavfi -i "sine=frequency=440:sample_rate=44100" \
        -t "$MEDIA_SECONDS" \
        -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p \
        -b:v 2300k -maxrate 2300k -bufsize 4600k \
        -g $((2 * FPS)) -keyint_min $((2 * FPS)) -sc_threshold 0 \
        -c:a aac -b:a 128k -ac 2 \
        -f flv "$MEDIA.tmp"
    mv "$MEDIA.tmp" "$MEDIA"
fi

CLK_TCK=$(getconf CLK_TCK)
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

# ---------------------------------------------------------------------------- processes

# Everything started here, stopped on exit whatever happens.
NGINX_PIDS=()
PUB_PIDS=()

alive() {
    [ -r "/proc/$1/stat" ] && ! sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | grep -q '^Z'
}

# stop_pids SIGNAL PID...: signals, waits up to 5 s, then SIGKILLs what is left; reaps
# (the exit status of each child goes to STATUS[pid]).
declare -A STATUS=()
stop_pids() {
    local sig=$1 p i
    shift
    (($#)) || return 0
    kill "-$sig" "$@" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        local left=0
        for p in "$@"; do
            alive "$p" && left=1
        done
        ((left)) || break
        sleep 0.05
    done
    for p in "$@"; do
        alive "$p" && kill -KILL "$p" 2>/dev/null || true
    done
    for p in "$@"; do
        local st=0
        wait "$p" 2>/dev/null || st=$?
        STATUS[$p]=$st
    done
}

cleanup() {
    stop_pids TERM "${PUB_PIDS[@]}"
    local p w all=()
    for p in "${NGINX_PIDS[@]}"; do
        all+=("$p")
        for w in $(pgrep -P "$p" 2>/dev/null); do all+=("$w"); done
    done
    stop_pids TERM "${all[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() {
    [ -z "$(ss -Hatn "sport = :$1" 2>/dev/null)" ]
}
# Below the kernel's ephemeral range: 1000 players' own ports cannot take it between the
# check and nginx's bind.
free_port() {
    local p low
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
    while :; do
        p=$((low > 11000 ? 10000 + RANDOM % (low - 11000) : 20000 + RANDOM % 30000))
        port_free "$p" && { echo "$p"; return; }
    done
}

# start_nginx TARGET(rs|c) WORKERS HLSDASH(0|1) NAME: sets NGX_PID, NGX_PORT, NGX_PREFIX.
# With WITH_FLV=1 (ours), also an http server on NGX_HTTP_PORT with `location /live
# { flv_live on; }`.
start_nginx() {
    local target=$1 workers=$2 segmenters=$3 name=$4 bin module reuseport="" extra=""
    local http=""
    if [ "$target" = rs ] || [ "$target" = rs-nogop ]; then
        bin=$RS_NGINX module=$RS_MODULE extra=$BENCH_RS_APP
        if [ "$target" = rs-nogop ]; then extra="$extra gop_cache off;"; fi
        ((workers > 1)) && reuseport=" reuseport"
    else
        bin=$C_NGINX module=$C_MODULE
    fi
    NGX_PREFIX=$BENCH_DIR/srv/$name-$target
    rm -rf "$NGX_PREFIX"
    mkdir -p "$NGX_PREFIX/logs" "$NGX_PREFIX/hls" "$NGX_PREFIX/dash"
    NGX_PORT=$(free_port)
    local seg=""
    if ((segmenters)); then
        seg="
            hls on;
            hls_path $NGX_PREFIX/hls;
            hls_fragment 2s;
            hls_playlist_length 10s;
            dash on;
            dash_path $NGX_PREFIX/dash;
            dash_fragment 2s;
            dash_playlist_length 10s;"
    fi
    if [ "${WITH_FLV:-0}" = 1 ]; then
        NGX_HTTP_PORT=$(free_port)
        http="
http {
    access_log off;
    server {
        listen 127.0.0.1:$NGX_HTTP_PORT$reuseport;
        location /live { flv_live on; }
    }
}"
    fi
    local user=""
    ((IS_ROOT)) && user="user root;"
    cat >"$NGX_PREFIX/nginx.conf" <<EOF
load_module $module;
$user
worker_processes $workers;
worker_rlimit_nofile 16384;
error_log $NGX_PREFIX/logs/error.log warn;
pid $NGX_PREFIX/logs/nginx.pid;
daemon off;

events {
    worker_connections 8192;
}

rtmp {
    server {
        listen 127.0.0.1:$NGX_PORT$reuseport;
        chunk_size 4096;
        application live {
            live on;$seg
            $extra
        }
    }
}
$http
EOF
    (cd "$NGX_PREFIX" && exec "$bin" -p "$NGX_PREFIX" -c "$NGX_PREFIX/nginx.conf" \
        -e "$NGX_PREFIX/logs/error.log" >"$NGX_PREFIX/logs/stdout.log" 2>&1) &
    NGX_PID=$!
    NGINX_PIDS+=("$NGX_PID")
    local i
    for ((i = 0; i < 200; i++)); do
        if ! alive "$NGX_PID"; then
            break
        fi
        if ! port_free "$NGX_PORT" && [ "$(pgrep -P "$NGX_PID" | wc -l)" -ge "$workers" ]; then
            return 0
        fi
        sleep 0.05
    done
    echo "error: $target nginx did not start ($NGX_PREFIX):" >&2
    cat "$NGX_PREFIX/logs/error.log" "$NGX_PREFIX/logs/stdout.log" >&2 || true
    exit 1
}

stop_nginx() {
    local w all=("$NGX_PID")
    for w in $(pgrep -P "$NGX_PID" 2>/dev/null); do all+=("$w"); done
    stop_pids TERM "${all[@]}" 2>/dev/null
    if [ "${STATUS[$NGX_PID]:-0}" -gt 128 ]; then
        echo "warning: the nginx master ($NGX_PREFIX) died of signal" \
            "$((STATUS[$NGX_PID] - 128)) when stopped (SIGTERM)" >&2
    fi
    local keep=() p
    for p in "${NGINX_PIDS[@]}"; do [ "$p" = "$NGX_PID" ] || keep+=("$p"); done
    NGINX_PIDS=("${keep[@]}")
    if grep -E '\[(alert|emerg)\]|exited on signal|panicked|not implemented' \
        "$NGX_PREFIX/logs/error.log" \
        >"$NGX_PREFIX/logs/problems.log" 2>/dev/null; then
        echo "warning: problems in $NGX_PREFIX/logs/error.log:" >&2
        head -n 5 "$NGX_PREFIX/logs/problems.log" >&2
    fi
}

workers_of() { pgrep -P "$NGX_PID" | tr '\n' ' '; }

# cpu_seconds PID...: CPU time of the processes' threads, in seconds: the scheduler's
# nanosecond counts where the kernel keeps them (one publisher is a few clock ticks a
# minute), else utime + stime in clock ticks.
cpu_seconds() {
    local p ticks=0 t
    if [ -r /proc/self/schedstat ]; then
        for p in "$@"; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done |
            awk '{ ns += $1 } END { printf "%.4f", ns / 1e9 }'
        return
    fi
    for p in "$@"; do
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
        ticks=$((ticks + ${t:-0}))
    done
    awk -v t="$ticks" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'
}

# peak_rss_mb PID...: sum of VmHWM, MB.
peak_rss_mb() {
    local p kb=0 v
    for p in "$@"; do
        v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || v=0
        kb=$((kb + ${v:-0}))
    done
    awk -v kb="$kb" 'BEGIN { printf "%.1f", kb / 1024 }'
}

# start_publisher NAME: one looping `ffmpeg -re -c copy` publisher into NGX_PORT.
start_publisher() {
    ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 -i "$MEDIA" -c copy \
        -f flv "rtmp://127.0.0.1:$NGX_PORT/live/$1" >>"$NGX_PREFIX/logs/ffmpeg.log" 2>&1 &
    PUB_PIDS+=("$!")
}

stop_publishers() {
    stop_pids TERM "${PUB_PIDS[@]}"
    PUB_PIDS=()
}

# wait_live NAME: until a player gets a keyframe of the stream (at most 20 s).
wait_live() {
    if ! "$LOAD" join --url "rtmp://127.0.0.1:$NGX_PORT/live/$1" --times 1 --timeout 20 \
        >/dev/null; then
        echo "error: stream live/$1 did not start on port $NGX_PORT ($NGX_PREFIX)" >&2
        cat "$NGX_PREFIX/logs/ffmpeg.log" "$NGX_PREFIX/logs/error.log" >&2 || true
        exit 1
    fi
}

# ---------------------------------------------------------------------------- results

FIGS=()
declare -A SEEN=() OURS=() THEIRS=()
# put FIGURE TARGET VALUE
put() {
    if [ -z "${SEEN[$1]:-}" ]; then
        FIGS+=("$1")
        SEEN[$1]=1
    fi
    if [ "$2" = rs ]; then OURS[$1]=$3; else THEIRS[$1]=$3; fi
}

calc() { awk "BEGIN { v = $1; printf \"%.${2:-2}f\", v }"; }
# div A B [DECIMALS]: A / B, or "n/a" when B is 0.
div() {
    awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN {
        if (b + 0 == 0) print "n/a"; else printf "%.*f\n", d, a / b }'
}
jqr() { jq -r "$1" "$2"; }
# r1 VALUE: a number with one decimal (anything else as it is).
r1() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /^-?[0-9.]+$/) printf "%.1f\n", v; else if (v == "null" || v == "") print "n/a"
        else print v }'
}

label() {
    case $1 in
        rs) echo "ours" ;;
        rs-nogop) echo "ours with gop_cache off" ;;
        *) echo "C module" ;;
    esac
}

play_args() {
    local a=(--fps "$FPS" --json)
    [ -n "$BENCH_LOAD_THREADS" ] && a+=(--threads "$BENCH_LOAD_THREADS")
    echo "${a[@]}"
}

# fanout_run TARGET WORKERS PLAYERS TAG: one fan-out measurement; sets FR_CPG (worker CPU s
# per GB), FR_RSS (MB), FR_KEPT, FR_MBIT, FR_CLIENT_CPU (% of a core), FR_ERRORS, and keeps
# the load client's JSON in $RUNS.
fanout_run() {
    local target=$1 workers=$2 n=$3 tag=$4
    start_nginx "$target" "$workers" 0 "$tag"
    start_publisher bench
    wait_live bench
    sleep 1
    local pids c0 c1 out=$RUNS/$tag-$target.json
    pids=$(workers_of)
    # shellcheck disable=SC2086
    c0=$(cpu_seconds $pids)
    # shellcheck disable=SC2046
    "$LOAD" play --url "rtmp://127.0.0.1:$NGX_PORT/live/bench" --clients "$n" \
        --seconds "$BENCH_SECONDS" $(play_args) >"$out"
    # shellcheck disable=SC2086
    c1=$(cpu_seconds $pids)
    local rss
    # shellcheck disable=SC2086
    rss=$(peak_rss_mb $pids)
    stop_publishers
    stop_nginx
    FR_CPG=$(div "$(calc "$c1 - $c0")" "$(calc "$(jqr .bytes "$out") / 1e9" 6)")
    FR_RSS=$rss
    FR_KEPT=$(jqr .kept_up "$out")
    FR_MBIT=$(r1 "$(jqr .mbit_per_s "$out")")
    FR_CLIENT_CPU=$(r1 "$(jqr .cpu_pct "$out")")
    FR_ERRORS=$(jqr .errors "$out")
}

# ---------------------------------------------------------------------------- fan-out

for n in $BENCH_PLAYERS; do
    for target in rs c; do
        echo "==> fan-out: 1 publisher, $n players, ${BENCH_SECONDS}s: $(label $target)" >&2
        fanout_run "$target" 1 "$n" "fanout-$n"
        put "fan-out $n players: worker CPU s per GB delivered ↓" "$target" "$FR_CPG"
        put "fan-out $n players: peak worker RSS MB ↓" "$target" "$FR_RSS"
        put "fan-out $n players: players kept up ↑" "$target" "$FR_KEPT/$n"
        put "fan-out $n players: delivered Mbit/s" "$target" "$FR_MBIT"
        put "fan-out $n players: load client CPU % of a core" "$target" "$FR_CLIENT_CPU"
        ((FR_ERRORS == 0)) || put "fan-out $n players: players with errors ↓" "$target" "$FR_ERRORS"
        [ "$target" = c ] && C_CPG=$FR_CPG
    done
    # The floor: the stream's bytes written to as many loopback sockets from one buffer, in
    # one write per socket every 40 ms, nothing else (scripts/fanout-floor.c): the lowest
    # ours/C any server can reach on this machine.
    echo "==> fan-out floor: $n players, ${BENCH_SECONDS}s" >&2
    rate=$(($(stat -c %s "$MEDIA") / MEDIA_SECONDS))
    fig="fan-out $n players: the floor (the stream's bytes written to N sockets, nothing else) vs the C module, CPU s per GB ↓"
    put "$fig" rs "$("$FANOUT_FLOOR" "$n" "$BENCH_SECONDS" "$rate")"
    put "$fig" c "$C_CPG"
done

# ---------------------------------------------------------------------------- ingest

# ingest_floor N: the floor row of N publishers: scripts/ingest-floor.c receives the same
# streams (FLV over plain TCP) and writes every byte twice with the segments' renames and
# deletions, nothing else, with either read strategy; the cheaper one is the floor, shown
# against the C module's figure: the lowest ours/C any server writing HLS + DASH can reach.
ingest_floor() {
    local p=$1 mode best="" cpu c0 c1 pid i port dir=$BENCH_DIR/srv/floor
    for mode in 0 1; do
        rm -rf "$dir"
        mkdir -p "$dir"
        port=$(free_port)
        "$INGEST_FLOOR" "$port" "$dir" "$mode" &
        pid=$!
        sleep 0.3
        for ((i = 1; i <= p; i++)); do
            ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 -i "$MEDIA" \
                -c copy -f flv "tcp://127.0.0.1:$port" >>"$dir/ffmpeg.log" 2>&1 &
            PUB_PIDS+=("$!")
        done
        sleep 3
        c0=$(cpu_seconds "$pid")
        sleep "$BENCH_SECONDS"
        c1=$(cpu_seconds "$pid")
        stop_publishers
        stop_pids TERM "$pid"
        cpu=$(div "$(calc "$c1 - $c0" 4)" "$(calc "$p * $BENCH_SECONDS / 60" 4)" 3)
        if [ -z "$best" ] || awk -v a="$cpu" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$cpu
        fi
    done
    rm -rf "$dir"
    local fig="ingest $p publishers: the floor (receive, write each byte twice, nothing else) vs the C module, CPU s per publisher-minute ↓"
    put "$fig" rs "$best"
    put "$fig" c "${C_INGEST_CPU:-n/a}"
}

# Ours runs twice: as configured by default (gop_cache on: every stream holds its last GOP
# for instant joins, bitrate x GOP length of memory the C module has no equivalent of), and
# with gop_cache off, which is like for like with the C module (the RSS target's row).
for p in $BENCH_PUBLISHERS; do
    for target in rs rs-nogop c; do
        echo "==> ingest: $p publishers, HLS + DASH, ${BENCH_SECONDS}s: $(label $target)" >&2
        start_nginx "$target" 1 1 "ingest-$p"
        for ((i = 1; i <= p; i++)); do start_publisher "s$i"; done
        wait_live "s$p"
        sleep 1
        pids=$(workers_of)
        # shellcheck disable=SC2086
        c0=$(cpu_seconds $pids)
        sleep "$BENCH_SECONDS"
        # shellcheck disable=SC2086
        c1=$(cpu_seconds $pids)
        # shellcheck disable=SC2086
        rss=$(peak_rss_mb $pids)
        alive_pubs=0
        for pid in "${PUB_PIDS[@]}"; do alive "$pid" && alive_pubs=$((alive_pubs + 1)); done
        outputs=0
        for ((i = 1; i <= p; i++)); do
            if [ -s "$NGX_PREFIX/hls/s$i.m3u8" ] && [ -s "$NGX_PREFIX/dash/s$i.mpd" ]; then
                outputs=$((outputs + 1))
            fi
        done
        stop_publishers
        stop_nginx
        cpu=$(calc "$c1 - $c0" 4)
        if [ "$target" = rs-nogop ]; then
            NOGOP_RSS=$rss
            continue
        fi
        put "ingest $p publishers (HLS+DASH): worker CPU s per publisher-minute ↓" "$target" \
            "$(div "$cpu" "$(calc "$p * $BENCH_SECONDS / 60" 4)" 3)"
        put "ingest $p publishers (HLS+DASH): peak worker RSS MB ↓" "$target" "$rss"
        if [ "$target" = c ]; then
            nogop_fig="ingest $p publishers (HLS+DASH), ours with gop_cache off: peak worker RSS MB ↓"
            put "$nogop_fig" rs "$NOGOP_RSS"
            put "$nogop_fig" c "$rss"
        fi
        put "ingest $p publishers (HLS+DASH): streams with HLS and DASH output ↑" "$target" \
            "$outputs/$p"
        ((alive_pubs == p)) ||
            put "ingest $p publishers (HLS+DASH): publishers still connected ↑" "$target" \
                "$alive_pubs/$p"
        [ "$target" = c ] && C_INGEST_CPU=$(div "$cpu" "$(calc "$p * $BENCH_SECONDS / 60" 4)" 3)
    done
    ingest_floor "$p"
done

# ---------------------------------------------------------------------------- latency

latency_targets="rs c"
[ "$BENCH_LATENCY" = 0 ] && latency_targets=""
for target in $latency_targets; do
    echo "==> latency: joins, HLS and DASH availability, ${BENCH_LATENCY_SECONDS}s: $(label $target)" >&2
    start_nginx "$target" 1 1 latency
    # A player that is waiting when the publisher starts tells when frame 0 was sent (the
    # reference of the segment availability figures); the publisher's launch time is the
    # fallback (it then includes ffmpeg's start-up).
    "$LOAD" join --url "rtmp://127.0.0.1:$NGX_PORT/live/lat" --times 1 --timeout 20 --json \
        >"$RUNS/t0-$target.json" &
    t0w=$!
    sleep 0.5
    t0=$(date +%s%3N)
    start_publisher lat
    wait "$t0w" || true
    t0_frame=$(jqr '.stream_t0_unix_ms // empty' "$RUNS/t0-$target.json" 2>/dev/null || true)
    if [ -n "$t0_frame" ]; then
        T0_SOURCE="the first frame's arrival at a waiting player, less its timestamp"
        t0=$t0_frame
    else
        T0_SOURCE="the publisher's launch (includes ffmpeg's start-up)"
        echo "warning: no first-frame time from the waiting player; using the launch time" >&2
    fi
    "$LOAD" hls-watch --playlist "$NGX_PREFIX/hls/lat.m3u8" --seconds "$BENCH_LATENCY_SECONDS" \
        --t0-ms "$t0" --json >"$RUNS/hls-$target.json" &
    hw=$!
    "$LOAD" dash-watch --mpd "$NGX_PREFIX/dash/lat.mpd" --seconds "$BENCH_LATENCY_SECONDS" \
        --t0-ms "$t0" --json >"$RUNS/dash-$target.json" &
    dw=$!
    wait_live lat
    "$LOAD" join --url "rtmp://127.0.0.1:$NGX_PORT/live/lat" --times "$BENCH_JOINS" --json \
        >"$RUNS/join-$target.json" || true
    wait "$hw" "$dw"
    stop_publishers
    stop_nginx
    j=$RUNS/join-$target.json h=$RUNS/hls-$target.json d=$RUNS/dash-$target.json
    put "RTMP join, play → first video frame, median ms ↓" "$target" "$(r1 "$(jqr .first_video_ms.median "$j")")"
    put "RTMP join, play → first video frame, p95 ms ↓" "$target" "$(r1 "$(jqr .first_video_ms.p95 "$j")")"
    put "RTMP join, play → first keyframe, median ms ↓" "$target" "$(r1 "$(jqr .first_key_ms.median "$j")")"
    put "RTMP join, play → first keyframe, p95 ms ↓" "$target" "$(r1 "$(jqr .first_key_ms.p95 "$j")")"
    put "RTMP joins that got a keyframe ↑" "$target" "$(jqr .ok "$j")/$BENCH_JOINS"
    put "HLS segment listed after its last frame was published, median ms ↓" "$target" \
        "$(r1 "$(jqr .listed_late_ms.median "$h")")"
    put "HLS segment listed after its last frame was published, p95 ms ↓" "$target" \
        "$(r1 "$(jqr .listed_late_ms.p95 "$h")")"
    put "HLS segments listed before their file existed ↓" "$target" \
        "$(jqr .listed_before_file "$h")/$(jqr .segments "$h")"
    put "DASH segment listed after its last frame was published, median ms ↓" "$target" \
        "$(r1 "$(jqr .listed_late_ms.median "$d")")"
    put "DASH segment listed after its last frame was published, p95 ms ↓" "$target" \
        "$(r1 "$(jqr .listed_late_ms.p95 "$d")")"
    put "DASH segments announced in the MPD before their file existed ↓" "$target" \
        "$(jqr .listed_before_file "$d")/$(jqr .segments "$d")"
done

# ---------------------------------------------------------------------------- workers

for n in $BENCH_WORKER_PLAYERS; do
    for w in $BENCH_WORKERS; do
        echo "==> workers: ours, worker_processes $w, $n players, ${BENCH_SECONDS}s" >&2
        fanout_run rs "$w" "$n" "workers-$w-$n"
        put "workers $w (reuseport), $n players: players kept up ↑" rs "$FR_KEPT/$n"
        put "workers $w (reuseport), $n players: worker CPU s per GB ↓" rs "$FR_CPG"
        put "workers $w (reuseport), $n players: peak RSS MB, all workers ↓" rs "$FR_RSS"
        put "workers $w (reuseport), $n players: delivered Mbit/s" rs "$FR_MBIT"
        put "workers $w (reuseport), $n players: load client CPU % of a core" rs "$FR_CLIENT_CPU"
    done
done

# ---------------------------------------------------------------------------- HTTP-FLV

# One nginx, one publisher: N RTMP players, N HTTP-FLV players, again N HTTP-FLV and N RTMP
# (ABBA: a later run measured a few % dearer here, whatever its protocol), each for
# BENCH_SECONDS; worker CPU per GB of each protocol over its two runs (ours only: the C module
# has no HTTP-FLV).
for n in $BENCH_FLV_PLAYERS; do
    echo "==> HTTP-FLV: ours, 1 publisher, $n RTMP / HTTP-FLV / HTTP-FLV / RTMP players," \
        "${BENCH_SECONDS}s each" >&2
    WITH_FLV=1 start_nginx rs 1 0 "flv-$n"
    start_publisher bench
    wait_live bench
    sleep 1
    pids=$(workers_of)
    declare -A FLV_CPU=([rtmp]=0 [flv]=0) FLV_BYTES=([rtmp]=0 [flv]=0) FLV_KEPT=([rtmp]=0 [flv]=0)
    declare -A FLV_MBIT=()
    run=0
    for proto in rtmp flv flv rtmp; do
        run=$((run + 1))
        if [ "$proto" = rtmp ]; then
            url="rtmp://127.0.0.1:$NGX_PORT/live/bench"
        else
            url="http://127.0.0.1:$NGX_HTTP_PORT/live?app=live&stream=bench"
        fi
        out=$RUNS/flv-$n-$run-$proto.json
        # shellcheck disable=SC2086
        c0=$(cpu_seconds $pids)
        # shellcheck disable=SC2046
        "$LOAD" play --url "$url" --clients "$n" --seconds "$BENCH_SECONDS" $(play_args) >"$out"
        # shellcheck disable=SC2086
        c1=$(cpu_seconds $pids)
        FLV_CPU[$proto]=$(calc "${FLV_CPU[$proto]} + $c1 - $c0")
        FLV_BYTES[$proto]=$(calc "${FLV_BYTES[$proto]} + $(jqr .bytes "$out")" 0)
        FLV_KEPT[$proto]=$((FLV_KEPT[$proto] + $(jqr .kept_up "$out")))
        FLV_MBIT[$proto]=$(r1 "$(jqr .mbit_per_s "$out")")
        sleep 1
    done
    declare -A FLV_CPG=()
    for proto in rtmp flv; do
        FLV_CPG[$proto]=$(div "${FLV_CPU[$proto]}" "$(calc "${FLV_BYTES[$proto]} / 1e9" 6)")
        put "same run, $n $proto players: worker CPU s per GB ↓" rs "${FLV_CPG[$proto]}"
        put "same run, $n $proto players: players kept up (2 runs) ↑" rs \
            "${FLV_KEPT[$proto]}/$((2 * n))"
        put "same run, $n $proto players: delivered Mbit/s" rs "${FLV_MBIT[$proto]}"
    done
    put "same run, $n players: HTTP-FLV / RTMP worker CPU per GB ↓" rs \
        "$(div "${FLV_CPG[flv]}" "${FLV_CPG[rtmp]}")"
    stop_publishers
    stop_nginx
done

# ---------------------------------------------------------------------------- report

# ratio OURS THEIRS: ours/theirs of the leading numbers ("48/50" counts 48); "–" where a
# ratio means nothing (a negative value, or a division by 0).
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        sub(/\/.*/, "", a); sub(/\/.*/, "", b)
        if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/) { print "–"; exit }
        if (b + 0 == 0) { print (a + 0 == 0) ? "1.00" : "–"; exit }
        r = a / b
        if (r > 0 && r < 0.01) print "<0.01"; else printf "%.2f\n", r }'
}

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
rs_ver=$("$RS_NGINX" -v 2>&1 | sed 's/.*version: //')
c_ver=$("$C_NGINX" -v 2>&1 | sed 's/.*version: //')
c_mod_ver=$(dpkg-query -W -f='${Version}' libnginx-mod-rtmp 2>/dev/null || echo "?")
report=$BENCH_DIR/bench-results.md
{
    echo "# nginx-rtmp-rs vs nginx-rtmp-module"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- command: \`$COMMAND\`"
    echo "- nproc: $(nproc); CPU: $cpu_model; kernel $(uname -r)"
    echo "- ours: $rs_ver ($RS_NGINX) + $(basename "$RS_MODULE")" \
        "(git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo "- C module: $c_ver ($C_NGINX) + libnginx-mod-rtmp $c_mod_ver"
    echo "- settings: players \"$BENCH_PLAYERS\", ${BENCH_SECONDS}s per run, publishers" \
        "\"$BENCH_PUBLISHERS\", $BENCH_JOINS joins, HLS/DASH watched ${BENCH_LATENCY_SECONDS}s," \
        "workers \"$BENCH_WORKERS\" with $BENCH_WORKER_PLAYERS players${BENCH_RS_APP:+, ours with \`$BENCH_RS_APP\`}"
    echo "- media: 1280x720 ${FPS} fps H.264 (GOP 2 s) ~2.3 Mbit/s + AAC 128 kbit/s," \
        "\`ffmpeg -re -stream_loop -1 -c copy\`; 2 s fragments, 10 s playlists"
    echo
    echo "| figure | ours | C module | ours/C |"
    echo "| --- | ---: | ---: | ---: |"
    for f in "${FIGS[@]}"; do
        o=${OURS[$f]:-n/a} t=${THEIRS[$f]:-n/a}
        r="–"
        if [ "$t" != n/a ] && [ "$o" != n/a ] && [[ $f != *"load client"* ]]; then
            r=$(ratio "$o" "$t")
        fi
        echo "| $f | $o | $t | $r |"
    done
    echo
    echo "↓: lower is better, ↑: higher is better. Worker CPU: run time of the nginx" \
        "workers' threads over the measurement (/proc/PID/task/*/schedstat, ns; utime + stime" \
        "where the kernel keeps no schedstat); GB delivered: bytes the load client" \
        "received (10^9). RSS: VmHWM of the workers (summed over workers). A player kept up" \
        "when it received at least 90 % of its viewing window in time (rtmp-load play --help)." \
        "Segment availability: first seen in the playlist/MPD (polled every 50 ms) minus" \
        "(stream start + segment end time), the stream start being ${T0_SOURCE:-n/a}." \
        "The load client, publishers and nginx share the machine's CPUs; raw JSON in $RUNS."
} >"$report"
echo
cat "$report"
echo
echo "written to $report" >&2
