/* SPDX-License-Identifier: MIT */
/*
 * cors.c - CORS (Fetch standard §3.2 "CORS protocol") as a middleware
 * hook: answers preflights on paths that have routes, with the route's
 * real methods (router.c's Allow list), and adds the CORS response headers
 * to every other response, the library's errors included (after hook).
 * Owns a copy of the host's appsrv_cors_t; registered through server.c
 * (appsrv__server_use), which frees it with the server. Never reflects an
 * Origin it was not told to allow.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "req.h"
#include "res.h"
#include "router.h"
#include "server.h"

typedef struct cors {
    char **origins;
    size_t norigins;
    bool any; /* "*" listed: any origin, answered with "*" */
    appsrv_origin_cb pred;
    void *pred_user;
    char *methods, *headers, *expose;
    bool credentials;
    char max_age[24]; /* "" when none */
    int slot;
} cors_t;

/* Marks a request whose preflight this hook answered (slot data). */
static char preflight_mark;

static void cors_free(void *p)
{
    cors_t *c = p;
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->norigins; i++)
        free(c->origins[i]);
    free(c->origins);
    free(c->methods);
    free(c->headers);
    free(c->expose);
    free(c);
}

static bool dup_opt(char **out, const char *s)
{
    *out = NULL;
    if (s == NULL)
        return true;
    *out = strdup(s);
    return *out != NULL;
}

/* Fetch §3.2.5: the origin is compared as its serialization, byte for
 * byte ("https://a.example:8443"); "null" only when listed. */
static bool origin_allowed(const cors_t *c, appsrv_str_t o)
{
    if (o.ptr == NULL || o.len == 0)
        return false;
    if (c->any)
        return true;
    for (size_t i = 0; i < c->norigins; i++)
        if (strlen(c->origins[i]) == o.len && memcmp(c->origins[i], o.ptr, o.len) == 0)
            return true;
    return c->pred != NULL && c->pred(o.ptr, o.len, c->pred_user);
}

/* A header value from a request view (NUL-terminated copy in buf). */
static const char *cstr(appsrv_str_t v, char *buf, size_t cap)
{
    if (v.len + 1 > cap)
        return NULL;
    memcpy(buf, v.ptr, v.len);
    buf[v.len] = '\0';
    return buf;
}

/* Access-Control-Allow-Origin and -Credentials (Fetch §3.2.3), plus
 * Vary: Origin whenever the answer depends on Origin (RFC 9110 §12.5.5). */
static void add_origin(const cors_t *c, appsrv_res_t *res, appsrv_str_t o, bool allowed)
{
    if (!c->any)
        APPSRV__RES_ADD_LINE(res, "Vary: Origin\r\n");
    if (!allowed)
        return;
    char buf[512];
    const char *v = c->any ? "*" : cstr(o, buf, sizeof(buf));
    if (v == NULL)
        return;
    appsrv_res_add_header(res, "Access-Control-Allow-Origin", v);
    if (c->credentials)
        appsrv_res_add_header(res, "Access-Control-Allow-Credentials", "true");
}

static bool is_options(const appsrv_req_t *req)
{
    return req->method.len == 7 && memcmp(req->method.ptr, "OPTIONS", 7) == 0;
}

/* Fetch §3.2.2: a preflight is an OPTIONS request with an Origin and
 * Access-Control-Request-Method. Answered 204 (an ok status) when the
 * path has routes; otherwise routing answers (404). */
static int cors_before(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    const cors_t *c = user;
    if (!is_options(req))
        return 0;
    appsrv_str_t o = appsrv_req_header(req, "Origin");
    appsrv_str_t m = appsrv_req_header(req, "Access-Control-Request-Method");
    if (o.ptr == NULL || m.ptr == NULL)
        return 0;
    const appsrv__router_t *router = req->conn->proto_data;
    const char *path = req->path.len ? req->path.ptr : "/";
    size_t plen = req->path.len ? req->path.len : 1;
    appsrv__match_t match;
    if (appsrv__router_match(router, "OPTIONS", 7, path, plen, &match) == -404)
        return 0;
    appsrv_req_set_data(req, c->slot, &preflight_mark);
    appsrv_res_set_status(res, 204);
    bool allowed = origin_allowed(c, o);
    add_origin(c, res, o, allowed);
    if (!allowed)
        return APPSRV_DONE; /* no CORS headers: the browser refuses */
    char allow[256];
    if (c->methods != NULL)
        appsrv_res_add_header(res, "Access-Control-Allow-Methods", c->methods);
    else if (appsrv__router_allow(router, path, plen, allow, sizeof(allow)) > 0)
        appsrv_res_add_header(res, "Access-Control-Allow-Methods", allow);
    char hbuf[1024];
    appsrv_str_t rh = appsrv_req_header(req, "Access-Control-Request-Headers");
    const char *h = c->headers;
    if (h == NULL && rh.ptr != NULL && rh.len > 0)
        h = cstr(rh, hbuf, sizeof(hbuf));
    if (h != NULL)
        appsrv_res_add_header(res, "Access-Control-Allow-Headers", h);
    if (c->max_age[0] != '\0')
        appsrv_res_add_header(res, "Access-Control-Max-Age", c->max_age);
    if (!c->any) {
        /* The answer also depends on what was asked (Fetch §3.2.5). */
        appsrv_res_add_header(res, "Vary",
                              "Access-Control-Request-Method, Access-Control-Request-Headers");
    }
    return APPSRV_DONE;
}

/* Every other response: the actual request's CORS headers (Fetch
 * §3.2.3), on errors too so a script can read them. */
static void cors_after(const appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    const cors_t *c = user;
    if (req == NULL || appsrv_req_data(req, c->slot) == &preflight_mark)
        return;
    appsrv_str_t o = appsrv_req_header(req, "Origin");
    if (o.ptr == NULL) {
        if (!c->any)
            APPSRV__RES_ADD_LINE(res, "Vary: Origin\r\n");
        return;
    }
    bool allowed = origin_allowed(c, o);
    add_origin(c, res, o, allowed);
    if (allowed && c->expose != NULL)
        appsrv_res_add_header(res, "Access-Control-Expose-Headers", c->expose);
}

int appsrv_cors_use(appsrv_server_t *srv, const appsrv_cors_t *cfg)
{
    if (srv == NULL || cfg == NULL || (cfg->norigins > 0 && cfg->origins == NULL))
        return -EINVAL;
    cors_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    int rc = -ENOMEM;
    if (cfg->norigins > 0) {
        c->origins = calloc(cfg->norigins, sizeof(char *));
        if (c->origins == NULL)
            goto fail;
    }
    for (size_t i = 0; i < cfg->norigins; i++) {
        const char *o = cfg->origins[i];
        if (o == NULL || o[0] == '\0') {
            rc = -EINVAL;
            goto fail;
        }
        if (strcmp(o, "*") == 0) {
            c->any = true;
            continue;
        }
        c->origins[c->norigins] = strdup(o);
        if (c->origins[c->norigins] == NULL)
            goto fail;
        c->norigins++;
    }
    c->pred = cfg->allow_origin;
    c->pred_user = cfg->allow_origin_user;
    c->credentials = cfg->credentials;
    /* Fetch §3.2.5: "*" is not honoured with credentials; we refuse to
     * fall back to reflecting any Origin. */
    if ((c->any && c->credentials) || (!c->any && c->norigins == 0 && c->pred == NULL)) {
        rc = -EINVAL;
        goto fail;
    }
    if (!dup_opt(&c->methods, cfg->methods) || !dup_opt(&c->headers, cfg->headers) ||
        !dup_opt(&c->expose, cfg->expose_headers))
        goto fail;
    if (cfg->max_age >= 0)
        snprintf(c->max_age, sizeof(c->max_age), "%d", cfg->max_age);
    rc = appsrv__server_use(srv, cors_before, cors_after, c, cors_free);
    if (rc < 0)
        goto fail;
    c->slot = rc;
    return rc;
fail:
    cors_free(c);
    return rc;
}
