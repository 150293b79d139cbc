/* SPDX-License-Identifier: MIT */
/*
 * idle_clients.c - scenario (d): many idle keep-alive connections.
 *
 * Opens N connections to 127.0.0.1:PORT (at most C connecting at once, so
 * the listen backlog never overflows), sends one GET on each and reads the
 * whole answer, then leaves them all open and idle. Around that it samples
 * the server's resident memory (VmRSS summed over the server process and its
 * descendants) and, with all N still open, times five new requests, each on
 * a fresh connection. Finally it counts how many of the N the server still
 * holds.
 *
 * usage: idle_clients -p PORT -P SERVER_PID [-n N] [-c C] [-t SECONDS]
 *                     [-u PATH]
 * Prints one line:
 *   IDLE n=.. answered=.. failed=.. open_after=.. rss_before_kb=..
 *        rss_after_kb=.. kib_per_conn=.. probe_ms=.. probe_max_ms=.. setup_s=..
 * probe_ms is the median of the five, probe_max_ms the slowest; both are -1
 * if any was not answered within 5 s.
 * Exit status 0 when it ran (whatever the server did), 2 on bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

enum { ST_CONNECTING, ST_READING, ST_DONE, ST_FAILED };

struct cl {
    int fd;
    int state;
    unsigned got;   /* bytes of the answer read so far */
    char buf[512];  /* only the head matters; the body is counted */
};

static int g_port;
static char g_req[256];
static size_t g_req_len;

/* ---------------------------------------------------------- HTTP helpers */

/* Is the answer in buf[0..len) complete? Needs the head and Content-Length
 * body bytes (every server here sends Content-Length for /plaintext). */
static int answer_complete(const char *buf, size_t len, unsigned total_got)
{
    const char *eoh = memmem(buf, len, "\r\n\r\n", 4);
    if (eoh == NULL)
        return 0;
    size_t head = (size_t)(eoh - buf) + 4;
    long cl = 0;
    for (const char *p = buf; p < eoh; p++) {
        if (*p == '\n' && strncasecmp(p + 1, "content-length:", 15) == 0) {
            cl = strtol(p + 16, NULL, 10);
            break;
        }
    }
    return total_got >= head + (size_t)cl;
}

static int open_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One request on a fresh connection; milliseconds, or -1 on failure. */
static double probe(double timeout_s)
{
    double t0 = bench_now_s(), deadline = t0 + timeout_s;
    int fd = open_socket();
    if (fd < 0)
        return -1;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    char buf[4096];
    size_t got = 0, sent = 0;
    int ok = 0;
    while (bench_now_s() < deadline) {
        int ms = (int)((deadline - bench_now_s()) * 1000) + 1;
        if (poll(&p, 1, ms) <= 0)
            break;
        if (p.events == POLLOUT) {
            ssize_t n = send(fd, g_req + sent, g_req_len - sent, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN)
                break;
            if (n > 0)
                sent += (size_t)n;
            if (sent == g_req_len)
                p.events = POLLIN;
            continue;
        }
        ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN)
                continue;
            break;
        }
        got += (size_t)n;
        if (answer_complete(buf, got, (unsigned)got)) {
            ok = memcmp(buf, "HTTP/1.1 200", 12) == 0;
            break;
        }
        if (got >= sizeof(buf) - 1)
            break;
    }
    close(fd);
    return ok ? (bench_now_s() - t0) * 1000.0 : -1;
}

/* ---------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr, "usage: idle_clients -p PORT -P SERVER_PID [-n N] [-c C] [-t SECONDS] "
                    "[-u PATH]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long n = 10000, conc = 256, server_pid = 0;
    double timeout_s = 60;
    const char *path = "/plaintext";
    int opt;
    while ((opt = getopt(argc, argv, "p:P:n:c:t:u:")) != -1) {
        switch (opt) {
        case 'p': g_port = atoi(optarg); break;
        case 'P': server_pid = atol(optarg); break;
        case 'n': n = atol(optarg); break;
        case 'c': conc = atol(optarg); break;
        case 't': timeout_s = atof(optarg); break;
        case 'u': path = optarg; break;
        default: usage();
        }
    }
    if (g_port <= 0 || server_pid <= 0 || n <= 0 || conc <= 0)
        usage();
    g_req_len = (size_t)snprintf(g_req, sizeof(g_req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                                 path);

    long nofile = bench_raise_nofile();
    if (nofile >= 0 && nofile < n + 16) {
        fprintf(stderr, "idle_clients: open-file limit %ld is below %ld\n", nofile, n + 16);
        n = nofile - 16;
    }

    /* Warm the server up, then take the baseline. */
    probe(5);
    usleep(200 * 1000);
    long rss0 = bench_rss_tree_kb(server_pid);

    struct cl *cs = calloc((size_t)n, sizeof(*cs));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event evs[256];
    if (cs == NULL || ep < 0)
        return 1;
    double t0 = bench_now_s(), deadline = t0 + timeout_s;
    long next = 0, inflight = 0, answered = 0, failed = 0;
    while ((next < n || inflight > 0) && bench_now_s() < deadline) {
        while (next < n && inflight < conc) {
            struct cl *c = &cs[next++];
            c->fd = open_socket();
            if (c->fd < 0) {
                c->state = ST_FAILED;
                failed++;
                continue;
            }
            c->state = ST_CONNECTING;
            struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
            inflight++;
        }
        int k = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < k; i++) {
            struct cl *c = evs[i].data.ptr;
            int fail = 0;
            if (c->state == ST_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                /* the request is tiny: one send fits the empty socket buffer */
                if (err != 0 || send(c->fd, g_req, g_req_len, MSG_NOSIGNAL) != (ssize_t)g_req_len) {
                    fail = 1;
                } else {
                    c->state = ST_READING;
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                }
            } else if (c->state == ST_READING) {
                size_t room = sizeof(c->buf) - 1 - (c->got < sizeof(c->buf) ? c->got : sizeof(c->buf) - 1);
                char sink[4096];
                char *dst = room > 0 ? c->buf + c->got : sink;
                ssize_t r = recv(c->fd, dst, room > 0 ? room : sizeof(sink), 0);
                if (r <= 0) {
                    if (!(r < 0 && errno == EAGAIN))
                        fail = 1;
                } else {
                    c->got += (unsigned)r;
                    size_t have = c->got < sizeof(c->buf) - 1 ? c->got : sizeof(c->buf) - 1;
                    if (answer_complete(c->buf, have, c->got)) {
                        if (memcmp(c->buf, "HTTP/1.1 200", 12) != 0) {
                            fail = 1;
                        } else {
                            c->state = ST_DONE;
                            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                            answered++;
                            inflight--;
                        }
                    }
                }
            }
            if (fail) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                c->state = ST_FAILED;
                failed++;
                inflight--;
            }
        }
    }
    double setup_s = bench_now_s() - t0;
    /* Connections still connecting or reading at the deadline are failures. */
    for (long i = 0; i < next; i++)
        if (cs[i].state == ST_CONNECTING || cs[i].state == ST_READING) {
            close(cs[i].fd);
            cs[i].fd = -1;
            cs[i].state = ST_FAILED;
            failed++;
        }
    failed += n - next; /* never tried: out of time */

    usleep(1000 * 1000); /* let the server settle */
    long rss1 = bench_rss_tree_kb(server_pid);
    double probes[5] = {-1, -1, -1, -1, -1};
    for (int i = 0; i < 5; i++)
        if ((probes[i] = probe(5)) < 0)
            break; /* one unanswered is enough: don't wait 5 s more */
    for (int i = 1; i < 5; i++) /* insertion sort */
        for (int j = i; j > 0 && probes[j] < probes[j - 1]; j--) {
            double t = probes[j];
            probes[j] = probes[j - 1];
            probes[j - 1] = t;
        }
    double probe_ms = probes[0] < 0 ? -1 : probes[2];
    double probe_max_ms = probes[0] < 0 ? -1 : probes[4];

    /* How many of the answered ones does the server still hold? */
    long open_after = 0;
    struct pollfd *pf = calloc((size_t)(answered > 0 ? answered : 1), sizeof(*pf));
    long np = 0;
    for (long i = 0; i < n && pf != NULL; i++)
        if (cs[i].state == ST_DONE)
            pf[np++] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN | POLLRDHUP};
    if (pf != NULL && np > 0) {
        poll(pf, (nfds_t)np, 0);
        for (long i = 0; i < np; i++)
            if (pf[i].revents == 0)
                open_after++;
    }

    double per = answered > 0 ? (double)(rss1 - rss0) / (double)answered : 0;
    printf("IDLE n=%ld answered=%ld failed=%ld open_after=%ld rss_before_kb=%ld "
           "rss_after_kb=%ld kib_per_conn=%.3f probe_ms=%.3f probe_max_ms=%.3f setup_s=%.2f\n",
           n, answered, failed, open_after, rss0, rss1, per, probe_ms, probe_max_ms, setup_s);
    fflush(stdout);
    for (long i = 0; i < n; i++)
        if (cs[i].state == ST_DONE)
            close(cs[i].fd);
    free(pf);
    free(cs);
    close(ep);
    return 0;
}
