/* SPDX-License-Identifier: MIT */
/*
 * test_http_parse.c - table-driven tests of the request-head parser
 * (lib/http_parse.c; the chunked decoder is in test_http_chunked.c). Every
 * row runs whole, split at every byte offset (each part moved so it ends
 * at an unreadable page, tests/support/guard.h, which the contract
 * allows: positions are offsets) and fed one byte at a time; all runs must
 * give the row's result and fields. A read past buf[len] faults.
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

/* ---------------------------------------------------------- head harness */

#define ALL   0 /* .want: the head is the whole input */
#define AGAIN APPSRV__AGAIN
#define MAXH  256

typedef struct hdr_want {
    int idx;
    const char *name, *value;
} hdr_want_t;

typedef struct head_row {
    const char *comment;
    const char *in;
    size_t len;
    int want;                                   /* head length, ALL, AGAIN or -status */
    const char *method, *target, *path, *query; /* query NULL: no '?' */
    const char *authority;                      /* absolute-form only */
    int form;
    int minor;
    uint64_t cl;
    bool has_cl, chunked, expect, close, keep_alive;
    int nhdrs;
    hdr_want_t h[4];           /* name NULL ends the list */
    appsrv__http_limits_t lim; /* max_head 0: the documented defaults */
} head_row_t;

/* clang-format off */
#define IN(s) .in = (s), .len = sizeof(s) - 1
#define OK(c, s, ...) {.comment = (c), IN(s), .want = ALL, __VA_ARGS__}
#define BODY(c, head, rest, ...)                                                \
    {.comment = (c), .in = head rest, .len = sizeof(head rest) - 1,             \
     .want = (int)sizeof(head) - 1, __VA_ARGS__}
#define BAD(c, s, st) {.comment = (c), IN(s), .want = -(st)}
#define BADL(c, s, st, ...) {.comment = (c), IN(s), .want = -(st), .lim = __VA_ARGS__}
#define PART(c, s) {.comment = (c), IN(s), .want = AGAIN}
#define PARTL(c, s, ...) {.comment = (c), IN(s), .want = AGAIN, .lim = __VA_ARGS__}

/* Common field sets. */
#define GET11 .method = "GET", .target = "/", .path = "/", .minor = 1
#define GET10 .method = "GET", .target = "/", .path = "/", .minor = 0
#define HOSTA .nhdrs = 1, .h = {{0, "Host", "a"}}
#define RQ "GET / HTTP/1.1\r\nHost: a\r\n" /* + more fields + "\r\n" */
#define SMALL {.max_head = 64, .max_target = 16, .max_headers = 3}
/* clang-format on */

static const appsrv__http_limits_t defaults = {16384, 8192, 128};

static bool span_is(const char *buf, appsrv__span_t s, const char *want)
{
    size_t n = strlen(want);
    return s.len == n && memcmp(buf + s.off, want, n) == 0;
}

static void check_fields(const head_row_t *r, const appsrv__http_head_t *h, const char *buf,
                         int got, const char *mode, size_t at)
{
    const char *c = r->comment;

    /* Every span lies inside the head. */
    cr_assert_leq(h->method.off + h->method.len, (uint32_t)got, "%s [%s %zu]", c, mode, at);
    cr_assert_leq(h->target.off + h->target.len, (uint32_t)got, "%s", c);
    cr_assert(span_is(buf, h->method, r->method), "%s [%s %zu]: method", c, mode, at);
    cr_assert(span_is(buf, h->target, r->target), "%s [%s %zu]: target '%.*s'", c, mode, at,
              (int)h->target.len, buf + h->target.off);
    cr_assert(span_is(buf, h->path, r->path), "%s [%s %zu]: path '%.*s'", c, mode, at,
              (int)h->path.len, buf + h->path.off);
    cr_assert_eq(h->has_query, r->query != NULL, "%s [%s %zu]: has_query", c, mode, at);
    if (r->query)
        cr_assert(span_is(buf, h->query, r->query), "%s [%s %zu]: query", c, mode, at);
    else
        cr_assert_eq(h->query.len, 0, "%s: query len", c);
    cr_assert_eq(h->target_form, r->form, "%s [%s %zu]: form", c, mode, at);
    if (r->form == APPSRV__TARGET_ABSOLUTE)
        cr_assert(span_is(buf, h->authority, r->authority), "%s [%s %zu]: authority '%.*s'", c,
                  mode, at, (int)h->authority.len, buf + h->authority.off);
    else
        cr_assert_eq(h->authority.len, 0, "%s [%s %zu]: authority len", c, mode, at);
    cr_assert_eq(h->minor, r->minor, "%s [%s %zu]: minor", c, mode, at);
    cr_assert_eq(h->has_content_length, r->has_cl, "%s [%s %zu]: has_cl", c, mode, at);
    cr_assert_eq(h->content_length, r->cl, "%s [%s %zu]: cl", c, mode, at);
    cr_assert_eq(h->is_chunked, r->chunked, "%s [%s %zu]: chunked", c, mode, at);
    cr_assert_eq(h->expect_continue, r->expect, "%s [%s %zu]: expect", c, mode, at);
    cr_assert_eq(h->conn_close, r->close, "%s [%s %zu]: close", c, mode, at);
    cr_assert_eq(h->conn_keep_alive, r->keep_alive, "%s [%s %zu]: keep-alive", c, mode, at);
    cr_assert_eq(h->nhdrs, (uint32_t)r->nhdrs, "%s [%s %zu]: nhdrs %u", c, mode, at, h->nhdrs);
    for (uint32_t i = 0; i < h->nhdrs; i++) {
        cr_assert_gt(h->hdrs[i].name.len, 0, "%s: empty name", c);
        cr_assert_leq(h->hdrs[i].value.off + h->hdrs[i].value.len, (uint32_t)got, "%s", c);
    }
    for (int i = 0; i < 4 && r->h[i].name; i++) {
        const appsrv__hdr_t *f = &h->hdrs[r->h[i].idx];
        cr_assert(span_is(buf, f->name, r->h[i].name), "%s [%s %zu]: name %d", c, mode, at,
                  r->h[i].idx);
        cr_assert(span_is(buf, f->value, r->h[i].value), "%s [%s %zu]: value %d '%.*s'", c, mode,
                  at, r->h[i].idx, (int)f->value.len, buf + f->value.off);
    }
}

static int parse(appsrv__http_head_t *h, guard_t *g, const head_row_t *r, size_t n,
                 const appsrv__http_limits_t *lim, const char **buf)
{
    *buf = guard_place(g, r->in, n);
    return appsrv__http_parse_head(h, *buf, n, lim);
}

static void reset(appsrv__http_head_t *h, appsrv__hdr_t *hdrs)
{
    memset(h, 0, sizeof(*h));
    h->hdrs = hdrs;
}

static void run_head_row(const head_row_t *r, guard_t *g)
{
    const appsrv__http_limits_t *lim = r->lim.max_head ? &r->lim : &defaults;
    int want = r->want == ALL ? (int)r->len : r->want;
    appsrv__hdr_t hdrs[MAXH];
    appsrv__http_head_t h;
    const char *buf;
    int got;

    cr_assert_leq(lim->max_headers, MAXH);
    if (want > 0)
        cr_assert(r->method && r->target && r->path, "%s: row lacks fields", r->comment);

    /* whole */
    reset(&h, hdrs);
    got = parse(&h, g, r, r->len, lim, &buf);
    cr_assert_eq(got, want, "%s [whole]: got %d want %d", r->comment, got, want);
    if (got > 0)
        check_fields(r, &h, buf, got, "whole", r->len);
    /* the result is sticky */
    cr_assert_eq(appsrv__http_parse_head(&h, buf, r->len, lim), want, "%s [again]", r->comment);

    /* split at every offset: the first part is moved to the guard page too */
    for (size_t k = 0; k <= r->len; k++) {
        int first;

        if (!split_here(k, r->len))
            continue;
        reset(&h, hdrs);
        first = parse(&h, g, r, k, lim, &buf);
        cr_assert(first == AGAIN || first == want,
                  "%s [split %zu]: first part gave %d, want %d or AGAIN", r->comment, k, first,
                  want);
        got = parse(&h, g, r, r->len, lim, &buf);
        cr_assert_eq(got, want, "%s [split %zu]: got %d want %d", r->comment, k, got, want);
        if (got > 0)
            check_fields(r, &h, buf, got, "split", k);
    }

    /* one byte at a time: AGAIN until the result, then the same result */
    reset(&h, hdrs);
    got = parse(&h, g, r, 0, lim, &buf);
    for (size_t i = 1; i <= r->len; i++) {
        int prev = got;
        got = parse(&h, g, r, i, lim, &buf);
        cr_assert(got == AGAIN || got == want, "%s [byte %zu]: got %d want %d", r->comment, i, got,
                  want);
        cr_assert(prev == AGAIN || prev == got, "%s [byte %zu]: result changed", r->comment, i);
    }
    cr_assert_eq(got, want, "%s [bytes]: got %d want %d", r->comment, got, want);
    if (got > 0)
        check_fields(r, &h, buf, got, "bytes", r->len);
}

static void run_head_table(const head_row_t *rows, size_t n)
{
    guard_t g;

    guard_init(&g, 64 * 1024);
    for (size_t i = 0; i < n; i++)
        run_head_row(&rows[i], &g);
    guard_dispose(&g);
}

/* ---------------------------------------------------- valid request heads */

static const head_row_t valid_rows[] = {
    OK("minimal HTTP/1.1", RQ "\r\n", GET11, HOSTA),
    OK("leading CRLF skipped", "\r\n" RQ "\r\n", GET11, HOSTA),
    OK("several leading CRLFs", "\r\n\r\n\r\n" RQ "\r\n", GET11, HOSTA),
    OK("HTTP/1.0 needs no Host", "GET / HTTP/1.0\r\n\r\n", GET10),
    OK("HTTP/1.0 with Host", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", GET10, HOSTA),
    OK("HTTP/1.2 served as 1.1", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", GET11, HOSTA),
    OK("HTTP/1.9 served as 1.1", "GET / HTTP/1.9\r\nHost: a\r\n\r\n", GET11, HOSTA),
    BODY("body follows the head", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
         "hello", .method = "POST", .target = "/x", .path = "/x", .minor = 1, .has_cl = true,
         .cl = 5, .nhdrs = 2, .h = {{1, "Content-Length", "5"}}),
    BODY("pipelined request follows", RQ "\r\n", "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n", GET11,
         HOSTA),
    BODY("a partial next request follows", RQ "\r\n", "GE", GET11, HOSTA),
    OK("query", "GET /p?a=b HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET", .target = "/p?a=b",
       .path = "/p", .query = "a=b", .minor = 1, HOSTA),
    OK("empty query", "GET /p? HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET", .target = "/p?",
       .path = "/p", .query = "", .minor = 1, HOSTA),
    OK("'?' and '/' inside the query", "GET /p?a=/b?c HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET",
       .target = "/p?a=/b?c", .path = "/p", .query = "a=/b?c", .minor = 1, HOSTA),
    OK("query on the root", "GET /?x HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET", .target = "/?x",
       .path = "/", .query = "x", .minor = 1, HOSTA),
    OK("%-escape in the path", "GET /a%20b HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET",
       .target = "/a%20b", .path = "/a%20b", .minor = 1, HOSTA),
    OK("%-escapes upper and lower hex", "GET /%2f%2F%aA HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "/%2f%2F%aA", .path = "/%2f%2F%aA", .minor = 1, HOSTA),
    OK("%-escape in the query", "GET /q?x=%7E HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET",
       .target = "/q?x=%7E", .path = "/q", .query = "x=%7E", .minor = 1, HOSTA),
    OK("%-escape ends the target", "GET /%41 HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET",
       .target = "/%41", .path = "/%41", .minor = 1, HOSTA),
    OK("sub-delims, ':' and '@' in the path", "GET /!$&'()*+,;=:@ HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "/!$&'()*+,;=:@", .path = "/!$&'()*+,;=:@", .minor = 1, HOSTA),
    OK("unreserved marks in the path", "GET /a-b.c_d~e HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "/a-b.c_d~e", .path = "/a-b.c_d~e", .minor = 1, HOSTA),
    OK("double slash path", "GET //x HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET", .target = "//x",
       .path = "//x", .minor = 1, HOSTA),
    OK("absolute-form", "GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\n\r\n",
       .method = "GET", .target = "http://example.com/a?b", .path = "/a", .query = "b",
       .authority = "example.com", .form = APPSRV__TARGET_ABSOLUTE, .minor = 1, .nhdrs = 1,
       .h = {{0, "Host", "example.com"}}),
    OK("absolute-form without a path: the path is \"/\" (RFC 9112 3.2.1)",
       "GET http://example.com HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET",
       .target = "http://example.com", .path = "/", .authority = "example.com",
       .form = APPSRV__TARGET_ABSOLUTE, .minor = 1, HOSTA),
    OK("absolute-form with a port", "GET http://h:8080/x HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "http://h:8080/x", .path = "/x", .authority = "h:8080",
       .form = APPSRV__TARGET_ABSOLUTE, .minor = 1, HOSTA),
    OK("absolute-form with a query and no path", "GET http://h?x HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "http://h?x", .path = "/", .query = "x", .authority = "h",
       .form = APPSRV__TARGET_ABSOLUTE, .minor = 1, HOSTA),
    OK("absolute-form with an IPv6 literal", "GET http://[::1]:80/ HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "http://[::1]:80/", .path = "/", .authority = "[::1]:80",
       .form = APPSRV__TARGET_ABSOLUTE, .minor = 1, HOSTA),
    OK("absolute-form https, upper-case scheme", "GET HTTPS://H/ HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "HTTPS://H/", .path = "/", .authority = "H",
       .form = APPSRV__TARGET_ABSOLUTE, .minor = 1, HOSTA),
    OK("absolute-form, mixed-case http", "GET hTtP://h/ HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "hTtP://h/", .path = "/", .authority = "h",
       .form = APPSRV__TARGET_ABSOLUTE, .minor = 1, HOSTA),
    OK("absolute-form, %-escape in the host", "GET http://a%41b/ HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "http://a%41b/", .path = "/", .authority = "a%41b",
       .form = APPSRV__TARGET_ABSOLUTE, .minor = 1, HOSTA),
    OK("asterisk-form with OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", .method = "OPTIONS",
       .target = "*", .path = "*", .form = APPSRV__TARGET_ASTERISK, .minor = 1, HOSTA),

    /* issue 13: every visible ASCII byte in the target (as llhttp and nginx) */
    OK("issue 13: '|', quotes, braces, '^', '`' and '\\' in the path and query",
       "GET /a|b?x=\"{}\"^`\\ HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET",
       .target = "/a|b?x=\"{}\"^`\\", .path = "/a|b", .query = "x=\"{}\"^`\\", .minor = 1, HOSTA),
    OK("issue 13: every VCHAR but '?', '#', '%' in the path",
       "GET /!\"$&'()*+,-./09:;<=>@AZ[\\]^_`az{|}~ HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET",
       .target = "/!\"$&'()*+,-./09:;<=>@AZ[\\]^_`az{|}~",
       .path = "/!\"$&'()*+,-./09:;<=>@AZ[\\]^_`az{|}~", .minor = 1, HOSTA),
    OK("issue 13: every VCHAR but '#' in the query",
       "GET /?!\"$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~ HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET",
       .target = "/?!\"$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~", .path = "/",
       .query = "!\"$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~", .minor = 1, HOSTA),
    OK("issue 13: '[' and ']' in an origin-form path", "GET /[x] HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "/[x]", .path = "/[x]", .minor = 1, HOSTA),
    OK("issue 13: bad %-escapes in the query are the application's",
       "GET /q?a=%zz&b=%&c=%4&d=%%41 HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET",
       .target = "/q?a=%zz&b=%&c=%4&d=%%41", .path = "/q", .query = "a=%zz&b=%&c=%4&d=%%41",
       .minor = 1, HOSTA),
    OK("issue 13: '%' ends the query", "GET /?a=% HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET",
       .target = "/?a=%", .path = "/", .query = "a=%", .minor = 1, HOSTA),
    OK("issue 13: a valid escape, then '?' with a bad one",
       "GET /%41?%4 HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET", .target = "/%41?%4",
       .path = "/%41", .query = "%4", .minor = 1, HOSTA),
    OK("issue 13: a fragment is dropped (RFC 9110 7.1)", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "/a", .path = "/a", .minor = 1, HOSTA),
    OK("issue 13: a fragment after the query", "GET /a?b#c HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "/a?b", .path = "/a", .query = "b", .minor = 1, HOSTA),
    OK("issue 13: an empty query and an empty fragment", "GET /a?# HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "/a?", .path = "/a", .query = "", .minor = 1, HOSTA),
    OK("issue 13: an empty fragment on the root", "GET /# HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "/", .path = "/", .minor = 1, HOSTA),
    OK("issue 13: '#', '?' and a bad escape inside a fragment",
       "GET /p#f?g#h%zz\"| HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET", .target = "/p",
       .path = "/p", .minor = 1, HOSTA),
    OK("issue 13: a fragment after an escape", "GET /a%41#x HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "/a%41", .path = "/a%41", .minor = 1, HOSTA),
    OK("issue 13: every VCHAR in a fragment",
       "GET /#!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~ HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "/", .path = "/", .minor = 1, HOSTA),
    OK("issue 13: absolute-form, VCHARs and a fragment",
       "GET http://h/a|b?c{d}#e HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET",
       .target = "http://h/a|b?c{d}", .path = "/a|b", .query = "c{d}", .authority = "h",
       .form = APPSRV__TARGET_ABSOLUTE, .minor = 1, HOSTA),
    OK("issue 13: absolute-form, a fragment right after the authority",
       "GET http://h:1#f HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET", .target = "http://h:1",
       .path = "/", .authority = "h:1", .form = APPSRV__TARGET_ABSOLUTE, .minor = 1, HOSTA),
    OK("issue 13: absolute-form in HTTP/1.0 needs no Host", "GET http://h/x HTTP/1.0\r\n\r\n",
       .method = "GET", .target = "http://h/x", .path = "/x", .authority = "h",
       .form = APPSRV__TARGET_ABSOLUTE, .minor = 0),
    OK("issue 13: a fragment counts against max_target, exactly 16",
       "GET /a#4567890123456 HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET", .target = "/a",
       .path = "/a", .minor = 1, HOSTA, .lim = SMALL),
    OK("OWS trimmed on both sides", "GET / HTTP/1.1\r\nHost: \t a \t \r\n\r\n", GET11, HOSTA),
    OK("no OWS", "GET / HTTP/1.1\r\nHost:a\r\n\r\n", GET11, HOSTA),
    OK("empty field value", RQ "X-Empty:\r\n\r\n", GET11, .nhdrs = 2,
       .h = {{0, "Host", "a"}, {1, "X-Empty", ""}}),
    OK("whitespace-only value is empty", RQ "X-E: \t \r\n\r\n", GET11, .nhdrs = 2,
       .h = {{1, "X-E", ""}}),
    OK("inner SP and HTAB kept", RQ "X-A: a  b\tc \r\n\r\n", GET11, .nhdrs = 2,
       .h = {{1, "X-A", "a  b\tc"}}),
    OK("obs-text (UTF-8) in a value", RQ "X-A: caf\xc3\xa9\r\n\r\n", GET11, .nhdrs = 2,
       .h = {{1, "X-A", "caf\xc3\xa9"}}),
    OK("obs-text 0x80 and 0xff in a value", RQ "X-A: \x80\xff\r\n\r\n", GET11, .nhdrs = 2,
       .h = {{1, "X-A", "\x80\xff"}}),
    OK("':' inside a value", RQ "X-A: a:b: c\r\n\r\n", GET11, .nhdrs = 2,
       .h = {{1, "X-A", "a:b: c"}}),
    OK("every VCHAR in a value", RQ "X-V: !\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\r\n\r\n", GET11,
       .nhdrs = 2, .h = {{1, "X-V", "!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"}}),
    OK("every tchar in a name", RQ "!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n", GET11, .nhdrs = 2,
       .h = {{1, "!#$%&'*+-.^_`|~09azAZ", "v"}}),
    OK("lower-case host", "GET / HTTP/1.1\r\nhost: a\r\n\r\n", GET11, .nhdrs = 1,
       .h = {{0, "host", "a"}}),
    OK("upper-case HOST", "GET / HTTP/1.1\r\nHOST: a\r\n\r\n", GET11, .nhdrs = 1,
       .h = {{0, "HOST", "a"}}),
    OK("Host with a port", "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", GET11, .nhdrs = 1,
       .h = {{0, "Host", "a.example:8080"}}),
    OK("Host with an IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", GET11, .nhdrs = 1,
       .h = {{0, "Host", "[::1]:8080"}}),
    OK("empty Host is allowed (RFC 9110 7.2)", "GET / HTTP/1.1\r\nHost:\r\n\r\n", GET11, .nhdrs = 1,
       .h = {{0, "Host", ""}}),
    OK("Host after other fields", "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nHost: a\r\n\r\n", GET11,
       .nhdrs = 3, .h = {{0, "A", "1"}, {1, "B", "2"}, {2, "Host", "a"}}),
    OK("Content-Length: 0", RQ "Content-Length: 0\r\n\r\n", GET11, .has_cl = true, .nhdrs = 2),
    OK("Content-Length case-insensitive name", RQ "content-LENGTH: 12\r\n\r\n", GET11,
       .has_cl = true, .cl = 12, .nhdrs = 2),
    OK("Content-Length surrounded by OWS", RQ "Content-Length:  5 \t\r\n\r\n", GET11,
       .has_cl = true, .cl = 5, .nhdrs = 2, .h = {{1, "Content-Length", "5"}}),
    OK("duplicate identical Content-Length", RQ "Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
       GET11, .has_cl = true, .cl = 5, .nhdrs = 3),
    OK("duplicate Content-Length, same decimal value",
       RQ "Content-Length: 5\r\nContent-Length: 005\r\n\r\n", GET11, .has_cl = true, .cl = 5,
       .nhdrs = 3),
    OK("Content-Length leading zeros", RQ "Content-Length: 007\r\n\r\n", GET11, .has_cl = true,
       .cl = 7, .nhdrs = 2),
    OK("Content-Length 2^63-1", RQ "Content-Length: 9223372036854775807\r\n\r\n", GET11,
       .has_cl = true, .cl = 9223372036854775807ull, .nhdrs = 2),
    OK("Transfer-Encoding: chunked", RQ "Transfer-Encoding: chunked\r\n\r\n", GET11,
       .chunked = true, .nhdrs = 2, .h = {{1, "Transfer-Encoding", "chunked"}}),
    OK("chunked is case-insensitive", RQ "transfer-encoding: CHUNKED\r\n\r\n", GET11,
       .chunked = true, .nhdrs = 2),
    OK("TE.TE: HTAB as OWS is valid", RQ "Transfer-Encoding:\tchunked\r\n\r\n", GET11,
       .chunked = true, .nhdrs = 2, .h = {{1, "Transfer-Encoding", "chunked"}}),
    OK("TE.TE: leading spaces are OWS", RQ "Transfer-Encoding:   chunked\r\n\r\n", GET11,
       .chunked = true, .nhdrs = 2, .h = {{1, "Transfer-Encoding", "chunked"}}),
    OK("chunked with trailing OWS", RQ "Transfer-Encoding: chunked \t\r\n\r\n", GET11,
       .chunked = true, .nhdrs = 2),
    OK("empty list elements are ignored (RFC 9110 5.6.1)",
       RQ "Transfer-Encoding: , chunked ,\r\n\r\n", GET11, .chunked = true, .nhdrs = 2),
    OK("framing names by length only: Hist, Expert, Connectiom, Content-Lengtx, "
       "Transfer-Encodinx",
       RQ "Hist: a b\r\nExpert: x\r\nConnectiom: y z\r\nContent-Lengtx: q\r\n"
          "Transfer-Encodinx: gzip\r\n\r\n",
       GET11, .nhdrs = 6),
    OK("Transfer_Encoding is just another field", RQ "Transfer_Encoding: chunked\r\n\r\n", GET11,
       .nhdrs = 2),
    OK("Transfer-Encodings is just another field", RQ "Transfer-Encodings: gzip\r\n\r\n", GET11,
       .nhdrs = 2),
    OK("Expect: 100-continue", RQ "Expect: 100-continue\r\n\r\n", GET11, .expect = true,
       .nhdrs = 2),
    OK("Expect is case-insensitive", RQ "expect: 100-CONTINUE \r\n\r\n", GET11, .expect = true,
       .nhdrs = 2),
    OK("Expect twice", RQ "Expect: 100-continue\r\nExpect: 100-continue\r\n\r\n", GET11,
       .expect = true, .nhdrs = 3),
    OK("Expect: 100-continue ignored in HTTP/1.0 (RFC 9110 10.1.1)",
       "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", .method = "POST",
       .target = "/", .path = "/", .minor = 0, .has_cl = true, .cl = 1, .nhdrs = 2),
    OK("Connection: close", RQ "Connection: close\r\n\r\n", GET11, .close = true, .nhdrs = 2),
    OK("Connection: keep-alive", RQ "Connection: keep-alive\r\n\r\n", GET11, .keep_alive = true,
       .nhdrs = 2),
    OK("Connection list, mixed case", RQ "Connection: Keep-Alive, Upgrade\r\n\r\n", GET11,
       .keep_alive = true, .nhdrs = 2),
    OK("Connection list with close last", RQ "connection: upgrade,CLOSE\r\n\r\n", GET11,
       .close = true, .nhdrs = 2),
    OK("Connection close and keep-alive", RQ "Connection: close\r\nConnection: keep-alive\r\n\r\n",
       GET11, .close = true, .keep_alive = true, .nhdrs = 3),
    OK("Connection: closed is not close", RQ "Connection: closed, keep-alives\r\n\r\n", GET11,
       .nhdrs = 2),
    OK("empty Connection", RQ "Connection:\r\n\r\n", GET11, .nhdrs = 2),
    OK("HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", GET10,
       .keep_alive = true, .nhdrs = 1),
    OK("HTTP/1.0 with Content-Length", "POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n",
       .method = "POST", .target = "/", .path = "/", .minor = 0, .has_cl = true, .cl = 3,
       .nhdrs = 1),
    OK("method DELETE", "DELETE /r/1 HTTP/1.1\r\nHost: a\r\n\r\n", .method = "DELETE",
       .target = "/r/1", .path = "/r/1", .minor = 1, HOSTA),
    OK("extension method M-SEARCH", "M-SEARCH /upnp HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "M-SEARCH", .target = "/upnp", .path = "/upnp", .minor = 1, HOSTA),
    OK("method of every tchar", "!#$%&'*+-.^_`|~09azAZ / HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "!#$%&'*+-.^_`|~09azAZ", .target = "/", .path = "/", .minor = 1, HOSTA),
    OK("lower-case method is a token", "get / HTTP/1.1\r\nHost: a\r\n\r\n", .method = "get",
       .target = "/", .path = "/", .minor = 1, HOSTA),
    OK("small limits: exactly max_headers", "GET / HTTP/1.1\r\nHost: a\r\nB: 2\r\nC: 3\r\n\r\n",
       GET11, .nhdrs = 3, .lim = SMALL),
    OK("small limits: head exactly max_head (64)",
       "GET / HTTP/1.1\r\nHost: a\r\nX: 01234567890123456789012345678901\r\n\r\n", GET11,
       .nhdrs = 2, .lim = SMALL),
    OK("small limits: target exactly max_target (16)",
       "GET /234567890123456 HTTP/1.1\r\nHost: a\r\n\r\n", .method = "GET",
       .target = "/234567890123456", .path = "/234567890123456", .minor = 1, HOSTA, .lim = SMALL),
    OK("small limits: query counts, exactly 16", "GET /?34567890123456 HTTP/1.1\r\nHost: a\r\n\r\n",
       .method = "GET", .target = "/?34567890123456", .path = "/", .query = "34567890123456",
       .minor = 1, HOSTA, .lim = SMALL),
    OK("curl",
       "GET /api/v1/items?limit=10 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
       "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
       .method = "GET", .target = "/api/v1/items?limit=10", .path = "/api/v1/items",
       .query = "limit=10", .minor = 1, .nhdrs = 3,
       .h = {{0, "Host", "127.0.0.1:8080"},
             {1, "User-Agent", "curl/7.88.1"},
             {2, "Accept", "*/*"}}),
    OK("curl POST with Expect",
       "POST /upload HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"
       "Content-Length: 2000\r\nContent-Type: application/octet-stream\r\nExpect: "
       "100-continue\r\n\r\n",
       .method = "POST", .target = "/upload", .path = "/upload", .minor = 1, .has_cl = true,
       .cl = 2000, .expect = true, .nhdrs = 6),
    OK("Python requests",
       "POST /login HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: python-requests/2.31.0\r\n"
       "Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n"
       "Content-Length: 27\r\nContent-Type: application/json\r\n\r\n",
       .method = "POST", .target = "/login", .path = "/login", .minor = 1, .has_cl = true, .cl = 27,
       .keep_alive = true, .nhdrs = 7,
       .h = {{3, "Accept", "*/*"}, {6, "Content-Type", "application/json"}}),
    OK("OkHttp chunked upload",
       "POST /v2/events HTTP/1.1\r\nContent-Type: application/json; charset=utf-8\r\n"
       "Transfer-Encoding: chunked\r\nHost: api.example.com\r\nConnection: Keep-Alive\r\n"
       "Accept-Encoding: gzip\r\nUser-Agent: okhttp/4.12.0\r\n\r\n",
       .method = "POST", .target = "/v2/events", .path = "/v2/events", .minor = 1, .chunked = true,
       .keep_alive = true, .nhdrs = 6,
       .h = {{0, "Content-Type", "application/json; charset=utf-8"},
             {5, "User-Agent", "okhttp/4.12.0"}}),
    OK("URLSession",
       "GET /feed?since=1700000000&lang=en-US HTTP/1.1\r\nHost: api.example.com\r\n"
       "Accept: application/json\r\nAccept-Language: en-US,en;q=0.9\r\nConnection: keep-alive\r\n"
       "Accept-Encoding: gzip, deflate, br\r\nUser-Agent: MyApp/1.4 CFNetwork/1474 "
       "Darwin/23.0.0\r\n\r\n",
       .method = "GET", .target = "/feed?since=1700000000&lang=en-US", .path = "/feed",
       .query = "since=1700000000&lang=en-US", .minor = 1, .keep_alive = true, .nhdrs = 6,
       .h = {{5, "User-Agent", "MyApp/1.4 CFNetwork/1474 Darwin/23.0.0"}}),
    OK("Node fetch (undici)",
       "PUT /items/42 HTTP/1.1\r\nhost: localhost:3000\r\nconnection: keep-alive\r\n"
       "content-type: application/json\r\naccept: */*\r\naccept-language: *\r\n"
       "sec-fetch-mode: cors\r\nuser-agent: node\r\naccept-encoding: gzip, deflate\r\n"
       "content-length: 13\r\n\r\n",
       .method = "PUT", .target = "/items/42", .path = "/items/42", .minor = 1, .has_cl = true,
       .cl = 13, .keep_alive = true, .nhdrs = 9, .h = {{0, "host", "localhost:3000"}}),
    OK("Android with a bearer token",
       "DELETE /v1/session HTTP/1.1\r\nAuthorization: Bearer eyJhbGciOi.eyJzdWIi.SflKxw\r\n"
       "Host: api.example.com\r\nUser-Agent: Dalvik/2.1.0 (Linux; U; Android 14)\r\n\r\n",
       .method = "DELETE", .target = "/v1/session", .path = "/v1/session", .minor = 1, .nhdrs = 3,
       .h = {{0, "Authorization", "Bearer eyJhbGciOi.eyJzdWIi.SflKxw"}}),
    OK("HEAD with cookies", "HEAD /s HTTP/1.1\r\nHost: a\r\nCookie: a=1; b=2\r\n\r\n",
       .method = "HEAD", .target = "/s", .path = "/s", .minor = 1, .nhdrs = 2,
       .h = {{1, "Cookie", "a=1; b=2"}}),
    PART("empty input", ""),
    PART("a leading CRLF only", "\r\n"),
    PART("a lone CR", "\r"),
    PART("method only", "GET"),
    PART("request line without CRLF", "GET / HTTP/1.1"),
    PART("request line, CR only", "GET / HTTP/1.1\r"),
    PART("no blank line yet", RQ),
    PART("final CR only", RQ "\r"),
    PART("inside a %-escape", "GET /%4"),
    PART("inside a value", RQ "X: abc"),
    PART("HTTP/2 request line waits for its LF", "GET / HTTP/2.0\r"),
    PART("Content-Length line not ended", RQ "Content-Length: 99999999999999999999"),
    PARTL("small limits: exactly max_head bytes, incomplete",
          "GET / HTTP/1.1\r\nHost: a\r\nX: 012345678901234567890123456789012345", SMALL),
};

/* -------------------------------------------------- invalid request heads */

static const head_row_t bad_rows[] = {
    /* request line */
    BAD("double SP after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("double SP before version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("HTAB after method", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("HTAB before version", "GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("leading SP", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("trailing SP after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    BAD("no version", "GET /\r\nHost: a\r\n\r\n", 400),
    BAD("no version, SP then CRLF", "GET / \r\nHost: a\r\n\r\n", 400),
    BAD("HTTP/0.9 simple request shape", "GET /\r\n\r\n", 400),
    BAD("HTTP/1 without minor", "GET / HTTP/1\r\nHost: a\r\n\r\n", 400),
    BAD("HTTP/1. without minor digit", "GET / HTTP/1.\r\nHost: a\r\n\r\n", 400),
    BAD("junk after version", "GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400),
    BAD("lower-case http/1.1", "GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("HTTPS/1.1", "GET / HTTPS/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("two-digit minor", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
    BAD("two-digit major", "GET / HTTP/10.0\r\nHost: a\r\n\r\n", 400),
    BAD("HTTP/2 without minor is malformed", "GET / HTTP/2\r\nHost: a\r\n\r\n", 400),
    BAD("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    BAD("HTTP/2.0 decided at the request line", "GET / HTTP/2.0\r\n", 505),
    BAD("HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 505),
    BAD("HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
    BAD("HTTP/9.9", "GET / HTTP/9.9\r\n\r\n", 505),
    BAD("version with a space inside", "GET / HTTP/ 1.1\r\nHost: a\r\n\r\n", 400),
    BAD("bare LF ends the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    BAD("bare CR in the request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    BAD("leading bare LF", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("leading CR CR", "\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("method then CRLF", "GET\r\nHost: a\r\n\r\n", 400),
    BAD("method, SP, CRLF", "GET \r\nHost: a\r\n\r\n", 400),
    BAD("no method", "/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("NUL in the method", "G\0T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("'(' in the method", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("high-bit byte in the method", "G\xc9T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("CONNECT authority-form", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
        501),
    BAD("CONNECT refused early", "CONNECT ", 501),
    BAD("asterisk-form with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("asterisk-form with lower-case options", "options * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("asterisk followed by more", "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("asterisk then slash", "OPTIONS */ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("bare word target", "GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("authority-form with GET", "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("scheme with one slash", "GET http:/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("empty authority", "GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("empty authority before a path", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("empty authority before a query", "GET http://?x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("scheme starting with a digit", "GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("'_' in a scheme", "GET ht_tp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("'{' in the authority", "GET http://a{/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("bad %-escape in the authority", "GET http://a%g1/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("SP inside the target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("0x80 in the target", "GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("UTF-8 in the target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("0xff in the query", "GET /?\xff HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("DEL in the target", "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("NUL in the target", "GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("HTAB in the target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("CR in the target", "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("'%' at the end", "GET /% HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("'%' and one digit", "GET /%2 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("'%zz'", "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("'%2g'", "GET /%2g HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("'%%'", "GET /%%41 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    /* issue 13: still refused in the target */
    BAD("issue 13: 0x01 in the query", "GET /?a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: DEL in the query", "GET /?a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: HTAB in the query", "GET /?a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: SP inside the query", "GET /?a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: UTF-8 in the query", "GET /?caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: 0x01 in a fragment", "GET /#\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: DEL in a fragment", "GET /#\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: 0x80 in a fragment", "GET /#\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: NUL in a fragment", "GET /a?b#\0 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: SP inside a fragment", "GET /#a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: CR in a fragment", "GET /#a\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: bad escape in the path before a query",
        "GET /%zz?a=1 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: truncated escape before a query", "GET /a%4?x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: truncated escape before a fragment", "GET /a%4#x HTTP/1.1\r\nHost: a\r\n\r\n",
        400),
    BAD("issue 13: bad escape in an absolute-form path",
        "GET http://h/%g0 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: scheme ftp", "GET ftp://h/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: scheme ws", "GET ws://h/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: scheme httpx", "GET httpx://h/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: scheme htt", "GET htt://h/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: scheme http+", "GET http+://h/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: scheme h", "GET h://h/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: scheme with + - . and digits",
        "GET coap+tcp.v-2://h/p HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: a long scheme is refused early", "GET httpsxxxxxxxxxxxxxxxxxxxxxx", 400),
    BAD("issue 13: userinfo", "GET http://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: userinfo with a password and port",
        "GET http://u:p@h:8080/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: empty userinfo", "GET https://@h/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: '@' and an empty host", "GET http://h@/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("issue 13: userinfo refused before the line ends", "GET http://u@", 400),
    BAD("issue 13: absolute-form HTTP/1.1 still needs Host", "GET http://h/ HTTP/1.1\r\n\r\n", 400),
    BAD("issue 13: absolute-form, two Host fields",
        "GET http://h/ HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", 400),
    BAD("issue 13: asterisk-form with a fragment", "OPTIONS *#x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BADL("issue 13: 414 in a fragment", "GET /a#45678901234567 HTTP/1.1\r\nHost: a\r\n\r\n", 414,
         SMALL),
    BADL("414: target over max_target", "GET /2345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n", 414,
         SMALL),
    BADL("414 before the line ends", "GET /23456789012345678901234567890", 414, SMALL),
    BADL("414 in the query", "GET /?345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n", 414, SMALL),
    BADL("414 in absolute-form", "GET http://host.example/ HTTP/1.1\r\n", 414, SMALL),
    BADL("414 wins over a bad byte past the limit", "GET /234567890123456\x01", 414, SMALL),
    BADL("a bad byte inside the limit is 400", "GET /2345\x01", 400, SMALL),

    /* header lines */
    BAD("SP before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    BAD("HTAB before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    BAD("TE.TE: 'Transfer-Encoding : chunked'", RQ "Transfer-Encoding : chunked\r\n\r\n", 400),
    BAD("SP after the request line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    BAD("obs-fold with SP", RQ "X: a\r\n b\r\n\r\n", 400),
    BAD("obs-fold with HTAB", RQ "X: a\r\n\tb\r\n\r\n", 400),
    BAD("obs-fold of Transfer-Encoding", RQ "Transfer-Encoding:\r\n chunked\r\n\r\n", 400),
    BAD("empty field name", RQ ": a\r\n\r\n", 400),
    BAD("no colon", RQ "Host a\r\n\r\n", 400),
    BAD("name then CRLF", RQ "X-Foo\r\n\r\n", 400),
    BAD("NUL in a name", RQ "X-F\0o: a\r\n\r\n", 400),
    BAD("NUL in Transfer-Encoding's name", RQ "Transfer-Encoding\0: chunked\r\n\r\n", 400),
    BAD("NUL in a value", RQ "X: a\0b\r\n\r\n", 400),
    BAD("NUL at the start of a value", RQ "X: \0\r\n\r\n", 400),
    BAD("bare CR in a value", RQ "X: a\rb\r\n\r\n", 400),
    BAD("bare LF ends a field line", RQ "X: a\nY: b\r\n\r\n", 400),
    BAD("bare LF ends the head", RQ "\n", 400),
    BAD("bare LF before the final CRLF", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
    BAD("CR CR at the end", RQ "\r\r\n", 400),
    BAD("CR then junk at the end", RQ "\rX", 400),
    BAD("DEL in a value", RQ "X: a\x7f\r\n\r\n", 400),
    BAD("vertical tab in a value", RQ "X: a\x0b b\r\n\r\n", 400),
    BAD("TE.TE: vertical tab before chunked",
        RQ "Transfer-Encoding: \x0b"
           "chunked\r\n\r\n",
        400),
    BAD("TE.TE: vertical tab after chunked", RQ "Transfer-Encoding: chunked\x0b\r\n\r\n", 400),
    BAD("form feed in a value", RQ "X: \x0c\r\n\r\n", 400),
    BAD("0x01 in a value", RQ "X: a\x01\r\n\r\n", 400),
    BAD("ESC in a value", RQ "X: \x1b[0m\r\n\r\n", 400),
    BAD("high-bit byte in a name", RQ "X-\xc3\xa9: a\r\n\r\n", 400),
    BAD("'(' in a name", RQ "X(a): b\r\n\r\n", 400),
    BAD("'@' in a name", RQ "X@a: b\r\n\r\n", 400),
    BAD("'/' in a name", RQ "X/a: b\r\n\r\n", 400),
    BAD("'\"' in a name", RQ "\"X\": b\r\n\r\n", 400),
    BADL("431: more than max_headers fields",
         "GET / HTTP/1.1\r\nHost: a\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431, SMALL),
    BADL("431: head over max_head",
         "GET / HTTP/1.1\r\nHost: a\r\nX: 012345678901234567890123456789012\r\n\r\n", 431, SMALL),
    BADL("431 before the head ends",
         "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789012345678901234567890123456", 431, SMALL),
    BADL("431: leading CRLFs count",
         "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
         "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n",
         431, SMALL),
    BADL("max_headers 0 refuses the first field", RQ "\r\n", 431,
         {.max_head = 64, .max_target = 16, .max_headers = 0}),
    BAD("HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", 400),
    BAD("HTTP/1.1 without Host, other fields", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    BAD("HTTP/1.2 without Host", "GET / HTTP/1.2\r\n\r\n", 400),
    BAD("two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    BAD("two Host fields, different case", "GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n", 400),
    BAD("two Host fields in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    BAD("second Host refused before the end", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n", 400),
    BAD("Host with SP inside", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    BAD("Host with '/'", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    BAD("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    BAD("Host with obs-text", "GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n", 400),

    /* Content-Length */
    BAD("Content-Length +5", RQ "Content-Length: +5\r\n\r\n", 400),
    BAD("Content-Length -5", RQ "Content-Length: -5\r\n\r\n", 400),
    BAD("Content-Length with inner space", RQ "Content-Length: 5 5\r\n\r\n", 400),
    BAD("Content-Length 0x5", RQ "Content-Length: 0x5\r\n\r\n", 400),
    BAD("Content-Length list", RQ "Content-Length: 5, 5\r\n\r\n", 400),
    BAD("Content-Length trailing comma", RQ "Content-Length: 5,\r\n\r\n", 400),
    BAD("Content-Length empty", RQ "Content-Length:\r\n\r\n", 400),
    BAD("Content-Length 5a", RQ "Content-Length: 5a\r\n\r\n", 400),
    BAD("Content-Length 5.0", RQ "Content-Length: 5.0\r\n\r\n", 400),
    BAD("Content-Length 1e3", RQ "Content-Length: 1e3\r\n\r\n", 400),
    BAD("Content-Length quoted", RQ "Content-Length: \"5\"\r\n\r\n", 400),
    BAD("Content-Length with obs-text digit", RQ "Content-Length: \xd9\xa5\r\n\r\n", 400),
    BAD("Content-Length 2^63", RQ "Content-Length: 9223372036854775808\r\n\r\n", 400),
    BAD("Content-Length 2^64", RQ "Content-Length: 18446744073709551616\r\n\r\n", 400),
    BAD("Content-Length huge", RQ "Content-Length: 99999999999999999999999999999999\r\n\r\n", 400),
    BAD("duplicate Content-Length, different", RQ "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
        400),
    BAD("CL.TE", RQ "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    BAD("TE.CL", RQ "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n", 400),
    BAD("CL.TE with Content-Length: 0",
        RQ "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),

    /* Transfer-Encoding */
    BAD("TE.TE: xchunked", RQ "Transfer-Encoding: xchunked\r\n\r\n", 501),
    BAD("TE.TE: chunked, identity", RQ "Transfer-Encoding: chunked, identity\r\n\r\n", 400),
    BAD("identity is not implemented", RQ "Transfer-Encoding: identity\r\n\r\n", 501),
    BAD("gzip, chunked: gzip not implemented", RQ "Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    BAD("chunked, gzip: chunked not final", RQ "Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    BAD("TE.TE: chunked then x in another field",
        RQ "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n", 400),
    BAD("chunked twice in two fields",
        RQ "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    BAD("chunked twice in one field", RQ "Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
    BAD("empty Transfer-Encoding", RQ "Transfer-Encoding:\r\n\r\n", 400),
    BAD("Transfer-Encoding of commas only", RQ "Transfer-Encoding: , ,\r\n\r\n", 400),
    BAD("chunked with a parameter", RQ "Transfer-Encoding: chunked;q=1\r\n\r\n", 400),
    BAD("gzip with a parameter", RQ "Transfer-Encoding: gzip;level=1\r\n\r\n", 501),
    BAD("chunked SP junk", RQ "Transfer-Encoding: chunked x\r\n\r\n", 400),
    BAD("quoted chunked", RQ "Transfer-Encoding: \"chunked\"\r\n\r\n", 400),
    BAD("chunked with obs-text", RQ "Transfer-Encoding: chunked\xff\r\n\r\n", 400),
    BAD("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    BAD("unknown coding in HTTP/1.0 is still 400",
        "POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n", 400),

    /* Expect */
    BAD("Expect: 200-ok", RQ "Expect: 200-ok\r\n\r\n", 417),
    BAD("empty Expect", RQ "Expect:\r\n\r\n", 417),
    BAD("Expect list", RQ "Expect: 100-continue, foo\r\n\r\n", 417),
    BAD("Expect: 100-continued", RQ "Expect: 100-continued\r\n\r\n", 417),
    BAD("Expect: 100", RQ "Expect: 100\r\n\r\n", 417),
    BAD("other Expect in HTTP/1.0", "GET / HTTP/1.0\r\nExpect: 200-ok\r\n\r\n", 417),

    /* Connection */
    BAD("Connection option with a parameter", RQ "Connection: close;x\r\n\r\n", 400),
    BAD("Connection options without a comma", RQ "Connection: close keep-alive\r\n\r\n", 400),
    BAD("quoted Connection option", RQ "Connection: \"close\"\r\n\r\n", 400),

    /* the first offending byte decides */
    BAD("bad byte before a missing Host", "GET / HTTP/1.1\r\nX: \x01\r\n\r\n", 400),
    BAD("505 before a bad header", "GET / HTTP/2.0\r\nX : y\r\n\r\n", 505),
    BAD("417 before CL.TE",
        RQ "Expect: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 417),
    BAD("501 before a missing Host", "POST / HTTP/1.1\r\nTransfer-Encoding: br\r\n\r\n", 501),
};

Test(http_parse, valid_heads, .timeout = 120)
{
    run_head_table(valid_rows, sizeof(valid_rows) / sizeof(valid_rows[0]));
}

Test(http_parse, invalid_heads, .timeout = 120)
{
    run_head_table(bad_rows, sizeof(bad_rows) / sizeof(bad_rows[0]));
}

Test(http_parse, table_size, .timeout = 10)
{
    size_t n = sizeof(valid_rows) / sizeof(valid_rows[0]) + sizeof(bad_rows) / sizeof(bad_rows[0]);
    cr_log_info("%zu head rows", n);
    cr_assert_geq(n, 140);
}

/* --------------------------------------- generated heads, documented defaults */

static void run_generated(const char *comment, const char *in, size_t len, int want, int nhdrs,
                          size_t target_len)
{
    head_row_t r = {.comment = comment, .in = in, .len = len, .want = want};
    char *target = NULL;
    guard_t g;

    if (want >= 0) {
        target = malloc(target_len + 1);
        memcpy(target, in + 4, target_len);
        target[target_len] = '\0';
        r.method = "GET";
        r.target = target;
        r.path = target;
        r.minor = 1;
        r.nhdrs = nhdrs;
    }
    guard_init(&g, len);
    run_head_row(&r, &g);
    guard_dispose(&g);
    free(target);
}

/* "GET /aaaa HTTP/1.1\r\nHost: a\r\n" + n "X: y\r\n" + fill + "\r\n" */
static char *make_head(size_t target_len, int nfields, size_t fill, size_t *len)
{
    size_t cap = target_len + (size_t)nfields * 8 + fill + 64, n = 0;
    char *s = malloc(cap);

    n += (size_t)sprintf(s + n, "GET /");
    memset(s + n, 'a', target_len - 1);
    n += target_len - 1;
    n += (size_t)sprintf(s + n, " HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < nfields; i++)
        n += (size_t)sprintf(s + n, "X: y\r\n");
    if (fill) {
        n += (size_t)sprintf(s + n, "F: ");
        memset(s + n, 'f', fill);
        n += fill;
        n += (size_t)sprintf(s + n, "\r\n");
    }
    n += (size_t)sprintf(s + n, "\r\n");
    *len = n;
    return s;
}

Test(http_parse, default_target_limit, .timeout = 300)
{
    size_t len;
    char *s = make_head(8192, 0, 0, &len);
    run_generated("target of exactly 8 KiB", s, len, ALL, 1, 8192);
    free(s);
    s = make_head(8193, 0, 0, &len);
    run_generated("target of 8 KiB + 1", s, len, -414, 0, 0);
    free(s);
}

Test(http_parse, default_head_limit, .timeout = 300)
{
    size_t len, base;
    char *s = make_head(1, 0, 1, &base);
    free(s);
    /* base is the head length with a 1-byte fill: grow it to 16 KiB. */
    s = make_head(1, 0, 1 + 16384 - base, &len);
    cr_assert_eq(len, 16384);
    run_generated("head of exactly 16 KiB", s, len, ALL, 2, 1);
    free(s);
    s = make_head(1, 0, 2 + 16384 - base, &len);
    run_generated("head of 16 KiB + 1", s, len, -431, 0, 0);
    free(s);
}

Test(http_parse, default_field_limit, .timeout = 120)
{
    size_t len;
    char *s = make_head(1, 127, 0, &len);
    run_generated("128 fields", s, len, ALL, 128, 1);
    free(s);
    s = make_head(1, 128, 0, &len);
    run_generated("129 fields", s, len, -431, 0, 0);
    free(s);
}

/* ---------------------------------------------------- API edge cases */

Test(http_parse, no_header_slots, .timeout = 10)
{
    static const char in[] = "GET / HTTP/1.0\r\n\r\n";
    appsrv__http_limits_t lim = {64, 16, 0};
    appsrv__http_head_t h = {0};
    guard_t g;

    guard_init(&g, 64);
    cr_assert_eq(
        appsrv__http_parse_head(&h, guard_place(&g, in, sizeof(in) - 1), sizeof(in) - 1, &lim),
        (int)sizeof(in) - 1);
    guard_dispose(&g);
}

Test(http_parse, shorter_call_is_again, .timeout = 10)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    appsrv__hdr_t hdrs[4];
    appsrv__http_head_t h = {.hdrs = hdrs};

    cr_assert_eq(appsrv__http_parse_head(&h, in, 10, &defaults), AGAIN);
    cr_assert_eq(appsrv__http_parse_head(&h, in, 10, &defaults), AGAIN);
    cr_assert_eq(appsrv__http_parse_head(&h, in, 0, &defaults), AGAIN);
    cr_assert_eq(appsrv__http_parse_head(&h, in, sizeof(in) - 1, &defaults), (int)sizeof(in) - 1);
}
