# nginx + the nginx-rtmp-rs module, with the example config.
#   docker build -t nginx-rtmp-rs .
#   docker run --rm -p 1935:1935 -p 8080:8080 nginx-rtmp-rs
# Publish to rtmp://HOST/live/KEY, play rtmp://HOST/live/KEY. Mount your own config over
# /opt/nginx-rtmp-rs/conf/nginx.conf to change it.

FROM rust:1-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libclang-dev libpcre2-dev libssl-dev zlib1g-dev pkg-config build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Builds the module and the vendored nginx, and copies both to build/.
RUN cargo build --release --features vendored && scripts/build.sh

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpcre2-8-0 libssl3 zlib1g libcrypt1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/nginx-rtmp-rs
COPY --from=builder /src/build/sbin/nginx sbin/nginx
COPY --from=builder /src/build/modules/ modules/
COPY nginx-conf/ conf/
# Logs go to the container's output; workers (user nobody) may write under tmp/.
RUN mkdir -p logs tmp \
    && ln -sf /dev/stderr logs/error.log \
    && ln -sf /dev/stdout logs/access.log \
    && chown nobody:nogroup tmp
EXPOSE 1935 8080
# `docker stop` sends SIGTERM: nginx's fast shutdown, which also ends live RTMP sessions.
CMD ["/opt/nginx-rtmp-rs/sbin/nginx", "-p", "/opt/nginx-rtmp-rs", \
     "-c", "/opt/nginx-rtmp-rs/conf/nginx.conf", "-e", "stderr", "-g", "daemon off;"]
