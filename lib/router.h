/* SPDX-License-Identifier: MIT */
/*
 * router.h - private contract of router.c: method + path routes with
 * ":name" captures and a trailing "*", 404/405 and the Allow list, plus
 * the query-string helpers. Matching allocates nothing; captured values
 * are views into the path passed in.
 */
#ifndef APPSRV_ROUTER_H
#define APPSRV_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "appsrv.h"

#define APPSRV__MAX_PARAMS 8

typedef struct appsrv__router appsrv__router_t;

typedef struct appsrv__param {
    const char *name; /* owned by the router ("*" for a trailing star) */
    size_t name_len;
    const char *val; /* points into the matched path */
    size_t val_len;
} appsrv__param_t;

typedef struct appsrv__match {
    appsrv_handler_cb handler;
    void *user;
    const char *pattern; /* the matched route's pattern (NUL-terminated) */
    int route;           /* its index in registration order */
    unsigned nparams;
    appsrv__param_t params[APPSRV__MAX_PARAMS];
} appsrv__match_t;

/*
 * Thread rule for the whole router: add routes from one thread before the
 * workers start; after that the router is read-only, and match/allow may
 * run on any number of threads at once.
 */

/* Returns 0 or -ENOMEM. */
int appsrv__router_new(appsrv__router_t **out);
/* NULL is a no-op. */
void appsrv__router_free(appsrv__router_t *r);

/*
 * Adds a route. method NULL matches any method; otherwise a token
 * (case-sensitive). pattern starts with '/', segments split on '/', a
 * ":name" segment captures one non-empty segment, a final "*" segment
 * captures the rest (possibly empty) under the name "*". At most
 * APPSRV__MAX_PARAMS captures. Returns 0, -EINVAL (bad method/pattern,
 * NULL handler), -EEXIST (same method + same pattern), -ENOMEM.
 *
 * Details: method and pattern are copied. Segments are compared byte for
 * byte with the raw (undecoded) path. "/a/" is the segments "a" and "",
 * so it is a different pattern from "/a" (trailing slashes are never
 * folded); "/" is one empty segment. Only a whole ":name" or "*" segment
 * is special ("/a*" and "/a:b" are literal). -EINVAL also for: a pattern
 * not starting with '/', an empty ":" name, a name used twice, "*" not
 * last, a byte that cannot be in a request path (controls, space, DEL,
 * '?', '#'), an empty method or one with a non-tchar byte. "Same pattern"
 * for -EEXIST means same shape: "/u/:id" and "/u/:name" collide (the
 * second could never be reached). Two NULL-method routes on one pattern
 * collide too; a NULL route and a method route on one pattern do not.
 */
int appsrv__router_add(appsrv__router_t *r, const char *method, const char *pattern,
                       appsrv_handler_cb handler, void *user);

/*
 * Matches (method, path). Among the patterns that match the path, the most
 * specific one that accepts the method wins (compared segment by segment:
 * exact > ":name" > "*"). HEAD falls back to a GET route when no HEAD
 * route matches. Returns 0 and fills *m, -404 when no pattern matches the
 * path, -405 when patterns match but none accepts the method.
 *
 * Details: method and path are (ptr, len) views, not NUL-terminated; only
 * [0, len) is read, and nothing is allocated. An empty path is "/"; any
 * other path not starting with '/' (e.g. "*") matches nothing: -404.
 * Specificity is lexicographic over the path's segments: at the first
 * segment where two matching patterns differ, exact > ":name" > "*", and a
 * pattern that ends with the path beats a "*" that matches nothing there
 * ("/static" beats "/static/" "*" on "/static"). Pattern specificity comes
 * first; among routes of one pattern the method decides: the exact method,
 * then (for HEAD only) a GET route, then a NULL-method route. So a NULL
 * route accepts every method and a path it matches never gets -405. On
 * success m->params hold the captures in pattern order ("*" last); names
 * point into the router, values into path (a "*" matching nothing has
 * val_len 0 and val at the path's end). On failure *m is not touched.
 */
int appsrv__router_match(const appsrv__router_t *r, const char *method, size_t method_len,
                         const char *path, size_t path_len, appsrv__match_t *m);

/* Routes registered, and route i's pattern and method (NULL: any). */
size_t appsrv__router_count(const appsrv__router_t *r);
const char *appsrv__router_pattern(const appsrv__router_t *r, size_t i, const char **method);

/*
 * Writes the Allow value for path ("GET, HEAD, POST": methods of every
 * pattern matching the path, in registration order, no duplicates, HEAD
 * added after GET when GET is there and HEAD is not) into buf, NUL-
 * terminated, truncated at a method boundary to fit. Returns its length.
 *
 * Details: NULL-method routes add nothing (a path that only they match
 * gets ""). HEAD goes right after the first GET unless already listed.
 * Truncation keeps a prefix of the full list: it stops at the first
 * method that does not fit with its NUL. cap 0 writes nothing. path is a
 * (ptr, len) view, as for appsrv__router_match().
 */
size_t appsrv__router_allow(const appsrv__router_t *r, const char *path, size_t path_len,
                            char *buf, size_t cap);

/*
 * Finds parameter name in a raw query string ("a=1&b=x%20y"; pairs split
 * on '&', a pair without '=' has an empty value). Sets the raw (undecoded)
 * value view and returns true when found. The name compares against the
 * decoded key.
 *
 * Details: empty pairs ("&&", a trailing '&') are skipped; the key ends at
 * the first '='; the first matching pair wins. Keys are decoded on the fly
 * ("%XX", '+' as space) without allocating; a '%' not followed by two hex
 * digits compares as itself; a key decoding to a NUL byte never matches.
 * The value view lies inside query. val and val_len may be NULL. false
 * when query or name is NULL.
 */
bool appsrv__query_find(const char *query, size_t query_len, const char *name,
                        const char **val, size_t *val_len);

#endif /* APPSRV_ROUTER_H */
