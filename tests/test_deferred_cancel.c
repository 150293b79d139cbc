/* SPDX-License-Identifier: MIT */
/*
 * test_deferred_cancel.c - when a deferred response cannot be delivered
 * (appsrv.h): the cancel callback when the client leaves (also right after
 * its request, and never after the host finished), request views valid
 * until the host finishes, a stop that waits for the host, and
 * response_timeout_ms (503, then APPSRV_ECANCELED for the host). Host side
 * in tests/support/host.c.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>

#include "expect.h"
#include "host.h"
#include "routes.h"

static void start_defer(e2e_server_t *s, const appsrv_config_t *cfg, tctx_t *t, unsigned listeners)
{
    size_t n;
    const e2e_route_t *r = defer_routes(t, &n);
    start_srv(s, cfg, r, n, listeners);
}

/* GET /busy: stands for a loop busy with other work (a slow handler): it
 * holds the loop thread until the test has done its part (bounded). */
static int h_busy_until_flag(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    tctx_t *t = user;
    atomic_store(&t->flag_a, 1);
    int64_t end = e2e_now_ms() + 3000;
    while (!atomic_load(&t->flag_b) && e2e_now_ms() < end)
        poll(NULL, 0, 2);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "busy", 4);
}

/* GET /finish-held: closes the held request's client (via the test), then
 * finishes that response from this handler (appsrv_res_send: any thread). */
static int h_finish_held(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    tctx_t *t = user;
    atomic_store(&t->flag_a, 1);
    int64_t end = e2e_now_ms() + 3000;
    while (!atomic_load(&t->flag_b) && e2e_now_ms() < end)
        poll(NULL, 0, 2);
    /* the client's FIN is at the server socket now */
    slot_t *sl = &t->slots[1];
    int rc = appsrv_res_send(t->held);
    t->held = NULL;
    atomic_store(&sl->rc, rc);
    atomic_store(&sl->finished, 1);
    atomic_store(&t->held_rc, rc);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "finished", 8);
}

/* GET /hold: deferred, kept in t->held for /finish-held. */
static int h_hold(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    tctx_t *t = user;
    appsrv_res_set_status(res, 200);
    appsrv_res_set_body(res, "held", 4);
    appsrv_res_on_cancel(res, cancel_cb, &t->slots[1]);
    t->held = res;
    atomic_fetch_add(&t->handled, 1);
    return APPSRV_LATER;
}

/* Reads the 503 the library sends when the host is too slow. */
static void expect_503_close(e2e_conn_t *c, int timeout_ms)
{
    e2e_resp_t r;
    read_resp_t(c, &r, 0, timeout_ms);
    check_status(&r, 503, NULL);
    check_std_head(&r);
    const char *conn = e2e_resp_header(&r, "Connection");
    cr_assert(conn != NULL && strcasecmp(conn, "close") == 0, "503 without Connection: close");
    e2e_resp_free(&r);
    long extra = e2e_wait_closed(c, RD);
    cr_assert_eq(extra, 0, "after the 503: %ld (%s)", extra,
                 extra < 0 ? appsrv_strerror((int)extra) : "extra bytes");
}

Test(e2e_deferred, cancel_on_client_disconnect, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(4);
    cr_assert_not_null(t);
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_defer(&s, &cfg, t, E2E_HTTP);

    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /d?id=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_count(&t->handled, 1, RD, "handler");
    cr_assert(e2e_still_open(&c, 100), "answered before the host finished");
    cr_assert_eq(atomic_load(&t->slots[1].cancels), 0, "canceled while the client is there");
    int64_t t_close = e2e_now_ms();
    e2e_conn_close(&c);
    wait_count(&t->slots[1].cancels, 1, RD, "cancel callback after the client left");
    cr_assert_lt(atomic_load(&t->slots[1].t_cancel) - t_close, 1000 * e2e_slow_factor(),
                 "cancel came %lld ms after the close",
                 (long long)(atomic_load(&t->slots[1].t_cancel) - t_close));

    /* The host finishes anyway and is told the client is gone. */
    host_release_all(&t->host);
    wait_count(&t->host.ran, 1, RD, "host job");
    cr_assert_eq(atomic_load(&t->slots[1].rc), APPSRV_ECANCELED, "appsrv_res_send: %d",
                 atomic_load(&t->slots[1].rc));
    cr_assert_eq(atomic_load(&t->host.view_bad), 0, "request views changed after the client left");
    /* at most once */
    e2e_pause_ms(50);
    cr_assert_eq(atomic_load(&t->slots[1].cancels), 1);

    /* The server is fine. */
    e2e_resp_t r;
    open_conn(&c, s.port);
    send_str(&c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_body(&r, "fast");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

/*
 * Many clients leave (FIN or reset) while the host holds their responses,
 * some with bodies too big for the read buffer. The host then reads the
 * request views it kept (valid until it finishes res: under ASan a freed
 * buffer is caught here), builds responses and sends them: every send says
 * APPSRV_ECANCELED and nothing is written anywhere.
 */
Test(e2e_deferred, client_gone_before_completion_no_use_after_free, .timeout = 60)
{
    int n = SCALE(200, 40);
    cr_assert(raise_nofile((rlim_t)(2 * n + 256)));
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new((size_t)n);
    cr_assert_not_null(t);
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_defer(&s, &cfg, t, E2E_HTTP);

    size_t blen = 64 * KIB;
    unsigned char *body = malloc(blen);
    cr_assert_not_null(body);
    e2e_conn_t *cs = calloc((size_t)n, sizeof(*cs));
    cr_assert_not_null(cs);
    for (int i = 0; i < n; i++) {
        open_conn(&cs[i], s.port);
        char req[160];
        if (i % 2 == 0) {
            snprintf(req, sizeof(req), "GET /d?id=%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
            send_str(&cs[i], req);
        } else {
            e2e_fill_pattern(body, blen, (uint32_t)i + 1);
            snprintf(req, sizeof(req),
                     "POST /d?id=%d HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", i, blen);
            send_str(&cs[i], req);
            cr_assert_eq(e2e_send(&cs[i], body, blen), 0);
        }
    }
    free(body);
    wait_count(&t->handled, n, 20000, "deferring handlers");
    for (int i = 0; i < n; i++) {
        if (i % 3 == 0)
            e2e_conn_reset(&cs[i]);
        else
            e2e_conn_close(&cs[i]);
    }
    free(cs);
    wait_count(&t->cancels, n, 10000, "cancel callbacks");
    host_release_all(&t->host);
    wait_count(&t->host.ran, n, 20000, "host jobs");
    cr_assert_eq(atomic_load(&t->host.canceled), n, "ECANCELED %d of %d (ok %d, other %d)",
                 atomic_load(&t->host.canceled), n, atomic_load(&t->host.ok),
                 atomic_load(&t->host.other));
    cr_assert_eq(atomic_load(&t->host.view_bad), 0,
                 "%d requests' views changed after the "
                 "client left",
                 atomic_load(&t->host.view_bad));
    for (int i = 0; i < n; i++)
        cr_assert_eq(atomic_load(&t->slots[i].cancels), 1, "request %d canceled %d times", i,
                     atomic_load(&t->slots[i].cancels));

    e2e_conn_t c;
    e2e_resp_t r;
    open_conn(&c, s.port);
    send_str(&c, "GET /d?id=0&ms=0 HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_body(&r, "d 0");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

/*
 * A client that sends its request and closes at once (common for clients
 * that time out, and for fire-and-forget senders): the request and the FIN
 * reach the server together. The client is gone, so the cancel callback
 * must run (appsrv.h: "If the client disconnects ... the cancel callback
 * runs"), not only once the host finishes or response_timeout_ms passes.
 */
Test(e2e_deferred, client_closing_right_after_request_is_canceled, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(4);
    cr_assert_not_null(t);
    e2e_route_t routes[] = {
        {"GET", "/d", h_defer, t, false},
        {"GET", "/busy", h_busy_until_flag, t, false},
    };
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_HTTP);

    e2e_conn_t busy, c;
    open_conn(&busy, s.port);
    open_conn(&c, s.port);
    int sfd = wait_accepted(c.fd, RD);
    cr_assert_geq(sfd, 0, "server side of the connection not found");
    send_str(&busy, "GET /busy HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_count(&t->flag_a, 1, RD, "busy handler");
    /* While the loop is busy: the whole request, then the close. */
    send_str(&c, "GET /d?id=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_conn_close(&c);
    cr_assert(wait_peer_fin(sfd, RD), "the FIN did not reach the server socket");
    atomic_store(&t->flag_b, 1);
    e2e_resp_t r;
    read_resp(&busy, &r, 0);
    check_body(&r, "busy");
    e2e_resp_free(&r);
    e2e_conn_close(&busy);

    wait_count(&t->handled, 1, RD, "deferring handler");
    int got = e2e_wait_atomic(&t->slots[1].cancels, 1, 3000);
    /* Clean up either way, then judge. */
    host_release_all(&t->host);
    wait_count(&t->host.ran, 1, RD, "host job");
    int rc = atomic_load(&t->slots[1].rc);
    tctx_free(t);
    stop_srv(&s);
    expect_fds(fds0);
    cr_assert_eq(got, 1,
                 "client closed right after its request: no cancel callback within "
                 "3000 ms (the host was never told)");
    cr_assert_eq(rc, APPSRV_ECANCELED, "appsrv_res_send after the client left returned %d", rc);
}

/*
 * appsrv_res_on_cancel: the callback runs "when the client goes away ...
 * before res is finished". A host that finished res (appsrv_res_send
 * returned 0) has let go of it and may have freed the callback's ud, so a
 * cancel arriving after that must not run. The race (client leaves just as
 * the host finishes) is made deterministic by finishing from a handler on
 * the loop thread after the client's FIN has arrived.
 */
Test(e2e_deferred, cancel_not_called_after_host_finished, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(4);
    cr_assert_not_null(t);
    e2e_route_t routes[] = {
        {"GET", "/hold", h_hold, t, false},
        {"GET", "/finish-held", h_finish_held, t, false},
    };
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_HTTP);

    e2e_conn_t a, b;
    open_conn(&a, s.port);
    open_conn(&b, s.port);
    send_str(&a, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_count(&t->handled, 1, RD, "hold handler");
    int sfd = wait_accepted(a.fd, RD);
    cr_assert_geq(sfd, 0, "server side of the connection not found");
    send_str(&b, "GET /finish-held HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_count(&t->flag_a, 1, RD, "finishing handler");
    e2e_conn_close(&a);
    cr_assert(wait_peer_fin(sfd, RD), "the FIN did not reach the server socket");
    atomic_store(&t->flag_b, 1);
    e2e_resp_t r;
    read_resp(&b, &r, 0);
    check_body(&r, "finished");
    e2e_resp_free(&r);
    e2e_conn_close(&b);
    e2e_pause_ms(200); /* a late cancel would run within this */
    int held_rc = atomic_load(&t->held_rc);
    int late = atomic_load(&t->slots[1].cancel_after_finish);
    tctx_free(t);
    stop_srv(&s);
    expect_fds(fds0);
    cr_assert_eq(held_rc, 0, "appsrv_res_send returned %d", held_rc);
    cr_assert_eq(late, 0,
                 "the cancel callback ran after appsrv_res_send() had returned 0 "
                 "(res finished; its ud may be freed)");
}

Test(e2e_deferred, stop_waits_for_host_after_client_gone, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(4);
    cr_assert_not_null(t);
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_defer(&s, &cfg, t, E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /d?id=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_count(&t->handled, 1, RD, "handler");
    e2e_conn_close(&c);
    wait_count(&t->cancels, 1, RD, "cancel");
    e2e_server_request_stop(&s);
    /* The host still holds res (and req): run must wait for it. */
    cr_assert_eq(e2e_server_join(&s, 300), -ETIMEDOUT,
                 "run returned while the host still held a response");
    host_release_all(&t->host);
    wait_count(&t->host.ran, 1, RD, "host job");
    cr_assert_eq(e2e_server_join(&s, STOP_MS), 0, "run did not return after the host finished");
    cr_assert_eq(s.run_rc, 0);
    cr_assert_eq(atomic_load(&t->host.canceled), 1);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, response_timeout_503_then_send_ecanceled, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(4);
    cr_assert_not_null(t);
    appsrv_config_t cfg = timeout_cfg(300);
    e2e_server_t s;
    start_defer(&s, &cfg, t, E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    int64_t t0 = e2e_now_ms();
    send_str(&c, "GET /d?id=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_503_close(&c, 3000 * e2e_slow_factor());
    int64_t took = e2e_now_ms() - t0;
    cr_assert_geq(took, 290, "503 after %lld ms, before response_timeout_ms (300)",
                  (long long)took);
    e2e_conn_close(&c);
    wait_count(&t->slots[1].cancels, 1, RD, "cancel callback on the timeout");
    /* The host, later: told the response was canceled. */
    host_release_all(&t->host);
    wait_count(&t->host.ran, 1, RD, "host job");
    cr_assert_eq(atomic_load(&t->slots[1].rc), APPSRV_ECANCELED, "appsrv_res_send: %d",
                 atomic_load(&t->slots[1].rc));
    cr_assert_eq(atomic_load(&t->slots[1].cancels), 1);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

/*
 * Same, but the host finishes while the client still has the connection
 * open (it read the 503 and has not closed yet). The response must still
 * be released: appsrv_server_run() returns after a stop.
 */
Test(e2e_deferred, response_timeout_host_finishes_while_client_connected, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(4);
    cr_assert_not_null(t);
    appsrv_config_t cfg = timeout_cfg(300);
    e2e_server_t s;
    start_defer(&s, &cfg, t, E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /d?id=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_503_close(&c, 3000 * e2e_slow_factor());
    wait_count(&t->slots[1].cancels, 1, RD, "cancel callback");
    host_release_all(&t->host);
    wait_count(&t->host.ran, 1, RD, "host job");
    cr_assert_eq(atomic_load(&t->slots[1].rc), APPSRV_ECANCELED);
    e2e_conn_close(&c);
    /* run must return: nothing is in flight any more. */
    int rc = e2e_server_stop(&s, 5000);
    cr_assert_neq(rc, -ETIMEDOUT,
                  "appsrv_server_run did not return within 5 s of the stop: "
                  "the timed-out response the host finished was never released");
    cr_assert_eq(rc, 0);
    tctx_free(t);
    expect_fds(fds0);
}

/* The header allows the cancel callback to finish res itself. */
Test(e2e_deferred, response_timeout_cancel_callback_finishes_res, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(4);
    cr_assert_not_null(t);
    atomic_store(&t->send_in_cancel, true);
    appsrv_config_t cfg = timeout_cfg(300);
    e2e_server_t s;
    e2e_route_t routes[] = {{"GET", "/hold", h_hold, t, false}};
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_503_close(&c, 3000 * e2e_slow_factor());
    e2e_conn_close(&c);
    wait_count(&t->slots[1].cancels, 1, RD, "cancel callback");
    cr_assert_eq(atomic_load(&t->slots[1].rc), APPSRV_ECANCELED, "send in the cancel callback: %d",
                 atomic_load(&t->slots[1].rc));
    int rc = e2e_server_stop(&s, 5000);
    cr_assert_neq(rc, -ETIMEDOUT,
                  "appsrv_server_run did not return within 5 s of the stop: "
                  "the response finished in the cancel callback was never released");
    cr_assert_eq(rc, 0);
    tctx_free(t);
    expect_fds(fds0);
}

/*
 * response_timeout_ms bounds each deferred response, from when its own
 * handler ran: a pipelined second one gets its full time too.
 */
Test(e2e_deferred, response_timeout_counts_from_each_pipelined_request, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    int f = e2e_slow_factor() > 2 ? 2 : e2e_slow_factor();
    int lim = 1500 * f, d = 900 * f;
    tctx_t *t = tctx_new(4);
    cr_assert_not_null(t);
    appsrv_config_t cfg = timeout_cfg(lim);
    e2e_server_t s;
    start_defer(&s, &cfg, t, E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    char req[256];
    snprintf(req, sizeof(req),
             "GET /d?id=1&ms=%d HTTP/1.1\r\nHost: x\r\n\r\nGET /d?id=2&ms=%d HTTP/1.1\r\nHost: "
             "x\r\n\r\n",
             d, d);
    send_str(&c, req);
    e2e_resp_t r1, r2;
    read_resp_t(&c, &r1, 0, 3 * lim);
    int rc2 = e2e_read_response(&c, &r2, 3 * lim, 0);
    int st1 = r1.status, st2 = r2.status;
    e2e_resp_free(&r1);
    e2e_resp_free(&r2);
    e2e_conn_close(&c);
    host_release_all(&t->host);
    wait_count(&t->host.ran, 2, 3 * lim, "host jobs");
    tctx_free(t);
    stop_srv(&s);
    expect_fds(fds0);
    cr_assert_eq(st1, 200, "first: %d", st1);
    cr_assert_eq(rc2, 0, "second response: %s", appsrv_strerror(rc2));
    cr_assert_eq(st2, 200,
                 "the second deferred request got %d after %d ms of its own "
                 "(response_timeout_ms %d): its deadline was the first one's",
                 st2, d, lim);
}

/* Once a stream's head is out, the response timeout no longer applies. */
Test(e2e_deferred, response_timeout_not_applied_to_started_stream, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(2);
    cr_assert_not_null(t);
    static const char *const parts[] = {"one,", "two,", "three", NULL};
    parts_t p;
    memset(&p, 0, sizeof(p));
    p.parts = parts;
    p.gap_ms = 250; /* 500 ms in all, response_timeout_ms 200 */
    t->arg = &p;
    appsrv_config_t cfg = timeout_cfg(200);
    e2e_route_t routes[] = {{"GET", "/s", h_stream_parts, t, false}};
    e2e_server_t s;
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    e2e_resp_t r;
    open_conn(&c, s.port);
    send_str(&c, "GET /s HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_status(&r, 200, NULL);
    cr_assert(r.chunked);
    check_body(&r, "one,two,three");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    wait_count(&t->host.ran, 1, RD, "producer");
    cr_assert_eq(atomic_load(&p.write_bad), 0);
    cr_assert_eq(atomic_load(&p.end_rc), 0);
    cr_assert_eq(atomic_load(&t->cancels), 0);
    tctx_free(t);
    stop_and_check(&s, fds0);
}
