/* SPDX-License-Identifier: MIT */
/*
 * test_http_stop.c - graceful stop end to end (README "Server behaviour and limits"): an in-flight
 * response and a request with a partial body finish, idle connections and
 * the listener close at once, stop before run, many idle connections, and
 * appsrv_server_stop() from a signal handler (raised, and on the loop
 * thread). In-process server, raw clients.
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

#include "expect.h"
#include "routes.h"

static appsrv_server_t *volatile g_sig_srv;

static void on_sigusr1(int sig)
{
    (void)sig;
    appsrv_server_stop(g_sig_srv);
}

static void stop_by_signal(bool to_server_thread)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    send_str(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);

    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR1, &sa, &old), 0);
    g_sig_srv = s.srv;
    if (to_server_thread)
        cr_assert_eq(pthread_kill(s.thread, SIGUSR1), 0);
    else
        cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(e2e_server_join(&s, 5000), 0, "run did not return after the signal");
    cr_assert_eq(s.run_rc, 0);
    sigaction(SIGUSR1, &old, NULL);
    expect_closed(&c, 2000);
    appsrv_server_free(s.srv);
    e2e_conn_close(&c);
    expect_fds(fds0);
}

Test(e2e_http, graceful_stop_finishes_inflight_response, .timeout = 90)
{
    appsrv_config_t cfg = base_cfg();
    cfg.drain_timeout_ms = 30000; /* the drain must end on its own, early */
    int fds0 = e2e_fd_count();
    ref_ctx_t big;
    ref_init(&big, SCALE(32 * MIB, 16 * MIB), 13); /* >> socket buffers */
    const e2e_route_t routes[] = {
        {"GET", "/big", h_ref, &big, false},
        {"GET", "/hello", h_hello, NULL, false},
    };
    e2e_server_t s;
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t busy, idle;
    open_conn(&busy, s.port);
    open_conn(&idle, s.port);
    e2e_resp_t r;
    send_str(&idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&idle, &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);
    send_str(&busy, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(e2e_wait_atomic(&big.calls, 1, 3000), 1);
    /* The busy client has read nothing yet: its receive window stays
     * small, so the response is certainly still being written. */
    e2e_pause_ms(50);
    cr_assert_eq(atomic_load(&big.freed), 0, "response finished before the stop");

    e2e_server_request_stop(&s); /* from another thread than run's */
    /* The idle connection is closed at once, silently. */
    expect_closed(&idle, 3000);
    /* No new connections: the listener is gone. */
    int fd = appsrv_connect("127.0.0.1", s.port, 1000);
    if (fd >= 0) {
        /* TCP self-connect (source port == s.port) is not our server. */
        struct sockaddr_in me;
        socklen_t mlen = sizeof(me);
        if (getsockname(fd, (struct sockaddr *)&me, &mlen) == 0 && ntohs(me.sin_port) == s.port) {
            close(fd);
            fd = -ECONNREFUSED;
        }
    }
    if (fd >= 0) {
        e2e_conn_t late = {.fd = fd};
        expect_closed(&late, 2000);
        e2e_conn_close(&late);
        cr_assert_fail("a connection was accepted after stop");
    }
    cr_assert_eq(fd, -ECONNREFUSED);
    cr_assert(!atomic_load(&s.run_returned), "run returned with a response in flight");
    /* The in-flight response arrives whole. */
    int rc = e2e_read_response(&busy, &r, 60000, 0);
    cr_assert_eq(rc, 0, "in-flight response: %s", appsrv_strerror(rc));
    check_status(&r, 200, "OK");
    cr_assert_eq(r.body_len, big.len);
    cr_assert(memcmp(r.body, big.data, big.len) == 0);
    e2e_resp_free(&r);
    /* Then the connection is closed and run returns 0, well before the
     * drain timeout. */
    expect_closed(&busy, 5000);
    cr_assert_eq(e2e_server_join(&s, 5000), 0, "run did not return after the drain");
    cr_assert_eq(s.run_rc, 0);
    appsrv_server_free(s.srv);
    s.srv = NULL;
    e2e_conn_close(&busy);
    e2e_conn_close(&idle);
    cr_assert_eq(atomic_load(&big.freed), 1);
    free(big.data);
    expect_fds(fds0);
}

Test(e2e_http, graceful_stop_finishes_request_with_partial_body, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    send_str(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello");
    cr_assert(e2e_still_open(&c, 100)); /* lets the server read the head */
    e2e_server_request_stop(&s);
    cr_assert(e2e_still_open(&c, 200), "a request in flight was dropped by the stop");
    send_str(&c, "world");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, "helloworld");
    const char *conn = e2e_resp_header(&r, "Connection");
    cr_assert(conn != NULL && strcmp(conn, "close") == 0,
              "a response finished while stopping should say Connection: close");
    e2e_resp_free(&r);
    expect_closed(&c, 3000);
    cr_assert_eq(e2e_server_join(&s, 5000), 0, "run did not return after the drain");
    cr_assert_eq(s.run_rc, 0);
    appsrv_server_free(s.srv);
    e2e_conn_close(&c);
    expect_fds(fds0);
}

Test(e2e_http, stop_before_run_returns_promptly, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    appsrv_config_t cfg = base_cfg();
    appsrv_server_t *srv = NULL;
    cr_assert_eq(appsrv_server_new(&srv, &cfg), 0);
    cr_assert_gt(appsrv_listen_http(srv, "127.0.0.1", 0), 0);
    appsrv_server_stop(srv);
    appsrv_server_stop(srv); /* repeatable */
    int64_t t0 = e2e_now_ms();
    cr_assert_eq(appsrv_server_run(srv), 0);
    cr_assert_lt(e2e_now_ms() - t0, 2000);
    cr_assert_eq(appsrv_server_run(srv), APPSRV_ESTATE);
    appsrv_server_free(srv);
    expect_fds(fds0);
}

Test(e2e_http, stop_closes_many_idle_connections, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_base(&s, NULL);
    enum { NUSED = 40, NFRESH = 10 };
    e2e_conn_t c[NUSED + NFRESH];
    for (int i = 0; i < NUSED + NFRESH; i++)
        open_conn(&c[i], s.port);
    for (int i = 0; i < NUSED; i++) {
        send_str(&c[i], "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        e2e_resp_t r;
        read_resp(&c[i], &r, 0);
        check_hello(&r);
        e2e_resp_free(&r);
    }
    e2e_server_request_stop(&s);
    for (int i = 0; i < NUSED + NFRESH; i++) {
        long extra = e2e_wait_closed(&c[i], 3000);
        cr_assert_geq(extra, 0, "connection %d not closed by the stop", i);
        if (i < NUSED)
            cr_assert_eq(extra, 0, "idle connection %d got bytes at stop", i);
    }
    cr_assert_eq(e2e_server_join(&s, 5000), 0, "run did not return");
    cr_assert_eq(s.run_rc, 0);
    appsrv_server_free(s.srv);
    for (int i = 0; i < NUSED + NFRESH; i++)
        e2e_conn_close(&c[i]);
    expect_fds(fds0);
}

Test(e2e_http, stop_from_signal_handler_raise, .timeout = 30)
{
    stop_by_signal(false);
}

Test(e2e_http, stop_from_signal_handler_on_loop_thread, .timeout = 30)
{
    stop_by_signal(true);
}
