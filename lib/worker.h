/* SPDX-License-Identifier: MIT */
/*
 * worker.h - what a worker thread owns below the server: its loop, block
 * pool, completion queue and the lists of its connections. server.c
 * creates workers and runs them; conn.c keeps the lists; the protocols
 * reach the loop, pool, queue and configuration through conn->w. A worker
 * and everything on it is touched by its own thread only, except the
 * completion queue (async.h).
 */
#ifndef APPSRV_WORKER_H
#define APPSRV_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "async.h"
#include "common.h"
#include "loop.h"
#include "pool.h"
#include "stats.h"

typedef struct appsrv__conn appsrv__conn_t;

typedef struct appsrv__worker {
    appsrv__loop_t loop;
    appsrv__pool_t pool;
    appsrv__async_t async;
    const appsrv_config_t *cfg; /* the server's copy */
    atomic_int *nconns_total;   /* open connections of all workers (the cap) */
    pthread_t thread;           /* the thread running the loop */
    bool draining;              /* graceful stop in progress */
    bool drain_idle_close;      /* draining, idle grace over: idle
                                   keep-alive connections close */
    /* Observability: obs is set when anything wants a per-request entry
     * (an access_log callback, the access-log file, cfg.metrics), so the
     * request path pays one test when nothing does. */
    bool obs;
    struct appsrv__wlog *wlog; /* the access-log file's buffer, or NULL */
    appsrv__stats_t stats;     /* counters (stats.h), read by scrapes */
    /* conn.c's lists: live connections (doubly linked), and among them
     * the idle keep-alive ones in the order they went idle; closed ones the
     * host still holds (doubly linked); closed ones to free after this
     * pass (singly linked); recycled structs. */
    appsrv__conn_t *conns;
    size_t nconns;
    appsrv__conn_t *idle_head; /* idle keep-alive, longest idle first */
    appsrv__conn_t *idle_tail;
    size_t nidle;
    appsrv__conn_t *held;
    size_t nheld;
    appsrv__conn_t *closed;
    appsrv__conn_t *free_conns;
    size_t nfree_conns;
    /* timer.c: the host's public timers; set (under the async lock) once
     * the loop has ended, after which no task or timer is accepted. */
    struct appsrv_timer *ptimers;
    bool timers_closed;
    /* mw.c: the server's hooks and error responder (read-only once run). */
    const struct appsrv__mw *mw;
    /* http.c, http_body.c: some route was registered with
     * appsrv_route_ex(), so heads are routed before the body (one test
     * per request when not). */
    bool route_ex;
    /* trust.h: the proxies whose X-Forwarded-* are believed (NULL: none);
     * the server's, immutable once run starts. */
    const struct appsrv__trust *trust;
    /* climit.h: per-client limits, shared by the workers (NULL: none). */
    struct appsrv__climit *climit;
} appsrv__worker_t;

#endif /* APPSRV_WORKER_H */
