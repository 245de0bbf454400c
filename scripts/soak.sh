#!/usr/bin/env bash
# Long soak of our nginx + module (not for CI): a churning but modest load for SOAK_MINUTES,
# with every worker's RSS sampled, to catch slow leaks and rare crashes.
#
# Usage: scripts/soak.sh [--skip-build]
#   SOAK_MINUTES=2 SOAK_WARMUP_MINUTES=1 scripts/soak.sh     a quick end-to-end check
#
# What runs (build/sbin/nginx + build/modules/ngx_rtmp_rs_module.so, from scripts/build.sh):
#   nginx     worker_processes 2 (rtmp `listen ... reuseport`), HLS and DASH on, /stat and
#             /control, on free ports, prefix $SOAK_DIR/srv;
#   publishers SOAK_PUBLISHERS (1-3) `ffmpeg -re -stream_loop -1 -c copy` of a small file
#             (360p25, encoded once) to live/soak1..N; each publishes for a random
#             SOAK_PUBLISH_SECONDS span, stops (SIGINT: a clean unpublish; every third stop
#             SIGKILL: the connection just dies), and republishes the same name 3-10 s later;
#             one that ends on its own (e.g. dropped through /control) is restarted too;
#   players   a rolling set: every SOAK_PLAYER_EVERY seconds, while fewer than
#             SOAK_MAX_PLAYERS play, 1-3 more join a random stream (up or down) for 10-60 s:
#             `rtmp-load play` (tools/rtmp-load), or `ffmpeg -c copy -f null` players if that
#             cannot be built;
#   HTTP      /stat (XML, JSON, Prometheus in turn) every 15 s, which must answer 200;
#             /control/drop/subscriber every 60 s and /control/drop/publisher every 5 min,
#             on a random stream (the dropped publisher is restarted as above).
# Every SOAK_SAMPLE_SECONDS the VmRSS and VmHWM of the master and of each worker
# (/proc/<pid>/status) go to $SOAK_DIR/rss-<date>.csv (kept), with the publishers and
# players active then.
#
# Verdict: for each worker, the median RSS of the first minute after the warm-up
# (SOAK_WARMUP_MINUTES) against the median RSS of the last minute; the soak fails if any
# worker grew by SOAK_MAX_GROWTH_PCT or more, if a worker was replaced (a crash), if nginx
# stopped or did not stop gracefully at the end, if the error log has [alert]/[emerg]/
# "exited on signal"/"panicked" lines, or if a /stat request failed. A summary table is
# printed at the end.
#
# Environment (defaults):
#   SOAK_MINUTES=30  SOAK_WARMUP_MINUTES=5  SOAK_MAX_GROWTH_PCT=2  SOAK_SAMPLE_SECONDS=10
#   SOAK_PUBLISHERS=3  SOAK_PUBLISH_SECONDS="60 240" (min max)
#   SOAK_MAX_PLAYERS=12  SOAK_PLAYER_EVERY=5
#   SOAK_STAT_EVERY=15  SOAK_DROP_SUBSCRIBER_EVERY=60  SOAK_DROP_PUBLISHER_EVERY=300  (seconds)
#   SOAK_DIR=build/soak
#   SOAK_NGINX=build/sbin/nginx  SOAK_MODULE=build/modules/ngx_rtmp_rs_module.so
#   SOAK_SKIP_BUILD=           1: do not run scripts/build.sh (same as --skip-build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

SOAK_SKIP_BUILD=${SOAK_SKIP_BUILD:-}
for arg in "$@"; do
    case $arg in
        --skip-build) SOAK_SKIP_BUILD=1 ;;
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

SOAK_MINUTES=${SOAK_MINUTES:-30}
SOAK_WARMUP_MINUTES=${SOAK_WARMUP_MINUTES:-5}
SOAK_MAX_GROWTH_PCT=${SOAK_MAX_GROWTH_PCT:-2}
SOAK_SAMPLE_SECONDS=${SOAK_SAMPLE_SECONDS:-10}
SOAK_PUBLISHERS=${SOAK_PUBLISHERS:-3}
SOAK_PUBLISH_SECONDS=${SOAK_PUBLISH_SECONDS:-60 240}
SOAK_MAX_PLAYERS=${SOAK_MAX_PLAYERS:-12}
SOAK_PLAYER_EVERY=${SOAK_PLAYER_EVERY:-5}
SOAK_DIR=${SOAK_DIR:-$ROOT/build/soak}
SOAK_NGINX=${SOAK_NGINX:-$ROOT/build/sbin/nginx}
SOAK_MODULE=${SOAK_MODULE:-$ROOT/build/modules/ngx_rtmp_rs_module.so}
WORKERS=2
STAT_EVERY=${SOAK_STAT_EVERY:-15}
DROP_SUB_EVERY=${SOAK_DROP_SUBSCRIBER_EVERY:-60}
DROP_PUB_EVERY=${SOAK_DROP_PUBLISHER_EVERY:-300}

# Minutes may be fractional; everything below counts seconds.
secs() { awk -v m="$1" 'BEGIN { if (m !~ /^[0-9]+(\.[0-9]+)?$/) exit 1; printf "%d\n", m * 60 }'; }
TOTAL_S=$(secs "$SOAK_MINUTES") || { echo "error: SOAK_MINUTES=$SOAK_MINUTES" >&2; exit 2; }
WARMUP_S=$(secs "$SOAK_WARMUP_MINUTES") || {
    echo "error: SOAK_WARMUP_MINUTES=$SOAK_WARMUP_MINUTES" >&2
    exit 2
}
read -r PUB_MIN PUB_MAX <<<"$SOAK_PUBLISH_SECONDS"
PUB_MAX=${PUB_MAX:-$PUB_MIN}
if ((TOTAL_S < WARMUP_S + 60)); then
    echo "error: SOAK_MINUTES must be at least SOAK_WARMUP_MINUTES + 1 (a minute to measure)" >&2
    exit 2
fi
if ((SOAK_PUBLISHERS < 1)); then
    echo "error: SOAK_PUBLISHERS must be 1 or more" >&2
    exit 2
fi

# ---------------------------------------------------------------------------- setup

ensure_packages ffmpeg curl jq procps iproute2
ensure_cargo
if [ -z "$SOAK_SKIP_BUILD" ]; then
    echo "==> building the module and nginx (scripts/build.sh)"
    scripts/build.sh
fi
for f in "$SOAK_NGINX" "$SOAK_MODULE"; do
    [ -e "$f" ] || { echo "error: $f is missing (run scripts/build.sh)" >&2; exit 1; }
done

LOAD=
if [ -f tools/rtmp-load/Cargo.toml ]; then
    echo "==> building the RTMP player (tools/rtmp-load)"
    if (cd tools/rtmp-load && cargo build --quiet --release); then
        LOAD=$ROOT/tools/rtmp-load/target/release/rtmp-load
    else
        echo "warning: tools/rtmp-load did not build: ffmpeg players instead" >&2
    fi
fi

mkdir -p "$SOAK_DIR/media"
MEDIA=$SOAK_DIR/media/testsrc2-360p25-800k-20s.flv
if [ ! -s "$MEDIA" ]; then
    echo "==> encoding the test media once: $MEDIA"
    ffmpeg -nostdin -hide_banner -loglevel error -y \
        -f lavfi -i "testsrc2=size=640x360:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=44100" \
        -t 20 -c:v libx264 -preset veryfast -pix_fmt yuv420p -b:v 800k -maxrate 800k -bufsize 1600k \
        -g 50 -keyint_min 50 -sc_threshold 0 -c:a aac -b:a 96k -ac 2 -f flv "$MEDIA.tmp"
    mv "$MEDIA.tmp" "$MEDIA"
fi

PREFIX=$SOAK_DIR/srv
PLAYERS_DIR=$SOAK_DIR/players
rm -rf "$PREFIX" "$PLAYERS_DIR"
mkdir -p "$PREFIX/logs" "$PREFIX/hls" "$PREFIX/dash" "$PREFIX/tmp" "$PLAYERS_DIR"
CSV=$SOAK_DIR/rss-$(date +%Y%m%d-%H%M%S).csv
echo "elapsed_s,unix_time,pid,role,rss_kb,hwm_kb,publishers,players" >"$CSV"

# ---------------------------------------------------------------------------- processes

NGX_PID=
declare -A PLAYER_CLIENTS=() PLAYER_OUT=()
declare -a PUB_PID=() PUB_UNTIL=() PUB_NEXT=()

# alive PID: the process exists and is not a zombie (state after the last ')' of its stat).
alive() {
    local s
    { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
    s=${s##*) }
    [ "${s:0:1}" != Z ]
}

# stop_pid SIGNAL PID: signals, waits up to 5 s, then SIGKILL; reaps; the exit status in REAPED.
REAPED=0
stop_pid() {
    local sig=$1 p=$2 i
    kill "-$sig" "$p" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$p" || break
        sleep 0.05
    done
    if alive "$p"; then
        kill -KILL "$p" 2>/dev/null || true
    fi
    REAPED=0
    wait "$p" 2>/dev/null || REAPED=$?
}

cleanup() {
    local p i
    for p in "${!PLAYER_CLIENTS[@]}"; do stop_pid TERM "$p"; done
    PLAYER_CLIENTS=()
    for i in "${!PUB_PID[@]}"; do
        [ -n "${PUB_PID[$i]}" ] && stop_pid TERM "${PUB_PID[$i]}"
        PUB_PID[i]=
    done
    if [ -n "$NGX_PID" ]; then
        local workers
        workers=$(pgrep -P "$NGX_PID" 2>/dev/null || true)
        stop_pid TERM "$NGX_PID"
        for p in $workers; do
            alive "$p" && kill -KILL "$p" 2>/dev/null || true
        done
        NGX_PID=
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { [ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        port_free "$p" && [ "$p" != "${RTMP_PORT:-}" ] && { echo "$p"; return; }
    done
}
rand_between() { echo $(($1 + RANDOM % ($2 - $1 + 1))); }

RTMP_PORT=$(free_port)
HTTP_PORT=$(free_port)
user=""
[ "$(id -u)" -eq 0 ] && user="user root;"
cat >"$PREFIX/nginx.conf" <<EOF
load_module $SOAK_MODULE;
$user
worker_processes $WORKERS;
error_log $PREFIX/logs/error.log notice;
pid $PREFIX/logs/nginx.pid;
daemon off;
master_process on;

events {
    worker_connections 1024;
}

rtmp {
    server {
        listen 127.0.0.1:$RTMP_PORT reuseport;
        chunk_size 4096;
        application live {
            live on;
            hls on;
            hls_path $PREFIX/hls;
            hls_fragment 2s;
            hls_playlist_length 10s;
            dash on;
            dash_path $PREFIX/dash;
            dash_fragment 2s;
            dash_playlist_length 10s;
        }
    }
}

http {
    access_log off;
    client_body_temp_path $PREFIX/tmp/client_body;
    proxy_temp_path $PREFIX/tmp/proxy;
    fastcgi_temp_path $PREFIX/tmp/fastcgi;
    uwsgi_temp_path $PREFIX/tmp/uwsgi;
    scgi_temp_path $PREFIX/tmp/scgi;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        location /stat { rtmp_stat all; }
        location /control { rtmp_control all; }
    }
}
EOF

echo "==> starting nginx ($WORKERS workers, HLS + DASH): rtmp 127.0.0.1:$RTMP_PORT," \
    "http 127.0.0.1:$HTTP_PORT, prefix ${PREFIX#"$ROOT"/}"
(cd "$PREFIX" && exec "$SOAK_NGINX" -p "$PREFIX" -c "$PREFIX/nginx.conf" \
    -e "$PREFIX/logs/error.log" >"$PREFIX/logs/stdout.log" 2>&1) &
NGX_PID=$!
for ((i = 0; i < 200; i++)); do
    alive "$NGX_PID" || break
    if ! port_free "$RTMP_PORT" && ! port_free "$HTTP_PORT" &&
        [ "$(pgrep -P "$NGX_PID" | wc -l)" -ge "$WORKERS" ]; then
        break
    fi
    sleep 0.05
done
if ! alive "$NGX_PID" || port_free "$RTMP_PORT"; then
    echo "error: nginx did not start:" >&2
    cat "$PREFIX/logs/error.log" "$PREFIX/logs/stdout.log" >&2 || true
    exit 1
fi
INITIAL_WORKERS=$(pgrep -P "$NGX_PID" | sort -n | tr '\n' ' ')
echo "    master $NGX_PID, workers $INITIAL_WORKERS"

# ---------------------------------------------------------------------------- load

PUB_STARTS=0 PUB_CLEAN_STOPS=0 PUB_KILLS=0 PUB_ENDED=0
PLAYER_RUNS=0 PLAYER_CLIENTS_TOTAL=0 PLAYER_PLAYING=0 PLAYER_ERRORS=0 PLAYER_NOREPORT=0
STAT_OK=0 STAT_FAIL=0 DROP_SUB=0 DROP_PUB=0 DROP_FAIL=0 DROPPED=0
problems=()

start_publisher() {
    local i=$1 now=$2
    ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 -i "$MEDIA" -c copy \
        -f flv "rtmp://127.0.0.1:$RTMP_PORT/live/soak$i" >>"$PREFIX/logs/ffmpeg-soak$i.log" 2>&1 &
    PUB_PID[i]=$!
    # Out of the job table: bash would print a "Killed" line for each SIGKILLed publisher
    # (it still reaps it; alive() looks at /proc).
    disown "$!"
    PUB_UNTIL[i]=$((now + $(rand_between "$PUB_MIN" "$PUB_MAX")))
    PUB_STARTS=$((PUB_STARTS + 1))
}

# Publishers: stop the ones whose time is up (every third with SIGKILL), restart the ones
# that are down and due.
tend_publishers() {
    local now=$1 i pid
    for ((i = 1; i <= SOAK_PUBLISHERS; i++)); do
        pid=${PUB_PID[$i]:-}
        if [ -n "$pid" ] && ! alive "$pid"; then
            wait "$pid" 2>/dev/null || true
            PUB_ENDED=$((PUB_ENDED + 1))
            PUB_PID[i]=
            PUB_NEXT[i]=$((now + $(rand_between 2 5)))
        elif [ -n "$pid" ] && ((now >= PUB_UNTIL[i])); then
            if (((PUB_CLEAN_STOPS + PUB_KILLS + 1) % 3 == 0)); then
                stop_pid KILL "$pid"
                PUB_KILLS=$((PUB_KILLS + 1))
            else
                stop_pid INT "$pid"
                PUB_CLEAN_STOPS=$((PUB_CLEAN_STOPS + 1))
            fi
            PUB_PID[i]=
            PUB_NEXT[i]=$((now + $(rand_between 3 10)))
        elif [ -z "$pid" ] && ((now >= ${PUB_NEXT[$i]:-0})); then
            start_publisher "$i" "$now"
        fi
    done
}

publishers_up() {
    local i n=0
    for ((i = 1; i <= SOAK_PUBLISHERS; i++)); do
        [ -n "${PUB_PID[$i]:-}" ] && n=$((n + 1))
    done
    echo "$n"
}

players_now() {
    local p n=0
    for p in "${!PLAYER_CLIENTS[@]}"; do n=$((n + PLAYER_CLIENTS[$p])); done
    echo "$n"
}

start_players() {
    local n secs stream out room=$((SOAK_MAX_PLAYERS - $(players_now)))
    n=$(rand_between 1 3)
    ((n <= room)) || n=$room
    secs=$(rand_between 10 60)
    stream=soak$(rand_between 1 "$SOAK_PUBLISHERS")
    PLAYER_RUNS=$((PLAYER_RUNS + 1))
    out=$PLAYERS_DIR/$PLAYER_RUNS-$stream.out
    if [ -n "$LOAD" ]; then
        "$LOAD" play --url "rtmp://127.0.0.1:$RTMP_PORT/live/$stream" --clients "$n" \
            --seconds "$secs" --threads 1 --fps 25 --json >"$out" 2>&1 &
    else
        n=1
        ffmpeg -nostdin -hide_banner -loglevel error -rw_timeout 15000000 \
            -i "rtmp://127.0.0.1:$RTMP_PORT/live/$stream" -t "$secs" -c copy -f null - \
            >"$out" 2>&1 &
    fi
    PLAYER_CLIENTS[$!]=$n
    PLAYER_OUT[$!]=$out
    PLAYER_CLIENTS_TOTAL=$((PLAYER_CLIENTS_TOTAL + n))
}

reap_players() {
    local p st v
    for p in "${!PLAYER_CLIENTS[@]}"; do
        alive "$p" && continue
        st=0
        wait "$p" 2>/dev/null || st=$?
        if [ -n "$LOAD" ]; then
            v=$(jq -r '"\(.playing // 0) \(.errors // 0)"' "${PLAYER_OUT[$p]}" 2>/dev/null || true)
            if [[ $v =~ ^([0-9]+)\ ([0-9]+)$ ]]; then
                PLAYER_PLAYING=$((PLAYER_PLAYING + BASH_REMATCH[1]))
                PLAYER_ERRORS=$((PLAYER_ERRORS + BASH_REMATCH[2]))
            else
                # No report: stopped at the end of the soak (or crashed; its .out file says).
                PLAYER_NOREPORT=$((PLAYER_NOREPORT + 1))
            fi
        elif [ "$st" -eq 0 ]; then
            PLAYER_PLAYING=$((PLAYER_PLAYING + 1))
        else
            PLAYER_ERRORS=$((PLAYER_ERRORS + 1))
        fi
        unset "PLAYER_CLIENTS[$p]" "PLAYER_OUT[$p]"
    done
}

STAT_FORMATS=(xml json prometheus)
stat_call() {
    local fmt=${STAT_FORMATS[$((STAT_OK + STAT_FAIL)) % 3]} code
    code=$(curl -s -o "$SOAK_DIR/last-stat.$fmt" -w '%{http_code}' --max-time 10 \
        "http://127.0.0.1:$HTTP_PORT/stat?format=$fmt" || true)
    if [ "$code" = 200 ]; then
        STAT_OK=$((STAT_OK + 1))
    else
        STAT_FAIL=$((STAT_FAIL + 1))
        echo "    /stat?format=$fmt answered ${code:-nothing}" >&2
    fi
}

# drop_call subscriber|publisher: /control/drop/<what> on a random stream.
drop_call() {
    local what=$1 stream body code
    stream=soak$(rand_between 1 "$SOAK_PUBLISHERS")
    body=$(curl -s -w ' %{http_code}' --max-time 10 \
        "http://127.0.0.1:$HTTP_PORT/control/drop/$what?app=live&name=$stream" || true)
    code=${body##* }
    if [ "$code" = 200 ]; then
        if [ "$what" = subscriber ]; then DROP_SUB=$((DROP_SUB + 1)); else DROP_PUB=$((DROP_PUB + 1)); fi
        body=${body% *}
        if [[ $body =~ ^[0-9]+$ ]]; then DROPPED=$((DROPPED + body)); fi
    else
        DROP_FAIL=$((DROP_FAIL + 1))
        echo "    /control/drop/$what?name=$stream answered ${code:-nothing}" >&2
    fi
}

WORKER_CHANGED=
sample() {
    local el=$1 p role rss hwm pubs players now_workers
    pubs=$(publishers_up)
    players=$(players_now)
    now_workers=$(pgrep -P "$NGX_PID" | sort -n | tr '\n' ' ' || true)
    if [ "$now_workers" != "$INITIAL_WORKERS" ] && [ -z "$WORKER_CHANGED" ]; then
        WORKER_CHANGED="at ${el}s workers were '$now_workers' (started as '$INITIAL_WORKERS')"
        echo "    warning: worker set changed: $WORKER_CHANGED" >&2
    fi
    for p in "$NGX_PID" $now_workers; do
        role=worker
        [ "$p" = "$NGX_PID" ] && role=master
        read -r rss hwm < <(awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 }
            END { print r + 0, h + 0 }' "/proc/$p/status" 2>/dev/null || echo "0 0")
        echo "$el,$EPOCHSECONDS,$p,$role,$rss,$hwm,$pubs,$players" >>"$CSV"
    done
}

progress() {
    local el=$1 p line=""
    for p in $(pgrep -P "$NGX_PID" | sort -n); do
        line+=" $p=$(awk '/^VmRSS:/ { printf "%.1fMB", $2 / 1024 }' "/proc/$p/status" 2>/dev/null)"
    done
    printf '    [%3d:%02d] publishers %d/%d, players %d (runs %d), /stat ok %d, drops %d; RSS%s\n' \
        $((el / 60)) $((el % 60)) "$(publishers_up)" "$SOAK_PUBLISHERS" "$(players_now)" \
        "$PLAYER_RUNS" "$STAT_OK" $((DROP_SUB + DROP_PUB)) "$line"
}

echo "==> soak: ${SOAK_MINUTES} min (warm-up ${SOAK_WARMUP_MINUTES} min), $SOAK_PUBLISHERS" \
    "publishers (${PUB_MIN}-${PUB_MAX} s each), up to $SOAK_MAX_PLAYERS players" \
    "($([ -n "$LOAD" ] && echo rtmp-load || echo ffmpeg)), RSS every ${SOAK_SAMPLE_SECONDS}s -> ${CSV#"$ROOT"/}"
T0=$EPOCHSECONDS
# Publishers start 5 s apart.
for ((i = 1; i <= SOAK_PUBLISHERS; i++)); do
    PUB_PID[i]=
    PUB_NEXT[i]=$((T0 + (i - 1) * 5))
done
next_sample=0 next_player=3 next_stat=5 next_drop_sub=$DROP_SUB_EVERY
next_drop_pub=$DROP_PUB_EVERY next_progress=60
while :; do
    now=$EPOCHSECONDS
    el=$((now - T0))
    if ! alive "$NGX_PID"; then
        problems+=("the nginx master exited during the soak (at ${el}s)")
        wait "$NGX_PID" 2>/dev/null || true
        NGX_PID=
        break
    fi
    ((el < TOTAL_S)) || break
    tend_publishers "$now"
    reap_players
    if ((el >= next_player)); then
        next_player=$((el + SOAK_PLAYER_EVERY))
        (($(players_now) < SOAK_MAX_PLAYERS)) && start_players
    fi
    if ((el >= next_stat)); then
        next_stat=$((el + STAT_EVERY))
        stat_call
    fi
    if ((el >= next_drop_sub)); then
        next_drop_sub=$((el + DROP_SUB_EVERY))
        drop_call subscriber
    fi
    if ((el >= next_drop_pub)); then
        next_drop_pub=$((el + DROP_PUB_EVERY))
        drop_call publisher
    fi
    if ((el >= next_sample)); then
        next_sample=$((next_sample + SOAK_SAMPLE_SECONDS))
        sample "$el"
    fi
    if ((el >= next_progress)); then
        next_progress=$((next_progress + 60))
        progress "$el"
    fi
    sleep 1
done

# ---------------------------------------------------------------------------- end

END_EL=$((EPOCHSECONDS - T0))
if [ -n "$NGX_PID" ]; then
    sample "$END_EL"
    final_stat=$(curl -s --max-time 10 "http://127.0.0.1:$HTTP_PORT/stat?format=json" || true)
    [ -n "$final_stat" ] && printf '%s\n' "$final_stat" >"$SOAK_DIR/last-stat.json"
fi
echo "==> stopping players, publishers and nginx (SIGQUIT)"
for p in "${!PLAYER_CLIENTS[@]}"; do stop_pid TERM "$p"; done
reap_players
PLAYER_CLIENTS=()
for ((i = 1; i <= SOAK_PUBLISHERS; i++)); do
    [ -n "${PUB_PID[$i]:-}" ] && stop_pid INT "${PUB_PID[$i]}"
    PUB_PID[i]=
done
if [ -n "$NGX_PID" ]; then
    workers=$(pgrep -P "$NGX_PID" || true)
    kill -QUIT "$NGX_PID" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        alive "$NGX_PID" || break
        sleep 0.05
    done
    if alive "$NGX_PID"; then
        problems+=("nginx did not stop within 15 s of SIGQUIT")
    fi
    stop_pid TERM "$NGX_PID"
    if ((REAPED > 128)); then
        problems+=("the nginx master died of signal $((REAPED - 128)) when stopped")
    fi
    NGX_PID=
    for p in $workers; do
        if alive "$p"; then
            problems+=("worker $p outlived the master")
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
fi

bad_log=$(grep -E '\[(alert|emerg)\]|exited on signal|panicked' "$PREFIX/logs/error.log" || true)
if [ -n "$bad_log" ]; then
    problems+=("error log problems ($(wc -l <<<"$bad_log") lines), e.g.: $(head -n 3 <<<"$bad_log")")
fi
[ -n "$WORKER_CHANGED" ] && problems+=("a worker was replaced (crash?): $WORKER_CHANGED")
((STAT_FAIL == 0)) || problems+=("$STAT_FAIL /stat request(s) failed")

# RSS growth per worker: median of the samples in [warm-up, warm-up + 60 s) against the
# median of those in the last minute (elapsed > end - 60 s).
GROWTH=$SOAK_DIR/growth.txt
awk -F, -v w="$WARMUP_S" -v e="$END_EL" -v max="$SOAK_MAX_GROWTH_PCT" '
function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) {
        t = a[i] + 0
        for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
        a[j + 1] = t
    }
    if (n == 0) return -1
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
NR > 1 && $4 == "worker" {
    if (!($3 in seen)) { seen[$3] = 1; order[++np] = $3 }
    if ($1 >= w && $1 < w + 60) first[$3] = first[$3] " " $5
    if ($1 > e - 60) last[$3] = last[$3] " " $5
    if ($6 > hwm[$3]) hwm[$3] = $6
}
END {
    printf "%-8s %14s %14s %9s %13s %8s  %s\n", "worker", "RSS warm-up", "RSS end", "growth",
        "peak (VmHWM)", "samples", "verdict"
    fail = 0
    for (k = 1; k <= np; k++) {
        p = order[k]
        f = median(first[p]); l = median(last[p])
        nf = split(first[p], x, " "); nl = split(last[p], y, " ")
        if (f <= 0 || l <= 0) {
            printf "%-8s %14s %14s %9s %10.1f MB %3d/%-3d  FAIL (not sampled through the run)\n",
                p, "n/a", "n/a", "n/a", hwm[p] / 1024, nf, nl
            fail = 1
            continue
        }
        g = (l - f) * 100 / f
        v = g >= max ? "FAIL" : "ok"
        if (g >= max) fail = 1
        printf "%-8s %11.1f MB %11.1f MB %+8.2f%% %10.1f MB %3d/%-3d  %s\n",
            p, f / 1024, l / 1024, g, hwm[p] / 1024, nf, nl, v
    }
    if (np == 0) { print "(no worker samples)"; fail = 1 }
    exit fail
}' "$CSV" >"$GROWTH" && growth_ok=1 || growth_ok=0
((growth_ok)) || problems+=("worker RSS grew by ${SOAK_MAX_GROWTH_PCT}% or more (or was not measured)")

echo
echo "== soak summary: ${END_EL}s, warm-up ${WARMUP_S}s; RSS = median of the minute after the" \
    "warm-up vs. of the last minute (fail at +${SOAK_MAX_GROWTH_PCT}%)"
if ((TOTAL_S - WARMUP_S < 120)); then
    echo "   (note: the run after the warm-up is shorter than 2 minutes, so both windows overlap)"
fi
cat "$GROWTH"
echo
printf '%-28s %s\n' \
    "publishes" "$PUB_STARTS started; $PUB_CLEAN_STOPS clean stops, $PUB_KILLS SIGKILLed, $PUB_ENDED ended on their own" \
    "player runs" "$PLAYER_RUNS ($PLAYER_CLIENTS_TOTAL clients; $PLAYER_PLAYING got Play.Start, $PLAYER_ERRORS errors incl. drops; $PLAYER_NOREPORT runs stopped at the end)" \
    "/stat requests" "$STAT_OK ok, $STAT_FAIL failed" \
    "/control/drop requests" "$DROP_SUB subscriber + $DROP_PUB publisher ok ($DROPPED sessions dropped), $DROP_FAIL failed" \
    "RSS samples" "${CSV#"$ROOT"/}" \
    "nginx logs" "${PREFIX#"$ROOT"/}/logs/"
echo
if ((${#problems[@]})); then
    echo "SOAK FAILED:" >&2
    printf '  - %s\n' "${problems[@]}" >&2
    exit 1
fi
echo "soak passed"
