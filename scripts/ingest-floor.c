/*
 * The ingest floor for scripts/bench.sh: what receiving N live streams and writing them out as
 * HLS + DASH costs when nothing else is done. Each connection's bytes are received and written
 * twice (a .ts and a .m4s file, as HLS and DASH each write every payload once), and both files
 * are closed, renamed and a 6-segment window deleted every 2 s, as the segmenters do. No RTMP,
 * no muxing, no playlists, no thread hand-over: any real server costs more than this.
 *
 * Usage: ingest-floor PORT DIR MODE
 *   MODE 0: read on every readiness event (as the C module does);
 *   MODE 1: SO_RCVLOWAT 16 KiB and a read of every stream after 50 ms without an event (as ours).
 * Publishers connect with `ffmpeg ... -f flv tcp://127.0.0.1:PORT`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define SEGMENT_MS 2000
#define WINDOW 6

struct conn {
    int fd, ts, m4s, seq;
    long long opened_ms;
};

static const char *dir;

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

static int open_part(const struct conn *c, const char *ext)
{
    char path[512];
    snprintf(path, sizeof path, "%s/c%d-%d.%s.part", dir, c->fd, c->seq, ext);
    return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

static void commit(const struct conn *c, const char *ext)
{
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/c%d-%d.%s.part", dir, c->fd, c->seq, ext);
    snprintf(to, sizeof to, "%s/c%d-%d.%s", dir, c->fd, c->seq, ext);
    rename(from, to);
    if (c->seq >= WINDOW) {
        snprintf(to, sizeof to, "%s/c%d-%d.%s", dir, c->fd, c->seq - WINDOW, ext);
        unlink(to);
    }
}

/* Closes the current pair of segment files (if any) under their final names, opens the next. */
static void cut(struct conn *c)
{
    if (c->ts >= 0) {
        close(c->ts);
        close(c->m4s);
        commit(c, "ts");
        commit(c, "m4s");
        c->seq++;
    }
    c->ts = open_part(c, "ts");
    c->m4s = open_part(c, "m4s");
    c->opened_ms = now_ms();
}

static void drain(struct conn *c, int ep)
{
    static char buf[64 * 1024];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0) {
            if (write(c->ts, buf, n) != n || write(c->m4s, buf, n) != n) {
                perror("write");
                exit(1);
            }
            continue;
        }
        if (n == 0) {
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            c->fd = -1;
        }
        break;
    }
    if (c->fd >= 0 && now_ms() - c->opened_ms >= SEGMENT_MS) {
        cut(c);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s PORT DIR MODE\n", argv[0]);
        return 2;
    }
    dir = argv[2];
    int batched = atoi(argv[3]) == 1;
    int one = 1, lowat = 16 * 1024;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 128) != 0) {
        perror("listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    static struct conn conns[MAX_CONNS];
    int nconns = 0;
    struct epoll_event events[64];
    for (;;) {
        int n = epoll_wait(ep, events, 64, batched ? 50 : -1);
        if (n == 0) {
            for (int i = 0; i < nconns; i++) {
                if (conns[i].fd >= 0) {
                    drain(&conns[i], ep);
                }
            }
            continue;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c != NULL) {
                drain(c, ep);
                continue;
            }
            int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0 || nconns == MAX_CONNS) {
                if (fd >= 0) {
                    close(fd);
                }
                continue;
            }
            if (batched) {
                setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
            }
            c = &conns[nconns++];
            *c = (struct conn){.fd = fd, .ts = -1, .m4s = -1};
            cut(c);
            struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
        }
    }
}
