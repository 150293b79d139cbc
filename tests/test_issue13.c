/* SPDX-License-Identifier: MIT */
/*
 * test_e2e_issue13.c - regression tests for the defects of issue 13 that
 * live in the connection and response machinery: the completion queue
 * after a response finished without a status (item 1), a stream stalled
 * after one large write (item 2), the cancel callback's order against
 * APPSRV_ECANCELED (item 3), the stop notification for long streams
 * (item 4), stream data on 204/304 (item 8) and the access log (item 10).
 * Each failed against the library before its fix. Over loopback with the
 * public API only; every wait bounded; host threads record what they saw
 * in atomics and the test thread asserts.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appsrv.h"
#include "e2e.h"
#include "expect.h"

#define RD5 5000

static void start(e2e_server_t *s, appsrv_config_t *cfg, const e2e_route_t *routes, size_t n)
{
    start_srv(s, cfg, routes, n, E2E_HTTP);
}

static void stop(e2e_server_t *s)
{
    stop_srv(s);
}

static appsrv_config_t cfg1(void)
{
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.threads = 1;
    return cfg;
}

/* ============================================== item 1: completion queue */

static appsrv_res_t *_Atomic parked;

static int h_park(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    atomic_store(&parked, res);
    return APPSRV_LATER;
}

/* Finished before returning, with no status: the library answers 500. */
static int h_send_no_status(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    intptr_t ret = (intptr_t)user;
    appsrv_res_send(res);
    return (int)ret;
}

static int h_finish_parked(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    appsrv_res_t *p = atomic_exchange(&parked, NULL);
    if (p != NULL) {
        appsrv_res_set_status(p, 200);
        appsrv_res_set_body(p, "parked", 6);
        appsrv_res_send(p);
    }
    appsrv_res_set_status(res, p != NULL ? 200 : 409);
    return 0;
}

static void finish_without_status_then_parked(intptr_t handler_return)
{
    appsrv_config_t cfg = cfg1();
    cfg.response_timeout_ms = 3000;
    const e2e_route_t routes[] = {
        {"GET", "/park", h_park, NULL, false},
        {"GET", "/nostatus", h_send_no_status, (void *)handler_return, false},
        {"GET", "/finish", h_finish_parked, NULL, false},
    };
    e2e_server_t s;
    start(&s, &cfg, routes, 3);
    atomic_store(&parked, NULL);
    e2e_conn_t a, b;
    e2e_resp_t r;
    open_conn(&a, s.port);
    open_conn(&b, s.port);
    for (int round = 0; round < 3; round++) {
        send_str(&a, "GET /park HTTP/1.1\r\nHost: x\r\n\r\n");
        int64_t t0 = e2e_now_ms();
        while (atomic_load(&parked) == NULL && e2e_now_ms() - t0 < RD5)
            e2e_pause_ms(1);
        cr_assert_not_null(atomic_load(&parked), "round %d: /park never reached its handler",
                           round);
        send_str(&b, "GET /nostatus HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /finish HTTP/1.1\r\nHost: x\r\n\r\n");
        read_resp_t(&b, &r, 0, RD5);
        cr_assert_eq(r.status, 500, "round %d: finished without status: %d", round, r.status);
        e2e_resp_free(&r);
        read_resp_t(&b, &r, 0, RD5);
        cr_assert_eq(r.status, 200, "round %d: /finish: %d", round, r.status);
        e2e_resp_free(&r);
        /* The parked response goes out at once, not at the 3 s timeout. */
        t0 = e2e_now_ms();
        read_resp_t(&a, &r, 0, RD5);
        int64_t took = e2e_now_ms() - t0;
        cr_assert_eq(r.status, 200, "round %d: parked answered %d after %lld ms", round,
                     r.status, (long long)took);
        cr_assert(took < 1500, "round %d: parked answered after %lld ms", round,
                  (long long)took);
        e2e_resp_free(&r);
    }
    e2e_conn_close(&a);
    e2e_conn_close(&b);
    stop(&s);
}

Test(issue13, issue_13_send_without_status_then_later_keeps_queue, .timeout = 30)
{
    finish_without_status_then_parked(APPSRV_LATER);
}

Test(issue13, issue_13_send_without_status_then_return_0, .timeout = 30)
{
    finish_without_status_then_parked(0);
}

Test(issue13, issue_13_send_without_status_then_return_negative, .timeout = 30)
{
    finish_without_status_then_parked(-1);
}

/* ================================================ item 2: big stream write */

static int h_big_stream(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    size_t n = (size_t)(uintptr_t)user;
    char *buf = malloc(n);
    if (buf == NULL)
        return -1;
    e2e_fill_pattern(buf, n, 7);
    appsrv_res_set_status(res, 200);
    appsrv_res_stream(res);
    int rc = appsrv_res_write(res, buf, n);
    free(buf);
    if (rc != 0)
        return -1;
    appsrv_res_end(res);
    return APPSRV_LATER;
}

static void big_stream(size_t n)
{
    appsrv_config_t cfg = cfg1();
    const e2e_route_t routes[] = {{"GET", "/big", h_big_stream, (void *)(uintptr_t)n, false}};
    e2e_server_t s;
    start(&s, &cfg, routes, 1);
    e2e_conn_t c;
    e2e_resp_t r;
    open_conn(&c, s.port);
    send_str(&c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    int rc = e2e_read_response(&c, &r, 10000, 0);
    cr_assert_eq(rc, 0, "%zu-byte stream: %s after %zu bytes buffered", n, appsrv_strerror(rc),
                 c.len);
    cr_assert_eq(r.status, 200);
    cr_assert(r.chunked);
    cr_assert_eq(r.body_len, n, "body %zu bytes, expected %zu", r.body_len, n);
    char *want = malloc(n);
    cr_assert_not_null(want);
    e2e_fill_pattern(want, n, 7);
    cr_assert(memcmp(r.body, want, n) == 0, "body bytes differ");
    free(want);
    e2e_resp_free(&r);
    /* The connection goes on. */
    send_str(&c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp_t(&c, &r, 0, 10000);
    cr_assert_eq(r.body_len, n);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    stop(&s);
}

Test(issue13, issue_13_stream_write_2mib_not_stalled, .timeout = 60)
{
    big_stream(2u << 20);
}

Test(issue13, issue_13_stream_write_4mib_not_stalled, .timeout = 60)
{
    big_stream(4u << 20);
}

/* A 2 MiB write, then the host waits for the drain callback to end. */
typedef struct drain_job {
    appsrv_res_t *res;
    atomic_int drains;
} drain_job_t;

static drain_job_t g_drain;

static void on_drain_end(appsrv_res_t *res, void *ud)
{
    drain_job_t *j = ud;
    atomic_fetch_add(&j->drains, 1);
    appsrv_res_end(res);
}

static int h_write_then_drain(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    size_t n = 2u << 20;
    char *buf = malloc(n);
    if (buf == NULL)
        return -1;
    e2e_fill_pattern(buf, n, 9);
    appsrv_res_on_drain(res, on_drain_end, &g_drain);
    appsrv_res_stream(res);
    int rc = appsrv_res_write(res, buf, n);
    /* Over the high mark now: the next write asks for the drain. */
    int again = appsrv_res_write(res, "x", 1);
    free(buf);
    if (rc != 0 || again != -EAGAIN)
        return -1;
    return APPSRV_LATER;
}

Test(issue13, issue_13_drain_callback_after_big_write, .timeout = 60)
{
    appsrv_config_t cfg = cfg1();
    atomic_store(&g_drain.drains, 0);
    const e2e_route_t routes[] = {{"GET", "/w", h_write_then_drain, NULL, false}};
    e2e_server_t s;
    start(&s, &cfg, routes, 1);
    e2e_conn_t c;
    e2e_resp_t r;
    open_conn(&c, s.port);
    send_str(&c, "GET /w HTTP/1.1\r\nHost: x\r\n\r\n");
    int rc = e2e_read_response(&c, &r, 10000, 0);
    cr_assert_eq(rc, 0, "stream: %s, %d drain calls, %zu bytes buffered", appsrv_strerror(rc),
                 atomic_load(&g_drain.drains), c.len);
    cr_assert_eq(r.body_len, 2u << 20);
    cr_assert_eq(atomic_load(&g_drain.drains), 1);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    stop(&s);
}

/* ============================================ item 3: cancel before answer */

typedef struct cancel_probe {
    appsrv_res_t *_Atomic res;
    atomic_int started;   /* the callback began */
    atomic_int finished;  /* the callback returned */
    atomic_int send_rc;   /* what the host thread's send returned */
    atomic_int done_seen; /* finished, as the host saw it when send returned */
} cancel_probe_t;

static cancel_probe_t g_probe;

static void slow_cancel(appsrv_res_t *res, void *ud)
{
    (void)res;
    cancel_probe_t *p = ud;
    atomic_store(&p->started, 1);
    e2e_pause_ms(300); /* a host that tears down its context here */
    atomic_store(&p->finished, 1);
}

static int h_hold(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    appsrv_res_on_cancel(res, slow_cancel, &g_probe);
    atomic_store(&g_probe.res, res);
    return APPSRV_LATER;
}

static void *host_sender(void *arg)
{
    cancel_probe_t *p = arg;
    int64_t t0 = e2e_now_ms();
    while (!atomic_load(&p->started) && e2e_now_ms() - t0 < RD5)
        e2e_pause_ms(1);
    appsrv_res_t *res = atomic_load(&p->res);
    appsrv_res_set_status(res, 200);
    int rc = appsrv_res_send(res);
    atomic_store(&p->done_seen, atomic_load(&p->finished));
    atomic_store(&p->send_rc, rc);
    return NULL;
}

Test(issue13, issue_13_ecanceled_only_after_cancel_callback, .timeout = 30)
{
    appsrv_config_t cfg = cfg1();
    memset(&g_probe, 0, sizeof(g_probe));
    atomic_store(&g_probe.send_rc, 1);
    const e2e_route_t routes[] = {{"GET", "/hold", h_hold, NULL, false}};
    e2e_server_t s;
    start(&s, &cfg, routes, 1);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    int64_t t0 = e2e_now_ms();
    while (atomic_load(&g_probe.res) == NULL && e2e_now_ms() - t0 < RD5)
        e2e_pause_ms(1);
    cr_assert_not_null(atomic_load(&g_probe.res));
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, host_sender, &g_probe), 0);
    e2e_conn_close(&c); /* the client leaves: the loop runs the callback */
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&g_probe.started), 1, "cancel callback never ran");
    cr_assert_eq(atomic_load(&g_probe.send_rc), APPSRV_ECANCELED, "send: %d",
                 atomic_load(&g_probe.send_rc));
    cr_assert_eq(atomic_load(&g_probe.done_seen), 1,
                 "APPSRV_ECANCELED reported while the cancel callback was still running");
    stop(&s);
}

/* ======================================== item 4: stop notification, SSE */

static atomic_int g_stops;

static void sse_on_stop(appsrv_res_t *res, void *ud)
{
    (void)ud;
    atomic_fetch_add(&g_stops, 1);
    appsrv_res_sse_send(res, "bye", NULL, "server stopping");
    appsrv_res_end(res);
}

static int h_sse_forever(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    appsrv_res_on_stop(res, sse_on_stop, NULL);
    appsrv_res_sse_begin(res, 0);
    appsrv_res_sse_send(res, "hello", NULL, "1");
    return APPSRV_LATER;
}

Test(issue13, issue_13_stop_notification_ends_sse_cleanly, .timeout = 30)
{
    appsrv_config_t cfg = cfg1();
    cfg.drain_timeout_ms = 8000;
    atomic_store(&g_stops, 0);
    const e2e_route_t routes[] = {{"GET", "/sse", h_sse_forever, NULL, false}};
    e2e_server_t s;
    start(&s, &cfg, routes, 1);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n");
    /* Bounded wait for the first event (slow under valgrind). */
    for (int i = 0; i < 50 && !(c.len > 0 && strstr(c.buf, "event: hello") != NULL); i++)
        e2e_pump(&c, 100);
    cr_assert(c.len > 0 && strstr(c.buf, "event: hello") != NULL,
              "first event not seen within 5 s (%zu bytes: %.200s)", c.len, c.len ? c.buf : "");
    int64_t t0 = e2e_now_ms();
    e2e_server_request_stop(&s);
    e2e_resp_t r;
    read_resp_t(&c, &r, 0, 3000); /* the whole chunked stream, terminator included */
    int64_t took = e2e_now_ms() - t0;
    cr_assert(r.chunked);
    cr_assert(strstr(r.body, "event: bye\ndata: server stopping\n\n") != NULL,
              "last event missing: '%s'", r.body);
    cr_assert(took < 3000, "stream ended %lld ms after the stop", (long long)took);
    cr_assert_eq(atomic_load(&g_stops), 1);
    e2e_resp_free(&r);
    cr_assert_eq(e2e_server_join(&s, 3000), 0, "run did not return soon after the stream ended");
    e2e_conn_close(&c);
    stop(&s);
}

/* Deferred in a handler that returns after the stop began: notified at
 * once. */
static int h_sse_late(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    e2e_server_t *s = user;
    appsrv_server_stop(s->srv); /* the stop begins while we handle it */
    return h_sse_forever(req, res, NULL);
}

Test(issue13, issue_13_stop_notification_when_stop_came_first, .timeout = 30)
{
    appsrv_config_t cfg = cfg1();
    cfg.drain_timeout_ms = 8000;
    atomic_store(&g_stops, 0);
    static e2e_server_t s;
    const e2e_route_t routes[] = {{"GET", "/late", h_sse_late, &s, false}};
    start(&s, &cfg, routes, 1);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp_t(&c, &r, 0, 3000);
    cr_assert(strstr(r.body, "event: bye") != NULL, "no last event: '%s'", r.body);
    cr_assert_eq(atomic_load(&g_stops), 1);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    stop(&s);
}

/* ====================================== item 8: no body on a 204/304 stream */

static atomic_int g_write_rc;

static int h_stream_nobody(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    appsrv_res_set_status(res, (int)(intptr_t)user);
    appsrv_res_stream(res);
    atomic_store(&g_write_rc, appsrv_res_write(res, "HTTP/1.1 200 OK\r\n\r\nsmuggled", 27));
    appsrv_res_end(res);
    return APPSRV_LATER;
}

static int h_next_plain(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    appsrv_res_set_status(res, 200);
    appsrv_res_set_body(res, "next", 4);
    return 0;
}

static void stream_nobody(int status)
{
    appsrv_config_t cfg = cfg1();
    const e2e_route_t routes[] = {
        {"GET", "/s", h_stream_nobody, (void *)(intptr_t)status, false},
        {"GET", "/next", h_next_plain, NULL, false},
    };
    e2e_server_t s;
    start(&s, &cfg, routes, 2);
    e2e_conn_t c;
    e2e_resp_t r;
    open_conn(&c, s.port);
    send_str(&c, "GET /s HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp_t(&c, &r, 0, RD5);
    cr_assert_eq(r.status, status);
    cr_assert_null(e2e_resp_header(&r, "Transfer-Encoding"));
    cr_assert_eq(r.body_len, 0);
    e2e_resp_free(&r);
    /* The next response follows directly: no stray bytes between. */
    read_resp_t(&c, &r, 0, RD5);
    cr_assert_eq(r.status, 200, "after the %d stream: %d '%s'", status, r.status, r.reason);
    cr_assert_str_eq(r.body, "next");
    e2e_resp_free(&r);
    cr_assert_eq(atomic_load(&g_write_rc), APPSRV_ENOBODY, "write on a %d stream: %d", status,
                 atomic_load(&g_write_rc));
    e2e_conn_close(&c);
    stop(&s);
}

Test(issue13, issue_13_stream_204_sends_no_body, .timeout = 30)
{
    stream_nobody(204);
}

Test(issue13, issue_13_stream_304_sends_no_body, .timeout = 30)
{
    stream_nobody(304);
}

/* ============================================== item 10: the access log */

#define MAX_LOG 16

typedef struct log_rec {
    int status;
    char method[16];
    char target[64];
    uint64_t bytes, usec;
    bool aborted;
} log_rec_t;

static struct {
    pthread_mutex_t lock;
    log_rec_t v[MAX_LOG];
    int n;
} g_log = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void record(const appsrv_log_entry_t *e, void *user)
{
    (void)user;
    pthread_mutex_lock(&g_log.lock);
    if (g_log.n < MAX_LOG) {
        log_rec_t *l = &g_log.v[g_log.n++];
        l->status = e->status;
        snprintf(l->method, sizeof(l->method), "%.*s", (int)e->method.len,
                 e->method.ptr ? e->method.ptr : "");
        snprintf(l->target, sizeof(l->target), "%.*s", (int)e->target.len,
                 e->target.ptr ? e->target.ptr : "");
        l->bytes = e->bytes;
        l->usec = e->usec;
        l->aborted = e->aborted;
    }
    pthread_mutex_unlock(&g_log.lock);
}

static log_rec_t wait_log(int i)
{
    int64_t t0 = e2e_now_ms();
    for (;;) {
        pthread_mutex_lock(&g_log.lock);
        int n = g_log.n;
        log_rec_t l = i < n ? g_log.v[i] : (log_rec_t){0};
        pthread_mutex_unlock(&g_log.lock);
        if (i < n)
            return l;
        cr_assert(e2e_now_ms() - t0 < RD5, "log line %d never came (%d lines)", i, n);
        e2e_pause_ms(2);
    }
}

static int h_stream3(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    appsrv_res_stream(res);
    appsrv_res_write(res, "aaaa", 4);
    appsrv_res_write(res, "bbbbbbbb", 8);
    appsrv_res_end(res);
    return APPSRV_LATER;
}

static int h_never(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    atomic_store(&parked, res);
    return APPSRV_LATER;
}

Test(issue13, issue_13_access_log_errors_streams_aborts, .timeout = 30)
{
    appsrv_config_t cfg = cfg1();
    cfg.max_body = 10;
    cfg.access_log = record;
    g_log.n = 0;
    atomic_store(&parked, NULL);
    const e2e_route_t routes[] = {
        {"POST", "/up", h_next_plain, NULL, false},
        {"GET", "/stream", h_stream3, NULL, false},
        {"GET", "/never", h_never, NULL, false},
    };
    e2e_server_t s;
    start(&s, &cfg, routes, 3);
    e2e_conn_t c;
    e2e_resp_t r;

    /* An error before routing keeps the method and target it parsed. */
    open_conn(&c, s.port);
    send_str(&c, "POST /up?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
    read_resp_t(&c, &r, 0, RD5);
    cr_assert_eq(r.status, 413);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    log_rec_t l = wait_log(0);
    cr_assert_eq(l.status, 413);
    cr_assert_str_eq(l.method, "POST");
    cr_assert_str_eq(l.target, "/up?x=1");
    cr_assert(l.bytes > 0 && !l.aborted);

    /* A stream logs every byte it framed: head, chunks, terminator. */
    open_conn(&c, s.port);
    send_str(&c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp_t(&c, &r, 0, RD5);
    cr_assert_str_eq(r.body, "aaaabbbbbbbb");
    size_t wire = r.head_len + (3 + 4 + 2) + (3 + 8 + 2) + 5;
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    l = wait_log(1);
    cr_assert_eq(l.status, 200);
    cr_assert_eq(l.bytes, (uint64_t)wire, "stream logged %llu bytes, %zu on the wire",
                 (unsigned long long)l.bytes, wire);

    /* A client that leaves before the answer: logged, marked aborted. */
    open_conn(&c, s.port);
    send_str(&c, "GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
    int64_t t0 = e2e_now_ms();
    while (atomic_load(&parked) == NULL && e2e_now_ms() - t0 < RD5)
        e2e_pause_ms(1);
    e2e_pause_ms(20);
    e2e_conn_close(&c);
    l = wait_log(2);
    cr_assert_str_eq(l.target, "/never");
    cr_assert(l.aborted, "abandoned request not marked aborted");
    cr_assert_eq(l.status, 499);
    cr_assert(l.usec >= 20000, "duration %llu us for a request held 20 ms",
              (unsigned long long)l.usec);
    appsrv_res_t *p = atomic_exchange(&parked, NULL);
    cr_assert_not_null(p);
    cr_assert_eq(appsrv_res_send(p), APPSRV_ECANCELED);
    stop(&s);
}
