/* SPDX-License-Identifier: MIT */
/*
 * test_timers.c - the public timers and loop tasks (appsrv.h "timers and
 * loop tasks", issue 17 item 5) on a running in-process server: tasks
 * posted from other threads run on the loop, one-shot and repeating
 * timers fire on time, stop and free from a callback (its own timer or
 * another), stop after firing, thousands at once, and what is left at
 * the end is freed by the library (the ASan and valgrind runs check it).
 * Every wait is bounded and says what it waited for.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "expect.h"

#define WAIT_MS 5000

typedef struct tstate {
    appsrv_loop_t *loop;
    atomic_int fired, tasks, bad_thread;
    pthread_t loop_thread;
    atomic_bool have_thread;
    int64_t started_ms;
    _Atomic int64_t first_fire_ms;
    appsrv_timer_t *a, *b;
    int limit;
    atomic_int done;
} tstate_t;

static void start_plain(e2e_server_t *s)
{
    start_srv(s, NULL, base_routes, base_routes_n, E2E_HTTP);
}

static void note_thread(tstate_t *t)
{
    if (!atomic_load(&t->have_thread)) {
        t->loop_thread = pthread_self();
        atomic_store(&t->have_thread, true);
    } else if (!pthread_equal(t->loop_thread, pthread_self())) {
        atomic_fetch_add(&t->bad_thread, 1);
    }
}

static void post(tstate_t *t, appsrv_task_cb cb)
{
    int rc = appsrv_loop_post(t->loop, cb, t);
    cr_assert_eq(rc, 0, "appsrv_loop_post: %s", appsrv_strerror(rc));
}

/* ---------------------------------------------------------- one-shot */

static void once_cb(appsrv_timer_t *tm, void *user)
{
    tstate_t *t = user;
    note_thread(t);
    int64_t expect0 = 0;
    atomic_compare_exchange_strong(&t->first_fire_ms, &expect0, e2e_now_ms());
    atomic_fetch_add(&t->fired, 1);
    appsrv_timer_free(tm); /* from its own callback */
}

static void task_once(appsrv_loop_t *loop, void *user)
{
    tstate_t *t = user;
    note_thread(t);
    if (loop != t->loop)
        atomic_fetch_add(&t->bad_thread, 1);
    appsrv_timer_t *tm;
    if (appsrv_timer_new(loop, once_cb, t, &tm) == 0 && appsrv_timer_start(tm, 30, 0) == 0)
        atomic_fetch_add(&t->tasks, 1);
}

Test(timers, posted_task_starts_one_shot_on_loop_thread, .timeout = 30)
{
    e2e_server_t s;
    start_plain(&s);
    tstate_t t = {.loop = appsrv_server_loop(s.srv, 0)};
    cr_assert_not_null(t.loop);
    cr_assert_null(appsrv_server_loop(s.srv, 1), "one worker: loop 1 does not exist");
    t.started_ms = e2e_now_ms();
    post(&t, task_once);
    wait_count(&t.fired, 1, WAIT_MS, "one-shot timer fired");
    cr_assert_eq(atomic_load(&t.tasks), 1);
    cr_assert_eq(atomic_load(&t.bad_thread), 0, "task and timer ran on different threads");
    cr_assert(!pthread_equal(t.loop_thread, pthread_self()), "ran on the posting thread");
    int64_t took = atomic_load(&t.first_fire_ms) - t.started_ms;
    cr_assert_geq(took, 29, "a 30 ms timer fired after %lld ms", (long long)took);
    poll(NULL, 0, 80);
    cr_assert_eq(atomic_load(&t.fired), 1, "a one-shot timer fired again");
    stop_srv(&s);
}

/* A one-shot timer never fires before its delay, measured in microseconds
 * from the start call: the loop's clock is in whole milliseconds, and a
 * deadline counted from the clock rounded down fired up to 1 ms early (seen
 * as "/delay?ms=200 answered after 0.200 s" in a CI run). Twenty timers in
 * a row, each started from the previous one's callback, so their start
 * falls at different fractions of a millisecond; a repeating 1 ms timer
 * wakes the loop at every millisecond, as other traffic would. */
typedef struct early {
    appsrv_timer_t *tm, *ticker;
    struct timespec t0;
    int runs;
    _Atomic int64_t min_us;
    atomic_int done, failed;
} early_t;

static int64_t since_us(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (int64_t)(t1.tv_sec - t0->tv_sec) * 1000000 + (t1.tv_nsec - t0->tv_nsec) / 1000;
}

static void early_cb(appsrv_timer_t *tm, void *user)
{
    early_t *e = user;
    int64_t us = since_us(&e->t0);
    if (us < atomic_load(&e->min_us))
        atomic_store(&e->min_us, us);
    if (++e->runs == 20) {
        appsrv_timer_free(tm);
        appsrv_timer_free(e->ticker);
        atomic_store(&e->done, 1);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &e->t0);
    if (appsrv_timer_start(tm, 3, 0) != 0)
        atomic_store(&e->failed, 1);
}

static void tick_cb(appsrv_timer_t *tm, void *user)
{
    (void)tm;
    (void)user;
}

static void task_early(appsrv_loop_t *loop, void *user)
{
    early_t *e = user;
    if (appsrv_timer_new(loop, tick_cb, e, &e->ticker) != 0 ||
        appsrv_timer_start(e->ticker, 1, 1) != 0 ||
        appsrv_timer_new(loop, early_cb, e, &e->tm) != 0) {
        atomic_store(&e->failed, 1);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &e->t0);
    if (appsrv_timer_start(e->tm, 3, 0) != 0)
        atomic_store(&e->failed, 1);
}

Test(timers, one_shot_never_fires_early, .timeout = 30)
{
    e2e_server_t s;
    start_plain(&s);
    early_t e = {.min_us = INT64_MAX};
    int rc = appsrv_loop_post(appsrv_server_loop(s.srv, 0), task_early, &e);
    cr_assert_eq(rc, 0, "appsrv_loop_post: %s", appsrv_strerror(rc));
    int64_t t0 = e2e_now_ms();
    while (!atomic_load(&e.done) && !atomic_load(&e.failed) && e2e_now_ms() - t0 < WAIT_MS)
        poll(NULL, 0, 5);
    cr_assert_eq(atomic_load(&e.failed), 0, "a timer could not be made or started");
    cr_assert(atomic_load(&e.done), "20 timers of 3 ms not done within %d ms (%d fired)", WAIT_MS,
              e.runs);
    cr_assert_geq(atomic_load(&e.min_us), 3000, "a 3 ms timer fired after %lld us",
                  (long long)atomic_load(&e.min_us));
    stop_srv(&s);
}

/* ---------------------------------------------------------- repeating */

static void repeat_cb(appsrv_timer_t *tm, void *user)
{
    tstate_t *t = user;
    int n = atomic_fetch_add(&t->fired, 1) + 1;
    if (!appsrv_timer_active(tm)) /* re-armed before its callback */
        atomic_fetch_add(&t->bad_thread, 1);
    if (n == t->limit) {
        appsrv_timer_stop(tm);
        if (appsrv_timer_active(tm))
            atomic_fetch_add(&t->bad_thread, 1);
        appsrv_timer_free(tm);
    }
}

static void task_repeat(appsrv_loop_t *loop, void *user)
{
    tstate_t *t = user;
    appsrv_timer_t *tm;
    if (appsrv_timer_new(loop, repeat_cb, t, &tm) == 0)
        appsrv_timer_start(tm, 1, 5);
}

Test(timers, repeating_stops_and_frees_itself_in_callback, .timeout = 30)
{
    e2e_server_t s;
    start_plain(&s);
    tstate_t t = {.loop = appsrv_server_loop(s.srv, 0), .limit = 5};
    post(&t, task_repeat);
    wait_count(&t.fired, 5, WAIT_MS, "repeating timer fired 5 times");
    poll(NULL, 0, 60);
    cr_assert_eq(atomic_load(&t.fired), 5, "fired %d times after stopping at 5",
                 atomic_load(&t.fired));
    cr_assert_eq(atomic_load(&t.bad_thread), 0, "active() wrong inside the callback");
    stop_srv(&s);
}

/* ---------------------------------------- stop after fire, free another */

static void count_cb(appsrv_timer_t *tm, void *user)
{
    (void)tm;
    tstate_t *t = user;
    atomic_fetch_add(&t->fired, 1);
}

/* A frees B, which is due at the same time: B must never run. */
static void a_frees_b_cb(appsrv_timer_t *tm, void *user)
{
    tstate_t *t = user;
    atomic_fetch_add(&t->fired, 1);
    appsrv_timer_free(t->b);
    t->b = NULL;
    appsrv_timer_free(tm);
    atomic_store(&t->done, 1);
}

static void b_cb(appsrv_timer_t *tm, void *user)
{
    (void)tm;
    tstate_t *t = user;
    atomic_fetch_add(&t->bad_thread, 100); /* must not happen */
}

static void task_pair(appsrv_loop_t *loop, void *user)
{
    tstate_t *t = user;
    appsrv_timer_new(loop, a_frees_b_cb, t, &t->a);
    appsrv_timer_new(loop, b_cb, t, &t->b);
    appsrv_timer_start(t->a, 10, 0);
    appsrv_timer_start(t->b, 10, 0);
}

Test(timers, callback_frees_another_due_timer, .timeout = 30)
{
    e2e_server_t s;
    start_plain(&s);
    tstate_t t = {.loop = appsrv_server_loop(s.srv, 0)};
    post(&t, task_pair);
    wait_count(&t.done, 1, WAIT_MS, "timer A ran and freed B");
    poll(NULL, 0, 40);
    cr_assert_eq(atomic_load(&t.bad_thread), 0, "timer B ran after it was freed");
    stop_srv(&s);
}

static void task_start_kept(appsrv_loop_t *loop, void *user)
{
    tstate_t *t = user;
    if (appsrv_timer_new(loop, count_cb, t, &t->a) == 0)
        appsrv_timer_start(t->a, 5, 0);
}

static void task_stop_after_fire(appsrv_loop_t *loop, void *user)
{
    (void)loop;
    tstate_t *t = user;
    bool active = appsrv_timer_active(t->a);
    appsrv_timer_stop(t->a); /* after it fired: a no-op */
    appsrv_timer_stop(t->a);
    /* Restart once more, then free while armed: it never fires again. */
    appsrv_timer_start(t->a, 5, 0);
    appsrv_timer_free(t->a);
    t->a = NULL;
    atomic_store(&t->done, active ? -1 : 1);
}

Test(timers, stop_after_fire_and_free_while_armed, .timeout = 30)
{
    e2e_server_t s;
    start_plain(&s);
    tstate_t t = {.loop = appsrv_server_loop(s.srv, 0)};
    post(&t, task_start_kept);
    wait_count(&t.fired, 1, WAIT_MS, "kept one-shot fired");
    post(&t, task_stop_after_fire);
    e2e_wait_atomic(&t.done, 1, WAIT_MS);
    cr_assert_eq(atomic_load(&t.done), 1, "stop-after-fire task: done=%d (-1: still active)",
                 atomic_load(&t.done));
    poll(NULL, 0, 40);
    cr_assert_eq(atomic_load(&t.fired), 1, "a freed timer fired");
    stop_srv(&s);
}

/* ------------------------------------------------------- many timers */

#define MANY 3000

typedef struct many {
    tstate_t *t;
    int64_t due_ms;
} many_t;

static void many_cb(appsrv_timer_t *tm, void *user)
{
    many_t *m = user;
    if (e2e_now_ms() + 1 < m->due_ms)
        atomic_fetch_add(&m->t->bad_thread, 1); /* early */
    atomic_fetch_add(&m->t->fired, 1);
    appsrv_timer_free(tm);
}

static void task_many(appsrv_loop_t *loop, void *user)
{
    many_t *ms = user;
    for (int i = 0; i < MANY; i++) {
        appsrv_timer_t *tm;
        uint64_t delay = (uint64_t)((i * 7919) % 60);
        ms[i].due_ms = e2e_now_ms() + (int64_t)delay;
        if (appsrv_timer_new(loop, many_cb, &ms[i], &tm) == 0)
            appsrv_timer_start(tm, delay, 0);
    }
}

Test(timers, thousands_fire_once_never_early, .timeout = 60)
{
    e2e_server_t s;
    start_plain(&s);
    tstate_t t = {.loop = appsrv_server_loop(s.srv, 0)};
    many_t *ms = calloc(MANY, sizeof(*ms));
    cr_assert_not_null(ms);
    for (int i = 0; i < MANY; i++)
        ms[i].t = &t;
    cr_assert_eq(appsrv_loop_post(t.loop, task_many, ms), 0);
    wait_count(&t.fired, MANY, SCALE(WAIT_MS, 30000), "all timers fired");
    poll(NULL, 0, 80);
    cr_assert_eq(atomic_load(&t.fired), MANY);
    cr_assert_eq(atomic_load(&t.bad_thread), 0, "%d timers fired early",
                 atomic_load(&t.bad_thread));
    stop_srv(&s);
    free(ms);
}

/* ------------------------------------------ posts from other threads */

static void task_count(appsrv_loop_t *loop, void *user)
{
    (void)loop;
    tstate_t *t = user;
    note_thread(t);
    atomic_fetch_add(&t->tasks, 1);
}

#define POSTERS 4
#define POSTS   2000

static void *poster(void *arg)
{
    tstate_t *t = arg;
    for (int i = 0; i < POSTS; i++)
        if (appsrv_loop_post(t->loop, task_count, t) < 0)
            atomic_fetch_add(&t->bad_thread, 1000);
    return NULL;
}

Test(timers, posts_from_many_threads_all_run, .timeout = 60)
{
    e2e_server_t s;
    start_plain(&s);
    tstate_t t = {.loop = appsrv_server_loop(s.srv, 0)};
    pthread_t th[POSTERS];
    for (int i = 0; i < POSTERS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, poster, &t), 0);
    for (int i = 0; i < POSTERS; i++)
        pthread_join(th[i], NULL);
    wait_count(&t.tasks, POSTERS * POSTS, SCALE(WAIT_MS, 30000), "posted tasks ran");
    cr_assert_eq(atomic_load(&t.bad_thread), 0, "a post failed or ran on two threads");
    stop_srv(&s);
}

/* ------------------------------------------------------- at the end */

static void task_leave_armed(appsrv_loop_t *loop, void *user)
{
    tstate_t *t = user;
    appsrv_timer_t *tm;
    for (int i = 0; i < 10; i++)
        if (appsrv_timer_new(loop, count_cb, t, &tm) == 0)
            appsrv_timer_start(tm, 60000, 1000); /* never fires in this test */
    atomic_store(&t->done, 1);
}

Test(timers, left_armed_freed_at_end_and_posts_refused, .timeout = 30)
{
    e2e_server_t s;
    start_plain(&s);
    tstate_t t = {.loop = appsrv_server_loop(s.srv, 0)};
    post(&t, task_leave_armed);
    wait_count(&t.done, 1, WAIT_MS, "armed timers created");
    int rc = e2e_server_join(&s, 0);
    cr_assert_eq(rc, -ETIMEDOUT, "armed timers must not keep the server from running");
    e2e_server_request_stop(&s);
    rc = e2e_server_join(&s, STOP_MS);
    cr_assert_eq(rc, 0, "run did not return within %d ms: armed timers held the stop", STOP_MS);
    cr_assert_eq(appsrv_loop_post(t.loop, task_count, &t), APPSRV_ESTATE);
    appsrv_timer_t *tm = NULL;
    cr_assert_eq(appsrv_timer_new(t.loop, count_cb, &t, &tm), APPSRV_ESTATE);
    cr_assert_null(tm);
    appsrv_server_free(s.srv);
    cr_assert_eq(atomic_load(&t.fired), 0);
}

Test(timers, bad_arguments, .timeout = 10)
{
    appsrv_timer_t *tm = (appsrv_timer_t *)1;
    cr_assert_eq(appsrv_timer_new(NULL, count_cb, NULL, &tm), -EINVAL);
    cr_assert_null(tm);
    cr_assert_eq(appsrv_loop_post(NULL, task_count, NULL), -EINVAL);
    cr_assert_eq(appsrv_timer_start(NULL, 1, 0), -EINVAL);
    appsrv_timer_stop(NULL);
    appsrv_timer_free(NULL);
    cr_assert(!appsrv_timer_active(NULL));
    cr_assert_null(appsrv_server_loop(NULL, 0));
}
