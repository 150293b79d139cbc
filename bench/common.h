/* SPDX-License-Identifier: MIT */
/*
 * common.h - what the benchmark programs share. The clients
 * (idle_clients.c, tls_client.c, reqloop.c, ws_load.c): the monotonic clock
 * in seconds, the server's resident memory summed over its process tree
 * (nginx: master + worker), read from /proc, and raising this process's
 * open-file limit to its hard limit. The servers (limit.c, ws_limit.c,
 * peer_*.c): the loopback listening socket and the stop signals. Header
 * only (each program is one file built by bench/run.sh), plain C11 +
 * POSIX, static inline so a program may use part of it.
 */
#ifndef APPSRV_BENCH_COMMON_H
#define APPSRV_BENCH_COMMON_H

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* CLOCK_MONOTONIC in seconds. */
static inline double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The parent of pid (/proc/PID/stat), or -1. */
static inline long bench_ppid_of(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL)
        return -1;
    char state;
    long ppid;
    if (sscanf(p + 1, " %c %ld", &state, &ppid) != 2)
        return -1;
    return ppid;
}

/* VmRSS of pid in KiB (/proc/PID/status); 0 when it is gone. */
static inline long bench_rss_kb(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    long kb = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* VmRSS in KiB of root plus every descendant (whichever thread forked
 * them): one pass over /proc, at most 4096 processes and 256 in the tree. */
static inline long bench_rss_tree_kb(long root)
{
    static long pids[4096], parents[4096];
    int n = 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return bench_rss_kb(root);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 4096) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pids[n] = strtol(e->d_name, NULL, 10);
        parents[n] = bench_ppid_of(pids[n]);
        n++;
    }
    closedir(d);
    long set[256];
    int ns = 0;
    set[ns++] = root;
    for (int i = 0; i < ns; i++)
        for (int j = 0; j < n && ns < 256; j++)
            if (parents[j] == set[i])
                set[ns++] = pids[j];
    long kb = 0;
    for (int i = 0; i < ns; i++)
        kb += bench_rss_kb(set[i]);
    return kb;
}

/* Raises the soft open-file limit to the hard one. Returns the soft limit
 * now in force (at most 2^31 - 1), or -1. */
static inline long bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return -1;
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)0x7fffffffL
               ? 0x7fffffffL
               : (long)rl.rlim_cur;
}

/* A listening socket on 127.0.0.1:port: non-blocking, close-on-exec,
 * SO_REUSEADDR, a backlog of 4096 (10,000 idle clients connect at once).
 * Returns it, or -1 with errno set. */
static inline int bench_listen(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* SIGPIPE ignored (a client gone is a failed write); SIGINT and SIGTERM
 * call on_stop, which sets the server's stop flag. */
static inline void bench_stop_signals(void (*on_stop)(int))
{
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

#endif /* APPSRV_BENCH_COMMON_H */
