/* SPDX-License-Identifier: MIT */
/*
 * chunked.h - the one decoder of the chunked transfer coding (RFC 9112
 * §7.1) in the tests: incremental, strict (CRLF line ends, hex sizes,
 * extensions after ';', trailers up to the blank line) and with the data
 * handed to a callback, so a 100 MiB stream is checked without keeping
 * it. The response reader (client.c), the stream tests and
 * tests/adversarial/ use it. Plain C; never asserts.
 */
#ifndef APPSRV_TEST_CHUNKED_H
#define APPSRV_TEST_CHUNKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called with each piece of chunk data, in order; returns 0, or a
 * negative error that stops the decoder (d->err). */
typedef int (*e2e_chunk_cb)(void *ud, const unsigned char *p, size_t n);

typedef struct e2e_chunked {
    int st;        /* internal state */
    char line[64]; /* the size line so far */
    size_t ll;     /* its length (trailer lines: only counted) */
    uint64_t left; /* data bytes left in this chunk */
    uint64_t got;  /* data bytes so far */
    uint64_t chunks;
    bool done; /* the last chunk and the trailers are in */
    int err;   /* 0, -EPROTO (malformed) or the callback's error */
    e2e_chunk_cb cb;
    void *ud;
} e2e_chunked_t;

void e2e_chunked_init(e2e_chunked_t *d, e2e_chunk_cb cb, void *ud);
/* Feeds n bytes. Returns how many it consumed: all of them, or fewer when
 * the body ended (d->done: the rest belongs to the next message) or an
 * error stopped it (d->err). */
size_t e2e_chunked_feed(e2e_chunked_t *d, const void *p, size_t n);

/* Decodes a whole chunked body at p[0..n) into *out (malloc'd,
 * NUL-terminated; the caller frees) and *out_len. Returns the bytes it
 * spans, 0 when incomplete, -EPROTO when malformed, -ENOMEM. */
long long e2e_dechunk(const void *p, size_t n, char **out, size_t *out_len);

#endif /* APPSRV_TEST_CHUNKED_H */
