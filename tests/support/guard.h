/* SPDX-License-Identifier: MIT */
/*
 * guard.h - the guard-page fixture of the parser unit tests
 * (test_http_parse.c, test_http_chunked.c): input placed so it ends where
 * an unreadable page starts, so a read past buf[len] faults, and the
 * split offsets the table runs use. Criterion-facing (guard_cr.c asserts).
 */
#ifndef APPSRV_TEST_GUARD_H
#define APPSRV_TEST_GUARD_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes placed here end exactly where a PROT_NONE page starts. */
typedef struct guard {
    unsigned char *map;
    size_t map_len;
    unsigned char *end; /* first byte of the unreadable page */
    size_t cap;
} guard_t;

void guard_init(guard_t *g, size_t cap);
void guard_dispose(guard_t *g);
/* Copies in[0..n) to end at the unreadable page; returns where it is. */
const char *guard_place(guard_t *g, const char *in, size_t n);
/*
 * Split offsets: every one for table rows; for the generated inputs of
 * several KiB, every one near both ends (where their limits trip) and a
 * sample in between, which keeps the suite quick under valgrind.
 */
bool split_here(size_t k, size_t len);

#endif /* APPSRV_TEST_GUARD_H */
