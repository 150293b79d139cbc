/* SPDX-License-Identifier: MIT */
/*
 * req.c - the request accessors (appsrv_req_*) over the views the
 * protocol filled in (req.h), and the access-log entry. Called by the
 * host inside handlers and by http.c/line.c; calls router.c for query
 * lookup and the connection's transport for TLS facts. No allocation:
 * every answer is a view or a copy into the caller's buffer.
 */
#include "req.h"

#include <errno.h>
#include <string.h>

#include "loop.h"

void appsrv__req_rebase(appsrv_req_t *req, uint32_t shift)
{
    req->base -= shift;
    req->method.ptr -= shift;
    req->target.ptr -= shift;
    req->path.ptr -= shift;
    req->query.ptr -= shift;
}

void appsrv__log_request(appsrv__conn_t *c, const appsrv_req_t *req, int status, uint64_t bytes,
                         bool aborted)
{
    const appsrv_config_t *cfg = c->w->cfg;
    if (cfg->access_log == NULL)
        return;
    appsrv_log_entry_t e = {
        .peer = &c->peer,
        .proto = c->proto->id,
        .status = status,
        .bytes = bytes,
        .aborted = aborted,
    };
    if (req != NULL) {
        e.method = req->method;
        e.target = req->target;
        uint64_t now = appsrv__now_us();
        e.usec = req->start_us != 0 && now > req->start_us ? now - req->start_us : 0;
    }
    cfg->access_log(&e, cfg->access_log_user);
}

appsrv_proto_t appsrv_req_proto(const appsrv_req_t *req)
{
    return req->proto;
}

appsrv_str_t appsrv_req_method(const appsrv_req_t *req)
{
    return req->method;
}

appsrv_str_t appsrv_req_target(const appsrv_req_t *req)
{
    return req->target;
}

appsrv_str_t appsrv_req_path(const appsrv_req_t *req)
{
    return req->path;
}

appsrv_str_t appsrv_req_query(const appsrv_req_t *req)
{
    if (!req->has_query)
        return (appsrv_str_t){NULL, 0};
    return req->query;
}

int appsrv_req_http_minor(const appsrv_req_t *req)
{
    return req->minor;
}

ssize_t appsrv_req_query_param(const appsrv_req_t *req, const char *name, char *buf,
                               size_t cap)
{
    const char *val;
    size_t vlen;
    if (!req->has_query || name == NULL ||
        !appsrv__query_find(req->query.ptr, req->query.len, name, &val, &vlen))
        return -ENOENT;
    return appsrv_pct_decode(val, vlen, buf, cap, true);
}

appsrv_str_t appsrv_req_param(const appsrv_req_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (unsigned i = 0; i < req->match.nparams; i++) {
        const appsrv__param_t *p = &req->match.params[i];
        if (p->name_len == nl && memcmp(p->name, name, nl) == 0)
            return (appsrv_str_t){p->val, p->val_len};
    }
    return (appsrv_str_t){NULL, 0};
}

appsrv_str_t appsrv_req_header(const appsrv_req_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (uint32_t i = 0; i < req->nhdrs; i++) {
        const appsrv__hdr_t *h = &req->hdrs[i];
        if (appsrv__ieq(req->base + h->name.off, h->name.len, name, nl))
            return (appsrv_str_t){req->base + h->value.off, h->value.len};
    }
    return (appsrv_str_t){NULL, 0};
}

size_t appsrv_req_header_count(const appsrv_req_t *req)
{
    return req->nhdrs;
}

int appsrv_req_header_at(const appsrv_req_t *req, size_t i, appsrv_str_t *name,
                         appsrv_str_t *value)
{
    if (i >= req->nhdrs)
        return -ERANGE;
    const appsrv__hdr_t *h = &req->hdrs[i];
    if (name != NULL)
        *name = (appsrv_str_t){req->base + h->name.off, h->name.len};
    if (value != NULL)
        *value = (appsrv_str_t){req->base + h->value.off, h->value.len};
    return 0;
}

appsrv_str_t appsrv_req_body(const appsrv_req_t *req)
{
    return req->body;
}

const appsrv_addr_t *appsrv_req_peer(const appsrv_req_t *req)
{
    return &req->conn->peer;
}

/* ------------------------------------------------------------------- TLS */

bool appsrv_req_is_tls(const appsrv_req_t *req)
{
    return req->conn->sock.tp->info != NULL;
}

static appsrv_str_t tls_fact(const appsrv_req_t *req, int what)
{
    const appsrv__tsock_t *s = &req->conn->sock;
    const char *v = s->tp->info != NULL ? s->tp->info(s, what) : NULL;
    return (appsrv_str_t){v, v != NULL ? strlen(v) : 0};
}

appsrv_str_t appsrv_req_tls_version(const appsrv_req_t *req)
{
    return tls_fact(req, APPSRV__TINFO_VERSION);
}

appsrv_str_t appsrv_req_tls_cipher(const appsrv_req_t *req)
{
    return tls_fact(req, APPSRV__TINFO_CIPHER);
}

appsrv_str_t appsrv_req_tls_sni(const appsrv_req_t *req)
{
    return tls_fact(req, APPSRV__TINFO_SNI);
}
