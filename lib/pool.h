/* SPDX-License-Identifier: MIT */
/*
 * pool.h - memory, no I/O: a worker's pool of fixed-size blocks, and the
 * output queue a connection builds in them (a staging area plus a short
 * array of segments, each a run of bytes to write and what to release
 * once written). A block is [segments][protocol context][data]: the
 * context area is sized for the largest protocol context, the data area
 * for a whole request head or line. Loop thread only.
 */
#ifndef APPSRV_POOL_H
#define APPSRV_POOL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common.h"

/* One output segment: a run of bytes to write, and what to release after. */
typedef struct appsrv__seg {
    const char *ptr;
    size_t len;
    void (*free_cb)(void *data, void *ud);
    void *free_data;
    void *free_ud;
} appsrv__seg_t;

#define APPSRV__MAX_SEGS 64

typedef struct appsrv__block {
    struct appsrv__block *next; /* pool free list */
    appsrv__seg_t segs[APPSRV__MAX_SEGS];
    _Alignas(16) char mem[]; /* ctx_cap bytes of context, then data_cap of data */
} appsrv__block_t;

typedef struct appsrv__pool {
    appsrv__block_t *free;
    size_t nfree;
    size_t ctx_cap;  /* bytes of protocol context (16-aligned) */
    size_t data_cap; /* bytes of data */
    size_t block_size;
} appsrv__pool_t;

/* Sets the block geometry; the pool starts empty. */
void appsrv__pool_init(appsrv__pool_t *p, size_t ctx_cap, size_t data_cap);
/* Returns every cached block to the system. */
void appsrv__pool_dispose(appsrv__pool_t *p);
/* A block (cached or new), or NULL when out of memory. */
appsrv__block_t *appsrv__block_get(appsrv__pool_t *p);
/* Gives b back; a bounded number are kept for reuse. */
void appsrv__block_put(appsrv__pool_t *p, appsrv__block_t *b);

static inline void *appsrv__block_ctx(appsrv__block_t *b)
{
    return b->mem;
}

static inline char *appsrv__block_data(const appsrv__pool_t *p, appsrv__block_t *b)
{
    return b->mem + p->ctx_cap;
}

/* ------------------------------------------------------------ out queue */

/* Bytes waiting to be written: staged copies in blk's data area and
 * references to memory elsewhere, in order. The block is taken on first
 * use and given back when everything is written or dropped. */
typedef struct appsrv__outq {
    appsrv__block_t *blk;
    char *buf;         /* data area of blk */
    uint32_t len;      /* staged bytes used */
    uint16_t nsegs;    /* queued segments */
    uint16_t head;     /* first segment not fully written */
    size_t off;        /* bytes of segs[head] already written */
} appsrv__outq_t;

static inline bool appsrv__outq_busy(const appsrv__outq_t *q)
{
    return q->nsegs != 0;
}

/* Inline below (the hot path): appsrv__outq_room() - bytes of staging
 * space left (0 when segment slots run short); appsrv__outq_reserve() -
 * need bytes of staging space (NULL: no room or no memory; flush first),
 * then appsrv__outq_commit() the len <= need bytes written there;
 * appsrv__outq_iov() - fills iov with what is left to write, returns the
 * count; appsrv__outq_consume() - n bytes were written: advances, releases
 * finished segments, gives the block back when the queue is empty. */
/* Appends a copy. Returns 0, -ENOSPC (no room: flush first) or -ENOMEM. */
int appsrv__outq_copy(appsrv__outq_t *q, appsrv__pool_t *p, const void *data, size_t len);
/* Appends a reference; free_cb(data_to_free, ud) runs once written or
 * dropped. Returns 0, -ENOSPC (no segment slot) or -ENOMEM. */
int appsrv__outq_ref(appsrv__outq_t *q, appsrv__pool_t *p, const void *data, size_t len,
                     void (*free_cb)(void *, void *), void *data_to_free, void *ud);
/* Space for need bytes: staged when there is room, else a heap buffer
 * (*heap set). appsrv__outq_finish() then queues the len bytes written
 * there. Returns NULL when out of memory. */
char *appsrv__outq_begin(appsrv__outq_t *q, appsrv__pool_t *p, size_t need, char **heap);
void appsrv__outq_finish(appsrv__outq_t *q, appsrv__pool_t *p, char *p0, size_t len, char *heap);
/* Drops everything queued (releasing references) and gives the block back. */
void appsrv__outq_reset(appsrv__outq_t *q, appsrv__pool_t *p);

/* ------------------------------------------------------- file segments */

/* A file segment: len bytes of an open file from offset off, written by
 * conn.c (sendfile, or pread into a pool block + writev) when it reaches
 * the head of the queue; segments after it wait. Its release callback
 * closes the fd (the queue owns it) and frees the descriptor, whether
 * the bytes were written or dropped. */
typedef struct appsrv__fseg {
    int fd;
    off_t off; /* file offset of the segment's first byte */
} appsrv__fseg_t;

void appsrv__fseg_release(void *data, void *ud);

static inline bool appsrv__seg_is_file(const appsrv__seg_t *s)
{
    return s->free_cb == appsrv__fseg_release;
}

/* Appends a file segment; fd is owned by the queue from here on (closed
 * also when this fails). Returns 0, -ENOSPC (no segment slot) or -ENOMEM. */
int appsrv__outq_file(appsrv__outq_t *q, appsrv__pool_t *p, int fd, off_t off, size_t len);

/* The segment at the head of the queue when it is a file segment. */
static inline appsrv__seg_t *appsrv__outq_file_head(const appsrv__outq_t *q)
{
    if (q->head >= q->nsegs || !appsrv__seg_is_file(&q->blk->segs[q->head]))
        return NULL;
    return &q->blk->segs[q->head];
}

/* ------------------------------------------- inline: the hot path */

static inline size_t appsrv__outq_room(const appsrv__outq_t *q, const appsrv__pool_t *p)
{
    if (q->nsegs >= APPSRV__MAX_SEGS - 4)
        return 0;
    if (q->blk == NULL)
        return p->data_cap;
    return p->data_cap - q->len;
}

static inline int appsrv__outq_ensure(appsrv__outq_t *q, appsrv__pool_t *p)
{
    if (q->blk == NULL) {
        q->blk = appsrv__block_get(p);
        if (q->blk == NULL)
            return -ENOMEM;
        q->buf = appsrv__block_data(p, q->blk);
        q->len = 0;
    }
    return 0;
}

static inline char *appsrv__outq_reserve(appsrv__outq_t *q, appsrv__pool_t *p, size_t need)
{
    if (appsrv__outq_ensure(q, p) < 0)
        return NULL;
    if (need > p->data_cap - q->len || q->nsegs >= APPSRV__MAX_SEGS)
        return NULL;
    return q->buf + q->len;
}

static inline void appsrv__outq_commit(appsrv__outq_t *q, char *ptr, size_t len)
{
    if (len == 0)
        return;
    q->len += (uint32_t)len;
    appsrv__seg_t *segs = q->blk->segs;
    if (q->nsegs > q->head) {
        appsrv__seg_t *last = &segs[q->nsegs - 1];
        if (last->free_cb == NULL && last->ptr + last->len == ptr) {
            last->len += len;
            return;
        }
    }
    segs[q->nsegs++] = (appsrv__seg_t){.ptr = ptr, .len = len};
}

static inline int appsrv__outq_iov(const appsrv__outq_t *q, struct iovec *iov, int max)
{
    int n = 0;
    for (unsigned i = q->head; i < q->nsegs && n < max; i++) {
        const appsrv__seg_t *s = &q->blk->segs[i];
        size_t off = i == q->head ? q->off : 0;
        if (appsrv__unlikely(s->ptr == NULL) && appsrv__seg_is_file(s))
            break; /* a file: conn.c sends it, then what follows */
        if (s->len - off == 0)
            continue;
        iov[n].iov_base = (void *)(uintptr_t)(s->ptr + off);
        iov[n].iov_len = s->len - off;
        n++;
    }
    return n;
}

static inline void appsrv__seg_release(appsrv__seg_t *s)
{
    if (s->free_cb != NULL) {
        void (*cb)(void *, void *) = s->free_cb;
        s->free_cb = NULL;
        cb(s->free_data, s->free_ud);
    }
}

static inline void appsrv__outq_consume(appsrv__outq_t *q, appsrv__pool_t *p, size_t n)
{
    /* Zero-length segments only carry a release (e.g. a request body
     * kept until its response is written): they finish with what is
     * before them. */
    while (q->head < q->nsegs) {
        appsrv__seg_t *s = &q->blk->segs[q->head];
        size_t rest = s->len - q->off;
        if (n < rest) {
            q->off += n;
            return;
        }
        n -= rest;
        appsrv__seg_release(s);
        q->head++;
        q->off = 0;
    }
    appsrv__outq_reset(q, p);
}

/* free(data), as a release callback. */
void appsrv__free_cb(void *data, void *ud);

#endif /* APPSRV_POOL_H */
