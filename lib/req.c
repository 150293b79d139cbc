/* SPDX-License-Identifier: MIT */
/*
 * req.c - the request accessors (appsrv_req_*) over the views the
 * protocol filled in (req.h), and the access-log entry. Called by the
 * host inside handlers and by http.c/line.c; calls router.c for query
 * lookup, the connection's transport for TLS facts, stats.c (metrics,
 * request IDs) and alog.c (the access-log file) when a request is done.
 * No allocation: every answer is a view or a copy into the caller's
 * buffer.
 */
#include "req.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <time.h>

#include "alog.h"
#include "loop.h"
#include "stats.h"
#include "trust.h"

void appsrv__req_rebase(appsrv_req_t *req, uint32_t shift)
{
    req->base -= shift;
    req->method.ptr -= shift;
    req->target.ptr -= shift;
    req->path.ptr -= shift;
    req->query.ptr -= shift;
}

/* At most this many X-Forwarded-For fields are walked (the nearest ones:
 * the last fields); a client cannot make the walk long. */
#define XFF_FIELDS 16

/* The client of req on c: the connection's (a PROXY header's, else the
 * socket peer), then, behind a trusted proxy, the X-Forwarded-For walk
 * (trust.h) written into *tmp. c is passed: a partial request (logged
 * after a parse error) has no req->conn yet, and maybe no headers. */
static const appsrv_addr_t *req_client(const appsrv__conn_t *c, const appsrv_req_t *req,
                                       appsrv_addr_t *tmp)
{
    const appsrv__trust_t *t = c->w->trust;
    if (t == NULL || c->proto->id != APPSRV_PROTO_HTTP || req->nhdrs == 0)
        return appsrv__conn_client(c);
    appsrv_str_t vals[XFF_FIELDS];
    size_t n = 0;
    for (size_t i = 0; i < req->nhdrs; i++) {
        appsrv_str_t name, val;
        if (appsrv_req_header_at(req, i, &name, &val) == 0 && name.len == 15 &&
            strncasecmp(name.ptr, "X-Forwarded-For", 15) == 0) {
            if (n == XFF_FIELDS) {
                memmove(vals, vals + 1, (XFF_FIELDS - 1) * sizeof(vals[0]));
                n--;
            }
            vals[n++] = val;
        }
    }
    *tmp = *appsrv__conn_client(c);
    appsrv__trust_walk(t, vals, n, tmp);
    return tmp;
}

void appsrv__log_request_slow(appsrv__conn_t *c, const appsrv_req_t *req, int status,
                              uint64_t bytes, uint64_t body, bool aborted)
{
    appsrv__worker_t *w = c->w;
    const appsrv_config_t *cfg = w->cfg;
    uint64_t now = appsrv__now_us();
    uint64_t usec = 0;
    if (req != NULL && req->start_us != 0 && now > req->start_us)
        usec = now - req->start_us;
    int route = req != NULL && req->match.pattern != NULL ? req->match.route : -1;
    if (cfg->metrics)
        appsrv__stats_request(&w->stats, c->proto->id, route, status, usec);
    if (cfg->access_log == NULL && w->wlog == NULL)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    appsrv_addr_t xff;
    appsrv_log_entry_t e = {
        .peer = &c->peer,
        .proto = c->proto->id,
        .status = status,
        .bytes = bytes,
        .usec = usec,
        .aborted = aborted,
        .http_minor = -1,
        .body_bytes = body,
        .client = req != NULL ? req_client(c, req, &xff) : appsrv__conn_client(c),
        .time_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - (int64_t)usec,
        .worker = w->stats.worker,
    };
    if (c->sock.tp->info != NULL) {
        /* The TLS version from the transport (NULL once it is closed). */
        const char *v = c->sock.tp->info(&c->sock, APPSRV__TINFO_VERSION);
        if (v != NULL)
            e.tls_version = (appsrv_str_t){v, strlen(v)};
    }
    if (req != NULL) {
        e.method = req->method;
        e.target = req->target;
        e.bytes_in = req->in_bytes;
        /* c's protocol, not req->proto: a partial request has none yet. */
        if (c->proto->id == APPSRV_PROTO_HTTP && req->minor != APPSRV__MINOR_NONE)
            e.http_minor = req->minor;
        if (req->nhdrs > 0) {
            e.user_agent = appsrv_req_header(req, "user-agent");
            e.referer = appsrv_req_header(req, "referer");
        }
        if (req->id_len > 0)
            e.request_id = (appsrv_str_t){req->id, req->id_len};
        if (route >= 0)
            e.route = (appsrv_str_t){req->match.pattern, strlen(req->match.pattern)};
    }
    if (w->wlog != NULL)
        appsrv__wlog_append(w->wlog, &e);
    if (cfg->access_log != NULL)
        cfg->access_log(&e, cfg->access_log_user);
}

static bool id_byte(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

void appsrv__req_set_id(appsrv_req_t *req, appsrv__stats_t *st, appsrv_str_t value)
{
    bool ok = value.ptr != NULL && value.len >= 1 && value.len <= APPSRV__REQ_ID_MAX;
    for (size_t i = 0; ok && i < value.len; i++)
        ok = id_byte((unsigned char)value.ptr[i]);
    if (ok) {
        memcpy(req->id, value.ptr, value.len);
        req->id_len = (uint8_t)value.len;
        return;
    }
    appsrv__stats_random_id(st, req->id);
    req->id_len = 32;
}

appsrv_str_t appsrv_req_id(const appsrv_req_t *req)
{
    if (req->id_len == 0)
        return (appsrv_str_t){NULL, 0};
    return (appsrv_str_t){req->id, req->id_len};
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

const appsrv_addr_t *appsrv_req_client_addr(const appsrv_req_t *req)
{
    appsrv_req_t *r = (appsrv_req_t *)req; /* xclient is a cache, not content */
    return req_client(req->conn, req, &r->xclient);
}

appsrv_str_t appsrv_req_scheme(const appsrv_req_t *req)
{
    bool tls = appsrv_req_is_tls(req);
    const appsrv__trust_t *t = req->conn->w->trust;
    if (t != NULL && appsrv__trust_has(t, appsrv__conn_client(req->conn))) {
        /* The last X-Forwarded-Proto element: what the nearest proxy saw. */
        appsrv_str_t v = {NULL, 0};
        for (size_t i = 0; i < req->nhdrs; i++) {
            appsrv_str_t name, val;
            if (appsrv_req_header_at(req, i, &name, &val) == 0 && name.len == 17 &&
                strncasecmp(name.ptr, "X-Forwarded-Proto", 17) == 0)
                v = val;
        }
        if (v.ptr != NULL) {
            size_t s = v.len;
            while (s > 0 && v.ptr[s - 1] != ',')
                s--;
            const char *p = v.ptr + s;
            size_t n = v.len - s;
            while (n > 0 && (*p == ' ' || *p == '\t')) {
                p++;
                n--;
            }
            if (n == 5 && strncasecmp(p, "https", 5) == 0)
                tls = true;
            else if (n == 4 && strncasecmp(p, "http", 4) == 0)
                tls = false;
        }
    }
    return tls ? (appsrv_str_t){"https", 5} : (appsrv_str_t){"http", 4};
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
