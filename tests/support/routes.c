/* SPDX-License-Identifier: MIT */
/*
 * routes.c - the shared handlers and base route table (contract in
 * routes.h). Public API only; no assertions (loop threads run these).
 */
#include "routes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int h_hello(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    if (user != NULL)
        atomic_fetch_add((atomic_int *)user, 1);
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    return appsrv_res_set_body(res, "hello\n", 6);
}

int h_seq(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t n = appsrv_req_param(req, "n");
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    return appsrv_res_printf(res, "seq=%.*s", (int)n.len, n.ptr) < 0 ? -1 : 0;
}

/* A 3000-byte body (past the inline buffer): "<n>" zero-padded. */
int h_pad(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t n = appsrv_req_param(req, "n");
    char num[32];
    snprintf(num, sizeof(num), "%.*s", (int)n.len, n.ptr);
    appsrv_res_set_status(res, 200);
    return appsrv_res_printf(res, "%03000d", atoi(num)) < 0 ? -1 : 0;
}

/* Echoes the body without a copy (the request body lives until the
 * response is sent) with the request's Content-Type. */
int h_echo(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    char ct[128];
    appsrv_str_t b = appsrv_req_body(req);
    appsrv_str_t t = appsrv_req_header(req, "Content-Type");
    if (t.ptr != NULL)
        snprintf(ct, sizeof(ct), "%.*s", (int)t.len, t.ptr);
    else
        snprintf(ct, sizeof(ct), "application/octet-stream");
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", ct);
    return appsrv_res_set_body_ref(res, b.ptr, b.len, NULL, NULL);
}

int h_echo_copy(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t b = appsrv_req_body(req);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, b.ptr, b.len);
}

/* Method, target, path, query (raw), minor version, protocol. */
int h_info(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t m = appsrv_req_method(req), t = appsrv_req_target(req);
    appsrv_str_t p = appsrv_req_path(req), q = appsrv_req_query(req);
    appsrv_res_set_status(res, 200);
    appsrv_res_printf(res, "%.*s|%.*s|%.*s|", (int)m.len, m.ptr, (int)t.len, t.ptr, (int)p.len,
                      p.ptr);
    if (q.ptr == NULL)
        appsrv_res_printf(res, "NULL|");
    else
        appsrv_res_printf(res, "%.*s|", (int)q.len, q.ptr);
    appsrv_res_printf(res, "%d|%d", appsrv_req_http_minor(req), (int)appsrv_req_proto(req));
    return 0;
}

int h_fail(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    appsrv_res_set_status(res, 200);
    appsrv_res_set_body(res, "partial", 7);
    return -1;
}

int h_nostatus(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    appsrv_res_set_body(res, "no status", 9);
    return 0;
}

int l_ping(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "PONG", 4);
}

const e2e_route_t base_routes[] = {
    {"GET", "/hello", h_hello, NULL, false},
    {"GET", "/seq/:n", h_seq, NULL, false},
    {"POST", "/echo", h_echo, NULL, false},
    {"PUT", "/echo", h_echo, NULL, false},
    {"POST", "/echo_copy", h_echo_copy, NULL, false},
    {"GET", "/info/*", h_info, NULL, false},
    {"GET", "/fail", h_fail, NULL, false},
    {"GET", "/nostatus", h_nostatus, NULL, false},
};
const size_t base_routes_n = ARRAY_LEN(base_routes);

void ref_free(void *data, void *ud)
{
    ref_ctx_t *x = ud;
    if (data != x->data)
        atomic_fetch_add(&x->wrong_args, 1);
    atomic_fetch_add(&x->freed, 1);
}

int h_ref(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    ref_ctx_t *x = user;
    atomic_fetch_add(&x->calls, 1);
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "application/octet-stream");
    return appsrv_res_set_body_ref(res, x->data, x->len, ref_free, x);
}

int ref_init(ref_ctx_t *x, size_t len, uint32_t seed)
{
    memset(x, 0, sizeof(*x));
    x->data = malloc(len ? len : 1);
    if (x->data == NULL)
        return -ENOMEM;
    x->len = len;
    e2e_fill_pattern(x->data, len, seed);
    return 0;
}
