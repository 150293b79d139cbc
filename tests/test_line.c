/* SPDX-License-Identifier: MIT */
/*
 * test_line.c - the line protocol end to end (README "Server behaviour and limits", appsrv.h): replies,
 * unknown and empty lines, CRLF endings, pipelining, a byte per send, the
 * connection cap, the line limit (413 then close), handler errors, the
 * close from a handler, stop, and HTTP and line on one server. In-process
 * server (tests/support), raw clients.
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

static int l_echo(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t b = appsrv_req_body(req);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, b.ptr, b.len);
}

static int l_info(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t m = appsrv_req_method(req), p = appsrv_req_path(req), b = appsrv_req_body(req);
    appsrv_res_set_status(res, 201);
    appsrv_res_set_reason(res, "Made");
    appsrv_res_printf(res, "proto=%d method=%.*s path=%.*s body=[%.*s]", (int)appsrv_req_proto(req),
                      (int)m.len, m.ptr, (int)p.len, p.ptr, (int)b.len, b.ptr);
    return 0;
}

static int l_newline(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "a\nb", 3);
}

static int l_quit(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    appsrv_res_set_status(res, 200);
    appsrv_res_set_body(res, "BYE", 3);
    appsrv_res_close(res);
    return 0;
}

static int l_fail(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    appsrv_res_set_status(res, 200);
    return -1;
}

static const e2e_route_t line_routes[] = {
    {NULL, "PING", l_ping, NULL, true}, {NULL, "ECHO", l_echo, NULL, true},
    {NULL, "INFO", l_info, NULL, true}, {NULL, "NL", l_newline, NULL, true},
    {NULL, "QUIT", l_quit, NULL, true}, {NULL, "FAIL", l_fail, NULL, true},
};

static void start_line(e2e_server_t *s, const appsrv_config_t *cfg)
{
    start_srv(s, cfg, line_routes, ARRAY_LEN(line_routes), E2E_LINE);
}

Test(e2e_line, ping_and_body, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_line(&s, NULL);
    e2e_conn_t c;
    open_conn(&c, s.line_port);
    send_str(&c, "PING\n");
    expect_line(&c, "200 OK PONG");
    send_str(&c, "ECHO hello  world \n");
    expect_line(&c, "200 OK hello  world ");
    send_str(&c, "ECHO\n");
    expect_line(&c, "200 OK");
    send_str(&c, "INFO a b\n");
    expect_line(&c, "201 Made proto=2 method=INFO path=INFO body=[a b]");
    cr_assert(e2e_still_open(&c, 100));
    close_and_stop(&c, &s, fds0);
}

Test(e2e_line, unknown_word_404_empty_400, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_line(&s, NULL);
    e2e_conn_t c;
    open_conn(&c, s.line_port);
    send_str(&c, "NOPE x\n");
    expect_line(&c, "404 Not Found");
    send_str(&c, "ping\n"); /* words are case-sensitive */
    expect_line(&c, "404 Not Found");
    send_str(&c, "\n");
    expect_line(&c, "400 Bad Request");
    send_str(&c, "\r\n");
    expect_line(&c, "400 Bad Request");
    send_str(&c, "PING\n"); /* still usable */
    expect_line(&c, "200 OK PONG");
    close_and_stop(&c, &s, fds0);
}

Test(e2e_line, crlf_endings, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_line(&s, NULL);
    e2e_conn_t c;
    open_conn(&c, s.line_port);
    send_str(&c, "PING\r\n");
    expect_line(&c, "200 OK PONG");
    send_str(&c, "ECHO a\r\n");
    expect_line(&c, "200 OK a");
    close_and_stop(&c, &s, fds0);
}

Test(e2e_line, pipelined_in_order, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_line(&s, NULL);
    e2e_conn_t c;
    open_conn(&c, s.line_port);
    char all[8192];
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(all + n, "ECHO %d\n", i);
    n += (size_t)sprintf(all + n, "PING\r\nNOPE\n\nECHO end\n");
    send_bytes(&c, all, n);
    for (int i = 0; i < 200; i++) {
        char want[32];
        snprintf(want, sizeof(want), "200 OK %d", i);
        expect_line(&c, want);
    }
    expect_line(&c, "200 OK PONG");
    expect_line(&c, "404 Not Found");
    expect_line(&c, "400 Bad Request");
    expect_line(&c, "200 OK end");
    close_and_stop(&c, &s, fds0);
}

Test(e2e_line, byte_by_byte, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_line(&s, NULL);
    e2e_conn_t c;
    open_conn(&c, s.line_port);
    const char *msg = "ECHO one two\r\nPING\n";
    cr_assert_eq(e2e_send_pieces(&c, msg, strlen(msg), 1), 0);
    expect_line(&c, "200 OK one two");
    expect_line(&c, "200 OK PONG");
    close_and_stop(&c, &s, fds0);
}

Test(e2e_line, max_conns_refused, .timeout = 30)
{
    appsrv_config_t cfg = base_cfg();
    cfg.max_conns = 1;
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_line(&s, &cfg);
    e2e_conn_t c1, c2;
    open_conn(&c1, s.line_port);
    send_str(&c1, "PING\n");
    expect_line(&c1, "200 OK PONG");
    send_str(&c1, "PI"); /* busy: a line in progress, so it cannot make room */
    e2e_pause_ms(50);
    open_conn(&c2, s.line_port);
    char *got = NULL;
    size_t len = 0;
    cr_assert_eq(e2e_read_until_close(&c2, &got, &len, 2000), 0, "not refused within 2 s");
    if (len > 0)
        cr_assert_str_eq(got, "503 Service Unavailable\n");
    free(got);
    e2e_conn_close(&c2);
    send_str(&c1, "NG\n");
    expect_line(&c1, "200 OK PONG");
    e2e_conn_close(&c1);
    stop_and_check(&s, fds0);
}

Test(e2e_line, line_too_long_413_then_close, .timeout = 30)
{
    appsrv_config_t cfg = base_cfg();
    cfg.max_line = 64;
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_line(&s, &cfg);
    char line[256];
    /* With its newline, and without one (the limit must not wait for it). */
    for (int with_nl = 1; with_nl >= 0; with_nl--) {
        e2e_conn_t c;
        open_conn(&c, s.line_port);
        send_str(&c, "PING\n");
        expect_line(&c, "200 OK PONG");
        memcpy(line, "ECHO ", 5);
        memset(line + 5, 'x', 195);
        size_t n = 200;
        if (with_nl)
            line[n++] = '\n';
        send_bytes(&c, line, n);
        expect_line(&c, "413 Payload Too Large");
        expect_closed(&c, 3000);
        e2e_conn_close(&c);
    }
    /* Exactly max_line bytes (plus CR) is fine. */
    e2e_conn_t c;
    open_conn(&c, s.line_port);
    memcpy(line, "ECHO ", 5);
    memset(line + 5, 'y', 59);
    memcpy(line + 64, "\r\n", 3);
    send_str(&c, line);
    char want[128];
    snprintf(want, sizeof(want), "200 OK %.59s", line + 5);
    expect_line(&c, want);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_line, body_with_newline_500, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_line(&s, NULL);
    e2e_conn_t c;
    open_conn(&c, s.line_port);
    send_str(&c, "NL\nFAIL\nPING\n");
    expect_line(&c, "500 Internal Server Error");
    expect_line(&c, "500 Internal Server Error");
    expect_line(&c, "200 OK PONG");
    close_and_stop(&c, &s, fds0);
}

Test(e2e_line, res_close_closes_after_reply, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_line(&s, NULL);
    e2e_conn_t c;
    open_conn(&c, s.line_port);
    send_str(&c, "PING\nQUIT\nPING\n"); /* nothing after QUIT is answered */
    expect_line(&c, "200 OK PONG");
    expect_line(&c, "200 OK BYE");
    expect_closed(&c, 3000);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_line, stop_closes_idle_line_connections, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_line(&s, NULL);
    e2e_conn_t a, b;
    open_conn(&a, s.line_port);
    open_conn(&b, s.line_port);
    send_str(&a, "PING\n");
    expect_line(&a, "200 OK PONG");
    e2e_server_request_stop(&s);
    expect_closed(&a, 3000);
    cr_assert_geq(e2e_wait_closed(&b, 3000), 0, "fresh connection not closed by the stop");
    cr_assert_eq(e2e_server_join(&s, 5000), 0);
    cr_assert_eq(s.run_rc, 0);
    appsrv_server_free(s.srv);
    e2e_conn_close(&a);
    e2e_conn_close(&b);
    expect_fds(fds0);
}

Test(e2e_line, http_and_line_on_one_server, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_route_t routes[ARRAY_LEN(line_routes) + 1];
    memcpy(routes, line_routes, sizeof(line_routes));
    routes[ARRAY_LEN(line_routes)] = (e2e_route_t){"GET", "/hello", h_hello, NULL, false};
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP | E2E_LINE);
    cr_assert_neq(s.port, s.line_port);
    e2e_conn_t c;
    open_conn(&c, s.line_port);
    send_str(&c, "PING\n");
    expect_line(&c, "200 OK PONG");
    e2e_resp_t r;
    roundtrip(s.port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);
    close_and_stop(&c, &s, fds0);
}
