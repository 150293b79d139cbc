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
 * queued. Routes made with appsrv_route_ex() are routed at the head:
 * their on_head hook decides before any body byte (and before 100), their
 * limit replaces max_body, and a streamed body is handed to the host in
 * pieces with pause/resume (the input block is reused, never grown). A
 * content coding (gzip.c) set by an after hook is run on each stream write
 * here. Invariant: a request's views point into rbuf or the body buffer,
 * both kept until its response has been written.
 */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    /* appsrv_route_ex() routes; routed and streaming are reset with
     * every head, the rest is valid while streaming: */
    bool routed;    /* matched before the body: req->match is set */
    bool streaming; /* the body goes to body_cb as it comes */
    bool in_head;   /* on_head is running */
    bool in_stream_handler;
    bool paused;    /* body_cb asked for APPSRV_PAUSE */
    bool body_done; /* the body's last call was made */
    uint64_t body_limit; /* this request's max body */
    uint64_t body_seen;  /* streamed body bytes delivered */
    appsrv_body_cb body_cb;
    void *body_ud;
    bool resume_init;            /* resume_item is set up (once per block) */
    appsrv__aitem_t resume_item; /* appsrv_req_body_resume() */
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

/* Files up to this size are read into the output block right behind
 * their head (one write for both; the fd is closed at once); larger ones
 * become a file segment sent with sendfile as the socket drains. */
#define FILE_COPY_MAX (32u * 1024)

/* Queues the file body of res (res->file_fd, taken) unless the request
 * is HEAD or the status has no content. Returns the bytes queued. */
static uint64_t queue_file(appsrv__conn_t *c, const appsrv_req_t *req, appsrv_res_t *res,
                           bool no_content)
{
    int fd = res->file_fd;
    size_t len = (size_t)res->file_len;
    if (req->is_head || no_content || len == 0)
        return 0; /* dispose closes the fd */
    res->file_fd = -1;
    char *dst = len <= FILE_COPY_MAX ? appsrv__out_reserve(c, len) : NULL;
    if (dst != NULL) {
        ssize_t n;
        do
            n = pread(fd, dst, len, res->file_off);
        while (n < 0 && errno == EINTR);
        close(fd);
        if (n != (ssize_t)len) {
            c->close_after = true; /* shrank or unreadable: the client sees a short body */
            if (n <= 0)
                return 0;
        }
        appsrv__out_commit(c, dst, (size_t)n);
        res->out_body += (uint64_t)n;
        return (uint64_t)n;
    }
    if (appsrv__out_file(c, fd, res->file_off, len) < 0) {
        c->close_after = true; /* cannot happen: room checked first */
        return 0;
    }
    res->out_body += len;
    return len;
}

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
        p += appsrv__fmt_u64(p, appsrv__unlikely(res->file_fd >= 0) ? res->file_len : res->body_len);
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
    if (appsrv__unlikely(res->file_fd >= 0) && !stream)
        hlen += queue_file(c, req, res, no_content);
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
    x->routed = x->streaming = false;
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
    if (need_more && h->expect_continue && h->minor >= 1 && avail == 0) {
        appsrv_req_t *req = &x->req;
        appsrv_res_t *res = &x->res;
        appsrv__res_dispose(res);
        if (x->head.target_form != APPSRV__TARGET_ASTERISK &&
            !x->routed && !route(c, req, res)) {
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
                /* the route's or request's limit (appsrv_route_ex) */
                uint64_t limit = appsrv__unlikely(c->w->route_ex) ? x->body_limit : cfg->max_body;
                if (c->body_len + dlen > limit)
                    return -413;
                if (c->body_len + dlen > c->body_cap) {
                    size_t ncap = c->body_cap ? c->body_cap : 4096;
                    while (ncap < c->body_len + dlen)
                        ncap *= 2;
                    if (ncap > limit)
                        ncap = (size_t)limit;
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

/* respond() is on every request's path and, with a second (cold) caller
 * below, no longer called once: keep it inlined into dispatch(). The
 * issue 16 code is kept out of line. */
#if defined(__GNUC__)
#define HTTP_INLINE inline __attribute__((always_inline))
#define HTTP_COLD __attribute__((noinline, cold))
#else
#define HTTP_INLINE inline
#define HTTP_COLD
#endif

/* Queues res for req, logs it and moves on to the next request (or, after
 * a 101, to the protocol res switches to). */
static HTTP_INLINE void respond(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res)
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
    } else if (appsrv__unlikely(x->routed) || route(c, req, res)) {
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

/* "<hex size>\r\n", a chunk's size line (RFC 9112 §7.1). */
static char *put_chunk_size(char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    int k = 0;
    do {
        tmp[k++] = hex[n & 15];
        n >>= 4;
    } while (n != 0);
    while (k > 0)
        *p++ = tmp[--k];
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* Largest input encoded per call: bounds the encoder's output to what one
 * output block holds. */
#define CODED_MAX_IN (8 * 1024)

/* Stream data through the response's content coding (gzip.c), flushed so
 * the client can decode it at once, framed as one chunk; finish: the
 * coding's end (len 0), after which the coding is released. Returns the
 * input bytes taken (0: no room until the next flush). */
static size_t take_coded(appsrv__conn_t *c, appsrv_res_t *res, const char *data, size_t len,
                         bool finish)
{
    const appsrv__coding_t *cd = res->coding;
    size_t room = appsrv__out_room(c);
    size_t n = len < CODED_MAX_IN ? len : CODED_MAX_IN;
    while (n > 64 && cd->bound(n) + 32 > room)
        n /= 2;
    size_t cap = cd->bound(n);
    if (cap + 32 > room)
        return 0;
    char *p0 = appsrv__out_reserve(c, cap + 32);
    if (p0 == NULL)
        return 0;
    /* Encoded after room for the size line, then moved up to it. */
    long m = cd->encode(res->coding_state, data, n, finish, p0 + 20, cap);
    if (finish) {
        cd->free(res->coding_state);
        res->coding = NULL;
        res->coding_state = NULL;
    }
    if (m < 0) {
        c->close_after = true; /* the body cannot go on: cut it short */
        return finish ? 1 : len;
    }
    if (m == 0)
        return n; /* nothing out yet: no empty chunk (it would end the body) */
    char *p = p0;
    if (res->chunked)
        p = put_chunk_size(p, (size_t)m);
    memmove(p, p0 + 20, (size_t)m);
    p += m;
    if (res->chunked) {
        *p++ = '\r';
        *p++ = '\n';
    }
    appsrv__out_commit(c, p0, (size_t)(p - p0));
    res->out_bytes += (uint64_t)(p - p0);
    res->out_body += (uint64_t)m;
    return finish ? 1 : n;
}

/* Frames up to len bytes of stream data; returns how many it took (0: no
 * room until the next flush). Called by appsrv__res_pump(). */
static size_t take_stream(const char *data, size_t len, void *ud)
{
    appsrv__conn_t *c = ud;
    http_ctx_t *x = ctx_of(c);
    if (x->req.is_head || x->res.no_body)
        return len; /* HEAD, 204, 304: never body bytes */
    if (appsrv__unlikely(x->res.coding != NULL))
        return take_coded(c, &x->res, data, len, false);
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
    if (x->res.chunked)
        p = put_chunk_size(p, n);
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
    if (appsrv__unlikely(res->coding != NULL) && !req->is_head && !res->no_body &&
        take_coded(c, res, NULL, 0, true) == 0)
        return progress; /* no room for the coding's end: after the next flush */
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

/* ------------------------------------------ deciding before the body,
 * streamed request bodies (appsrv_route_ex(), issue 16). Everything here
 * runs only when some route was registered with appsrv_route_ex()
 * (w->route_ex): heads are then routed before the body is read. */

static bool body_announced(const appsrv__http_head_t *h)
{
    return h->is_chunked || (h->has_content_length && h->content_length > 0);
}

/* res for a refusal by on_head: rc 400..599 with the host's headers and
 * body (or the standard text), anything else a 500. */
static void refusal(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res, int rc)
{
    if (rc < 400 || rc > 599) {
        lib_answer(c, req, res, 500);
        return;
    }
    res->status = rc;
    if (res->body_len == 0 && !res->body_is_ref) {
        const char *r = appsrv__reason(rc); /* the standard text */
        appsrv_res_add_header(res, "Content-Type", "text/plain");
        appsrv_res_set_body(res, r, strlen(r));
    }
}

static int run_on_head(http_ctx_t *x, const appsrv__route_ex_t *ex)
{
    x->in_head = true;
    int rc = ex->opts.on_head(&x->req, &x->res, ex->user);
    x->in_head = false;
    return rc;
}

/* The router's handler of every appsrv_route_ex() route. A request that
 * announced a body went through head_decide() already; one without a
 * body gets its on_head here, and on a stream_body route a body that
 * ends at once. */
int appsrv__route_ex_call(appsrv_req_t *req, appsrv_res_t *res, void *ex)
{
    const appsrv__route_ex_t *e = ex;
    http_ctx_t *x = appsrv__container_of(req, http_ctx_t, req);
    if (x->routed)
        return e->handler(req, res, e->user);
    if (e->opts.on_head != NULL) {
        int rc = run_on_head(x, e);
        if (rc != 0) {
            refusal(req->conn, req, res, rc);
            return 0;
        }
    }
    if (!e->opts.stream_body)
        return e->handler(req, res, e->user);
    x->body_cb = NULL;
    x->in_stream_handler = true;
    int rc = e->handler(req, res, e->user);
    x->in_stream_handler = false;
    if (rc == APPSRV_LATER && x->body_cb != NULL)
        x->body_cb(req, NULL, 0, 1, x->body_ud); /* the (empty) body ended */
    return rc;
}

/* Answers res before the body was read: RFC 9112 §9.6, a body that was
 * announced and will not be read means the connection closes after the
 * answer (lingering, so the answer is not lost to a reset). */
static HTTP_COLD void answer_before_body(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res)
{
    http_ctx_t *x = ctx_of(c);
    x->streaming = false;
    if (body_announced(&x->head)) {
        c->keep_alive = false;
        c->must_linger = true;
    }
    respond(c, req, res);
}

/* For a head that announces a body (or expects 100-continue): routes it
 * and runs the route's on_head. Returns 1 when the request was answered
 * (refused), else 0 with the body limit set. Heads without a body are
 * routed as usual (their on_head runs in appsrv__route_ex_call()). */
static HTTP_COLD int head_decide(appsrv__conn_t *c)
{
    http_ctx_t *x = ctx_of(c);
    appsrv__http_head_t *h = &x->head;
    appsrv_req_t *req = &x->req;
    appsrv_res_t *res = &x->res;
    x->routed = x->streaming = x->paused = x->body_done = false;
    x->in_head = x->in_stream_handler = false;
    x->body_limit = c->w->cfg->max_body;
    x->body_seen = 0;
    x->body_cb = NULL;
    x->body_ud = NULL;
    if (h->target_form == APPSRV__TARGET_ASTERISK)
        return 0;
    if (!route(c, req, res)) {
        appsrv__res_dispose(res); /* routed again (404/405) after the body */
        return 0;
    }
    x->routed = true;
    if (req->match.handler != appsrv__route_ex_call)
        return 0;
    const appsrv__route_ex_t *ex = req->match.user;
    if (ex->opts.max_body > 0)
        x->body_limit = ex->opts.max_body;
    x->streaming = ex->opts.stream_body;
    if (ex->opts.on_head == NULL)
        return 0;
    int rc = run_on_head(x, ex);
    if (rc == 0)
        return 0;
    c->keep_alive = h->minor >= 1 ? !h->conn_close : (h->conn_keep_alive && !h->conn_close);
    if (c->w->draining)
        c->keep_alive = false;
    refusal(c, req, res, rc);
    answer_before_body(c, req, res);
    return 1;
}

static void resume_cb(appsrv__aitem_t *it);

/* The handler of a stream_body route, right after the head (and the
 * 100 Continue, if any). */
static HTTP_COLD void stream_dispatch(appsrv__conn_t *c)
{
    http_ctx_t *x = ctx_of(c);
    appsrv_req_t *req = &x->req;
    appsrv_res_t *res = &x->res;
    const appsrv__mw_t *mw = c->w->mw;
    const appsrv__route_ex_t *ex = req->match.user;
    int hrc;
    if (appsrv__unlikely(mw != NULL && mw->any_before) &&
        (hrc = appsrv__mw_before(mw, req, res)) != 0) {
        if (hrc < 0 || res->status == 0)
            lib_answer(c, req, res, 500);
    } else {
        if (!x->resume_init) {
            memset(&x->resume_item, 0, sizeof(x->resume_item));
            x->resume_item.cb = resume_cb;
            x->resume_init = true;
        }
        x->in_stream_handler = true;
        int rc = ex->handler(req, res, ex->user);
        x->in_stream_handler = false;
        if (rc == APPSRV_LATER) {
            /* The body follows while the host holds res (state BODY). */
            appsrv__res_defer(res);
            appsrv__conn_hold(c);
            c->wait_untimed = false;
            if (c->w->draining)
                appsrv__res_stop(res);
            return;
        }
        if (rc < 0 || res->status == 0)
            lib_answer(c, req, res, 500);
    }
    answer_before_body(c, req, res);
}

/* The body's last call: end 1 (complete) or an error. Returns 0. */
static int stream_end(appsrv__conn_t *c, int end)
{
    http_ctx_t *x = ctx_of(c);
    x->body_done = true;
    if (x->body_cb != NULL)
        x->body_cb(&x->req, NULL, 0, end, x->body_ud);
    if (end < 0) {
        c->keep_alive = false;
        c->must_linger = true;
    }
    c->state = APPSRV__ST_WAIT; /* the host finishes res; input waits */
    if (end == -EMSGSIZE && x->res.head_sent) {
        /* A 200 is out: only a cut says "incomplete". What is framed goes
         * out, the last chunk never does (nothing more is processed). */
        c->close_after = true;
    }
    return 0;
}

/* Hands data[0..n) to the body callback, within the limit. Returns 0 to
 * go on, 1 to stop delivering (paused, or stopped by the host), or the
 * negative end code to report. */
static int stream_deliver(appsrv__conn_t *c, const char *data, size_t n)
{
    http_ctx_t *x = ctx_of(c);
    if (x->body_seen + n > x->body_limit)
        return -EMSGSIZE;
    x->body_seen += n;
    if (x->body_cb == NULL)
        return 0; /* nobody asked for it: dropped */
    int rc = x->body_cb(&x->req, data, n, 0, x->body_ud);
    if (rc == APPSRV_PAUSE) {
        x->paused = true;
        return 1;
    }
    if (rc < 0) {
        /* The host stopped: no more calls, no more reading. */
        x->body_done = true;
        c->keep_alive = false;
        c->must_linger = true;
        c->state = APPSRV__ST_WAIT;
        return 1;
    }
    return 0;
}

/* A streamed body in state BODY: the response side first (the host may
 * answer while the body comes), then the buffered body bytes, which are
 * dropped from rbuf once delivered (memory stays one input block).
 * Returns 1 on progress, 0 when waiting. */
static HTTP_COLD int stream_step(appsrv__conn_t *c)
{
    http_ctx_t *x = ctx_of(c);
    appsrv__http_head_t *h = &x->head;
    appsrv_req_t *req = &x->req;
    int progress = pump(c);
    if (c->state != APPSRV__ST_BODY) {
        /* Finished before the body ended: the rest is never read. */
        x->streaming = false;
        if (!x->body_done) {
            c->keep_alive = false;
            c->close_after = true;
            c->must_linger = true;
        }
        return 1;
    }
    char *p = c->rbuf + c->rpos + c->hlen;
    size_t avail = c->rlen - c->rpos - c->hlen;
    size_t used = 0;
    int end = 0;
    while (!x->paused && !x->body_done && end == 0) {
        int rc = 0;
        if (!h->is_chunked) {
            uint64_t left = (h->has_content_length ? h->content_length : 0) - x->body_seen;
            if (left == 0) {
                end = 1;
                break;
            }
            if (used == avail)
                break;
            size_t n = avail - used < left ? avail - used : (size_t)left;
            rc = stream_deliver(c, p + used, n);
            if (rc >= 0) {
                used += n;
                req->in_bytes += n;
            }
        } else {
            if (x->chunk.done) {
                end = 1;
                break;
            }
            if (used == avail)
                break;
            size_t dlen = 0;
            int64_t n = appsrv__chunked_parse(&x->chunk, p + used, avail - used,
                                              c->w->cfg->max_head, &dlen);
            if (n < 0) {
                end = APPSRV_EPARSE;
                break;
            }
            if (dlen > 0)
                rc = stream_deliver(c, p + used, dlen);
            if (rc >= 0) {
                used += (size_t)n;
                req->in_bytes += (uint64_t)n;
            }
        }
        if (rc < 0)
            end = rc;
        progress = 1;
    }
    if (used > 0) {
        memmove(p, p + used, avail - used);
        c->rlen -= (uint32_t)used;
    }
    if (end != 0) {
        stream_end(c, end);
        progress = 1;
    }
    return progress;
}

/* The connection closes: a body still coming ends with ECANCELED. */
static HTTP_COLD void stream_gone(appsrv__conn_t *c)
{
    http_ctx_t *x = ctx_of(c);
    if (x->streaming && !x->body_done) {
        x->body_done = true;
        if (x->body_cb != NULL)
            x->body_cb(&x->req, NULL, 0, APPSRV_ECANCELED, x->body_ud);
    }
}

static void resume_cb(appsrv__aitem_t *it)
{
    http_ctx_t *x = appsrv__container_of(it, http_ctx_t, resume_item);
    appsrv__conn_t *c = x->req.conn;
    if (!x->paused)
        return;
    x->paused = false;
    if (!c->closed && c->state == APPSRV__ST_BODY)
        appsrv__conn_drive(c);
}

static http_ctx_t *http_ctx_of_req(const appsrv_req_t *req)
{
    if (req == NULL || req->proto != APPSRV_PROTO_HTTP || req->conn == NULL ||
        req->conn->proto != &appsrv__http_proto)
        return NULL;
    return appsrv__container_of(req, http_ctx_t, req);
}

int appsrv_req_set_max_body(appsrv_req_t *req, uint64_t max)
{
    http_ctx_t *x = http_ctx_of_req(req);
    if (x == NULL || !req->conn->w->route_ex || !x->in_head)
        return APPSRV_ESTATE;
    x->body_limit = max;
    return 0;
}

int appsrv_req_body_stream(appsrv_req_t *req, appsrv_body_cb cb, void *ud)
{
    http_ctx_t *x = http_ctx_of_req(req);
    if (x == NULL || !req->conn->w->route_ex || !x->in_stream_handler)
        return APPSRV_ESTATE;
    x->body_cb = cb;
    x->body_ud = ud;
    return 0;
}

int appsrv_req_body_resume(appsrv_req_t *req)
{
    http_ctx_t *x = http_ctx_of_req(req);
    if (x == NULL || !req->conn->w->route_ex)
        return -EINVAL;
    if (!x->resume_init)
        return 0; /* no body was streamed on this connection: nothing paused */
    appsrv__async_t *a = &req->conn->w->async;
    appsrv__async_lock(a);
    appsrv__async_post_locked(a, &x->resume_item);
    appsrv__async_unlock(a);
    return 0;
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
            if (appsrv__unlikely(c->w->route_ex)) {
                if (body_announced(&x->head) || x->head.expect_continue) {
                    if (head_decide(c)) {
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
                stream_dispatch(c);
                continue;
            }
        }
        if (appsrv__unlikely(ctx_of(c)->streaming)) {
            int sr = stream_step(c);
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
    return sizeof(http_ctx_t) + cfg->max_headers * sizeof(appsrv__hdr_t);
}

static void http_ctx_init(appsrv__conn_t *c)
{
    http_ctx_t *x = ctx_of(c);
    x->logged = false;
    x->filled = false;
    x->routed = x->streaming = x->resume_init = false;
    appsrv__res_reset(&x->res, c);
}

static HTTP_COLD void resume_dispose(appsrv__conn_t *c)
{
    appsrv__async_remove(&c->w->async, &ctx_of(c)->resume_item);
}

static void http_ctx_dispose(appsrv__conn_t *c)
{
    if (appsrv__unlikely(ctx_of(c)->resume_init))
        resume_dispose(c);
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
    if (appsrv__unlikely(ctx_of(c)->streaming))
        stream_gone(c); /* the body callback hears first, then cancel */
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
