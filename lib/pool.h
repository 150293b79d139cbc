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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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

/* Bytes of staging space left (0 when segment slots run short). */
size_t appsrv__outq_room(const appsrv__outq_t *q, const appsrv__pool_t *p);
/* Reserves need bytes of staging space (NULL: no room or no memory; flush
 * first), then commits the len <= need bytes written there. */
char *appsrv__outq_reserve(appsrv__outq_t *q, appsrv__pool_t *p, size_t need);
void appsrv__outq_commit(appsrv__outq_t *q, char *ptr, size_t len);
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
/* Fills iov with what is left to write; returns the count (<= max). */
int appsrv__outq_iov(const appsrv__outq_t *q, struct iovec *iov, int max);
/* n bytes were written: advances, releases finished segments, and gives
 * the block back when the queue is empty. */
void appsrv__outq_consume(appsrv__outq_t *q, appsrv__pool_t *p, size_t n);
/* Drops everything queued (releasing references) and gives the block back. */
void appsrv__outq_reset(appsrv__outq_t *q, appsrv__pool_t *p);

/* free(data), as a release callback. */
void appsrv__free_cb(void *data, void *ud);

#endif /* APPSRV_POOL_H */
