/* SPDX-License-Identifier: MIT */
/*
 * ws_limit.c - "the limit" for the WebSocket benchmark (bench/run.sh):
 * the least work a WebSocket echo server can do on this machine. One
 * thread, edge-triggered epoll (each socket registered once), one buffer
 * per connection; after the
 * handshake (SHA-1 and base64 from lib/ws_handshake.c) each whole client
 * frame is unmasked in place and written back from the same buffer with
 * one writev, header and payload; the buffer grows to hold a whole frame,
 * so a 64 KiB message is read in as few calls as the socket allows, and
 * a short write waits for EPOLLOUT without copying. It checks nothing it need not (no UTF-8
 * validation, no fragment reassembly: every frame is echoed as it came,
 * opcode and FIN kept), answers a ping with a pong and a close with a
 * close. Not a server to use: a yardstick.
 *
 * Also answers a plain GET with "Hello, World!" so bench/run.sh can check
 * it is up. Usage: ws_limit PORT
 */
#define _GNU_SOURCE /* accept4, memmem, strcasestr */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"

#include "ws_handshake.h"

typedef struct conn {
    int fd;
    int ws; /* upgraded */
    uint8_t *buf;
    size_t len, cap;
    /* An echo the socket did not take at once: the rest of hdr, then of
     * buf[pay, pay + plen), written from where it is (no copy); input
     * waits meanwhile. */
    uint8_t hdr[10];
    size_t hlen, hoff, pay, plen, poff, consumed;
    int pending;
} conn_t;

static void conn_free(int ep, conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->buf);
    free(c);
}

/* Writes what is pending. Returns 1 when done, 0 when the socket is full
 * (the next EPOLLOUT edge resumes it), -1 on an error. */
static int flush(conn_t *c)
{
    while (c->hoff < c->hlen || c->poff < c->plen) {
        struct iovec iov[2] = {{c->hdr + c->hoff, c->hlen - c->hoff},
                               {c->buf + c->pay + c->poff, c->plen - c->poff}};
        ssize_t w = writev(c->fd, iov, 2);
        if (w < 0 && errno == EAGAIN) {
            c->pending = 1;
            return 0;
        }
        if (w < 0)
            return -1;
        size_t k = (size_t)w, h = c->hlen - c->hoff < k ? c->hlen - c->hoff : k;
        c->hoff += h;
        c->poff += k - h;
    }
    c->pending = 0;
    return 1;
}

static int put(conn_t *c, const void *h, size_t hn, size_t pay, size_t plen)
{
    memcpy(c->hdr, h, hn);
    c->hlen = hn;
    c->hoff = 0;
    c->pay = pay;
    c->plen = plen;
    c->poff = 0;
    return flush(c);
}

static int handshake(conn_t *c)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL)
        return c->len > 8192 ? -1 : 0;
    size_t hl = (size_t)((uint8_t *)end - c->buf) + 4;
    *end = 0;
    char *k = strcasestr((char *)c->buf, "\r\nSec-WebSocket-Key:");
    if (k == NULL) {
        static const char hello[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";
        memmove(c->buf, c->buf + hl, c->len - hl);
        c->len -= hl;
        return write(c->fd, hello, sizeof(hello) - 1) == sizeof(hello) - 1 ? 1 : -1;
    }
    k += 20;
    while (*k == ' ')
        k++;
    size_t kl = strcspn(k, "\r ");
    char acc[29];
    appsrv__ws_accept(k, kl, acc);
    char resp[160];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
    memmove(c->buf, c->buf + hl, c->len - hl);
    c->len -= hl;
    c->ws = 1;
    return write(c->fd, resp, (size_t)n) == n ? 1 : -1;
}

/* XOR with the key, eight bytes at a time. */
static void unmask(uint8_t *p, size_t n, const uint8_t key[4])
{
    uint8_t k8[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
    uint64_t k;
    memcpy(&k, k8, 8);
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= k;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] ^= key[i & 3];
}

/* Echoes every whole frame in buf, each with one writev from where it
 * lies. Returns -1 to close, 0 otherwise (possibly with an echo pending:
 * the frames after it wait for EPOLLOUT). */
static int frames(conn_t *c)
{
    size_t pos = c->consumed;
    int rc = 0;
    while (!c->pending && c->len - pos >= 2) {
        uint8_t *f = c->buf + pos;
        size_t avail = c->len - pos, h = 2;
        uint64_t n = f[1] & 0x7F;
        if (n == 126) {
            if (avail < 4)
                break;
            n = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (n == 127) {
            if (avail < 10)
                break;
            n = 0;
            for (int i = 2; i < 10; i++)
                n = n << 8 | f[i];
            h = 10;
        }
        if (!(f[1] & 0x80) || n > (64u << 20))
            return -1;
        if (avail < h + 4 + n) {
            if (pos + h + 4 + n > c->cap) { /* room for this frame, read at once */
                uint8_t *b = realloc(c->buf, pos + h + 4 + n);
                if (b == NULL)
                    return -1;
                c->buf = b;
                c->cap = pos + h + 4 + n;
            }
            break;
        }
        uint8_t *key = f + h, *pl = f + h + 4;
        unmask(pl, (size_t)n, key);
        unsigned op = f[0] & 0x0F;
        uint8_t hdr[10];
        size_t hn;
        hdr[0] = (uint8_t)(f[0] & 0x8F);
        if (op == 0x9)
            hdr[0] = 0x8A; /* pong */
        if (n < 126) {
            hdr[1] = (uint8_t)n;
            hn = 2;
        } else if (n <= 0xFFFF) {
            hdr[1] = 126;
            hdr[2] = (uint8_t)(n >> 8);
            hdr[3] = (uint8_t)n;
            hn = 4;
        } else {
            hdr[1] = 127;
            for (int i = 0; i < 8; i++)
                hdr[2 + i] = (uint8_t)(n >> (56 - 8 * i));
            hn = 10;
        }
        pos += h + 4 + n;
        if (op != 0xA && put(c, hdr, hn, (size_t)(pl - c->buf), (size_t)n) < 0)
            return -1;
        if (op == 0x8) {
            rc = -1; /* close echoed: done */
            break;
        }
    }
    c->consumed = pos;
    if (!c->pending) {
        memmove(c->buf, c->buf + pos, c->len - pos);
        c->len -= pos;
        c->consumed = 0;
    }
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    int lfd = bench_listen(port), one = 1;
    if (lfd < 0) {
        perror("ws_limit");
        return 1;
    }
    setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int ep = epoll_create1(0);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    conn_t *nc = calloc(1, sizeof(*nc));
                    nc->fd = fd;
                    /* Edge-triggered, registered once: no epoll_ctl later. */
                    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                                            .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            int rc = 0;
            if (c->pending && (rc = flush(c)) > 0)
                rc = frames(c); /* what waited behind the echo */
            /* Read until the socket is drained (or an echo waits). */
            while (rc >= 0 && !c->pending) {
                if (c->cap - c->len < 4096) {
                    size_t cap = c->cap ? c->cap * 2 : 65536;
                    uint8_t *b = realloc(c->buf, cap);
                    if (b == NULL) {
                        rc = -1;
                        break;
                    }
                    c->buf = b;
                    c->cap = cap;
                }
                ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
                if (r < 0 && errno == EAGAIN)
                    break;
                if (r <= 0) {
                    rc = -1;
                    break;
                }
                c->len += (size_t)r;
                while (rc >= 0 && !c->ws && c->len > 0 && (rc = handshake(c)) > 0)
                    ;
                if (rc >= 0 && c->ws)
                    rc = frames(c);
            }
            if (rc < 0)
                conn_free(ep, c);
        }
    }
}
