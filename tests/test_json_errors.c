/* SPDX-License-Identifier: MIT */
/*
 * test_json_errors.c - every answer the library makes itself, through
 * appsrv_error_json (what appsrv --json-errors sets): 400, 404, 405 (with
 * its Allow), 408 (head timeout), 413, 414, 431, 500, 501 (an unknown
 * transfer coding), 505, and the 503 of a deferred response that timed
 * out; each a {"error":{"status":N,"message":"<reason>"}} body as
 * application/json with the right Content-Length, Connection: close where
 * the library closes. The one answer that bypasses the responder, the
 * 503 refusal at the connection cap (written at accept, before any
 * request exists: no request to shape it from, and no loop time spent on
 * a connection that is being refused), is checked for what it is: the
 * fixed text/plain 503 with Retry-After and Connection: close.
 * (415 is in the responder's code table but the library never sends it.)
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expect.h"
#include "routes.h"

#define TMO_S 30

static void on_cancel_send(appsrv_res_t *res, void *ud)
{
    (void)ud;
    appsrv_res_send(res); /* the host still finishes res (appsrv.h) */
}

/* GET /never: deferred and never finished by the host: the response
 * timeout answers 503. */
static int h_never(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_on_cancel(res, on_cancel_send, NULL);
    return APPSRV_LATER;
}

static int setup_json(appsrv_server_t *srv, void *arg)
{
    (void)arg;
    return appsrv_set_error_responder(srv, appsrv_error_json, NULL);
}

static e2e_route_t g_routes[16];
static size_t g_nroutes;

static void start_json(e2e_server_t *s, const appsrv_config_t *cfg)
{
    g_nroutes = 0;
    for (size_t i = 0; i < base_routes_n && g_nroutes < ARRAY_LEN(g_routes) - 1; i++)
        g_routes[g_nroutes++] = base_routes[i];
    g_routes[g_nroutes++] = (e2e_route_t){"GET", "/never", h_never, NULL, false};
    start_srv_with(s, cfg, g_routes, g_nroutes, setup_json, NULL);
}

/* r is the JSON answer for status, closing or not. */
static void expect_json(const e2e_resp_t *r, int status, bool closes)
{
    cr_assert_eq(r->status, status, "status %d, want %d", r->status, status);
    cr_expect_str_eq(e2e_resp_header(r, "Content-Type"), "application/json");
    char want[160];
    snprintf(want, sizeof(want), "{\"error\":{\"status\":%d,\"message\":\"%s\"}}", status,
             e2e_reason(status));
    cr_expect_str_eq(r->body, want);
    char cl[24];
    snprintf(cl, sizeof(cl), "%zu", strlen(want));
    const char *got = e2e_resp_header(r, "Content-Length");
    cr_expect(got != NULL && strcmp(got, cl) == 0, "Content-Length %s, want %s",
              got ? got : "none", cl);
    cr_expect_eq(e2e_resp_closes(r), closes, "%d: Connection: close %s", status,
                 closes ? "missing" : "unexpected");
}

/* One request on a new connection; its answer is checked, and when it
 * closes, the connection must then close. */
static void one(int port, const char *req, int status, bool closes, const char *allow)
{
    e2e_conn_t c;
    open_conn(&c, port);
    send_str(&c, req);
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    cr_log_info("%d for: %.60s", status, req);
    expect_json(&r, status, closes);
    if (allow != NULL)
        cr_expect_str_eq(e2e_resp_header(&r, "Allow"), allow);
    e2e_resp_free(&r);
    if (closes)
        expect_closed(&c, RD);
    e2e_conn_close(&c);
}

TestSuite(json_errors, .timeout = TMO_S);

Test(json_errors, request_errors_and_routing)
{
    appsrv_config_t cfg = base_cfg();
    cfg.max_body = 1000;
    cfg.max_target = 64;
    cfg.max_head = 1024;
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_json(&s, &cfg);
    one(s.port, "GET /hello HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400, true, NULL);
    one(s.port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, false, NULL);
    one(s.port, "DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n", 405, false, "GET, HEAD");
    one(s.port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413, true, NULL);
    char big[256];
    snprintf(big, sizeof(big), "GET /%0100d HTTP/1.1\r\nHost: x\r\n\r\n", 7);
    one(s.port, big, 414, true, NULL);
    char hdrs[2048];
    snprintf(hdrs, sizeof(hdrs), "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: %01500d\r\n\r\n", 7);
    one(s.port, hdrs, 431, true, NULL);
    one(s.port, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\n", 500, false, NULL);
    one(s.port, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
        true, NULL);
    one(s.port, "GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505, true, NULL);
    stop_and_check(&s, fds0);
}

/* A request left waiting on a server with cfg: answered status (JSON)
 * and closed once its timeout fires. */
static void timed_out(const appsrv_config_t *cfg, const char *req, int status)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_json(&s, cfg);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, req);
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    expect_json(&r, status, true);
    e2e_resp_free(&r);
    expect_closed(&c, RD);
    e2e_conn_close(&c);
    stop_and_check(&s, fds0);
}

Test(json_errors, head_timeout_408)
{
    appsrv_config_t cfg = base_cfg();
    cfg.head_timeout_ms = SCALE(200, 2000);
    timed_out(&cfg, "GET /hello HTTP/1.1\r\nHost: x\r\n", 408); /* head never finished */
}

Test(json_errors, deferred_response_timeout_503)
{
    appsrv_config_t cfg = base_cfg();
    cfg.response_timeout_ms = SCALE(200, 2000);
    timed_out(&cfg, "GET /never HTTP/1.1\r\nHost: x\r\n\r\n", 503);
}

/* The refusal at the cap bypasses the responder (see the top comment). */
Test(json_errors, cap_refusal_503_stays_text)
{
    appsrv_config_t cfg = base_cfg();
    cfg.max_conns = 1;
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_json(&s, &cfg);
    e2e_conn_t c1, c2;
    open_conn(&c1, s.port);
    send_str(&c1, "GET /hello HTTP/1.1\r\n"); /* busy: cannot be evicted */
    e2e_pause_ms(50);
    open_conn(&c2, s.port);
    char *got = NULL;
    size_t len = 0;
    int rc = e2e_read_until_close(&c2, &got, &len, SCALE(3000, 15000));
    cr_assert_eq(rc, 0, "refused connection still open after the deadline (%zu bytes)", len);
    cr_assert_gt(len, 0, "refused without an answer");
    e2e_resp_t r;
    cr_assert_eq(e2e_parse_response(got, len, &r, 0), 0, "not a response: %.*s", (int)len, got);
    cr_expect_eq(r.status, 503);
    cr_expect_str_eq(e2e_resp_header(&r, "Content-Type"), "text/plain");
    cr_expect_str_eq(e2e_resp_header(&r, "Retry-After"), "1");
    cr_expect(e2e_resp_closes(&r));
    cr_expect_str_eq(r.body, "Service Unavailable\n");
    e2e_resp_free(&r);
    free(got);
    e2e_conn_close(&c2);
    /* The busy one still gets its answer. */
    send_str(&c1, "Host: x\r\n\r\n");
    read_resp(&c1, &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);
    e2e_conn_close(&c1);
    stop_and_check(&s, fds0);
}
