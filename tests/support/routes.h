/* SPDX-License-Identifier: MIT */
/*
 * routes.h - the handlers the in-process HTTP and line-protocol suites
 * share (test_http_*.c, test_line.c, test_deferred*.c): hello, seq, pad,
 * echo, info, failing handlers, a borrowed body with a counting free
 * callback, and the base route table most tests start with. Handlers run
 * on the server's loop threads: they record in atomics, never assert.
 */
#ifndef APPSRV_TEST_ROUTES_H
#define APPSRV_TEST_ROUTES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "e2e.h"

/* GET /hello: 200 "hello\n" text/plain; counts calls in user (atomic_int *)
 * unless NULL. */
int h_hello(appsrv_req_t *req, appsrv_res_t *res, void *user);
/* GET /seq/:n: "seq=<n>". */
int h_seq(appsrv_req_t *req, appsrv_res_t *res, void *user);
/* GET /pad/:n: a 3000-byte body, "<n>" zero-padded. */
int h_pad(appsrv_req_t *req, appsrv_res_t *res, void *user);
/* POST|PUT /echo: the body without a copy, with the request's Content-Type
 * (application/octet-stream without one). */
int h_echo(appsrv_req_t *req, appsrv_res_t *res, void *user);
/* POST /echo_copy: the body, copied. */
int h_echo_copy(appsrv_req_t *req, appsrv_res_t *res, void *user);
/* GET /info/ *: "method|target|path|query or NULL|minor|proto". */
int h_info(appsrv_req_t *req, appsrv_res_t *res, void *user);
/* GET /fail: sets a body, then returns -1. */
int h_fail(appsrv_req_t *req, appsrv_res_t *res, void *user);
/* GET /nostatus: a body but no status. */
int h_nostatus(appsrv_req_t *req, appsrv_res_t *res, void *user);
/* Line PING: "200 OK PONG". */
int l_ping(appsrv_req_t *req, appsrv_res_t *res, void *user);

/* The routes above, as most HTTP tests start with them. */
extern const e2e_route_t base_routes[];
extern const size_t base_routes_n;

/* A borrowed body with a counting free callback (h_ref's user). */
typedef struct ref_ctx {
    char *data;
    size_t len;
    atomic_int calls;
    atomic_int freed;
    atomic_int wrong_args;
} ref_ctx_t;

/* len pattern bytes from seed. Returns 0 or -ENOMEM. */
int ref_init(ref_ctx_t *x, size_t len, uint32_t seed);
/* The free callback: counts, and checks it was handed x's data. */
void ref_free(void *data, void *ud);
/* GET: 200 application/octet-stream, x's data borrowed (ref_free). */
int h_ref(appsrv_req_t *req, appsrv_res_t *res, void *user);

#endif /* APPSRV_TEST_ROUTES_H */
