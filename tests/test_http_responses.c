/* SPDX-License-Identifier: MIT */
/*
 * test_http_responses.c - what handlers put in a response, end to end
 * (appsrv.h): borrowed bodies and their free callback (once, also when the
 * client is gone, on HEAD, when replaced or the handler fails), handler
 * errors as 500, header injection refused, status and reason rules with
 * 204/304 bodiless. Uses the in-process server and raw client of
 * tests/support.
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

typedef struct hdr_ctx {
    atomic_int crlf, cl, cl_lower, te, date, server, conn, bad_name, empty_name, ok, nul_val;
} hdr_ctx_t;

static int h_addhdr(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    hdr_ctx_t *x = user;
    appsrv_res_set_status(res, 200);
    atomic_store(&x->crlf, appsrv_res_add_header(res, "X", "a\r\nb"));
    atomic_store(&x->nul_val, appsrv_res_add_header(res, "X-Lf", "a\nb"));
    atomic_store(&x->cl, appsrv_res_add_header(res, "Content-Length", "5"));
    atomic_store(&x->cl_lower, appsrv_res_add_header(res, "content-length", "5"));
    atomic_store(&x->te, appsrv_res_add_header(res, "Transfer-Encoding", "chunked"));
    atomic_store(&x->date, appsrv_res_add_header(res, "Date", "yesterday"));
    atomic_store(&x->server, appsrv_res_add_header(res, "Server", "other"));
    atomic_store(&x->conn, appsrv_res_add_header(res, "Connection", "close"));
    atomic_store(&x->bad_name, appsrv_res_add_header(res, "Bad Name", "v"));
    atomic_store(&x->empty_name, appsrv_res_add_header(res, "", "v"));
    atomic_store(&x->ok, appsrv_res_add_header(res, "X-Ok", "yes"));
    appsrv_res_set_body(res, "hdrs", 4);
    return 0;
}

static int h_status(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t code = appsrv_req_param(req, "code");
    char num[16];
    snprintf(num, sizeof(num), "%.*s", (int)code.len, code.ptr);
    if (appsrv_res_set_status(res, atoi(num)) < 0)
        return -1;
    if (strcmp(num, "299") == 0 && appsrv_res_set_reason(res, "Custom Thing") < 0)
        return -1;
    return appsrv_res_set_body(res, "body!", 5);
}

typedef struct status_ctx {
    atomic_int lo, hi, ok, reason_ctl;
} status_ctx_t;

static int h_status_checks(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    status_ctx_t *x = user;
    atomic_store(&x->lo, appsrv_res_set_status(res, 199));
    atomic_store(&x->hi, appsrv_res_set_status(res, 1000));
    atomic_store(&x->reason_ctl, appsrv_res_set_reason(res, "bad\r\nX: y"));
    atomic_store(&x->ok, appsrv_res_set_status(res, 202));
    return 0;
}

/* Replaces borrowed bodies in several ways; each must be released once. */
typedef struct swap_ctx {
    ref_ctx_t a, b, c, d;
} swap_ctx_t;

static int h_swap(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    swap_ctx_t *x = user;
    appsrv_str_t p = appsrv_req_path(req);
    appsrv_res_set_status(res, 200);
    if (p.len == 6 && memcmp(p.ptr, "/swap1", 6) == 0) {
        /* ref, then a copy replaces it */
        appsrv_res_set_body_ref(res, x->a.data, x->a.len, ref_free, &x->a);
        return appsrv_res_set_body(res, "copy", 4);
    }
    if (p.len == 6 && memcmp(p.ptr, "/swap2", 6) == 0) {
        /* ref, then another ref replaces it */
        appsrv_res_set_body_ref(res, x->a.data, x->a.len, ref_free, &x->a);
        return appsrv_res_set_body_ref(res, x->b.data, x->b.len, ref_free, &x->b);
    }
    if (p.len == 6 && memcmp(p.ptr, "/swap3", 6) == 0) {
        /* ref, then appended to: becomes a copy plus the addition */
        appsrv_res_set_body_ref(res, x->c.data, x->c.len, ref_free, &x->c);
        return appsrv_res_append(res, "+tail", 5);
    }
    /* ref, then the handler fails: the 500 drops it */
    appsrv_res_set_body_ref(res, x->d.data, x->d.len, ref_free, &x->d);
    return -1;
}

Test(e2e_http, body_ref_freed_once, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    ref_ctx_t small, big;
    cr_assert_eq(ref_init(&small, 100, 1), 0);
    ref_init(&big, 256 * 1024, 2); /* larger than any inline buffer */
    const e2e_route_t routes[] = {
        {"GET", "/small", h_ref, &small, false},
        {"GET", "/big", h_ref, &big, false},
    };
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\nGET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r1, r2;
    read_resp(&c, &r1, 0);
    read_resp(&c, &r2, 0);
    check_status(&r1, 200, "OK");
    check_std(&r1);
    cr_assert_eq(r1.body_len, small.len);
    cr_assert(memcmp(r1.body, small.data, small.len) == 0);
    check_status(&r2, 200, "OK");
    cr_assert_eq(r2.body_len, big.len);
    cr_assert(memcmp(r2.body, big.data, big.len) == 0);
    cr_assert_eq(e2e_wait_atomic(&small.freed, 1, 3000), 1);
    cr_assert_eq(e2e_wait_atomic(&big.freed, 1, 3000), 1);
    e2e_resp_free(&r1);
    e2e_resp_free(&r2);
    e2e_conn_close(&c);
    stop_srv(&s);
    cr_assert_eq(atomic_load(&small.freed), 1, "small body freed %d times", small.freed);
    cr_assert_eq(atomic_load(&big.freed), 1, "big body freed %d times", big.freed);
    cr_assert_eq(atomic_load(&small.wrong_args) + atomic_load(&big.wrong_args), 0);
    free(small.data);
    free(big.data);
    expect_fds(fds0);
}

Test(e2e_http, body_ref_freed_once_client_gone, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    ref_ctx_t big;
    ref_init(&big, SCALE(16 * MIB, 8 * MIB), 3); /* far beyond the socket buffers */
    const e2e_route_t routes[] = {{"GET", "/big", h_ref, &big, false}};
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(e2e_wait_atomic(&big.calls, 1, 3000), 1);
    /* Not read at all, so the client's receive window stays small and
     * most of the body is still queued in the server. */
    e2e_pause_ms(50);
    cr_assert_eq(atomic_load(&big.freed), 0, "body released before it could be written");
    /* Gone before the response is written: unread data makes it a reset. */
    e2e_conn_close(&c);
    cr_assert_eq(e2e_wait_atomic(&big.freed, 1, 5000), 1, "free callback not called");
    stop_srv(&s);
    cr_assert_eq(atomic_load(&big.freed), 1, "body freed %d times", big.freed);
    cr_assert_eq(atomic_load(&big.wrong_args), 0);
    free(big.data);
    expect_fds(fds0);
}

Test(e2e_http, body_ref_freed_once_head, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    ref_ctx_t small, big;
    cr_assert_eq(ref_init(&small, 10, 4), 0);
    cr_assert_eq(ref_init(&big, 200 * 1024, 5), 0);
    const e2e_route_t routes[] = {
        {"GET", "/small", h_ref, &small, false},
        {"GET", "/big", h_ref, &big, false},
        {"GET", "/hello", h_hello, NULL, false},
    };
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "HEAD /small HTTP/1.1\r\nHost: x\r\n\r\n"
                 "HEAD /big HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, E2E_RESP_HEAD);
    check_status(&r, 200, "OK");
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Length"), "10");
    e2e_resp_free(&r);
    read_resp(&c, &r, E2E_RESP_HEAD);
    check_status(&r, 200, "OK");
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Length"), "204800");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);
    cr_assert_eq(e2e_wait_atomic(&small.freed, 1, 3000), 1);
    cr_assert_eq(e2e_wait_atomic(&big.freed, 1, 3000), 1);
    e2e_conn_close(&c);
    stop_srv(&s);
    cr_assert_eq(atomic_load(&small.freed), 1);
    cr_assert_eq(atomic_load(&big.freed), 1);
    free(small.data);
    free(big.data);
    expect_fds(fds0);
}

Test(e2e_http, handler_error_500_connection_usable, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    send_str(&c, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 500, "Internal Server Error");
    check_std(&r);
    check_body(&r, "Internal Server Error"); /* not the handler's partial body */
    cr_assert_null(e2e_resp_header(&r, "Connection"));
    e2e_resp_free(&r);
    send_str(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, handler_without_status_500, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    send_str(&c, "GET /nostatus HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 500, "Internal Server Error");
    check_std(&r);
    check_body(&r, "Internal Server Error");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, add_header_rejects_injection_and_managed, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    hdr_ctx_t x;
    memset(&x, 0, sizeof(x));
    const e2e_route_t routes[] = {{"GET", "/h", h_addhdr, &x, false}};
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_resp_t r;
    roundtrip(s.port, "GET /h HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0);
    check_status(&r, 200, "OK");
    check_std(&r);
    check_body(&r, "hdrs");
    cr_assert_str_eq(e2e_resp_header(&r, "X-Ok"), "yes");
    cr_assert_null(e2e_resp_header(&r, "X"));
    cr_assert_null(e2e_resp_header(&r, "b"));
    cr_assert_null(e2e_resp_header(&r, "X-Lf"));
    cr_assert_null(e2e_resp_header(&r, "Transfer-Encoding"));
    cr_assert_null(e2e_resp_header(&r, "Connection"));
    cr_assert_str_eq(e2e_resp_header(&r, "Server"), "appsrv/" APPSRV_VERSION_STRING);
    e2e_resp_free(&r);
    stop_srv(&s);
    cr_assert_eq(atomic_load(&x.crlf), -EINVAL);
    cr_assert_eq(atomic_load(&x.nul_val), -EINVAL);
    cr_assert_eq(atomic_load(&x.cl), -EINVAL);
    cr_assert_eq(atomic_load(&x.cl_lower), -EINVAL);
    cr_assert_eq(atomic_load(&x.te), -EINVAL);
    cr_assert_eq(atomic_load(&x.date), -EINVAL);
    cr_assert_eq(atomic_load(&x.server), -EINVAL);
    cr_assert_eq(atomic_load(&x.conn), -EINVAL);
    cr_assert_eq(atomic_load(&x.bad_name), -EINVAL);
    cr_assert_eq(atomic_load(&x.empty_name), -EINVAL);
    cr_assert_eq(atomic_load(&x.ok), 0);
    expect_fds(fds0);
}

Test(e2e_http, status_reason_and_no_content, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    status_ctx_t x;
    memset(&x, 0, sizeof(x));
    const e2e_route_t routes[] = {
        {"GET", "/status/:code", h_status, NULL, false},
        {"GET", "/checks", h_status_checks, &x, false},
    };
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    /* 204 and 304 carry no body (RFC 9110 §15.3.5, §15.4.5) even when the
     * handler set one: the next pipelined answer must parse right after. */
    send_str(&c, "GET /status/201 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /status/304 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /status/299 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /status/599 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /checks HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 201, "Created");
    check_std(&r);
    check_body(&r, "body!");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 204, "No Content");
    cr_assert_null(e2e_resp_header(&r, "Content-Length"));
    cr_assert_null(e2e_resp_header(&r, "Transfer-Encoding"));
    cr_assert_eq(r.body_len, 0);
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 304, "Not Modified");
    cr_assert_null(e2e_resp_header(&r, "Transfer-Encoding"));
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 299, "Custom Thing");
    check_body(&r, "body!");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    cr_assert_eq(r.status, 599);
    check_body(&r, "body!");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 202, "Accepted");
    check_std(&r);
    check_body(&r, "");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    stop_srv(&s);
    cr_assert_eq(atomic_load(&x.lo), -EINVAL);
    cr_assert_eq(atomic_load(&x.hi), -EINVAL);
    cr_assert_eq(atomic_load(&x.reason_ctl), -EINVAL);
    cr_assert_eq(atomic_load(&x.ok), 0);
    expect_fds(fds0);
}

Test(e2e_http, body_ref_replaced_or_failed_freed_once, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    swap_ctx_t x;
    cr_assert_eq(ref_init(&x.a, 3000, 41), 0);
    cr_assert_eq(ref_init(&x.b, 3000, 42), 0);
    cr_assert_eq(ref_init(&x.c, 50, 43), 0);
    cr_assert_eq(ref_init(&x.d, 3000, 44), 0);
    const e2e_route_t routes[] = {{"GET", "/*", h_swap, &x, false}};
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /swap1 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /swap2 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /swap3 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /swap4 HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_body(&r, "copy");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    cr_assert_eq(r.body_len, x.b.len);
    cr_assert(memcmp(r.body, x.b.data, x.b.len) == 0);
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    cr_assert_eq(r.body_len, x.c.len + 5);
    cr_assert(memcmp(r.body, x.c.data, x.c.len) == 0);
    cr_assert(memcmp(r.body + x.c.len, "+tail", 5) == 0);
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 500, "Internal Server Error");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    stop_srv(&s);
    /* a: replaced twice (by a copy, by another ref); b, c, d: once each */
    cr_assert_eq(atomic_load(&x.a.freed), 2, "a freed %d times", atomic_load(&x.a.freed));
    cr_assert_eq(atomic_load(&x.b.freed), 1, "b freed %d times", atomic_load(&x.b.freed));
    cr_assert_eq(atomic_load(&x.c.freed), 1, "c freed %d times", atomic_load(&x.c.freed));
    cr_assert_eq(atomic_load(&x.d.freed), 1, "d freed %d times", atomic_load(&x.d.freed));
    cr_assert_eq(atomic_load(&x.a.wrong_args) + atomic_load(&x.b.wrong_args) +
                     atomic_load(&x.c.wrong_args) + atomic_load(&x.d.wrong_args),
                 0);
    free(x.a.data);
    free(x.b.data);
    free(x.c.data);
    free(x.d.data);
    expect_fds(fds0);
}
