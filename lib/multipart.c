/* SPDX-License-Identifier: MIT */
/*
 * multipart.c - a streaming multipart/form-data parser (RFC 7578 over
 * RFC 2046 §5.1): the boundary from the Content-Type value, then bytes
 * fed in pieces of any size. Owns the boundary matcher (the delimiter is
 * "CRLF--boundary"; a partial match at the end of a piece is kept as a
 * count, since the matched bytes are the delimiter's own), the part
 * header buffer and the decoded name/filename/type. Calls only the
 * host's callbacks and libc: no server state, no thread of its own.
 * Memory per parser is fixed at creation (header buffer + decoded
 * copies), whatever the body's size.
 */
#include "multipart.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define MP_DEFAULT_PARTS 128
#define MP_DEFAULT_HEADER 8192
#define MP_MAX_HEADER (1u << 20)

enum {
    MP_PREAMBLE,  /* before the first delimiter (ignored) */
    MP_AFTER_DELIM, /* "--boundary" seen: "--", padding or CRLF next */
    MP_AFTER_DASH,  /* one '-' after the delimiter: the close needs two */
    MP_PADDING,     /* transport padding (SP/HT) before the CRLF */
    MP_DELIM_CR,    /* CR after the delimiter: LF next */
    MP_HEADERS,     /* part header lines, into hbuf */
    MP_DATA,        /* part content */
    MP_EPILOGUE,    /* after the close delimiter (ignored) */
    MP_FAILED,
};

struct appsrv_multipart {
    appsrv_multipart_handlers_t h;
    void *user;
    int state;
    size_t match;     /* delimiter bytes matched so far */
    size_t dlen;      /* strlen(delim) */
    size_t hlen;      /* bytes in hbuf */
    size_t max_header, max_parts;
    unsigned nparts;
    const char *err;  /* the last error's reason */
    appsrv_part_t part;
    char *hbuf;       /* raw part headers, max_header bytes */
    char *dec;        /* decoded name, filename, type (max_header + 3
                         bytes), then a scratch area of max_header */
    char delim[4 + 70 + 1]; /* "\r\n--" boundary */
};

/* ------------------------------------------------------------ boundary */

static bool is_bchar(unsigned char ch)
{
    /* RFC 2046 §5.1.1 bchars: DIGIT / ALPHA / "'()+_,-./:=?" and space
     * (not last). */
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           strchr("'()+_,-./:=? ", ch) != NULL;
}

static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* Reads a token or a quoted-string (RFC 9110 §5.6.4, quoted-pair
 * unescaped) at p into out (cap bytes, NUL-terminated). Returns the end,
 * or NULL when malformed or too long. */
static const char *read_value(const char *p, const char *end, char *out, size_t cap,
                              size_t *olen)
{
    size_t n = 0;
    if (p < end && *p == '"') {
        p++;
        for (;;) {
            if (p == end)
                return NULL; /* unterminated */
            unsigned char ch = (unsigned char)*p++;
            if (ch == '"')
                break;
            if (ch == '\\') {
                if (p == end)
                    return NULL;
                ch = (unsigned char)*p++;
            }
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return NULL;
            if (n + 1 >= cap)
                return NULL;
            out[n++] = (char)ch;
        }
    } else {
        while (p < end && is_tchar((unsigned char)*p)) {
            if (n + 1 >= cap)
                return NULL;
            out[n++] = *p++;
        }
        if (n == 0)
            return NULL;
    }
    out[n] = '\0';
    *olen = n;
    return p;
}

/* Iterates "; name=value" parameters after a media type or disposition
 * type. Calls cb for each; returns 0 or -1 (malformed). */
typedef int (*param_cb)(const char *name, size_t nlen, const char *val, size_t vlen, void *ud);

static int each_param(const char *p, const char *end, char *tmp, size_t cap, param_cb cb,
                      void *ud)
{
    for (;;) {
        p = skip_ows(p, end);
        if (p == end)
            return 0;
        if (*p != ';')
            return -1;
        p = skip_ows(p + 1, end);
        if (p == end)
            return 0; /* a trailing ';' is tolerated */
        const char *name = p;
        while (p < end && is_tchar((unsigned char)*p))
            p++;
        size_t nlen = (size_t)(p - name);
        p = skip_ows(p, end);
        if (nlen == 0 || p == end || *p != '=')
            return -1;
        p = skip_ows(p + 1, end);
        size_t vlen;
        p = read_value(p, end, tmp, cap, &vlen);
        if (p == NULL)
            return -1;
        int rc = cb(name, nlen, tmp, vlen, ud);
        if (rc != 0)
            return rc;
    }
}

typedef struct boundary_find {
    char *out;
    size_t cap;
    size_t len;
    bool found;
} boundary_find_t;

static int boundary_param(const char *name, size_t nlen, const char *val, size_t vlen, void *ud)
{
    boundary_find_t *b = ud;
    if (!appsrv__ieq(name, nlen, "boundary", 8) || b->found)
        return 0;
    b->found = true;
    if (vlen == 0 || vlen > 70 || val[vlen - 1] == ' ')
        return -1;
    for (size_t i = 0; i < vlen; i++)
        if (!is_bchar((unsigned char)val[i]))
            return -1;
    if (vlen + 1 > b->cap)
        return -2;
    memcpy(b->out, val, vlen + 1);
    b->len = vlen;
    return 0;
}

int appsrv_multipart_boundary(appsrv_str_t content_type, char *buf, size_t cap)
{
    if (content_type.ptr == NULL || buf == NULL || cap == 0)
        return -EINVAL;
    buf[0] = '\0';
    const char *p = content_type.ptr, *end = p + content_type.len;
    p = skip_ows(p, end);
    const char *t = p;
    while (p < end && *p != ';' && *p != ' ' && *p != '\t')
        p++;
    if (!appsrv__ieq(t, (size_t)(p - t), "multipart/form-data", 19))
        return -ENOENT;
    char tmp[128];
    boundary_find_t b = {.out = buf, .cap = cap};
    int rc = each_param(p, end, tmp, sizeof(tmp), boundary_param, &b);
    if (rc == -2)
        return -ENOSPC;
    if (rc != 0 || !b.found) {
        buf[0] = '\0';
        return -EINVAL;
    }
    return (int)b.len;
}

/* -------------------------------------------------------- part headers */

typedef struct disp {
    appsrv_multipart_t *mp;
    size_t used; /* bytes of mp->dec taken */
} disp_t;

static int disp_param(const char *name, size_t nlen, const char *val, size_t vlen, void *ud)
{
    disp_t *d = ud;
    appsrv_multipart_t *mp = d->mp;
    appsrv_str_t *slot = NULL;
    if (appsrv__ieq(name, nlen, "name", 4))
        slot = &mp->part.name;
    else if (appsrv__ieq(name, nlen, "filename", 8))
        slot = &mp->part.filename;
    else
        return 0; /* filename* (RFC 7578 §4.2: not to be used) and others */
    if (slot->ptr != NULL)
        return -1; /* twice */
    char *dst = mp->dec + d->used;
    memcpy(dst, val, vlen + 1);
    d->used += vlen + 1;
    *slot = (appsrv_str_t){dst, vlen};
    return 0;
}

static int fail(appsrv_multipart_t *mp, int rc, const char *why)
{
    mp->state = MP_FAILED;
    mp->err = why;
    return rc;
}

/* Parses the header block hbuf[0..hlen) (lines without the final empty
 * one, each ending in CRLF) into mp->part. */
static int parse_headers(appsrv_multipart_t *mp)
{
    memset(&mp->part, 0, sizeof(mp->part));
    mp->part.index = mp->nparts;
    disp_t d = {.mp = mp, .used = 0};
    bool have_disp = false;
    const char *p = mp->hbuf, *end = mp->hbuf + mp->hlen;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (eol == NULL || eol + 1 >= end || eol[1] != '\n')
            return fail(mp, APPSRV_EPARSE, "part header line without CRLF");
        const char *name = p;
        while (p < eol && is_tchar((unsigned char)*p))
            p++;
        size_t nlen = (size_t)(p - name);
        if (nlen == 0 || p == eol || *p != ':')
            return fail(mp, APPSRV_EPARSE, "malformed part header line");
        const char *v = skip_ows(p + 1, eol);
        const char *ve = eol;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *q = v; q < ve; q++)
            if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
                return fail(mp, APPSRV_EPARSE, "control byte in a part header");
        if (appsrv__ieq(name, nlen, "content-disposition", 19)) {
            if (have_disp)
                return fail(mp, APPSRV_EPARSE, "two Content-Disposition fields in a part");
            have_disp = true;
            const char *t = v;
            while (v < ve && is_tchar((unsigned char)*v))
                v++;
            if (!appsrv__ieq(t, (size_t)(v - t), "form-data", 9))
                return fail(mp, APPSRV_EPARSE, "part disposition is not form-data");
            /* Values are read into the scratch half, then copied down. */
            if (each_param(v, ve, mp->dec + mp->max_header + 3, mp->max_header, disp_param,
                           &d) != 0)
                return fail(mp, APPSRV_EPARSE, "malformed Content-Disposition parameters");
        } else if (appsrv__ieq(name, nlen, "content-type", 12)) {
            if (mp->part.content_type.ptr != NULL)
                return fail(mp, APPSRV_EPARSE, "two Content-Type fields in a part");
            size_t tl = (size_t)(ve - v);
            char *dst = mp->dec + d.used;
            memcpy(dst, v, tl);
            dst[tl] = '\0';
            d.used += tl + 1;
            mp->part.content_type = (appsrv_str_t){dst, tl};
        }
        p = eol + 2;
    }
    if (!have_disp)
        return fail(mp, APPSRV_EPARSE, "part without Content-Disposition: form-data");
    if (mp->part.name.ptr == NULL)
        return fail(mp, APPSRV_EPARSE, "part without a name");
    return 0;
}

/* ------------------------------------------------------------- parser */

int appsrv_multipart_new(appsrv_multipart_t **out, appsrv_str_t content_type,
                         const appsrv_multipart_handlers_t *h, void *user)
{
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (h == NULL)
        return -EINVAL;
    size_t maxh = h->max_header ? h->max_header : MP_DEFAULT_HEADER;
    if (maxh > MP_MAX_HEADER)
        return -EINVAL;
    char b[71];
    int bl = appsrv_multipart_boundary(content_type, b, sizeof(b));
    if (bl < 0)
        return bl == -ENOSPC ? -EINVAL : bl;
    appsrv_multipart_t *mp = calloc(1, sizeof(*mp));
    if (mp == NULL)
        return -ENOMEM;
    mp->hbuf = malloc(maxh);
    mp->dec = malloc(2 * maxh + 3);
    if (mp->hbuf == NULL || mp->dec == NULL) {
        appsrv_multipart_free(mp);
        return -ENOMEM;
    }
    mp->h = *h;
    mp->user = user;
    mp->max_header = maxh;
    mp->max_parts = h->max_parts ? h->max_parts : MP_DEFAULT_PARTS;
    memcpy(mp->delim, "\r\n--", 4);
    memcpy(mp->delim + 4, b, (size_t)bl + 1);
    mp->dlen = 4 + (size_t)bl;
    mp->state = MP_PREAMBLE;
    mp->match = 2; /* the body's start counts as a line start */
    *out = mp;
    return 0;
}

void appsrv_multipart_free(appsrv_multipart_t *mp)
{
    if (mp == NULL)
        return;
    free(mp->hbuf);
    free(mp->dec);
    free(mp);
}

const char *appsrv_multipart_error(const appsrv_multipart_t *mp)
{
    return mp != NULL && mp->err != NULL ? mp->err : "no error";
}

static int emit(appsrv_multipart_t *mp, const char *p, size_t n)
{
    if (n == 0 || mp->h.on_data == NULL)
        return 0;
    int rc = mp->h.on_data(&mp->part, p, n, mp->user);
    return rc < 0 ? fail(mp, rc, "the data callback failed") : 0;
}

/* A whole delimiter was matched: the part in progress (if any) ends. */
static int delimiter_seen(appsrv_multipart_t *mp)
{
    if (mp->state == MP_DATA && mp->h.on_part_end != NULL) {
        int rc = mp->h.on_part_end(&mp->part, mp->user);
        if (rc < 0)
            return fail(mp, rc, "the part-end callback failed");
    }
    mp->state = MP_AFTER_DELIM;
    mp->match = 0;
    return 0;
}

/* Feeds delimiter matching in PREAMBLE/DATA from p; returns bytes used
 * (up to and including a completed delimiter) or a negative error. */
static ssize_t scan(appsrv_multipart_t *mp, const char *p, size_t len)
{
    const char *d = mp->delim;
    size_t i = 0;
    bool data = mp->state == MP_DATA;
    size_t run = 0; /* start of pending content in p */
    while (i < len) {
        if (mp->match == 0) {
            /* Fast path: content up to the next CR. */
            const char *cr = memchr(p + i, '\r', len - i);
            if (cr == NULL) {
                i = len;
                break;
            }
            i = (size_t)(cr - p);
        }
        unsigned char ch = (unsigned char)p[i];
        if (ch == (unsigned char)d[mp->match]) {
            if (mp->match == 0 && data) {
                int rc = emit(mp, p + run, i - run);
                if (rc < 0)
                    return rc;
            }
            mp->match++;
            i++;
            run = i;
            if (mp->match == mp->dlen) {
                int rc = delimiter_seen(mp);
                return rc < 0 ? rc : (ssize_t)i;
            }
            continue;
        }
        /* Mismatch: the matched bytes were content (the delimiter's own
         * prefix; CR is only at its start, so no shorter match hides in
         * it). The current byte is looked at again from match 0. */
        if (data && mp->match > 0) {
            /* At a body start (PREAMBLE, match 2 without CRLF) nothing
             * was content; in DATA the match always began at a CR. */
            int rc = emit(mp, d, mp->match);
            if (rc < 0)
                return rc;
        }
        mp->match = 0;
        run = i;
        if (ch != '\r')
            i++;
    }
    if (data && mp->match == 0) {
        int rc = emit(mp, p + run, len - run);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)len;
}

static int header_byte_block(appsrv_multipart_t *mp, const char *p, size_t len, size_t *used)
{
    /* Copies header bytes until the empty line (CRLF CRLF, or CRLF at the
     * very start: no header fields). */
    size_t i = 0;
    while (i < len) {
        if (mp->hlen == mp->max_header)
            return fail(mp, -EMSGSIZE, "part headers too large");
        mp->hbuf[mp->hlen++] = p[i++];
        size_t n = mp->hlen;
        bool end = (n == 2 && memcmp(mp->hbuf, "\r\n", 2) == 0) ||
                   (n >= 4 && memcmp(mp->hbuf + n - 4, "\r\n\r\n", 4) == 0);
        if (n >= 1 && mp->hbuf[n - 1] == '\n' && (n < 2 || mp->hbuf[n - 2] != '\r'))
            return fail(mp, APPSRV_EPARSE, "bare LF in part headers");
        if (end) {
            mp->hlen -= 2; /* the empty line */
            *used = i;
            if (mp->nparts >= mp->max_parts)
                return fail(mp, -E2BIG, "too many parts");
            int rc = parse_headers(mp);
            if (rc < 0)
                return rc;
            mp->nparts++;
            if (mp->h.on_part != NULL) {
                rc = mp->h.on_part(&mp->part, mp->user);
                if (rc < 0)
                    return fail(mp, rc, "the part callback failed");
            }
            mp->state = MP_DATA;
            mp->match = 0;
            return 1;
        }
    }
    *used = i;
    return 0;
}

int appsrv_multipart_feed(appsrv_multipart_t *mp, const void *data, size_t len)
{
    if (mp == NULL || (data == NULL && len > 0))
        return -EINVAL;
    const char *p = data;
    while (len > 0) {
        switch (mp->state) {
        case MP_FAILED:
            return APPSRV_ESTATE;
        case MP_EPILOGUE:
            return 0; /* ignored */
        case MP_PREAMBLE:
        case MP_DATA: {
            ssize_t n = scan(mp, p, len);
            if (n < 0)
                return (int)n;
            p += n;
            len -= (size_t)n;
            break;
        }
        case MP_AFTER_DELIM:
            if (*p == '-')
                mp->state = MP_AFTER_DASH;
            else if (*p == ' ' || *p == '\t')
                mp->state = MP_PADDING;
            else if (*p == '\r')
                mp->state = MP_DELIM_CR;
            else if (*p == '\n')
                return fail(mp, APPSRV_EPARSE, "boundary line without CRLF");
            else
                return fail(mp, APPSRV_EPARSE, "boundary followed by other text");
            p++, len--;
            break;
        case MP_AFTER_DASH:
            if (*p != '-')
                return fail(mp, APPSRV_EPARSE, "boundary followed by other text");
            mp->state = MP_EPILOGUE;
            p++, len--;
            break;
        case MP_PADDING:
            if (*p == '\r')
                mp->state = MP_DELIM_CR;
            else if (*p != ' ' && *p != '\t')
                return fail(mp, APPSRV_EPARSE, "boundary followed by other text");
            p++, len--;
            break;
        case MP_DELIM_CR:
            if (*p != '\n')
                return fail(mp, APPSRV_EPARSE, "boundary line without CRLF");
            mp->state = MP_HEADERS;
            mp->hlen = 0;
            p++, len--;
            break;
        case MP_HEADERS: {
            size_t used = 0;
            int rc = header_byte_block(mp, p, len, &used);
            if (rc < 0)
                return rc;
            p += used;
            len -= used;
            break;
        }
        }
    }
    return mp->state == MP_FAILED ? APPSRV_ESTATE : 0;
}

int appsrv_multipart_finish(appsrv_multipart_t *mp)
{
    if (mp == NULL)
        return -EINVAL;
    if (mp->state == MP_FAILED)
        return APPSRV_ESTATE;
    if (mp->state != MP_EPILOGUE)
        return fail(mp, APPSRV_EPARSE,
                    mp->nparts == 0 && mp->state == MP_PREAMBLE ? "no boundary in the body"
                                                                : "missing final boundary");
    return (int)mp->nparts;
}

int appsrv_multipart_parse(appsrv_str_t content_type, appsrv_str_t body,
                           const appsrv_multipart_handlers_t *h, void *user, const char **why)
{
    appsrv_multipart_t *mp;
    if (why != NULL)
        *why = "bad multipart/form-data Content-Type";
    int rc = appsrv_multipart_new(&mp, content_type, h, user);
    if (rc < 0)
        return rc;
    rc = appsrv_multipart_feed(mp, body.ptr, body.len);
    if (rc >= 0)
        rc = appsrv_multipart_finish(mp);
    if (why != NULL)
        *why = appsrv_multipart_error(mp);
    appsrv_multipart_free(mp);
    return rc;
}
