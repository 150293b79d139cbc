/* SPDX-License-Identifier: MIT */
/*
 * test_e2e_tls_scenarios.c - the same end-to-end scenarios over cleartext
 * and over TLS: keep-alive, pipelining, request bodies (Content-Length
 * and chunked), deferred responses, streaming, SSE, backpressure, a big
 * response, a client half-close, and the request's TLS accessors.
 *
 * One in-process server listens for HTTP and HTTPS; each scenario is a
 * function of a port, run once against the HTTP port and once against a
 * relay (tls_util.h) that turns the e2e client's plaintext into a
 * verified TLS 1.3 connection to the HTTPS port, so the assertions are
 * the same bytes either way. Built with TLS=no the suite is skipped.
 */
#include <criterion/criterion.h>

#ifndef APPSRV_HAVE_TLS
Test(tls_scenarios, skipped)
{
    cr_skip_test("built with TLS=no: no HTTPS to test");
}
#else

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "e2e.h"
#include "tls_util.h"

#define TMO     60
#define TLS_STOP_MS (e2e_valgrind() ? 30000 : 10000)
#define TLS_RD (e2e_valgrind() ? 20000 : 5000)

static tls_pki_t g_pki;
static appsrv_tls_t *g_tls;
static e2e_server_t g_srv;
static int g_https;
static tls_relay_t g_relay;
static bool g_relay_on;
static atomic_int g_eagain;     /* /flood saw backpressure */
static atomic_long g_flood_len; /* bytes /flood wrote, set before its end */

/* ---------------------------------------------------------------- handlers */

static int h_hello(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "hello", 5);
}

static int h_echo(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t b = appsrv_req_body(req);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, b.ptr, b.len);
}

static int h_big(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    char v[16];
    size_t n = appsrv_req_query_param(req, "n", v, sizeof(v)) > 0 ? strtoul(v, NULL, 10) : 0;
    char *p = malloc(n + 1);
    if (p == NULL)
        return -ENOMEM;
    e2e_fill_pattern(p, n, 7);
    appsrv_res_set_status(res, 200);
    int rc = appsrv_res_set_body(res, p, n);
    free(p);
    return rc;
}

static int h_info(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t v = appsrv_req_tls_version(req), c = appsrv_req_tls_cipher(req),
                 s = appsrv_req_tls_sni(req);
    appsrv_res_set_status(res, 200);
    if (v.ptr == NULL)
        v = (appsrv_str_t){"-", 1};
    if (c.ptr == NULL)
        c = (appsrv_str_t){"-", 1};
    if (s.ptr == NULL)
        s = (appsrv_str_t){"-", 1};
    appsrv_res_printf(res, "tls=%d version=%.*s cipher=%.*s sni=%.*s", appsrv_req_is_tls(req),
                      (int)v.len, v.ptr, (int)c.len, c.ptr, (int)s.len, s.ptr);
    return 0;
}

/* A deferred job on its own thread: kind 0 send "later", 1 stream ten
 * chunks, 2 three SSE events, 3 flood 4 MiB through backpressure. */
typedef struct job {
    appsrv_res_t *res;
    int kind;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool drained;
} job_t;

static void on_drain(appsrv_res_t *res, void *ud)
{
    (void)res;
    job_t *j = ud;
    pthread_mutex_lock(&j->lock);
    j->drained = true;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

/* /flood writes until the socket buffers (which autotune up to several
 * MiB on loopback) are full and it sees -EAGAIN, then FLOOD_AFTER more;
 * FLOOD_MAX bounds a stream that never sees backpressure. */
#define FLOOD_AFTER ((size_t)1 << 20)
#define FLOOD_MAX   ((size_t)64 << 20)
#define FLOOD_PIECE 16384

static void *job_main(void *arg)
{
    job_t *j = arg;
    e2e_pause_ms(30);
    if (j->kind == 0) {
        appsrv_res_send(j->res);
    } else if (j->kind == 1) {
        for (int i = 0; i < 10; i++) {
            char line[32];
            int n = snprintf(line, sizeof(line), "chunk-%d\n", i);
            appsrv_res_write(j->res, line, (size_t)n);
            e2e_pause_ms(2);
        }
        appsrv_res_end(j->res);
    } else if (j->kind == 2) {
        appsrv_res_sse_send(j->res, "tick", "1", "one");
        appsrv_res_sse_send(j->res, NULL, NULL, "two\nlines");
        appsrv_res_sse_send(j->res, "tick", "3", "three");
        appsrv_res_end(j->res);
    } else {
        static char piece[FLOOD_PIECE];
        size_t sent = 0, stop = FLOOD_MAX;
        while (sent < stop) {
            e2e_fill_pattern(piece, sizeof(piece), (uint32_t)(sent / FLOOD_PIECE));
            pthread_mutex_lock(&j->lock);
            j->drained = false;
            pthread_mutex_unlock(&j->lock);
            int rc = appsrv_res_write(j->res, piece, sizeof(piece));
            if (rc == -EAGAIN) {
                if (atomic_fetch_add(&g_eagain, 1) == 0)
                    stop = sent + FLOOD_AFTER;
                pthread_mutex_lock(&j->lock);
                while (!j->drained)
                    pthread_cond_wait(&j->cond, &j->lock);
                pthread_mutex_unlock(&j->lock);
                continue;
            }
            if (rc < 0)
                break;
            sent += sizeof(piece);
        }
        atomic_store(&g_flood_len, (long)sent);
        appsrv_res_end(j->res);
    }
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    free(j);
    return NULL;
}

static int start_job(appsrv_res_t *res, int kind)
{
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->res = res;
    j->kind = kind;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    if (kind == 3)
        appsrv_res_on_drain(res, on_drain, j);
    pthread_t t;
    if (pthread_create(&t, NULL, job_main, j) != 0) {
        free(j);
        return -EAGAIN;
    }
    pthread_detach(t);
    return APPSRV_LATER;
}

static int h_later(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    appsrv_res_set_body(res, "later", 5);
    return start_job(res, 0);
}

static int h_stream(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    if (appsrv_res_stream(res) < 0)
        return -1;
    return start_job(res, 1);
}

static int h_sse(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    if (appsrv_res_sse_begin(res, 0) < 0)
        return -1;
    return start_job(res, 2);
}

static int h_flood(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    if (appsrv_res_stream(res) < 0)
        return -1;
    return start_job(res, 3);
}

static const e2e_route_t ROUTES[] = {
    {"GET", "/hello", h_hello, NULL, false}, {"POST", "/echo", h_echo, NULL, false},
    {"GET", "/big", h_big, NULL, false},     {"GET", "/info", h_info, NULL, false},
    {"GET", "/later", h_later, NULL, false}, {"GET", "/stream", h_stream, NULL, false},
    {"GET", "/sse", h_sse, NULL, false},     {"GET", "/flood", h_flood, NULL, false},
};

/* ----------------------------------------------------------------- fixture */

static void setup(void)
{
    atomic_init(&g_eagain, 0);
    atomic_init(&g_flood_len, 0);
    cr_assert_eq(tls_pki_make(&g_pki), 0, "making the test PKI with openssl failed");
    int rc = appsrv_tls_new(&g_tls, NULL, g_pki.chain, g_pki.key, NULL);
    cr_assert_eq(rc, 0, "appsrv_tls_new: %s", appsrv_strerror(rc));
    rc =
        tls_server_start(&g_srv, NULL, ROUTES, sizeof(ROUTES) / sizeof(ROUTES[0]), g_tls, &g_https);
    cr_assert_eq(rc, 0, "server start: %s", appsrv_strerror(rc));
    rc = tls_relay_start(&g_relay, g_https, g_pki.ca);
    cr_assert_eq(rc, 0, "relay start: %s", appsrv_strerror(rc));
    g_relay_on = true;
}

static void teardown(void)
{
    if (g_relay_on)
        tls_relay_stop(&g_relay);
    g_relay_on = false;
    if (g_srv.srv != NULL)
        e2e_server_stop(&g_srv, TLS_STOP_MS); /* a test that failed early */
    appsrv_tls_free(g_tls);
    g_tls = NULL;
    tls_pki_remove(&g_pki);
}

/* Every test ends here: the server must stop (drain) in time. Asserting
 * in .fini is not safe with Criterion, hence a call in each body. */
static void stop_server(void)
{
    int rc = e2e_server_stop(&g_srv, TLS_STOP_MS);
    cr_assert_eq(rc, 0, "server stop: run returned %d (%s)", rc, appsrv_strerror(rc));
}

static int port_of(bool tls)
{
    return tls ? g_relay.port : g_srv.port;
}

static void open_conn(e2e_conn_t *c, bool tls)
{
    int rc = e2e_conn_open(c, port_of(tls));
    cr_assert_eq(rc, 0, "connect (%s): %s", tls ? "tls" : "plain", appsrv_strerror(rc));
}

static void expect_response(e2e_conn_t *c, int status, const char *body, const char *what)
{
    e2e_resp_t r;
    int rc = e2e_read_response(c, &r, TLS_RD, 0);
    cr_assert_eq(rc, 0, "%s: no response: %s (%zu bytes buffered)", what, appsrv_strerror(rc),
                 c->len - c->off);
    cr_expect_eq(r.status, status, "%s: status %d", what, r.status);
    if (body != NULL)
        cr_expect_str_eq(r.body, body, "%s: body", what);
    e2e_resp_free(&r);
}

/* ---------------------------------------------------------------- scenarios */

static void sc_keepalive(bool tls)
{
    e2e_conn_t c;
    open_conn(&c, tls);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(e2e_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        expect_response(&c, 200, "hello", "keep-alive request");
    }
    e2e_conn_close(&c);
}

static void sc_pipeline(bool tls)
{
    e2e_conn_t c;
    open_conn(&c, tls);
    char req[4096] = "";
    for (int i = 0; i < 4; i++)
        strcat(req, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /later HTTP/1.1\r\nHost: x\r\n\r\n"
                    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping");
    cr_assert_eq(e2e_sends(&c, req), 0);
    for (int i = 0; i < 4; i++) {
        expect_response(&c, 200, "hello", "pipelined /hello");
        expect_response(&c, 200, "later", "pipelined /later");
        expect_response(&c, 200, "ping", "pipelined POST");
    }
    e2e_conn_close(&c);
}

static void sc_bodies(bool tls)
{
    size_t n = e2e_valgrind() ? 100000 : 1000000;
    char *body = malloc(n + 1), head[128];
    cr_assert_not_null(body);
    e2e_fill_pattern(body, n, 3);
    e2e_conn_t c;
    open_conn(&c, tls);
    snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             n);
    cr_assert_eq(e2e_sends(&c, head), 0);
    cr_assert_eq(e2e_send(&c, body, n), 0);
    e2e_resp_t r;
    cr_assert_eq(e2e_read_response(&c, &r, TLS_RD, 0), 0, "no echo of the 1 MB body");
    cr_expect_eq(r.body_len, n);
    cr_expect(memcmp(r.body, body, n) == 0, "echoed body differs");
    e2e_resp_free(&r);
    /* chunked, in odd pieces */
    cr_assert_eq(e2e_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                               "\r\n5\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\n\r\n"),
                 0);
    expect_response(&c, 200, "hello, world", "chunked POST");
    e2e_conn_close(&c);
    free(body);
}

static void sc_deferred(bool tls)
{
    e2e_conn_t c;
    open_conn(&c, tls);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(e2e_sends(&c, "GET /later HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        expect_response(&c, 200, "later", "deferred");
    }
    e2e_conn_close(&c);
}

static void sc_stream(bool tls)
{
    e2e_conn_t c;
    open_conn(&c, tls);
    cr_assert_eq(e2e_sends(&c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    e2e_resp_t r;
    cr_assert_eq(e2e_read_response(&c, &r, TLS_RD, 0), 0);
    cr_expect(r.chunked);
    cr_expect_str_eq(r.body, "chunk-0\nchunk-1\nchunk-2\nchunk-3\nchunk-4\nchunk-5\nchunk-6\n"
                             "chunk-7\nchunk-8\nchunk-9\n");
    e2e_resp_free(&r);
    /* the connection is still usable after the stream */
    cr_assert_eq(e2e_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    expect_response(&c, 200, "hello", "after the stream");
    e2e_conn_close(&c);
}

static void sc_sse(bool tls)
{
    e2e_conn_t c;
    open_conn(&c, tls);
    cr_assert_eq(e2e_sends(&c, "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    e2e_resp_t r;
    cr_assert_eq(e2e_read_response(&c, &r, TLS_RD, 0), 0);
    cr_expect_str_eq(e2e_resp_header(&r, "Content-Type"), "text/event-stream");
    cr_expect_str_eq(r.body, "event: tick\nid: 1\ndata: one\n\ndata: two\ndata: lines\n\n"
                             "event: tick\nid: 3\ndata: three\n\n");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
}

static void sc_backpressure(bool tls)
{
    /* A small receive window and 16 MiB: loopback buffers (megabytes once
     * autotuned) cannot absorb the stream, so the producer must meet
     * -EAGAIN whatever the timing. */
    e2e_conn_t c;
    int rc = e2e_conn_open_ex(&c, AF_INET, port_of(tls), 16 * 1024, 2000);
    cr_assert_eq(rc, 0, "connect (%s): %s", tls ? "tls" : "plain", appsrv_strerror(rc));
    cr_assert_eq(e2e_sends(&c, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    /* not reading: the sockets fill, the stream must see -EAGAIN */
    int64_t end = e2e_now_ms() + TLS_RD;
    while (atomic_load(&g_eagain) == 0 && e2e_now_ms() < end)
        e2e_pause_ms(5);
    cr_assert_gt(atomic_load(&g_eagain), 0, "the stream never saw backpressure (-EAGAIN)");
    e2e_resp_t r;
    cr_assert_eq(e2e_read_response(&c, &r, TLS_RD * 2, 0), 0, "flood did not complete");
    size_t total = (size_t)atomic_load(&g_flood_len);
    cr_assert_eq(r.body_len, total, "flood body %zu bytes, %zu written", r.body_len, total);
    cr_assert_geq(total, FLOOD_AFTER);
    char piece[FLOOD_PIECE];
    for (size_t off = 0; off < total; off += FLOOD_PIECE) {
        e2e_fill_pattern(piece, sizeof(piece), (uint32_t)(off / FLOOD_PIECE));
        cr_assert(memcmp(r.body + off, piece, FLOOD_PIECE) == 0, "flood differs at %zu", off);
    }
    e2e_resp_free(&r);
    e2e_conn_close(&c);
}

static void sc_big(bool tls)
{
    size_t n = e2e_valgrind() ? 300000 : 5000000;
    char req[128];
    snprintf(req, sizeof(req), "GET /big?n=%zu HTTP/1.1\r\nHost: x\r\n\r\n", n);
    e2e_conn_t c;
    open_conn(&c, tls);
    cr_assert_eq(e2e_sends(&c, req), 0);
    e2e_resp_t r;
    cr_assert_eq(e2e_read_response(&c, &r, TLS_RD * 2, 0), 0);
    char *want = malloc(n);
    cr_assert_not_null(want);
    e2e_fill_pattern(want, n, 7);
    cr_assert_eq(r.body_len, n);
    cr_expect(memcmp(r.body, want, n) == 0, "big body differs");
    free(want);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
}

static void sc_half_close(bool tls)
{
    e2e_conn_t c;
    open_conn(&c, tls);
    cr_assert_eq(e2e_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    shutdown(c.fd, SHUT_WR);
    expect_response(&c, 200, "hello", "answer after the client's FIN");
    cr_expect_geq(e2e_wait_closed(&c, TLS_RD), 0, "server did not close after the half-close");
    e2e_conn_close(&c);
}

static void sc_info(bool tls)
{
    e2e_conn_t c;
    open_conn(&c, tls);
    cr_assert_eq(e2e_sends(&c, "GET /info HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    expect_response(&c, 200,
                    tls ? "tls=1 version=TLSv1.3 cipher=TLS_AES_128_GCM_SHA256 sni=localhost"
                        : "tls=0 version=- cipher=- sni=-",
                    "TLS accessors");
    e2e_conn_close(&c);
}

#define BOTH(name, fn)                                                                             \
    Test(tls_scenarios, name##_plain, .init = setup, .fini = teardown, .timeout = TMO)             \
    {                                                                                              \
        fn(false);                                                                                 \
        stop_server();                                                                             \
    }                                                                                              \
    Test(tls_scenarios, name##_tls, .init = setup, .fini = teardown, .timeout = TMO)               \
    {                                                                                              \
        fn(true);                                                                                  \
        cr_expect_eq(atomic_load(&g_relay.handshakes_failed), 0, "relay handshakes failed");       \
        tls_relay_stop(&g_relay);                                                                  \
        g_relay_on = false;                                                                        \
        stop_server();                                                                             \
    }

BOTH(keepalive, sc_keepalive)
BOTH(pipelining, sc_pipeline)
BOTH(request_bodies, sc_bodies)
BOTH(deferred, sc_deferred)
BOTH(streaming, sc_stream)
BOTH(sse, sc_sse)
BOTH(backpressure, sc_backpressure)
BOTH(big_response, sc_big)
BOTH(half_close, sc_half_close)
BOTH(accessors, sc_info)

#endif /* APPSRV_HAVE_TLS */
