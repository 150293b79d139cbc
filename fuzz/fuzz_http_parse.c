/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http_parse.c - libFuzzer driver for appsrv__http_parse_head(). Each
 * input is parsed whole, split in two at a point taken from its first byte
 * (the first part in an exactly-sized copy so ASan catches over-reads), and
 * one byte at a time, under the documented defaults and under tiny limits; the
 * results and every field must agree and obey the contract's invariants.
 * A complete chunked head sends the rest through the chunked decoder.
 */
#include "http_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HDRS 128

static const appsrv__http_limits_t limits[] = {
    {16384, 8192, 128}, /* documented defaults */
    {96, 24, 3},        /* tiny: reaches 414 and 431 */
};

static bool is_tchar(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool span_in(appsrv__span_t s, appsrv__span_t outer)
{
    return s.off >= outer.off && (uint64_t)s.off + s.len <= (uint64_t)outer.off + outer.len;
}

static bool span_eq(appsrv__span_t a, appsrv__span_t b)
{
    return a.off == b.off && a.len == b.len;
}

/* What the contract promises about a complete head. */
static void check_head(const appsrv__http_head_t *h, const uint8_t *b, int n,
                       const appsrv__http_limits_t *lim)
{
    appsrv__span_t head = {0, (uint32_t)n};

    FUZZ_CHECK((size_t)n <= lim->max_head);
    FUZZ_CHECK(n >= 4 && memcmp(b + n - 4, "\r\n\r\n", 4) == 0);
    FUZZ_CHECK(h->method.len > 0 && span_in(h->method, head));
    for (uint32_t i = 0; i < h->method.len; i++)
        FUZZ_CHECK(is_tchar(b[h->method.off + i]));
    FUZZ_CHECK(h->target.len > 0 && h->target.len <= lim->max_target);
    FUZZ_CHECK(span_in(h->target, head));
    FUZZ_CHECK(h->target.off == h->method.off + h->method.len + 1);
    FUZZ_CHECK(span_in(h->path, h->target));
    FUZZ_CHECK(h->minor <= 1);
    switch (h->target_form) {
    case APPSRV__TARGET_ORIGIN:
        FUZZ_CHECK(h->path.off == h->target.off && b[h->path.off] == '/');
        break;
    case APPSRV__TARGET_ABSOLUTE:
        FUZZ_CHECK(h->path.len == 0 || b[h->path.off] == '/');
        break;
    case APPSRV__TARGET_ASTERISK:
        FUZZ_CHECK(h->target.len == 1 && b[h->target.off] == '*');
        FUZZ_CHECK(h->method.len == 7 && memcmp(b + h->method.off, "OPTIONS", 7) == 0);
        break;
    default:
        abort();
    }
    for (uint32_t i = 0; i < h->path.len; i++)
        FUZZ_CHECK(b[h->path.off + i] != '?');
    if (h->has_query)
        FUZZ_CHECK(span_in(h->query, h->target) && b[h->query.off - 1] == '?' &&
                   h->query.off + h->query.len == h->target.off + h->target.len);
    else
        FUZZ_CHECK(h->query.len == 0);
    FUZZ_CHECK(h->nhdrs <= lim->max_headers);
    if (h->minor == 1)
        FUZZ_CHECK(h->nhdrs >= 1); /* at least Host */
    FUZZ_CHECK(!(h->is_chunked && h->has_content_length));
    for (uint32_t i = 0; i < h->nhdrs; i++) {
        const appsrv__hdr_t *f = &h->hdrs[i];

        FUZZ_CHECK(f->name.len > 0 && span_in(f->name, head) && span_in(f->value, head));
        for (uint32_t j = 0; j < f->name.len; j++)
            FUZZ_CHECK(is_tchar(b[f->name.off + j]));
        FUZZ_CHECK(b[f->name.off + f->name.len] == ':');
        FUZZ_CHECK(f->value.off > f->name.off + f->name.len);
        for (uint32_t j = 0; j < f->value.len; j++) {
            uint8_t c = b[f->value.off + j];
            FUZZ_CHECK(c >= 0x80 || (c >= 0x20 && c != 0x7f) || c == '\t');
        }
        if (f->value.len) { /* trimmed */
            uint8_t first = b[f->value.off], last = b[f->value.off + f->value.len - 1];
            FUZZ_CHECK(first != ' ' && first != '\t' && last != ' ' && last != '\t');
        }
        FUZZ_CHECK(b[f->value.off + f->value.len] == '\r' ||
                   b[f->value.off + f->value.len] == ' ' || b[f->value.off + f->value.len] == '\t');
    }
}

static bool name_is(const uint8_t *b, const appsrv__hdr_t *f, const char *lower)
{
    size_t n = strlen(lower);

    if (f->name.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[f->name.off + i];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (uint8_t)lower[i])
            return false;
    }
    return true;
}

/* The framing flags agree with the field lines they came from. */
static void check_framing(const appsrv__http_head_t *h, const uint8_t *b)
{
    unsigned hosts = 0, cls = 0, tes = 0, expects = 0;

    for (uint32_t i = 0; i < h->nhdrs; i++) {
        const appsrv__hdr_t *f = &h->hdrs[i];

        if (name_is(b, f, "host")) {
            hosts++;
        } else if (name_is(b, f, "content-length")) {
            uint64_t x = 0;
            FUZZ_CHECK(f->value.len > 0);
            for (uint32_t j = 0; j < f->value.len; j++) {
                uint8_t c = b[f->value.off + j];
                FUZZ_CHECK(c >= '0' && c <= '9');
                FUZZ_CHECK(x <= ((uint64_t)INT64_MAX - (c - '0')) / 10);
                x = x * 10 + (c - '0');
            }
            FUZZ_CHECK(x == h->content_length);
            cls++;
        } else if (name_is(b, f, "transfer-encoding")) {
            tes++;
        } else if (name_is(b, f, "expect")) {
            expects++;
        }
    }
    FUZZ_CHECK(hosts <= 1 && (h->minor == 0 || hosts == 1));
    FUZZ_CHECK(h->has_content_length == (cls > 0));
    FUZZ_CHECK(h->is_chunked == (tes > 0));
    FUZZ_CHECK(!(tes > 0 && h->minor == 0));
    FUZZ_CHECK(h->expect_continue == (expects > 0 && h->minor == 1));
}

static void check_same(const appsrv__http_head_t *a, const appsrv__http_head_t *b)
{
    FUZZ_CHECK(span_eq(a->method, b->method) && span_eq(a->target, b->target));
    FUZZ_CHECK(span_eq(a->path, b->path) && span_eq(a->query, b->query));
    FUZZ_CHECK(a->has_query == b->has_query && a->target_form == b->target_form);
    FUZZ_CHECK(a->minor == b->minor && a->nhdrs == b->nhdrs);
    FUZZ_CHECK(a->content_length == b->content_length);
    FUZZ_CHECK(a->has_content_length == b->has_content_length);
    FUZZ_CHECK(a->is_chunked == b->is_chunked && a->expect_continue == b->expect_continue);
    FUZZ_CHECK(a->conn_close == b->conn_close && a->conn_keep_alive == b->conn_keep_alive);
    for (uint32_t i = 0; i < a->nhdrs; i++)
        FUZZ_CHECK(span_eq(a->hdrs[i].name, b->hdrs[i].name) &&
                   span_eq(a->hdrs[i].value, b->hdrs[i].value));
}

static bool known_result(int r)
{
    return r > 0 || r == APPSRV__AGAIN || r == -400 || r == -414 || r == -417 || r == -431 ||
           r == -501 || r == -505;
}

static void run(const uint8_t *data, size_t size, size_t split, const appsrv__http_limits_t *lim)
{
    static appsrv__hdr_t hdrs[3][MAX_HDRS];
    appsrv__http_head_t h[3];
    const char *buf = (const char *)data;
    char *part;
    int r[3], first;

    memset(h, 0, sizeof(h));
    for (int i = 0; i < 3; i++)
        h[i].hdrs = hdrs[i];

    /* whole */
    r[0] = appsrv__http_parse_head(&h[0], buf, size, lim);
    FUZZ_CHECK(known_result(r[0]));
    FUZZ_CHECK(r[0] <= 0 || (size_t)r[0] <= size);
    FUZZ_CHECK(appsrv__http_parse_head(&h[0], buf, size, lim) == r[0]);

    /* split: the first part alone in an exactly-sized allocation */
    part = malloc(split ? split : 1);
    memcpy(part, data, split);
    first = appsrv__http_parse_head(&h[1], part, split, lim);
    free(part);
    FUZZ_CHECK(first == APPSRV__AGAIN || first == r[0]);
    r[1] = appsrv__http_parse_head(&h[1], buf, size, lim);

    /* one byte at a time */
    r[2] = APPSRV__AGAIN;
    for (size_t i = 0; i <= size; i++) {
        int x = appsrv__http_parse_head(&h[2], buf, i, lim);
        FUZZ_CHECK(r[2] == APPSRV__AGAIN || x == r[2]);
        r[2] = x;
    }

    FUZZ_CHECK(r[1] == r[0] && r[2] == r[0]);
    if (r[0] <= 0)
        return;
    check_head(&h[0], data, r[0], lim);
    check_framing(&h[0], data);
    check_same(&h[0], &h[1]);
    check_same(&h[0], &h[2]);

    if (h[0].is_chunked && lim == &limits[0]) {
        size_t body = size - (size_t)r[0];
        fuzz_check_chunked(data + r[0], body, body * split / (size ? size : 1), 256);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks the split point, in proportion to the size. */
    size_t split = size ? (size_t)data[0] * (size + 1) / 256 : 0;

    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
        run(data, size, split, &limits[i]);
    return 0;
}
