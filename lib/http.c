/* SPDX-License-Identifier: MIT */
/*
 * http.c - HTTP/1.1 as a protocol table (proto.h) over a connection:
 * turns buffered bytes into requests (http_parse.c), reads bodies
 * (Content-Length in place or in one allocation; chunked decoded into a
 * growing buffer within max_body), answers 100-continue, routes
 * (router.c), calls the handler, and frames responses (status line,
 * Server, Date, Content-Length or chunked, Connection) into the
 * connection's output queue; deferred and streamed responses are framed
 * here as the host finishes them (res.c). Error replies are made here
 * too, through the host's error responder when one is set; middleware
 * hooks (mw.c) run around routing and before every head; request IDs and
 * metrics (stats.h) are taken per request; a response that upgrades
 * (WebSocket's 101) switches the connection's protocol after it is
 * queued. Invariant: a request's views point into rbuf or the body
 * buffer, both kept until its response has been written.
 */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "climit.h"
#include "conn.h"
#include "http_parse.h"
#include "mw.h"
#include "req.h"
#include "res.h"
#include "router.h"
#include "stats.h"
#include "status.h"

/* The per-request context, at the front of the input block's context
 * area; max_headers header slots follow it. */
typedef struct http_ctx {
    appsrv__http_head_t head;
    appsrv__chunked_t chunk;
    struct appsrv_req req;
    struct appsrv_res res;
    bool logged; /* this request's access-log line is out */
    bool filled; /* req holds a whole parsed head (fill_request) */
    _Alignas(8) appsrv__hdr_t hdrs[];
} http_ctx_t;

static inline http_ctx_t *ctx_of(appsrv__conn_t *c)
{
    return (http_ctx_t *)c->ctx;
}

/* --------------------------------------------------------------- helpers */

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* "HTTP/1.1 <status> <reason>\r\nServer: ...\r\nDate: <date>\r\n": the
 * start of every response head; at most 80 + rlen bytes. */
static inline char *put_status_head(char *p, int status, const char *reason, size_t rlen,
                                    const char *date)
{
    p = PUT_LIT(p, "HTTP/1.1 ");
    p += appsrv__fmt_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = put(p, reason, rlen);
    p = PUT_LIT(p, "\r\nServer: " APPSRV__SERVER_HEADER "\r\nDate: ");
    p = put(p, date, 29);
    return PUT_LIT(p, "\r\n");
}

static void log_once(appsrv__conn_t *c, const appsrv_req_t *req, int status, uint64_t bytes,
                     uint64_t body, bool aborted)
{
    http_ctx_t *x = ctx_of(c);
    if (x->logged)
        return;
    x->logged = true;
    appsrv__log_request(c, req, status, bytes, body, aborted);
}

/* "X-Request-ID: <id>\r\n" (cfg.request_ids). */
static char *put_request_id(char *p, const appsrv_req_t *req)
{
    p = PUT_LIT(p, "X-Request-ID: ");
    p = put(p, req->id, req->id_len);
    return PUT_LIT(p, "\r\n");
}
#define REQUEST_ID_ROOM (18 + APPSRV__REQ_ID_MAX)

/* ---------------------------------------------------------- error replies */

/* Frames a library-made response with a short text body straight into the
 * output queue. Used for parse errors and timeouts (no request object;
 * req only carries the request ID, if any). */
static uint64_t queue_simple(appsrv__conn_t *c, int status, const appsrv_req_t *req)
{
    size_t rlen;
    const char *reason = appsrv__reason_len(status, &rlen);
    size_t need = 160 + 2 * rlen + REQUEST_ID_ROOM;
    char *mem;
    char *p0 = appsrv__out_begin(c, need, &mem);
    if (p0 == NULL)
        return 0;
    char *p = put_status_head(p0, status, reason, rlen, c->w->loop.date);
    p = PUT_LIT(p, "Content-Type: text/plain\r\nContent-Length: ");
    p += appsrv__fmt_u64(p, rlen);
    p = PUT_LIT(p, "\r\nConnection: close\r\n");
    if (req->id_len > 0)
        p = put_request_id(p, req);
    p = PUT_LIT(p, "\r\n");
    p = put(p, reason, rlen);
    size_t len = (size_t)(p - p0);
    appsrv__out_finish(c, p0, len, mem);
    return len;
}

/* The request as far as it was parsed, for the access log of an error. */
static const appsrv_req_t *partial_request(appsrv__conn_t *c)
{
    if (c->ctx == NULL || !c->head_started)
        return NULL;
    http_ctx_t *x = ctx_of(c);
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

static uint64_t queue_head(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res, bool stream);

/* A library answer through the middleware (error responder, after
 * hooks), framed from a response of its own: the host may hold x->res. */
/* The library's own answer through the host's error responder and after
 * hooks: idreq carries the request ID when the head was not parsed;
 * *body gets the body's length (for the access log). */
static uint64_t queue_error(appsrv__conn_t *c, int status, const appsrv_req_t *idreq,
                            size_t *body)
{
    http_ctx_t *x = ctx_of(c);
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
    uint64_t n = queue_head(c, x->filled ? &x->req : &bare, &res, false);
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
        uint64_t bytes = custom ? queue_error(c, status, req, &rlen) : queue_simple(c, status, req);
        log_once(c, req, status, bytes, bytes > 0 ? rlen : 0, false);
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
        uint64_t bytes =
            custom ? queue_error(c, status, &none, &rlen) : queue_simple(c, status, &none);
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

/* ---------------------------------------------------------------- framing */

/* Frames the head (and, unless stream, the body) of res into the output
 * queue; takes the body's ownership. A stream head announces chunked
 * coding to HTTP/1.1 clients and a close-delimited body to HTTP/1.0 ones.
 * Returns the bytes queued. */
static uint64_t queue_head(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res, bool stream)
{
    const appsrv__mw_t *mw = c->w->mw;
    if (appsrv__unlikely(mw != NULL && mw->any_after))
        appsrv__mw_after(mw, ctx_of(c)->filled ? req : NULL, res);
    int st = res->status;
    /* RFC 9110 §8.6, §15.2, §15.3.5, §15.4.5: no content in 1xx, 204 and
     * 304. */
    bool no_content = st == 204 || st == 304 || st < 200;
    size_t blen = no_content || stream ? 0 : res->body_len;
    bool send_body = !req->is_head && blen > 0;
    size_t rlen;
    const char *reason = res->reason != NULL ? res->reason : appsrv__reason_len(st, &rlen);
    if (res->reason != NULL)
        rlen = strlen(reason);
    bool inline_body = send_body && blen <= APPSRV__RES_INLINE_BODY;
    size_t need = 128 + rlen + res->hdrs_len + 40 + (inline_body ? blen : 0) + REQUEST_ID_ROOM;

    char *mem;
    char *p0 = appsrv__out_begin(c, need, &mem);
    if (p0 == NULL) {
        c->close_after = true;
        return 0;
    }
    char *p = put_status_head(p0, st, reason, rlen, c->w->loop.date);
    if (stream) {
        if (req->minor >= 1 && !no_content) {
            p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
            res->chunked = true;
        } else if (!no_content) {
            c->keep_alive = false; /* RFC 9112 §6.3: the close ends it */
        }
    } else if (!no_content) {
        /* HEAD keeps the Content-Length a GET would have (RFC 9110 §9.3.2). */
        p = PUT_LIT(p, "Content-Length: ");
        p += appsrv__fmt_u64(p, res->body_len);
        p = PUT_LIT(p, "\r\n");
    }
    p = put(p, res->hdrs, res->hdrs_len);
    if (appsrv__unlikely(req->id_len > 0))
        p = put_request_id(p, req);
    if (res->upgrade != NULL)
        p = PUT_LIT(p, "Connection: Upgrade\r\n"); /* RFC 9110 §7.8 */
    else if (!c->keep_alive)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (req->minor == 0)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    if (inline_body)
        p = put(p, res->body, blen);
    size_t hlen = (size_t)(p - p0);
    appsrv__out_finish(c, p0, hlen, mem);

    if (send_body && !inline_body) {
        int rc;
        if (res->body_is_heap) {
            rc = appsrv__out_ref(c, res->body, blen, appsrv__free_cb, res->body, NULL);
            if (rc == 0)
                appsrv__res_body_taken(res);
        } else if (res->body_is_ref) {
            rc = appsrv__out_ref(c, res->body, blen, res->ref_free, res->body, res->ref_ud);
            if (rc == 0)
                appsrv__res_body_taken(res);
        } else {
            rc = appsrv__out_copy(c, res->body, blen);
        }
        if (rc < 0)
            c->close_after = true; /* cannot happen: room checked first */
        hlen += blen;
    }
    if (send_body)
        res->out_body += blen;
    res->body_len = 0;
    return hlen;
}

/* Fills res with the library's answer status (the error responder's). */
static void lib_answer(appsrv__conn_t *c, const appsrv_req_t *req, appsrv_res_t *res, int status)
{
    const appsrv__mw_t *mw = c->w->mw;
    if (appsrv__likely(mw == NULL || mw->on_error == NULL))
        appsrv__res_simple(res, status);
    else
        appsrv__mw_error(mw, res, status, NULL, req, req->method, req->target);
}

/* Routes req. On a miss, fills res with 404 or 405 (+ Allow) and returns
 * false. */
static bool route(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res)
{
    const appsrv__router_t *router = c->proto_data;
    const char *path = req->path.len ? req->path.ptr : "/";
    size_t plen = req->path.len ? req->path.len : 1;
    int r = appsrv__router_match(router, req->method.ptr, req->method.len, path, plen,
                                 &req->match);
    if (r == 0)
        return true;
    if (r == -405) {
        char allow[256];
        appsrv__router_allow(router, path, plen, allow, sizeof(allow));
        lib_answer(c, req, res, 405);
        appsrv_res_add_header(res, "Allow", allow);
    } else {
        lib_answer(c, req, res, 404);
    }
    return false;
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
    http_ctx_t *x = ctx_of(c);
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
    ctx_of(c)->filled = true;
    if (appsrv__unlikely(c->w->mw != NULL && c->w->mw->nhooks > 0))
        appsrv__mw_reset(c->w->mw, req);
    c->bpos = head_len;
    c->hlen = head_len;
}

/* A new request begins at rpos: fresh parser and request state. */
static void begin_head(appsrv__conn_t *c)
{
    http_ctx_t *x = ctx_of(c);
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
    c->head_started = true;
}

static uint64_t queue_response(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res)
{
    uint64_t n = queue_head(c, req, res, false);
    res->out_bytes += n;
    return n;
}

/* Starts the body phase. Returns 0, or a status to answer with (and
 * close: the body was not read). */
static int begin_body(appsrv__conn_t *c, uint32_t head_len)
{
    const appsrv_config_t *cfg = c->w->cfg;
    http_ctx_t *x = ctx_of(c);
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
        if (h->content_length > cfg->max_body)
            return 413;
        size_t cl = (size_t)h->content_length;
        if (cl > avail) {
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
    if (need_more && h->expect_continue && h->minor >= 1 && avail == 0) {
        appsrv_req_t *req = &x->req;
        appsrv_res_t *res = &x->res;
        appsrv__res_dispose(res);
        if (x->head.target_form != APPSRV__TARGET_ASTERISK && !route(c, req, res)) {
            c->keep_alive = false;
            int status = res->status;
            uint64_t bytes = queue_response(c, req, res);
            uint64_t body = res->out_body;
            appsrv__res_dispose(res);
            log_once(c, req, status, bytes, body, false);
            c->close_after = true;
            c->must_linger = true; /* the client may send the body anyway */
            return 0;
        }
        appsrv__out_copy(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    }
    return 0;
}

/* Returns 1 when the body is complete, 0 when more is needed, or
 * -status. */
static int read_body(appsrv__conn_t *c)
{
    const appsrv_config_t *cfg = c->w->cfg;
    http_ctx_t *x = ctx_of(c);
    appsrv__http_head_t *h = &x->head;
    appsrv_req_t *req = &x->req;
    uint32_t head_len = c->hlen;

    if (h->is_chunked) {
        const char *p = c->rbuf + c->rpos + c->bpos;
        size_t len = c->rlen - c->rpos - c->bpos;
        while (len > 0 && !x->chunk.done) {
            size_t dlen = 0;
            int64_t n = appsrv__chunked_parse(&x->chunk, p, len, cfg->max_head, &dlen);
            if (n < 0)
                return (int)n;
            if (dlen > 0) {
                if (c->body_len + dlen > cfg->max_body)
                    return -413;
                if (c->body_len + dlen > c->body_cap) {
                    size_t ncap = c->body_cap ? c->body_cap : 4096;
                    while (ncap < c->body_len + dlen)
                        ncap *= 2;
                    if (ncap > cfg->max_body)
                        ncap = cfg->max_body;
                    char *b = realloc(c->body_heap, ncap);
                    if (b == NULL)
                        return -503;
                    c->body_heap = b;
                    c->body_cap = ncap;
                }
                memcpy(c->body_heap + c->body_len, p, dlen);
                c->body_len += dlen;
            }
            p += n;
            len -= (size_t)n;
            c->bpos += (uint32_t)n;
            req->in_bytes += (uint64_t)n;
        }
        if (!x->chunk.done)
            return 0;
        req->body = (appsrv_str_t){c->body_heap ? c->body_heap : "", c->body_len};
        return 1;
    }
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

static void finish_request(appsrv__conn_t *c)
{
    if (c->body_heap != NULL) {
        /* The request body lives until its response is written (echo
         * handlers may reference it): release it from the queue. */
        if (appsrv__out_ref(c, c->body_heap, 0, appsrv__free_cb, c->body_heap, NULL) < 0)
            free(c->body_heap); /* cannot happen: room checked first */
        c->body_heap = NULL;
    }
    c->body_len = c->body_cap = 0;
    c->body_in_heap = false;
    c->rpos += c->bpos;
    c->bpos = 0;
    c->state = APPSRV__ST_HEAD;
    c->head_started = false;
    c->nreqs++;
    if (!c->keep_alive)
        c->close_after = true;
}

/* Queues res for req, logs it and moves on to the next request (or, after
 * a 101, to the protocol res switches to). */
static void respond(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res)
{
    int status = res->status;
    void (*upgrade)(appsrv__conn_t *, void *) = res->upgrade;
    void *upgrade_data = res->upgrade_data;
    if (res->close)
        c->keep_alive = false;
    uint64_t bytes = queue_response(c, req, res);
    uint64_t body = res->out_body;
    appsrv__res_dispose(res);
    log_once(c, req, status, bytes, body, false);
    finish_request(c);
    if (upgrade != NULL)
        upgrade(c, upgrade_data);
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
    lib_answer(c, req, res, 429);
    char v[16];
    snprintf(v, sizeof(v), "%d", wait_s);
    appsrv_res_add_header(res, "Retry-After", v);
    return true;
}

static void dispatch(appsrv__conn_t *c)
{
    http_ctx_t *x = ctx_of(c);
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
            lib_answer(c, req, res, 500);
    } else if (route(c, req, res)) {
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
            lib_answer(c, req, res, 500);
    }
    respond(c, req, res);
}

/* ------------------------------------------- deferred responses, streams */

/* Finishes the response the host held: the connection moves on to the
 * next request. res is no longer reachable by the host. */
static void finish_deferred(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res,
                            uint64_t bytes)
{
    int status = res->status;
    if (res->close)
        c->keep_alive = false;
    uint64_t body = res->out_body;
    appsrv__res_done(res); /* drops the host's reference: c stays open */
    appsrv__res_dispose(res);
    log_once(c, req, status, bytes, body, false);
    finish_request(c);
}

/* Frames up to len bytes of stream data; returns how many it took (0: no
 * room until the next flush). Called by appsrv__res_pump(). */
static size_t take_stream(const char *data, size_t len, void *ud)
{
    appsrv__conn_t *c = ud;
    http_ctx_t *x = ctx_of(c);
    if (x->req.is_head || x->res.no_body)
        return len; /* HEAD, 204, 304: never body bytes */
    size_t room = appsrv__out_room(c);
    if (room < 64)
        return 0;
    size_t n = len;
    if (n > room - 32)
        n = room - 32;
    char *p0 = appsrv__out_reserve(c, n + 32);
    if (p0 == NULL)
        return 0;
    char *p = p0;
    if (x->res.chunked) {
        static const char hex[] = "0123456789abcdef";
        char tmp[16];
        int k = 0;
        size_t v = n;
        do {
            tmp[k++] = hex[v & 15];
            v >>= 4;
        } while (v != 0);
        while (k > 0)
            *p++ = tmp[--k];
        *p++ = '\r';
        *p++ = '\n';
    }
    p = put(p, data, n);
    if (x->res.chunked) {
        *p++ = '\r';
        *p++ = '\n';
    }
    appsrv__out_commit(c, p0, (size_t)(p - p0));
    x->res.out_bytes += (uint64_t)(p - p0);
    x->res.out_body += n;
    return n;
}

/* Moves what the host has written into the output queue, framed. Returns
 * 1 on progress. */
static int pump_stream(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res)
{
    bool ended;
    int progress = appsrv__res_pump(res, take_stream, c, &ended);
    if (!ended)
        return progress;
    if (res->chunked && !req->is_head) {
        if (appsrv__out_copy(c, "0\r\n\r\n", 5) < 0)
            return progress; /* no room: after the next flush */
        res->out_bytes += 5;
    }
    finish_deferred(c, req, res, res->out_bytes);
    return 1;
}

/* The connection's side of a response the host holds. */
static int pump(appsrv__conn_t *c)
{
    http_ctx_t *x = ctx_of(c);
    appsrv_req_t *req = &x->req;
    appsrv_res_t *res = &x->res;
    appsrv__res_state_t st = appsrv__res_state(res);

    if (st.streaming) {
        if (!res->head_sent) {
            if (appsrv__out_room(c) < 512)
                return 0;
            if (res->status == 0)
                res->status = 200;
            res->out_bytes += queue_head(c, req, res, true);
            res->head_sent = true;
            c->wait_untimed = true; /* a stream may last: no response timeout */
            res->last_out_ms = c->w->loop.now_ms;
            if (res->hb_ms > 0 && res->hb_timer.cb != NULL)
                appsrv__timer_start(&c->w->loop, &res->hb_timer,
                                    c->w->loop.now_ms + (uint64_t)res->hb_ms);
        }
        return pump_stream(c, req, res) | 1;
    }
    if (!st.sent)
        return 0;
    if (res->status == 0)
        lib_answer(c, req, res, 500);
    uint64_t bytes = queue_head(c, req, res, false);
    finish_deferred(c, req, res, bytes);
    return 1;
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
            progress |= pump(c);
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
            http_ctx_t *x = ctx_of(c);
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
            int st = begin_body(c, (uint32_t)r);
            if (st != 0) {
                protocol_error(c, st);
                return 1;
            }
            progress = 1;
            if (c->close_after)
                return progress;
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
    return sizeof(http_ctx_t) + cfg->max_headers * sizeof(appsrv__hdr_t);
}

static void http_ctx_init(appsrv__conn_t *c)
{
    http_ctx_t *x = ctx_of(c);
    x->logged = false;
    x->filled = false;
    appsrv__res_reset(&x->res, c);
}

static void http_ctx_dispose(appsrv__conn_t *c)
{
    appsrv__res_dispose(&ctx_of(c)->res);
}

static void http_cancel(appsrv__conn_t *c)
{
    appsrv__res_cancel(&ctx_of(c)->res);
}

/* Requests that end with the connection are logged as aborted, with 499
 * (nginx's "client closed request") when no status went out. */
static void http_closed(appsrv__conn_t *c)
{
    if (c->ctx == NULL)
        return;
    http_ctx_t *x = ctx_of(c);
    /* The host may hold a response whose connection went on to linger
     * (it was answered 503, or its client left): refs tells, not state. */
    if (c->state == APPSRV__ST_WAIT || appsrv__conn_host_holds(c)) {
        log_once(c, &x->req, x->res.head_sent ? x->res.status : 499, x->res.out_bytes,
                 x->res.out_body, true);
        appsrv__res_conn_closed(&x->res);
    } else if (c->state == APPSRV__ST_BODY) {
        log_once(c, &x->req, 499, 0, 0, true); /* the client left mid-body */
    }
}

static void http_rebase(appsrv__conn_t *c, uint32_t shift)
{
    appsrv__req_rebase(&ctx_of(c)->req, shift);
}

static void http_drain(appsrv__conn_t *c)
{
    if (c->state == APPSRV__ST_WAIT && c->ctx != NULL)
        appsrv__res_stop(&ctx_of(c)->res);
}

static size_t http_refusal(char *buf, size_t cap, const char *date, const char *rid)
{
    static const char body[] = "Service Unavailable\n";
    if (cap < 256 + REQUEST_ID_ROOM)
        return 0;
    char *p = put_status_head(buf, 503, "Service Unavailable", 19, date);
    p = PUT_LIT(p, "Content-Type: text/plain\r\nContent-Length: 20\r\n"
                   "Retry-After: 1\r\nConnection: close\r\n");
    if (rid != NULL) {
        p = PUT_LIT(p, "X-Request-ID: ");
        p = put(p, rid, strlen(rid));
        p = PUT_LIT(p, "\r\n");
    }
    p = PUT_LIT(p, "\r\n");
    p = put(p, body, sizeof(body) - 1);
    return (size_t)(p - buf);
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
    .refusal = http_refusal,
};
