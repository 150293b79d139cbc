/* SPDX-License-Identifier: MIT */
/*
 * server.c - the server object: configuration, routes, listeners, worker
 * threads, the connection cap and graceful stop. Each worker owns one
 * loop, block pool and completion queue (worker.h) and watches every
 * listener; a listener names the protocol table (http.c, line.c) and
 * transport (plain, or TLS with its context: tls.h) its connections get,
 * so nothing here names a protocol's bytes or a cipher. Calls conn.c at accept, drain and exit.
 *
 * A listener is one socket in every worker's epoll with EPOLLEXCLUSIVE,
 * rather than one SO_REUSEPORT socket per worker. Measured with 2 workers
 * and wrk -t2 -c64 keep-alive (CPU ticks per worker thread): SO_REUSEPORT
 * 142/68 and 107/79, EPOLLEXCLUSIVE 87/102 and 111/117. REUSEPORT hashes
 * each connection to a worker blindly, busy or not, and long-lived
 * connections keep the skew; with EPOLLEXCLUSIVE the kernel wakes a worker
 * waiting in epoll_wait, i.e. an idle one. With a connection per request
 * both split evenly (73/73 vs 72/72).
 * appsrv_server_stop() only sets a flag and writes each loop's eventfd,
 * so it is async-signal-safe; each worker then drains on its own thread.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alog.h"
#include "async.h"
#include "conn.h"
#include "deploy.h"
#include "http.h"
#include "line.h"
#include "loop.h"
#include "mw.h"
#include "climit.h"
#include "proxy.h"
#include "trust.h"
#include "pool.h"
#include "router.h"
#include "tls.h"
#include "stats.h"
#include "timer.h"
#include "transport.h"
#include "ws.h"

#define ACCEPT_BATCH 64
#define EMFILE_PAUSE_MS 100
#define EVICT_BATCH 4 /* idle connections closed per admission at the cap */
#define MAX_LISTENERS 8

typedef struct sworker sworker_t;

typedef struct listener {
    const appsrv__proto_t *proto;
    void *proto_data;
    const appsrv__transport_t *tp;
    void *tp_data; /* the transport's listener data (the TLS context) */
    int port;
    int fd;           /* shared by every worker's epoll (EPOLLEXCLUSIVE) */
    atomic_int users; /* workers still watching fd; the last closes it */
    int (*preamble)(appsrv__conn_t *c); /* the PROXY header (proxy.h); NULL: none */
} listener_t;

/* A worker-local listener watcher. */
typedef struct lwatch {
    appsrv__io_t io;
    int idx; /* into srv->listeners */
    bool paused;
    sworker_t *sw;
} lwatch_t;

struct sworker {
    appsrv__worker_t w; /* first: the loop's wake callback finds us */
    appsrv_server_t *srv;
    int id;
    lwatch_t lw[MAX_LISTENERS];
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
    listener_t listeners[MAX_LISTENERS];
    int nlisteners;
    sworker_t *workers;
    int nworkers;
    atomic_int nconns; /* open client connections, all workers */
    atomic_bool stopping;
    bool ran;
    bool has_alog;
    appsrv__alog_t alog;  /* the access-log file (appsrv_access_log_fd) */
    int64_t start_time_s; /* wall clock at appsrv_server_new() */
    appsrv__mw_t mw; /* hooks and error responder (mw.c) */
    struct owned *owned; /* freed with the server (appsrv__server_own) */
    appsrv__route_ex_t *route_exs; /* appsrv_route_ex() records (http.h) */
    atomic_int nstops;          /* appsrv_server_stop() calls: a second one
                                   cuts the drain delay short */
    atomic_bool stop_notified;  /* STOPPING=1 sent (cfg.sd_notify) */
    appsrv__trust_t *trust; /* appsrv_trust_proxy(); NULL: none */
    appsrv__climit_t *climit; /* per-client limits; NULL: none */
};

/* ---------------------------------------------------------------- config */

void appsrv_config_init(appsrv_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = n > 0 ? (int)n : 1;
    cfg->max_conns = 10000;
    cfg->max_head = 16 * 1024;
    cfg->max_target = 8 * 1024;
    cfg->max_headers = 128;
    cfg->max_body = 8 * 1024 * 1024;
    cfg->max_line = 64 * 1024;
    cfg->head_timeout_ms = 10 * 1000;
    cfg->idle_timeout_ms = 60 * 1000;
    cfg->write_timeout_ms = 30 * 1000;
    cfg->drain_timeout_ms = 10 * 1000;
    cfg->backlog = 511;
    cfg->response_timeout_ms = 30 * 1000;
    cfg->max_ws_message = 1024 * 1024;
    cfg->ws_ping_ms = 30 * 1000;
    cfg->ws_close_timeout_ms = 5 * 1000;
    cfg->drain_idle_grace_ms = 250;
}

static int check_config(const appsrv_config_t *c)
{
    if (c->threads < 1 || c->threads > 1024 || c->max_conns < 1)
        return -EINVAL;
    if (c->max_head < 64 || c->max_head > (1u << 30) || c->max_target < 1 ||
        c->max_target > c->max_head || c->max_headers < 1 || c->max_headers > 65535)
        return -EINVAL;
    if (c->max_line < 1 || c->max_line > (1u << 30) || c->max_body > ((size_t)1 << 40))
        return -EINVAL;
    if (c->head_timeout_ms < 1 || c->idle_timeout_ms < 1 || c->write_timeout_ms < 1 ||
        c->drain_timeout_ms < 0 || c->response_timeout_ms < 0)
        return -EINVAL;
    if (c->max_ws_message < 1 || c->max_ws_message > (1u << 30) || c->ws_ping_ms < 0 ||
        c->ws_close_timeout_ms < 1)
        return -EINVAL;
    if (c->drain_delay_ms < 0 || c->drain_idle_grace_ms < 0 || c->max_conns_per_client < 0 ||
        !(c->rate_limit >= 0 && c->rate_limit <= 1e6) ||
        !(c->rate_burst >= 0 && c->rate_burst <= 1e6))
        return -EINVAL;
    return 0;
}

/* Pool blocks hold a whole request head plus room for pipelined bytes, or
 * a whole line; their context area fits every protocol's context (also
 * WebSocket's, which HTTP connections may switch to). */
void appsrv__server_prepare(appsrv_server_t *srv)
{
    size_t data = srv->cfg.max_head + 4096;
    for (int i = 0; i < srv->nlisteners; i++)
        if (srv->listeners[i].proto == &appsrv__line_proto && srv->cfg.max_line + 2 > data)
            data = srv->cfg.max_line + 2;
    size_t ctx = appsrv__http_proto.ctx_size(&srv->cfg);
    size_t lctx = appsrv__line_proto.ctx_size(&srv->cfg);
    if (lctx > ctx)
        ctx = lctx;
    size_t wctx = appsrv__ws_proto.ctx_size(&srv->cfg);
    if (wctx > ctx)
        ctx = wctx;
    for (int i = 0; i < srv->nworkers; i++)
        appsrv__pool_init(&srv->workers[i].w.pool, ctx, data);
}

/* Whether requests need an entry at all: one flag per worker, read on
 * the request path. */
static void obs_update(appsrv_server_t *srv)
{
    bool on = srv->cfg.access_log != NULL || srv->has_alog || srv->cfg.metrics;
    for (int i = 0; i < srv->nworkers; i++)
        srv->workers[i].w.obs = on;
}

/* ---------------------------------------------------------------- server */

static void wake_cb(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events);
static void accept_resume_cb(appsrv__loop_t *loop, appsrv__timer_t *t);
static void drain_timeout_cb(appsrv__loop_t *loop, appsrv__timer_t *t);
static void drain_delay_cb(appsrv__loop_t *loop, appsrv__timer_t *t);
static void idle_grace_cb(appsrv__loop_t *loop, appsrv__timer_t *t);

int appsrv_server_new(appsrv_server_t **out, const appsrv_config_t *cfg)
{
    appsrv_config_t defaults;
    int rc;

    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (cfg == NULL) {
        appsrv_config_init(&defaults);
        cfg = &defaults;
    }
    rc = check_config(cfg);
    if (rc < 0)
        return rc;
    appsrv_server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return -ENOMEM;
    srv->cfg = *cfg;
    srv->start_time_s = (int64_t)time(NULL);
    atomic_init(&srv->nconns, 0);
    atomic_init(&srv->stopping, false);
    atomic_init(&srv->nstops, 0);
    atomic_init(&srv->stop_notified, false);
    rc = appsrv__router_new(&srv->router);
    if (rc < 0)
        goto free_srv;
    srv->workers = calloc((size_t)cfg->threads, sizeof(*srv->workers));
    if (srv->workers == NULL) {
        rc = -ENOMEM;
        goto free_router;
    }
    for (int i = 0; i < cfg->threads; i++) {
        sworker_t *sw = &srv->workers[i];
        sw->srv = srv;
        sw->id = i;
        sw->w.cfg = &srv->cfg;
        sw->w.nconns_total = &srv->nconns;
        sw->w.stats.worker = i;
        sw->w.mw = &srv->mw;
        sw->accept_timer.cb = accept_resume_cb;
        sw->drain_timer.cb = drain_timeout_cb;
        sw->delay_timer.cb = drain_delay_cb;
        sw->grace_timer.cb = idle_grace_cb;
        rc = appsrv__loop_init(&sw->w.loop, wake_cb);
        if (rc < 0)
            goto free_loops;
        rc = appsrv__async_init(&sw->w.async, &sw->w.loop);
        if (rc < 0) {
            appsrv__loop_dispose(&sw->w.loop);
            goto free_loops;
        }
        srv->nworkers++;
    }
    appsrv__server_prepare(srv);
    obs_update(srv);
    if (cfg->max_conns_per_client > 0 || cfg->rate_limit > 0) {
        rc = appsrv__climit_new(&srv->climit, cfg->max_conns_per_client, cfg->rate_limit,
                                cfg->rate_burst);
        if (rc < 0) {
            appsrv_server_free(srv);
            return rc;
        }
        for (int i = 0; i < srv->nworkers; i++)
            srv->workers[i].w.climit = srv->climit;
    }
    *out = srv;
    return 0;

free_loops:
    for (int i = 0; i < srv->nworkers; i++) {
        appsrv__async_dispose(&srv->workers[i].w.async);
        appsrv__loop_dispose(&srv->workers[i].w.loop);
    }
    free(srv->workers);
free_router:
    appsrv__router_free(srv->router);
free_srv:
    free(srv);
    return rc;
}

int appsrv_route(appsrv_server_t *srv, const char *method, const char *pattern,
                 appsrv_handler_cb handler, void *user)
{
    if (srv == NULL)
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    return appsrv__router_add(srv->router, method, pattern, handler, user);
}

int appsrv_route_ex(appsrv_server_t *srv, const char *method, const char *pattern,
                    appsrv_handler_cb handler, const appsrv_route_opts_t *opts, void *user)
{
    if (srv == NULL || handler == NULL)
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    appsrv__route_ex_t *ex = calloc(1, sizeof(*ex));
    if (ex == NULL)
        return -ENOMEM;
    ex->handler = handler;
    ex->user = user;
    if (opts != NULL)
        ex->opts = *opts;
    int rc = appsrv__router_add(srv->router, method, pattern, appsrv__route_ex_call, ex);
    if (rc < 0) {
        free(ex);
        return rc;
    }
    ex->next = srv->route_exs;
    srv->route_exs = ex;
    for (int i = 0; i < srv->nworkers; i++)
        srv->workers[i].w.route_ex = true; /* heads are routed before bodies */
    return 0;
}

int appsrv_route_line(appsrv_server_t *srv, const char *command, appsrv_handler_cb handler,
                      void *user)
{
    if (srv == NULL)
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    return appsrv__line_routes_add(&srv->line_routes, command, handler, user);
}

int appsrv_route_ws(appsrv_server_t *srv, const char *pattern, const appsrv_ws_handlers_t *h,
                    void *user)
{
    if (srv == NULL || h == NULL || h->on_open == NULL || h->on_close == NULL)
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    appsrv__ws_route_t *r = appsrv__ws_route_new(&srv->ws_routes, h, user);
    if (r == NULL)
        return -ENOMEM;
    int rc = appsrv__router_add(srv->router, "GET", pattern, appsrv__ws_upgrade, r);
    if (rc < 0) {
        srv->ws_routes = r->next;
        r->next = NULL;
        appsrv__ws_routes_free(r);
    }
    return rc;
}

static int attach_listener(appsrv_server_t *srv, const appsrv__proto_t *proto, void *proto_data,
                           const appsrv__transport_t *tp, void *tp_data, int fd);

/* Whether another listener may be added: 0 or the error. */
static int listener_room(const appsrv_server_t *srv)
{
    if (srv == NULL)
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    if (srv->nlisteners == MAX_LISTENERS)
        return -ENOSPC;
    return 0;
}

static int add_listener(appsrv_server_t *srv, const appsrv__proto_t *proto, void *proto_data,
                        const appsrv__transport_t *tp, void *tp_data, const char *host,
                        int port)
{
    int room = listener_room(srv);
    if (room < 0)
        return room;
    int fd = appsrv_listen(host, port, srv->cfg.backlog, APPSRV_LISTEN_NONBLOCK);
    if (fd < 0)
        return fd;
    int rc = attach_listener(srv, proto, proto_data, tp, tp_data, fd);
    if (rc < 0)
        close(fd);
    return rc;
}

/* Makes fd (listening, non-blocking) listener number srv->nlisteners.
 * Returns its TCP port, 0 for a Unix socket, or -errno (fd untouched). */
static int attach_listener(appsrv_server_t *srv, const appsrv__proto_t *proto, void *proto_data,
                           const appsrv__transport_t *tp, void *tp_data, int fd)
{
    /* Responses leave in one sendmsg each: Nagle would only add delay.
     * Accepted sockets inherit the option (Linux). */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int bound = appsrv_local_port(fd);
    if (bound == -EAFNOSUPPORT)
        bound = 0; /* a Unix socket (adopted) */
    if (bound < 0)
        return bound;
    listener_t *l = &srv->listeners[srv->nlisteners++];
    l->proto = proto;
    l->proto_data = proto_data;
    l->tp = tp;
    l->tp_data = tp_data;
    l->port = bound;
    l->fd = fd;
    l->preamble = srv->cfg.max_conns_per_client > 0 ? appsrv__limit_preamble : NULL;
    atomic_init(&l->users, 0);
    appsrv__server_prepare(srv);
    return bound;
}

int appsrv_listen_http(appsrv_server_t *srv, const char *host, int port)
{
    return add_listener(srv, &appsrv__http_proto, srv != NULL ? srv->router : NULL,
                        &appsrv__transport_plain, NULL, host, port);
}

int appsrv_listen_https(appsrv_server_t *srv, const char *host, int port, appsrv_tls_t *tls)
{
    int rc = appsrv__tls_usable(tls);
    if (rc < 0)
        return rc;
    return add_listener(srv, &appsrv__http_proto, srv != NULL ? srv->router : NULL,
                        &appsrv__transport_tls, tls, host, port);
}

int appsrv_listen_line(appsrv_server_t *srv, const char *host, int port)
{
    return add_listener(srv, &appsrv__line_proto, srv != NULL ? &srv->line_routes : NULL,
                        &appsrv__transport_plain, NULL, host, port);
}

/* Listener options (appsrv.h, "behind a load balancer"). */
int appsrv_listen_opts(appsrv_server_t *srv, const char *host, int port,
                       const appsrv_listen_opts_t *opts)
{
    appsrv_listen_opts_t o = {.proto = APPSRV_PROTO_HTTP};
    if (opts != NULL)
        o = *opts;
    int rc;
    if (o.proto == APPSRV_PROTO_LINE && o.tls == NULL)
        rc = appsrv_listen_line(srv, host, port);
    else if ((o.proto == APPSRV_PROTO_HTTP || o.proto == 0) && o.tls != NULL)
        rc = appsrv_listen_https(srv, host, port, o.tls);
    else if (o.proto == APPSRV_PROTO_HTTP || o.proto == 0)
        rc = appsrv_listen_http(srv, host, port);
    else
        return -EINVAL;
    if (rc > 0 && o.proxy_protocol)
        srv->listeners[srv->nlisteners - 1].preamble = srv->cfg.max_conns_per_client > 0
                                                           ? appsrv__proxy_limit_preamble
                                                           : appsrv__proxy_preamble;
    return rc;
}

int appsrv_trust_proxy(appsrv_server_t *srv, const char *cidrs)
{
    if (srv == NULL || cidrs == NULL)
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    appsrv__trust_t *t;
    int rc = appsrv__trust_parse(cidrs, &t);
    if (rc < 0)
        return rc;
    free(srv->trust);
    srv->trust = t;
    for (int i = 0; i < srv->nworkers; i++)
        srv->workers[i].w.trust = t;
    return 0;
}

/* ---------------------------------------------------------------- accept */

/* At the cap: the protocol's refusal, best effort, never blocking (the
 * point is to refuse promptly). */
static void refuse(sworker_t *sw, int fd, const appsrv__proto_t *proto, const appsrv_addr_t *peer,
                   bool plaintext)
{
    appsrv__worker_t *w = &sw->w;
    char buf[512 + 160];
    char rid[33];
    const char *id = NULL;
    if (w->cfg->request_ids) {
        appsrv__stats_random_id(&w->stats, rid);
        rid[32] = '\0';
        id = rid;
    }
    /* Counted and reported before the client can see the answer, so a
     * scrape that follows it includes it. */
    appsrv__ctr_add(&w->stats.refused, 1);
    appsrv__event(&w->stats, w->cfg, w->loop.now_ms, APPSRV__EV_CONN_REFUSED, APPSRV_LEVEL_WARN,
                  "connection cap reached", 0, 503, peer);
    if (!plaintext) {
        close(fd);
        return;
    }
    size_t n = proto->refusal(buf, sizeof(buf), w->loop.date, id);
    ssize_t rc = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)rc;
    close(fd);
}

/* Counts a new connection against the cap. At the cap, idle keep-alive
 * connections make room (longest idle first, a few at a time, as nginx
 * reuses its keep-alive connections): reopening one costs their client
 * nothing, refusing a new client costs it a failed request. Only this
 * worker's idle connections are candidates (each worker touches only its
 * own). Returns false when every connection is busy. */
static bool admit(sworker_t *sw)
{
    appsrv_server_t *srv = sw->srv;
    if (atomic_fetch_add(&srv->nconns, 1) < srv->cfg.max_conns)
        return true;
    atomic_fetch_sub(&srv->nconns, 1);
    if (appsrv__conn_evict_idle(&sw->w, EVICT_BATCH) == 0)
        return false;
    if (atomic_fetch_add(&srv->nconns, 1) < srv->cfg.max_conns)
        return true;
    atomic_fetch_sub(&srv->nconns, 1);
    return false;
}

static void accept_resume_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    sworker_t *sw = appsrv__container_of(t, sworker_t, accept_timer);
    for (int i = 0; i < sw->nlw; i++) {
        lwatch_t *lw = &sw->lw[i];
        if (lw->paused && lw->io.fd >= 0 &&
            appsrv__loop_add(loop, &lw->io, EPOLLIN | EPOLLEXCLUSIVE) == 0)
            lw->paused = false;
    }
}

static void accept_cb(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events)
{
    (void)events;
    lwatch_t *lw = appsrv__container_of(io, lwatch_t, io);
    sworker_t *sw = lw->sw;
    const listener_t *l = &sw->srv->listeners[lw->idx];

    for (int i = 0; i < ACCEPT_BATCH && !sw->w.draining; i++) {
        appsrv_addr_t peer;
        int fd = appsrv_accept(io->fd, &peer, APPSRV_ACCEPT_NONBLOCK);
        if (fd == -EAGAIN)
            return;
        if (fd < 0 && fd != -EAGAIN) {
            appsrv__ctr_add(&sw->w.stats.accept_errors, 1);
            appsrv__event(&sw->w.stats, sw->w.cfg, loop->now_ms, APPSRV__EV_ACCEPT_ERROR,
                          APPSRV_LEVEL_ERROR, appsrv_errname(fd), fd, 0, NULL);
        }
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
            /* Out of descriptors: stop watching the listener for a moment
             * instead of spinning on a level-triggered socket that stays
             * readable. Pending clients wait in the backlog. */
            if (appsrv__loop_del(loop, io) == 0)
                lw->paused = true;
            appsrv__timer_start(loop, &sw->accept_timer, loop->now_ms + EMFILE_PAUSE_MS);
            return;
        }
        if (fd < 0)
            return;
        if (!admit(sw)) {
            /* A transport with a handshake (TLS) cannot carry the
             * protocol's plaintext refusal: counted, then just closed. */
            refuse(sw, fd, l->proto, &peer, l->tp->handshake == NULL);
            continue;
        }
        appsrv__conn_accepted_pre(&sw->w, fd, &peer, l->proto, l->proto_data, l->tp, l->tp_data,
                                  l->preamble);
    }
}

/* ------------------------------------------------------------------ stop */

static void drain_timeout_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    (void)loop;
    sworker_t *sw = appsrv__container_of(t, sworker_t, drain_timer);
    sw->drain_expired = true;
}

/* After the idle grace: idle keep-alive connections close gracefully
 * (conn.c); those that took one more request close after its answer. */
static void close_idle(sworker_t *sw)
{
    appsrv__worker_t *w = &sw->w;
    w->drain_idle_close = true;
    appsrv__conn_t *c = w->conns;
    while (c != NULL) {
        appsrv__conn_t *next = c->next;
        appsrv__conn_drain_idle(c);
        c = next;
    }
}

static void idle_grace_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    (void)loop;
    close_idle(appsrv__container_of(t, sworker_t, grace_timer));
}

static void begin_drain(sworker_t *sw)
{
    appsrv_server_t *srv = sw->srv;
    appsrv__worker_t *w = &sw->w;
    w->draining = true;
    for (int i = 0; i < sw->nlw; i++) {
        lwatch_t *lw = &sw->lw[i];
        if (lw->io.fd < 0)
            continue;
        if (!lw->paused)
            appsrv__loop_del(&w->loop, &lw->io);
        /* The last worker to let go closes the shared socket. */
        if (atomic_fetch_sub(&srv->listeners[lw->idx].users, 1) == 1) {
            close(lw->io.fd);
            srv->listeners[lw->idx].fd = -1;
        }
        lw->io.fd = -1;
    }
    appsrv__timer_stop(&w->loop, &sw->accept_timer);
    appsrv__conn_t *c = w->conns;
    while (c != NULL) {
        appsrv__conn_t *next = c->next;
        appsrv__conn_drain(c);
        c = next;
    }
    appsrv__timer_start(&w->loop, &sw->drain_timer,
                        w->loop.now_ms + (uint64_t)srv->cfg.drain_timeout_ms);
    appsrv__timer_stop(&w->loop, &sw->delay_timer);
    if (srv->cfg.drain_idle_grace_ms == 0)
        close_idle(sw);
    else
        appsrv__timer_start(&w->loop, &sw->grace_timer,
                            w->loop.now_ms + (uint64_t)srv->cfg.drain_idle_grace_ms);
}

static void drain_delay_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    (void)loop;
    sworker_t *sw = appsrv__container_of(t, sworker_t, delay_timer);
    if (!sw->w.draining)
        begin_drain(sw);
}

/* cfg.sd_notify: a failure is reported, never fatal. */
static void notify(sworker_t *sw, const char *state)
{
    if (!sw->srv->cfg.sd_notify)
        return;
    int rc = appsrv_sd_notify(state);
    if (rc < 0)
        appsrv__event(&sw->w.stats, sw->w.cfg, sw->w.loop.now_ms, APPSRV__EV_NOTIFY_ERROR,
                      APPSRV_LEVEL_WARN, state, rc, 0, NULL);
}

/* A stop began: first the drain delay (listeners still accept, the
 * readiness check says 503), then the drain. A second stop skips the
 * rest of the delay. */
static void stop_requested(sworker_t *sw)
{
    appsrv_server_t *srv = sw->srv;
    if (!atomic_exchange(&srv->stop_notified, true))
        notify(sw, "STOPPING=1");
    bool now = srv->cfg.drain_delay_ms == 0 || atomic_load(&srv->nstops) > 1;
    if (now) {
        begin_drain(sw);
        return;
    }
    if (!sw->delay_started)
        appsrv__timer_start(&sw->w.loop, &sw->delay_timer,
                            sw->w.loop.now_ms + (uint64_t)srv->cfg.drain_delay_ms);
    sw->delay_started = true;
}

static void wake_cb(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events)
{
    (void)io;
    (void)events;
    sworker_t *sw = appsrv__container_of(loop, sworker_t, w.loop);
    appsrv__loop_wake_ack(loop);
    /* Responses finished by host threads. Bounded, so a host that keeps
     * writing cannot starve this loop's sockets; the rest on the next
     * pass. */
    appsrv__async_run(&sw->w.async, 4096);
    if (atomic_load(&sw->srv->stopping) && !sw->w.draining)
        stop_requested(sw);
}

void appsrv_server_stop(appsrv_server_t *srv)
{
    if (srv == NULL)
        return;
    atomic_fetch_add(&srv->nstops, 1);
    atomic_store(&srv->stopping, true);
    for (int i = 0; i < srv->nworkers; i++)
        appsrv__loop_wake(&srv->workers[i].w.loop);
}

/* ------------------------------------------------------------------- run */

static int pass(sworker_t *sw, int max_wait_ms)
{
    int n = appsrv__loop_run_once(&sw->w.loop, max_wait_ms);
    appsrv__conn_free_closed(&sw->w);
    if (sw->drain_expired) {
        while (sw->w.conns != NULL)
            appsrv__conn_close(sw->w.conns);
        appsrv__conn_free_closed(&sw->w);
    }
    return n;
}

static void *worker_main(void *arg)
{
    sworker_t *sw = arg;
    appsrv__worker_t *w = &sw->w;
    w->thread = pthread_self();
    /* After a stop, the loop runs until its connections are closed and
     * the host has finished every response it held. */
    while (!(w->draining && w->nconns == 0 && w->nheld == 0)) {
        if (pass(sw, -1) < 0)
            break; /* epoll itself failed: nothing sane is left to do */
    }
    appsrv__conn_close_all(w, false);
    appsrv__timers_dispose(w);
    /* Every request is logged by now: the access log's last lines go
     * out before appsrv_server_run() returns. */
    if (w->wlog != NULL)
        appsrv__wlog_flush(w->wlog);
    appsrv__timer_stop(&w->loop, &sw->drain_timer);
    appsrv__timer_stop(&w->loop, &sw->accept_timer);
    appsrv__timer_stop(&w->loop, &sw->delay_timer);
    appsrv__timer_stop(&w->loop, &sw->grace_timer);
    appsrv__pool_dispose(&w->pool);
    return NULL;
}

static int worker_setup(sworker_t *sw)
{
    appsrv_server_t *srv = sw->srv;
    for (int i = 0; i < srv->nlisteners; i++) {
        lwatch_t *lw = &sw->lw[i];
        lw->io.fd = srv->listeners[i].fd;
        lw->io.cb = accept_cb;
        lw->idx = i;
        lw->sw = sw;
        sw->nlw++;
        /* Level-triggered: a batch cap per wake-up stays fair to the
         * connections, and what is left is reported again. Exclusive:
         * one waiting worker is woken per connection, not all. */
        int rc = appsrv__loop_add(&sw->w.loop, &lw->io, EPOLLIN | EPOLLEXCLUSIVE);
        if (rc < 0)
            return rc;
        atomic_fetch_add(&srv->listeners[i].users, 1);
    }
    return 0;
}

/* Per-worker request counters by route: the routes are final now. */
static int alloc_request_slots(appsrv_server_t *srv)
{
    size_t nh = appsrv__router_count(srv->router), nl = srv->line_routes.n;
    size_t nslots = nh + 1 + nl + 1;
    for (int i = 0; i < srv->nworkers; i++) {
        appsrv__stats_t *st = &srv->workers[i].w.stats;
        st->requests = calloc(nslots * APPSRV__NCLASS, sizeof(*st->requests));
        if (st->requests == NULL)
            return -ENOMEM;
        st->nslots = nslots;
        st->nhttp = nh;
        st->nline = nl;
    }
    return 0;
}

int appsrv_server_run(appsrv_server_t *srv)
{
    if (srv == NULL)
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    if (srv->nlisteners == 0)
        return -EINVAL;
    srv->ran = true;
    appsrv__server_prepare(srv);
    if (srv->cfg.metrics) {
        int rc = alloc_request_slots(srv);
        if (rc < 0)
            return rc;
    }
    obs_update(srv);
    for (int i = 0; i < srv->nworkers; i++) {
        int rc = worker_setup(&srv->workers[i]);
        if (rc < 0)
            return rc;
    }
    /* Every worker watches the listeners: ready for systemd (Type=notify). */
    notify(&srv->workers[0], "READY=1");
    /* A stop that came before run still counts (as one: the drain delay
     * still applies). */
    if (atomic_load(&srv->stopping))
        for (int i = 0; i < srv->nworkers; i++)
            appsrv__loop_wake(&srv->workers[i].w.loop);

    int started = 1, rc = 0;
    for (; started < srv->nworkers; started++) {
        sworker_t *sw = &srv->workers[started];
        /* Workers take no asynchronous signals: the host's handlers run on
         * its own thread, and appsrv_server_stop() reaches every loop. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int err = pthread_create(&sw->w.thread, NULL, worker_main, sw);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (err != 0) {
            rc = -err;
            appsrv_server_stop(srv);
            break;
        }
    }
    worker_main(&srv->workers[0]);
    for (int i = 1; i < started; i++)
        pthread_join(srv->workers[i].w.thread, NULL);
    return rc;
}

/* Objects the library's own features keep for the server's life (static
 * directories: static.c), released at appsrv_server_free(). */
struct owned {
    struct owned *next;
    void *p;
    void (*free_fn)(void *p);
};

int appsrv__server_own(appsrv_server_t *srv, void *p, void (*free_fn)(void *p))
{
    if (srv->ran) {
        free_fn(p);
        return APPSRV_ESTATE;
    }
    struct owned *o = malloc(sizeof(*o));
    if (o == NULL) {
        free_fn(p);
        return -ENOMEM;
    }
    *o = (struct owned){.next = srv->owned, .p = p, .free_fn = free_fn};
    srv->owned = o;
    return 0;
}

static void owned_free(appsrv_server_t *srv)
{
    while (srv->owned != NULL) {
        struct owned *o = srv->owned;
        srv->owned = o->next;
        o->free_fn(o->p);
        free(o);
    }
}

void appsrv_server_free(appsrv_server_t *srv)
{
    if (srv == NULL)
        return;
    for (int i = 0; i < srv->nlisteners; i++)
        if (srv->listeners[i].fd >= 0)
            close(srv->listeners[i].fd);
    for (int i = 0; i < srv->nworkers; i++) {
        appsrv__worker_t *w = &srv->workers[i].w;
        /* Held connections left here mean the host never finished a
         * response (a broken contract): reclaim the memory anyway. */
        appsrv__conn_close_all(w, true);
        appsrv__timers_dispose(w);
        if (w->wlog != NULL)
            appsrv__wlog_dispose(w->wlog);
        w->wlog = NULL;
        free(w->stats.requests);
        appsrv__pool_dispose(&w->pool);
        appsrv__async_dispose(&w->async);
        appsrv__loop_dispose(&w->loop);
    }
    free(srv->workers);
    if (srv->has_alog && srv->alog.own_fd)
        close(srv->alog.fd);
    appsrv__line_routes_free(&srv->line_routes);
    appsrv__ws_routes_free(srv->ws_routes);
    appsrv__router_free(srv->router);
    appsrv__mw_free(&srv->mw);
    owned_free(srv);
    while (srv->route_exs != NULL) {
        appsrv__route_ex_t *ex = srv->route_exs;
        srv->route_exs = ex->next;
        free(ex);
    }
    free(srv->trust);
    appsrv__climit_free(srv->climit);
    free(srv);
}

/* ------------------------------------------------- observability */

int appsrv_access_log_fd(appsrv_server_t *srv, int fd, appsrv_log_format_t format)
{
    if (srv == NULL || fd < 0 || (format != APPSRV_LOG_COMBINED && format != APPSRV_LOG_JSON))
        return -EINVAL;
    if (srv->ran || srv->has_alog)
        return APPSRV_ESTATE;
    srv->alog = (appsrv__alog_t){.fd = fd, .own_fd = false, .format = format};
    for (int i = 0; i < srv->nworkers; i++) {
        sworker_t *sw = &srv->workers[i];
        int rc = appsrv__wlog_init(&sw->wlog, &srv->alog, &sw->w.loop, &sw->w.stats, &srv->cfg);
        if (rc < 0) {
            for (int j = 0; j < i; j++) {
                appsrv__wlog_dispose(srv->workers[j].w.wlog);
                srv->workers[j].w.wlog = NULL;
            }
            return rc;
        }
        sw->w.wlog = &sw->wlog;
    }
    srv->has_alog = true;
    obs_update(srv);
    return 0;
}

int appsrv_access_log_file(appsrv_server_t *srv, const char *path, appsrv_log_format_t format)
{
    if (srv == NULL || path == NULL)
        return -EINVAL;
    if (srv->ran || srv->has_alog)
        return APPSRV_ESTATE;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = appsrv_access_log_fd(srv, fd, format);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    srv->alog.own_fd = true;
    return 0;
}

int appsrv__server_enable_metrics(appsrv_server_t *srv)
{
    if (srv->ran)
        return APPSRV_ESTATE;
    srv->cfg.metrics = true;
    obs_update(srv);
    return 0;
}

int appsrv__server_nworkers(const appsrv_server_t *srv)
{
    return srv->nworkers;
}

const appsrv__router_t *appsrv__server_router(const appsrv_server_t *srv)
{
    return srv->router;
}

const appsrv__line_routes_t *appsrv__server_line_routes(const appsrv_server_t *srv)
{
    return &srv->line_routes;
}

int64_t appsrv__server_start_time(const appsrv_server_t *srv)
{
    return srv->start_time_s;
}

/* ------------------------------------------- middleware, loops (issue 17) */

int appsrv__server_use(appsrv_server_t *srv, appsrv_before_cb before, appsrv_after_cb after,
                       void *user, void (*free_user)(void *user))
{
    if (srv == NULL)
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    return appsrv__mw_add(&srv->mw, before, after, user, free_user);
}

int appsrv_use(appsrv_server_t *srv, appsrv_before_cb before, appsrv_after_cb after, void *user)
{
    return appsrv__server_use(srv, before, after, user, NULL);
}

int appsrv_set_error_responder(appsrv_server_t *srv, appsrv_error_cb cb, void *user)
{
    if (srv == NULL)
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    srv->mw.on_error = cb;
    srv->mw.error_user = user;
    srv->mw.active = cb != NULL || srv->mw.nhooks > 0;
    return 0;
}

appsrv_loop_t *appsrv_server_loop(appsrv_server_t *srv, int i)
{
    if (srv == NULL || i < 0 || i >= srv->nworkers)
        return NULL;
    return (appsrv_loop_t *)(void *)&srv->workers[i].w;
}

/* ------------------------------------------------- test and fuzz hooks */

appsrv__worker_t *appsrv__server_worker(appsrv_server_t *srv, int i)
{
    return &srv->workers[i].w;
}

void appsrv__server_adopt(appsrv_server_t *srv, int i, int fd, bool line)
{
    sworker_t *sw = &srv->workers[i];
    atomic_fetch_add(&srv->nconns, 1);
    if (line)
        appsrv__conn_accepted(&sw->w, fd, NULL, &appsrv__line_proto, &srv->line_routes,
                              &appsrv__transport_plain, NULL);
    else
        appsrv__conn_accepted(&sw->w, fd, NULL, &appsrv__http_proto, srv->router,
                              &appsrv__transport_plain, NULL);
}

int appsrv__server_pass(appsrv_server_t *srv, int i)
{
    return pass(&srv->workers[i], 0);
}

void appsrv__server_expire_drain(appsrv_server_t *srv, int i)
{
    srv->workers[i].drain_expired = true;
}

int appsrv__server_nconns(appsrv_server_t *srv)
{
    return atomic_load(&srv->nconns);
}

/* ------------------------------------------------- deployment (issue 18) */

/* An adopted socket must be a listening stream socket; it becomes
 * non-blocking and close-on-exec. */
static int check_listening(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);
    if (fd < 0)
        return -EBADF;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0)
        return -errno; /* -EBADF, -ENOTSOCK */
    if (v != SOCK_STREAM)
        return -EINVAL;
    len = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0)
        return -errno;
    if (!v)
        return -EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

static int adopt_listener(appsrv_server_t *srv, const appsrv__proto_t *proto, void *proto_data,
                          const appsrv__transport_t *tp, void *tp_data, int fd)
{
    int rc = listener_room(srv);
    if (rc == 0)
        rc = check_listening(fd);
    if (rc < 0)
        return rc;
    return attach_listener(srv, proto, proto_data, tp, tp_data, fd);
}

int appsrv_listen_http_fd(appsrv_server_t *srv, int fd)
{
    return adopt_listener(srv, &appsrv__http_proto, srv != NULL ? srv->router : NULL,
                          &appsrv__transport_plain, NULL, fd);
}

int appsrv_listen_https_fd(appsrv_server_t *srv, int fd, appsrv_tls_t *tls)
{
    int rc = appsrv__tls_usable(tls);
    if (rc < 0)
        return rc;
    return adopt_listener(srv, &appsrv__http_proto, srv != NULL ? srv->router : NULL,
                          &appsrv__transport_tls, tls, fd);
}

int appsrv_listen_line_fd(appsrv_server_t *srv, int fd)
{
    return adopt_listener(srv, &appsrv__line_proto, srv != NULL ? &srv->line_routes : NULL,
                          &appsrv__transport_plain, NULL, fd);
}

bool appsrv_server_draining(const appsrv_server_t *srv)
{
    return srv != NULL && atomic_load(&srv->stopping);
}
