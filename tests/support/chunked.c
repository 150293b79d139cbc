/* SPDX-License-Identifier: MIT */
/*
 * chunked.c - the incremental chunked decoder (contract in chunked.h),
 * plus a whole-buffer convenience on top of it.
 */
#include "chunked.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { ST_SIZE, ST_DATA, ST_DATA_CR, ST_DATA_LF, ST_TRAILER, ST_DONE };

void e2e_chunked_init(e2e_chunked_t *d, e2e_chunk_cb cb, void *ud)
{
    memset(d, 0, sizeof(*d));
    d->st = ST_SIZE;
    d->cb = cb;
    d->ud = ud;
}

/* The size line "HEX[;ext...]" without its CRLF: 1..16 hex digits. */
static int parse_size(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < n && s[i] != ';'; i++) {
        char ch = s[i];
        int dv;
        if (ch >= '0' && ch <= '9')
            dv = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            dv = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            dv = ch - 'A' + 10;
        else
            return -EPROTO;
        v = v * 16 + (uint64_t)dv;
    }
    if (i == 0 || i > 16)
        return -EPROTO;
    *out = v;
    return 0;
}

/* A size or trailer line ended (its LF at hand). */
static void line_end(e2e_chunked_t *d)
{
    if (d->ll == 0 || d->line[(d->ll <= sizeof(d->line) ? d->ll : sizeof(d->line)) - 1] != '\r') {
        d->err = -EPROTO;
        return;
    }
    size_t len = d->ll - 1;
    d->ll = 0;
    if (d->st == ST_TRAILER) {
        if (len == 0)
            d->st = ST_DONE;
        return;
    }
    uint64_t sz;
    if (len >= sizeof(d->line) || parse_size(d->line, len, &sz) < 0) {
        d->err = -EPROTO;
        return;
    }
    if (sz == 0) {
        d->st = ST_TRAILER;
    } else {
        d->left = sz;
        d->chunks++;
        d->st = ST_DATA;
    }
}

size_t e2e_chunked_feed(e2e_chunked_t *d, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t i = 0;
    while (i < n && d->st != ST_DONE && d->err == 0) {
        switch (d->st) {
        case ST_SIZE:
        case ST_TRAILER: {
            unsigned char ch = p[i++];
            if (ch == '\n') {
                line_end(d);
            } else {
                /* trailer lines are only checked for their CR: keep the
                 * last byte in place once the buffer is full */
                size_t at = d->ll < sizeof(d->line) ? d->ll : sizeof(d->line) - 1;
                d->line[at] = (char)ch;
                d->ll++;
            }
            break;
        }
        case ST_DATA: {
            size_t k = n - i < d->left ? n - i : (size_t)d->left;
            if (d->cb != NULL) {
                int rc = d->cb(d->ud, p + i, k);
                if (rc < 0) {
                    d->err = rc;
                    break;
                }
            }
            d->got += k;
            d->left -= k;
            i += k;
            if (d->left == 0)
                d->st = ST_DATA_CR;
            break;
        }
        case ST_DATA_CR:
            if (p[i++] != '\r')
                d->err = -EPROTO;
            else
                d->st = ST_DATA_LF;
            break;
        case ST_DATA_LF:
            if (p[i++] != '\n')
                d->err = -EPROTO;
            else
                d->st = ST_SIZE;
            break;
        default:
            break;
        }
    }
    d->done = d->st == ST_DONE;
    return i;
}

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static int buf_append(void *ud, const unsigned char *p, size_t n)
{
    buf_t *b = ud;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (q == NULL)
            return -ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

long long e2e_dechunk(const void *p, size_t n, char **out, size_t *out_len)
{
    buf_t b = {0};
    e2e_chunked_t d;
    e2e_chunked_init(&d, buf_append, &b);
    size_t used = e2e_chunked_feed(&d, p, n);
    if (d.err != 0 || !d.done) {
        free(b.p);
        return d.err != 0 ? d.err : 0;
    }
    if (buf_append(&b, (const unsigned char *)"", 0) < 0) {
        free(b.p);
        return -ENOMEM;
    }
    b.p[b.len] = '\0';
    *out = b.p;
    *out_len = b.len;
    return (long long)used;
}
