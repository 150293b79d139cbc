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
    unsigned nparams;
    appsrv__param_t params[APPSRV__MAX_PARAMS];
} appsrv__match_t;

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
 */
int appsrv__router_add(appsrv__router_t *r, const char *method, const char *pattern,
                       appsrv_handler_cb handler, void *user);

/*
 * Matches (method, path). Among the patterns that match the path, the most
 * specific one that accepts the method wins (compared segment by segment:
 * exact > ":name" > "*"). HEAD falls back to a GET route when no HEAD
 * route matches. Returns 0 and fills *m, -404 when no pattern matches the
 * path, -405 when patterns match but none accepts the method.
 */
int appsrv__router_match(const appsrv__router_t *r, const char *method, size_t method_len,
                         const char *path, size_t path_len, appsrv__match_t *m);

/*
 * Writes the Allow value for path ("GET, HEAD, POST": methods of every
 * pattern matching the path, in registration order, no duplicates, HEAD
 * added after GET when GET is there and HEAD is not) into buf, NUL-
 * terminated, truncated at a method boundary to fit. Returns its length.
 */
size_t appsrv__router_allow(const appsrv__router_t *r, const char *path, size_t path_len,
                            char *buf, size_t cap);

/*
 * Finds parameter name in a raw query string ("a=1&b=x%20y"; pairs split
 * on '&', a pair without '=' has an empty value). Sets the raw (undecoded)
 * value view and returns true when found. The name compares against the
 * decoded key.
 */
bool appsrv__query_find(const char *query, size_t query_len, const char *name,
                        const char **val, size_t *val_len);

#endif /* APPSRV_ROUTER_H */
