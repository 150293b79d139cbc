/* SPDX-License-Identifier: MIT */
/*
 * gzip.c - the gzip content coding (RFC 9110 §8.4.1.3) as an after hook
 * (appsrv_gzip_use): decides per response (type, status, size, the
 * request's Accept-Encoding through accept.c), compresses a whole body in
 * the hook with zlib, and gives a stream an encoder (res.h's
 * appsrv__coding_t) that http_out.c runs on each write. Owns a copy of the
 * options (freed with the server, registered through appsrv__server_use)
 * and the deflate state of each compressing stream (freed with its
 * response). Built only with zlib; gzip_none.c stands in without it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "accept.h"
#include "gzip.h"
#include "req.h"
#include "res.h"
#include "server.h"

/* A compressible media type of the options. */
typedef struct gz_type {
    char *s; /* lower case; a major type without its "*" ("text/") */
    size_t len;
    enum { TYPE_EXACT, TYPE_MAJOR, TYPE_SUFFIX } kind;
} gz_type_t;

typedef struct gz {
    int level;
    size_t min_size;
    gz_type_t *types;
    size_t ntypes;
} gz_t;

static const char *const default_types[] = {
    "text/*",        "application/json", "application/javascript", "application/xml",
    "image/svg+xml", "+json",            "+xml",                   NULL,
};

bool appsrv_gzip_available(void)
{
    return true;
}

/* ------------------------------------------------------------ the options */

static void gz_free(void *p)
{
    gz_t *g = p;
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->ntypes; i++)
        free(g->types[i].s);
    free(g->types);
    free(g);
}

static char *lower_dup(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
    return d;
}

/* ------------------------------------------------------------- the match */

/* What the hook reads of a response's own header fields, in one pass. */
typedef struct res_fields {
    appsrv_str_t type; /* Content-Type (ptr NULL: none) */
    bool coded;        /* a Content-Encoding or Content-Range of its own */
} res_fields_t;

static res_fields_t scan_fields(const appsrv_res_t *res)
{
    res_fields_t f = {{NULL, 0}, false};
    const char *p = res->hdrs, *end = res->hdrs + res->hdrs_len;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (eol == NULL)
            break;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        size_t nl = colon != NULL ? (size_t)(colon - p) : 0;
        if (nl == 12 && appsrv__ieq(p, nl, "content-type", 12)) {
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            f.type = (appsrv_str_t){v, (size_t)(eol - v)};
        } else if ((nl == 16 && appsrv__ieq(p, nl, "content-encoding", 16)) ||
                   (nl == 13 && appsrv__ieq(p, nl, "content-range", 13))) {
            f.coded = true;
        }
        p = eol + 2;
    }
    return f;
}

/* Whether the media type of a Content-Type value is in g's list. */
static bool type_ok(const gz_t *g, appsrv_str_t ct)
{
    size_t n = 0;
    while (n < ct.len && ct.ptr[n] != ';' && ct.ptr[n] != ' ' && ct.ptr[n] != '\t')
        n++;
    const char *t = ct.ptr;
    for (size_t i = 0; i < g->ntypes; i++) {
        const gz_type_t *e = &g->types[i];
        switch (e->kind) {
        case TYPE_SUFFIX: /* a structured syntax suffix (RFC 6838 §4.2.8) */
            if (n > e->len && appsrv__ieq(t + n - e->len, e->len, e->s, e->len))
                return true;
            break;
        case TYPE_MAJOR:
            if (n > e->len && appsrv__ieq(t, e->len, e->s, e->len))
                return true;
            break;
        case TYPE_EXACT:
            if (appsrv__ieq(t, n, e->s, e->len))
                return true;
            break;
        }
    }
    return false;
}

/* ---------------------------------------------------------- compression */

static int deflate_init(z_stream *z, int level)
{
    memset(z, 0, sizeof(*z));
    /* 15 + 16: a 32 KiB window with the gzip wrapper (RFC 1952). */
    return deflateInit2(z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}

/*
 * Whole bodies are compressed inside the hook, start to end, so one
 * deflate state per worker thread serves them all: reset (not rebuilt)
 * for each body, which spares a 256 KiB allocation and its page faults
 * per response. Freed when the thread ends (the key's destructor);
 * bounded by the worker count, never by connections.
 */
typedef struct tl_deflate {
    z_stream z;
    int level;
} tl_deflate_t;

static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;
static bool tl_ok;

static void tl_free(void *p)
{
    tl_deflate_t *t = p;
    deflateEnd(&t->z);
    free(t);
}

static void tl_init(void)
{
    tl_ok = pthread_key_create(&tl_key, tl_free) == 0;
}

/* This thread's deflate state at level, reset; NULL when out of memory. */
static z_stream *body_deflate(int level)
{
    pthread_once(&tl_once, tl_init);
    if (!tl_ok)
        return NULL;
    tl_deflate_t *t = pthread_getspecific(tl_key);
    if (t != NULL && t->level == level && deflateReset(&t->z) == Z_OK)
        return &t->z;
    if (t != NULL) {
        pthread_setspecific(tl_key, NULL);
        tl_free(t);
    }
    t = malloc(sizeof(*t));
    if (t == NULL)
        return NULL;
    if (deflate_init(&t->z, level) != Z_OK) {
        free(t);
        return NULL;
    }
    t->level = level;
    if (pthread_setspecific(tl_key, t) != 0) {
        tl_free(t);
        return NULL;
    }
    return &t->z;
}

/* Compresses res's whole body; keeps it as is when that fails or does
 * not make it smaller. Returns true when the body is now gzip. */
static bool compress_body(const gz_t *g, appsrv_res_t *res)
{
    /* Output room: the body's own size; what does not fit there would
     * not be worth sending compressed. */
    size_t n = res->body_len;
    z_stream *z = body_deflate(g->level);
    char *out = z != NULL && n <= UINT32_MAX ? malloc(n) : NULL;
    if (out == NULL)
        return false;
    z->next_in = (Bytef *)res->body;
    z->avail_in = (uInt)n;
    z->next_out = (Bytef *)out;
    z->avail_out = (uInt)n;
    if (deflate(z, Z_FINISH) != Z_STREAM_END || z->total_out >= n) {
        free(out);
        return false;
    }
    appsrv__res_take_body(res, out, z->total_out);
    return true;
}

/* The stream encoder (res.h). */
static size_t coding_bound(size_t len)
{
    /* deflateBound's stored-block worst case, plus the sync flush marker,
     * the gzip header and trailer. */
    return len + (len >> 12) + (len >> 14) + (len >> 25) + 64;
}

static long coding_encode(void *state, const char *in, size_t len, bool finish, char *out,
                          size_t cap)
{
    z_stream *z = state;
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    z->next_out = (Bytef *)out;
    z->avail_out = (uInt)cap;
    int rc = deflate(z, finish ? Z_FINISH : Z_SYNC_FLUSH);
    if (finish ? rc != Z_STREAM_END : (rc != Z_OK && rc != Z_BUF_ERROR))
        return -1;
    if (z->avail_in != 0 || (!finish && z->avail_out == 0))
        return -1; /* cap below the bound: cannot happen */
    return (long)(cap - z->avail_out);
}

static void coding_free(void *state)
{
    z_stream *z = state;
    if (z == NULL)
        return;
    deflateEnd(z);
    free(z);
}

static const appsrv__coding_t gzip_coding = {
    .bound = coding_bound,
    .encode = coding_encode,
    .free = coding_free,
};

/* ------------------------------------------------------------- the hook */

static void gz_after(const appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    const gz_t *g = user;
    if (req == NULL || res->no_compress || res->upgrade != NULL || res->coding != NULL)
        return;
    int st = res->status;
    if (st < 200 || st == 204 || st == 206 || st == 304)
        return;
    res_fields_t f = scan_fields(res);
    if (f.type.ptr == NULL || f.coded || !type_ok(g, f.type))
        return;
    /* The answer depends on Accept-Encoding, compressed or not. */
    if (APPSRV__RES_ADD_LINE(res, "Vary: Accept-Encoding\r\n") < 0)
        return;
    if (!res->streaming && res->body_len < g->min_size)
        return;
    appsrv_str_t ae = appsrv_req_header(req, "Accept-Encoding");
    if (!appsrv__accepts_gzip(ae.ptr, ae.len))
        return;
    if (res->streaming) { /* at the stream's head (http_out.c) */
        if (!req->is_head && !res->no_body) {
            z_stream *z = malloc(sizeof(*z));
            if (z == NULL)
                return;
            if (deflate_init(z, g->level) != Z_OK) {
                free(z);
                return;
            }
            res->coding = &gzip_coding;
            res->coding_state = z;
        }
    } else if (!compress_body(g, res)) {
        return;
    }
    APPSRV__RES_ADD_LINE(res, "Content-Encoding: gzip\r\n");
}

int appsrv_gzip_use(appsrv_server_t *srv, const appsrv_gzip_opts_t *opts)
{
    appsrv_gzip_opts_t def = {0};
    if (opts == NULL)
        opts = &def;
    if (srv == NULL || opts->level < 0 || opts->level > 9)
        return -EINVAL;
    const char *const *types = opts->types != NULL ? opts->types : default_types;
    size_t n = 0;
    while (types[n] != NULL)
        if (types[n++][0] == '\0')
            return -EINVAL;
    gz_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    g->level = opts->level > 0 ? opts->level : 6;
    g->min_size = opts->min_size > 0 ? opts->min_size : 1024;
    g->types = calloc(n > 0 ? n : 1, sizeof(gz_type_t));
    int rc = -ENOMEM;
    if (g->types == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++, g->ntypes++) {
        gz_type_t *e = &g->types[i];
        if ((e->s = lower_dup(types[i])) == NULL)
            goto fail;
        e->len = strlen(e->s);
        e->kind = TYPE_EXACT;
        if (e->s[0] == '+') {
            e->kind = TYPE_SUFFIX;
        } else if (e->len >= 2 && e->s[e->len - 1] == '*' && e->s[e->len - 2] == '/') {
            e->kind = TYPE_MAJOR;
            e->s[--e->len] = '\0'; /* "text/" */
        }
    }
    rc = appsrv__server_use(srv, NULL, gz_after, g, gz_free);
    if (rc < 0)
        goto fail;
    return rc;
fail:
    gz_free(g);
    return rc;
}

int appsrv_res_no_compress(appsrv_res_t *res)
{
    return appsrv__gzip_no_compress(res);
}
