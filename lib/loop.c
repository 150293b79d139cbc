/* SPDX-License-Identifier: MIT */
/*
 * loop.c - one epoll loop per worker thread: fd watchers, a binary-heap of
 * one-shot timers, an eventfd to wake the loop from other threads or from
 * a signal handler, and the cached clock and Date string (formatted by
 * status.c). Called by sworker.c (run, wake), async.c (wake) and conn.c,
 * res.c, sse.c (watch, timers). epoll_ctl/epoll_wait
 * stay behind the few functions here. Invariant: a timer is in the heap
 * iff its idx != 0; callbacks may start or stop any timer, including the
 * one being fired, because it is removed from the heap before its call.
 */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "status.h"

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t appsrv__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void appsrv__loop_update_time(appsrv__loop_t *loop)
{
    loop->now_ms = mono_ms();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != loop->date_sec) {
        loop->date_sec = ts.tv_sec;
        appsrv__http_date(loop->date, ts.tv_sec);
    }
}

int appsrv__loop_init(appsrv__loop_t *loop, appsrv__io_cb on_wake)
{
    int rc;

    memset(loop, 0, sizeof(*loop));
    loop->date_sec = -1;
    loop->wakefd = -1;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        return -errno;
    loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->wakefd < 0) {
        rc = -errno;
        goto close_ep;
    }
    loop->wake_io.fd = loop->wakefd;
    loop->wake_io.cb = on_wake;
    rc = appsrv__loop_add(loop, &loop->wake_io, EPOLLIN);
    if (rc < 0)
        goto close_wake;
    appsrv__loop_update_time(loop);
    return 0;

close_wake:
    close(loop->wakefd);
close_ep:
    close(loop->epfd);
    loop->epfd = loop->wakefd = -1;
    return rc;
}

void appsrv__loop_dispose(appsrv__loop_t *loop)
{
    if (loop->wakefd >= 0)
        close(loop->wakefd);
    if (loop->epfd >= 0)
        close(loop->epfd);
    loop->wakefd = loop->epfd = -1;
    free(loop->heap);
    loop->heap = NULL;
    loop->nheap = loop->heap_cap = 0;
}

static int ctl(appsrv__loop_t *loop, int op, appsrv__io_t *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(loop->epfd, op, io->fd, &ev) < 0)
        return -errno;
    return 0;
}

int appsrv__loop_add(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events)
{
    return ctl(loop, EPOLL_CTL_ADD, io, events);
}

int appsrv__loop_mod(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events)
{
    return ctl(loop, EPOLL_CTL_MOD, io, events);
}

int appsrv__loop_del(appsrv__loop_t *loop, appsrv__io_t *io)
{
    return ctl(loop, EPOLL_CTL_DEL, io, 0);
}

void appsrv__loop_wake(appsrv__loop_t *loop)
{
    uint64_t one = 1;
    /* write(2) is async-signal-safe. A full counter (EAGAIN) already means
     * "wake up", so the result needs no check; errno is restored for the
     * signal handler's caller. */
    int saved = errno;
    ssize_t rc = write(loop->wakefd, &one, sizeof(one));
    (void)rc;
    errno = saved;
}

void appsrv__loop_wake_ack(appsrv__loop_t *loop)
{
    uint64_t v;
    while (read(loop->wakefd, &v, sizeof(v)) < 0 && errno == EINTR)
        ;
}

/* ---- timer heap (1-based) ---- */

static void heap_set(appsrv__loop_t *loop, uint32_t i, appsrv__timer_t *t)
{
    loop->heap[i] = t;
    t->idx = i;
}

static void sift_up(appsrv__loop_t *loop, uint32_t i)
{
    appsrv__timer_t *t = loop->heap[i];
    while (i > 1) {
        appsrv__timer_t *p = loop->heap[i / 2];
        if (p->when_ms <= t->when_ms)
            break;
        heap_set(loop, i, p);
        i /= 2;
    }
    heap_set(loop, i, t);
}

static void sift_down(appsrv__loop_t *loop, uint32_t i)
{
    appsrv__timer_t *t = loop->heap[i];
    uint32_t n = loop->nheap;
    for (;;) {
        uint32_t c = i * 2;
        if (c > n)
            break;
        if (c + 1 <= n && loop->heap[c + 1]->when_ms < loop->heap[c]->when_ms)
            c++;
        if (loop->heap[c]->when_ms >= t->when_ms)
            break;
        heap_set(loop, i, loop->heap[c]);
        i = c;
    }
    heap_set(loop, i, t);
}

void appsrv__timer_stop(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    uint32_t i = t->idx;
    if (i == 0)
        return;
    appsrv__timer_t *last = loop->heap[loop->nheap--];
    t->idx = 0;
    if (last == t)
        return;
    heap_set(loop, i, last);
    if (i > 1 && loop->heap[i / 2]->when_ms > last->when_ms)
        sift_up(loop, i);
    else
        sift_down(loop, i);
}

int appsrv__timer_start(appsrv__loop_t *loop, appsrv__timer_t *t, uint64_t when_ms)
{
    if (t->idx != 0) {
        uint64_t old = t->when_ms;
        t->when_ms = when_ms;
        if (when_ms < old)
            sift_up(loop, t->idx);
        else
            sift_down(loop, t->idx);
        return 0;
    }
    if (loop->nheap + 1 >= loop->heap_cap) {
        uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 256;
        appsrv__timer_t **h = realloc(loop->heap, cap * sizeof(*h));
        if (h == NULL)
            return -ENOMEM;
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->when_ms = when_ms;
    loop->nheap++;
    heap_set(loop, loop->nheap, t);
    sift_up(loop, loop->nheap);
    return 0;
}

static void run_timers(appsrv__loop_t *loop)
{
    /* Bounded by the timers present now: a callback that re-arms for a
     * time already past runs again next pass, never in a loop here. */
    for (uint32_t n = loop->nheap; n > 0 && loop->nheap > 0 &&
                                   loop->heap[1]->when_ms <= loop->now_ms;
         n--) {
        appsrv__timer_t *t = loop->heap[1];
        appsrv__timer_stop(loop, t);
        t->cb(loop, t);
    }
}

int appsrv__loop_run_once(appsrv__loop_t *loop, int max_wait_ms)
{
    int timeout = max_wait_ms;
    if (loop->nheap > 0) {
        uint64_t when = loop->heap[1]->when_ms;
        uint64_t wait = when > loop->now_ms ? when - loop->now_ms : 0;
        if (timeout < 0 || wait < (uint64_t)timeout)
            timeout = (int)wait;
    }
    int n = epoll_wait(loop->epfd, loop->events, APPSRV__MAX_EVENTS, timeout);
    int err = errno;
    appsrv__loop_update_time(loop);
    if (n < 0) {
        if (err != EINTR)
            return -err;
        n = 0;
    }
    for (int i = 0; i < n; i++) {
        appsrv__io_t *io = loop->events[i].data.ptr;
        io->cb(loop, io, loop->events[i].events);
    }
    run_timers(loop);
    return n;
}
