/* SPDX-License-Identifier: MIT */
/*
 * timer.c - public one-shot and repeating timers on a worker's loop, and
 * tasks posted to that loop from any thread. Owns the appsrv_timer_t
 * objects (a doubly linked list per worker, freed when the worker ends)
 * and the posted task items. Calls loop.c (heap timers) and async.c (the
 * completion queue, which wakes the loop); called by the host, and by
 * server.c at a worker's end (appsrv__timers_dispose).
 */
#include "timer.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "async.h"
#include "loop.h"
#include "req.h"

struct appsrv_timer {
    appsrv__timer_t lt; /* first: the heap entry */
    appsrv__worker_t *w;
    appsrv_timer_cb cb;
    void *user;
    uint64_t repeat_ms;
    bool in_cb; /* its callback runs: a free is deferred to its return */
    bool freed;
    appsrv_timer_t *next, *prev;
};

/* A task posted from any thread; freed after it ran or at the end. */
typedef struct task {
    appsrv__aitem_t item;
    appsrv__worker_t *w;
    appsrv_task_cb cb;
    void *user;
} task_t;

/* CLOCK_MONOTONIC in ms, rounded up. Read afresh when a timer is started:
 * the loop's cached now_ms dates from the start of this pass, and a delay
 * counted from it could end early. Rounded up because the loop compares
 * against the clock rounded down: a deadline of floor(now) + delay fires up
 * to 1 ms before the delay has passed. */
static uint64_t now_ms_ceil(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + ((uint64_t)ts.tv_nsec + 999999u) / 1000000u;
}

static appsrv__worker_t *worker_of(appsrv_loop_t *loop)
{
    return (appsrv__worker_t *)(void *)loop;
}

appsrv_loop_t *appsrv_req_loop(const appsrv_req_t *req)
{
    return req != NULL ? (appsrv_loop_t *)(void *)req->conn->w : NULL;
}

static void unlink_timer(appsrv_timer_t *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        t->w->ptimers = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
}

static void timer_fire(appsrv__loop_t *loop, appsrv__timer_t *lt)
{
    appsrv_timer_t *t = appsrv__container_of(lt, appsrv_timer_t, lt);
    /* Re-armed before the call: the callback may stop, restart or free. */
    if (t->repeat_ms > 0)
        appsrv__timer_start(loop, &t->lt, loop->now_ms + t->repeat_ms);
    t->in_cb = true;
    t->cb(t, t->user);
    t->in_cb = false;
    if (t->freed) {
        unlink_timer(t);
        free(t);
    }
}

int appsrv_timer_new(appsrv_loop_t *loop, appsrv_timer_cb cb, void *user, appsrv_timer_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (loop == NULL || cb == NULL || out == NULL)
        return -EINVAL;
    appsrv__worker_t *w = worker_of(loop);
    if (w->timers_closed)
        return APPSRV_ESTATE;
    appsrv_timer_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->lt.cb = timer_fire;
    t->w = w;
    t->cb = cb;
    t->user = user;
    t->next = w->ptimers;
    if (t->next != NULL)
        t->next->prev = t;
    w->ptimers = t;
    *out = t;
    return 0;
}

int appsrv_timer_start(appsrv_timer_t *t, uint64_t delay_ms, uint64_t repeat_ms)
{
    if (t == NULL || t->freed || delay_ms > APPSRV_TIMER_MAX_MS || repeat_ms > APPSRV_TIMER_MAX_MS)
        return -EINVAL;
    t->repeat_ms = repeat_ms;
    return appsrv__timer_start(&t->w->loop, &t->lt, now_ms_ceil() + delay_ms);
}

void appsrv_timer_stop(appsrv_timer_t *t)
{
    if (t == NULL)
        return;
    t->repeat_ms = 0;
    if (appsrv__timer_armed(&t->lt))
        appsrv__timer_stop(&t->w->loop, &t->lt);
}

bool appsrv_timer_active(const appsrv_timer_t *t)
{
    return t != NULL && !t->freed && appsrv__timer_armed(&t->lt);
}

void appsrv_timer_free(appsrv_timer_t *t)
{
    if (t == NULL || t->freed)
        return;
    appsrv_timer_stop(t);
    t->freed = true;
    if (t->in_cb)
        return; /* timer_fire() frees it when the callback returns */
    unlink_timer(t);
    free(t);
}

/* ------------------------------------------------------------------ tasks */

static void task_run(appsrv__aitem_t *it)
{
    task_t *k = appsrv__container_of(it, task_t, item);
    k->cb((appsrv_loop_t *)(void *)k->w, k->user);
    free(k);
}

int appsrv_loop_post(appsrv_loop_t *loop, appsrv_task_cb cb, void *user)
{
    if (loop == NULL || cb == NULL)
        return -EINVAL;
    task_t *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return -ENOMEM;
    appsrv__worker_t *w = worker_of(loop);
    k->item.cb = task_run;
    atomic_init(&k->item.queued, false);
    k->w = w;
    k->cb = cb;
    k->user = user;
    int rc = 0;
    appsrv__async_lock(&w->async);
    if (w->timers_closed)
        rc = APPSRV_ESTATE;
    else
        appsrv__async_post_locked(&w->async, &k->item);
    appsrv__async_unlock(&w->async);
    if (rc < 0)
        free(k);
    return rc;
}

void appsrv__timers_dispose(appsrv__worker_t *w)
{
    appsrv__async_t *a = &w->async;
    appsrv__async_lock(a);
    w->timers_closed = true;
    appsrv__aitem_t *it = a->head;
    while (it != NULL) {
        appsrv__aitem_t *next = it->next;
        if (it->cb == task_run) {
            appsrv__async_unlink_locked(a, it);
            free(appsrv__container_of(it, task_t, item));
        }
        it = next;
    }
    appsrv__async_unlock(a);
    while (w->ptimers != NULL) {
        appsrv_timer_t *t = w->ptimers;
        if (appsrv__timer_armed(&t->lt))
            appsrv__timer_stop(&w->loop, &t->lt);
        w->ptimers = t->next;
        free(t);
    }
}
