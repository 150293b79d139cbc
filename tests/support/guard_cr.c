/* SPDX-License-Identifier: MIT */
/*
 * guard_cr.c - the guard-page fixture of the parser unit tests (contract
 * in guard.h). Criterion-facing: a failed mmap fails the test.
 */
#include <criterion/criterion.h>

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guard.h"

void guard_init(guard_t *g, size_t cap)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t data = (cap + pg - 1) / pg * pg;

    g->map_len = data + pg;
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(g->map, MAP_FAILED);
    cr_assert_eq(mprotect(g->map + data, pg, PROT_NONE), 0);
    g->end = g->map + data;
    g->cap = data;
}

void guard_dispose(guard_t *g)
{
    munmap(g->map, g->map_len);
}

const char *guard_place(guard_t *g, const char *in, size_t n)
{
    cr_assert_leq(n, g->cap);
    memcpy(g->end - n, in, n);
    return (const char *)(g->end - n);
}

bool split_here(size_t k, size_t len)
{
    return len <= 4096 || k < 300 || len - k < 300 || k % 61 == 0;
}
