/* SPDX-License-Identifier: MIT */
/*
 * http_out.c - the response side of HTTP/1.1: frames status line, Server,
 * Date, Content-Length or chunked coding, Connection and the body (inline,
 * referenced, or a file read in or sent with sendfile) into the
 * connection's output queue; the library's own answers (error responder,
 * routing misses); and the responses the host holds: deferred ones framed
 * when sent, streams framed as the host writes them, through the content
 * coding (gzip.c) when an after hook set one. Calls conn.h's output
 * queue, res.c, mw.c (after hooks, error responder) and router.c.
 */
#include "http_out.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "http_ctx.h"
#include "loop.h"
#include "mw.h"
#include "req.h"
#include "res.h"
#include "router.h"
#include "status.h"

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
uint64_t appsrv__http_queue_simple(appsrv__conn_t *c, int status, const appsrv_req_t *req)
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
uint64_t appsrv__http_queue_head(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res,
                                 bool stream)
{
    const appsrv__mw_t *mw = c->w->mw;
    if (appsrv__unlikely(mw != NULL && mw->any_after))
        appsrv__mw_after(mw, appsrv__http_ctx(c)->filled ? req : NULL, res);
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
        p +=
            appsrv__fmt_u64(p, appsrv__unlikely(res->file_fd >= 0) ? res->file_len : res->body_len);
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
void appsrv__http_lib_answer(appsrv__conn_t *c, const appsrv_req_t *req, appsrv_res_t *res,
                             int status)
{
    const appsrv__mw_t *mw = c->w->mw;
    if (appsrv__likely(mw == NULL || mw->on_error == NULL))
        appsrv__res_simple(res, status);
    else
        appsrv__mw_error(mw, res, status, NULL, req, req->method, req->target);
}

/* Routes req. On a miss, fills res with 404 or 405 (+ Allow) and returns
 * false. */
bool appsrv__http_route(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res)
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
        appsrv__http_lib_answer(c, req, res, 405);
        appsrv_res_add_header(res, "Allow", allow);
    } else {
        appsrv__http_lib_answer(c, req, res, 404);
    }
    return false;
}


void appsrv__http_finish_request(appsrv__conn_t *c)
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
    appsrv__http_log_once(c, req, status, bytes, body, false);
    appsrv__http_finish_request(c);
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
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
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
int appsrv__http_pump(appsrv__conn_t *c)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    appsrv_req_t *req = &x->req;
    appsrv_res_t *res = &x->res;
    appsrv__res_state_t st = appsrv__res_state(res);

    if (st.streaming) {
        if (!res->head_sent) {
            if (appsrv__out_room(c) < 512)
                return 0;
            if (res->status == 0)
                res->status = 200;
            res->out_bytes += appsrv__http_queue_head(c, req, res, true);
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
        appsrv__http_lib_answer(c, req, res, 500);
    uint64_t bytes = appsrv__http_queue_head(c, req, res, false);
    finish_deferred(c, req, res, bytes);
    return 1;
}

/* --------------------------------------------------------------- refusal */

size_t appsrv__http_refusal(char *buf, size_t cap, const char *date, const char *rid)
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

