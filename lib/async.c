/* SPDX-License-Identifier: MIT */
/*
 * async.c - the per-worker completion queue and the lock host threads
 * share with the loop. Called by res.c (post, remove, lock around the
 * shared response fields) and sworker.c (run from the wake-up callback).
 * The queue is doubly linked: an item leaves it in O(1) whenever its
 * owner is disposed, so it never points at freed or reused memory.
 */
#include "async.h"

#include <errno.h>

int appsrv__async_init(appsrv__async_t *a, appsrv__loop_t *loop)
{
    int err = pthread_mutex_init(&a->lock, NULL);
    if (err != 0)
        return -err;
    err = pthread_cond_init(&a->cond, NULL);
    if (err != 0) {
        pthread_mutex_destroy(&a->lock);
        return -err;
    }
    a->head = a->tail = NULL;
    a->loop = loop;
    return 0;
}

void appsrv__async_dispose(appsrv__async_t *a)
{
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->lock);
}

void appsrv__async_lock(appsrv__async_t *a)
{
    pthread_mutex_lock(&a->lock);
}

void appsrv__async_unlock(appsrv__async_t *a)
{
    pthread_mutex_unlock(&a->lock);
}

void appsrv__async_wait_locked(appsrv__async_t *a)
{
    pthread_cond_wait(&a->cond, &a->lock);
}

void appsrv__async_broadcast(appsrv__async_t *a)
{
    pthread_mutex_lock(&a->lock);
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

void appsrv__async_unlink_locked(appsrv__async_t *a, appsrv__aitem_t *it)
{
    if (it->prev != NULL)
        it->prev->next = it->next;
    else
        a->head = it->next;
    if (it->next != NULL)
        it->next->prev = it->prev;
    else
        a->tail = it->prev;
    it->next = it->prev = NULL;
    atomic_store_explicit(&it->queued, false, memory_order_relaxed);
}

void appsrv__async_post_locked(appsrv__async_t *a, appsrv__aitem_t *it)
{
    if (atomic_load_explicit(&it->queued, memory_order_relaxed))
        return;
    atomic_store_explicit(&it->queued, true, memory_order_release);
    it->next = NULL;
    it->prev = a->tail;
    if (a->tail != NULL)
        a->tail->next = it;
    else
        a->head = it;
    a->tail = it;
    appsrv__loop_wake(a->loop);
}

void appsrv__async_remove_slow(appsrv__async_t *a, appsrv__aitem_t *it)
{
    pthread_mutex_lock(&a->lock);
    if (atomic_load_explicit(&it->queued, memory_order_relaxed))
        appsrv__async_unlink_locked(a, it);
    pthread_mutex_unlock(&a->lock);
}

bool appsrv__async_run(appsrv__async_t *a, int max)
{
    /* One at a time: running one may remove another. */
    for (int n = 0; n < max; n++) {
        pthread_mutex_lock(&a->lock);
        appsrv__aitem_t *it = a->head;
        if (it != NULL)
            appsrv__async_unlink_locked(a, it);
        pthread_mutex_unlock(&a->lock);
        if (it == NULL)
            return false;
        it->cb(it);
    }
    pthread_mutex_lock(&a->lock);
    bool left = a->head != NULL;
    pthread_mutex_unlock(&a->lock);
    if (left)
        appsrv__loop_wake(a->loop);
    return left;
}
