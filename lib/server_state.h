/* SPDX-License-Identifier: MIT */
/*
 * server_state.h - the server object's state, shared by the three files
 * of the server: server.c (configuration, routes, hooks, free), listen.c
 * (listeners and accepting) and sworker.c (worker threads, run, graceful
 * stop). Header only: struct appsrv_server, its workers and listeners.
 * Only those three files include it; everything else goes through
 * server.h's calls.
 */
#ifndef APPSRV_SERVER_STATE_H
#define APPSRV_SERVER_STATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "alog.h"
#include "climit.h"
#include "common.h"
#include "conn.h"
#include "http.h"
#include "line.h"
#include "loop.h"
#include "mw.h"
#include "proto.h"
#include "router.h"
#include "transport.h"
#include "trust.h"
#include "worker.h"
#include "ws.h"

#define APPSRV__MAX_LISTENERS 8

typedef struct appsrv__sworker appsrv__sworker_t;

typedef struct appsrv__listener {
    const appsrv__proto_t *proto;
    void *proto_data;
    const appsrv__transport_t *tp;
    void *tp_data; /* the transport's listener data (the TLS context) */
    int port;
    int fd;           /* shared by every worker's epoll (EPOLLEXCLUSIVE) */
    atomic_int users; /* workers still watching fd; the last closes it */
    int (*preamble)(appsrv__conn_t *c); /* the PROXY header (proxy.h); NULL: none */
} appsrv__listener_t;

/* A worker-local listener watcher. */
typedef struct appsrv__lwatch {
    appsrv__io_t io;
    int idx; /* into srv->listeners */
    bool paused;
    appsrv__sworker_t *sw;
} appsrv__lwatch_t;

struct appsrv__sworker {
    appsrv__worker_t w; /* first: the loop's wake callback finds us */
    appsrv_server_t *srv;
    int id;
    appsrv__lwatch_t lw[APPSRV__MAX_LISTENERS];
    int nlw;
    appsrv__timer_t accept_timer; /* resumes accepting after EMFILE */
    appsrv__timer_t drain_timer;  /* forces the end of a graceful stop */
    bool drain_expired;
    appsrv__timer_t delay_timer; /* the drain delay (cfg.drain_delay_ms) */
    appsrv__timer_t grace_timer; /* the idle grace (cfg.drain_idle_grace_ms) */
    bool delay_started;
    appsrv__wlog_t wlog; /* its access-log buffer (with srv->alog) */
};

struct appsrv_server {
    appsrv_config_t cfg;
    appsrv__router_t *router;
    appsrv__line_routes_t line_routes;
    appsrv__ws_route_t *ws_routes; /* WebSocket endpoints (their handlers) */
    appsrv__listener_t listeners[APPSRV__MAX_LISTENERS];
    int nlisteners;
    appsrv__sworker_t *workers;
    int nworkers;
    atomic_int nconns; /* open client connections, all workers */
    atomic_bool stopping;
    bool ran;
    bool has_alog;
    appsrv__alog_t alog;  /* the access-log file (appsrv_access_log_fd) */
    int64_t start_time_s; /* wall clock at appsrv_server_new() */
    appsrv__mw_t mw; /* hooks and error responder (mw.c) */
    struct appsrv__owned *owned; /* freed with the server (appsrv__server_own) */
    appsrv__route_ex_t *route_exs; /* appsrv_route_ex() records (http.h) */
    atomic_int nstops;          /* appsrv_server_stop() calls: a second one
                                   cuts the drain delay short */
    atomic_bool stop_notified;  /* STOPPING=1 sent (cfg.sd_notify) */
    appsrv__trust_t *trust; /* appsrv_trust_proxy(); NULL: none */
    appsrv__climit_t *climit; /* per-client limits; NULL: none */
};

#endif /* APPSRV_SERVER_STATE_H */
