/* SPDX-License-Identifier: MIT */
/*
 * ws_load.c - the WebSocket load client of bench/run.sh. One thread,
 * epoll, loopback only, every wait bounded.
 *
 *   ws_load -p PORT -c CONNS -d SECONDS -s SIZE [-b] [-w DEPTH] [-u PATH]
 *     echo: CONNS connections each keep DEPTH messages of SIZE bytes (text,
 *     or binary with -b) in flight for SECONDS, every echo checked for
 *     length and first bytes. Prints
 *     WSJSON {"msgs":N,"bytes":B,"duration_us":T,"p50_us":..,"p99_us":..,"errors":E}
 *   ws_load -p PORT -i N -P PID [-t SECONDS]
 *     idle: VmRSS of PID, then N connections upgraded and left idle, VmRSS
 *     again, five echo round trips timed on a new connection while they
 *     stay open. Prints WSIDLE n=.. open=.. rss_before_kb=.. rss_after_kb=..
 *     kib_per_conn=.. probe_ms=.. setup_s=..
 *
 * Frames are masked with one fixed key and payloads pre-masked once, so
 * the client spends its CPU on the socket, not on masking (RFC 6455 wants
 * unpredictable keys from browsers; a benchmark client may do this).
 */
#define _GNU_SOURCE /* getopt, memmem */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int g_port = 8080;
static const char *g_path = "/ws";
static const uint8_t KEY[4] = {0x12, 0x34, 0x56, 0x78};

typedef struct conn {
    int fd;
    bool open;
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint64_t skip;   /* payload bytes of the current frame still to drop */
    uint64_t need;   /* payload bytes of the frame being checked */
    uint32_t inflight;
    uint64_t sent_us[64]; /* ring of send times */
    uint32_t head, tail;
} conn_t;

static int connect_blocking(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Upgrades fd (blocking). Returns 0 or -1. Bytes after the 101 are not
 * expected (the server sends nothing first). */
static int upgrade(int fd)
{
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     g_path);
    if (write(fd, req, (size_t)n) != n)
        return -1;
    char buf[1024];
    size_t len = 0;
    while (len < sizeof(buf) - 1) {
        ssize_t r = read(fd, buf + len, 1); /* byte by byte: stop at the head's end */
        if (r <= 0)
            return -1;
        len++;
        if (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0) {
            buf[len] = 0;
            return strncmp(buf, "HTTP/1.1 101", 12) == 0 &&
                           strstr(buf, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != NULL
                       ? 0
                       : -1;
        }
    }
    return -1;
}

static size_t frame_head(uint8_t *h, unsigned op, size_t n)
{
    h[0] = (uint8_t)(0x80 | op);
    size_t k;
    if (n < 126) {
        h[1] = (uint8_t)(0x80 | n);
        k = 2;
    } else if (n <= 0xFFFF) {
        h[1] = 0x80 | 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        k = 4;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        k = 10;
    }
    memcpy(h + k, KEY, 4);
    return k + 4;
}

/* ------------------------------------------------------------------ echo */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int run_echo(int conns, int secs, size_t size, bool binary, int depth)
{
    uint8_t *payload = malloc(size + 1), *masked = malloc(size + 1);
    for (size_t i = 0; i < size; i++) {
        payload[i] = binary ? (uint8_t)(i * 131 + 7) : (uint8_t)('a' + i % 26);
        masked[i] = payload[i] ^ KEY[i & 3];
    }
    uint8_t head[14];
    size_t hl = frame_head(head, binary ? 2 : 1, size);
    conn_t *cs = calloc((size_t)conns, sizeof(*cs));
    int ep = epoll_create1(0);
    for (int i = 0; i < conns; i++) {
        cs[i].fd = connect_blocking();
        if (cs[i].fd < 0 || upgrade(cs[i].fd) < 0) {
            fprintf(stderr, "ws_load: connection %d did not upgrade\n", i);
            return 1;
        }
        fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
        cs[i].rcap = 256 * 1024;
        cs[i].rbuf = malloc(cs[i].rcap);
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e);
    }
    size_t lat_cap = 1 << 22, nlat = 0;
    uint64_t *lat = malloc(lat_cap * sizeof(*lat));
    uint64_t msgs = 0, bytes = 0, errors = 0;
    uint64_t t0 = now_us(), end = t0 + (uint64_t)secs * 1000000u;
    bool sending = true;
    struct iovec iov[2] = {{head, hl}, {masked, size}};
    for (int i = 0; i < conns; i++)
        for (int d = 0; d < depth; d++) {
            ssize_t w = writev(cs[i].fd, iov, 2);
            if (w != (ssize_t)(hl + size)) {
                /* large messages: finish it blocking (rare, at start only) */
                size_t done = w > 0 ? (size_t)w : 0;
                fcntl(cs[i].fd, F_SETFL, 0);
                while (done < hl + size) {
                    struct iovec v2[2] = {{head, hl}, {masked, size}};
                    size_t skip = done;
                    int k = 0;
                    if (skip >= hl) {
                        skip -= hl;
                        k = 1;
                    }
                    v2[k].iov_base = (uint8_t *)v2[k].iov_base + skip;
                    v2[k].iov_len -= skip;
                    ssize_t x = writev(cs[i].fd, v2 + k, 2 - k);
                    if (x <= 0)
                        return 1;
                    done += (size_t)x;
                }
                fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
            }
            cs[i].sent_us[cs[i].tail++ & 63] = now_us();
            cs[i].inflight++;
        }
    struct epoll_event evs[256];
    uint64_t stop_at = end;
    while (now_us() < stop_at + 5000000) {
        if (sending && now_us() >= end)
            sending = false;
        bool any = false;
        for (int i = 0; i < conns; i++)
            any |= cs[i].inflight > 0;
        if (!sending && !any)
            break;
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            conn_t *c = evs[k].data.ptr;
            for (;;) {
                ssize_t r = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
                if (r < 0 && errno == EAGAIN)
                    break;
                if (r <= 0) {
                    fprintf(stderr, "ws_load: the server closed a connection\n");
                    return 1;
                }
                c->rlen += (size_t)r;
                size_t pos = 0;
                for (;;) {
                    if (c->skip > 0) {
                        size_t take = c->rlen - pos < c->skip ? c->rlen - pos : (size_t)c->skip;
                        pos += take;
                        c->skip -= take;
                        if (c->skip > 0)
                            break;
                        goto frame_done;
                    }
                    if (c->rlen - pos < 2)
                        break;
                    uint8_t *f = c->rbuf + pos;
                    uint64_t len = f[1] & 0x7F;
                    size_t h = 2;
                    if (len == 126) {
                        if (c->rlen - pos < 4)
                            break;
                        len = (uint64_t)f[2] << 8 | f[3];
                        h = 4;
                    } else if (len == 127) {
                        if (c->rlen - pos < 10)
                            break;
                        len = 0;
                        for (int i = 2; i < 10; i++)
                            len = len << 8 | f[i];
                        h = 10;
                    }
                    if ((f[0] & 0x0F) != (binary ? 2 : 1) || len != size)
                        errors++;
                    /* check the first bytes that are here, drop the rest */
                    size_t here = c->rlen - pos - h;
                    if (here > len)
                        here = (size_t)len;
                    if (here > 0 && memcmp(f + h, payload, here < 16 ? here : 16) != 0)
                        errors++;
                    pos += h + here;
                    c->skip = len - here;
                    if (c->skip > 0)
                        break;
                frame_done:
                    msgs++;
                    bytes += size;
                    if (nlat < lat_cap)
                        lat[nlat++] = now_us() - c->sent_us[c->head++ & 63];
                    c->inflight--;
                    if (sending) {
                        struct iovec v[2] = {{head, hl}, {masked, size}};
                        ssize_t w = writev(c->fd, v, 2);
                        if (w != (ssize_t)(hl + size)) {
                            /* a short write of a big message: send the rest blocking */
                            size_t done = w > 0 ? (size_t)w : 0;
                            fcntl(c->fd, F_SETFL, 0);
                            while (done < hl + size) {
                                size_t skip = done;
                                int kk = 0;
                                if (skip >= hl) {
                                    skip -= hl;
                                    kk = 1;
                                }
                                v[0] = (struct iovec){head, hl};
                                v[1] = (struct iovec){masked, size};
                                v[kk].iov_base = (uint8_t *)v[kk].iov_base + skip;
                                v[kk].iov_len -= skip;
                                ssize_t x = writev(c->fd, v + kk, 2 - kk);
                                if (x <= 0)
                                    return 1;
                                done += (size_t)x;
                            }
                            fcntl(c->fd, F_SETFL, O_NONBLOCK);
                        }
                        c->sent_us[c->tail++ & 63] = now_us();
                        c->inflight++;
                    }
                }
                memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
                c->rlen -= pos;
            }
        }
    }
    uint64_t dur = now_us() - t0;
    /* Messages answered within the sending window, over its length. */
    qsort(lat, nlat, sizeof(*lat), cmp_u64);
    printf("WSJSON {\"msgs\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"duration_us\":%" PRIu64
           ",\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64 ",\"errors\":%" PRIu64 "}\n",
           msgs, bytes, dur, nlat ? lat[nlat / 2] : 0, nlat ? lat[nlat * 99 / 100] : 0, errors);
    for (int i = 0; i < conns; i++)
        close(cs[i].fd);
    return errors ? 1 : 0;
}

/* ------------------------------------------------------------------ idle */

static long rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kb;
}

static double echo_ms(int fd)
{
    uint8_t f[14 + 5];
    size_t h = frame_head(f, 1, 5);
    for (int i = 0; i < 5; i++)
        f[h + (size_t)i] = (uint8_t)("hello"[i] ^ KEY[i & 3]);
    uint64_t t0 = now_us();
    if (write(fd, f, h + 5) != (ssize_t)(h + 5))
        return -1;
    uint8_t r[7];
    size_t got = 0;
    while (got < 7) {
        ssize_t n = read(fd, r + got, 7 - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    if (memcmp(r + 2, "hello", 5) != 0)
        return -1;
    return (double)(now_us() - t0) / 1000.0;
}

static int run_idle(int n, int pid, int hold_s)
{
    bench_raise_nofile();
    long before = rss_kb(pid);
    uint64_t t0 = now_us();
    int *fds = calloc((size_t)n, sizeof(int)), open = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = connect_blocking();
        if (fds[i] < 0 || upgrade(fds[i]) < 0)
            break;
        open++;
    }
    double setup = (double)(now_us() - t0) / 1e6;
    /* Let the server settle (input blocks go back when a pass ends). */
    usleep(500000);
    long after = rss_kb(pid);
    double probes[5], probe = -1, pmax = -1;
    int pfd = connect_blocking();
    if (pfd >= 0 && upgrade(pfd) == 0) {
        for (int i = 0; i < 5; i++)
            probes[i] = echo_ms(pfd);
        double s[5];
        memcpy(s, probes, sizeof(s));
        for (int i = 0; i < 5; i++)
            for (int j = i + 1; j < 5; j++)
                if (s[j] < s[i]) {
                    double t = s[i];
                    s[i] = s[j];
                    s[j] = t;
                }
        probe = s[2];
        pmax = s[4];
    }
    int still = 0;
    for (int i = 0; i < open; i++) {
        struct pollfd p = {fds[i], POLLIN, 0};
        still += poll(&p, 1, 0) == 0;
    }
    if (hold_s > 0)
        sleep((unsigned)hold_s);
    printf("WSIDLE n=%d open=%d still_open=%d rss_before_kb=%ld rss_after_kb=%ld "
           "kib_per_conn=%.3f probe_ms=%.3f probe_max_ms=%.3f setup_s=%.2f\n",
           n, open, still, before, after, open ? (double)(after - before) / open : 0.0, probe,
           pmax, setup);
    for (int i = 0; i < open; i++)
        close(fds[i]);
    if (pfd >= 0)
        close(pfd);
    return open == n ? 0 : 1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    int conns = 64, secs = 3, depth = 1, idle = 0, pid = 0, hold = 0;
    size_t size = 32;
    bool binary = false;
    int ch;
    while ((ch = getopt(argc, argv, "p:c:d:s:bw:u:i:P:t:")) != -1) {
        switch (ch) {
        case 'p': g_port = atoi(optarg); break;
        case 'c': conns = atoi(optarg); break;
        case 'd': secs = atoi(optarg); break;
        case 's': size = (size_t)atol(optarg); break;
        case 'b': binary = true; break;
        case 'w': depth = atoi(optarg); break;
        case 'u': g_path = optarg; break;
        case 'i': idle = atoi(optarg); break;
        case 'P': pid = atoi(optarg); break;
        case 't': hold = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: ws_load -p PORT [-c CONNS -d SECONDS -s SIZE -b -w DEPTH "
                            "-u PATH] | [-i N -P PID -t SECONDS]\n");
            return 2;
        }
    }
    if (depth < 1 || depth > 32)
        depth = 1;
    if (idle > 0)
        return run_idle(idle, pid, hold);
    return run_echo(conns, secs, size, binary, depth);
}
