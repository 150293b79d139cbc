/* SPDX-License-Identifier: MIT */
/*
 * test_middleware.c - appsrv_use() hooks end to end (issue 17 item 1):
 * before hooks in order, a short-circuit (401) that skips later hooks and
 * the handler, after hooks last-first on every response (handler, before-
 * hook answers, deferred and streamed responses finished by a library
 * timer, the library's own 400/404/405/413), per-request data slots, and
 * a failing before hook (500). In-process server, raw client.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "expect.h"

typedef struct mw {
    atomic_int before[3];
    atomic_int handler;
    int slot[3];
} mw_t;

static mw_t g_mw; /* reset by each test; one test per process */

static int before0(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)res;
    mw_t *m = user;
    atomic_fetch_add(&m->before[0], 1);
    appsrv_req_set_data(req, m->slot[0], "from-hook-0");
    return 0;
}

/* An auth check: no Authorization -> 401, the chain stops. */
static int before1(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    mw_t *m = user;
    atomic_fetch_add(&m->before[1], 1);
    if (appsrv_req_data(req, m->slot[0]) == NULL)
        return -1; /* hook 0 ran first: its slot is set */
    appsrv_str_t p = appsrv_req_path(req);
    if (p.len == 5 && memcmp(p.ptr, "/boom", 5) == 0)
        return -1;
    if (appsrv_req_header(req, "Authorization").ptr != NULL)
        return 0;
    appsrv_res_set_status(res, 401);
    appsrv_res_add_header(res, "WWW-Authenticate", "Bearer");
    appsrv_res_set_body(res, "auth\n", 5);
    return APPSRV_DONE;
}

static int before2(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)res;
    mw_t *m = user;
    atomic_fetch_add(&m->before[2], 1);
    return 0;
}

static void after_n(const appsrv_req_t *req, appsrv_res_t *res, const char *name)
{
    appsrv_res_add_header(res, "X-After", name);
    if (req == NULL)
        appsrv_res_add_header(res, "X-Req", "none");
}

static void after0(const appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    after_n(req, res, "0");
}
static void after1(const appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    after_n(req, res, "1");
}
static void after2(const appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    after_n(req, res, "2");
}

static int h_slot(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    mw_t *m = user;
    atomic_fetch_add(&m->handler, 1);
    const char *d = appsrv_req_data(req, m->slot[0]);
    appsrv_res_set_status(res, 200);
    return appsrv_res_printf(res, "%s|%s", d ? d : "NULL",
                             appsrv_req_data(req, m->slot[2]) ? "set" : "NULL") < 0
               ? -1
               : 0;
}

/* Deferred: a library timer sends it 20 ms later. */
static void send_later(appsrv_timer_t *t, void *user)
{
    appsrv_res_send(user);
    appsrv_timer_free(t);
}

static int h_later(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_timer_t *t;
    appsrv_res_set_status(res, 200);
    appsrv_res_set_body(res, "later", 5);
    if (appsrv_timer_new(appsrv_req_loop(req), send_later, res, &t) < 0)
        return -1;
    appsrv_timer_start(t, 20, 0);
    return APPSRV_LATER;
}

/* Streamed: the head goes out at once, a timer writes and ends it. */
static void stream_later(appsrv_timer_t *t, void *user)
{
    appsrv_res_write(user, "tick", 4);
    appsrv_res_end(user);
    appsrv_timer_free(t);
}

static int h_stream(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_timer_t *t;
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    if (appsrv_res_stream(res) < 0 ||
        appsrv_timer_new(appsrv_req_loop(req), stream_later, res, &t) < 0)
        return -1;
    appsrv_timer_start(t, 20, 0);
    return APPSRV_LATER;
}

static int setup(appsrv_server_t *srv, void *arg)
{
    mw_t *m = arg;
    int rc;
    if ((rc = appsrv_use(srv, before0, after0, m)) < 0)
        return rc;
    m->slot[0] = rc;
    if ((rc = appsrv_use(srv, before1, after1, m)) < 0)
        return rc;
    m->slot[1] = rc;
    if ((rc = appsrv_use(srv, before2, after2, m)) < 0)
        return rc;
    m->slot[2] = rc;
    return 0;
}

static void start_mw(e2e_server_t *s, appsrv_config_t *cfg)
{
    memset(&g_mw, 0, sizeof(g_mw));
    static e2e_route_t routes[] = {
        {"GET", "/slot", h_slot, &g_mw, false},  {"POST", "/slot", h_slot, &g_mw, false},
        {"GET", "/later", h_later, NULL, false}, {"GET", "/stream", h_stream, NULL, false},
        {"GET", "/boom", h_slot, &g_mw, false},
    };
    start_srv_with(s, cfg, routes, ARRAY_LEN(routes), setup, &g_mw);
}

/* After hooks run last-registered first: X-After 2, 1, 0 in that order. */
static void check_after(const e2e_resp_t *r)
{
    const char *want[] = {"2", "1", "0"};
    size_t k = 0;
    for (size_t i = 0; i < r->nhdrs; i++) {
        if (strcasecmp(r->names[i], "X-After") != 0)
            continue;
        cr_assert_lt(k, 3, "more than 3 X-After fields");
        cr_assert_str_eq(r->values[i], want[k], "X-After #%zu is %s, want %s", k, r->values[i],
                         want[k]);
        k++;
    }
    cr_assert_eq(k, 3, "%zu X-After fields on a %d answer, want 3", k, r->status);
}

static void get(int port, const char *req, e2e_resp_t *r)
{
    roundtrip(port, req, r, 0);
}

Test(middleware, order_slots_and_handler, .timeout = 30)
{
    e2e_server_t s;
    start_mw(&s, NULL);
    e2e_resp_t r;
    get(s.port, "GET /slot HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\n\r\n", &r);
    check_status(&r, 200, "OK");
    check_body(&r, "from-hook-0|NULL");
    check_after(&r);
    cr_assert_null(e2e_resp_header(&r, "X-Req"));
    e2e_resp_free(&r);
    cr_assert_eq(atomic_load(&g_mw.before[0]), 1);
    cr_assert_eq(atomic_load(&g_mw.before[1]), 1);
    cr_assert_eq(atomic_load(&g_mw.before[2]), 1);
    cr_assert_eq(atomic_load(&g_mw.handler), 1);
    stop_srv(&s);
}

Test(middleware, short_circuit_skips_later_hooks_and_handler, .timeout = 30)
{
    e2e_server_t s;
    start_mw(&s, NULL);
    e2e_resp_t r;
    /* On a keep-alive connection: the next request starts with clean slots. */
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /slot HTTP/1.1\r\nHost: x\r\n\r\n"
                 "HEAD /slot HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_status(&r, 401, NULL);
    check_body(&r, "auth\n");
    cr_assert_str_eq(e2e_resp_header(&r, "WWW-Authenticate"), "Bearer");
    check_after(&r);
    e2e_resp_free(&r);
    read_resp(&c, &r, E2E_RESP_HEAD);
    check_status(&r, 401, NULL);
    cr_assert_eq(r.body_len, 0);
    check_after(&r);
    e2e_resp_free(&r);
    cr_assert_eq(atomic_load(&g_mw.before[0]), 2);
    cr_assert_eq(atomic_load(&g_mw.before[1]), 2);
    cr_assert_eq(atomic_load(&g_mw.before[2]), 0, "a hook after the short-circuit ran");
    cr_assert_eq(atomic_load(&g_mw.handler), 0, "the handler ran after a short-circuit");
    e2e_conn_close(&c);
    stop_srv(&s);
}

Test(middleware, failing_before_hook_is_500_with_after_hooks, .timeout = 30)
{
    e2e_server_t s;
    start_mw(&s, NULL);
    e2e_resp_t r;
    get(s.port, "GET /boom HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\n\r\n", &r);
    check_status(&r, 500, "Internal Server Error");
    check_after(&r);
    e2e_resp_free(&r);
    cr_assert_eq(atomic_load(&g_mw.handler), 0);
    stop_srv(&s);
}

Test(middleware, after_hooks_on_deferred_and_streamed, .timeout = 30)
{
    e2e_server_t s;
    start_mw(&s, NULL);
    e2e_resp_t r;
    get(s.port, "GET /later HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\n\r\n", &r);
    check_status(&r, 200, "OK");
    check_body(&r, "later");
    check_after(&r);
    e2e_resp_free(&r);
    get(s.port, "GET /stream HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\n\r\n", &r);
    check_status(&r, 200, "OK");
    cr_assert(r.chunked, "a stream is chunked");
    check_body(&r, "tick");
    check_after(&r);
    e2e_resp_free(&r);
    stop_srv(&s);
}

Test(middleware, after_hooks_on_library_errors, .timeout = 30)
{
    appsrv_config_t cfg = base_cfg();
    cfg.max_body = 8;
    e2e_server_t s;
    start_mw(&s, &cfg);
    e2e_resp_t r;
    get(s.port, "GET /nope HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\n\r\n", &r);
    check_status(&r, 404, "Not Found");
    check_after(&r);
    cr_assert_null(e2e_resp_header(&r, "X-Req"), "a routed 404 has its request");
    e2e_resp_free(&r);
    get(s.port, "DELETE /slot HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\n\r\n", &r);
    check_status(&r, 405, "Method Not Allowed");
    cr_assert_str_eq(e2e_resp_header(&r, "Allow"), "GET, HEAD, POST");
    check_after(&r);
    e2e_resp_free(&r);
    get(s.port, "POST /slot HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", &r);
    check_status(&r, 413, NULL);
    cr_assert(e2e_resp_closes(&r));
    check_after(&r);
    cr_assert_null(e2e_resp_header(&r, "X-Req"), "413: the head was parsed");
    e2e_resp_free(&r);
    get(s.port, "GET /a b c HTTP/1.1\r\n\r\n", &r);
    check_status(&r, 400, "Bad Request");
    cr_assert(e2e_resp_closes(&r));
    check_after(&r);
    cr_assert_str_eq(e2e_resp_header(&r, "X-Req"), "none");
    check_body(&r, "Bad Request");
    e2e_resp_free(&r);
    stop_srv(&s);
}

Test(middleware, use_rejects_after_max_and_bad_args, .timeout = 10)
{
    appsrv_server_t *srv;
    cr_assert_eq(appsrv_server_new(&srv, NULL), 0);
    for (int i = 0; i < APPSRV_MAX_HOOKS; i++)
        cr_assert_eq(appsrv_use(srv, NULL, NULL, NULL), i);
    cr_assert_eq(appsrv_use(srv, NULL, NULL, NULL), -ENOSPC);
    cr_assert_eq(appsrv_use(NULL, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(appsrv_set_error_responder(NULL, NULL, NULL), -EINVAL);
    appsrv_server_free(srv);
}
