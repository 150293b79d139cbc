/* SPDX-License-Identifier: MIT */
/*
 * router.c - method + path routes, ":name" / trailing "*" captures, 404 vs
 * 405 and the Allow list; plus percent-decoding and query-string lookup.
 * Called by http.c/server.c; calls only libc. Patterns are split into
 * segments once, at add time (one allocation per route); matching is a
 * linear scan over the routes that allocates nothing, never needs the path
 * NUL-terminated, and only ever reads path[0..path_len).
 */
#include "router.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/*
 * Kind of a pattern segment. The order is the specificity order: at the
 * first path position where two matching patterns differ, the smaller kind
 * wins. K_END ("the pattern has ended here, exactly with the path") beats
 * K_STAR (a star that would match nothing there), so the pattern "/static"
 * beats "/static/" + "*" for the path "/static".
 */
enum seg_kind {
    K_END = 0,
    K_EXACT = 1,
    K_PARAM = 2,
    K_STAR = 3,
};

struct seg {
    const char *s; /* exact: the bytes; param: the name after ':'; star: "*" */
    size_t len;
    enum seg_kind kind;
};

struct route {
    const char *method; /* NUL-terminated copy, or NULL for any method */
    size_t method_len;
    struct seg *segs; /* also the route's one allocation (free this) */
    unsigned nsegs;   /* >= 1 */
    bool has_star;    /* then segs[nsegs - 1] is the star */
    bool all_exact;   /* no ":name" or "*": matches exactly its own text */
    const char *text; /* the pattern copy */
    size_t text_len;
    appsrv_handler_cb handler;
    void *user;
};

struct appsrv__router {
    struct route *routes; /* registration order */
    size_t n;
    size_t cap;
};

/* How well a route's method fits the request's; 0 means not at all. */
enum {
    M_NONE = 0,
    M_ANY = 1,      /* route method NULL */
    M_HEAD_GET = 2, /* HEAD request served by a GET route */
    M_EXACT = 3,
};

int appsrv__router_new(appsrv__router_t **out)
{
    appsrv__router_t *r = calloc(1, sizeof(*r));

    if (!r)
        return -ENOMEM;
    *out = r;
    return 0;
}

void appsrv__router_free(appsrv__router_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->routes[i].segs);
    free(r->routes);
    free(r);
}

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return false;
    return true;
}

/*
 * Bytes a pattern may hold: no controls, space, DEL, '?' or '#', which can
 * never be part of a request path, so a route using them would be dead.
 */
static bool is_pattern_byte(unsigned char c)
{
    return c > 0x20 && c != 0x7f && c != '?' && c != '#';
}

/*
 * Checks pattern and counts its segments. "/" is one empty segment; "/a/"
 * is "a" and "". Returns the count or -EINVAL.
 */
static int pattern_check(const char *pattern, size_t len)
{
    unsigned nsegs = 1, ncaptures = 0;
    const char *seg = pattern + 1, *end = pattern + len;

    if (len == 0 || pattern[0] != '/' || len > INT_MAX)
        return -EINVAL;
    for (const char *p = seg;; p++) {
        if (p < end && *p != '/') {
            if (!is_pattern_byte((unsigned char)*p))
                return -EINVAL;
            continue;
        }
        size_t slen = (size_t)(p - seg);
        if (slen >= 1 && seg[0] == ':') {
            if (slen == 1)
                return -EINVAL; /* ":" without a name */
            ncaptures++;
        } else if (slen == 1 && seg[0] == '*') {
            if (p != end)
                return -EINVAL; /* "*" must be the last segment */
            ncaptures++;
        }
        if (p == end)
            break;
        nsegs++;
        seg = p + 1;
    }
    if (ncaptures > APPSRV__MAX_PARAMS)
        return -EINVAL;
    return (int)nsegs;
}

/* Fills segs from a pattern already checked; pointers go into copy. */
static void pattern_split(const char *copy, size_t len, struct seg *segs)
{
    const char *seg = copy + 1, *end = copy + len;
    unsigned i = 0;

    for (const char *p = seg;; p++) {
        if (p < end && *p != '/')
            continue;
        struct seg *sg = &segs[i++];
        sg->s = seg;
        sg->len = (size_t)(p - seg);
        sg->kind = K_EXACT;
        if (sg->len >= 1 && seg[0] == ':') {
            sg->kind = K_PARAM;
            sg->s++;
            sg->len--;
        } else if (sg->len == 1 && seg[0] == '*') {
            sg->kind = K_STAR;
        }
        if (p == end)
            break;
        seg = p + 1;
    }
}

static bool has_dup_param_names(const struct seg *segs, unsigned nsegs)
{
    for (unsigned i = 0; i < nsegs; i++) {
        if (segs[i].kind != K_PARAM)
            continue;
        for (unsigned j = i + 1; j < nsegs; j++)
            if (segs[j].kind == K_PARAM && segs[j].len == segs[i].len &&
                memcmp(segs[j].s, segs[i].s, segs[i].len) == 0)
                return true;
    }
    return false;
}

/* Same shape: the same paths match both (":name" names do not matter). */
static bool same_shape(const struct route *a, const struct route *b)
{
    if (a->nsegs != b->nsegs)
        return false;
    for (unsigned i = 0; i < a->nsegs; i++) {
        const struct seg *x = &a->segs[i], *y = &b->segs[i];
        if (x->kind != y->kind)
            return false;
        if (x->kind == K_EXACT && (x->len != y->len || memcmp(x->s, y->s, x->len) != 0))
            return false;
    }
    return true;
}

static bool same_method(const struct route *a, const struct route *b)
{
    if (!a->method || !b->method)
        return a->method == b->method;
    return a->method_len == b->method_len && memcmp(a->method, b->method, a->method_len) == 0;
}

int appsrv__router_add(appsrv__router_t *r, const char *method, const char *pattern,
                       appsrv_handler_cb handler, void *user)
{
    struct route rt = {.handler = handler, .user = user};
    size_t plen, mlen = 0, size;
    char *copy;
    int nsegs;

    if (!r || !pattern || !handler || (method && !is_token(method)))
        return -EINVAL;
    plen = strlen(pattern);
    nsegs = pattern_check(pattern, plen);
    if (nsegs < 0)
        return nsegs;
    if (method)
        mlen = strlen(method);

    /* One block: segs[nsegs], then the pattern copy, then the method copy. */
    size = (size_t)nsegs * sizeof(struct seg) + plen + 1 + (method ? mlen + 1 : 0);
    rt.segs = malloc(size);
    if (!rt.segs)
        return -ENOMEM;
    copy = (char *)(rt.segs + nsegs);
    memcpy(copy, pattern, plen + 1);
    if (method) {
        memcpy(copy + plen + 1, method, mlen + 1);
        rt.method = copy + plen + 1;
        rt.method_len = mlen;
    }
    rt.nsegs = (unsigned)nsegs;
    pattern_split(copy, plen, rt.segs);
    rt.has_star = rt.segs[rt.nsegs - 1].kind == K_STAR;
    rt.text = copy;
    rt.text_len = plen;
    rt.all_exact = true;
    for (unsigned i = 0; i < rt.nsegs; i++)
        rt.all_exact = rt.all_exact && rt.segs[i].kind == K_EXACT;

    int rc = -EINVAL;
    if (has_dup_param_names(rt.segs, rt.nsegs))
        goto free_segs;
    rc = -EEXIST;
    for (size_t i = 0; i < r->n; i++)
        if (same_method(&r->routes[i], &rt) && same_shape(&r->routes[i], &rt))
            goto free_segs;
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 8;
        struct route *nr = realloc(r->routes, ncap * sizeof(*nr));
        rc = -ENOMEM;
        if (!nr)
            goto free_segs;
        r->routes = nr;
        r->cap = ncap;
    }
    r->routes[r->n++] = rt;
    return 0;

free_segs:
    free(rt.segs);
    return rc;
}

/* ----------------------------------------------------------------- matching */

/*
 * The path as the matcher sees it: the bytes after the leading '/', and
 * its segment count. An empty path is "/" (one empty segment).
 */
struct path {
    const char *p; /* first byte of the first segment */
    const char *end;
    size_t nsegs; /* 0: the path does not start with '/' and matches nothing */
};

static struct path path_view(const char *path, size_t len)
{
    struct path pv;

    if (len == 0) {
        /* Keep empty captures pointing at the caller's (empty) buffer. */
        pv.p = pv.end = path ? path : "";
        pv.nsegs = 1;
        return pv;
    }
    pv.p = path + 1;
    pv.end = path + len;
    pv.nsegs = 0;
    if (path[0] != '/')
        return pv;
    pv.nsegs = 1;
    for (const char *s = pv.p; (s = memchr(s, '/', (size_t)(pv.end - s))) != NULL; s++)
        pv.nsegs++;
    return pv;
}

/* Cheap pre-check on the segment counts alone. */
static bool shape_fits(const struct route *rt, size_t path_nsegs)
{
    if (rt->has_star)
        return path_nsegs + 1 >= rt->nsegs; /* the star may match zero segments */
    return path_nsegs == rt->nsegs;
}

/*
 * Walks the path against rt's segments; fills params when non-NULL.
 * Returns whether it matches. Reads only [pv->p, pv->end).
 */
static bool path_match(const struct route *rt, const struct path *pv, appsrv__param_t *params)
{
    const char *p = pv->p, *end = pv->end;
    bool more = true; /* a segment (maybe empty) starts at p */
    unsigned np = 0;

    for (unsigned i = 0; i < rt->nsegs; i++) {
        const struct seg *sg = &rt->segs[i];
        if (sg->kind == K_STAR) {
            /* "/static/" + "*" on "/static": no segment left, the rest is empty. */
            if (params)
                params[np] =
                    (appsrv__param_t){sg->s, sg->len, more ? p : end, more ? (size_t)(end - p) : 0};
            return true;
        }
        if (!more)
            return false;
        const char *q = memchr(p, '/', (size_t)(end - p));
        if (!q)
            q = end;
        size_t slen = (size_t)(q - p);
        if (sg->kind == K_EXACT) {
            if (slen != sg->len || memcmp(p, sg->s, slen) != 0)
                return false;
        } else {
            if (slen == 0)
                return false; /* ":name" never captures an empty segment */
            if (params)
                params[np++] = (appsrv__param_t){sg->s, sg->len, p, slen};
        }
        if (q == end) {
            more = false;
            p = end;
        } else {
            p = q + 1;
        }
    }
    return !more;
}

/* The kind rt has at path position i (see enum seg_kind). */
static enum seg_kind kind_at(const struct route *rt, size_t i)
{
    if (i < rt->nsegs)
        return rt->segs[i].kind;
    return rt->has_star ? K_STAR : K_END;
}

/*
 * Compares two routes that both fit the same path: < 0 when a is more
 * specific, > 0 when b is, 0 when they have the same shape up to the path's
 * end. Lexicographic by segment, in path order.
 */
static int specificity_cmp(const struct route *a, const struct route *b)
{
    for (size_t i = 0;; i++) {
        enum seg_kind ka = kind_at(a, i), kb = kind_at(b, i);
        if (ka != kb)
            return (int)ka - (int)kb;
        if (ka == K_STAR || ka == K_END)
            return 0;
    }
}

static int method_fit(const struct route *rt, const char *method, size_t len)
{
    if (!rt->method)
        return M_ANY;
    if (len == 0)
        return M_NONE; /* also keeps a NULL method away from memcmp */
    if (rt->method_len == len && memcmp(rt->method, method, len) == 0)
        return M_EXACT;
    /* RFC 9110 §9.3.2: HEAD is GET without the content. */
    if (len == 4 && memcmp(method, "HEAD", 4) == 0 && rt->method_len == 3 &&
        memcmp(rt->method, "GET", 3) == 0)
        return M_HEAD_GET;
    return M_NONE;
}

int appsrv__router_match(const appsrv__router_t *r, const char *method, size_t method_len,
                         const char *path, size_t path_len, appsrv__match_t *m)
{
    const struct route *best = NULL;
    int best_fit = M_NONE;
    bool path_known = false;

    /* Fast path: a pattern of exact segments equal to the path beats every
     * other pattern, so when one accepts the method, it wins (the best
     * method fit among same-text routes). Otherwise the full walk decides,
     * as a less specific pattern may accept the method. */
    for (size_t i = 0; i < r->n; i++) {
        const struct route *rt = &r->routes[i];
        if (rt->all_exact && rt->text_len == path_len &&
            memcmp(rt->text, path, path_len) == 0) {
            int fit = method_fit(rt, method, method_len);
            if (fit > best_fit) {
                best = rt;
                best_fit = fit;
            }
        }
    }
    if (best != NULL) {
        m->handler = best->handler;
        m->user = best->user;
        m->pattern = best->text;
        m->route = (int)(best - r->routes);
        m->nparams = 0;
        return 0;
    }
    best_fit = M_NONE;

    struct path pv = path_view(path, path_len);
    if (pv.nsegs == 0)
        return -404;
    for (size_t i = 0; i < r->n; i++) {
        const struct route *rt = &r->routes[i];
        int fit = method_fit(rt, method, method_len);
        /* A route refusing the method only matters to tell 404 from 405. */
        if (fit == M_NONE && (best || path_known))
            continue;
        if (!shape_fits(rt, pv.nsegs))
            continue;
        if (best) {
            /* Skip the path walk when rt could not win anyway. */
            int c = specificity_cmp(rt, best);
            if (c > 0 || (c == 0 && fit <= best_fit))
                continue;
        }
        if (!path_match(rt, &pv, NULL))
            continue;
        path_known = true;
        if (fit == M_NONE)
            continue;
        best = rt;
        best_fit = fit;
    }
    if (!best)
        return path_known ? -405 : -404;
    m->handler = best->handler;
    m->user = best->user;
    m->pattern = best->text;
    m->route = (int)(best - r->routes);
    path_match(best, &pv, m->params);
    m->nparams = 0;
    for (unsigned i = 0; i < best->nsegs; i++)
        m->nparams += best->segs[i].kind != K_EXACT;
    return 0;
}

/* Whether token (len bytes) is already an element of the list buf[0..len). */
static bool list_has(const char *buf, size_t blen, const char *tok, size_t tlen)
{
    const char *p = buf, *end = buf + blen;

    while (p < end) {
        const char *q = memchr(p, ',', (size_t)(end - p));
        if (!q)
            q = end;
        if ((size_t)(q - p) == tlen && memcmp(p, tok, tlen) == 0)
            return true;
        if (q == end)
            break;
        p = q + 2; /* skip ", " */
    }
    return false;
}

/* Appends ", tok" (or "tok") when absent and when it fits with its NUL. */
static bool list_add(char *buf, size_t cap, size_t *len, const char *tok, size_t tlen)
{
    size_t need = tlen + (*len ? 2 : 0);

    if (list_has(buf, *len, tok, tlen))
        return true;
    if (*len + need + 1 > cap)
        return false;
    if (*len) {
        buf[(*len)++] = ',';
        buf[(*len)++] = ' ';
    }
    memcpy(buf + *len, tok, tlen);
    *len += tlen;
    buf[*len] = '\0';
    return true;
}

size_t appsrv__router_allow(const appsrv__router_t *r, const char *path, size_t path_len,
                            char *buf, size_t cap)
{
    struct path pv = path_view(path, path_len);
    size_t len = 0;

    if (cap == 0)
        return 0;
    buf[0] = '\0';
    if (pv.nsegs == 0)
        return 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct route *rt = &r->routes[i];
        if (!rt->method || !shape_fits(rt, pv.nsegs) || !path_match(rt, &pv, NULL))
            continue;
        /* Stop at the first method that does not fit: a prefix, never a gap. */
        if (!list_add(buf, cap, &len, rt->method, rt->method_len))
            break;
        if (rt->method_len == 3 && memcmp(rt->method, "GET", 3) == 0 &&
            !list_add(buf, cap, &len, "HEAD", 4))
            break;
    }
    return len;
}

/* ------------------------------------------------------ percent-decoding */

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20; /* ASCII lower case; maps no non-letter into 'a'..'f' */
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The byte of "%XX" at src[i] (i + 2 < len checked by the caller), or -1. */
static int pct_byte(const char *src, size_t i)
{
    int hi = hex_val((unsigned char)src[i + 1]), lo;

    if (hi < 0 || (lo = hex_val((unsigned char)src[i + 2])) < 0)
        return -1;
    return hi << 4 | lo;
}

APPSRV_API ssize_t appsrv_pct_decode(const char *src, size_t len, char *dst, size_t cap,
                                     bool plus_space)
{
    size_t o = 0;

    /* -EINVAL wins over -ENOSPC, so the whole input is checked either way. */
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)src[i];
        if (c == '%') {
            if (len - i < 3 || (c = pct_byte(src, i)) < 0) {
                if (cap)
                    dst[0] = '\0';
                return -EINVAL;
            }
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (o + 1 < cap)
            dst[o] = (char)c;
        o++;
    }
    if (o >= cap) {
        if (cap)
            dst[0] = '\0';
        return -ENOSPC;
    }
    dst[o] = '\0';
    return (ssize_t)o;
}

/* --------------------------------------------------------------- queries */

/*
 * Whether key, decoded ("%XX", '+' as space), equals the C string name. A
 * '%' not followed by two hex digits compares as itself (lenient: a key
 * is only looked up, never handed out decoded). A decoded NUL never
 * matches, as name cannot hold one.
 */
static bool key_equals(const char *key, size_t klen, const char *name)
{
    size_t j = 0;

    for (size_t i = 0; i < klen; i++) {
        int c = (unsigned char)key[i];
        if (c == '%' && klen - i >= 3) {
            int d = pct_byte(key, i);
            if (d >= 0) {
                c = d;
                i += 2;
            }
        } else if (c == '+') {
            c = ' ';
        }
        if (name[j] == '\0' || (unsigned char)name[j] != c)
            return false;
        j++;
    }
    return name[j] == '\0';
}

bool appsrv__query_find(const char *query, size_t query_len, const char *name,
                        const char **val, size_t *val_len)
{
    const char *p, *end;

    if (!query || !name)
        return false;
    p = query;
    end = query + query_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (!amp)
            amp = end;
        if (amp > p) { /* "&&" and a trailing '&' hold empty pairs: skipped */
            const char *eq = memchr(p, '=', (size_t)(amp - p));
            const char *kend = eq ? eq : amp;
            if (key_equals(p, (size_t)(kend - p), name)) {
                const char *v = eq ? eq + 1 : amp;
                if (val)
                    *val = v;
                if (val_len)
                    *val_len = (size_t)(amp - v);
                return true;
            }
        }
        p = amp + 1;
    }
    return false;
}

size_t appsrv__router_count(const appsrv__router_t *r)
{
    return r->n;
}

const char *appsrv__router_pattern(const appsrv__router_t *r, size_t i, const char **method)
{
    if (i >= r->n)
        return NULL;
    if (method != NULL)
        *method = r->routes[i].method;
    return r->routes[i].text;
}
