/* SPDX-License-Identifier: MIT */
/*
 * dbpool.c - a small pool of database threads. Each thread opens its own
 * store connection (store.h) and takes jobs from one bounded FIFO; jobs
 * are request jobs (json.c) that finish deferred responses with
 * appsrv_res_send(), so the event loop never waits on the database or on
 * password hashing. Calls the store vtable and pthreads; called by
 * json.c (job_defer) and main.c (start, stop).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "app.h"

typedef struct qjob {
    db_job_fn fn;
    void *arg;
    struct qjob *next;
} qjob_t;

struct dbpool {
    const store_vt *vt;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    qjob_t *head, *tail;
    int queued, max_queue;
    bool stopping;
    int nthreads, nstarted;
    pthread_t *threads;
    store_conn_t **conns;
};

static void *worker(void *arg)
{
    store_conn_t **slot = arg;
    dbpool_t *p = g_app.pool;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->head == NULL && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        qjob_t *q = p->head;
        if (q == NULL) { /* stopping, and nothing left */
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        p->head = q->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->lock);
        q->fn(*slot, q->arg);
        free(q);
    }
}

int dbpool_start(dbpool_t **out, const store_vt *vt, const char *url, int nthreads,
                 int max_queue)
{
    *out = NULL;
    dbpool_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->vt = vt;
    p->max_queue = max_queue;
    p->nthreads = nthreads;
    p->threads = calloc((size_t)nthreads, sizeof(*p->threads));
    p->conns = calloc((size_t)nthreads, sizeof(*p->conns));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    g_app.pool = p; /* the workers find it there */
    int rc = p->threads && p->conns ? 0 : -ENOMEM;
    /* Connections first: a bad URL or a failed migration stops start-up. */
    for (int i = 0; rc == 0 && i < nthreads; i++) {
        rc = vt->open(url, &p->conns[i]);
        if (rc == 0 && i == 0)
            rc = vt->migrate(p->conns[0]);
    }
    while (rc == 0 && p->nstarted < nthreads) {
        rc = -pthread_create(&p->threads[p->nstarted], NULL, worker, &p->conns[p->nstarted]);
        if (rc == 0)
            p->nstarted++;
    }
    if (rc != 0) {
        dbpool_stop(p);
        g_app.pool = NULL;
        return rc;
    }
    *out = p;
    return 0;
}

int dbpool_submit(dbpool_t *p, db_job_fn fn, void *arg)
{
    qjob_t *q = malloc(sizeof(*q));
    if (q == NULL)
        return -ENOMEM;
    *q = (qjob_t){fn, arg, NULL};
    pthread_mutex_lock(&p->lock);
    int rc = p->stopping ? -ESHUTDOWN : p->queued >= p->max_queue ? -EAGAIN : 0;
    if (rc == 0) {
        if (p->tail != NULL)
            p->tail->next = q;
        else
            p->head = q;
        p->tail = q;
        p->queued++;
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    if (rc != 0)
        free(q);
    return rc;
}

void dbpool_stop(dbpool_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nstarted; i++)
        pthread_join(p->threads[i], NULL);
    for (int i = 0; p->conns != NULL && i < p->nthreads; i++)
        if (p->conns[i] != NULL)
            p->vt->close(p->conns[i]);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->threads);
    free(p->conns);
    free(p);
}
