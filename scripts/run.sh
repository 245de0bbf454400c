#!/usr/bin/env bash
# Builds, then runs nginx with the module in the foreground:
#   prefix build/run/ (logs in build/run/logs/), config nginx-conf/nginx.conf (or $NGINX_CONF).
# Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

scripts/build.sh

RUN=$ROOT/build/run
CONF=${NGINX_CONF:-$ROOT/nginx-conf/nginx.conf}
mkdir -p "$RUN/logs" "$RUN/tmp" "$RUN/vendor"
ln -sfn ../modules "$RUN/modules"

# The live page (http://HOST:8080/): www/ and the players it loads, hls.js and dash.js, from
# npm (tests/browser/package-lock.json, the versions the browser tests use), never a CDN.
ln -sfn ../../www "$RUN/www"
BROWSER=$ROOT/tests/browser
if command -v npm >/dev/null 2>&1; then
    if [ "$BROWSER/package-lock.json" -nt "$BROWSER/node_modules/.package-lock.json" ]; then
        echo "Installing the page's players (npm ci in tests/browser) ..." >&2
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$BROWSER" --no-audit --no-fund \
            --loglevel=error >&2 || echo "warning: npm ci failed; the page will not play streams" >&2
    fi
fi
ln -sfn ../../../tests/browser/node_modules/hls.js/dist/hls.min.js "$RUN/vendor/hls.min.js"
ln -sfn ../../../tests/browser/node_modules/dashjs/dist/modern/umd/dash.all.min.js \
    "$RUN/vendor/dash.all.min.js"
ln -sfn ../../../tests/browser/node_modules/mpegts.js/dist/mpegts.js "$RUN/vendor/mpegts.js"
if [ ! -f "$RUN/vendor/hls.min.js" ] || [ ! -f "$RUN/vendor/dash.all.min.js" ]; then
    echo "note: no hls.js/dash.js (install Node.js and npm, then: npm ci --prefix tests/browser);" \
         "the page lists streams but cannot play them" >&2
fi

# Ports from the config's `listen` lines (plain `listen PORT;` or `listen ADDR:PORT;`).
ports=$(sed -n 's/^[[:space:]]*listen[[:space:]]\{1,\}\([^;[:space:]]*\).*/\1/p' "$CONF" \
    | sed 's/.*://' | grep -E '^[0-9]+$' | sort -un || true)
port_in_use() {
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}
busy=0
for p in $ports; do
    if port_in_use "$p"; then
        echo "error: port $p is already in use; stop the program listening on it" \
             "(another nginx? try: sudo ss -ltnp 'sport = :$p') or change 'listen' in $CONF" >&2
        busy=1
    fi
done
[ "$busy" -eq 0 ] || exit 1

cat <<'MSG'
nginx-rtmp-rs: starting nginx (Ctrl-C stops it; logs in build/run/logs/)
  OBS: Settings > Stream > Service "Custom", Server rtmp://127.0.0.1/live , Stream Key mykey
  ffmpeg -re -i in.flv -c copy -f flv rtmp://127.0.0.1/live/mykey
  play: ffplay rtmp://127.0.0.1/live/mykey   (or VLC: Media > Open Network Stream)
  HLS:  http://127.0.0.1:8080/hls/mykey.m3u8   (hls.js, Safari, VLC, ffplay; a few seconds after publishing starts)
  DASH: http://127.0.0.1:8080/dash/mykey.mpd    (dash.js, Shaka, VLC, ffplay; a few seconds after publishing starts)
  FLV:  "http://127.0.0.1:8080/live?app=live&stream=mykey"   (HTTP-FLV: mpegts.js, flv.js, VLC, ffplay; about 1 s behind)
  page: http://127.0.0.1:8080/                  (the live streams, played in the browser)
  stat: http://127.0.0.1:8080/stat              (XML; ?format=json, ?format=prometheus)
MSG
if grep -q 'location /replays/' "$CONF"; then
    echo "  replays: http://127.0.0.1:8080/replays/       (every publish, recorded as MP4; the page lists them)"
fi

# exec: the script becomes nginx's master, so Ctrl-C (SIGINT) and SIGTERM reach it directly
# (fast shutdown: live RTMP connections are closed instead of waited for), the script ends
# when nginx does, and no process is left behind.
exec "$ROOT/build/sbin/nginx" -p "$RUN" -c "$CONF" -e "$RUN/logs/error.log" -g 'daemon off;'
