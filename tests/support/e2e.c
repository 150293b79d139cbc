/* SPDX-License-Identifier: MIT */
/*
 * e2e.c - the in-process server of the end-to-end tests (contract in
 * e2e.h): appsrv_server_run() on a background thread, bounded stop and
 * join, plus small helpers (atomics, patterns, dates, a TCP pair). Public
 * API only; never asserts, so client threads may call it.
 */
#include "e2e.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/* ---------------------------------------------------------------- misc */

int e2e_wait_atomic(atomic_int *v, int want, int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    int cur;
    while ((cur = atomic_load(v)) < want && e2e_now_ms() < end)
        poll(NULL, 0, 2);
    return cur;
}

/* ---------------------------------------------------------------- server */

void config(appsrv_config_t *cfg)
{
    appsrv_config_init(cfg);
    cfg->threads = 1;
}

appsrv_config_t base_cfg(void)
{
    appsrv_config_t cfg;
    config(&cfg);
    return cfg;
}

static void *server_thread(void *arg)
{
    e2e_server_t *s = arg;
    s->run_rc = appsrv_server_run(s->srv);
    atomic_store(&s->run_returned, true);
    return NULL;
}

int e2e_server_start(e2e_server_t *s, const appsrv_config_t *cfg, const e2e_route_t *routes,
                     size_t n, unsigned listeners)
{
    return e2e_server_start_with(s, cfg, routes, n, listeners, NULL, NULL);
}

int e2e_server_start_with(e2e_server_t *s, const appsrv_config_t *cfg, const e2e_route_t *routes,
                          size_t n, unsigned listeners, e2e_setup_cb setup, void *arg)
{
    appsrv_config_t def;
    int rc;

    memset(s, 0, sizeof(*s));
    atomic_init(&s->run_returned, false);
    if (cfg == NULL) {
        appsrv_config_init(&def);
        def.threads = 1;
        cfg = &def;
    }
    rc = appsrv_server_new(&s->srv, cfg);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (routes[i].line)
            rc = appsrv_route_line(s->srv, routes[i].pattern, routes[i].handler, routes[i].user);
        else
            rc = appsrv_route(s->srv, routes[i].method, routes[i].pattern, routes[i].handler,
                              routes[i].user);
        if (rc < 0)
            goto free_srv;
    }
    if (setup != NULL) {
        rc = setup(s->srv, arg);
        if (rc < 0)
            goto free_srv;
    }
    if (listeners & E2E_HTTP) {
        rc = appsrv_listen_http(s->srv, "127.0.0.1", 0);
        if (rc < 0)
            goto free_srv;
        s->port = rc;
    }
    if (listeners & E2E_LINE) {
        rc = appsrv_listen_line(s->srv, "127.0.0.1", 0);
        if (rc < 0)
            goto free_srv;
        s->line_port = rc;
    }
    rc = -pthread_create(&s->thread, NULL, server_thread, s);
    if (rc < 0)
        goto free_srv;
    s->thread_started = true;
    return 0;

free_srv:
    appsrv_server_free(s->srv);
    s->srv = NULL;
    return rc;
}

void e2e_server_request_stop(e2e_server_t *s)
{
    appsrv_server_stop(s->srv);
}

int e2e_server_join(e2e_server_t *s, int timeout_ms)
{
    if (!s->thread_started || s->joined)
        return 0;
    int64_t end = e2e_now_ms() + timeout_ms;
    while (!atomic_load(&s->run_returned)) {
        if (e2e_now_ms() >= end)
            return -ETIMEDOUT;
        poll(NULL, 0, 2);
    }
    pthread_join(s->thread, NULL);
    s->joined = true;
    return 0;
}

int e2e_server_stop(e2e_server_t *s, int timeout_ms)
{
    if (s->srv == NULL)
        return -EINVAL;
    appsrv_server_stop(s->srv);
    if (e2e_server_join(s, timeout_ms) < 0)
        return -ETIMEDOUT;
    appsrv_server_free(s->srv);
    s->srv = NULL;
    return s->run_rc;
}

int tcp_pair(int *client, int *server)
{
    int lfd, cfd, sfd, rc;

    lfd = appsrv_listen("127.0.0.1", 0, 1, 0);
    if (lfd < 0)
        return lfd;
    rc = appsrv_local_port(lfd);
    if (rc < 0)
        goto close_listener;
    cfd = appsrv_connect("127.0.0.1", rc, 5000);
    if (cfd < 0) {
        rc = cfd;
        goto close_listener;
    }
    sfd = appsrv_accept(lfd, NULL, 0);
    if (sfd < 0) {
        rc = sfd;
        close(cfd);
        goto close_listener;
    }
    close(lfd);
    *client = cfd;
    *server = sfd;
    return 0;

close_listener:
    close(lfd);
    return rc;
}
