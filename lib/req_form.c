/* SPDX-License-Identifier: MIT */
/*
 * req_form.c - application/x-www-form-urlencoded fields (appsrv_form_param,
 * appsrv_req_form_param): part of the request module. The lookup is the
 * router's query finder (router.c) and the decoder appsrv_pct_decode(),
 * the very pair appsrv_req_query_param() uses, so forms and queries
 * decode alike. No allocation.
 */
#include "req.h"

#include <errno.h>

ssize_t appsrv_form_param(appsrv_str_t form, const char *name, char *buf, size_t cap)
{
    const char *val;
    size_t vlen;
    if (form.ptr == NULL || name == NULL ||
        !appsrv__query_find(form.ptr, form.len, name, &val, &vlen))
        return -ENOENT;
    return appsrv_pct_decode(val, vlen, buf, cap, true);
}

ssize_t appsrv_req_form_param(const appsrv_req_t *req, const char *name, char *buf, size_t cap)
{
    appsrv_str_t ct = appsrv_req_header(req, "content-type");
    size_t n = 0;
    /* The media type, without parameters (e.g. "; charset=UTF-8"). */
    while (ct.ptr != NULL && n < ct.len && ct.ptr[n] != ';' && ct.ptr[n] != ' ' &&
           ct.ptr[n] != '\t')
        n++;
    if (ct.ptr == NULL || !appsrv__ieq(ct.ptr, n, "application/x-www-form-urlencoded", 33))
        return -ENOMSG;
    return appsrv_form_param(req->body, name, buf, cap);
}
