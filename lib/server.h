/* SPDX-License-Identifier: MIT */
/*
 * server.h - private entry points of server.c for the in-process fuzz
 * driver and unit tests (fuzz/fuzz_conn.c, tests/): drive one worker of a
 * server that is not running, without listening sockets.
 */
#ifndef APPSRV_SERVER_H
#define APPSRV_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "worker.h"

/* Sizes the workers' block pools for the listeners added so far and the
 * given protocols (what appsrv_server_run() does first). In listen.c,
 * declared in listen.h too (server.h is what the tests include). */
void appsrv__server_prepare(appsrv_server_t *srv);
/* Worker i's state. */
appsrv__worker_t *appsrv__server_worker(appsrv_server_t *srv, int i);
/* Hands a connected, non-blocking fd to worker i as if accepted on an
 * HTTP (line false) or line listener; counts it against the cap. */
void appsrv__server_adopt(appsrv_server_t *srv, int i, int fd, bool line);
/* One loop pass of worker i without blocking, as worker_main() does it
 * (including the graceful-stop steps). Returns the I/O events handled. */
int appsrv__server_pass(appsrv_server_t *srv, int i);
/* Makes worker i's drain deadline pass (the next pass force-closes). */
void appsrv__server_expire_drain(appsrv_server_t *srv, int i);
/* appsrv_use() with a release callback for user (run at server free):
 * for the library's own hooks (CORS, gzip). */
int appsrv__server_use(appsrv_server_t *srv, appsrv_before_cb before, appsrv_after_cb after,
                       void *user, void (*free_user)(void *user));
/* Hands p to the server, which calls free_fn(p) at appsrv_server_free()
 * (static.c's directories). On failure p is released at once. Returns 0,
 * -ENOMEM, APPSRV_ESTATE once run has started. Before run. */
int appsrv__server_own(appsrv_server_t *srv, void *p, void (*free_fn)(void *p));
/* Open connections of all workers (the cap's count). */
int appsrv__server_nconns(appsrv_server_t *srv);

/* For metrics.c: turns request metrics on (before run: APPSRV_ESTATE
 * after), and what a scrape reads. */
struct appsrv__router;
struct appsrv__line_routes;
int appsrv__server_enable_metrics(appsrv_server_t *srv);
int appsrv__server_nworkers(const appsrv_server_t *srv);
const struct appsrv__router *appsrv__server_router(const appsrv_server_t *srv);
const struct appsrv__line_routes *appsrv__server_line_routes(const appsrv_server_t *srv);
/* Wall-clock seconds at appsrv_server_new(). */
int64_t appsrv__server_start_time(const appsrv_server_t *srv);

#endif /* APPSRV_SERVER_H */
