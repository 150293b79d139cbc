/* SPDX-License-Identifier: MIT */
/*
 * test_deploy_drain.c - the graceful stop as load balancers expect it,
 * in process (README "Deploying"): during drain_delay_ms the server is
 * draining yet still accepts and keeps connections alive; after it, a
 * request sent by an idle keep-alive connection within the idle grace is
 * answered with Connection: close; after the grace the idle connection
 * is closed (EOF, no reset); a stop before run keeps its delay; an
 * unreachable NOTIFY_SOCKET is reported as the notify_error event. Raw
 * clients on loopback; timing checks are one-sided (never "too late").
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "expect.h"
#include "routes.h"

TestSuite(deploy_drain, .timeout = 30);

static void get_hello(e2e_conn_t *c, bool want_close)
{
    e2e_resp_t r;
    send_str(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(c, &r, 0);
    check_hello(&r);
    const char *conn = e2e_resp_header(&r, "connection");
    if (want_close)
        cr_assert(conn != NULL && strcasecmp(conn, "close") == 0, "no Connection: close");
    else
        cr_assert(conn == NULL || strcasecmp(conn, "close") != 0,
                  "Connection: close during the drain delay");
    e2e_resp_free(&r);
}

Test(deploy_drain, delay_keeps_serving_then_stops)
{
    e2e_server_t s;
    e2e_conn_t ka;
    appsrv_config_t cfg = base_cfg();
    cfg.drain_delay_ms = 400;
    int fds0 = start_base_conn(&s, &cfg, &ka);
    get_hello(&ka, false);
    int64_t t0 = e2e_now_ms();
    cr_assert(!appsrv_server_draining(s.srv));
    e2e_server_request_stop(&s);
    cr_assert(appsrv_server_draining(s.srv), "not draining right after stop");
    for (int i = 0; i < 3; i++) {
        e2e_conn_t c;
        open_conn(&c, s.port); /* still accepted */
        get_hello(&c, false);
        e2e_conn_close(&c);
        get_hello(&ka, false); /* still keep-alive */
    }
    cr_assert_lt(e2e_now_ms() - t0, 400, "the loop took the whole delay: nothing shown");
    cr_assert_eq(e2e_server_join(&s, STOP_MS), 0, "run did not return");
    cr_assert_geq(e2e_now_ms() - t0, 400, "run returned before the drain delay ended");
    expect_closed(&ka, RD);
    e2e_conn_close(&ka);
    appsrv_server_free(s.srv);
    expect_fds(fds0);
}

Test(deploy_drain, idle_conn_answered_in_grace_then_closed)
{
    e2e_server_t s;
    e2e_conn_t a, b;
    appsrv_config_t cfg = base_cfg();
    cfg.drain_idle_grace_ms = 1000;
    int fds0 = start_base_conn(&s, &cfg, &a);
    open_conn(&b, s.port);
    get_hello(&a, false);
    get_hello(&b, false);
    e2e_server_request_stop(&s);
    usleep(100 * 1000); /* the drain has begun (one-sided: the grace is 1 s) */
    get_hello(&a, true);  /* in the grace: answered, then closed */
    expect_closed(&a, RD);
    expect_closed(&b, 5000); /* b said nothing: closed after the grace */
    cr_assert_eq(e2e_server_join(&s, STOP_MS), 0);
    e2e_conn_close(&a);
    e2e_conn_close(&b);
    appsrv_server_free(s.srv);
    expect_fds(fds0);
}

Test(deploy_drain, stop_before_run_keeps_the_delay)
{
    appsrv_config_t cfg = base_cfg();
    cfg.drain_delay_ms = 300;
    appsrv_server_t *srv;
    cr_assert_eq(appsrv_server_new(&srv, &cfg), 0);
    cr_assert_gt(appsrv_listen_http(srv, "127.0.0.1", 0), 0);
    appsrv_server_stop(srv);
    int64_t t0 = e2e_now_ms();
    cr_assert_eq(appsrv_server_run(srv), 0);
    cr_assert_geq(e2e_now_ms() - t0, 300, "the delay was skipped");
    appsrv_server_free(srv);
}

static atomic_int g_notify_errors;
static char g_detail[64];

static void on_event(const appsrv_event_t *ev, void *user)
{
    (void)user;
    if (strcmp(ev->name, "notify_error") == 0 && ev->err < 0) {
        snprintf(g_detail, sizeof(g_detail), "%s", ev->detail);
        atomic_fetch_add(&g_notify_errors, 1);
    }
}

Test(deploy_drain, unreachable_notify_socket_is_an_event)
{
    setenv("NOTIFY_SOCKET", "/nonexistent-dir/notify.sock", 1);
    e2e_server_t s;
    appsrv_config_t cfg = base_cfg();
    cfg.sd_notify = true;
    cfg.on_event = on_event;
    start_base(&s, &cfg);
    wait_count(&g_notify_errors, 1, RD, "the notify_error event for READY=1");
    cr_assert_str_eq(g_detail, "READY=1");
    stop_srv(&s);
    cr_assert_eq(atomic_load(&g_notify_errors), 2, "STOPPING=1 not reported");
    cr_assert_str_eq(g_detail, "STOPPING=1");
}
