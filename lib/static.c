/* SPDX-License-Identifier: MIT */
/*
 * static.c - static directories (appsrv_static): a GET route (the prefix, then a trailing star)
 * whose handler maps the rest of the path to a file below a root
 * directory and answers through appsrv_res_file_fd() (file.c: validators,
 * 304, ranges). Owns the root's fd and the options, freed with the server
 * (appsrv__server_own). The path is decoded and checked here (no ".",
 * "..", empty segments, encoded separators or NUL, controls, invalid
 * UTF-8), then opened with openat2(RESOLVE_BENEATH) below the root's fd,
 * or component by component with O_NOFOLLOW where openat2 is missing.
 * Precompressed "<file>.gz" siblings use accept.c's Accept-Encoding test.
 * Files up to 32 KiB are cached in memory, revalidated every second.
 */
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define HAVE_OPENAT2_H 1
#endif
#endif

#include "accept.h"
#include "file.h"
#include "server.h"

/* Small files are kept in memory (per directory, shared by the workers
 * under one lock): a hit costs no system call; an entry is revalidated
 * (open + fstat; the bytes are read again only when size, mtime or inode
 * changed) once it is CACHE_VALID_MS old, so a changed file shows within
 * that time, as with nginx's open_file_cache_valid. At most CACHE_SLOTS
 * files of up to CACHE_MAX_FILE bytes: 2 MiB per directory. */
#define CACHE_SLOTS 64
#define CACHE_MAX_FILE (32 * 1024)
#define CACHE_VALID_MS 1000

/* A cached file's bytes, shared by the slot and the responses sending
 * them (freed by the last). */
typedef struct cbuf {
    atomic_uint refs;
    char data[];
} cbuf_t;

typedef struct cslot {
    cbuf_t *buf; /* NULL: empty */
    char key[200];
    size_t klen;
    bool slash;
    struct stat st;
    const char *type;
    int64_t checked_ms;
} cslot_t;

typedef struct sdir {
    int rootfd;
    size_t prefix_len; /* the prefix without trailing '/' */
    char *index;
    bool gz;
    bool no_cache;
    char cache_control[40]; /* Cache-Control value, "" for none */
    pthread_mutex_t lock;   /* the slots */
    cslot_t slots[CACHE_SLOTS];
} sdir_t;

atomic_bool appsrv__static_no_openat2;

static void cbuf_release(void *data, void *ud);

static void sdir_free(void *p)
{
    sdir_t *d = p;
    if (d->rootfd >= 0)
        close(d->rootfd);
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (d->slots[i].buf != NULL)
            cbuf_release(NULL, d->slots[i].buf);
    pthread_mutex_destroy(&d->lock);
    free(d->index);
    free(d);
}

/* ------------------------------------------------------------- the path */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Whether s[0..n) is valid UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static bool utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf)
            k = 1;
        else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else
            return false;
        if (i + k >= n)
            return false; /* truncated sequence */
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t j = 2; j <= k; j++)
            if (s[i + j] < 0x80 || s[i + j] > 0xbf)
                return false;
        i += k + 1;
    }
    return true;
}

/* Decodes the raw path rest (after the prefix, without its leading '/')
 * into out (NUL-terminated, relative, no trailing '/'). Returns the length,
 * or -1 for anything refused. */
int appsrv__static_decode(const char *raw, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)raw[i];
        if (ch == '%') {
            int h = i + 2 < n ? hexval(raw[i + 1]) : -1;
            int l = i + 2 < n ? hexval(raw[i + 2]) : -1;
            if (h < 0 || l < 0)
                return -1;
            ch = (unsigned char)(h * 16 + l);
            if (ch == '/' || ch == '\\' || ch == 0)
                return -1; /* an encoded separator or NUL */
            i += 2;
        } else if (ch == '\\') {
            return -1;
        }
        if (ch < 0x20 || ch == 0x7f)
            return -1;
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)ch;
    }
    if (o > 0 && out[o - 1] == '/')
        o--; /* the directory's own slash (the caller knows it was there) */
    out[o] = '\0';
    if (!utf8_ok((const unsigned char *)out, o))
        return -1;
    /* Segments: none empty, none "." or "..". */
    size_t s = 0;
    for (size_t i = 0; i <= o; i++) {
        if (i < o && out[i] != '/')
            continue;
        size_t len = i - s;
        if (o > 0 && (len == 0 || (len == 1 && out[s] == '.') ||
                      (len == 2 && out[s] == '.' && out[s + 1] == '.')))
            return -1;
        s = i + 1;
    }
    return (int)o;
}

/* Opens rel (relative, checked) below dirfd with flags, never leaving
 * it: openat2 RESOLVE_BENEATH (symlinks within the tree allowed), else a
 * walk that refuses every symlink. Returns an fd or -errno. */
static int open_beneath(int dirfd, const char *rel, int flags)
{
#if defined(HAVE_OPENAT2_H) && defined(SYS_openat2)
    if (!atomic_load_explicit(&appsrv__static_no_openat2, memory_order_relaxed)) {
        struct open_how how = {.flags = (uint64_t)flags,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
        if (fd >= 0)
            return (int)fd;
        if (errno != ENOSYS)
            return -errno;
        atomic_store(&appsrv__static_no_openat2, true);
    }
#endif
    char buf[PATH_MAX];
    size_t n = strlen(rel);
    if (n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, rel, n + 1);
    int cur = dirfd;
    char *p = buf;
    for (;;) {
        char *slash = strchr(p, '/');
        if (slash != NULL)
            *slash = '\0';
        int f = slash != NULL ? O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC : flags | O_NOFOLLOW;
        int fd = openat(cur, p, f);
        int err = errno;
        if (cur != dirfd)
            close(cur);
        if (fd < 0)
            return -err;
        if (slash == NULL)
            return fd;
        cur = fd;
        p = slash + 1;
    }
}

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

/* ---------------------------------------------------------- the handler */

static int not_found(appsrv_res_t *res)
{
    appsrv_res_set_status(res, 404);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    return appsrv_res_set_body(res, "Not Found\n", 10);
}

static int redirect_slash(const appsrv_req_t *req, appsrv_res_t *res)
{
    appsrv_str_t path = appsrv_req_path(req), q = appsrv_req_query(req);
    size_t need = path.len + 2 + (q.ptr != NULL ? q.len + 1 : 0);
    char *loc = malloc(need);
    if (loc == NULL)
        return -ENOMEM;
    memcpy(loc, path.ptr, path.len);
    size_t o = path.len;
    loc[o++] = '/';
    if (q.ptr != NULL) {
        loc[o++] = '?';
        memcpy(loc + o, q.ptr, q.len);
        o += q.len;
    }
    loc[o] = '\0';
    appsrv_res_set_status(res, 301);
    int rc = appsrv_res_add_header(res, "Location", loc);
    free(loc);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    appsrv_res_set_body(res, "Moved Permanently\n", 18);
    return rc;
}

/* The regular file at rel (NUL-terminated, room for 4 more bytes), or
 * its ".gz" sibling when gz: fd (*st its fstat) or -1. */
static int open_regular(const sdir_t *d, char *rel, size_t n, bool gz, struct stat *st)
{
    if (gz)
        memcpy(rel + n, ".gz", 4);
    int fd = open_beneath(d->rootfd, rel, OPEN_FLAGS);
    rel[n] = '\0';
    if (fd >= 0 && (fstat(fd, st) < 0 || !S_ISREG(st->st_mode))) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* ---------------------------------------------------------- the cache */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cbuf_release(void *data, void *ud)
{
    (void)data;
    cbuf_t *b = ud;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

static cslot_t *slot_of(sdir_t *d, const char *key, size_t klen, bool slash)
{
    uint32_t h = 2166136261u ^ (slash ? 0x9e3779b9u : 0);
    for (size_t i = 0; i < klen; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    return &d->slots[h % CACHE_SLOTS];
}

static bool slot_is(const cslot_t *s, const char *key, size_t klen, bool slash)
{
    return s->buf != NULL && s->slash == slash && s->klen == klen &&
           memcmp(s->key, key, klen) == 0;
}

static void slot_take(cslot_t *s, appsrv__fmem_t *mem, struct stat *st, const char **type)
{
    atomic_fetch_add_explicit(&s->buf->refs, 1, memory_order_relaxed);
    *mem = (appsrv__fmem_t){.data = s->buf->data, .release = cbuf_release, .ud = s->buf};
    *st = s->st;
    *type = s->type;
}

/* A fresh cached copy of key: true with mem, st and type set. */
static bool cache_get(sdir_t *d, const char *key, size_t klen, bool slash, appsrv__fmem_t *mem,
                      struct stat *st, const char **type)
{
    if (d->no_cache || klen > sizeof(d->slots[0].key))
        return false;
    cslot_t *s = slot_of(d, key, klen, slash);
    int64_t now = mono_ms();
    pthread_mutex_lock(&d->lock);
    bool hit = slot_is(s, key, klen, slash) && now - s->checked_ms < CACHE_VALID_MS;
    if (hit)
        slot_take(s, mem, st, type);
    pthread_mutex_unlock(&d->lock);
    return hit;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Caches the small regular file fd (its fstat st) under key: true with
 * mem set (the caller then closes fd), false when it is not cached. */
static bool cache_put(sdir_t *d, const char *key, size_t klen, bool slash, int fd,
                      const struct stat *st, const char *type, appsrv__fmem_t *mem)
{
    if (d->no_cache || klen > sizeof(d->slots[0].key) || st->st_size > CACHE_MAX_FILE)
        return false;
    cslot_t *s = slot_of(d, key, klen, slash);
    int64_t now = mono_ms();
    struct stat dummy;
    const char *t;
    pthread_mutex_lock(&d->lock);
    if (slot_is(s, key, klen, slash) && same_file(&s->st, st)) {
        /* Revalidated: unchanged, keep the bytes. */
        s->checked_ms = now;
        slot_take(s, mem, &dummy, &t);
        pthread_mutex_unlock(&d->lock);
        return true;
    }
    pthread_mutex_unlock(&d->lock);
    size_t n = (size_t)st->st_size;
    cbuf_t *b = malloc(sizeof(*b) + n + 1);
    if (b == NULL)
        return false;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, b->data + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(b);
            return false; /* shrank or unreadable: served from the fd */
        }
        got += (size_t)r;
    }
    atomic_init(&b->refs, 2); /* the slot's and this response's */
    pthread_mutex_lock(&d->lock);
    cbuf_t *old = s->buf;
    s->buf = b;
    memcpy(s->key, key, klen);
    s->klen = klen;
    s->slash = slash;
    s->st = *st;
    s->type = type;
    s->checked_ms = now;
    pthread_mutex_unlock(&d->lock);
    if (old != NULL)
        cbuf_release(NULL, old);
    *mem = (appsrv__fmem_t){.data = b->data, .release = cbuf_release, .ud = b};
    return true;
}

/* ---------------------------------------------------------- the handler */

static int static_get(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    sdir_t *d = user;
    appsrv_str_t path = appsrv_req_path(req);
    if (path.len < d->prefix_len)
        return not_found(res);
    const char *raw = path.ptr + d->prefix_len;
    size_t rn = path.len - d->prefix_len;
    if (rn == 0)
        return redirect_slash(req, res); /* "/static" -> "/static/" */
    if (raw[0] != '/')
        return not_found(res);
    raw++;
    rn--;
    bool slash = rn == 0 || raw[rn - 1] == '/';
    char rel[PATH_MAX];
    size_t ilen = strlen(d->index);
    int n = appsrv__static_decode(raw, rn, rel, sizeof(rel) - ilen - 8);
    if (n < 0)
        return not_found(res);
    size_t len = (size_t)n;
    if (len == 0) {
        memcpy(rel, ".", 2);
        len = 1;
    }
    size_t klen = len; /* the cache key: rel[0..klen) and slash */
    bool gz = false;
    if (d->gz) {
        appsrv_res_add_header(res, "Vary", "Accept-Encoding");
        appsrv_str_t ae = appsrv_req_header(req, "Accept-Encoding");
        gz = ae.ptr != NULL && appsrv__accepts_gzip(ae.ptr, ae.len);
    }
    if (d->cache_control[0] != '\0')
        appsrv_res_add_header(res, "Cache-Control", d->cache_control);
    appsrv__fmem_t mem;
    struct stat st;
    const char *type;
    /* Only the plain variant is cached: a gzip client may get a sibling. */
    if (!gz && cache_get(d, rel, klen, slash, &mem, &st, &type))
        return appsrv__res_file_st(res, req, -1, &mem, &st, type) < 0 ? not_found(res) : 0;
    int fd = open_beneath(d->rootfd, rel, OPEN_FLAGS);
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        return not_found(res);
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        if (!slash)
            return redirect_slash(req, res);
        if (len == 1 && rel[0] == '.')
            len = 0;
        else
            rel[len++] = '/';
        memcpy(rel + len, d->index, ilen + 1);
        len += ilen;
        fd = open_regular(d, rel, len, false, &st);
        if (fd < 0)
            return not_found(res);
    } else if (slash || !S_ISREG(st.st_mode)) {
        close(fd);
        return not_found(res);
    }
    type = appsrv_mime_type(rel);
    int gfd;
    struct stat gst;
    if (gz && (gfd = open_regular(d, rel, len, true, &gst)) >= 0) {
        close(fd);
        fd = gfd;
        st = gst;
        appsrv_res_add_header(res, "Content-Encoding", "gzip");
    } else if (!gz && cache_put(d, rel, klen, slash, fd, &st, type, &mem)) {
        close(fd);
        fd = -1;
    }
    int rc = appsrv__res_file_st(res, req, fd, fd < 0 ? &mem : NULL, &st, type);
    return rc < 0 ? not_found(res) : 0;
}

/* ------------------------------------------------------------ register */

int appsrv_static(appsrv_server_t *srv, const char *prefix, const char *root,
                  const appsrv_static_opts_t *opts)
{
    if (srv == NULL || prefix == NULL || root == NULL || prefix[0] != '/')
        return -EINVAL;
    const char *index = opts != NULL && opts->index != NULL ? opts->index : "index.html";
    if (index[0] == '\0' || strchr(index, '/') != NULL || strlen(index) > 255)
        return -EINVAL;
    size_t pl = strlen(prefix);
    while (pl > 0 && prefix[pl - 1] == '/')
        pl--;
    sdir_t *d = calloc(1, sizeof(*d));
    char *pattern = malloc(pl + 3);
    if (d == NULL || pattern == NULL) {
        free(d);
        free(pattern);
        return -ENOMEM;
    }
    memcpy(pattern, prefix, pl);
    memcpy(pattern + pl, "/*", 3);
    d->prefix_len = pl;
    d->gz = opts != NULL && opts->precompressed;
    if (opts != NULL && opts->max_age > 0)
        snprintf(d->cache_control, sizeof(d->cache_control), "max-age=%d", opts->max_age);
    d->no_cache = opts != NULL && opts->no_cache;
    pthread_mutex_init(&d->lock, NULL);
    d->index = strdup(index);
    d->rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int rc = d->index == NULL ? -ENOMEM : d->rootfd < 0 ? -errno : 0;
    /* The server owns d first: a route never points at freed memory. */
    if (rc == 0)
        rc = appsrv__server_own(srv, d, sdir_free);
    else
        sdir_free(d);
    if (rc == 0)
        rc = appsrv_route(srv, "GET", pattern, static_get, d);
    free(pattern);
    return rc;
}
