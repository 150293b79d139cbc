/* SPDX-License-Identifier: MIT */
/*
 * test_http_basics.c - end-to-end basics of the server layer over loopback
 * (README "Server behaviour and limits"; appsrv.h request accessors and routing):
 * GET/HEAD, 404/405 with Allow, route and query parameters, header access,
 * the peer address, printf bodies, absolute-form and leading CRLF, plus the
 * e2e_api argument checks. A real server on 127.0.0.1 port 0 and raw
 * clients from tests/support; every test is bounded and checks its fds.
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

static int h_params(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t id = appsrv_req_param(req, "id");
    appsrv_str_t pid = appsrv_req_param(req, "pid");
    appsrv_str_t none = appsrv_req_param(req, "nope");
    appsrv_res_set_status(res, 200);
    appsrv_res_printf(res, "id=%.*s pid=%.*s nope=%s", (int)id.len, id.ptr, (int)pid.len, pid.ptr,
                      none.ptr == NULL ? "NULL" : "set");
    return 0;
}

static int h_me(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    appsrv_res_set_status(res, 200);
    appsrv_res_printf(res, "me-exact");
    return 0;
}

static int h_star(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t rest = appsrv_req_param(req, "*");
    appsrv_res_set_status(res, 200);
    appsrv_res_printf(res, "rest=[%.*s] %s", (int)rest.len, rest.ptr ? rest.ptr : "",
                      rest.ptr == NULL ? "NULL" : "set");
    return 0;
}

static void put_param(appsrv_req_t *req, appsrv_res_t *res, const char *name, size_t cap)
{
    char buf[256];
    ssize_t n = appsrv_req_query_param(req, name, buf, cap);
    if (n < 0)
        appsrv_res_printf(res, "%s=%zd;", name, n);
    else
        appsrv_res_printf(res, "%s=[%s]%zd;", name, buf, n);
}

static int h_query(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_res_set_status(res, 200);
    put_param(req, res, "a", 256);
    put_param(req, res, "b", 256);
    put_param(req, res, "flag", 256);
    put_param(req, res, "c", 256);
    put_param(req, res, "key", 256);
    put_param(req, res, "missing", 256);
    put_param(req, res, "b", 2); /* "AB" needs 3 */
    return 0;
}

static int h_headers(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_res_set_status(res, 200);
    size_t n = appsrv_req_header_count(req);
    appsrv_res_printf(res, "count=%zu\n", n);
    for (size_t i = 0; i < n; i++) {
        appsrv_str_t k, v;
        if (appsrv_req_header_at(req, i, &k, &v) != 0)
            return -1;
        appsrv_res_printf(res, "[%.*s]=[%.*s]\n", (int)k.len, k.ptr, (int)v.len, v.ptr);
    }
    appsrv_res_printf(res, "at(count)=%d\n", appsrv_req_header_at(req, n, NULL, NULL));
    const char *names[] = {"x-custom-thing", "X-CUSTOM-THING", "X-Dup", "absent"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        appsrv_str_t v = appsrv_req_header(req, names[i]);
        if (v.ptr == NULL)
            appsrv_res_printf(res, "%s=NULL\n", names[i]);
        else
            appsrv_res_printf(res, "%s=[%.*s]\n", names[i], (int)v.len, v.ptr);
    }
    return 0;
}

static int h_peer(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    char buf[128];
    int n = appsrv_addr_format(appsrv_req_peer(req), buf, sizeof(buf));
    if (n < 0)
        return -1;
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, buf, (size_t)n);
}

typedef struct printf_ctx {
    atomic_int n1, n2, n3;
} printf_ctx_t;

static int h_printf(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    printf_ctx_t *x = user;
    appsrv_res_set_status(res, 200);
    atomic_store(&x->n1, appsrv_res_printf(res, "%s=%d;", "n", 42));
    atomic_store(&x->n2, appsrv_res_printf(res, "%05.1f|%c", 3.14159, 'Z'));
    /* Past the inline body: the body must grow and keep its prefix. */
    atomic_store(&x->n3, appsrv_res_printf(res, "|%2000s|", "end"));
    return 0;
}

static int h_dummy(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    return appsrv_res_set_status(res, 204);
}

Test(e2e_http, get_text, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_base(&s, NULL);
    e2e_resp_t r;
    roundtrip(s.port, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", &r, 0);
    check_hello(&r);
    /* keep-alive by default for HTTP/1.1: no Connection: close */
    cr_assert_null(e2e_resp_header(&r, "Connection"));
    /* Date is now, in GMT (not local time, not stale) */
    int64_t when;
    cr_assert_eq(e2e_parse_imf_fixdate(e2e_resp_header(&r, "Date"), &when), 0);
    int64_t now = (int64_t)time(NULL);
    cr_assert(when >= now - 5 && when <= now + 1, "Date '%s' is %lld s off",
              e2e_resp_header(&r, "Date"), (long long)(when - now));
    e2e_resp_free(&r);
    stop_and_check(&s, fds0);
}

Test(e2e_http, request_accessors, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_base(&s, NULL);
    e2e_resp_t r;
    roundtrip(s.port, "GET /info/a/b?x=1&y=%41 HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0);
    check_status(&r, 200, "OK");
    check_std(&r);
    check_body(&r, "GET|/info/a/b?x=1&y=%41|/info/a/b|x=1&y=%41|1|1");
    e2e_resp_free(&r);
    roundtrip(s.port, "GET /info/z HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0);
    check_body(&r, "GET|/info/z|/info/z|NULL|1|1");
    e2e_resp_free(&r);
    roundtrip(s.port, "GET /info/q? HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0);
    check_body(&r, "GET|/info/q?|/info/q||1|1");
    e2e_resp_free(&r);
    stop_and_check(&s, fds0);
}

Test(e2e_http, head_served_by_get_handler, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    atomic_int calls = 0;
    const e2e_route_t routes[] = {{"GET", "/hello", h_hello, &calls, false}};
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    /* Pipelined: if HEAD leaked body bytes, the GET answer would not
     * parse right after the HEAD answer's head. */
    send_str(&c, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t h, g;
    read_resp(&c, &h, E2E_RESP_HEAD);
    read_resp(&c, &g, 0);
    check_status(&h, 200, "OK");
    check_std(&h);
    cr_assert_str_eq(e2e_resp_header(&h, "Content-Length"), "6");
    cr_assert_str_eq(e2e_resp_header(&h, "Content-Type"), "text/plain");
    cr_assert_eq(h.body_len, 0);
    check_hello(&g);
    cr_assert(e2e_still_open(&c, 100), "bytes after the GET answer");
    cr_assert_eq(atomic_load(&calls), 2);
    e2e_resp_free(&h);
    e2e_resp_free(&g);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, not_found_404, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    send_str(&c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 404, "Not Found");
    check_std(&r);
    check_body(&r, "Not Found");
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Type"), "text/plain");
    e2e_resp_free(&r);
    /* A 404 is an ordinary answer: the connection stays usable. */
    send_str(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, method_not_allowed_405_allow, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    const e2e_route_t routes[] = {
        {"GET", "/item", h_hello, NULL, false},
        {"POST", "/item", h_hello, NULL, false},
        {"DELETE", "/item", h_hello, NULL, false},
        {"PUT", "/other", h_hello, NULL, false},
    };
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "PUT /item HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 405, "Method Not Allowed");
    check_std(&r);
    check_body(&r, "Method Not Allowed");
    cr_assert_not_null(e2e_resp_header(&r, "Allow"));
    cr_assert_str_eq(e2e_resp_header(&r, "Allow"), "GET, HEAD, POST, DELETE");
    e2e_resp_free(&r);
    send_str(&c, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_status(&r, 405, "Method Not Allowed");
    cr_assert_str_eq(e2e_resp_header(&r, "Allow"), "PUT");
    e2e_resp_free(&r);
    send_str(&c, "GET /item HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, route_params_and_star, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    const e2e_route_t routes[] = {
        {"GET", "/users/:id/posts/:pid", h_params, NULL, false},
        {"GET", "/users/me/posts/:pid", h_me, NULL, false},
        {"GET", "/files/*", h_star, NULL, false},
    };
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    static const struct {
        const char *path, *body;
    } cases[] = {
        {"/users/42/posts/abc", "id=42 pid=abc nope=NULL"},
        {"/users/a%20b/posts/7", "id=a%20b pid=7 nope=NULL"}, /* raw, not decoded */
        {"/users/me/posts/9", "me-exact"},                    /* exact beats :id */
        {"/files/a/b/c.txt", "rest=[a/b/c.txt] set"},
        {"/files/", "rest=[] set"},
    };
    e2e_conn_t c;
    open_conn(&c, s.port);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char req[256];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", cases[i].path);
        send_str(&c, req);
        e2e_resp_t r;
        read_resp(&c, &r, 0);
        check_status(&r, 200, "OK");
        check_body(&r, cases[i].body);
        e2e_resp_free(&r);
    }
    send_str(&c, "GET /users/42/posts HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 404, "Not Found");
    e2e_resp_free(&r);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, query_params_decoded, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    const e2e_route_t routes[] = {{"GET", "/q", h_query, NULL, false}};
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_resp_t r;
    roundtrip(s.port,
              "GET /q?a=x+y%20z&b=%41%42&flag&c=caf%C3%A9&k%65y=v&a=second HTTP/1.1\r\n"
              "Host: x\r\n\r\n",
              &r, 0);
    check_status(&r, 200, "OK");
    char want[512];
    snprintf(want, sizeof(want),
             "a=[x y z]5;b=[AB]2;flag=[]0;c=[caf\xc3\xa9]5;key=[v]1;missing=%d;b=%d;", -ENOENT,
             -ENOSPC);
    check_body(&r, want);
    e2e_resp_free(&r);
    stop_and_check(&s, fds0);
}

Test(e2e_http, headers_case_insensitive_count_at, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    const e2e_route_t routes[] = {{"GET", "/h", h_headers, NULL, false}};
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_resp_t r;
    roundtrip(s.port,
              "GET /h HTTP/1.1\r\nHost: x\r\nX-Custom-Thing:   spaced value \t\r\n"
              "x-dup: 1\r\nX-Dup: 2\r\nEmpty:\r\n\r\n",
              &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, "count=5\n"
                   "[Host]=[x]\n"
                   "[X-Custom-Thing]=[spaced value]\n"
                   "[x-dup]=[1]\n"
                   "[X-Dup]=[2]\n"
                   "[Empty]=[]\n"
                   "at(count)=-34\n" /* -ERANGE */
                   "x-custom-thing=[spaced value]\n"
                   "X-CUSTOM-THING=[spaced value]\n"
                   "X-Dup=[1]\n"
                   "absent=NULL\n");
    e2e_resp_free(&r);
    stop_and_check(&s, fds0);
}

Test(e2e_http, peer_address, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    const e2e_route_t routes[] = {{"GET", "/peer", h_peer, NULL, false}};
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    struct sockaddr_in me;
    socklen_t len = sizeof(me);
    cr_assert_eq(getsockname(c.fd, (struct sockaddr *)&me, &len), 0);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%d", ntohs(me.sin_port));
    send_str(&c, "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, want);
    e2e_resp_free(&r);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, printf_body, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    printf_ctx_t x = {0};
    const e2e_route_t routes[] = {{"GET", "/p", h_printf, &x, false}};
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_resp_t r;
    roundtrip(s.port, "GET /p HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0);
    check_status(&r, 200, "OK");
    char want[2100];
    snprintf(want, sizeof(want), "n=42;003.1|Z|%2000s|", "end");
    check_body(&r, want);
    e2e_resp_free(&r);
    stop_srv(&s);
    cr_assert_eq(atomic_load(&x.n1), 5);
    cr_assert_eq(atomic_load(&x.n2), 7);
    cr_assert_eq(atomic_load(&x.n3), 2002);
    expect_fds(fds0);
}

Test(e2e_http, leading_crlf_and_absolute_form, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    /* RFC 9112 §2.2: empty lines before a request line are ignored;
     * §3.2.2: absolute-form targets are accepted. */
    send_str(&c, "\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n\r\n"
                 "GET http://example.com/info/abs?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, "GET|http://example.com/info/abs?q=1|/info/abs|q=1|1|1");
    e2e_resp_free(&r);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, head_of_unknown_path_has_no_body, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    send_str(&c, "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                 "HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, E2E_RESP_HEAD);
    check_status(&r, 404, "Not Found");
    check_std(&r);
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Length"), "9");
    e2e_resp_free(&r);
    read_resp(&c, &r, E2E_RESP_HEAD);
    check_status(&r, 405, "Method Not Allowed");
    cr_assert_str_eq(e2e_resp_header(&r, "Allow"), "POST, PUT");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, http1x_minor_served_as_11, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_base(&s, NULL);
    e2e_resp_t r;
    /* RFC 9110 §6.2: HTTP/1.x with x > 1 is served as 1.1. */
    roundtrip(s.port, "GET /info/v HTTP/1.7\r\nHost: x\r\n\r\n", &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, "GET|/info/v|/info/v|NULL|1|1");
    e2e_resp_free(&r);
    stop_and_check(&s, fds0);
}

Test(e2e_api, server_new_threads_zero_einval, .timeout = 10)
{
    int fds0 = e2e_fd_count();
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cr_assert_geq(cfg.threads, 1);
    cfg.threads = 0;
    appsrv_server_t *srv = (appsrv_server_t *)&cfg; /* must be reset to NULL */
    cr_assert_eq(appsrv_server_new(&srv, &cfg), -EINVAL);
    cr_assert_null(srv);
    cfg.threads = -3;
    cr_assert_eq(appsrv_server_new(&srv, &cfg), -EINVAL);
    appsrv_config_init(&cfg);
    cfg.max_conns = 0;
    cr_assert_eq(appsrv_server_new(&srv, &cfg), -EINVAL);
    appsrv_server_free(NULL); /* no-op */
    expect_fds(fds0);
}

Test(e2e_api, run_without_listener_einval, .timeout = 10)
{
    int fds0 = e2e_fd_count();
    appsrv_config_t cfg = base_cfg();
    appsrv_server_t *srv = NULL;
    cr_assert_eq(appsrv_server_new(&srv, &cfg), 0);
    cr_assert_eq(appsrv_route(srv, "GET", "/a", h_dummy, NULL), 0);
    cr_assert_eq(appsrv_server_run(srv), -EINVAL);
    appsrv_server_free(srv);
    expect_fds(fds0);
}

Test(e2e_api, route_bad_pattern_einval, .timeout = 10)
{
    int fds0 = e2e_fd_count();
    appsrv_server_t *srv = NULL;
    appsrv_config_t cfg = base_cfg();
    cr_assert_eq(appsrv_server_new(&srv, &cfg), 0);
    static const char *const bad[] = {"", "nolead", "/a/*/b", "/:/x", "/a b", "/a?b", "/a#b"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        cr_assert_eq(appsrv_route(srv, "GET", bad[i], h_dummy, NULL), -EINVAL, "pattern '%s'",
                     bad[i]);
    cr_assert_eq(appsrv_route(srv, "GET", NULL, h_dummy, NULL), -EINVAL);
    cr_assert_eq(appsrv_route(srv, "GET", "/ok", NULL, NULL), -EINVAL);
    cr_assert_eq(appsrv_route(srv, "GE T", "/ok", h_dummy, NULL), -EINVAL);
    cr_assert_eq(appsrv_route(srv, "", "/ok", h_dummy, NULL), -EINVAL);
    cr_assert_eq(appsrv_route(srv, "GET", "/:id/:id", h_dummy, NULL), -EINVAL);
    cr_assert_eq(appsrv_route_line(srv, "A B", h_dummy, NULL), -EINVAL);
    cr_assert_eq(appsrv_route_line(srv, "", h_dummy, NULL), -EINVAL);
    cr_assert_eq(appsrv_route_line(srv, "X", NULL, NULL), -EINVAL);
    cr_assert_eq(appsrv_route(srv, "GET", "/ok/:id/*", h_dummy, NULL), 0);
    appsrv_server_free(srv);
    expect_fds(fds0);
}

Test(e2e_api, duplicate_route_eexist, .timeout = 10)
{
    int fds0 = e2e_fd_count();
    appsrv_server_t *srv = NULL;
    appsrv_config_t cfg = base_cfg();
    cr_assert_eq(appsrv_server_new(&srv, &cfg), 0);
    cr_assert_eq(appsrv_route(srv, "GET", "/a", h_dummy, NULL), 0);
    cr_assert_eq(appsrv_route(srv, "GET", "/a", h_dummy, NULL), -EEXIST);
    cr_assert_eq(appsrv_route(srv, "POST", "/a", h_dummy, NULL), 0);
    cr_assert_eq(appsrv_route(srv, NULL, "/a", h_dummy, NULL), 0);
    cr_assert_eq(appsrv_route(srv, NULL, "/a", h_dummy, NULL), -EEXIST);
    cr_assert_eq(appsrv_route(srv, "GET", "/u/:id", h_dummy, NULL), 0);
    cr_assert_eq(appsrv_route(srv, "GET", "/u/:other", h_dummy, NULL), -EEXIST);
    cr_assert_eq(appsrv_route_line(srv, "PING", h_dummy, NULL), 0);
    cr_assert_eq(appsrv_route_line(srv, "PING", h_dummy, NULL), -EEXIST);
    appsrv_server_free(srv);
    expect_fds(fds0);
}
