/* A slow disk for tests, preloaded into nginx (LD_PRELOAD): every open, rename, unlink and
 * mkdir of a path containing SLOWFS_MARK sleeps SLOWFS_DELAY_MS first (default 300), as a
 * busy network disk would. Both are read when the library loads, in the master: nginx clears
 * the environment of its workers, which inherit these values through fork. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static char mark[256];
static useconds_t delay_us = 300000;

__attribute__((constructor)) static void slowfs_init(void) {
    const char *m = getenv("SLOWFS_MARK");
    const char *d = getenv("SLOWFS_DELAY_MS");
    if (m) {
        snprintf(mark, sizeof mark, "%s", m);
    }
    if (d) {
        delay_us = (useconds_t)atoi(d) * 1000;
    }
}

static void slow(const char *path) {
    if (mark[0] && path && strstr(path, mark)) {
        usleep(delay_us);
    }
}

#define REAL(ret, name, ...) \
    static ret (*real)(__VA_ARGS__); \
    if (!real) real = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, name)

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    REAL(int, "open", const char *, int, ...);
    slow(path);
    return real(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    REAL(int, "open64", const char *, int, ...);
    slow(path);
    return real(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    REAL(int, "openat", int, const char *, int, ...);
    slow(path);
    return real(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    REAL(int, "openat64", int, const char *, int, ...);
    slow(path);
    return real(dirfd, path, flags, mode);
}

int rename(const char *from, const char *to) {
    REAL(int, "rename", const char *, const char *);
    slow(to);
    return real(from, to);
}

int renameat(int fromfd, const char *from, int tofd, const char *to) {
    REAL(int, "renameat", int, const char *, int, const char *);
    slow(to);
    return real(fromfd, from, tofd, to);
}

int unlink(const char *path) {
    REAL(int, "unlink", const char *);
    slow(path);
    return real(path);
}

int mkdir(const char *path, mode_t mode) {
    REAL(int, "mkdir", const char *, mode_t);
    slow(path);
    return real(path, mode);
}
