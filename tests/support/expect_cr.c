/* SPDX-License-Identifier: MIT */
/*
 * expect_cr.c - the Criterion-facing checks (contract in expect.h), built
 * only into the Criterion runner. Each wraps a non-asserting toolkit call
 * and fails the test with what it saw.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "expect.h"

void start_srv(e2e_server_t *s, const appsrv_config_t *cfg, const e2e_route_t *routes, size_t n,
               unsigned listeners)
{
    int rc = e2e_server_start(s, cfg, routes, n, listeners);
    cr_assert_eq(rc, 0, "server start: %s", appsrv_strerror(rc));
}

void start_srv_with(e2e_server_t *s, const appsrv_config_t *cfg, const e2e_route_t *routes,
                    size_t n, e2e_setup_cb setup, void *arg)
{
    int rc = e2e_server_start_with(s, cfg, routes, n, E2E_HTTP, setup, arg);
    cr_assert_eq(rc, 0, "server start (with setup): %s", appsrv_strerror(rc));
}

void start_base(e2e_server_t *s, const appsrv_config_t *cfg)
{
    start_srv(s, cfg, base_routes, base_routes_n, E2E_HTTP);
}

int start_base_conn(e2e_server_t *s, const appsrv_config_t *cfg, e2e_conn_t *c)
{
    int fds0 = e2e_fd_count();
    start_base(s, cfg);
    open_conn(c, s->port);
    return fds0;
}

void stop_srv_within(e2e_server_t *s, int ms)
{
    int rc = e2e_server_stop(s, ms);
    cr_assert_neq(rc, -ETIMEDOUT, "appsrv_server_run did not return within %d ms of the stop", ms);
    cr_assert_eq(rc, 0, "server stop: run returned %d (%s)", rc, appsrv_strerror(rc));
}

void stop_srv(e2e_server_t *s)
{
    stop_srv_within(s, STOP_MS);
}

void expect_fds(int before)
{
    int now = e2e_fd_count();
    cr_assert_eq(now, before, "fd leak: %d open at start, %d at end", before, now);
}

void stop_and_check(e2e_server_t *s, int fds0)
{
    stop_srv(s);
    expect_fds(fds0);
}

void close_and_stop(e2e_conn_t *c, e2e_server_t *s, int fds0)
{
    e2e_conn_close(c);
    stop_and_check(s, fds0);
}

void wait_count(atomic_int *v, int want, int timeout_ms, const char *what)
{
    int got = e2e_wait_atomic(v, want, timeout_ms);
    cr_assert_geq(got, want, "%s: %d after %d ms, expected %d", what, got, timeout_ms, want);
}

void open_conn(e2e_conn_t *c, int port)
{
    int rc = e2e_conn_open(c, port);
    cr_assert_eq(rc, 0, "connect to port %d: %s", port, appsrv_strerror(rc));
}

void open_conn_rcvbuf(e2e_conn_t *c, int port, int rcvbuf)
{
    int rc = e2e_conn_open_ex(c, AF_INET, port, rcvbuf, 2000);
    cr_assert_eq(rc, 0, "connect to port %d: %s", port, appsrv_strerror(rc));
}

void send_str(e2e_conn_t *c, const char *s)
{
    send_bytes(c, s, strlen(s));
}

void send_bytes(e2e_conn_t *c, const void *p, size_t n)
{
    int rc = e2e_send(c, p, n);
    cr_assert_eq(rc, 0, "send of %zu bytes: %s", n, appsrv_strerror(rc));
}

void read_resp_t(e2e_conn_t *c, e2e_resp_t *r, unsigned flags, int timeout_ms)
{
    int rc = e2e_read_response(c, r, timeout_ms, flags);
    cr_assert_eq(rc, 0, "read response (%d ms): %s (%d); %zu bytes unread: '%.60s'", timeout_ms,
                 e2e_errname(rc), rc, e2e_conn_avail(c), e2e_conn_data(c));
}

void read_resp(e2e_conn_t *c, e2e_resp_t *r, unsigned flags)
{
    read_resp_t(c, r, flags, RD);
}

void roundtrip(int port, const char *req, e2e_resp_t *r, unsigned flags)
{
    e2e_conn_t c;
    open_conn(&c, port);
    send_str(&c, req);
    read_resp(&c, r, flags);
    e2e_conn_close(&c);
}

void expect_closed(e2e_conn_t *c, int timeout_ms)
{
    long extra = e2e_wait_closed(c, timeout_ms);
    cr_assert_eq(extra, 0, "expected a silent close within %d ms, got %ld (%s)", timeout_ms, extra,
                 extra < 0 ? appsrv_strerror((int)extra) : "extra bytes");
}

void expect_line(e2e_conn_t *c, const char *want)
{
    char got[512];
    int n = e2e_read_line(c, got, sizeof(got), RD);
    cr_assert_geq(n, 0, "reading a line (want '%s'): %s", want, appsrv_strerror(n));
    cr_assert_str_eq(got, want);
}

void check_status(const e2e_resp_t *r, int status, const char *reason)
{
    cr_assert_eq(r->major, 1);
    cr_assert_eq(r->minor, 1);
    cr_assert_eq(r->status, status, "status %d '%s', expected %d", r->status, r->reason, status);
    if (reason != NULL)
        cr_assert_str_eq(r->reason, reason);
}

void check_std_head(const e2e_resp_t *r)
{
    const char *server = e2e_resp_header(r, "Server");
    cr_assert_not_null(server, "no Server header");
    cr_assert_str_eq(server, "appsrv/" APPSRV_VERSION_STRING);
    cr_assert_eq(e2e_resp_header_count(r, "Server"), 1);
    const char *date = e2e_resp_header(r, "Date");
    cr_assert_not_null(date, "no Date header");
    cr_assert(e2e_is_imf_fixdate(date), "Date not IMF-fixdate: '%s'", date);
    cr_assert_eq(e2e_resp_header_count(r, "Date"), 1);
}

void check_std(const e2e_resp_t *r)
{
    check_std_head(r);
    bool has_cl = e2e_resp_header(r, "Content-Length") != NULL;
    cr_assert(has_cl || r->chunked, "status %d without Content-Length or chunked", r->status);
    cr_assert_eq(e2e_resp_header_count(r, "Content-Length"), has_cl ? 1 : 0);
    cr_assert(!r->until_eof);
}

void check_body(const e2e_resp_t *r, const char *body)
{
    size_t n = strlen(body);
    cr_assert_eq(r->body_len, n, "body length %zu, expected %zu ('%s' vs '%s')", r->body_len, n,
                 r->body ? r->body : "", body);
    cr_assert(memcmp(r->body, body, n) == 0, "body '%s', expected '%s'", r->body, body);
    const char *cl = e2e_resp_header(r, "Content-Length");
    if (cl != NULL) {
        char want[32];
        snprintf(want, sizeof(want), "%zu", n);
        cr_assert_str_eq(cl, want);
    }
}

void check_hello(const e2e_resp_t *r)
{
    check_status(r, 200, "OK");
    check_std(r);
    check_body(r, "hello\n");
    cr_assert_str_eq(e2e_resp_header(r, "Content-Type"), "text/plain");
}

void expect_row(int port, const e2e_row_t *row)
{
    char why[768];
    int rc = e2e_row_run(port, row, why, sizeof(why));
    cr_assert_eq(rc, 0, "%s: %s", row->comment, why);
}

void expect_table(int port, const e2e_row_t *rows, size_t n, const e2e_row_t *probe)
{
    char why[1024];
    long bad = e2e_table_run(port, rows, n, probe, why, sizeof(why));
    cr_assert_eq(bad, -1, "%s", why);
}

void expect_error(int port, const void *req, size_t len, int status, const char *reason)
{
    cr_assert_str_eq(e2e_reason(status), reason);
    e2e_row_t row = {req, len, status, true, "error answer, then the close", NULL, NULL};
    expect_row(port, &row);
}
