/* SPDX-License-Identifier: MIT */
/*
 * http_body.c - request bodies of HTTP/1.1 that do not arrive in place
 * with the head: chunked bodies decoded into one growing allocation
 * within the body limit, the 100-continue answer (RFC 9110 §10.1.1), and
 * appsrv_route_ex() routes: heads routed before the body, the
 * route's on_head and body limit, bodies streamed to the host in pieces
 * with APPSRV_PAUSE and appsrv_req_body_resume(), and bodies left unread
 * (the close after the answer). Called by http.c; calls http_out.c for
 * routing and answers, http_parse.c's chunked decoder and async.c.
 */
#include "http_body.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "async.h"
#include "conn.h"
#include "http_ctx.h"
#include "http_out.h"
#include "http_parse.h"
#include "mw.h"
#include "req.h"
#include "res.h"
#include "router.h"
#include "status.h"

/* ------------------------------------------- bodies read before dispatch */

/* The head asks for 100-continue and no body byte came yet: the 100
 * now, or the final answer at once (404/405: the body would be refused;
 * the connection then closes). RFC 9110 §10.1.1. */
void appsrv__http_continue(appsrv__conn_t *c)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    appsrv_req_t *req = &x->req;
    appsrv_res_t *res = &x->res;
    appsrv__res_dispose(res);
    if (x->head.target_form != APPSRV__TARGET_ASTERISK &&
        !x->routed && !appsrv__http_route(c, req, res)) {
        c->keep_alive = false;
        int status = res->status;
        uint64_t bytes = appsrv__http_queue_response(c, req, res);
        uint64_t body = res->out_body;
        appsrv__res_dispose(res);
        appsrv__http_log_once(c, req, status, bytes, body, false);
        c->close_after = true;
        c->must_linger = true; /* the client may send the body anyway */
        return;
    }
    appsrv__out_copy(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

/* A chunked body (RFC 9112 §7.1), decoded into one growing allocation
 * within the body limit. Returns 1 when complete, 0 when more is needed,
 * or -status. */
int appsrv__http_read_chunked(appsrv__conn_t *c)
{
    const appsrv_config_t *cfg = c->w->cfg;
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    appsrv_req_t *req = &x->req;
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

/* ------------------------------------------ deciding before the body,
 * streamed request bodies (appsrv_route_ex()). Everything here
 * runs only when some route was registered with appsrv_route_ex()
 * (w->route_ex): heads are then routed before the body is read. */

/* res for a refusal by on_head: rc 400..599 with the host's headers and
 * body (or the standard text), anything else a 500. */
static void refusal(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res, int rc)
{
    if (rc < 400 || rc > 599) {
        appsrv__http_lib_answer(c, req, res, 500);
        return;
    }
    res->status = rc;
    if (res->body_len == 0 && !res->body_is_ref) {
        const char *r = appsrv__reason(rc); /* the standard text */
        appsrv_res_add_header(res, "Content-Type", "text/plain");
        appsrv_res_set_body(res, r, strlen(r));
    }
}

static int run_on_head(appsrv__http_ctx_t *x, const appsrv__route_ex_t *ex)
{
    x->in_head = true;
    int rc = ex->opts.on_head(&x->req, &x->res, ex->user);
    x->in_head = false;
    return rc;
}

/* The router's handler of every appsrv_route_ex() route. A request that
 * announced a body went through appsrv__http_head_decide() already; one without a
 * body gets its on_head here, and on a stream_body route a body that
 * ends at once. */
int appsrv__route_ex_call(appsrv_req_t *req, appsrv_res_t *res, void *ex)
{
    const appsrv__route_ex_t *e = ex;
    appsrv__http_ctx_t *x = appsrv__container_of(req, appsrv__http_ctx_t, req);
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
static APPSRV__HTTP_COLD void answer_before_body(appsrv__conn_t *c, appsrv_req_t *req,
                                                 appsrv_res_t *res)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    x->streaming = false;
    if (appsrv__http_body_announced(&x->head)) {
        c->keep_alive = false;
        c->must_linger = true;
    }
    appsrv__http_respond(c, req, res);
}

/* For a head that announces a body (or expects 100-continue): routes it
 * and runs the route's on_head. Returns 1 when the request was answered
 * (refused), else 0 with the body limit set. Heads without a body are
 * routed as usual (their on_head runs in appsrv__route_ex_call()). */
APPSRV__HTTP_COLD int appsrv__http_head_decide(appsrv__conn_t *c)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
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
    if (!appsrv__http_route(c, req, res)) {
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
APPSRV__HTTP_COLD void appsrv__http_stream_dispatch(appsrv__conn_t *c)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    appsrv_req_t *req = &x->req;
    appsrv_res_t *res = &x->res;
    const appsrv__mw_t *mw = c->w->mw;
    const appsrv__route_ex_t *ex = req->match.user;
    int hrc;
    if (appsrv__unlikely(mw != NULL && mw->any_before) &&
        (hrc = appsrv__mw_before(mw, req, res)) != 0) {
        if (hrc < 0 || res->status == 0)
            appsrv__http_lib_answer(c, req, res, 500);
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
            if (c->w->draining) {
                appsrv__http_stream_stop(c);
                appsrv__res_stop(res);
            }
            return;
        }
        if (rc < 0 || res->status == 0)
            appsrv__http_lib_answer(c, req, res, 500);
    }
    answer_before_body(c, req, res);
}

/* The body's last call: end 1 (complete) or an error. Returns 0. */
static int stream_end(appsrv__conn_t *c, int end)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
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
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
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
APPSRV__HTTP_COLD int appsrv__http_stream_step(appsrv__conn_t *c)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    appsrv__http_head_t *h = &x->head;
    appsrv_req_t *req = &x->req;
    int progress = appsrv__http_pump(c);
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
APPSRV__HTTP_COLD void appsrv__http_stream_gone(appsrv__conn_t *c)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    if (x->streaming && !x->body_done) {
        x->body_done = true;
        if (x->body_cb != NULL)
            x->body_cb(&x->req, NULL, 0, APPSRV_ECANCELED, x->body_ud);
    }
}

/* A graceful stop began (or had begun when the handler took the body)
 * while the body is still coming or paused: its last call is -ESHUTDOWN,
 * the host answers, the rest is not read and the connection closes after
 * the answer (stream_end). */
APPSRV__HTTP_COLD void appsrv__http_stream_stop(appsrv__conn_t *c)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    if (c->state == APPSRV__ST_BODY && x->streaming && !x->body_done)
        stream_end(c, -ESHUTDOWN);
}

static void resume_cb(appsrv__aitem_t *it)
{
    appsrv__http_ctx_t *x = appsrv__container_of(it, appsrv__http_ctx_t, resume_item);
    appsrv__conn_t *c = x->req.conn;
    if (!x->paused)
        return;
    x->paused = false;
    if (!c->closed && c->state == APPSRV__ST_BODY)
        appsrv__conn_drive(c);
}

static appsrv__http_ctx_t *http_ctx_of_req(const appsrv_req_t *req)
{
    if (req == NULL || req->proto != APPSRV_PROTO_HTTP || req->conn == NULL ||
        req->conn->proto->id != APPSRV_PROTO_HTTP)
        return NULL;
    return appsrv__container_of(req, appsrv__http_ctx_t, req);
}

int appsrv_req_set_max_body(appsrv_req_t *req, uint64_t max)
{
    appsrv__http_ctx_t *x = http_ctx_of_req(req);
    if (x == NULL || !req->conn->w->route_ex || !x->in_head)
        return APPSRV_ESTATE;
    x->body_limit = max;
    return 0;
}

int appsrv_req_body_stream(appsrv_req_t *req, appsrv_body_cb cb, void *ud)
{
    appsrv__http_ctx_t *x = http_ctx_of_req(req);
    if (x == NULL || !req->conn->w->route_ex || !x->in_stream_handler)
        return APPSRV_ESTATE;
    x->body_cb = cb;
    x->body_ud = ud;
    return 0;
}

int appsrv_req_body_resume(appsrv_req_t *req)
{
    appsrv__http_ctx_t *x = http_ctx_of_req(req);
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

APPSRV__HTTP_COLD void appsrv__http_resume_dispose(appsrv__conn_t *c)
{
    appsrv__async_remove(&c->w->async, &appsrv__http_ctx(c)->resume_item);
}

