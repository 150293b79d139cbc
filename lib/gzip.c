/* SPDX-License-Identifier: MIT */
/*
 * gzip.c - the gzip content coding (RFC 9110 §8.4.1.3) as an after hook
 * (appsrv_gzip_use): decides per response (type, status, size, the
 * request's Accept-Encoding through accept.c), compresses a whole body in
 * the hook with zlib, and gives a stream an encoder (res.h's
 * appsrv__coding_t) that http.c runs on each write. Owns a copy of the
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

typedef struct gz {
    int level;
    size_t min_size;
    char **types; /* NULL-terminated, lower case */
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
    for (size_t i = 0; g->types != NULL && g->types[i] != NULL; i++)
        free(g->types[i]);
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

/* The value of the response header name (lower case), or ptr NULL. */
static appsrv_str_t res_header(const appsrv_res_t *res, const char *name, size_t nlen)
{
    const char *p = res->hdrs, *end = res->hdrs + res->hdrs_len;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (eol == NULL)
            break;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon != NULL && appsrv__ieq(p, (size_t)(colon - p), name, nlen)) {
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            return (appsrv_str_t){v, (size_t)(eol - v)};
        }
        p = eol + 2;
    }
    return (appsrv_str_t){NULL, 0};
}

/* Whether the media type of a Content-Type value is in g's list. */
static bool type_ok(const gz_t *g, appsrv_str_t ct)
{
    size_t n = 0;
    while (n < ct.len && ct.ptr[n] != ';' && ct.ptr[n] != ' ' && ct.ptr[n] != '\t')
        n++;
    const char *t = ct.ptr;
    for (char **e = g->types; *e != NULL; e++) {
        size_t el = strlen(*e);
        if ((*e)[0] == '+') { /* a structured syntax suffix (RFC 6838 §4.2.8) */
            if (n > el && appsrv__ieq(t + n - el, el, *e, el))
                return true;
        } else if (el >= 2 && (*e)[el - 1] == '*' && (*e)[el - 2] == '/') {
            if (n > el - 1 && appsrv__ieq(t, el - 1, *e, el - 1))
                return true;
        } else if (appsrv__ieq(t, n, *e, el)) {
            return true;
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
    appsrv_str_t ct = res_header(res, "content-type", 12);
    if (ct.ptr == NULL || !type_ok(g, ct) || res_header(res, "content-encoding", 16).ptr != NULL ||
        res_header(res, "content-range", 13).ptr != NULL)
        return;
    /* The answer depends on Accept-Encoding, compressed or not. */
    if (APPSRV__RES_ADD_LINE(res, "Vary: Accept-Encoding\r\n") < 0)
        return;
    appsrv_str_t ae = appsrv_req_header(req, "Accept-Encoding");
    if (!appsrv__accepts_gzip(ae.ptr, ae.len))
        return;
    if (res->streaming) { /* at the stream's head (http.c) */
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
    } else if (res->body_len < g->min_size || !compress_body(g, res)) {
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
    g->types = calloc(n + 1, sizeof(char *));
    int rc = -ENOMEM;
    if (g->types == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if ((g->types[i] = lower_dup(types[i])) == NULL)
            goto fail;
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
