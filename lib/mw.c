/* SPDX-License-Identifier: MIT */
/*
 * mw.c - middleware: runs the before and after hooks of appsrv_use(),
 * keeps the per-request data slots (appsrv_req_data), and makes the
 * library's own answers through the host's error responder (or the plain
 * text default, appsrv__res_simple). Calls res.c (builders) and status.c
 * (reasons); called by http.c and server.c. No state of its own: the
 * table lives in the server.
 */
#include "mw.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "req.h"
#include "res.h"
#include "status.h"

int appsrv__mw_add(appsrv__mw_t *mw, appsrv_before_cb before, appsrv_after_cb after, void *user,
                   void (*free_user)(void *user))
{
    if (mw->nhooks == APPSRV_MAX_HOOKS)
        return -ENOSPC;
    int slot = (int)mw->nhooks++;
    mw->hooks[slot] = (appsrv__hook_t){before, after, user, free_user};
    mw->any_before |= before != NULL;
    mw->any_after |= after != NULL;
    mw->active = true;
    return slot;
}

void appsrv__mw_free(appsrv__mw_t *mw)
{
    for (unsigned i = 0; i < mw->nhooks; i++)
        if (mw->hooks[i].free_user != NULL)
            mw->hooks[i].free_user(mw->hooks[i].user);
    mw->nhooks = 0;
}

void appsrv__mw_reset(const appsrv__mw_t *mw, appsrv_req_t *req)
{
    memset(req->data, 0, mw->nhooks * sizeof(req->data[0]));
}

int appsrv__mw_before(const appsrv__mw_t *mw, appsrv_req_t *req, appsrv_res_t *res)
{
    for (unsigned i = 0; i < mw->nhooks; i++) {
        const appsrv__hook_t *h = &mw->hooks[i];
        if (h->before == NULL)
            continue;
        int rc = h->before(req, res, h->user);
        if (rc < 0)
            return rc;
        if (rc == APPSRV_DONE)
            return APPSRV_DONE;
    }
    return 0;
}

void appsrv__mw_after(const appsrv__mw_t *mw, const appsrv_req_t *req, appsrv_res_t *res)
{
    for (unsigned i = mw->nhooks; i-- > 0;) {
        const appsrv__hook_t *h = &mw->hooks[i];
        if (h->after != NULL)
            h->after(req, res, h->user);
    }
}

void *appsrv_req_data(const appsrv_req_t *req, int slot)
{
    if (req == NULL || slot < 0 || slot >= APPSRV_MAX_HOOKS)
        return NULL;
    return req->data[slot];
}

int appsrv_req_set_data(appsrv_req_t *req, int slot, void *data)
{
    if (req == NULL || slot < 0 || slot >= APPSRV_MAX_HOOKS)
        return -EINVAL;
    req->data[slot] = data;
    return 0;
}

/* ------------------------------------------------------------- errors */

/* Stable codes for the answers the library makes (RFC 9110 §15 names). */
static const char *status_code(int status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 408:
        return "request_timeout";
    case 413:
        return "content_too_large";
    case 414:
        return "uri_too_long";
    case 415:
        return "unsupported_media_type";
    case 431:
        return "header_fields_too_large";
    case 500:
        return "internal_error";
    case 501:
        return "not_implemented";
    case 503:
        return "service_unavailable";
    case 505:
        return "http_version_not_supported";
    default:
        return "error";
    }
}

void appsrv__mw_error(const appsrv__mw_t *mw, appsrv_res_t *res, int status, const char *code,
                      const appsrv_req_t *req, appsrv_str_t method, appsrv_str_t target)
{
    if (mw == NULL || mw->on_error == NULL) {
        appsrv__res_simple(res, status);
        return;
    }
    bool close = res->close;
    appsrv__res_dispose(res);
    res->close = close;
    res->status = status;
    appsrv_error_t e = {
        .status = status,
        .code = code != NULL ? code : status_code(status),
        .message = appsrv__reason(status),
        .req = req,
        .method = method,
        .target = target,
    };
    if (mw->on_error(&e, res, mw->error_user) < 0)
        appsrv__res_simple(res, status);
    res->status = status; /* the status is the library's */
    res->close = res->close || close;
}

int appsrv_error_json(const appsrv_error_t *err, appsrv_res_t *res, void *user)
{
    (void)user;
    /* The message is a reason phrase: ASCII letters, digits, spaces, '-'
     * (status.c), nothing JSON would need to escape. */
    int rc = appsrv_res_add_header(res, "Content-Type", "application/json");
    if (rc < 0)
        return rc;
    rc = appsrv_res_printf(res, "{\"error\":{\"status\":%d,\"message\":\"%s\"}}", err->status,
                           err->message);
    return rc < 0 ? rc : 0;
}
