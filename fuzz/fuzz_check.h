/* SPDX-License-Identifier: MIT */
/*
 * fuzz_check.h - checks shared by the fuzz drivers: FUZZ_CHECK (every
 * driver's CHECK), and the chunked decoder run
 * whole, split in two (the first part in its own exactly-sized allocation,
 * so ASan sees an over-read) and byte by byte, with every run required to
 * agree. Any disagreement or broken invariant calls abort(), which libFuzzer
 * and the replay main both report as a crash.
 */
#ifndef APPSRV_FUZZ_CHECK_H
#define APPSRV_FUZZ_CHECK_H

#include "http_parse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_DONE 1

/* Assert that survives NDEBUG: a failed check is a finding (its place and
 * condition on stderr, then abort()). */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The contract's caller loop; appends data to out, counts consumed. */
static inline int64_t fuzz_chunked_feed(appsrv__chunked_t *c, const uint8_t *buf, size_t len,
                                        size_t max_trailer, uint8_t *out, size_t *out_len,
                                        size_t *consumed)
{
    while (len && !c->done) {
        size_t dlen = (size_t)-1;
        int64_t n = appsrv__chunked_parse(c, (const char *)buf, len, max_trailer, &dlen);

        if (n < 0) {
            FUZZ_CHECK(n == -400 || n == -431);
            FUZZ_CHECK(dlen == 0);
            return n;
        }
        FUZZ_CHECK(n > 0 && (size_t)n <= len);      /* progress, in bounds */
        FUZZ_CHECK(dlen == 0 || dlen == (size_t)n); /* data or framing */
        memcpy(out + *out_len, buf, dlen);
        *out_len += dlen;
        buf += n;
        len -= (size_t)n;
        *consumed += (size_t)n;
    }
    return c->done ? FUZZ_DONE : APPSRV__AGAIN;
}

/* Decodes data three ways and aborts unless all agree. */
static inline void fuzz_check_chunked(const uint8_t *data, size_t size, size_t split,
                                      size_t max_trailer)
{
    uint8_t *out[3], *part;
    size_t out_len[3] = {0, 0, 0}, consumed[3] = {0, 0, 0};
    int64_t r[3];
    appsrv__chunked_t c;

    for (int i = 0; i < 3; i++)
        out[i] = malloc(size + 1);

    memset(&c, 0, sizeof(c));
    r[0] = fuzz_chunked_feed(&c, data, size, max_trailer, out[0], &out_len[0], &consumed[0]);
    if (r[0] != APPSRV__AGAIN) { /* done consumes nothing; an error stays */
        size_t dlen = 1;
        int64_t again = appsrv__chunked_parse(&c, (const char *)data + consumed[0],
                                              size - consumed[0], max_trailer, &dlen);
        FUZZ_CHECK(again == (r[0] == FUZZ_DONE ? 0 : r[0]) && dlen == 0);
    }

    memset(&c, 0, sizeof(c));
    part = malloc(split + 1);
    memcpy(part, data, split);
    r[1] = fuzz_chunked_feed(&c, part, split, max_trailer, out[1], &out_len[1], &consumed[1]);
    free(part);
    if (r[1] == APPSRV__AGAIN) {
        FUZZ_CHECK(consumed[1] == split);
        r[1] = fuzz_chunked_feed(&c, data + split, size - split, max_trailer, out[1], &out_len[1],
                                 &consumed[1]);
    }

    memset(&c, 0, sizeof(c));
    r[2] = APPSRV__AGAIN;
    for (size_t i = 0; i < size && r[2] == APPSRV__AGAIN; i++)
        r[2] = fuzz_chunked_feed(&c, data + i, 1, max_trailer, out[2], &out_len[2], &consumed[2]);

    for (int i = 1; i < 3; i++) {
        FUZZ_CHECK(r[i] == r[0]);
        FUZZ_CHECK(out_len[i] == out_len[0]);
        FUZZ_CHECK(memcmp(out[i], out[0], out_len[0]) == 0);
        if (r[0] == FUZZ_DONE)
            FUZZ_CHECK(consumed[i] == consumed[0]);
    }
    FUZZ_CHECK(out_len[0] <= consumed[0]);
    if (r[0] == APPSRV__AGAIN)
        FUZZ_CHECK(consumed[0] == size);
    if (r[0] == FUZZ_DONE) /* the body ends with the blank line */
        FUZZ_CHECK(consumed[0] >= 5 && data[consumed[0] - 2] == '\r' &&
                   data[consumed[0] - 1] == '\n');
    for (int i = 0; i < 3; i++)
        free(out[i]);
}

#endif /* APPSRV_FUZZ_CHECK_H */
