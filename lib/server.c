/* SPDX-License-Identifier: MIT */
/*
 * server.c - the server object: configuration, routes, trusted proxies,
 * the access log, middleware and the error responder, the objects the
 * library keeps for the server's life, and the free. Each worker owns one
 * loop, block pool and completion queue (worker.h) and watches every
 * listener; a listener names the protocol table (http.c, line.c) and
 * transport (plain, or TLS with its context: tls.h) its connections get,
 * so nothing here names a protocol's bytes or a cipher. Listeners and
 * accepting are listen.c, the worker threads, run and the graceful stop
 * sworker.c; server_state.h is the state the three share.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alog.h"
#include "async.h"
#include "conn.h"
#include "http.h"
#include "line.h"
#include "listen.h"
#include "loop.h"
#include "mw.h"
#include "climit.h"
#include "trust.h"
#include "pool.h"
#include "router.h"
#include "server_state.h"
#include "stats.h"
#include "sworker.h"
#include "timer.h"
#include "transport.h"
#include "ws.h"

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

/* ---------------------------------------------------------------- server */

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
        appsrv__sworker_t *sw = &srv->workers[i];
        sw->srv = srv;
        sw->id = i;
        sw->w.cfg = &srv->cfg;
        sw->w.nconns_total = &srv->nconns;
        sw->w.stats.worker = i;
        sw->w.mw = &srv->mw;
        rc = appsrv__sworker_init(sw);
        if (rc < 0)
            goto free_loops;
        srv->nworkers++;
    }
    appsrv__server_prepare(srv);
    appsrv__sworker_obs_update(srv);
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

/* Objects the library's own features keep for the server's life (static
 * directories: static.c), released at appsrv_server_free(). */
struct appsrv__owned {
    struct appsrv__owned *next;
    void *p;
    void (*free_fn)(void *p);
};

int appsrv__server_own(appsrv_server_t *srv, void *p, void (*free_fn)(void *p))
{
    if (srv->ran) {
        free_fn(p);
        return APPSRV_ESTATE;
    }
    struct appsrv__owned *o = malloc(sizeof(*o));
    if (o == NULL) {
        free_fn(p);
        return -ENOMEM;
    }
    *o = (struct appsrv__owned){.next = srv->owned, .p = p, .free_fn = free_fn};
    srv->owned = o;
    return 0;
}

static void owned_free(appsrv_server_t *srv)
{
    while (srv->owned != NULL) {
        struct appsrv__owned *o = srv->owned;
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
        appsrv__sworker_t *sw = &srv->workers[i];
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
    appsrv__sworker_obs_update(srv);
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
    appsrv__sworker_obs_update(srv);
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

/* ------------------------------------------------------ middleware, loops */

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
    appsrv__sworker_t *sw = &srv->workers[i];
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
    return appsrv__sworker_pass(&srv->workers[i], 0);
}

void appsrv__server_expire_drain(appsrv_server_t *srv, int i)
{
    srv->workers[i].drain_expired = true;
}

int appsrv__server_nconns(appsrv_server_t *srv)
{
    return atomic_load(&srv->nconns);
}
