/* SPDX-License-Identifier: MIT */
/*
 * stats.h - what a worker counts about itself: counters and gauges with
 * one writer (its loop thread) and any number of readers (a metrics
 * scrape on another thread), so relaxed atomic loads and stores, no
 * locks and no read-modify-write; the per-event rate limit of the
 * on_event hook; the worker's request-ID generator. conn.c, server.c,
 * http.c, line.c and req.c count; metrics.c sums the workers at scrape
 * time.
 */
#ifndef APPSRV_STATS_H
#define APPSRV_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef _Atomic uint64_t appsrv__ctr_t;

/* Single writer: a plain load, add, store (no locked instruction). */
static inline void appsrv__ctr_add(appsrv__ctr_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static inline uint64_t appsrv__ctr_get(const appsrv__ctr_t *c)
{
    return atomic_load_explicit((appsrv__ctr_t *)(uintptr_t)c, memory_order_relaxed);
}

/* Protocol ids index per-protocol arrays (APPSRV_PROTO_*; 3 is kept for
 * WebSocket). */
#define APPSRV__NPROTO 4
/* Timeout kinds, as conn.c arms them. */
enum {
    APPSRV__TO_HEAD = 0,
    APPSRV__TO_IDLE,
    APPSRV__TO_BODY,
    APPSRV__TO_WRITE,
    APPSRV__TO_LINGER,
    APPSRV__TO_RESPONSE,
    APPSRV__NTIMEOUTS
};
extern const char *const appsrv__timeout_names[APPSRV__NTIMEOUTS];

/* Request latency histogram: upper bounds in microseconds; one more
 * bucket for +Inf. */
#define APPSRV__NLAT 14
extern const uint64_t appsrv__lat_bounds_us[APPSRV__NLAT];

/* Status classes 1xx..5xx, then "other". */
#define APPSRV__NCLASS 6

/* Operational events (appsrv_event_t names), rate-limited per worker. */
enum {
    APPSRV__EV_ACCEPT_ERROR = 0,
    APPSRV__EV_CONN_REFUSED,
    APPSRV__EV_PROTOCOL_ERROR,
    APPSRV__EV_TIMEOUT,
    APPSRV__EV_ACCESS_LOG_ERROR,
    APPSRV__EV_TLS_HANDSHAKE,
    APPSRV__EV_NOTIFY_ERROR,
    APPSRV__NEVENTS
};
#define APPSRV__EV_PER_SEC 10

typedef struct appsrv__stats {
    int worker; /* index, for events and log entries */
    /* Always kept: one update per connection or per rare event. */
    appsrv__ctr_t accepted[APPSRV__NPROTO];
    appsrv__ctr_t opened[APPSRV__NPROTO]; /* open = opened - closed */
    appsrv__ctr_t closed[APPSRV__NPROTO];
    appsrv__ctr_t refused;
    appsrv__ctr_t accept_errors;
    appsrv__ctr_t bytes_in, bytes_out; /* transport reads and writes */
    appsrv__ctr_t proto_errors[200];   /* by status 400..599 */
    appsrv__ctr_t timeouts[APPSRV__NTIMEOUTS];
    appsrv__ctr_t deferred_begun, deferred_done;   /* in flight = difference */
    appsrv__ctr_t tls_handshake_failures;          /* for the TLS transport */
    appsrv__ctr_t ws_messages_in, ws_messages_out; /* for WebSocket */
    appsrv__ctr_t log_lines, log_lost;             /* the access-log file */
    /* With cfg.metrics only: per request. */
    appsrv__ctr_t lat[APPSRV__NLAT + 1]; /* not cumulative; the last: +Inf */
    appsrv__ctr_t lat_sum_us;
    appsrv__ctr_t *requests; /* [nslots][APPSRV__NCLASS], see metrics.c */
    size_t nslots;
    size_t nhttp, nline; /* HTTP and line routes the slots were made for */
    /* Event rate limit (loop thread only). */
    struct {
        uint64_t sec;
        uint32_t n;
        uint32_t dropped;
    } ev[APPSRV__NEVENTS];
    /* Request IDs: xoshiro256** seeded once from getrandom(). */
    uint64_t rng[4];
    bool rng_ready;
} appsrv__stats_t;

/* Slot of a request in requests[]: an HTTP route index, else "no route",
 * then the line routes, else "no route". */
static inline size_t appsrv__stats_slot(const appsrv__stats_t *st, appsrv_proto_t proto, int route)
{
    if (proto == APPSRV_PROTO_LINE)
        return st->nhttp + 1 + (route >= 0 ? (size_t)route : st->nline);
    return route >= 0 ? (size_t)route : st->nhttp;
}

/* Counts one finished request (cfg.metrics). route: the matched route's
 * index, or -1. */
void appsrv__stats_request(appsrv__stats_t *st, appsrv_proto_t proto, int route, int status,
                           uint64_t usec);

/*
 * Reports event id to cfg->on_event, unless it is NULL or this worker has
 * reported APPSRV__EV_PER_SEC of them in the current second (now_ms: the
 * loop's clock). Loop thread.
 */
void appsrv__event(appsrv__stats_t *st, const appsrv_config_t *cfg, uint64_t now_ms, int id,
                   int level, const char *detail, int err, int status, const appsrv_addr_t *peer);

/* Writes 32 lowercase hex digits (128 random bits) to out. */
void appsrv__stats_random_id(appsrv__stats_t *st, char out[32]);

/* Hooks for the features being built beside this one: a TLS transport
 * calls appsrv__stats_tls_failed() when a handshake fails (counted in
 * appsrv_tls_handshake_failures_total, reported as the
 * "tls_handshake_failed" event with its reason), a WebSocket protocol
 * appsrv__stats_ws_message() per message. Loop thread. */
static inline void appsrv__stats_tls_failed(appsrv__stats_t *st, const appsrv_config_t *cfg,
                                            uint64_t now_ms, const char *reason,
                                            const appsrv_addr_t *peer)
{
    appsrv__ctr_add(&st->tls_handshake_failures, 1);
    appsrv__event(st, cfg, now_ms, APPSRV__EV_TLS_HANDSHAKE, APPSRV_LEVEL_INFO, reason, 0, 0,
                  peer);
}

static inline void appsrv__stats_ws_message(appsrv__stats_t *st, bool incoming)
{
    appsrv__ctr_add(incoming ? &st->ws_messages_in : &st->ws_messages_out, 1);
}

#endif /* APPSRV_STATS_H */
