/* SPDX-License-Identifier: MIT */
/*
 * test_e2e_targets.c - end-to-end tests of issue 13 items 6 and 7 over
 * loopback: which request targets reach a handler and what the handler
 * sees of them. Visible ASCII in the path and query (RFC 3986 §2 leaves
 * '"', '|', '{', ... out, real clients send them), a fragment dropped
 * before routing (RFC 9110 §7.1), a bad %-escape refused in the path but
 * handed to the application in the query, and absolute-form targets
 * (RFC 9112 §3.2.2) whose authority replaces the Host field the handler
 * sees. Public API only; every wait is bounded and every test checks that
 * the fd count is back where it started once the server is freed.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "appsrv.h"
#include "e2e.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define RD           5000  /* ms: one response must arrive within */
#define STOP_MS      15000 /* ms: run must return after stop within */

/* ============================================================ handlers */

static void put_str(appsrv_res_t *res, const char *label, appsrv_str_t s)
{
    if (s.ptr == NULL)
        appsrv_res_printf(res, "%s=NULL\n", label);
    else
        appsrv_res_printf(res, "%s=[%.*s]\n", label, (int)s.len, s.ptr);
}

/* What the handler sees of the target and of Host, one line each. */
static int h_show(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    appsrv_res_set_status(res, 200);
    appsrv_res_printf(res, "route=%s\n", (const char *)user);
    put_str(res, "target", appsrv_req_target(req));
    put_str(res, "path", appsrv_req_path(req));
    put_str(res, "query", appsrv_req_query(req));
    put_str(res, "host", appsrv_req_header(req, "host"));
    for (size_t i = 0; i < appsrv_req_header_count(req); i++) {
        appsrv_str_t k, v;
        if (appsrv_req_header_at(req, i, &k, &v) != 0)
            return -1;
        appsrv_res_printf(res, "h%zu=[%.*s: %.*s]\n", i, (int)k.len, k.ptr, (int)v.len, v.ptr);
    }
    return 0;
}

/* Each named query parameter: its decoded value or the error code. */
static int h_params(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    static const char *const names[] = {"a", "b", "c", "d", "e"};
    (void)user;
    appsrv_res_set_status(res, 200);
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        char buf[64];
        ssize_t n = appsrv_req_query_param(req, names[i], buf, sizeof(buf));
        if (n < 0)
            appsrv_res_printf(res, "%s=%zd\n", names[i], n);
        else
            appsrv_res_printf(res, "%s=[%s]%zd\n", names[i], buf, n);
    }
    return 0;
}

static const e2e_route_t routes[] = {
    {"GET", "/", h_show, "root", false},  {"GET", "/a|b", h_show, "pipe", false},
    {"GET", "/f", h_show, "f", false},    {"GET", "/abs/*", h_show, "abs", false},
    {"GET", "/q", h_params, NULL, false},
};

/* ============================================================= helpers */

static void start(e2e_server_t *s)
{
    int rc = e2e_server_start(s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    cr_assert_eq(rc, 0, "server start: %s", appsrv_strerror(rc));
}

static void stop(e2e_server_t *s, int fds0)
{
    int rc = e2e_server_stop(s, STOP_MS);
    cr_assert_eq(rc, 0, "server stop: run returned %d (%s)", rc, appsrv_strerror(rc));
    int now = e2e_fd_count();
    cr_assert_eq(now, fds0, "fd leak: %d open at start, %d at end", fds0, now);
}

/* Sends req (len bytes) on a new connection and reads one response. */
static void exchange(int port, const char *req, size_t len, e2e_resp_t *r, e2e_conn_t *c)
{
    int rc = e2e_conn_open(c, port);
    cr_assert_eq(rc, 0, "connect: %s", appsrv_strerror(rc));
    rc = e2e_send(c, req, len);
    cr_assert_eq(rc, 0, "send: %s", appsrv_strerror(rc));
    rc = e2e_read_response(c, r, RD, 0);
    cr_assert_eq(rc, 0, "read response: %d (%s)", rc, appsrv_strerror(rc));
}

/* One request on its own connection: a 200 whose body is want. */
static void expect_body(int port, const char *req, size_t len, const char *want)
{
    e2e_conn_t c;
    e2e_resp_t r;
    exchange(port, req, len, &r, &c);
    cr_assert_eq(r.status, 200, "status %d for '%.*s'; body '%s'", r.status, (int)len, req, r.body);
    cr_assert_eq(r.body_len, strlen(want), "body '%s', expected '%s'", r.body, want);
    cr_assert_str_eq(r.body, want);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
}

#define EXPECT_BODY(port, lit, want) expect_body((port), (lit), sizeof(lit) - 1, (want))

/* One request on its own connection: 400 with Connection: close, then
 * the server closes without another byte. */
static void expect_400(int port, const char *req, size_t len)
{
    e2e_conn_t c;
    e2e_resp_t r;
    exchange(port, req, len, &r, &c);
    cr_assert_eq(r.status, 400, "status %d for '%.*s'", r.status, (int)len, req);
    const char *conn = e2e_resp_header(&r, "Connection");
    cr_assert(conn != NULL && strcmp(conn, "close") == 0, "400 without Connection: close");
    e2e_resp_free(&r);
    long extra = e2e_wait_closed(&c, 3000);
    cr_assert_eq(extra, 0, "expected a silent close, got %ld", extra);
    e2e_conn_close(&c);
}

#define EXPECT_400(port, lit) expect_400((port), (lit), sizeof(lit) - 1)

/* ================================================================ item 6 */

Test(e2e_targets, issue_13_visible_ascii_in_path_and_query, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start(&s);
    EXPECT_BODY(s.port, "GET /a|b?x=\"{}\"^`\\ HTTP/1.1\r\nHost: t\r\n\r\n",
                "route=pipe\ntarget=[/a|b?x=\"{}\"^`\\]\npath=[/a|b]\nquery=[x=\"{}\"^`\\]\n"
                "host=[t]\nh0=[Host: t]\n");
    /* Real clients: a '|' list and JSON in the query. */
    EXPECT_BODY(s.port, "GET /?fields=a|b&f={\"k\":[1]}<> HTTP/1.1\r\nHost: t\r\n\r\n",
                "route=root\ntarget=[/?fields=a|b&f={\"k\":[1]}<>]\npath=[/]\n"
                "query=[fields=a|b&f={\"k\":[1]}<>]\nhost=[t]\nh0=[Host: t]\n");
    stop(&s, fds0);
}

Test(e2e_targets, issue_13_fragment_is_not_routed, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start(&s);
    /* Only /f exists: "/f#/x" reaches it with the fragment gone. */
    EXPECT_BODY(s.port, "GET /f#/x HTTP/1.1\r\nHost: t\r\n\r\n",
                "route=f\ntarget=[/f]\npath=[/f]\nquery=NULL\nhost=[t]\nh0=[Host: t]\n");
    EXPECT_BODY(s.port, "GET /f?a=1#frag?b=2#c HTTP/1.1\r\nHost: t\r\n\r\n",
                "route=f\ntarget=[/f?a=1]\npath=[/f]\nquery=[a=1]\nhost=[t]\nh0=[Host: t]\n");
    EXPECT_BODY(s.port, "GET /a|b?# HTTP/1.1\r\nHost: t\r\n\r\n",
                "route=pipe\ntarget=[/a|b?]\npath=[/a|b]\nquery=[]\nhost=[t]\nh0=[Host: t]\n");
    stop(&s, fds0);
}

Test(e2e_targets, issue_13_bad_escape_in_query_reaches_handler, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    char want[256];
    start(&s);
    snprintf(want, sizeof(want), "a=%d\nb=[AB]2\nc=%d\nd=[x y]3\ne=%d\n", -EINVAL, -EINVAL,
             -ENOENT);
    EXPECT_BODY(s.port, "GET /q?a=%zz&b=%41%42&c=%4&d=x+y HTTP/1.1\r\nHost: t\r\n\r\n", want);
    snprintf(want, sizeof(want), "a=%d\nb=%d\nc=%d\nd=%d\ne=%d\n", -EINVAL, -ENOENT, -ENOENT,
             -ENOENT, -ENOENT);
    EXPECT_BODY(s.port, "GET /q?a=% HTTP/1.1\r\nHost: t\r\n\r\n", want);
    stop(&s, fds0);
}

Test(e2e_targets, issue_13_bad_escape_in_path_400_and_close, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start(&s);
    EXPECT_400(s.port, "GET /f%zz HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_400(s.port, "GET /f%4?a=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_400(s.port, "GET /f%#x HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_400(s.port, "GET http://h/abs/%g1 HTTP/1.1\r\nHost: t\r\n\r\n");
    stop(&s, fds0);
}

Test(e2e_targets, issue_13_controls_del_space_still_400, .timeout = 60)
{
    static const char *const bad[] = {
        "GET /f\x01 HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /f?a=\x1f HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /f#\x01 HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /f\x7f HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /f?\x7f HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /f#\x7f HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /f x HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /f?a b HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /f#a b HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /f\tx HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /f?a\tb HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /f?\x80 HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /f#\xff HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET http://h/\x7f HTTP/1.1\r\nHost: t\r\n\r\n",
    };
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start(&s);
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        expect_400(s.port, bad[i], strlen(bad[i]));
    /* NUL does not fit the table of C strings. */
    static const char nul[] = "GET /f?a\0 HTTP/1.1\r\nHost: t\r\n\r\n";
    EXPECT_400(s.port, nul);
    stop(&s, fds0);
}

/* ================================================================ item 7 */

Test(e2e_targets, issue_13_absolute_form_authority_is_host, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start(&s);
    /* RFC 9112 §3.2.2: the Host field is ignored for the target's host. */
    EXPECT_BODY(s.port,
                "GET http://a.example:8080/abs/x?y=1#z HTTP/1.1\r\nX-A: 1\r\nHost: other\r\n"
                "X-B: 2\r\n\r\n",
                "route=abs\ntarget=[http://a.example:8080/abs/x?y=1]\npath=[/abs/x]\n"
                "query=[y=1]\nhost=[a.example:8080]\nh0=[X-A: 1]\nh1=[Host: a.example:8080]\n"
                "h2=[X-B: 2]\n");
    /* https, any case; an empty path is "/" (RFC 9112 §3.2.1). */
    EXPECT_BODY(s.port, "GET HTTPS://[::1]:443 HTTP/1.1\r\nhost: other\r\n\r\n",
                "route=root\ntarget=[HTTPS://[::1]:443]\npath=[/]\nquery=NULL\n"
                "host=[[::1]:443]\nh0=[host: [::1]:443]\n");
    EXPECT_BODY(s.port, "GET hTTp://b.example?q HTTP/1.1\r\nHOST: b.example\r\n\r\n",
                "route=root\ntarget=[hTTp://b.example?q]\npath=[/]\nquery=[q]\n"
                "host=[b.example]\nh0=[HOST: b.example]\n");
    /* HTTP/1.0 without a Host field: nothing to replace. */
    EXPECT_BODY(s.port, "GET http://c.example/abs/ HTTP/1.0\r\n\r\n",
                "route=abs\ntarget=[http://c.example/abs/]\npath=[/abs/]\nquery=NULL\n"
                "host=NULL\n");
    stop(&s, fds0);
}

Test(e2e_targets, issue_13_absolute_form_refused, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start(&s);
    /* Only http and https. */
    EXPECT_400(s.port, "GET ftp://a.example/abs/x HTTP/1.1\r\nHost: a.example\r\n\r\n");
    EXPECT_400(s.port, "GET ws://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n");
    /* No userinfo (RFC 9110 §4.2.4). */
    EXPECT_400(s.port, "GET http://user@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n");
    EXPECT_400(s.port, "GET https://u:p@a.example/abs/ HTTP/1.1\r\nHost: a.example\r\n\r\n");
    /* RFC 9112 §3.2: HTTP/1.1 still needs exactly one Host. */
    EXPECT_400(s.port, "GET http://a.example/ HTTP/1.1\r\n\r\n");
    EXPECT_400(s.port, "GET http://a.example/ HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n");
    stop(&s, fds0);
}
