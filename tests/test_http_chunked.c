/* SPDX-License-Identifier: MIT */
/*
 * test_http_chunked.c - table-driven tests of the chunked decoder
 * (lib/http_parse.c; the head parser is in test_http_parse.c). Every row
 * runs whole, split at every byte offset (each part moved so it ends at an
 * unreadable page, tests/support/guard.h) and fed one byte at a time; all
 * runs must give the row's result and bytes. A read past buf[len] faults.
 */
#include "http_parse.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guard.h"

#define IN(s) .in = (s), .len = sizeof(s) - 1
#define AGAIN APPSRV__AGAIN

/* ------------------------------------------------------ chunked harness */

#define CH_DONE         1
#define TRAILER_DEFAULT 4096

typedef struct chunk_row {
    const char *comment;
    const char *in;
    size_t len;
    int want;         /* CH_DONE, AGAIN or -status */
    const char *body; /* decoded bytes (before the error, for errors) */
    size_t body_len;
    size_t rest;     /* bytes left after done */
    int max_trailer; /* 0: TRAILER_DEFAULT, -1: 0 */
} chunk_row_t;

/* clang-format off */
#define BYTES(s) .body = (s), .body_len = sizeof(s) - 1
#define CDONE(c, s, b, ...) {.comment = (c), IN(s), .want = CH_DONE, BYTES(b), __VA_ARGS__}
#define CBAD(c, s, st, b, ...) {.comment = (c), IN(s), .want = -(st), BYTES(b), __VA_ARGS__}
#define CPART(c, s, b) {.comment = (c), IN(s), .want = AGAIN, BYTES(b)}
/* clang-format on */

typedef struct chunk_out {
    char buf[1024];
    size_t len;
} chunk_out_t;

/* The contract's caller loop over buf[0..len); returns the last result. */
static int64_t feed(appsrv__chunked_t *c, const char *buf, size_t len, size_t max_trailer,
                    chunk_out_t *out, size_t *consumed, const char *comment)
{
    while (len && !c->done) {
        size_t dlen = 99;
        int64_t n = appsrv__chunked_parse(c, buf, len, max_trailer, &dlen);
        if (n < 0) {
            cr_assert_eq(dlen, 0, "%s: data_len on error", comment);
            return n;
        }
        cr_assert_gt(n, 0, "%s: no progress", comment);
        cr_assert_leq((size_t)n, len, "%s: consumed too much", comment);
        cr_assert(dlen == 0 || dlen == (size_t)n, "%s: framing and data mixed", comment);
        cr_assert_leq(out->len + dlen, sizeof(out->buf));
        memcpy(out->buf + out->len, buf, dlen);
        out->len += dlen;
        buf += n;
        len -= (size_t)n;
        *consumed += (size_t)n;
    }
    return c->done ? CH_DONE : AGAIN;
}

static void check_chunk_result(const chunk_row_t *r, int64_t got, const appsrv__chunked_t *c,
                               const chunk_out_t *out, size_t consumed, const char *mode, size_t at)
{
    cr_assert_eq(got, r->want, "%s [%s %zu]: got %ld want %d", r->comment, mode, at, (long)got,
                 r->want);
    cr_assert_eq(out->len, r->body_len, "%s [%s %zu]: body length %zu", r->comment, mode, at,
                 out->len);
    cr_assert(memcmp(out->buf, r->body, r->body_len) == 0, "%s [%s %zu]: body", r->comment, mode,
              at);
    if (got == CH_DONE) {
        cr_assert_eq(consumed, r->len - r->rest, "%s [%s %zu]: consumed %zu", r->comment, mode, at,
                     consumed);
        cr_assert(c->done);
    }
    if (got == AGAIN)
        cr_assert_eq(consumed, r->len, "%s [%s %zu]: framing not consumed", r->comment, mode, at);
}

static void run_chunk_row(const chunk_row_t *r, guard_t *g)
{
    size_t mt = r->max_trailer == 0  ? TRAILER_DEFAULT
                : r->max_trailer < 0 ? 0
                                     : (size_t)r->max_trailer;
    appsrv__chunked_t c;
    chunk_out_t out;
    size_t consumed, dlen;
    const char *buf;
    int64_t got;

    /* whole */
    memset(&c, 0, sizeof(c));
    out.len = consumed = 0;
    buf = guard_place(g, r->in, r->len);
    got = feed(&c, buf, r->len, mt, &out, &consumed, r->comment);
    check_chunk_result(r, got, &c, &out, consumed, "whole", r->len);
    /* done consumes nothing more; an error stays */
    if (got != AGAIN && consumed < r->len) {
        int64_t again = appsrv__chunked_parse(&c, buf + consumed, r->len - consumed, mt, &dlen);
        cr_assert_eq(again, got == CH_DONE ? 0 : got, "%s [again]", r->comment);
        cr_assert_eq(dlen, 0);
    }

    /* split at every offset */
    for (size_t k = 0; k <= r->len; k++) {
        if (!split_here(k, r->len))
            continue;
        memset(&c, 0, sizeof(c));
        out.len = consumed = 0;
        buf = guard_place(g, r->in, k);
        got = feed(&c, buf, k, mt, &out, &consumed, r->comment);
        if (got == AGAIN) {
            cr_assert_eq(consumed, k, "%s [split %zu]", r->comment, k);
            buf = guard_place(g, r->in, r->len);
            got = feed(&c, buf + k, r->len - k, mt, &out, &consumed, r->comment);
        } else {
            cr_assert_eq(got, r->want, "%s [split %zu]: first part gave %ld", r->comment, k,
                         (long)got);
        }
        check_chunk_result(r, got, &c, &out, consumed, "split", k);
    }

    /* one byte at a time, each byte ending at the guard page */
    memset(&c, 0, sizeof(c));
    out.len = consumed = 0;
    got = AGAIN;
    for (size_t i = 0; i < r->len && got == AGAIN; i++) {
        buf = guard_place(g, r->in, i + 1);
        got = feed(&c, buf + i, 1, mt, &out, &consumed, r->comment);
    }
    check_chunk_result(r, got, &c, &out, consumed, "bytes", 0);
}

static const chunk_row_t chunk_rows[] = {
    CDONE("one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"),
    CDONE("two chunks", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", "abcde"),
    CDONE("upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
    CDONE("lower-case hex", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
    CDONE("two hex digits", "1f\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n",
          "0123456789abcdef0123456789abcde"),
    CDONE("leading zeros", "005\r\nhello\r\n0\r\n\r\n", "hello"),
    CDONE("empty body", "0\r\n\r\n", ""),
    CDONE("last chunk with zeros", "000\r\n\r\n", ""),
    CDONE("data holds CRLF and NUL", "4\r\n\r\n\0x\r\n0\r\n\r\n", "\r\n\0x"),
    CDONE("one-byte chunks", "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n", "abc"),
    CDONE("extension name", "5;foo\r\nhello\r\n0\r\n\r\n", "hello"),
    CDONE("extension with a token value", "5;foo=bar\r\nhello\r\n0\r\n\r\n", "hello"),
    CDONE("extension with a quoted value", "5;foo=\"b a;r=\"\r\nhello\r\n0\r\n\r\n", "hello"),
    CDONE("quoted-pair in a quoted value", "5;f=\"a\\\"b\\\\\"\r\nhello\r\n0\r\n\r\n", "hello"),
    CDONE("empty quoted value", "5;f=\"\"\r\nhello\r\n0\r\n\r\n", "hello"),
    CDONE("obs-text in a quoted value", "5;f=\"\x80\xff\"\r\nhello\r\n0\r\n\r\n", "hello"),
    CDONE("several extensions", "5;a;b=c;d=\"e\"\r\nhello\r\n0\r\n\r\n", "hello"),
    CDONE("BWS between two names", "5;a ;b\r\nhello\r\n0\r\n\r\n", "hello"),
    CDONE("BWS around ';' and '='", "5 ;\ta = b ; c\t=\t\"d\" ;e\r\nhello\r\n0\r\n\r\n", "hello"),
    CDONE("extension on the last chunk", "0;x=y\r\n\r\n", ""),
    CDONE("one trailer field", "0\r\nX-T: v\r\n\r\n", ""),
    CDONE("several trailer fields", "2\r\nab\r\n0\r\nA: 1\r\nB:2\r\nC: \t3 \r\n\r\n", "ab"),
    CDONE("trailer with an empty value", "0\r\nX:\r\n\r\n", ""),
    CDONE("trailer with obs-text", "0\r\nX: caf\xc3\xa9\r\n\r\n", ""),
    CDONE("trailer of exactly max_trailer", "0\r\nX: 12345\r\n\r\n", "", .max_trailer = 10),
    CDONE("max_trailer 0 without trailers", "1\r\nz\r\n0\r\n\r\n", "z", .max_trailer = -1),
    CDONE("pipelined bytes are left", "1\r\nz\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "z", .rest = 16),
    CPART("size line done, data pending", "00007fff\r\n", ""),
    CPART("huge valid size waits for data", "7fffffffffffffff\r\nabc", "abc"),
    CPART("incomplete data", "5\r\nhel", "hel"),
    CPART("incomplete size line", "5;a=\"x", ""),
    CPART("data done, CRLF pending", "5\r\nhello", "hello"),
    CPART("trailers not ended", "0\r\nX: v\r\n", ""),
    CPART("empty input", "", ""),
    CBAD("not hex", "g\r\nabc\r\n0\r\n\r\n", 400, ""),
    CBAD("0x prefix", "0x10\r\n", 400, ""),
    CBAD("leading SP", " 5\r\nhello\r\n0\r\n\r\n", 400, ""),
    CBAD("leading HTAB", "\t5\r\nhello\r\n", 400, ""),
    CBAD("SP without an extension", "5 \r\nhello\r\n0\r\n\r\n", 400, ""),
    CBAD("empty size line", "\r\nhello\r\n", 400, ""),
    CBAD("negative size", "-1\r\n", 400, ""),
    CBAD("plus sign", "+1\r\n", 400, ""),
    CBAD("two numbers", "1 2\r\n", 400, ""),
    CBAD("size overflow", "ffffffffffffffffff\r\n", 400, ""),
    CBAD("size overflow before the CRLF", "ffffffffffffffff", 400, ""),
    CBAD("size 2^63", "8000000000000000\r\n", 400, ""),
    CBAD("data longer than the size", "5\r\nhelloX\r\n0\r\n\r\n", 400, "hello"),
    CBAD("LF only after data", "5\r\nhello\n0\r\n\r\n", 400, "hello"),
    CBAD("nothing but the next size after data", "5\r\nhello0\r\n\r\n", 400, "hello"),
    CBAD("LF-only size line", "5\nhello\r\n0\r\n\r\n", 400, ""),
    CBAD("LF-only last chunk", "5\r\nhello\r\n0\n\n", 400, "hello"),
    CBAD("bare CR after data", "5\r\nhello\r0\r\n\r\n", 400, "hello"),
    CBAD("bare CR in the size line", "5\rhello", 400, ""),
    CBAD("empty extension name", "5;\r\nhello\r\n", 400, ""),
    CBAD("extension without a name", "5;=x\r\nhello\r\n", 400, ""),
    CBAD("empty extension value", "5;a=\r\nhello\r\n", 400, ""),
    CBAD("CR in a quoted value", "5;a=\"x\r\nhello\r\n", 400, ""),
    CBAD("unterminated quoted value at the CRLF", "5;a=\"x\r\n\"\r\n", 400, ""),
    CBAD("SP inside a token value", "5;a=b c\r\nhello\r\n", 400, ""),
    CBAD("two names", "5;a b\r\nhello\r\n", 400, ""),
    CBAD("junk after a quoted value", "5;a=\"x\"y\r\nhello\r\n", 400, ""),
    CBAD("DEL in a quoted value", "5;a=\"\x7f\"\r\nhello\r\n", 400, ""),
    CBAD("NUL after a quoted-pair backslash", "5;a=\"\\\0\"\r\nhello\r\n", 400, ""),
    CBAD("'@' in an extension name", "5;a@b\r\nhello\r\n", 400, ""),
    CBAD("NUL in an extension value", "5;a=b\0\r\nhello\r\n", 400, ""),
    CBAD("BWS before CRLF after a name", "5;a \r\nhello\r\n", 400, ""),
    CBAD("BWS before CRLF after a value", "5;a=b \r\nhello\r\n", 400, ""),
    CBAD("trailer over max_trailer", "0\r\nX: 123456\r\n\r\n", 431, "", .max_trailer = 10),
    CBAD("trailer with max_trailer 0", "1\r\nz\r\n0\r\nX: 1\r\n\r\n", 431, "z", .max_trailer = -1),
    CBAD("SP before colon in a trailer", "0\r\nX : v\r\n\r\n", 400, ""),
    CBAD("obs-fold in the trailers", "0\r\nX: a\r\n b\r\n\r\n", 400, ""),
    CBAD("trailer without a colon", "0\r\nX\r\n\r\n", 400, ""),
    CBAD("trailer with an empty name", "0\r\n: v\r\n\r\n", 400, ""),
    CBAD("NUL in a trailer value", "0\r\nX: a\0\r\n\r\n", 400, ""),
    CBAD("bare LF ends a trailer", "0\r\nX: v\n\r\n", 400, ""),
    CBAD("bare LF ends the trailers", "0\r\n\n", 400, ""),
    CBAD("CR CR ends the trailers", "0\r\n\r\r", 400, ""),
    CBAD("bare CR in a trailer", "0\r\nX: a\rb\r\n\r\n", 400, ""),
};

Test(http_parse, chunked_table, .timeout = 120)
{
    guard_t g;
    size_t n = sizeof(chunk_rows) / sizeof(chunk_rows[0]);

    cr_log_info("%zu chunked rows", n);
    cr_assert_geq(n, 40);
    guard_init(&g, 4096);
    for (size_t i = 0; i < n; i++)
        run_chunk_row(&chunk_rows[i], &g);
    guard_dispose(&g);
}

/* Extensions and leading zeros are capped at 16 KiB over the body. */
Test(http_parse, chunked_overhead_cap, .timeout = 300)
{
    static char ext[16500], zeros[16400];
    size_t n;
    guard_t g;
    chunk_row_t r;

    /* 16 KiB of extension bytes pass, one more fails */
    n = (size_t)sprintf(ext, "1;");
    memset(ext + n, 'e', 16384 - 1);
    n += 16384 - 1;
    n += (size_t)sprintf(ext + n, "\r\nz\r\n0\r\n\r\n");
    r = (chunk_row_t){.comment = "16 KiB of extensions",
                      .in = ext,
                      .len = n,
                      .want = CH_DONE,
                      .body = "z",
                      .body_len = 1};
    guard_init(&g, sizeof(ext));
    run_chunk_row(&r, &g);

    n = (size_t)sprintf(ext, "1;");
    memset(ext + n, 'e', 16384);
    n += 16384;
    n += (size_t)sprintf(ext + n, "\r\nz\r\n0\r\n\r\n");
    r = (chunk_row_t){.comment = "16 KiB + 1 of extensions",
                      .in = ext,
                      .len = n,
                      .want = -400,
                      .body = "",
                      .body_len = 0};
    run_chunk_row(&r, &g);

    /* the cap is over the whole body: the next chunk's ';' is one too many */
    n = (size_t)sprintf(ext, "1;");
    memset(ext + n, 'e', 16384 - 1);
    n += 16384 - 1;
    n += (size_t)sprintf(ext + n, "\r\nz\r\n1;x\r\ny\r\n0\r\n\r\n");
    r = (chunk_row_t){.comment = "cap spans chunks",
                      .in = ext,
                      .len = n,
                      .want = -400,
                      .body = "z",
                      .body_len = 1};
    run_chunk_row(&r, &g);

    /* an endless run of leading zeros is refused too */
    memset(zeros, '0', sizeof(zeros));
    r = (chunk_row_t){.comment = "endless leading zeros",
                      .in = zeros,
                      .len = sizeof(zeros),
                      .want = -400,
                      .body = "",
                      .body_len = 0};
    run_chunk_row(&r, &g);
    guard_dispose(&g);
}

Test(http_parse, chunked_huge_trailer_limit, .timeout = 10)
{
    static const char in[] = "0\r\nX: y\r\n\r\n";
    appsrv__chunked_t c = {0};
    size_t dlen;

    cr_assert_eq(appsrv__chunked_parse(&c, in, sizeof(in) - 1, SIZE_MAX, &dlen),
                 (int64_t)sizeof(in) - 1);
    cr_assert(c.done);
    cr_assert_eq(c.trailer_bytes, 6);
}

Test(http_parse, chunked_done_consumes_nothing, .timeout = 10)
{
    static const char in[] = "0\r\n\r\nGET";
    appsrv__chunked_t c = {0};
    size_t dlen = 1;

    cr_assert_eq(appsrv__chunked_parse(&c, in, sizeof(in) - 1, 0, &dlen), 5);
    cr_assert(c.done);
    cr_assert_eq(appsrv__chunked_parse(&c, in + 5, 3, 0, &dlen), 0);
    cr_assert_eq(dlen, 0);
}
