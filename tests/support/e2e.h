/* SPDX-License-Identifier: MIT */
/*
 * e2e.h - the test toolkit's front door (tests/support/): an in-process
 * server on 127.0.0.1 port 0 running on a background thread, plus, through
 * the headers it includes, the raw client and response reader (client.h),
 * the chunked decoder (chunked.h) and the clocks, fd/RSS probe and process
 * spawner (proc.h). The Criterion-facing checks are in expect.h, the
 * table runner in table.h, shared handlers in routes.h and host.h.
 * Nothing here asserts (client threads use it too): functions return 0 or
 * a negative errno value and the test checks the result. Public API only.
 */
#ifndef APPSRV_TEST_E2E_H
#define APPSRV_TEST_E2E_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "appsrv.h"
#include "chunked.h"
#include "client.h"
#include "proc.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define RD           5000  /* ms: one response must arrive within */
#define STOP_MS      15000 /* ms: run must return after stop within */
#define KIB          1024u
#define MIB          (1024u * 1024u)

/* Big sizes are scaled down under valgrind (APPSRV_VALGRIND set). */
#define SCALE(normal, vg) (e2e_valgrind() ? (vg) : (normal))

/* ---------------------------------------------------------------- server */

/* A route to register: method NULL matches any. With line set, pattern is
 * a line-protocol command word (appsrv_route_line) and method is unused. */
typedef struct e2e_route {
    const char *method;
    const char *pattern;
    appsrv_handler_cb handler;
    void *user;
    bool line;
} e2e_route_t;

/* Which listeners e2e_server_start() opens. */
#define E2E_HTTP 0x1u
#define E2E_LINE 0x2u

typedef struct e2e_server {
    appsrv_server_t *srv;
    pthread_t thread;
    bool thread_started;
    bool joined;
    int port;      /* HTTP port, 0 without E2E_HTTP */
    int line_port; /* line port, 0 without E2E_LINE */
    int run_rc;    /* appsrv_server_run()'s result once joined */
    atomic_bool run_returned;
} e2e_server_t;

/* A config with the defaults and threads = 1. */
void config(appsrv_config_t *cfg);
appsrv_config_t base_cfg(void);

/*
 * Creates a server from cfg (NULL: defaults with threads = 1), registers
 * routes[0..n), listens on 127.0.0.1 port 0 for what `listeners` asks and
 * runs it on a new thread. Returns 0, or a negative error (nothing left
 * behind then: the server is freed).
 */
int e2e_server_start(e2e_server_t *s, const appsrv_config_t *cfg, const e2e_route_t *routes,
                     size_t n, unsigned listeners);

/* Same, calling setup(srv, arg) after the routes and before the
 * listeners (middleware, error responder, CORS, gzip); a negative return
 * fails the start. */
typedef int (*e2e_setup_cb)(appsrv_server_t *srv, void *arg);
int e2e_server_start_with(e2e_server_t *s, const appsrv_config_t *cfg, const e2e_route_t *routes,
                          size_t n, unsigned listeners, e2e_setup_cb setup, void *arg);

/* appsrv_server_stop() only (the server keeps draining). */
void e2e_server_request_stop(e2e_server_t *s);

/* Waits at most timeout_ms for appsrv_server_run() to return and joins the
 * thread. Returns 0 (s->run_rc holds run's result) or -ETIMEDOUT. */
int e2e_server_join(e2e_server_t *s, int timeout_ms);

/*
 * appsrv_server_stop() + join (bounded by timeout_ms) + appsrv_server_free().
 * Returns run's result (0 after a normal stop), or -ETIMEDOUT when run did
 * not return in time (then the server is deliberately leaked: freeing a
 * running server would crash the test instead of failing it).
 */
int e2e_server_stop(e2e_server_t *s, int timeout_ms);

/* ----------------------------------------------------------------- misc */

/* Waits (poll-based, at most timeout_ms) until *v >= want. Returns the
 * last value seen. */
int e2e_wait_atomic(atomic_int *v, int want, int timeout_ms);
#endif /* APPSRV_TEST_E2E_H */
