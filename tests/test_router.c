/* SPDX-License-Identifier: MIT */
/*
 * test_router.c - router.c: route matching and specificity, 404 vs 405,
 * the Allow list, add-time validation, percent-decoding and query lookup.
 * Inputs are copied to the very end of a readable page followed by a
 * PROT_NONE page (guard_dup), so reading past (ptr, len) crashes the test.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "router.h"

#define TMO .timeout = 10

/* ------------------------------------------------------------- helpers */

#define MAX_GUARDS 64

static struct {
    void *map;
    size_t len;
} guards[MAX_GUARDS];
static size_t nguards;

/* A copy of s[0..len) that ends exactly where an unreadable page begins. */
static char *guard_dup(const void *s, size_t len)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t total = (len + pg - 1) / pg * pg + pg;
    char *map;

    cr_assert_lt(nguards, MAX_GUARDS);
    map = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(map, MAP_FAILED);
    cr_assert_eq(mprotect(map + total - pg, pg, PROT_NONE), 0);
    guards[nguards].map = map;
    guards[nguards].len = total;
    nguards++;
    memcpy(map + total - pg - len, s, len);
    return map + total - pg - len;
}

static void guards_free(void)
{
    for (size_t i = 0; i < nguards; i++)
        munmap(guards[i].map, guards[i].len);
    nguards = 0;
}

TestSuite(router, .fini = guards_free);
TestSuite(pct, .fini = guards_free);
TestSuite(query, .fini = guards_free);

static int dummy(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)res;
    (void)user;
    return 0;
}

#define TAG(n) ((void *)(uintptr_t)(n))

static int match(const appsrv__router_t *r, const char *method, const char *path,
                 appsrv__match_t *m)
{
    size_t mlen = strlen(method), plen = strlen(path);

    return appsrv__router_match(r, guard_dup(method, mlen), mlen, guard_dup(path, plen), plen,
                                m);
}

/* The value captured under name, or NULL. */
static const appsrv__param_t *param(const appsrv__match_t *m, const char *name)
{
    for (unsigned i = 0; i < m->nparams; i++)
        if (m->params[i].name_len == strlen(name) &&
            memcmp(m->params[i].name, name, m->params[i].name_len) == 0)
            return &m->params[i];
    return NULL;
}

/* Checks "name=value name2=value2" (space-separated) against m's params. */
static void expect_params(const appsrv__match_t *m, const char *want, const char *row)
{
    char buf[256], *save = NULL;
    unsigned n = 0;

    snprintf(buf, sizeof(buf), "%s", want);
    for (char *kv = strtok_r(buf, " ", &save); kv; kv = strtok_r(NULL, " ", &save), n++) {
        char *eq = strchr(kv, '=');
        cr_assert(eq, "bad test row %s", row);
        *eq = '\0';
        const appsrv__param_t *p = param(m, kv);
        cr_expect(p, "%s: no param %s", row, kv);
        if (!p)
            continue;
        cr_expect(p->val_len == strlen(eq + 1) && memcmp(p->val, eq + 1, p->val_len) == 0,
                  "%s: param %s = '%.*s', want '%s'", row, kv, (int)p->val_len, p->val,
                  eq + 1);
    }
    cr_expect_eq(m->nparams, n, "%s: %u params, want %u", row, m->nparams, n);
}

static appsrv__router_t *new_router(void)
{
    appsrv__router_t *r = NULL;

    cr_assert_eq(appsrv__router_new(&r), 0);
    cr_assert(r);
    return r;
}

static void add_ok(appsrv__router_t *r, const char *method, const char *pattern, unsigned tag)
{
    int rc = appsrv__router_add(r, method, pattern, dummy, TAG(tag));
    cr_assert_eq(rc, 0, "add %s %s: %d", method ? method : "(any)", pattern, rc);
}

/* ------------------------------------------------------------- matching */

struct route_row {
    const char *method;
    const char *pattern;
    unsigned tag;
};

static const struct route_row routes_a[] = {
    {"GET", "/", 1},
    {"GET", "/health", 2},
    {"GET", "/users", 3},
    {"GET", "/users/", 4},
    {"GET", "/users/:id", 5},
    {"GET", "/users/me", 6},
    {"GET", "/users/*", 7},
    {"POST", "/users", 8},
    {"GET", "/users/:id/posts/:post", 9},
    {"GET", "/a/:x/c", 10},
    {"GET", "/static/*", 11},
    {"PUT", "/files/:name", 12},
    {NULL, "/any/:thing", 13},
    {"DELETE", "/any/:thing", 14},
    {"HEAD", "/head-only", 15},
    {"GET", "/both", 16},
    {"HEAD", "/both", 17},
    {"GET", "/static/special.txt", 18},
    {"GET", "/v/:a/:b/:c/:d/:e/:f/:g/*", 19},
    {"M-SEARCH", "/x", 20},
};

static appsrv__router_t *router_a(void)
{
    appsrv__router_t *r = new_router();

    for (size_t i = 0; i < sizeof(routes_a) / sizeof(routes_a[0]); i++)
        add_ok(r, routes_a[i].method, routes_a[i].pattern, routes_a[i].tag);
    return r;
}

struct match_row {
    const char *method;
    const char *path;
    int rc;
    unsigned tag;       /* when rc == 0 */
    const char *params; /* "name=value ..." when rc == 0 */
    const char *why;
};

static const struct match_row match_rows[] = {
    {"GET", "/", 0, 1, "", "root"},
    {"GET", "", 0, 1, "", "empty path is /"},
    {"GET", "/health", 0, 2, "", "exact"},
    {"GET", "/health/", -404, 0, NULL, "trailing slash is another path"},
    {"GET", "/healthz", -404, 0, NULL, "longer segment"},
    {"GET", "/healt", -404, 0, NULL, "shorter segment"},
    {"GET", "//health", -404, 0, NULL, "empty first segment"},
    {"GET", "/users", 0, 3, "", "exact beats an empty star"},
    {"GET", "/users/", 0, 4, "", "exact trailing slash route"},
    {"GET", "/users/me", 0, 6, "", "exact beats :id"},
    {"GET", "/users/42", 0, 5, "id=42", "param at the end"},
    {"GET", "/users/42/x", 0, 7, "*=42/x", "star deep"},
    {"GET", "/users/1/posts/2", 0, 9, "id=1 post=2", "several params"},
    {"GET", "/users/1/posts/", 0, 7, "*=1/posts/", ":post never captures empty"},
    {"GET", "/users/me/posts/2", 0, 9, "id=me post=2", ":id where /users/me has ended"},
    {"GET", "/a/b/c", 0, 10, "x=b", "param in the middle"},
    {"GET", "/a//c", -404, 0, NULL, "empty middle segment"},
    {"GET", "/a/b/d", -404, 0, NULL, "last exact differs"},
    {"GET", "/static", 0, 11, "*=", "bare star prefix"},
    {"GET", "/static/", 0, 11, "*=", "empty star rest"},
    {"GET", "/static/a/b", 0, 11, "*=a/b", "deep star rest"},
    {"GET", "/static//", 0, 11, "*=/", "star keeps slashes"},
    {"GET", "/static/special.txt", 0, 18, "", "exact beats star"},
    {"GET", "/static/special.txt/x", 0, 11, "*=special.txt/x", "longer than exact"},
    {"GET", "/staticx", -404, 0, NULL, "star needs the segment boundary"},
    {"POST", "/users", 0, 8, "", "method picks route"},
    {"POST", "/users/1", -405, 0, NULL, "path known, method not"},
    {"PUT", "/files/x.txt", 0, 12, "name=x.txt", "PUT param"},
    {"GET", "/files/x.txt", -405, 0, NULL, "405"},
    {"PUT", "/files/", -404, 0, NULL, "empty param never matches"},
    {"GET", "/any/1", 0, 13, "thing=1", "NULL method"},
    {"BREW", "/any/1", 0, 13, "thing=1", "NULL method takes any token"},
    {"DELETE", "/any/1", 0, 14, "thing=1", "specific method beats NULL"},
    {"HEAD", "/health", 0, 2, "", "HEAD falls back to GET"},
    {"HEAD", "/users/42", 0, 5, "id=42", "HEAD falls back to GET with params"},
    {"HEAD", "/head-only", 0, 15, "", "explicit HEAD"},
    {"GET", "/head-only", -405, 0, NULL, "GET never falls back to HEAD"},
    {"HEAD", "/both", 0, 17, "", "explicit HEAD beats GET"},
    {"GET", "/both", 0, 16, "", "GET on a path with HEAD"},
    {"POST", "/health", -405, 0, NULL, "POST on GET route"},
    {"get", "/health", -405, 0, NULL, "methods are case-sensitive"},
    {"HEAd", "/health", -405, 0, NULL, "only exact HEAD falls back"},
    {"GET", "health", -404, 0, NULL, "no leading slash"},
    {"GET", "*", -404, 0, NULL, "asterisk form"},
    {"GET", "/nope", -404, 0, NULL, "unknown"},
    {"POST", "/nope", -404, 0, NULL, "unknown, other method"},
    {"M-SEARCH", "/x", 0, 20, "", "token method with '-'"},
    {"GET", "/v/1/2/3/4/5/6/7/8/9", 0, 19, "a=1 b=2 c=3 d=4 e=5 f=6 g=7 *=8/9", "eight captures"},
    {"GET", "/v/1/2/3/4/5/6/7", 0, 19, "a=1 b=2 c=3 d=4 e=5 f=6 g=7 *=", "eight, star empty"},
};

Test(router, match_table, TMO)
{
    appsrv__router_t *r = router_a();

    for (size_t i = 0; i < sizeof(match_rows) / sizeof(match_rows[0]); i++) {
        const struct match_row *row = &match_rows[i];
        char name[128];
        appsrv__match_t m;

        memset(&m, 0xa5, sizeof(m));
        snprintf(name, sizeof(name), "row %zu %s %s (%s)", i, row->method, row->path, row->why);
        int rc = match(r, row->method, row->path, &m);
        cr_expect_eq(rc, row->rc, "%s: rc %d, want %d", name, rc, row->rc);
        if (rc == 0 && row->rc == 0) {
            cr_expect_eq(m.handler, dummy, "%s: handler", name);
            cr_expect_eq(m.user, TAG(row->tag), "%s: tag %u, want %u", name,
                         (unsigned)(uintptr_t)m.user, row->tag);
            if (m.user == TAG(row->tag))
                expect_params(&m, row->params, name);
        }
        guards_free(); /* m's views die here */
    }
    appsrv__router_free(r);
}

Test(router, views_point_into_path_and_router, TMO)
{
    appsrv__router_t *r = new_router();
    char pattern[] = "/users/:id/*";
    appsrv__match_t m;

    add_ok(r, "GET", pattern, 1);
    memset(pattern, 'x', sizeof(pattern) - 1); /* the router keeps its own copy */

    const char *path = guard_dup("/users/42/a/b", 13);
    cr_assert_eq(appsrv__router_match(r, "GET", 3, path, 13, &m), 0);
    cr_assert_eq(m.nparams, 2);
    cr_expect_eq(m.params[0].val, path + 7);
    cr_expect_eq(m.params[0].val_len, 2);
    cr_expect_eq(m.params[1].val, path + 10);
    cr_expect_eq(m.params[1].val_len, 3);
    cr_expect(m.params[0].name_len == 2 && memcmp(m.params[0].name, "id", 2) == 0);
    cr_expect(m.params[1].name_len == 1 && m.params[1].name[0] == '*');

    /* A star that matches nothing at the very end points at the path's end. */
    path = guard_dup("/users/42", 9);
    cr_assert_eq(appsrv__router_match(r, "GET", 3, path, 9, &m), 0);
    cr_expect_eq(m.params[1].val, path + 9);
    cr_expect_eq(m.params[1].val_len, 0);
    appsrv__router_free(r);
}

Test(router, not_nul_terminated, TMO)
{
    appsrv__router_t *r = new_router();
    appsrv__match_t m;
    char allow[64];

    add_ok(r, "GET", "/users", 1);
    add_ok(r, "GET", "/users/:id", 2);
    add_ok(r, "GET", "/s/*", 3);

    /* Garbage after len must be ignored. */
    cr_expect_eq(appsrv__router_match(r, "GETX", 3, "/usersXYZ/1", 6, &m), 0);
    cr_expect_eq(m.user, TAG(1));
    cr_expect_eq(appsrv__router_match(r, "GET ", 3, "/users/7/8", 8, &m), 0);
    cr_expect_eq(m.user, TAG(2));
    cr_expect_eq(m.params[0].val_len, 1);
    cr_expect_eq(appsrv__router_match(r, "GET", 3, "/s/abc/def", 6, &m), 0);
    cr_expect_eq(m.user, TAG(3));
    cr_expect(m.params[0].val_len == 3 && memcmp(m.params[0].val, "abc", 3) == 0);
    cr_expect_eq(appsrv__router_match(r, "GETGET", 3, "/users", 0, &m), -404);
    cr_expect_eq(appsrv__router_allow(r, "/users/1", 6, allow, sizeof(allow)), 9);
    cr_expect_str_eq(allow, "GET, HEAD");

    /* Each byte of the inputs is the last readable one: no over-read. */
    static const char *const paths[] = {"/", "/u", "/users", "/users/", "/users/1", "/s", "/s/",
                                        "/s/x/y", "/zzzzzzzz", "//"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        size_t len = strlen(paths[i]);
        for (size_t cut = 0; cut <= len; cut++) {
            const char *p = guard_dup(paths[i], cut);
            const char *meth = guard_dup("HEAD", 4);
            (void)appsrv__router_match(r, meth, 4, p, cut, &m);
            (void)appsrv__router_match(r, meth, 0, p, cut, &m);
            (void)appsrv__router_allow(r, p, cut, allow, sizeof(allow));
        }
        guards_free();
    }
    appsrv__router_free(r);
}

Test(router, specificity_any_registration_order, TMO)
{
    static const char *const pats[3] = {"/users/me", "/users/:id", "/users/*"};
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    static const struct {
        const char *path;
        unsigned pat; /* index into pats */
    } want[] = {
        {"/users/me", 0}, {"/users/42", 1}, {"/users/1/2", 2},
        {"/users/", 2},   {"/users", 2},    {"/users/me/x", 2},
    };

    for (int p = 0; p < 6; p++) {
        appsrv__router_t *r = new_router();
        for (int k = 0; k < 3; k++)
            add_ok(r, "GET", pats[perms[p][k]], (unsigned)perms[p][k]);
        for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
            appsrv__match_t m;
            cr_expect_eq(match(r, "GET", want[w].path, &m), 0);
            cr_expect_eq(m.user, TAG(want[w].pat), "perm %d %s: got %s", p, want[w].path,
                         pats[(uintptr_t)m.user]);
        }
        appsrv__router_free(r);
        guards_free();
    }
}

Test(router, specificity_first_differing_segment, TMO)
{
    appsrv__router_t *r = new_router();
    appsrv__match_t m;

    /* Registered from general to specific on purpose. */
    add_ok(r, "GET", "/*", 1);
    add_ok(r, "GET", "/:a/*", 2);
    add_ok(r, "GET", "/:a/x", 3);
    add_ok(r, "GET", "/a/:b", 4);
    add_ok(r, "GET", "/a/:b/c", 5);
    add_ok(r, "GET", "/a/x/*", 6);

    cr_expect_eq(match(r, "GET", "/a/y", &m), 0);
    cr_expect_eq(m.user, TAG(4), "exact first segment decides over a later one");
    cr_expect_eq(match(r, "GET", "/a/x", &m), 0);
    cr_expect_eq(m.user, TAG(6), "/a/x/* (empty star) beats /a/:b at segment 1");
    cr_expect_eq(match(r, "GET", "/b/x", &m), 0);
    cr_expect_eq(m.user, TAG(3));
    cr_expect_eq(match(r, "GET", "/b/y", &m), 0);
    cr_expect_eq(m.user, TAG(2));
    cr_expect_eq(match(r, "GET", "/b", &m), 0);
    cr_expect_eq(m.user, TAG(2), "/:a/* with an empty star beats /*");
    cr_expect_eq(match(r, "GET", "/", &m), 0);
    cr_expect_eq(m.user, TAG(1), ":a never takes the empty segment");
    cr_expect_eq(match(r, "GET", "/a/x/c", &m), 0);
    cr_expect_eq(m.user, TAG(6), "/a/x/* beats /a/:b/c at segment 2");
    cr_expect_eq(match(r, "GET", "/a/y/c", &m), 0);
    cr_expect_eq(m.user, TAG(5));
    appsrv__router_free(r);
}

Test(router, null_method, TMO)
{
    appsrv__router_t *r = new_router();
    appsrv__match_t m;
    char allow[32];

    add_ok(r, NULL, "/x", 1);
    add_ok(r, "GET", "/x", 2);
    add_ok(r, "GET", "/users/:id", 3);
    add_ok(r, NULL, "/users/me", 4);
    add_ok(r, NULL, "/only-any", 5);

    cr_expect_eq(match(r, "GET", "/x", &m), 0);
    cr_expect_eq(m.user, TAG(2), "specific method beats NULL");
    cr_expect_eq(match(r, "HEAD", "/x", &m), 0);
    cr_expect_eq(m.user, TAG(2), "HEAD via GET beats NULL");
    cr_expect_eq(match(r, "POST", "/x", &m), 0);
    cr_expect_eq(m.user, TAG(1), "NULL takes what nothing else does");
    cr_expect_eq(match(r, "GET", "/users/me", &m), 0);
    cr_expect_eq(m.user, TAG(4), "a more specific pattern wins before the method does");
    cr_expect_eq(match(r, "POST", "/users/you", &m), -405);
    cr_expect_eq(match(r, "ANYTHING", "/only-any", &m), 0);
    cr_expect_eq(m.user, TAG(5));

    /* NULL routes add nothing to Allow. */
    cr_expect_eq(appsrv__router_allow(r, "/x", 2, allow, sizeof(allow)), 9);
    cr_expect_str_eq(allow, "GET, HEAD");
    cr_expect_eq(appsrv__router_allow(r, "/only-any", 9, allow, sizeof(allow)), 0);
    cr_expect_str_eq(allow, "");
    appsrv__router_free(r);
}

Test(router, head_fallback_after_specificity, TMO)
{
    appsrv__router_t *r = new_router();
    appsrv__match_t m;

    add_ok(r, "HEAD", "/users/:id", 1);
    add_ok(r, "GET", "/users/me", 2);
    add_ok(r, "GET", "/users/:id", 3);

    /* The most specific pattern is chosen first; its GET route answers HEAD. */
    cr_expect_eq(match(r, "HEAD", "/users/me", &m), 0);
    cr_expect_eq(m.user, TAG(2));
    /* On one pattern, an explicit HEAD beats GET, whatever the order. */
    cr_expect_eq(match(r, "HEAD", "/users/7", &m), 0);
    cr_expect_eq(m.user, TAG(1));
    cr_expect_eq(match(r, "GET", "/users/7", &m), 0);
    cr_expect_eq(m.user, TAG(3));
    appsrv__router_free(r);
}

Test(router, empty_router_and_free_null, TMO)
{
    appsrv__router_t *r = new_router();
    appsrv__match_t m;
    char allow[8] = "junk";

    cr_expect_eq(match(r, "GET", "/", &m), -404);
    cr_expect_eq(match(r, "GET", "", &m), -404);
    cr_expect_eq(appsrv__router_allow(r, "/", 1, allow, sizeof(allow)), 0);
    cr_expect_str_eq(allow, "");
    appsrv__router_free(r);
    appsrv__router_free(NULL);
}

Test(router, many_routes, TMO)
{
    appsrv__router_t *r = new_router();
    char pat[32];
    appsrv__match_t m;

    for (unsigned i = 0; i < 200; i++) {
        snprintf(pat, sizeof(pat), "/r%u/:id", i);
        add_ok(r, "GET", pat, i);
    }
    for (unsigned i = 0; i < 200; i += 37) {
        snprintf(pat, sizeof(pat), "/r%u/z", i);
        cr_expect_eq(match(r, "GET", pat, &m), 0);
        cr_expect_eq(m.user, TAG(i));
    }
    appsrv__router_free(r);
}

/* ---------------------------------------------------------------- Allow */

Test(router, allow_content_and_order, TMO)
{
    appsrv__router_t *r = router_a();
    static const struct {
        const char *path;
        const char *want;
    } rows[] = {
        {"/users", "GET, HEAD, POST"}, /* GET /users, GET /users/ * (dup), POST */
        {"/users/1", "GET, HEAD"},     /* /users/:id and /users/ * deduped */
        {"/head-only", "HEAD"},
        {"/both", "GET, HEAD"},
        {"/any/1", "DELETE"}, /* the NULL route adds nothing */
        {"/files/a", "PUT"},
        {"/nope", ""},
        {"", "GET, HEAD"},
        {"nope", ""},
    };
    char buf[64];

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t plen = strlen(rows[i].path);
        size_t n = appsrv__router_allow(r, guard_dup(rows[i].path, plen), plen, buf, sizeof(buf));
        cr_expect_str_eq(buf, rows[i].want, "%s", rows[i].path);
        cr_expect_eq(n, strlen(rows[i].want), "%s", rows[i].path);
    }
    appsrv__router_free(r);
}

Test(router, allow_registration_order, TMO)
{
    appsrv__router_t *r = new_router();
    char buf[64];

    add_ok(r, "POST", "/x", 1);
    add_ok(r, "HEAD", "/x", 2);
    add_ok(r, "GET", "/x", 3);
    add_ok(r, "PUT", "/x", 4);
    add_ok(r, "GET", "/y", 5);
    add_ok(r, "POST", "/y", 6);
    add_ok(r, "HEAD", "/y", 7);
    add_ok(r, "OPTIONS", "/y/*", 8);
    add_ok(r, "POST", "/y/*", 9);

    appsrv__router_allow(r, "/x", 2, buf, sizeof(buf));
    cr_expect_str_eq(buf, "POST, HEAD, GET, PUT");
    appsrv__router_allow(r, "/y", 2, buf, sizeof(buf));
    cr_expect_str_eq(buf, "GET, HEAD, POST, OPTIONS");
    appsrv__router_allow(r, "/y/z", 4, buf, sizeof(buf));
    cr_expect_str_eq(buf, "OPTIONS, POST");
    appsrv__router_free(r);
}

Test(router, allow_truncation, TMO)
{
    appsrv__router_t *r = router_a();
    static const struct {
        size_t cap;
        const char *want;
    } rows[] = {
        {64, "GET, HEAD, POST"}, {16, "GET, HEAD, POST"}, {15, "GET, HEAD"},
        {10, "GET, HEAD"},       {9, "GET"},              {4, "GET"},
        {3, ""},                 {1, ""},
    };
    char buf[64];

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        memset(buf, '#', sizeof(buf));
        size_t n = appsrv__router_allow(r, "/users", 6, buf, rows[i].cap);
        cr_expect_str_eq(buf, rows[i].want, "cap %zu", rows[i].cap);
        cr_expect_eq(n, strlen(rows[i].want), "cap %zu", rows[i].cap);
        if (rows[i].cap < sizeof(buf))
            cr_expect_eq(buf[rows[i].cap], '#', "cap %zu: wrote past cap", rows[i].cap);
    }
    buf[0] = '#';
    cr_expect_eq(appsrv__router_allow(r, "/users", 6, buf, 0), 0);
    cr_expect_eq(buf[0], '#', "cap 0 writes nothing");
    cr_expect_eq(appsrv__router_allow(r, "/users", 6, NULL, 0), 0);
    appsrv__router_free(r);
}

/* ----------------------------------------------------------- add errors */

Test(router, add_errors, TMO)
{
    static const struct {
        const char *method;
        const char *pattern;
        int rc;
        const char *why;
    } rows[] = {
        {"GET", "users", -EINVAL, "no leading slash"},
        {"GET", "", -EINVAL, "empty pattern"},
        {"GET", "/:", -EINVAL, "empty param name"},
        {"GET", "/a/:/b", -EINVAL, "empty param name in the middle"},
        {"GET", "/:a/:a", -EINVAL, "duplicate param names"},
        {"GET", "/:a/x/:a/*", -EINVAL, "duplicate param names apart"},
        {"GET", "/*/a", -EINVAL, "star not last"},
        {"GET", "/a/*/", -EINVAL, "star before a trailing slash"},
        {"GET", "/:a/:b/:c/:d/:e/:f/:g/:h/:i", -EINVAL, "nine params"},
        {"GET", "/:a/:b/:c/:d/:e/:f/:g/:h/*", -EINVAL, "eight params and a star"},
        {"GET", "/a b", -EINVAL, "space in pattern"},
        {"GET", "/a?b=1", -EINVAL, "query in pattern"},
        {"GET", "/a#f", -EINVAL, "fragment in pattern"},
        {"GET", "/a\tb", -EINVAL, "control byte in pattern"},
        {"", "/a", -EINVAL, "empty method"},
        {"G ET", "/a", -EINVAL, "space in method"},
        {"GET\r\n", "/a", -EINVAL, "CRLF in method"},
        {"(GET)", "/a", -EINVAL, "separator in method"},
        {"GET:", "/a", -EINVAL, "colon in method"},
        {"GET", "/:a/:b/:c/:d/:e/:f/:g/:h", 0, "eight params"},
        {"GET", "/:a/:b/:c/:d/:e/:f/:g/*", 0, "seven params and a star"},
        {"GET", "/a*", 0, "a star inside a segment is literal"},
        {"GET", "/*a", 0, "so is this"},
        {"GET", "/a:b", 0, "a colon inside a segment is literal"},
        {"GET", "/", 0, "root"},
        {"GET", "/*", 0, "root star"},
        {"GET", "//", 0, "empty segments are exact"},
        {"get", "/", 0, "lower-case is another method"},
        {"M-SEARCH", "/", 0, "tchar punctuation"},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        appsrv__router_t *r = new_router();
        int rc = appsrv__router_add(r, rows[i].method, rows[i].pattern, dummy, NULL);
        cr_expect_eq(rc, rows[i].rc, "%s %s (%s): %d, want %d", rows[i].method, rows[i].pattern,
                     rows[i].why, rc, rows[i].rc);
        appsrv__router_free(r);
    }

    appsrv__router_t *r = new_router();
    cr_expect_eq(appsrv__router_add(r, "GET", "/a", NULL, NULL), -EINVAL, "NULL handler");
    cr_expect_eq(appsrv__router_add(r, "GET", NULL, dummy, NULL), -EINVAL, "NULL pattern");
    cr_expect_eq(appsrv__router_add(NULL, "GET", "/a", dummy, NULL), -EINVAL, "NULL router");
    appsrv__router_free(r);
}

Test(router, add_exists, TMO)
{
    appsrv__router_t *r = new_router();
    appsrv__match_t m;

    add_ok(r, "GET", "/x", 1);
    cr_expect_eq(appsrv__router_add(r, "GET", "/x", dummy, TAG(2)), -EEXIST);
    add_ok(r, "POST", "/x", 3);
    add_ok(r, "HEAD", "/x", 4);
    add_ok(r, "get", "/x", 5);
    add_ok(r, NULL, "/x", 6);
    cr_expect_eq(appsrv__router_add(r, NULL, "/x", dummy, TAG(7)), -EEXIST, "two NULL methods");
    add_ok(r, "GET", "/x/", 8);
    add_ok(r, "GET", "/u/:id", 9);
    cr_expect_eq(appsrv__router_add(r, "GET", "/u/:name", dummy, TAG(10)), -EEXIST,
                 "same shape, other param name");
    add_ok(r, "GET", "/u/*", 11);
    cr_expect_eq(appsrv__router_add(r, "GET", "/u/*", dummy, TAG(12)), -EEXIST);
    add_ok(r, "GET", "/u/:id/:x", 13);

    /* A refused route left nothing behind. */
    cr_expect_eq(match(r, "GET", "/x", &m), 0);
    cr_expect_eq(m.user, TAG(1));
    cr_expect_eq(match(r, "BREW", "/x", &m), 0);
    cr_expect_eq(m.user, TAG(6));
    cr_expect_eq(match(r, "GET", "/u/1", &m), 0);
    cr_expect_eq(m.user, TAG(9));
    cr_expect(m.params[0].name_len == 2 && memcmp(m.params[0].name, "id", 2) == 0);
    appsrv__router_free(r);
}

/* ------------------------------------------------------- percent-decode */

struct pct_row {
    const char *src;
    size_t len;
    bool plus;
    size_t cap;
    ssize_t rc;
    const char *out; /* rc bytes, when rc >= 0 */
};

#define S(s) s, sizeof(s) - 1

static const struct pct_row pct_rows[] = {
    {S("abc"), false, 64, 3, "abc"},
    {S(""), false, 64, 0, ""},
    {S("a%20b"), false, 64, 3, "a b"},
    {S("%4a%4A%4b"), false, 64, 3, "JJK"},
    {S("%e2%82%AC"), false, 64, 3, "\xe2\x82\xac"},
    {S("%"), false, 64, -EINVAL, NULL},
    {S("a%"), false, 64, -EINVAL, NULL},
    {S("%4"), false, 64, -EINVAL, NULL},
    {S("ab%4"), false, 64, -EINVAL, NULL},
    {S("%zz"), false, 64, -EINVAL, NULL},
    {S("%g0"), false, 64, -EINVAL, NULL},
    {S("%0g"), false, 64, -EINVAL, NULL},
    {S("%%41"), false, 64, -EINVAL, NULL},
    {S("% 41"), false, 64, -EINVAL, NULL},
    {S("%00"), false, 64, 1, "\0"},
    {S("a%00b"), false, 64, 3, "a\0b"},
    {S("a+b"), true, 64, 3, "a b"},
    {S("a+b"), false, 64, 3, "a+b"},
    {S("%2B+"), true, 64, 2, "+ "},
    {S("%25"), false, 64, 1, "%"},
    {S("%2541"), false, 64, 3, "%41"},
    {S("\xff\x01"), false, 64, 2, "\xff\x01"},
    /* -ENOSPC: cap must hold the decoded bytes and a NUL. */
    {S("abc"), false, 3, -ENOSPC, NULL},
    {S("abc"), false, 4, 3, "abc"},
    {S("abc"), false, 0, -ENOSPC, NULL},
    {S(""), false, 0, -ENOSPC, NULL},
    {S(""), false, 1, 0, ""},
    {S("a%20b"), false, 3, -ENOSPC, NULL},
    {S("a%20b"), false, 4, 3, "a b"},
    {S("abcdef%"), false, 2, -EINVAL, NULL}, /* a bad escape wins over space */
};

Test(pct, decode_table, TMO)
{
    for (size_t i = 0; i < sizeof(pct_rows) / sizeof(pct_rows[0]); i++) {
        const struct pct_row *row = &pct_rows[i];
        char dst[80];

        memset(dst, '#', sizeof(dst));
        ssize_t rc = appsrv_pct_decode(guard_dup(row->src, row->len), row->len, dst, row->cap,
                                       row->plus);
        cr_expect_eq(rc, row->rc, "row %zu '%s': %zd, want %zd", i, row->src, rc, row->rc);
        if (row->cap < sizeof(dst))
            cr_expect_eq(dst[row->cap], '#', "row %zu: wrote past cap", i);
        if (rc < 0 || rc != row->rc)
            continue;
        cr_expect(memcmp(dst, row->out, (size_t)rc) == 0, "row %zu '%s': bytes", i, row->src);
        cr_expect_eq(dst[rc], '\0', "row %zu: NUL-terminated", i);
    }
}

Test(pct, decode_in_place_capacity, TMO)
{
    /* The documented bound: cap == len + 1 always suffices. */
    static const char *const srcs[] = {"", "x", "%41", "a+b%2fc", "++"};
    char dst[16];

    for (size_t i = 0; i < sizeof(srcs) / sizeof(srcs[0]); i++) {
        size_t len = strlen(srcs[i]);
        cr_expect_geq(appsrv_pct_decode(srcs[i], len, dst, len + 1, true), 0, "%s", srcs[i]);
    }
    cr_expect_eq(appsrv_pct_decode(NULL, 0, dst, 1, false), 0);
    cr_expect_eq(appsrv_pct_decode("a", 1, NULL, 0, false), -ENOSPC);
}

/* -------------------------------------------------------------- queries */

struct query_row {
    const char *query;
    const char *name;
    bool found;
    const char *val;
};

static const struct query_row query_rows[] = {
    {"a=1&b=2&c=3", "a", true, "1"},
    {"a=1&b=2&c=3", "b", true, "2"},
    {"a=1&b=2&c=3", "c", true, "3"},
    {"a=1&b=2&c=3", "d", false, NULL},
    {"a=1&b=2&c=3", "", false, NULL},
    {"a=&b=2", "a", true, ""},
    {"a&b=2", "a", true, ""},
    {"b=2&a", "a", true, ""},
    {"a%20b=1", "a b", true, "1"},
    {"a+b=1", "a b", true, "1"},
    {"a+b=1", "a+b", false, NULL},
    {"a%2Bb=1", "a+b", true, "1"},
    {"%61=1", "a", true, "1"},
    {"&&a=1", "a", true, "1"},
    {"a=1&&&b=2&", "b", true, "2"},
    {"ab=1&a=2", "a", true, "2"},
    {"a=1&ab=2", "ab", true, "2"},
    {"abc=1", "ab", false, NULL},
    {"ab=1", "abc", false, NULL},
    {"a=1&a=2", "a", true, "1"},
    {"a=x%20y+z", "a", true, "x%20y+z"},
    {"a=1=2", "a", true, "1=2"},
    {"=1", "", true, "1"},
    {"a%2=1", "a%2", true, "1"},
    {"a%zz=1", "a%zz", true, "1"},
    {"a%00=1", "a", false, NULL},
    {"", "a", false, NULL},
    {"&", "a", false, NULL},
    {"msg=hi", "msg", true, "hi"},
};

Test(query, find_table, TMO)
{
    for (size_t i = 0; i < sizeof(query_rows) / sizeof(query_rows[0]); i++) {
        const struct query_row *row = &query_rows[i];
        size_t qlen = strlen(row->query);
        const char *q = guard_dup(row->query, qlen);
        const char *val = NULL;
        size_t vlen = 12345;

        bool found = appsrv__query_find(q, qlen, row->name, &val, &vlen);
        cr_expect_eq(found, row->found, "row %zu '%s' [%s]", i, row->query, row->name);
        if (!found || !row->found)
            continue;
        cr_expect(val >= q && val + vlen <= q + qlen, "row %zu: view outside the query", i);
        cr_expect(vlen == strlen(row->val) && memcmp(val, row->val, vlen) == 0,
                  "row %zu: '%.*s', want '%s'", i, (int)vlen, val, row->val);
    }
}

Test(query, not_nul_terminated, TMO)
{
    const char *val;
    size_t vlen;

    cr_expect(!appsrv__query_find("a=1&b=2", 3, "b", &val, &vlen));
    cr_expect(appsrv__query_find("a=123&b", 4, "a", &val, &vlen));
    cr_expect_eq(vlen, 2);
    cr_expect(!appsrv__query_find("ab=1", 1, "ab", &val, &vlen));
    cr_expect(appsrv__query_find("ab=1", 1, "a", &val, &vlen));
    cr_expect_eq(vlen, 0);
    cr_expect(!appsrv__query_find("a%41=1", 3, "aA", &val, &vlen), "cut escape is not decoded");
    cr_expect(appsrv__query_find("a%41=1", 3, "a%4", &val, &vlen), "cut escape is literal");
    cr_expect(!appsrv__query_find(NULL, 0, "a", &val, &vlen));
    cr_expect(!appsrv__query_find("a=1", 3, NULL, &val, &vlen));
}
