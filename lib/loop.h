/* SPDX-License-Identifier: MIT */
/*
 * loop.h - one epoll loop per worker thread: fd watchers, one-shot timers
 * in a binary heap, an eventfd wake-up usable from any thread or a signal
 * handler, and the loop's cached clock and Date string. The loop never
 * owns an fd. Everything but appsrv__loop_wake() runs on the loop's
 * thread.
 */
#ifndef APPSRV_LOOP_H
#define APPSRV_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "common.h"

typedef struct appsrv__loop appsrv__loop_t;
typedef struct appsrv__io appsrv__io_t;
typedef struct appsrv__timer appsrv__timer_t;

typedef void (*appsrv__io_cb)(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events);
typedef void (*appsrv__timer_cb)(appsrv__loop_t *loop, appsrv__timer_t *t);

/* An fd watched by one loop. The loop never owns the fd. */
struct appsrv__io {
    int fd;
    appsrv__io_cb cb;
};

/* A one-shot timer in the loop's binary heap. idx 0: not armed. */
struct appsrv__timer {
    uint64_t when_ms;
    uint32_t idx;
    appsrv__timer_cb cb;
};

#define APPSRV__MAX_EVENTS 256

struct appsrv__loop {
    int epfd;
    int wakefd; /* eventfd: appsrv__loop_wake() from any thread or signal */
    appsrv__io_t wake_io;
    uint64_t now_ms;        /* CLOCK_MONOTONIC, refreshed once per pass */
    int64_t date_sec;       /* the second date[] describes */
    char date[32];          /* IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT" */
    appsrv__timer_t **heap; /* heap[1..nheap] */
    uint32_t nheap, heap_cap;
    struct epoll_event events[APPSRV__MAX_EVENTS];
};

int appsrv__loop_init(appsrv__loop_t *loop, appsrv__io_cb on_wake);
void appsrv__loop_dispose(appsrv__loop_t *loop);
/* events: EPOLL* bits; edge-triggered connections pass EPOLLET. */
int appsrv__loop_add(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events);
int appsrv__loop_mod(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events);
int appsrv__loop_del(appsrv__loop_t *loop, appsrv__io_t *io);
/* One pass: wait (bounded by the next timer and max_wait_ms), dispatch I/O,
 * then expired timers. Returns the number of I/O events or -errno. */
int appsrv__loop_run_once(appsrv__loop_t *loop, int max_wait_ms);
/* Async-signal-safe, any thread. */
void appsrv__loop_wake(appsrv__loop_t *loop);
/* Drains the eventfd counter (from the wake callback). */
void appsrv__loop_wake_ack(appsrv__loop_t *loop);
/* Arms (or re-arms) t to fire at when_ms. Returns 0 or -ENOMEM. */
int appsrv__timer_start(appsrv__loop_t *loop, appsrv__timer_t *t, uint64_t when_ms);
void appsrv__timer_stop(appsrv__loop_t *loop, appsrv__timer_t *t);
static inline bool appsrv__timer_armed(const appsrv__timer_t *t)
{
    return t->idx != 0;
}
/* Refreshes now_ms and the Date string. */
void appsrv__loop_update_time(appsrv__loop_t *loop);
/* Microseconds, CLOCK_MONOTONIC (for the access log). */
uint64_t appsrv__now_us(void);

#endif /* APPSRV_LOOP_H */
