/* SPDX-License-Identifier: MIT */
/*
 * test_body_stop.c - a graceful stop tells a streamed request body
 * (appsrv_route_ex() .stream_body, appsrv_req_body_stream()): over
 * loopback a client sends half a body (Content-Length or chunked) and
 * stalls, or the handler paused the body with APPSRV_PAUSE; the test
 * calls appsrv_server_stop() and checks that the body callback gets its
 * last call with -ESHUTDOWN long before the drain timeout, that no body
 * call follows, that the handler's 503 reaches the client with the
 * connection closed after it, and that appsrv_server_run() returns.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "e2e.h"

#define DRAIN_TIMEOUT_MS 60000 /* far beyond every bound below */

typedef struct body_state {
    appsrv_res_t *res;
    bool pause;               /* APPSRV_PAUSE on the first piece */
    atomic_int bytes;         /* body bytes delivered */
    atomic_int end;           /* the last call's end (0: none yet) */
    atomic_int after_end;     /* calls after the last one (must stay 0) */
    atomic_int stop_cb_calls; /* appsrv_res_on_stop() calls */
} body_state_t;

static body_state_t st;

static int on_body(appsrv_req_t *req, const void *data, size_t len, int end, void *ud)
{
    (void)req;
    (void)data;
    body_state_t *s = ud;
    if (atomic_load(&s->end) != 0) {
        atomic_fetch_add(&s->after_end, 1);
        return -1;
    }
    if (end == 0) {
        atomic_fetch_add(&s->bytes, (int)len);
        return s->pause ? APPSRV_PAUSE : 0;
    }
    if (end != APPSRV_ECANCELED) {
        /* The answer a host gives when the server goes away mid-upload. */
        appsrv_res_set_status(s->res, end == -ESHUTDOWN ? 503 : end == 1 ? 200 : 400);
        appsrv_res_printf(s->res, "end=%d bytes=%d", end, atomic_load(&s->bytes));
        appsrv_res_send(s->res);
    } else {
        appsrv_res_send(s->res);
    }
    atomic_store(&s->end, end);
    return 0;
}

static void on_stop(appsrv_res_t *res, void *ud)
{
    (void)res;
    atomic_fetch_add(&((body_state_t *)ud)->stop_cb_calls, 1);
}

static int h_upload(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    body_state_t *s = user;
    s->res = res;
    cr_assert_eq(appsrv_req_body_stream(req, on_body, s), 0);
    appsrv_res_on_stop(res, on_stop, s);
    return APPSRV_LATER;
}

/* The handler POST /upload gets (h_upload, or h_quiet below). */
static appsrv_handler_cb upload_handler;

static int setup(appsrv_server_t *srv, void *arg)
{
    appsrv_route_opts_t o = {.stream_body = true};
    return appsrv_route_ex(srv, "POST", "/upload", upload_handler, &o, arg);
}

static e2e_server_t srv;

/* A server whose POST /upload runs handler; grace_ms: the idle grace
 * (0: the default). */
static void start_with(appsrv_handler_cb handler, bool pause, int grace_ms)
{
    memset(&st, 0, sizeof(st));
    st.pause = pause;
    upload_handler = handler;
    appsrv_config_t cfg = base_cfg();
    cfg.drain_timeout_ms = DRAIN_TIMEOUT_MS;
    if (grace_ms > 0)
        cfg.drain_idle_grace_ms = grace_ms;
    cr_assert_eq(e2e_server_start_with(&srv, &cfg, NULL, 0, E2E_HTTP, setup, &st), 0);
}

static void start(bool pause)
{
    start_with(h_upload, pause, 0);
}

/* Sends the head and half of a 2,000-byte body (Content-Length, or one
 * chunk of a chunked body), waits until the callback has it, stops the
 * server and checks everything the stop must bring. */
static void half_body_then_stop(bool chunked)
{
    int bound = 3000 * e2e_slow_factor();
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, srv.port), 0);
    char half[1000];
    memset(half, 'a', sizeof(half));
    if (chunked)
        cr_assert_eq(e2e_sends(&c, "POST /upload HTTP/1.1\r\nHost: x\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n3e8\r\n"),
                     0);
    else
        cr_assert_eq(e2e_sends(&c, "POST /upload HTTP/1.1\r\nHost: x\r\n"
                                   "Content-Length: 2000\r\n\r\n"),
                     0);
    cr_assert_eq(e2e_send(&c, half, sizeof(half)), 0);
    int got = e2e_wait_atomic(&st.bytes, (int)sizeof(half), bound);
    cr_assert_eq(got, (int)sizeof(half), "the callback has %d of %zu body bytes after %d ms",
                 got, sizeof(half), bound);

    int64_t t0 = e2e_now_ms();
    e2e_server_request_stop(&srv);
    /* The stop code, while the drain timeout is a minute away. */
    int64_t dl = t0 + bound;
    while (atomic_load(&st.end) == 0 && e2e_now_ms() < dl)
        e2e_pause_ms(2);
    int end = atomic_load(&st.end);
    cr_assert_eq(end, -ESHUTDOWN,
                 "body end %d (%s) %lld ms after the stop, want -ESHUTDOWN; bytes %d", end,
                 end ? appsrv_errname(end) : "no last call yet", (long long)(e2e_now_ms() - t0),
                 atomic_load(&st.bytes));

    /* The rest of the body reaches no callback (the socket may be
     * closed already: the send's result does not matter). */
    (void)e2e_send(&c, half, sizeof(half));
    e2e_resp_t r;
    int rc = e2e_read_response(&c, &r, bound, 0);
    cr_assert_eq(rc, 0, "the handler's answer did not arrive: %s", e2e_errname(rc));
    cr_expect_eq(r.status, 503);
    char want[64];
    snprintf(want, sizeof(want), "end=%d bytes=1000", -ESHUTDOWN);
    cr_expect_str_eq(r.body, want);
    cr_expect(e2e_resp_closes(&r), "the answer does not say Connection: close");
    e2e_resp_free(&r);
    long more = e2e_wait_closed(&c, bound);
    cr_expect_eq(more, 0, "after the answer: %ld more bytes, or no close within %d ms", more,
                 bound);
    e2e_conn_close(&c);

    cr_assert_eq(e2e_server_join(&srv, bound), 0,
                 "appsrv_server_run() did not return within %d ms of the stop (drain timeout %d)",
                 bound, DRAIN_TIMEOUT_MS);
    cr_expect_eq(srv.run_rc, 0);
    cr_expect_eq(atomic_load(&st.after_end), 0, "body calls after the last one");
    /* Answered inside the body's last call: no stop notification left. */
    cr_expect_eq(atomic_load(&st.stop_cb_calls), 0);
    appsrv_server_free(srv.srv);
}

TestSuite(body_stop, .timeout = 120);

Test(body_stop, half_body_content_length)
{
    start(false);
    half_body_then_stop(false);
}

Test(body_stop, half_body_chunked)
{
    start(false);
    half_body_then_stop(true);
}

Test(body_stop, paused_body)
{
    start(true);
    half_body_then_stop(false);
}

/* The handler answers later (another thread's job, here the stop
 * notification): the body's last call comes first, then on_stop. */
static int on_body_quiet(appsrv_req_t *req, const void *data, size_t len, int end, void *ud)
{
    (void)req;
    (void)data;
    body_state_t *s = ud;
    if (atomic_load(&s->end) != 0)
        atomic_fetch_add(&s->after_end, 1);
    if (end == 0)
        atomic_fetch_add(&s->bytes, (int)len);
    else
        atomic_store(&s->end, end);
    return 0;
}

static void on_stop_answer(appsrv_res_t *res, void *ud)
{
    body_state_t *s = ud;
    atomic_fetch_add(&s->stop_cb_calls, 1);
    appsrv_res_set_status(res, 503);
    appsrv_res_printf(res, "stop after end=%d", atomic_load(&s->end));
    appsrv_res_send(res);
}

static int h_quiet(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    cr_assert_eq(appsrv_req_body_stream(req, on_body_quiet, user), 0);
    appsrv_res_on_stop(res, on_stop_answer, user);
    return APPSRV_LATER;
}

Test(body_stop, on_stop_follows_the_body_end)
{
    int bound = 3000 * e2e_slow_factor();
    start_with(h_quiet, false, 0);
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, srv.port), 0);
    cr_assert_eq(e2e_sends(&c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
                               "12345"),
                 0);
    cr_assert_eq(e2e_wait_atomic(&st.bytes, 5, bound), 5, "bytes %d", atomic_load(&st.bytes));
    e2e_server_request_stop(&srv);
    e2e_resp_t r;
    int rc = e2e_read_response(&c, &r, bound, 0);
    cr_assert_eq(rc, 0, "no answer after the stop: %s (end %d, on_stop calls %d)",
                 e2e_errname(rc), atomic_load(&st.end), atomic_load(&st.stop_cb_calls));
    cr_expect_eq(r.status, 503);
    char want[64];
    snprintf(want, sizeof(want), "stop after end=%d", -ESHUTDOWN);
    cr_expect_str_eq(r.body, want);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_join(&srv, bound), 0, "run did not return within %d ms", bound);
    cr_expect_eq(atomic_load(&st.stop_cb_calls), 1);
    cr_expect_eq(atomic_load(&st.after_end), 0);
    appsrv_server_free(srv.srv);
}

/* A body whose handler runs once the drain has begun (a keep-alive
 * connection's next request, within drain_idle_grace_ms): the stop code
 * comes right after the handler returns. */
Test(body_stop, request_after_the_drain_began)
{
    int bound = 3000 * e2e_slow_factor();
    start_with(h_upload, false, 30000); /* the test sends well within the grace */
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, srv.port), 0);
    cr_assert_eq(e2e_sends(&c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"),
                 0);
    e2e_resp_t r;
    int rc = e2e_read_response(&c, &r, bound, 0);
    cr_assert_eq(rc, 0, "first request: %s", e2e_errname(rc));
    cr_assert_eq(r.status, 200, "first request: %d %s", r.status, r.body);
    e2e_resp_free(&r);
    cr_assert_eq(atomic_load(&st.end), 1);
    atomic_store(&st.end, 0);
    atomic_store(&st.bytes, 0);

    e2e_server_request_stop(&srv);
    e2e_pause_ms(50); /* the worker begins the drain; the connection is idle */
    cr_assert_eq(e2e_sends(&c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n"
                               "half"),
                 0);
    rc = e2e_read_response(&c, &r, bound, 0);
    cr_assert_eq(rc, 0, "no answer to the request sent in the drain: %s (end %d)",
                 e2e_errname(rc), atomic_load(&st.end));
    cr_expect_eq(r.status, 503, "%d %s", r.status, r.body);
    cr_expect_eq(atomic_load(&st.end), -ESHUTDOWN);
    cr_expect(e2e_resp_closes(&r));
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_join(&srv, bound), 0, "run did not return within %d ms", bound);
    cr_expect_eq(atomic_load(&st.after_end), 0);
    appsrv_server_free(srv.srv);
}
