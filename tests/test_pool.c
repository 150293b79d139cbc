/* SPDX-License-Identifier: MIT */
/*
 * test_pool.c - unit tests of pool.c: the block pool (geometry, reuse,
 * the cap on cached blocks) and the output queue (staged copies merged
 * into one segment, references released exactly once when written or
 * dropped, partial writes across segments, the room and slot limits).
 * Memory only: the "writes" here are what appsrv__outq_iov() describes,
 * consumed by hand.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

static int g_released;
static char g_release_log[64];

static void count_release(void *data, void *ud)
{
    (void)data;
    size_t n = strlen(g_release_log);
    if (n + 1 < sizeof(g_release_log))
        g_release_log[n] = (char)(uintptr_t)ud;
    g_released++;
}

static void reset_counts(void)
{
    g_released = 0;
    memset(g_release_log, 0, sizeof(g_release_log));
}

/* Concatenates what the queue would write now. */
static size_t pending(const appsrv__outq_t *q, char *out, size_t cap)
{
    struct iovec iov[APPSRV__MAX_SEGS];
    int n = appsrv__outq_iov(q, iov, APPSRV__MAX_SEGS);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        cr_assert_leq(len + iov[i].iov_len, cap);
        memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return len;
}

Test(pool, geometry_and_reuse)
{
    appsrv__pool_t p = {0};
    appsrv__pool_init(&p, 100, 1000);
    cr_assert_eq(p.ctx_cap % 16, 0);
    cr_assert_eq(p.data_cap % 16, 0);
    cr_assert_geq(p.ctx_cap, 100);
    cr_assert_geq(p.data_cap, 1000);
    appsrv__block_t *a = appsrv__block_get(&p);
    cr_assert_not_null(a);
    /* Context and data areas do not overlap, and the data is aligned. */
    char *ctx = appsrv__block_ctx(a), *data = appsrv__block_data(&p, a);
    cr_assert_geq(data, ctx + 100);
    cr_assert_eq((uintptr_t)data % 16, 0);
    memset(data, 0xab, p.data_cap); /* ASan: the whole data area is ours */
    appsrv__block_put(&p, a);
    cr_assert_eq(p.nfree, 1);
    cr_assert_eq(appsrv__block_get(&p), a, "a cached block is not reused");
    appsrv__block_put(&p, a);
    /* The cache is bounded: the rest go back to the system. */
    appsrv__block_t *many[64];
    for (int i = 0; i < 64; i++)
        many[i] = appsrv__block_get(&p);
    for (int i = 0; i < 64; i++)
        appsrv__block_put(&p, many[i]);
    cr_assert_lt(p.nfree, 64, "every block was cached");
    appsrv__pool_dispose(&p);
    cr_assert_eq(p.nfree, 0);
}

Test(pool, staged_copies_merge_into_one_segment)
{
    appsrv__pool_t p = {0};
    appsrv__pool_init(&p, 0, 4096);
    appsrv__outq_t q = {0};
    cr_assert(!appsrv__outq_busy(&q));
    cr_assert_eq(appsrv__outq_room(&q, &p), p.data_cap, "an empty queue has all the room");
    cr_assert_eq(appsrv__outq_copy(&q, &p, "HTTP/1.1 200 OK\r\n", 17), 0);
    cr_assert_eq(appsrv__outq_copy(&q, &p, "\r\n", 2), 0);
    cr_assert_eq(q.nsegs, 1, "consecutive staged bytes are one iovec");
    char out[64];
    cr_assert_eq(pending(&q, out, sizeof(out)), 19);
    cr_assert(memcmp(out, "HTTP/1.1 200 OK\r\n\r\n", 19) == 0);
    cr_assert_eq(appsrv__outq_room(&q, &p), p.data_cap - 19);
    appsrv__outq_consume(&q, &p, 19);
    cr_assert(!appsrv__outq_busy(&q));
    cr_assert_null(q.blk, "the block was not given back when the queue emptied");
    cr_assert_eq(p.nfree, 1);
    appsrv__pool_dispose(&p);
}

Test(pool, references_released_once_in_order)
{
    reset_counts();
    appsrv__pool_t p = {0};
    appsrv__pool_init(&p, 0, 4096);
    appsrv__outq_t q = {0};
    static const char body[] = "0123456789";
    cr_assert_eq(appsrv__outq_copy(&q, &p, "head:", 5), 0);
    cr_assert_eq(appsrv__outq_ref(&q, &p, body, 10, count_release, NULL, (void *)'a'), 0);
    /* A zero-length reference only carries a release (a request body kept
     * until its answer is written). */
    cr_assert_eq(appsrv__outq_ref(&q, &p, NULL, 0, count_release, NULL, (void *)'b'), 0);
    cr_assert_eq(appsrv__outq_copy(&q, &p, ":tail", 5), 0);
    char out[64];
    cr_assert_eq(pending(&q, out, sizeof(out)), 20);
    cr_assert(memcmp(out, "head:0123456789:tail", 20) == 0);
    /* A partial write that ends inside the reference releases nothing. */
    appsrv__outq_consume(&q, &p, 8);
    cr_assert_eq(g_released, 0);
    cr_assert_eq(pending(&q, out, sizeof(out)), 12);
    cr_assert(memcmp(out, "3456789:tail", 12) == 0);
    /* Past it: the reference and the zero-length one after it go. */
    appsrv__outq_consume(&q, &p, 7);
    cr_assert_eq(g_released, 2);
    cr_assert_str_eq(g_release_log, "ab");
    appsrv__outq_consume(&q, &p, 5);
    cr_assert(!appsrv__outq_busy(&q));
    cr_assert_eq(g_released, 2, "released twice");
    appsrv__pool_dispose(&p);
}

Test(pool, reset_drops_and_releases)
{
    reset_counts();
    appsrv__pool_t p = {0};
    appsrv__pool_init(&p, 0, 4096);
    appsrv__outq_t q = {0};
    appsrv__outq_ref(&q, &p, "x", 1, count_release, NULL, (void *)'x');
    appsrv__outq_ref(&q, &p, "y", 1, count_release, NULL, (void *)'y');
    appsrv__outq_consume(&q, &p, 1); /* x written */
    appsrv__outq_reset(&q, &p);     /* y dropped with the connection */
    cr_assert_eq(g_released, 2);
    cr_assert_str_eq(g_release_log, "xy");
    cr_assert(!appsrv__outq_busy(&q));
    cr_assert_null(q.blk);
    appsrv__pool_dispose(&p);
}

Test(pool, limits_no_room_no_slot)
{
    appsrv__pool_t p = {0};
    appsrv__pool_init(&p, 0, 64);
    appsrv__outq_t q = {0};
    char big[65];
    memset(big, 'z', sizeof(big));
    cr_assert_eq(appsrv__outq_copy(&q, &p, big, sizeof(big)), -ENOSPC, "copy past the block");
    cr_assert_eq(appsrv__outq_copy(&q, &p, big, 64), 0);
    cr_assert_eq(appsrv__outq_room(&q, &p), 0);
    cr_assert_null(appsrv__outq_reserve(&q, &p, 1));
    /* outq_begin falls back to a heap buffer that outq_finish queues. */
    char *heap;
    char *dst = appsrv__outq_begin(&q, &p, 100, &heap);
    cr_assert_not_null(dst);
    cr_assert_eq(dst, heap);
    memset(dst, 'h', 100);
    appsrv__outq_finish(&q, &p, dst, 100, heap);
    char out[256];
    cr_assert_eq(pending(&q, out, sizeof(out)), 164);
    /* Segment slots run out before the array does: room reads 0 early so
     * a protocol flushes first. */
    appsrv__outq_reset(&q, &p);
    for (int i = 0; i < APPSRV__MAX_SEGS - 4; i++)
        cr_assert_eq(appsrv__outq_ref(&q, &p, "r", 1, NULL, NULL, NULL), 0);
    cr_assert_eq(appsrv__outq_room(&q, &p), 0);
    for (int i = APPSRV__MAX_SEGS - 4; i < APPSRV__MAX_SEGS; i++)
        cr_assert_eq(appsrv__outq_ref(&q, &p, "r", 1, NULL, NULL, NULL), 0);
    cr_assert_eq(appsrv__outq_ref(&q, &p, "r", 1, NULL, NULL, NULL), -ENOSPC);
    appsrv__outq_reset(&q, &p);
    appsrv__pool_dispose(&p);
}
