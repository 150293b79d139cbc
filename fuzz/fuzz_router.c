/* SPDX-License-Identifier: MIT */
/*
 * fuzz_router.c - libFuzzer target for router.c. Input: "METHOD PATH[?QUERY]"
 * (no space: the whole input is the path, method empty). Each piece is
 * copied into its own exactly sized heap block so ASan sees any over-read.
 * Checks: match agrees with a naive reference matcher written differently
 * (split first, then compare), views lie inside the input, Allow agrees
 * with 404/405 and truncates to a prefix, pct_decode never grows its input,
 * query_find finds the first key it is given back.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK FUZZ_CHECK

static const struct {
    const char *method;
    const char *pattern;
} routes[] = {
    {"GET", "/"},
    {"GET", "/health"},
    {"GET", "/users"},
    {"GET", "/users/"},
    {"GET", "/users/:id"},
    {"GET", "/users/me"},
    {"GET", "/users/*"},
    {"POST", "/users"},
    {"GET", "/users/:id/posts/:post"},
    {NULL, "/any/:x"},
    {"DELETE", "/any/:x"},
    {"HEAD", "/h"},
    {"GET", "/static/*"},
    {"GET", "/static/a"},
    {"PUT", "/f/:a/:b/:c/:d/:e/:f/:g/*"},
    {"OPTIONS", "/o/*"},
    {"PATCH", "/:a/x"},
    {"GET", "/:a/:b/c"},
    {"GET", "//"},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static int handler(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)res;
    (void)user;
    return 0;
}

/* The fixed router, built on the first call (the driver's only state). */
static appsrv__router_t *router(void)
{
    static appsrv__router_t *r;

    if (r)
        return r;
    CHECK(appsrv__router_new(&r) == 0);
    for (size_t i = 0; i < NROUTES; i++)
        CHECK(appsrv__router_add(r, routes[i].method, routes[i].pattern, handler,
                                 (void *)(uintptr_t)(i + 1)) == 0);
    return r;
}

/* ------------------------------------------------- reference matcher */

#define REF_MAX 64

struct ref_seg {
    const char *s;
    size_t len;
};

/* Splits s[0..len) on '/' keeping empty pieces; -1 when too many. */
static int ref_split(const char *s, size_t len, struct ref_seg *out)
{
    int n = 0;
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '/')
            continue;
        if (n == REF_MAX)
            return -1;
        out[n].s = s + start;
        out[n].len = i - start;
        n++;
        start = i + 1;
    }
    return n;
}

enum { R_END, R_EXACT, R_PARAM, R_STAR };

static int ref_kind(const struct ref_seg *pat, int npat, int j)
{
    if (npat > 0 && pat[npat - 1].len == 1 && pat[npat - 1].s[0] == '*' && j >= npat - 1)
        return R_STAR;
    if (j >= npat)
        return R_END;
    if (pat[j].len >= 1 && pat[j].s[0] == ':')
        return R_PARAM;
    return R_EXACT;
}

static bool ref_match(const struct ref_seg *pat, int npat, const struct ref_seg *ps, int nps)
{
    for (int j = 0; j < npat; j++) {
        int k = ref_kind(pat, npat, j);
        if (k == R_STAR)
            return true;
        if (j >= nps)
            return false;
        if (k == R_PARAM && ps[j].len == 0)
            return false;
        if (k == R_EXACT && (ps[j].len != pat[j].len || memcmp(ps[j].s, pat[j].s, pat[j].len)))
            return false;
    }
    return npat == nps;
}

static int ref_fit(const char *rm, const char *m, size_t mlen)
{
    if (!rm)
        return 1;
    if (strlen(rm) == mlen && memcmp(rm, m, mlen) == 0)
        return 3;
    if (mlen == 4 && memcmp(m, "HEAD", 4) == 0 && strcmp(rm, "GET") == 0)
        return 2;
    return 0;
}

/*
 * Returns the expected tag (route index + 1), -404 or -405; -1 when the
 * path has too many segments for the reference.
 */
static int ref_route(const char *m, size_t mlen, const char *path, size_t plen)
{
    struct ref_seg ps[REF_MAX], pat[REF_MAX], bpat[REF_MAX];
    int nps, best = -1, bfit = 0, bn = 0;
    bool known = false;

    if (plen == 0)
        path = "/", plen = 1;
    if (path[0] != '/')
        return -404;
    nps = ref_split(path + 1, plen - 1, ps);
    if (nps < 0)
        return -1;
    for (size_t i = 0; i < NROUTES; i++) {
        const char *p = routes[i].pattern;
        int n = ref_split(p + 1, strlen(p) - 1, pat);
        if (!ref_match(pat, n, ps, nps))
            continue;
        known = true;
        int fit = ref_fit(routes[i].method, m, mlen);
        if (!fit)
            continue;
        int c = 0;
        if (best >= 0) {
            for (int j = 0; j <= nps && c == 0; j++)
                c = ref_kind(pat, n, j) - ref_kind(bpat, bn, j);
        }
        if (best < 0 || c < 0 || (c == 0 && fit > bfit)) {
            best = (int)i;
            bfit = fit;
            bn = n;
            memcpy(bpat, pat, sizeof(pat[0]) * (size_t)n);
        }
    }
    if (best >= 0)
        return best + 1;
    return known ? -405 : -404;
}

/* ------------------------------------------------------------- checks */

static bool inside(const char *v, size_t vlen, const char *buf, size_t len)
{
    return v >= buf && vlen <= len && v - buf <= (ptrdiff_t)(len - vlen);
}

static char *dup_exact(const uint8_t *p, size_t len)
{
    char *d = malloc(len ? len : 1);

    CHECK(d);
    if (len)
        memcpy(d, p, len);
    return d;
}

static void check_match(const char *m, size_t mlen, const char *path, size_t plen)
{
    appsrv__match_t mt;
    char allow[128], small[16];
    int rc = appsrv__router_match(router(), m, mlen, path, plen, &mt);
    int want = ref_route(m, mlen, path, plen);

    CHECK(rc == 0 || rc == -404 || rc == -405);
    if (want != -1)
        CHECK(rc == (want > 0 ? 0 : want));
    if (rc == 0) {
        CHECK(mt.handler == handler);
        if (want > 0)
            CHECK(mt.user == (void *)(uintptr_t)want);
        CHECK(mt.nparams <= APPSRV__MAX_PARAMS);
        for (unsigned i = 0; i < mt.nparams; i++) {
            const appsrv__param_t *pa = &mt.params[i];
            CHECK(pa->name && pa->name_len > 0);
            if (plen)
                CHECK(inside(pa->val, pa->val_len, path, plen));
            else
                CHECK(pa->val_len == 0);
            bool star = pa->name_len == 1 && pa->name[0] == '*';
            if (!star)
                CHECK(pa->val_len > 0 && !memchr(pa->val, '/', pa->val_len));
            CHECK(!star || i == mt.nparams - 1);
        }
    }

    size_t n = appsrv__router_allow(router(), path, plen, allow, sizeof(allow));
    CHECK(n < sizeof(allow) && allow[n] == '\0' && strlen(allow) == n);
    if (rc == -404)
        CHECK(n == 0);
    if (rc == -405)
        CHECK(n > 0);
    if (strstr(allow, "GET"))
        CHECK(strstr(allow, "HEAD"));

    /* Truncation gives a prefix ending at a method boundary. */
    for (size_t cap = 0; cap <= sizeof(small); cap++) {
        size_t k = appsrv__router_allow(router(), path, plen, small, cap);
        CHECK(k <= n && (cap == 0 || k < cap));
        CHECK(memcmp(small, allow, k) == 0);
        CHECK(k == 0 || k == n || allow[k] == ',');
    }
}

static void check_decode(const char *s, size_t len)
{
    char *dst = malloc(len + 1);
    ssize_t rc, rc2;

    CHECK(dst);
    for (int plus = 0; plus < 2; plus++) {
        rc = appsrv_pct_decode(s, len, dst, len + 1, plus);
        CHECK(rc == -EINVAL || (rc >= 0 && (size_t)rc <= len && dst[rc] == '\0'));
        if (rc < 0)
            continue;
        /* Exactly rc + 1 fits; rc does not. */
        rc2 = appsrv_pct_decode(s, len, dst, (size_t)rc + 1, plus);
        CHECK(rc2 == rc);
        rc2 = appsrv_pct_decode(s, len, dst, (size_t)rc, plus);
        CHECK(rc2 == -ENOSPC);
    }
    free(dst);
}

static void check_query(const char *q, size_t len)
{
    static const char *const names[] = {"a", "msg", "", "a b"};
    const char *val;
    size_t vlen;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (appsrv__query_find(q, len, names[i], &val, &vlen))
            CHECK(inside(val, vlen, q, len));

    /* The first non-empty pair's key, decoded, must find that very pair. */
    const char *p = q, *end = q + len;
    while (p < end && *p == '&')
        p++;
    if (p == end)
        return;
    const char *amp = memchr(p, '&', (size_t)(end - p));
    if (!amp)
        amp = end;
    const char *eq = memchr(p, '=', (size_t)(amp - p));
    const char *kend = eq ? eq : amp;
    size_t klen = (size_t)(kend - p);
    char *name = malloc(klen + 1);
    CHECK(name);
    ssize_t n = appsrv_pct_decode(p, klen, name, klen + 1, true);
    if (n >= 0 && !memchr(name, '\0', (size_t)n)) {
        CHECK(appsrv__query_find(q, len, name, &val, &vlen));
        CHECK(val == (eq ? eq + 1 : amp) && vlen == (size_t)(amp - val));
    }
    free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sp = memchr(data, ' ', size);
    size_t mlen = sp ? (size_t)(sp - data) : 0;
    const uint8_t *target = sp ? sp + 1 : data;
    size_t tlen = size - (size_t)(target - data);
    const uint8_t *qm = memchr(target, '?', tlen);
    size_t plen = qm ? (size_t)(qm - target) : tlen;

    char *method = dup_exact(data, mlen);
    char *path = dup_exact(target, plen);
    check_match(method, mlen, path, plen);
    check_decode(path, plen);
    if (qm) {
        size_t qlen = tlen - plen - 1;
        char *query = dup_exact(qm + 1, qlen);
        check_query(query, qlen);
        check_decode(query, qlen);
        free(query);
    }
    free(path);
    free(method);
    return 0;
}
