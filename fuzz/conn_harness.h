/* SPDX-License-Identifier: MIT */
/*
 * conn_harness.h - the client side shared by the whole-connection fuzz
 * drivers (fuzz_conn.c, fuzz_line.c, fuzz_ws_conn.c): one connection made
 * with socketpair(AF_UNIX) and handed to a one-worker server without a
 * listener, as if accepted; the input's control bytes cut the payload in
 * 1-4 chunks; the client writes a chunk, then the worker's loop runs with
 * appsrv__server_pass() until nothing moves, reading what the server sent.
 * The including driver defines CHECK(cond) (abort() on failure) and may
 * define FZ_ON_STUCK(z, stuck) (called when the socket stays full: the
 * host finishes what it holds) before including this file.
 */
#ifndef APPSRV_FUZZ_CONN_HARNESS_H
#define APPSRV_FUZZ_CONN_HARNESS_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "server.h"

#ifndef FZ_ON_STUCK
#define FZ_ON_STUCK(z, stuck) ((void)(z), (void)(stuck))
#endif

#define FZ_OUT_KEEP (1u << 20) /* output bytes kept for the checks */

typedef struct fz {
    appsrv_server_t *srv;
    appsrv__worker_t *w;
    int cfd; /* the client's end */
    bool client_open;
    char *out;
    size_t out_len, out_cap;
    bool out_cut;      /* more than FZ_OUT_KEEP bytes came: the copy is a prefix */
    uint64_t in_total; /* bytes the client received */
} fz_t;

/* Reads what the server sent. Returns the bytes read. */
static size_t fz_client_read(fz_t *z)
{
    size_t total = 0;
    char buf[16384];
    for (;;) {
        ssize_t n = recv(z->cfd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0)
            break;
        total += (size_t)n;
        z->in_total += (uint64_t)n;
        if (z->out_len + (size_t)n > FZ_OUT_KEEP)
            z->out_cut = true;
        if (z->out_cut)
            continue;
        if (z->out_len + (size_t)n > z->out_cap) {
            size_t cap = z->out_cap ? z->out_cap * 2 : 16384;
            while (cap < z->out_len + (size_t)n)
                cap *= 2;
            char *p = realloc(z->out, cap);
            CHECK(p != NULL);
            z->out = p;
            z->out_cap = cap;
        }
        memcpy(z->out + z->out_len, buf, (size_t)n);
        z->out_len += (size_t)n;
    }
    return total;
}

/* Runs the worker's loop until nothing happens twice in a row. */
static void fz_settle(fz_t *z, bool read_out)
{
    int quiet = 0;
    for (int pass = 0; quiet < 2; pass++) {
        CHECK(pass < 20000); /* a livelock: the loop never settles */
        int n = appsrv__server_pass(z->srv, 0); /* as worker_main does */
        CHECK(n >= 0);
        size_t got = read_out && z->client_open ? fz_client_read(z) : 0;
        quiet = n == 0 && got == 0 ? quiet + 1 : 0;
    }
}

/* Writes all of buf, running the loop between attempts. When the socket
 * stays full the client reads after all (and FZ_ON_STUCK lets the host
 * finish what it holds); a server that still takes nothing and does not
 * close is hung. */
static void fz_client_write(fz_t *z, const uint8_t *buf, size_t len)
{
    int stuck = 0;
    while (len > 0) {
        ssize_t n = send(z->cfd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            stuck = 0;
            continue;
        }
        if (n < 0 && errno != EAGAIN)
            return; /* the server closed: the rest is lost, as over TCP */
        if (z->w->nconns == 0)
            return;
        stuck++;
        FZ_ON_STUCK(z, stuck);
        fz_settle(z, true);
        CHECK(stuck < 100);
    }
}

/* Makes every deadline pass: what the timers would do after the wait. */
static void fz_warp(appsrv__worker_t *w)
{
    for (uint32_t i = 1; i <= w->loop.nheap; i++)
        w->loop.heap[i]->when_ms = 0;
    for (appsrv__conn_t *c = w->conns; c != NULL; c = c->next)
        c->deadline_ms = 0;
}

static uint32_t fz_xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static int fz_cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* The input: byte 0 flags, bytes 1-2 the cut points (1-4 chunks), the
 * rest the payload. Fills cuts[0..n] (cuts[0] = 0, cuts[n] = plen) and
 * returns the number of chunks n. Shorter inputs are padded with zeros. */
static int fz_split(const uint8_t *data, size_t size, unsigned *flags, const uint8_t **payload,
                    size_t *plen, size_t cuts[5])
{
    uint8_t ctl[3] = {0, 0, 0};
    for (size_t i = 0; i < 3 && i < size; i++)
        ctl[i] = data[i];
    *flags = ctl[0];
    *payload = size > 3 ? data + 3 : data + size;
    *plen = size > 3 ? size - 3 : 0;
    int n = 1 + (ctl[1] & 3);
    uint32_t seed = ((uint32_t)ctl[1] << 8 | ctl[2]) * 2654435761u | 1u;
    cuts[0] = 0;
    for (int i = 1; i < n; i++)
        cuts[i] = *plen ? fz_xorshift(&seed) % (*plen + 1) : 0;
    cuts[n] = *plen;
    qsort(cuts + 1, (size_t)n - 1, sizeof(size_t), fz_cmp_size);
    return n;
}

/* The socketpair, handed to worker 0 as if accepted; small buffers make
 * partial writes and backpressure reachable. */
static void fz_connect(fz_t *z, bool small_buffers, bool line)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    z->w = appsrv__server_worker(z->srv, 0);
    z->cfd = sv[1];
    z->client_open = true;
    if (small_buffers) {
        int small = 4096;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    appsrv__server_adopt(z->srv, 0, sv[0], line); /* what accept_cb() does */
}

/* The client leaves; once the host let go, no connection may stay. */
static void fz_client_close(fz_t *z)
{
    close(z->cfd);
    z->client_open = false;
    fz_settle(z, false);
}

#endif
