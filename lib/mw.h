/* SPDX-License-Identifier: MIT */
/*
 * mw.h - the server's middleware table: hooks before routing and after
 * the handler (appsrv_use), per-request data slots, and the error
 * responder that shapes every answer the library makes itself. mw.c runs
 * them; http.c, http_out.c and http_body.c call in at dispatch, framing
 * and error time; server.c owns the table (one per server, read-only once
 * run starts).
 */
#ifndef APPSRV_MW_H
#define APPSRV_MW_H

#include <stdbool.h>

#include "common.h"

typedef struct appsrv__hook {
    appsrv_before_cb before;
    appsrv_after_cb after;
    void *user;
    void (*free_user)(void *user); /* at server free (CORS' copy) */
} appsrv__hook_t;

typedef struct appsrv__mw {
    unsigned nhooks;
    bool any_before, any_after;
    bool active; /* a hook or a responder: errors take the slow path */
    appsrv__hook_t hooks[APPSRV_MAX_HOOKS];
    appsrv_error_cb on_error;
    void *error_user;
} appsrv__mw_t;

/* Adds a hook. Returns its slot, -EINVAL or -ENOSPC. */
int appsrv__mw_add(appsrv__mw_t *mw, appsrv_before_cb before, appsrv_after_cb after, void *user,
                   void (*free_user)(void *user));
/* Releases the hooks' owned data. */
void appsrv__mw_free(appsrv__mw_t *mw);

/* Clears req's data slots (a new request). */
void appsrv__mw_reset(const appsrv__mw_t *mw, appsrv_req_t *req);
/* The before hooks in order: 0 (go on), APPSRV_DONE (res answers) or
 * negative (answer 500). */
int appsrv__mw_before(const appsrv__mw_t *mw, appsrv_req_t *req, appsrv_res_t *res);
/* The after hooks, last registered first. req may be NULL. */
void appsrv__mw_after(const appsrv__mw_t *mw, const appsrv_req_t *req, appsrv_res_t *res);

/*
 * Fills res (disposed first; its close flag kept) with the library's
 * answer status: the error responder's, else the text/plain reason. code
 * NULL: the status' own code. req: the parsed request or NULL; method and
 * target as far as parsed. mw may be NULL.
 */
void appsrv__mw_error(const appsrv__mw_t *mw, appsrv_res_t *res, int status, const char *code,
                      const appsrv_req_t *req, appsrv_str_t method, appsrv_str_t target);

#endif /* APPSRV_MW_H */
