/*
 * The fan-out floor for scripts/bench.sh: what sending one live stream to N players costs the
 * sending process when nothing else is done. One process accepts N loopback TCP connections
 * from a child that reads and discards (as tools/rtmp-load counts bytes without decoding) and,
 * every 40 ms, writes the stream's next 40 ms of bytes to every socket from one shared buffer,
 * in one write() each. No RTMP, no queues, no chunk headers: any real server sends at least
 * this. Prints the sender's CPU seconds per GB delivered (10^9 bytes), the bench's unit.
 *
 * Usage: fanout-floor PLAYERS SECONDS BYTES_PER_SECOND
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 40

static double seconds(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* The players: connect n sockets to port and read everything until the sender closes. */
static void players(int n, int port)
{
    int ep = epoll_create1(0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            perror("connect");
            _exit(1);
        }
        struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    }
    static char buf[256 * 1024];
    struct epoll_event events[256];
    int open = n;
    while (open > 0) {
        int k = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < k; i++) {
            ssize_t r = recv(events[i].data.fd, buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                close(events[i].data.fd);
                open--;
            }
        }
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s PLAYERS SECONDS BYTES_PER_SECOND\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), secs = atoi(argv[2]);
    size_t per_tick = (size_t)atol(argv[3]) * TICK_MS / 1000;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t len = sizeof sa;
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 4096) != 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &len) != 0) {
        perror("listen");
        return 1;
    }
    pid_t child = fork();
    if (child == 0) {
        players(n, ntohs(sa.sin_port));
    }
    int *fds = calloc(n, sizeof *fds);
    for (int i = 0; i < n; i++) {
        fds[i] = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
    }
    char *media = malloc(per_tick);
    memset(media, 0x5a, per_tick);
    unsigned long long sent = 0;
    double wall0 = seconds(CLOCK_MONOTONIC), cpu0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
    for (long tick = 1; tick <= (long)secs * 1000 / TICK_MS; tick++) {
        for (int i = 0; i < n; i++) {
            ssize_t w = write(fds[i], media, per_tick);
            if (w > 0) {
                sent += w;
            }
        }
        double next = wall0 + tick * TICK_MS / 1000.0, now = seconds(CLOCK_MONOTONIC);
        if (next > now) {
            usleep((useconds_t)((next - now) * 1e6));
        }
    }
    double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    for (int i = 0; i < n; i++) {
        close(fds[i]);
    }
    waitpid(child, NULL, 0);
    printf("%.3f\n", cpu / (sent / 1e9));
    return 0;
}
