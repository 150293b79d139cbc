/* SPDX-License-Identifier: MIT */
/*
 * async.h - a worker's completion queue: the one place where other
 * threads hand work to a loop. Items are posted under the queue's lock
 * (which also guards the fields that host threads share with the loop,
 * see res.h) and the loop is woken through its eventfd; the loop runs
 * each item's callback on its own thread. A condition variable lets a
 * host thread wait for the loop to finish a callback (the cancel rule in
 * res.c).
 */
#ifndef APPSRV_ASYNC_H
#define APPSRV_ASYNC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "common.h"
#include "loop.h"

typedef struct appsrv__aitem appsrv__aitem_t;
typedef void (*appsrv__aitem_cb)(appsrv__aitem_t *item);

/* Something a host thread asks the loop to look at. Zero-initialised:
 * not queued. */
struct appsrv__aitem {
    appsrv__aitem_t *next, *prev;
    atomic_bool queued; /* written under the lock; read as a hint without */
    appsrv__aitem_cb cb;
};

typedef struct appsrv__async {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    appsrv__aitem_t *head, *tail;
    appsrv__loop_t *loop;
} appsrv__async_t;

int appsrv__async_init(appsrv__async_t *a, appsrv__loop_t *loop);
void appsrv__async_dispose(appsrv__async_t *a);

void appsrv__async_lock(appsrv__async_t *a);
void appsrv__async_unlock(appsrv__async_t *a);
/* With the lock held: waits for appsrv__async_broadcast(). */
void appsrv__async_wait_locked(appsrv__async_t *a);
/* Wakes every thread in appsrv__async_wait_locked(). Any thread. */
void appsrv__async_broadcast(appsrv__async_t *a);

/* With the lock held: queues item (once) and wakes the loop. */
void appsrv__async_post_locked(appsrv__async_t *a, appsrv__aitem_t *item);
/* Takes item off the queue if it is there. Loop thread; takes the lock
 * only when the item may be queued (inline: every response is checked). */
void appsrv__async_remove_slow(appsrv__async_t *a, appsrv__aitem_t *item);
static inline void appsrv__async_remove(appsrv__async_t *a, appsrv__aitem_t *item)
{
    /* Only a thread holding the lock sets queued, and no host thread may
     * post an item whose owner is being disposed (the host's contract),
     * so a false seen here is final. */
    if (atomic_load_explicit(&item->queued, memory_order_acquire))
        appsrv__async_remove_slow(a, item);
}
/* With the lock held: takes a queued item off the queue. */
void appsrv__async_unlink_locked(appsrv__async_t *a, appsrv__aitem_t *item);
/* Loop thread: runs up to max queued callbacks, oldest first, without the
 * lock held. Returns true when items are left (the loop is woken again). */
bool appsrv__async_run(appsrv__async_t *a, int max);

#endif /* APPSRV_ASYNC_H */
