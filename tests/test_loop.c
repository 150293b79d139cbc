/* SPDX-License-Identifier: MIT */
/*
 * test_loop.c - unit tests of the event loop (lib/loop.c) through its
 * internal API: the timer heap's order with many timers, stop, restart
 * and re-arm, timers stopped or started from another timer's callback,
 * the eventfd wake-up from another thread and from a signal handler, and
 * io add/mod/del (level and edge triggered). No server, no sockets but a
 * local socketpair. Every wait is bounded; a timeout says what it saw.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "e2e.h"
#include "loop.h"

#define NTIMERS 2000

/* ------------------------------------------------------------- fixtures */

/* What the callbacks saw. Timers live in an array; a timer's index is its
 * position in it. */
typedef struct seen {
    appsrv__timer_t t[NTIMERS];
    int order[NTIMERS * 2]; /* indices in firing order */
    uint64_t fired_when[NTIMERS * 2];
    int nfired;
    int stop_victim;     /* the callback of timer 0 stops this one (-1: none) */
    int start_victim;    /* ... and starts this one, due now (-1: none) */
    int rearm_self;      /* times a callback re-arms itself in the past */
    atomic_int wakes;    /* wake callbacks */
    atomic_int io_calls; /* io callbacks */
    uint32_t io_last;    /* the events of the last one */
} seen_t;

static seen_t g_seen;
static appsrv__loop_t *volatile g_sig_loop;

static int index_of(appsrv__timer_t *t)
{
    return (int)(t - g_seen.t);
}

static void on_timer(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    int i = index_of(t);
    if (g_seen.nfired < (int)ARRAY_LEN(g_seen.order)) {
        g_seen.order[g_seen.nfired] = i;
        g_seen.fired_when[g_seen.nfired] = t->when_ms;
    }
    g_seen.nfired++;
    if (i == 0 && g_seen.stop_victim >= 0)
        appsrv__timer_stop(loop, &g_seen.t[g_seen.stop_victim]);
    if (i == 0 && g_seen.start_victim >= 0)
        appsrv__timer_start(loop, &g_seen.t[g_seen.start_victim], loop->now_ms);
    if (g_seen.rearm_self > 0) {
        g_seen.rearm_self--;
        appsrv__timer_start(loop, t, loop->now_ms - 1); /* already due */
    }
}

static void on_wake(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events)
{
    (void)io;
    (void)events;
    atomic_fetch_add(&g_seen.wakes, 1);
    appsrv__loop_wake_ack(loop);
}

static void loop_open(appsrv__loop_t *loop)
{
    memset(&g_seen, 0, sizeof(g_seen));
    g_seen.stop_victim = g_seen.start_victim = -1;
    for (int i = 0; i < NTIMERS; i++)
        g_seen.t[i].cb = on_timer;
    int rc = appsrv__loop_init(loop, on_wake);
    cr_assert_eq(rc, 0, "appsrv__loop_init: %s", strerror(-rc));
}

/* Runs passes until `done` timers fired, at most timeout_ms. */
static void run_until_fired(appsrv__loop_t *loop, int done, int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    while (g_seen.nfired < done && e2e_now_ms() < end) {
        int rc = appsrv__loop_run_once(loop, 50);
        cr_assert_geq(rc, 0, "run_once: %s", strerror(-rc));
    }
    cr_assert_geq(g_seen.nfired, done, "%d of %d timers fired within %d ms (%u still armed)",
                  g_seen.nfired, done, timeout_ms, loop->nheap);
}

/* ---------------------------------------------------------- timer heap */

Test(loop, init_dispose_and_clock, .timeout = 10)
{
    int fds0 = e2e_fd_count();
    appsrv__loop_t loop;
    loop_open(&loop);
    cr_assert_eq(e2e_fd_count(), fds0 + 2, "an epoll fd and an eventfd");
    cr_assert(e2e_is_imf_fixdate(loop.date), "Date '%s'", loop.date);
    uint64_t t0 = loop.now_ms;
    e2e_pause_ms(20);
    appsrv__loop_update_time(&loop);
    cr_assert_geq(loop.now_ms, t0 + 20, "now_ms %llu after %llu + 20 ms",
                  (unsigned long long)loop.now_ms, (unsigned long long)t0);
    appsrv__loop_dispose(&loop);
    appsrv__loop_dispose(&loop); /* twice is harmless */
    cr_assert_eq(e2e_fd_count(), fds0);
}

/* Many timers at shuffled times, a third of them stopped from the middle
 * of the heap: the rest fire once each, in time order. */
Test(loop, timer_heap_orders_many_timers, .timeout = 20)
{
    appsrv__loop_t loop;
    loop_open(&loop);
    uint64_t base = loop.now_ms;
    uint32_t x = 12345;
    for (int i = 0; i < NTIMERS; i++) {
        x = x * 1103515245u + 12345u;
        /* many share a time; all due within 200 ms */
        cr_assert_eq(appsrv__timer_start(&loop, &g_seen.t[i], base + (x >> 16) % 200), 0);
        cr_assert(appsrv__timer_armed(&g_seen.t[i]));
    }
    cr_assert_eq(loop.nheap, NTIMERS);
    int stopped = 0;
    for (int i = 0; i < NTIMERS; i += 3, stopped++) {
        appsrv__timer_stop(&loop, &g_seen.t[i]);
        cr_assert_not(appsrv__timer_armed(&g_seen.t[i]));
    }
    cr_assert_eq(loop.nheap, (uint32_t)(NTIMERS - stopped));
    run_until_fired(&loop, NTIMERS - stopped, 5000);
    cr_assert_eq(g_seen.nfired, NTIMERS - stopped, "%d fired", g_seen.nfired);
    cr_assert_eq(loop.nheap, 0);
    for (int k = 0; k < g_seen.nfired; k++) {
        cr_assert_neq(g_seen.order[k] % 3, 0, "stopped timer %d fired", g_seen.order[k]);
        if (k > 0)
            cr_assert_geq(g_seen.fired_when[k], g_seen.fired_when[k - 1],
                          "timer %d (due %llu) fired after one due %llu", g_seen.order[k],
                          (unsigned long long)g_seen.fired_when[k],
                          (unsigned long long)g_seen.fired_when[k - 1]);
        cr_assert_not(appsrv__timer_armed(&g_seen.t[g_seen.order[k]]));
    }
    appsrv__loop_dispose(&loop);
}

/* Re-arming earlier (sift up) and later (sift down), stopping twice,
 * restarting after firing; a timer never fires early. */
Test(loop, timer_stop_restart_rearm, .timeout = 10)
{
    appsrv__loop_t loop;
    loop_open(&loop);
    uint64_t now = loop.now_ms;
    appsrv__timer_t *a = &g_seen.t[1], *b = &g_seen.t[2], *c = &g_seen.t[3];
    cr_assert_eq(appsrv__timer_start(&loop, a, now + 60000), 0);
    cr_assert_eq(appsrv__timer_start(&loop, b, now + 30), 0);
    cr_assert_eq(appsrv__timer_start(&loop, c, now + 20), 0);
    cr_assert_eq(appsrv__timer_start(&loop, a, now + 10), 0);    /* earlier */
    cr_assert_eq(appsrv__timer_start(&loop, c, now + 60000), 0); /* later */
    cr_assert_eq(loop.nheap, 3, "re-arming must not add a timer");
    run_until_fired(&loop, 2, 3000);
    cr_assert_eq(g_seen.order[0], 1, "a (10 ms) first, got %d", g_seen.order[0]);
    cr_assert_eq(g_seen.order[1], 2, "b (30 ms) second, got %d", g_seen.order[1]);
    cr_assert_geq(loop.now_ms, now + 30, "b fired early");
    cr_assert(appsrv__timer_armed(c));
    appsrv__timer_stop(&loop, c);
    appsrv__timer_stop(&loop, c); /* not armed: a no-op */
    cr_assert_not(appsrv__timer_armed(c));
    cr_assert_eq(loop.nheap, 0);
    /* a fired timer starts again */
    cr_assert_eq(appsrv__timer_start(&loop, a, loop.now_ms + 5), 0);
    run_until_fired(&loop, 3, 3000);
    cr_assert_eq(g_seen.order[2], 1);
    /* a callback re-arming itself in the past runs once per pass, not in
     * a loop within one pass */
    g_seen.rearm_self = 3;
    cr_assert_eq(appsrv__timer_start(&loop, b, loop.now_ms), 0);
    cr_assert_geq(appsrv__loop_run_once(&loop, 0), 0);
    cr_assert_eq(g_seen.nfired, 4, "one pass fired %d", g_seen.nfired - 3);
    run_until_fired(&loop, 7, 3000);
    cr_assert_eq(g_seen.rearm_self, 0);
    cr_assert_eq(loop.nheap, 0);
    appsrv__loop_dispose(&loop);
}

/* Timer 0's callback stops another due timer (it must not fire) and
 * starts one that is due at once (it fires, in a later pass at most). */
Test(loop, timer_stopped_from_another_callback, .timeout = 10)
{
    appsrv__loop_t loop;
    loop_open(&loop);
    uint64_t now = loop.now_ms;
    g_seen.stop_victim = 5;
    g_seen.start_victim = 6;
    cr_assert_eq(appsrv__timer_start(&loop, &g_seen.t[0], now), 0);
    cr_assert_eq(appsrv__timer_start(&loop, &g_seen.t[5], now + 1), 0);
    cr_assert_eq(appsrv__timer_start(&loop, &g_seen.t[7], now + 2), 0);
    e2e_pause_ms(5); /* all three are due in the first pass */
    run_until_fired(&loop, 3, 3000);
    int saw[8] = {0};
    for (int k = 0; k < g_seen.nfired; k++)
        saw[g_seen.order[k]]++;
    cr_assert_eq(g_seen.order[0], 0);
    cr_assert_eq(saw[5], 0, "a timer stopped by another's callback fired");
    cr_assert_eq(saw[6], 1, "the timer started in a callback fired %d times", saw[6]);
    cr_assert_eq(saw[7], 1);
    cr_assert_eq(g_seen.nfired, 3);
    cr_assert_not(appsrv__timer_armed(&g_seen.t[5]));
    cr_assert_eq(loop.nheap, 0);
    appsrv__loop_dispose(&loop);
}

/* -------------------------------------------------------------- wake-up */

typedef struct waker {
    appsrv__loop_t *loop;
    int delay_ms, times;
} waker_t;

static void *waker_main(void *arg)
{
    waker_t *w = arg;
    e2e_pause_ms(w->delay_ms);
    for (int i = 0; i < w->times; i++)
        appsrv__loop_wake(w->loop);
    return NULL;
}

/* Runs passes (bounded) until the wake callback ran `want` times. */
static void run_until_woken(appsrv__loop_t *loop, int want, int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    while (atomic_load(&g_seen.wakes) < want && e2e_now_ms() < end)
        cr_assert_geq(appsrv__loop_run_once(loop, 100), 0);
    cr_assert_eq(atomic_load(&g_seen.wakes), want, "%d wake callbacks within %d ms, want %d",
                 atomic_load(&g_seen.wakes), timeout_ms, want);
}

Test(loop, wake_from_another_thread, .timeout = 10)
{
    appsrv__loop_t loop;
    loop_open(&loop);
    waker_t w = {&loop, 50, 1};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, waker_main, &w), 0);
    int64_t t0 = e2e_now_ms();
    /* one blocking pass with a far timeout: the wake ends it */
    int n = appsrv__loop_run_once(&loop, 5000);
    int64_t took = e2e_now_ms() - t0;
    pthread_join(th, NULL);
    cr_assert_eq(n, 1, "run_once returned %d after %lld ms", n, (long long)took);
    cr_assert_lt(took, 4000, "woken after %lld ms", (long long)took);
    run_until_woken(&loop, 1, 1000);
    /* three wakes before a pass: one event, acknowledged once, then quiet */
    appsrv__loop_wake(&loop);
    appsrv__loop_wake(&loop);
    appsrv__loop_wake(&loop);
    cr_assert_eq(appsrv__loop_run_once(&loop, 1000), 1);
    cr_assert_eq(atomic_load(&g_seen.wakes), 2);
    cr_assert_eq(appsrv__loop_run_once(&loop, 0), 0, "the counter was not drained");
    cr_assert_eq(atomic_load(&g_seen.wakes), 2);
    appsrv__loop_dispose(&loop);
}

static atomic_int g_errno_kept;

static void on_sigusr2(int sig)
{
    (void)sig;
    errno = EDOM;
    appsrv__loop_wake(g_sig_loop);
    atomic_store(&g_errno_kept, errno == EDOM);
}

static void *raiser_main(void *arg)
{
    e2e_pause_ms(50);
    pthread_kill(*(pthread_t *)arg, SIGUSR2);
    return NULL;
}

/* The handler runs on the loop's own thread while it waits in epoll_wait
 * (EINTR), and async-signal-safely wakes it. */
Test(loop, wake_from_signal_handler, .timeout = 10)
{
    appsrv__loop_t loop;
    loop_open(&loop);
    g_sig_loop = &loop;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigusr2;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGUSR2, &sa, &old), 0);
    pthread_t self = pthread_self(), th;
    cr_assert_eq(pthread_create(&th, NULL, raiser_main, &self), 0);
    run_until_woken(&loop, 1, 5000);
    pthread_join(th, NULL);
    cr_assert(atomic_load(&g_errno_kept), "appsrv__loop_wake changed errno in the handler");
    /* and raised synchronously, before the pass */
    cr_assert_eq(raise(SIGUSR2), 0);
    run_until_woken(&loop, 2, 5000);
    sigaction(SIGUSR2, &old, NULL);
    appsrv__loop_dispose(&loop);
}

/* ------------------------------------------------------------------- io */

static void on_io(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events)
{
    (void)loop;
    (void)io;
    atomic_fetch_add(&g_seen.io_calls, 1);
    g_seen.io_last = events;
}

/* One pass without waiting; returns the io callbacks it made. */
static int pass(appsrv__loop_t *loop)
{
    int before = atomic_load(&g_seen.io_calls);
    int rc = appsrv__loop_run_once(loop, 0);
    cr_assert_geq(rc, 0, "run_once: %s", strerror(-rc));
    return atomic_load(&g_seen.io_calls) - before;
}

Test(loop, io_add_mod_del, .timeout = 10)
{
    int fds0 = e2e_fd_count();
    appsrv__loop_t loop;
    loop_open(&loop);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    appsrv__io_t io = {.fd = sv[0], .cb = on_io};
    cr_assert_eq(appsrv__loop_add(&loop, &io, EPOLLIN), 0);
    cr_assert_eq(appsrv__loop_add(&loop, &io, EPOLLIN), -EEXIST);
    cr_assert_eq(pass(&loop), 0, "readable with nothing sent");
    cr_assert_eq(write(sv[1], "x", 1), 1);
    cr_assert_eq(pass(&loop), 1);
    cr_assert_eq(g_seen.io_last & (EPOLLIN | EPOLLOUT), EPOLLIN, "events 0x%x", g_seen.io_last);
    cr_assert_eq(pass(&loop), 1, "level-triggered: still readable");
    /* mod: only writability now */
    cr_assert_eq(appsrv__loop_mod(&loop, &io, EPOLLOUT), 0);
    cr_assert_eq(pass(&loop), 1);
    cr_assert_eq(g_seen.io_last & (EPOLLIN | EPOLLOUT), EPOLLOUT, "events 0x%x", g_seen.io_last);
    /* edge-triggered: one event per new arrival */
    cr_assert_eq(appsrv__loop_mod(&loop, &io, EPOLLIN | EPOLLET), 0);
    cr_assert_eq(pass(&loop), 1, "the unread byte is reported once on the switch");
    cr_assert_eq(pass(&loop), 0, "edge-triggered, nothing new");
    cr_assert_eq(write(sv[1], "y", 1), 1);
    cr_assert_eq(pass(&loop), 1, "a new byte is a new edge");
    /* del: silence, then errors for a watcher that is gone */
    cr_assert_eq(appsrv__loop_del(&loop, &io), 0);
    cr_assert_eq(write(sv[1], "z", 1), 1);
    cr_assert_eq(pass(&loop), 0, "a deleted watcher was called");
    cr_assert_eq(appsrv__loop_del(&loop, &io), -ENOENT);
    cr_assert_eq(appsrv__loop_mod(&loop, &io, EPOLLIN), -ENOENT);
    appsrv__io_t bad = {.fd = -1, .cb = on_io};
    cr_assert_eq(appsrv__loop_add(&loop, &bad, EPOLLIN), -EBADF);
    close(sv[0]);
    close(sv[1]);
    appsrv__loop_dispose(&loop);
    cr_assert_eq(e2e_fd_count(), fds0);
}

/* A pass waits no longer than the next timer (not max_wait_ms), and a
 * timer and I/O in one pass are both served. */
Test(loop, run_once_wait_bounded_by_next_timer, .timeout = 10)
{
    appsrv__loop_t loop;
    loop_open(&loop);
    cr_assert_eq(appsrv__timer_start(&loop, &g_seen.t[0], loop.now_ms + 30), 0);
    int64_t t0 = e2e_now_ms();
    while (g_seen.nfired == 0 && e2e_now_ms() - t0 < 3000)
        cr_assert_geq(appsrv__loop_run_once(&loop, 10000), 0);
    int64_t took = e2e_now_ms() - t0;
    cr_assert_eq(g_seen.nfired, 1, "the timer did not fire within 3 s");
    cr_assert_geq(took, 29, "fired after %lld ms, before its 30 ms", (long long)took);
    cr_assert_lt(took, 2000, "the pass waited %lld ms for a 30 ms timer", (long long)took);
    /* a wake and a due timer in the same pass */
    cr_assert_eq(appsrv__timer_start(&loop, &g_seen.t[1], loop.now_ms), 0);
    appsrv__loop_wake(&loop);
    cr_assert_eq(appsrv__loop_run_once(&loop, 1000), 1);
    cr_assert_eq(g_seen.nfired, 2);
    cr_assert_eq(atomic_load(&g_seen.wakes), 1);
    appsrv__loop_dispose(&loop);
}
