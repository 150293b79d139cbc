/* SPDX-License-Identifier: MIT */
/*
 * sworker.c - the server's worker threads: appsrv_server_run() (request
 * counters by route, each worker's watch on the listeners, READY=1, one
 * thread per worker beyond the caller's), each worker's loop passes, and
 * the graceful stop: appsrv_server_stop() only sets a flag and writes each
 * loop's eventfd, so it is async-signal-safe; each worker then waits the
 * drain delay, lets go of the listeners (listen.c), drains its connections
 * (conn.c), closes idle ones after the grace and forces the rest at the
 * drain timeout. Reports to systemd (cfg.sd_notify).
 */
#include "sworker.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include "alog.h"
#include "async.h"
#include "conn.h"
#include "listen.h"
#include "loop.h"
#include "pool.h"
#include "router.h"
#include "server_state.h"
#include "stats.h"
#include "timer.h"

/* Whether requests need an entry at all: one flag per worker, read on
 * the request path. */
void appsrv__sworker_obs_update(appsrv_server_t *srv)
{
    bool on = srv->cfg.access_log != NULL || srv->has_alog || srv->cfg.metrics;
    for (int i = 0; i < srv->nworkers; i++)
        srv->workers[i].w.obs = on;
}

/* ------------------------------------------------------------------ stop */

static void drain_timeout_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    (void)loop;
    appsrv__sworker_t *sw = appsrv__container_of(t, appsrv__sworker_t, drain_timer);
    sw->drain_expired = true;
}

/* After the idle grace: idle keep-alive connections close gracefully
 * (conn.c); those that took one more request close after its answer. */
static void close_idle(appsrv__sworker_t *sw)
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
    close_idle(appsrv__container_of(t, appsrv__sworker_t, grace_timer));
}

static void begin_drain(appsrv__sworker_t *sw)
{
    appsrv_server_t *srv = sw->srv;
    appsrv__worker_t *w = &sw->w;
    w->draining = true;
    appsrv__listen_unwatch(sw);
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
    appsrv__sworker_t *sw = appsrv__container_of(t, appsrv__sworker_t, delay_timer);
    if (!sw->w.draining)
        begin_drain(sw);
}

/* cfg.sd_notify: a failure is reported, never fatal. */
static void notify(appsrv__sworker_t *sw, const char *state)
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
static void stop_requested(appsrv__sworker_t *sw)
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
    appsrv__sworker_t *sw = appsrv__container_of(loop, appsrv__sworker_t, w.loop);
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

/* A worker of a new server (its fields that name the server are set):
 * its timers, loop and completion queue. Returns 0 or -errno, with
 * nothing left to dispose. */
int appsrv__sworker_init(appsrv__sworker_t *sw)
{
    int rc;
    sw->accept_timer.cb = appsrv__listen_resume_cb;
    sw->drain_timer.cb = drain_timeout_cb;
    sw->delay_timer.cb = drain_delay_cb;
    sw->grace_timer.cb = idle_grace_cb;
    rc = appsrv__loop_init(&sw->w.loop, wake_cb);
    if (rc < 0)
        return rc;
    rc = appsrv__async_init(&sw->w.async, &sw->w.loop);
    if (rc < 0)
        appsrv__loop_dispose(&sw->w.loop);
    return rc;
}

/* ------------------------------------------------------------------- run */

int appsrv__sworker_pass(appsrv__sworker_t *sw, int max_wait_ms)
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
    appsrv__sworker_t *sw = arg;
    appsrv__worker_t *w = &sw->w;
    w->thread = pthread_self();
    /* After a stop, the loop runs until its connections are closed and
     * the host has finished every response it held. */
    while (!(w->draining && w->nconns == 0 && w->nheld == 0)) {
        if (appsrv__sworker_pass(sw, -1) < 0)
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
    appsrv__sworker_obs_update(srv);
    for (int i = 0; i < srv->nworkers; i++) {
        int rc = appsrv__listen_watch(&srv->workers[i]);
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
        appsrv__sworker_t *sw = &srv->workers[started];
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
bool appsrv_server_draining(const appsrv_server_t *srv)
{
    return srv != NULL && atomic_load(&srv->stopping);
}
