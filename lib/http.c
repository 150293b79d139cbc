/* SPDX-License-Identifier: MIT */
/*
 * http.c - HTTP/1.1 as a protocol table (proto.h) over a connection:
 * turns buffered bytes into requests (http_parse.c), reads the bodies
 * that come in place with the head (Content-Length within max_body, or in
 * one allocation), routes and calls the handler, and answers protocol
 * errors (through the host's error responder when one is set). Middleware
 * hooks (mw.c) run around routing; request IDs and metrics (stats.h) are
 * taken per request; a response that upgrades (WebSocket's 101) switches
 * the connection's protocol after it is queued. The response side
 * (framing, held responses, content coding) is http_out.c; chunked
 * bodies, 100-continue and appsrv_route_ex() heads and streamed bodies
 * are http_body.c; http_ctx.h is the per-request context all three share.
 * Invariant: a request's views point into rbuf or the body buffer, both
 * kept until its response has been written.
 */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "climit.h"
#include "conn.h"
#include "http_body.h"
#include "http_ctx.h"
#include "http_out.h"
#include "http_parse.h"
#include "mw.h"
#include "req.h"
#include "res.h"
#include "router.h"
#include "stats.h"
#include "status.h"

/* ---------------------------------------------------------- error replies */

/* The request as far as it was parsed, for the access log of an error. */
static const appsrv_req_t *partial_request(appsrv__conn_t *c)
{
    if (c->ctx == NULL || !c->head_started)
        return NULL;
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    appsrv_req_t *req = &x->req;
    if (req->method.ptr == NULL && x->head.method.len > 0 &&
        x->head.method.off + x->head.method.len <= c->rlen - c->rpos) {
        const char *base = c->rbuf + c->rpos;
        req->method = (appsrv_str_t){base + x->head.method.off, x->head.method.len};
        if (x->head.target.len > 0 && x->head.target.off + x->head.target.len <= c->rlen - c->rpos)
            req->target = (appsrv_str_t){base + x->head.target.off, x->head.target.len};
    }
    return req;
}

/* A library answer through the middleware (error responder, after
 * hooks), framed from a response of its own: the host may hold x->res. */
/* The library's own answer through the host's error responder and after
 * hooks: idreq carries the request ID when the head was not parsed;
 * *body gets the body's length (for the access log). */
static uint64_t queue_error(appsrv__conn_t *c, int status, const appsrv_req_t *idreq,
                            size_t *body)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    const appsrv_req_t *seen = partial_request(c);
    appsrv_str_t method = seen != NULL ? seen->method : (appsrv_str_t){NULL, 0};
    appsrv_str_t target = seen != NULL ? seen->target : (appsrv_str_t){NULL, 0};
    const char *code = status == 503 && c->state == APPSRV__ST_WAIT ? "response_timeout" : NULL;
    appsrv_res_t res;
    appsrv__res_reset(&res, c);
    appsrv__mw_error(c->w->mw, &res, status, code, x->filled ? &x->req : NULL, method, target);
    /* Not parsed: framed as for HTTP/1.1 GET (body sent, then the close). */
    appsrv_req_t bare = {.conn = c, .proto = APPSRV_PROTO_HTTP, .minor = 1};
    if (idreq != NULL && idreq->id_len > 0) {
        memcpy(bare.id, idreq->id, idreq->id_len);
        bare.id_len = idreq->id_len;
    }
    c->keep_alive = false;
    *body = res.body_len;
    uint64_t n = appsrv__http_queue_head(c, x->filled ? &x->req : &bare, &res, false);
    appsrv__res_dispose(&res);
    return n;
}

static void http_error(appsrv__conn_t *c, int status)
{
    appsrv_req_t *req = (appsrv_req_t *)partial_request(c);
    size_t rlen;
    appsrv__reason_len(status, &rlen);
    const appsrv__mw_t *mw = c->w->mw;
    /* The host's error responder (and after hooks) shape the answer when
     * set; the library's text answer otherwise. */
    bool custom = mw != NULL && mw->active && c->ctx != NULL;
    if (req != NULL) {
        if (c->w->cfg->request_ids && req->id_len == 0)
            appsrv__req_set_id(req, &c->w->stats, (appsrv_str_t){NULL, 0});
        if (req->in_bytes == 0)
            req->in_bytes = c->rlen - c->rpos; /* as far as it came */
        uint64_t bytes =
            custom ? queue_error(c, status, req, &rlen) : appsrv__http_queue_simple(c, status, req);
        appsrv__http_log_once(c, req, status, bytes, bytes > 0 ? rlen : 0, false);
    } else {
        /* Nothing parsed (a timeout before any byte): no request object,
         * but the answer still gets an ID and a log entry. */
        struct appsrv_req none;
        memset(&none, 0, sizeof(none));
        none.conn = c;
        none.proto = APPSRV_PROTO_HTTP;
        none.minor = APPSRV__MINOR_NONE;
        if (c->w->cfg->request_ids)
            appsrv__req_set_id(&none, &c->w->stats, (appsrv_str_t){NULL, 0});
        uint64_t bytes = custom ? queue_error(c, status, &none, &rlen)
                                : appsrv__http_queue_simple(c, status, &none);
        appsrv__log_request(c, &none, status, bytes, bytes > 0 ? rlen : 0, false);
    }
    c->close_after = true;
    c->must_linger = true;
    c->keep_alive = false;
}

/* A request the parser or the body reader refused: counted, reported
 * (rate-limited) and answered. */
static void protocol_error(appsrv__conn_t *c, int status)
{
    appsrv__worker_t *w = c->w;
    if (status >= 400 && status < 600)
        appsrv__ctr_add(&w->stats.proto_errors[status - 400], 1);
    if (w->cfg->on_event != NULL)
        appsrv__event(&w->stats, w->cfg, w->loop.now_ms, APPSRV__EV_PROTOCOL_ERROR,
                      APPSRV_LEVEL_INFO, appsrv__reason(status), 0, status, &c->peer);
    http_error(c, status);
}


/* ------------------------------------------------------------- requests */

/* The client's X-Request-ID when it is acceptable, else a new one. */
static void request_id(appsrv__conn_t *c, appsrv_req_t *req)
{
    appsrv_str_t v = {NULL, 0};
    for (uint32_t i = 0; i < req->nhdrs; i++) {
        const appsrv__hdr_t *h = &req->hdrs[i];
        if (appsrv__ieq(req->base + h->name.off, h->name.len, "x-request-id", 12)) {
            v = (appsrv_str_t){req->base + h->value.off, h->value.len};
            break;
        }
    }
    appsrv__req_set_id(req, &c->w->stats, v);
}

static void fill_request(appsrv__conn_t *c, uint32_t head_len)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    appsrv__http_head_t *h = &x->head;
    appsrv_req_t *req = &x->req;
    const char *base = c->rbuf + c->rpos;

    req->conn = c;
    req->proto = APPSRV_PROTO_HTTP;
    req->minor = h->minor;
    req->base = base;
    req->method = (appsrv_str_t){base + h->method.off, h->method.len};
    req->target = (appsrv_str_t){base + h->target.off, h->target.len};
    req->path = (appsrv_str_t){base + h->path.off, h->path.len};
    req->query = (appsrv_str_t){base + h->query.off, h->query.len};
    req->has_query = h->has_query;
    req->hdrs = h->hdrs;
    req->nhdrs = h->nhdrs;
    /* RFC 9112 §3.2.2: for an absolute-form target the Host field is
     * ignored; the handler sees the target's authority as its value. */
    if (h->target_form == APPSRV__TARGET_ABSOLUTE)
        for (uint32_t i = 0; i < h->nhdrs; i++)
            if (appsrv__ieq(base + h->hdrs[i].name.off, h->hdrs[i].name.len, "host", 4))
                h->hdrs[i].value = h->authority;
    req->body = (appsrv_str_t){"", 0};
    req->is_head = h->method.len == 4 && memcmp(req->method.ptr, "HEAD", 4) == 0;
    req->match.nparams = 0;
    req->in_bytes = head_len;
    if (appsrv__unlikely(c->w->cfg->request_ids))
        request_id(c, req);
    appsrv__http_ctx(c)->filled = true;
    if (appsrv__unlikely(c->w->mw != NULL && c->w->mw->nhooks > 0))
        appsrv__mw_reset(c->w->mw, req);
    c->bpos = head_len;
    c->hlen = head_len;
}

/* A new request begins at rpos: fresh parser and request state. */
static void begin_head(appsrv__conn_t *c)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    memset(&x->head, 0, sizeof(x->head));
    x->head.hdrs = x->hdrs;
    /* Only what an error before fill_request() reads (partial_request). */
    x->req.method = (appsrv_str_t){NULL, 0};
    x->req.target = (appsrv_str_t){NULL, 0};
    x->req.minor = APPSRV__MINOR_NONE;
    x->req.nhdrs = 0;
    x->req.match.pattern = NULL;
    x->req.in_bytes = 0;
    x->req.id_len = 0;
    x->req.start_us = appsrv__unlikely(c->w->obs) ? appsrv__now_us() : 0;
    x->logged = false;
    x->filled = false;
    x->routed = x->streaming = false;
    c->head_started = true;
}

/* Starts the body phase. Returns 0, or a status to answer with (and
 * close: the body was not read). */
static int begin_body(appsrv__conn_t *c, uint32_t head_len)
{
    const appsrv_config_t *cfg = c->w->cfg;
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    appsrv__http_head_t *h = &x->head;
    size_t cap = c->w->pool.data_cap;
    size_t avail = c->rlen - c->rpos - head_len;
    bool need_more = false;

    c->keep_alive = h->minor >= 1 ? !h->conn_close : (h->conn_keep_alive && !h->conn_close);
    if (c->w->draining)
        c->keep_alive = false;
    c->body_len = 0;
    c->body_in_heap = false;
    if (h->is_chunked) {
        memset(&x->chunk, 0, sizeof(x->chunk));
        need_more = true;
    } else if (h->has_content_length && h->content_length > 0) {
        uint64_t limit = appsrv__unlikely(c->w->route_ex) ? x->body_limit : cfg->max_body;
        if (h->content_length > limit)
            return 413;
        size_t cl = (size_t)h->content_length;
        if (cl > avail && appsrv__unlikely(x->streaming)) {
            need_more = true; /* streamed through rbuf: no body buffer */
        } else if (cl > avail) {
            need_more = true;
            if (c->rpos > 0 && c->rpos + head_len + cl > cap && !appsrv__out_busy(c)) {
                memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
                c->rlen -= c->rpos;
                c->rpos = 0;
                fill_request(c, head_len);
            }
            if (c->rpos + head_len + cl > cap) {
                /* Does not fit: one allocation of exactly the body. */
                c->body_heap = malloc(cl);
                if (c->body_heap == NULL)
                    return 503;
                memcpy(c->body_heap, c->rbuf + c->rpos + head_len, avail);
                c->body_len = avail;
                c->body_cap = cl;
                c->body_in_heap = true;
                c->bpos = head_len + (uint32_t)avail;
            }
        }
    }
    c->state = APPSRV__ST_BODY;
    /* RFC 9110 §10.1.1: answer 100 before reading the body, or the final
     * status at once when the body would be refused. */
    if (need_more && h->expect_continue && h->minor >= 1 && avail == 0)
        appsrv__http_continue(c);
    return 0;
}

/* Returns 1 when the body is complete, 0 when more is needed, or
 * -status. */
static int read_body(appsrv__conn_t *c)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    appsrv__http_head_t *h = &x->head;
    appsrv_req_t *req = &x->req;
    uint32_t head_len = c->hlen;

    if (h->is_chunked)
        return appsrv__http_read_chunked(c);
    if (!h->has_content_length || h->content_length == 0)
        return 1;
    if (c->body_in_heap) {
        if (c->body_len < c->body_cap)
            return 0;
        req->body = (appsrv_str_t){c->body_heap, c->body_len};
        req->in_bytes += c->body_len;
        return 1;
    }
    size_t avail = c->rlen - c->rpos - head_len;
    if (avail < h->content_length)
        return 0;
    req->in_bytes += h->content_length;
    req->body = (appsrv_str_t){c->rbuf + c->rpos + head_len, (size_t)h->content_length};
    c->bpos = head_len + (uint32_t)h->content_length;
    return 1;
}

/* cfg.rate_limit (climit.h): when req's client has no token left, fills
 * res with 429 and Retry-After (RFC 6585 §4, RFC 9110 §10.2.3) through
 * the error responder, and returns true. */
static bool rate_limited(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res)
{
    int wait_s = appsrv__climit_request(c->w->climit, appsrv_req_client_addr(req),
                                        c->w->loop.now_ms);
    if (wait_s <= 0)
        return false;
    appsrv__http_lib_answer(c, req, res, 429);
    char v[16];
    snprintf(v, sizeof(v), "%d", wait_s);
    appsrv_res_add_header(res, "Retry-After", v);
    return true;
}

static void dispatch(appsrv__conn_t *c)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    appsrv_req_t *req = &x->req;
    appsrv_res_t *res = &x->res;

    const appsrv__mw_t *mw = c->w->mw;
    int hrc;

    /* res is clean here: reset with its block, disposed after each use. */
    if (x->head.target_form == APPSRV__TARGET_ASTERISK) {
        /* OPTIONS * (RFC 9110 §9.3.7): the server as a whole is alive. */
        res->status = 200;
    } else if (appsrv__unlikely(c->w->climit != NULL) && rate_limited(c, req, res)) {
        /* Over its per-client rate: 429 (rate_limited filled res). */
    } else if (appsrv__unlikely(mw != NULL && mw->any_before) &&
               (hrc = appsrv__mw_before(mw, req, res)) != 0) {
        /* A before hook answered (or failed: 500). */
        if (hrc < 0 || res->status == 0)
            appsrv__http_lib_answer(c, req, res, 500);
    } else if (appsrv__unlikely(x->routed) || appsrv__http_route(c, req, res)) {
        int rc = req->match.handler(req, res, req->match.user);
        if (rc == APPSRV_LATER) {
            /* The host finishes res later (any thread): wait for it. */
            appsrv__res_defer(res);
            appsrv__conn_wait(c);
            if (c->w->draining)
                appsrv__res_stop(res);
            return;
        }
        /* A 500 for a failed handler, or for one that never set a status
         * (also after appsrv_res_send(): res leaves the queue in dispose). */
        if (rc < 0 || res->status == 0)
            appsrv__http_lib_answer(c, req, res, 500);
    }
    appsrv__http_respond(c, req, res);
}

/* ---------------------------------------------------------- the protocol */

static int http_process(appsrv__conn_t *c)
{
    const appsrv_config_t *cfg = c->w->cfg;
    const appsrv__http_limits_t lim = {
        .max_head = cfg->max_head,
        .max_target = cfg->max_target,
        .max_headers = cfg->max_headers,
    };
    int progress = 0;

    while (!c->closed && !c->close_after) {
        if (c->state == APPSRV__ST_WAIT) {
            progress |= appsrv__http_pump(c);
            if (c->state == APPSRV__ST_WAIT)
                return progress;
            continue;
        }
        if (c->state == APPSRV__ST_HEAD) {
            if (c->rblk == NULL || c->rlen == c->rpos)
                return progress;
            /* Room for one more response; else flush first. */
            if (appsrv__out_room(c) < 512)
                return progress;
            appsrv__http_ctx_t *x = appsrv__http_ctx(c);
            if (!c->head_started)
                begin_head(c);
            int r = appsrv__http_parse_head(&x->head, c->rbuf + c->rpos, c->rlen - c->rpos, &lim);
            if (r == APPSRV__AGAIN) {
                if (c->rlen == c->w->pool.data_cap && c->rpos == 0) {
                    protocol_error(c, 431); /* unreachable: cap > max_head */
                    return 1;
                }
                return progress;
            }
            if (r < 0) {
                protocol_error(c, -r);
                return 1;
            }
            fill_request(c, (uint32_t)r);
            if (appsrv__unlikely(c->w->route_ex)) {
                if (appsrv__http_body_announced(&x->head) || x->head.expect_continue) {
                    if (appsrv__http_head_decide(c)) {
                        progress = 1;
                        continue; /* answered (and closing, when a body was announced) */
                    }
                }
            }
            int st = begin_body(c, (uint32_t)r);
            if (st != 0) {
                protocol_error(c, st);
                return 1;
            }
            progress = 1;
            if (c->close_after)
                return progress;
            if (appsrv__unlikely(x->streaming)) {
                appsrv__http_stream_dispatch(c);
                continue;
            }
        }
        if (appsrv__unlikely(appsrv__http_ctx(c)->streaming)) {
            int sr = appsrv__http_stream_step(c);
            progress |= sr > 0;
            if (sr <= 0 || c->state == APPSRV__ST_BODY)
                return progress;
            continue;
        }
        int r = read_body(c);
        if (r == 0)
            return progress;
        if (r < 0) {
            protocol_error(c, -r);
            return 1;
        }
        dispatch(c);
        progress = 1;
        if (c->proto != &appsrv__http_proto)
            return progress; /* switched (101): the rest is not HTTP */
    }
    return progress;
}

static size_t http_ctx_size(const appsrv_config_t *cfg)
{
    return sizeof(appsrv__http_ctx_t) + cfg->max_headers * sizeof(appsrv__hdr_t);
}

static void http_ctx_init(appsrv__conn_t *c)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    x->logged = false;
    x->filled = false;
    x->routed = x->streaming = x->resume_init = false;
    appsrv__res_reset(&x->res, c);
}

static void http_ctx_dispose(appsrv__conn_t *c)
{
    if (appsrv__unlikely(appsrv__http_ctx(c)->resume_init))
        appsrv__http_resume_dispose(c);
    appsrv__res_dispose(&appsrv__http_ctx(c)->res);
}

static void http_cancel(appsrv__conn_t *c)
{
    appsrv__res_cancel(&appsrv__http_ctx(c)->res);
}

/* Requests that end with the connection are logged as aborted, with 499
 * (nginx's "client closed request") when no status went out. */
static void http_closed(appsrv__conn_t *c)
{
    if (c->ctx == NULL)
        return;
    if (appsrv__unlikely(appsrv__http_ctx(c)->streaming))
        appsrv__http_stream_gone(c); /* the body callback hears first, then cancel */
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    /* The host may hold a response whose connection went on to linger
     * (it was answered 503, or its client left): refs tells, not state. */
    if (c->state == APPSRV__ST_WAIT || appsrv__conn_host_holds(c)) {
        appsrv__http_log_once(c, &x->req, x->res.head_sent ? x->res.status : 499, x->res.out_bytes,
                 x->res.out_body, true);
        appsrv__res_conn_closed(&x->res);
    } else if (c->state == APPSRV__ST_BODY) {
        appsrv__http_log_once(c, &x->req, 499, 0, 0, true); /* the client left mid-body */
    }
}

static void http_rebase(appsrv__conn_t *c, uint32_t shift)
{
    appsrv__req_rebase(&appsrv__http_ctx(c)->req, shift);
}

static void http_drain(appsrv__conn_t *c)
{
    if (c->state == APPSRV__ST_BODY && c->ctx != NULL)
        appsrv__http_stream_stop(c); /* then WAIT: the stop notification too */
    if (c->state == APPSRV__ST_WAIT && c->ctx != NULL)
        appsrv__res_stop(&appsrv__http_ctx(c)->res);
}

const appsrv__proto_t appsrv__http_proto = {
    .name = "http/1.1",
    .id = APPSRV_PROTO_HTTP,
    .ctx_size = http_ctx_size,
    .ctx_init = http_ctx_init,
    .ctx_dispose = http_ctx_dispose,
    .process = http_process,
    .error = http_error,
    .cancel = http_cancel,
    .closed = http_closed,
    .rebase = http_rebase,
    .drain = http_drain,
    .refusal = appsrv__http_refusal,
};
