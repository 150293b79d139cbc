/* SPDX-License-Identifier: MIT */
/*
 * test_conn.c - unit tests of the two seams around a connection (conn.c):
 * the protocol table above it, including a switch from one protocol to
 * another at a request boundary with input already buffered (what a 101
 * to WebSocket needs), and the transport table under it (a transport with
 * a two-step handshake: nothing is read before it is done), plus the
 * reference count (a closed connection the host holds is kept until
 * released). Two small protocols defined here drive a real connection
 * over a socketpair through one worker's loop (server.h test hooks).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "server.h"

/* --------------------------------------------------- protocol A: lines */

/* "SWITCH\n" answers "OK\n" and switches to B; "HOLD\n" takes a host
 * reference; any other line L answers "A:L\n". */
static const appsrv__proto_t proto_b;
static appsrv__conn_t *g_held; /* the connection HOLD took a reference on */
static int g_switch_rc;
static int g_ctx_inits, g_ctx_disposes, g_closed_calls;

typedef struct tctx {
    int magic;
} tctx_t;

static size_t t_ctx_size(const appsrv_config_t *cfg)
{
    (void)cfg;
    return sizeof(tctx_t);
}

static void t_ctx_init(appsrv__conn_t *c)
{
    ((tctx_t *)c->ctx)->magic = 0x5eed;
    g_ctx_inits++;
}

static void t_ctx_dispose(appsrv__conn_t *c)
{
    cr_assert_eq(((tctx_t *)c->ctx)->magic, 0x5eed, "context not set up by ctx_init");
    g_ctx_disposes++;
}

static void t_error(appsrv__conn_t *c, int status)
{
    char line[16];
    int n = snprintf(line, sizeof(line), "E%d\n", status);
    appsrv__out_copy(c, line, (size_t)n);
    c->close_after = true;
}

static void t_cancel(appsrv__conn_t *c)
{
    (void)c;
}

static void t_closed(appsrv__conn_t *c)
{
    (void)c;
    g_closed_calls++;
}

static size_t t_refusal(char *buf, size_t cap, const char *date, const char *rid)
{
    (void)rid;
    (void)date;
    if (cap < 5)
        return 0;
    memcpy(buf, "BUSY\n", 5);
    return 5;
}

static int a_process(appsrv__conn_t *c)
{
    int progress = 0;
    while (!c->closed && c->rblk != NULL && c->rpos < c->rlen) {
        char *start = c->rbuf + c->rpos;
        char *nl = memchr(start, '\n', c->rlen - c->rpos);
        if (nl == NULL)
            return progress;
        size_t len = (size_t)(nl - start);
        c->rpos += (uint32_t)len + 1;
        c->nreqs++;
        progress = 1;
        if (len == 6 && memcmp(start, "SWITCH", 6) == 0) {
            appsrv__out_copy(c, "OK\n", 3);
            g_switch_rc = appsrv__conn_switch(c, &proto_b, NULL);
            return 1; /* the connection calls the new table next */
        }
        if (len == 4 && memcmp(start, "HOLD", 4) == 0) {
            appsrv__conn_hold(c);
            g_held = c;
            appsrv__out_copy(c, "HELD\n", 5);
            continue;
        }
        char out[80];
        int n = snprintf(out, sizeof(out), "A:%.*s\n", (int)len, start);
        appsrv__out_copy(c, out, (size_t)n);
    }
    return progress;
}

static const appsrv__proto_t proto_a = {
    .name = "test-a",
    .id = APPSRV_PROTO_LINE,
    .ctx_size = t_ctx_size,
    .ctx_init = t_ctx_init,
    .ctx_dispose = t_ctx_dispose,
    .process = a_process,
    .error = t_error,
    .cancel = t_cancel,
    .closed = t_closed,
    .refusal = t_refusal,
};

/* ------------------------------------------- protocol B: upper-case echo */

static int b_process(appsrv__conn_t *c)
{
    if (c->rblk == NULL || c->rpos == c->rlen)
        return 0;
    size_t n = c->rlen - c->rpos;
    char out[256] = "B:";
    if (n > sizeof(out) - 2)
        n = sizeof(out) - 2;
    for (size_t i = 0; i < n; i++) {
        char ch = c->rbuf[c->rpos + i];
        out[2 + i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
    }
    c->rpos += (uint32_t)n;
    appsrv__out_copy(c, out, n + 2);
    return 1;
}

static const appsrv__proto_t proto_b = {
    .name = "test-b",
    .id = APPSRV_PROTO_LINE,
    .ctx_size = t_ctx_size,
    .ctx_init = t_ctx_init,
    .ctx_dispose = t_ctx_dispose,
    .process = b_process,
    .error = t_error,
    .cancel = t_cancel,
    .closed = t_closed,
    .refusal = t_refusal,
};

/* ------------------------------------------- transport: two-step hello */

/* A plain socket whose handshake needs two calls: the connection must
 * not read before it is done. */
static int g_hs_calls, g_reads, g_writes;

static int slow_handshake(appsrv__tsock_t *s)
{
    (void)s;
    return ++g_hs_calls >= 2 ? 1 : 0;
}

static ssize_t counting_read(appsrv__tsock_t *s, void *buf, size_t len)
{
    cr_assert_geq(g_hs_calls, 2, "read before the handshake was done");
    g_reads++;
    return appsrv__transport_plain.read(s, buf, len);
}

static ssize_t counting_writev(appsrv__tsock_t *s, const struct iovec *iov, int n)
{
    g_writes++;
    return appsrv__transport_plain.writev(s, iov, n);
}

static const appsrv__transport_t slow_tp = {
    .name = "test-slow",
    .handshake = slow_handshake,
    .read = counting_read,
    .writev = counting_writev,
    .shutdown = NULL,
    .close = NULL,
};

/* ------------------------------------------------------------- fixture */

typedef struct fx {
    appsrv_server_t *srv;
    appsrv__worker_t *w;
    int cfd; /* the client's end */
} fx_t;

static void fx_start(fx_t *f, const appsrv__proto_t *proto, const appsrv__transport_t *tp)
{
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.threads = 1;
    cr_assert_eq(appsrv_server_new(&f->srv, &cfg), 0);
    appsrv__server_prepare(f->srv);
    f->w = appsrv__server_worker(f->srv, 0);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    f->cfd = sv[1];
    g_held = NULL;
    g_switch_rc = 1;
    g_ctx_inits = g_ctx_disposes = g_closed_calls = 0;
    g_hs_calls = g_reads = g_writes = 0;
    atomic_fetch_add(f->w->nconns_total, 1);
    appsrv__conn_accepted(f->w, sv[0], NULL, proto, NULL, tp, NULL);
}

/* Runs the loop until two quiet passes; returns what the client got. */
static size_t fx_settle(fx_t *f, char *out, size_t cap)
{
    size_t got = 0;
    for (int quiet = 0, pass = 0; quiet < 2; pass++) {
        cr_assert_lt(pass, 1000, "the loop never settled");
        int n = appsrv__server_pass(f->srv, 0);
        ssize_t r = recv(f->cfd, out + got, cap - 1 - got, MSG_DONTWAIT);
        if (r > 0)
            got += (size_t)r;
        quiet = n == 0 && r <= 0 ? quiet + 1 : 0;
    }
    out[got] = '\0';
    return got;
}

static void fx_send(fx_t *f, const char *s)
{
    cr_assert_eq(send(f->cfd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

static void fx_stop(fx_t *f)
{
    if (f->cfd >= 0)
        close(f->cfd);
    char sink[64];
    fx_settle(f, sink, sizeof(sink));
    cr_assert_eq(f->w->nconns, 0, "a connection is still open");
    cr_assert_eq(f->w->nheld, 0, "a closed connection is still held");
    appsrv_server_free(f->srv);
}

/* ----------------------------------------------------------------- tests */

Test(conn, protocol_switch_keeps_buffered_input, .timeout = 10)
{
    fx_t f;
    fx_start(&f, &proto_a, &appsrv__transport_plain);
    /* One write: the bytes after SWITCH are already in the input block
     * when A hands the connection to B. */
    fx_send(&f, "hello\nSWITCH\nabc");
    char out[256];
    fx_settle(&f, out, sizeof(out));
    cr_assert_eq(g_switch_rc, 0, "switch: %d", g_switch_rc);
    cr_assert_str_eq(out, "A:hello\nOK\nB:ABC");
    /* From now on every byte goes to B. */
    fx_send(&f, "more\n");
    fx_settle(&f, out, sizeof(out));
    cr_assert_str_eq(out, "B:MORE\n");
    fx_stop(&f);
    /* Each protocol's context was set up and released in pairs. */
    cr_assert_eq(g_ctx_inits, g_ctx_disposes, "%d ctx_init, %d ctx_dispose", g_ctx_inits,
                 g_ctx_disposes);
}

Test(conn, protocol_switch_refused_while_held, .timeout = 10)
{
    fx_t f;
    fx_start(&f, &proto_a, &appsrv__transport_plain);
    fx_send(&f, "HOLD\nSWITCH\n");
    char out[256];
    fx_settle(&f, out, sizeof(out));
    cr_assert_str_eq(out, "HELD\nOK\n");
    cr_assert_eq(g_switch_rc, APPSRV_ESTATE, "switch while the host holds: %d", g_switch_rc);
    cr_assert_not_null(g_held);
    appsrv__conn_release(g_held);
    fx_stop(&f);
}

Test(conn, closed_connection_kept_until_released, .timeout = 10)
{
    fx_t f;
    fx_start(&f, &proto_a, &appsrv__transport_plain);
    fx_send(&f, "HOLD\n");
    char out[64];
    fx_settle(&f, out, sizeof(out));
    cr_assert_not_null(g_held);
    close(f.cfd); /* the client leaves while the host holds */
    f.cfd = -1;
    fx_settle(&f, out, sizeof(out));
    cr_assert_eq(f.w->nconns, 0);
    cr_assert_eq(f.w->nheld, 1, "the held connection was freed under the host");
    cr_assert(g_held->closed);
    cr_assert_eq(g_closed_calls, 1);
    cr_assert_not_null(g_held->ctx, "its context is gone while held");
    appsrv__conn_release(g_held);
    cr_assert_eq(f.w->nheld, 0);
    fx_stop(&f);
}

Test(conn, transport_handshake_before_bytes, .timeout = 10)
{
    appsrv__transport_t tp = slow_tp;
    tp.shutdown = appsrv__transport_plain.shutdown;
    tp.close = appsrv__transport_plain.close;
    fx_t f;
    fx_start(&f, &proto_a, &tp);
    fx_send(&f, "x\n");
    char out[64];
    fx_settle(&f, out, sizeof(out));
    /* The first drive (at accept) got 0 from the handshake, the next one
     * finished it and then read the line. */
    cr_assert_geq(g_hs_calls, 2);
    cr_assert_str_eq(out, "A:x\n");
    cr_assert_gt(g_reads, 0);
    cr_assert_gt(g_writes, 0, "output not written through the transport");
    fx_stop(&f);
}

Test(conn, evict_idle_closes_longest_idle_first, .timeout = 10)
{
    fx_t f;
    fx_start(&f, &proto_a, &appsrv__transport_plain);
    fx_send(&f, "one\n");
    char out[64];
    fx_settle(&f, out, sizeof(out));
    cr_assert_eq(f.w->nidle, 1, "an answered, quiet connection is not on the idle list");
    cr_assert_eq(appsrv__conn_evict_idle(f.w, 4), 1);
    cr_assert_eq(f.w->nconns, 0);
    cr_assert_eq(f.w->nidle, 0);
    /* The client sees the close. */
    fx_settle(&f, out, sizeof(out));
    cr_assert_eq(recv(f.cfd, out, sizeof(out), MSG_DONTWAIT), 0);
    fx_stop(&f);
}
