/* SPDX-License-Identifier: MIT */
/*
 * pool.c - a worker's block pool and the output queue kept in a block.
 * Memory only: no I/O (conn.c writes what appsrv__outq_iov() describes
 * through its transport and reports it with appsrv__outq_consume()).
 * Called by conn.c and, through conn.h's wrappers, by the protocols.
 * Invariant: consecutive staged bytes form one segment, so a batch of
 * pipelined responses goes out as one iovec.
 */
#include "pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FREE_BLOCKS 32

void appsrv__pool_init(appsrv__pool_t *p, size_t ctx_cap, size_t data_cap)
{
    appsrv__pool_dispose(p);
    p->ctx_cap = (ctx_cap + 15) & ~(size_t)15;
    p->data_cap = (data_cap + 15) & ~(size_t)15;
    p->block_size = sizeof(appsrv__block_t) + p->ctx_cap + p->data_cap;
}

void appsrv__pool_dispose(appsrv__pool_t *p)
{
    while (p->free != NULL) {
        appsrv__block_t *b = p->free;
        p->free = b->next;
        free(b);
    }
    p->nfree = 0;
}

appsrv__block_t *appsrv__block_get(appsrv__pool_t *p)
{
    appsrv__block_t *b = p->free;
    if (b != NULL) {
        p->free = b->next;
        p->nfree--;
        return b;
    }
    return malloc(p->block_size);
}

void appsrv__block_put(appsrv__pool_t *p, appsrv__block_t *b)
{
    if (p->nfree < MAX_FREE_BLOCKS) {
        b->next = p->free;
        p->free = b;
        p->nfree++;
        return;
    }
    free(b);
}

void appsrv__free_cb(void *data, void *ud)
{
    (void)ud;
    free(data);
}

/* ------------------------------------------------------------ out queue */

int appsrv__outq_copy(appsrv__outq_t *q, appsrv__pool_t *p, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    char *dst = appsrv__outq_reserve(q, p, len);
    if (dst == NULL)
        return q->blk == NULL ? -ENOMEM : -ENOSPC;
    memcpy(dst, data, len);
    appsrv__outq_commit(q, dst, len);
    return 0;
}

int appsrv__outq_ref(appsrv__outq_t *q, appsrv__pool_t *p, const void *data, size_t len,
                     void (*free_cb)(void *, void *), void *data_to_free, void *ud)
{
    if (appsrv__outq_ensure(q, p) < 0)
        return -ENOMEM;
    if (q->nsegs >= APPSRV__MAX_SEGS)
        return -ENOSPC;
    q->blk->segs[q->nsegs++] = (appsrv__seg_t){
        .ptr = data, .len = len, .free_cb = free_cb, .free_data = data_to_free, .free_ud = ud};
    return 0;
}

char *appsrv__outq_begin(appsrv__outq_t *q, appsrv__pool_t *p, size_t need, char **heap)
{
    *heap = NULL;
    char *dst = appsrv__outq_reserve(q, p, need);
    if (dst == NULL)
        dst = *heap = malloc(need);
    return dst;
}

void appsrv__outq_finish(appsrv__outq_t *q, appsrv__pool_t *p, char *p0, size_t len, char *heap)
{
    if (heap == NULL)
        appsrv__outq_commit(q, p0, len);
    else if (appsrv__outq_ref(q, p, heap, len, appsrv__free_cb, heap, NULL) < 0)
        free(heap); /* cannot happen: callers check the room first */
}

void appsrv__fseg_release(void *data, void *ud)
{
    (void)ud;
    appsrv__fseg_t *f = data;
    close(f->fd);
    free(f);
}

int appsrv__outq_file(appsrv__outq_t *q, appsrv__pool_t *p, int fd, off_t off, size_t len)
{
    appsrv__fseg_t *f = malloc(sizeof(*f));
    int rc = f == NULL ? -ENOMEM : appsrv__outq_ensure(q, p);
    if (rc == 0 && q->nsegs >= APPSRV__MAX_SEGS)
        rc = -ENOSPC;
    if (rc < 0) {
        free(f);
        close(fd);
        return rc;
    }
    f->fd = fd;
    f->off = off;
    q->blk->segs[q->nsegs++] = (appsrv__seg_t){
        .ptr = NULL, .len = len, .free_cb = appsrv__fseg_release, .free_data = f, .free_ud = NULL};
    return 0;
}

void appsrv__outq_reset(appsrv__outq_t *q, appsrv__pool_t *p)
{
    if (q->blk != NULL) {
        for (unsigned i = q->head; i < q->nsegs; i++)
            appsrv__seg_release(&q->blk->segs[i]);
        appsrv__block_put(p, q->blk);
    }
    q->blk = NULL;
    q->buf = NULL;
    q->len = 0;
    q->nsegs = q->head = 0;
    q->off = 0;
}
