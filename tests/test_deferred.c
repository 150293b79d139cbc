/* SPDX-License-Identifier: MIT */
/*
 * test_deferred.c - deferred responses end to end (appsrv.h
 * "deferred responses"; issue 8): finished from the host thread (also
 * large, pipelined behind others, a thousand at once while fast requests
 * stay fast), a graceful stop that waits for them or cancels them at the
 * drain timeout, and deferred line-protocol replies. The host side is
 * tests/support/host.c.
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

typedef struct prober {
    int port;
    atomic_bool stop;
    atomic_int count, errors;
    _Atomic int64_t max_ms;
} prober_t;

/* Keeps asking GET /fast on its own connection and records the slowest. */
static void *prober_main(void *arg)
{
    prober_t *p = arg;
    e2e_conn_t c;
    if (e2e_conn_open(&c, p->port) < 0) {
        atomic_fetch_add(&p->errors, 1);
        return NULL;
    }
    while (!atomic_load(&p->stop)) {
        int64_t t0 = e2e_now_ms();
        e2e_resp_t r;
        if (e2e_sends(&c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n") < 0 ||
            e2e_read_response(&c, &r, RD, 0) < 0) {
            atomic_fetch_add(&p->errors, 1);
            e2e_resp_free(&r);
            break;
        }
        int64_t dt = e2e_now_ms() - t0;
        if (r.status != 200 || r.body_len != 4)
            atomic_fetch_add(&p->errors, 1);
        e2e_resp_free(&r);
        if (dt > atomic_load(&p->max_ms))
            atomic_store(&p->max_ms, dt);
        atomic_fetch_add(&p->count, 1);
        e2e_pause_ms(2);
    }
    e2e_conn_close(&c);
    return NULL;
}

Test(e2e_deferred, completed_from_host_thread, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(4);
    cr_assert_not_null(t);
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_defer(&s, &cfg, t, E2E_HTTP);

    e2e_conn_t c;
    e2e_resp_t r;
    open_conn(&c, s.port);
    int64_t t0 = e2e_now_ms();
    send_str(&c, "GET /d?id=1&ms=150 HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    int64_t took = e2e_now_ms() - t0;
    check_status(&r, 200, NULL);
    check_std_head(&r);
    check_body(&r, "d 1");
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Length"), "3");
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Type"), "text/plain");
    cr_assert_null(e2e_resp_header(&r, "Connection"), "keep-alive after a deferred response");
    cr_assert_geq(took, 150, "answered after %lld ms, before the host finished (150 ms)",
                  (long long)took);
    e2e_resp_free(&r);

    /* The same connection goes on: finished at once by the host (before
     * the handler may even have returned), then built in the handler. */
    send_str(&c, "GET /d?id=2&ms=0 HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_status(&r, 200, NULL);
    check_body(&r, "d 2");
    e2e_resp_free(&r);
    send_str(&c, "GET /d?id=3&ms=20&mode=h HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_body(&r, "d 3");
    e2e_resp_free(&r);
    /* HEAD on the deferred route: the head a GET would get, no body. */
    send_str(&c, "HEAD /d?id=1&ms=10 HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, E2E_RESP_HEAD);
    check_status(&r, 200, NULL);
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Length"), "3");
    e2e_resp_free(&r);
    send_str(&c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_body(&r, "fast");
    e2e_resp_free(&r);
    e2e_conn_close(&c);

    wait_count(&t->host.ran, 4, RD, "host jobs run");
    cr_assert_eq(atomic_load(&t->host.ok), 4,
                 "appsrv_res_send returned 0 %d times of 4 "
                 "(ESTATE %d, CANCELED %d, other %d)",
                 atomic_load(&t->host.ok), atomic_load(&t->host.estate),
                 atomic_load(&t->host.canceled), atomic_load(&t->host.other));
    cr_assert_eq(atomic_load(&t->host.view_bad), 0, "request views changed before finish");
    cr_assert_eq(atomic_load(&t->cancels), 0, "cancel callback without a cancel");
    tctx_free(t);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, large_body_from_host_thread, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(2);
    cr_assert_not_null(t);
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_defer(&s, &cfg, t, E2E_HTTP);
    e2e_conn_t c;
    e2e_resp_t r;
    open_conn(&c, s.port);
    /* 3 MiB set on the host thread: sent past the socket buffer. */
    size_t big = 3 * MIB;
    char req[128];
    snprintf(req, sizeof(req), "GET /d?id=1&ms=10&big=%zu HTTP/1.1\r\nHost: x\r\n\r\n", big);
    send_str(&c, req);
    read_resp_t(&c, &r, 0, 20000);
    check_status(&r, 200, NULL);
    cr_assert_eq(r.body_len, big);
    for (size_t i = 0; i < big; i++)
        if ((unsigned char)r.body[i] != pat_at(i))
            cr_assert_fail("body differs at byte %zu", i);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, pipelined_behind_deferred_in_order, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(8);
    cr_assert_not_null(t);
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_defer(&s, &cfg, t, E2E_HTTP);

    e2e_conn_t c;
    e2e_resp_t r;
    open_conn(&c, s.port);
    /* Later ones would be ready first: order is the connection's. */
    int64_t t0 = e2e_now_ms();
    send_str(&c, "GET /d?id=1&ms=300 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /d?id=2&ms=0 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /d?id=3&ms=50&mode=h HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                 "GET /d?id=4&ms=20&big=5000 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    int64_t first = e2e_now_ms() - t0;
    check_body(&r, "d 1");
    e2e_resp_free(&r);
    cr_assert_geq(first, 300, "first answer after %lld ms", (long long)first);
    read_resp(&c, &r, 0);
    check_body(&r, "fast");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_body(&r, "d 2");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_body(&r, "d 3");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 200, NULL);
    cr_assert_eq(r.body_len, 5000);
    for (size_t i = 0; i < 5000; i++)
        cr_assert_eq((unsigned char)r.body[i], pat_at(i), "big body differs at %zu", i);
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_body(&r, "fast");
    e2e_resp_free(&r);
    cr_assert(e2e_still_open(&c, 100), "connection closed or extra bytes after the batch");
    e2e_conn_close(&c);

    wait_count(&t->host.ran, 4, RD, "host jobs");
    cr_assert_eq(atomic_load(&t->host.ok), 4);
    cr_assert_eq(atomic_load(&t->host.view_bad), 0, "request views changed while pipelined");
    tctx_free(t);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, thousand_delayed_while_fast_stay_fast, .timeout = 180)
{
    int n = SCALE(1000, 100);
    if (!raise_nofile((rlim_t)(2 * n + 256))) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        int fit = (int)((rl.rlim_cur - 256) / 2);
        cr_log_info("RLIMIT_NOFILE %llu: %d connections instead of %d",
                    (unsigned long long)rl.rlim_cur, fit, n);
        n = fit;
    }
    int delay = SCALE(1000, 3000);
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new((size_t)n);
    cr_assert_not_null(t);
    appsrv_config_t cfg = base_cfg();
    cfg.threads = 2; /* completions cross to both workers' queues */
    e2e_server_t s;
    start_defer(&s, &cfg, t, E2E_HTTP);

    e2e_conn_t *cs = calloc((size_t)n, sizeof(*cs));
    cr_assert_not_null(cs);
    for (int i = 0; i < n; i++)
        open_conn(&cs[i], s.port);

    prober_t pr;
    memset(&pr, 0, sizeof(pr));
    pr.port = s.port;
    pthread_t pth;
    cr_assert_eq(pthread_create(&pth, NULL, prober_main, &pr), 0);

    int64_t t0 = e2e_now_ms();
    for (int i = 0; i < n; i++) {
        char req[96];
        snprintf(req, sizeof(req), "GET /d?id=%d&ms=%d HTTP/1.1\r\nHost: x\r\n\r\n", i, delay);
        send_str(&cs[i], req);
    }
    wait_count(&t->handled, n, 30000, "deferring handlers run");
    int handled_ms = (int)(e2e_now_ms() - t0);
    /* All n are pending now; the prober keeps measuring through the burst
     * of completions below. */
    int64_t first_ms = -1;
    for (int i = 0; i < n; i++) {
        e2e_resp_t r;
        read_resp_t(&cs[i], &r, 0, delay + 20000);
        if (first_ms < 0)
            first_ms = e2e_now_ms() - t0;
        check_status(&r, 200, NULL);
        char want[32];
        snprintf(want, sizeof(want), "d %d", i);
        check_body(&r, want);
        e2e_resp_free(&r);
    }
    int all_ms = (int)(e2e_now_ms() - t0);
    /* Keep-alive goes on after a deferred answer. */
    for (int i = 0; i < n; i++) {
        e2e_resp_t r;
        send_str(&cs[i], "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
        read_resp(&cs[i], &r, 0);
        check_body(&r, "fast");
        e2e_resp_free(&r);
    }
    atomic_store(&pr.stop, true);
    pthread_join(pth, NULL);
    for (int i = 0; i < n; i++)
        e2e_conn_close(&cs[i]);
    free(cs);

    cr_log_info("%d deferred: handled in %d ms, all answered in %d ms; prober %d requests, "
                "slowest %lld ms",
                n, handled_ms, all_ms, atomic_load(&pr.count), (long long)atomic_load(&pr.max_ms));
    cr_assert_geq(first_ms, delay, "an answer came after %lld ms, before its host delay %d",
                  (long long)first_ms, delay);
    cr_assert_eq(atomic_load(&pr.errors), 0, "fast requests failed while deferred were pending");
    cr_assert_geq(atomic_load(&pr.count), 10, "only %d fast requests", atomic_load(&pr.count));
    int bound = 250 * e2e_slow_factor();
    cr_assert_lt(atomic_load(&pr.max_ms), bound,
                 "a fast request took %lld ms while %d deferred were pending (bound %d ms)",
                 (long long)atomic_load(&pr.max_ms), n, bound);
    wait_count(&t->host.ran, n, RD, "host jobs");
    cr_assert_eq(atomic_load(&t->host.ok), n);
    cr_assert_eq(atomic_load(&t->cancels), 0);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, stop_waits_for_deferred_response, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(2);
    cr_assert_not_null(t);
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_defer(&s, &cfg, t, E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /d?id=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_count(&t->handled, 1, RD, "handler");
    e2e_server_request_stop(&s);
    cr_assert_eq(e2e_server_join(&s, 300), -ETIMEDOUT,
                 "run returned with a deferred response in flight");
    cr_assert_eq(atomic_load(&t->cancels), 0, "canceled before drain_timeout_ms");
    host_release_all(&t->host);
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 200, NULL);
    check_body(&r, "d 1");
    const char *conn = e2e_resp_header(&r, "Connection");
    cr_assert(conn != NULL && strcasecmp(conn, "close") == 0,
              "no Connection: close while stopping");
    e2e_resp_free(&r);
    cr_assert_geq(e2e_wait_closed(&c, RD), 0);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_join(&s, STOP_MS), 0, "run did not return after the host finished");
    cr_assert_eq(s.run_rc, 0);
    wait_count(&t->host.ran, 1, RD, "host job");
    cr_assert_eq(atomic_load(&t->host.ok), 1);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, stop_cancels_deferred_after_drain_timeout, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(2);
    cr_assert_not_null(t);
    atomic_store(&t->release_on_cancel, true); /* the host finishes when told */
    appsrv_config_t cfg = base_cfg();
    cfg.drain_timeout_ms = 300;
    e2e_server_t s;
    start_defer(&s, &cfg, t, E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /d?id=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_count(&t->handled, 1, RD, "handler");
    int64_t t_stop = e2e_now_ms();
    e2e_server_request_stop(&s);
    cr_assert_eq(e2e_server_join(&s, STOP_MS), 0, "run did not return after drain_timeout_ms");
    int64_t took = e2e_now_ms() - t_stop;
    cr_assert_eq(s.run_rc, 0);
    cr_assert_eq(atomic_load(&t->slots[1].cancels), 1, "no cancel callback at the drain timeout");
    int64_t at = atomic_load(&t->slots[1].t_cancel) - t_stop;
    cr_assert_geq(at, 290, "canceled %lld ms after the stop (drain_timeout_ms 300)", (long long)at);
    /* run returned only after the host finished */
    cr_assert_eq(atomic_load(&t->slots[1].finishing), 1,
                 "run returned before the host finished res");
    wait_count(&t->host.ran, 1, RD, "host job");
    cr_assert_eq(atomic_load(&t->slots[1].rc), APPSRV_ECANCELED);
    cr_assert_lt(took, 5000 * e2e_slow_factor());
    long extra = e2e_wait_closed(&c, RD);
    cr_assert_geq(extra, 0, "connection still open after run returned");
    e2e_conn_close(&c);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, line_deferred_pipelined_in_order, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(4);
    cr_assert_not_null(t);
    e2e_route_t routes[] = {
        {NULL, "SLOW", l_slow, t, true},
        {NULL, "PING", l_ping, t, true},
    };
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_LINE);
    e2e_conn_t c;
    open_conn(&c, s.line_port);
    int64_t t0 = e2e_now_ms();
    send_str(&c, "SLOW 1 300\nPING\r\nSLOW 2 0\nPING\nSLOW 3 30\n");
    static const char *const want[] = {"200 OK slow 1", "200 OK PONG", "200 OK slow 2",
                                       "200 OK PONG", "200 OK slow 3"};
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        char line[128];
        int n = e2e_read_line(&c, line, sizeof(line), RD);
        cr_assert_geq(n, 0, "line %zu: %s", i, appsrv_strerror(n));
        cr_assert_str_eq(line, want[i], "reply %zu", i);
        if (i == 0)
            cr_assert_geq(e2e_now_ms() - t0, 300, "first reply before the host finished");
    }
    cr_assert(e2e_still_open(&c, 100));
    e2e_conn_close(&c);
    wait_count(&t->host.ran, 3, RD, "host jobs");
    cr_assert_eq(atomic_load(&t->host.ok), 3);
    cr_assert_eq(atomic_load(&t->host.view_bad), 0, "line views changed while deferred");
    tctx_free(t);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, line_deferred_client_gone, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(4);
    cr_assert_not_null(t);
    e2e_route_t routes[] = {{NULL, "SLOW", l_slow, t, true}, {NULL, "PING", l_ping, t, true}};
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_LINE);
    e2e_conn_t c;
    open_conn(&c, s.line_port);
    send_str(&c, "SLOW 1\nPING\n");
    wait_count(&t->handled, 1, RD, "handler");
    e2e_conn_close(&c);
    wait_count(&t->slots[1].cancels, 1, RD, "cancel callback");
    host_release_all(&t->host);
    wait_count(&t->host.ran, 1, RD, "host");
    cr_assert_eq(atomic_load(&t->slots[1].rc), APPSRV_ECANCELED);
    cr_assert_eq(atomic_load(&t->host.view_bad), 0);
    open_conn(&c, s.line_port);
    send_str(&c, "PING\n");
    char line[64];
    cr_assert_geq(e2e_read_line(&c, line, sizeof(line), RD), 0);
    cr_assert_str_eq(line, "200 OK PONG");
    e2e_conn_close(&c);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, line_response_timeout_503, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(4);
    cr_assert_not_null(t);
    e2e_route_t routes[] = {{NULL, "SLOW", l_slow, t, true}};
    appsrv_config_t cfg = timeout_cfg(300);
    e2e_server_t s;
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_LINE);
    e2e_conn_t c;
    open_conn(&c, s.line_port);
    send_str(&c, "SLOW 1\n");
    char line[128];
    int n = e2e_read_line(&c, line, sizeof(line), 3000 * e2e_slow_factor());
    cr_assert_geq(n, 0, "no reply: %s", appsrv_strerror(n));
    cr_assert_str_eq(line, "503 Service Unavailable");
    cr_assert_geq(e2e_wait_closed(&c, RD), 0, "not closed after the 503");
    e2e_conn_close(&c);
    wait_count(&t->slots[1].cancels, 1, RD, "cancel callback");
    host_release_all(&t->host);
    wait_count(&t->host.ran, 1, RD, "host");
    cr_assert_eq(atomic_load(&t->slots[1].rc), APPSRV_ECANCELED);
    tctx_free(t);
    stop_and_check(&s, fds0);
}
