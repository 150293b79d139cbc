/* SPDX-License-Identifier: MIT */
/*
 * line.c - the line protocol on top of a connection: a request is one
 * line ending in "\n" (a "\r" before it is dropped); the first word is the
 * command (method and route), the rest after one space the body. The
 * handler's status, reason and body become one reply line
 * "CODE REASON[ BODY]\n". Called by conn.c with buffered input; uses the
 * same request/response objects as http.c. Invariant: a reply is always
 * exactly one line, so a body holding CR or LF is refused with 500
 * rather than breaking the framing for the client.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const appsrv__line_route_t *find_route(const appsrv_server_t *srv, const char *word,
                                              size_t len)
{
    for (size_t i = 0; i < srv->nline_routes; i++) {
        const appsrv__line_route_t *r = &srv->line_routes[i];
        if (r->word_len == len && memcmp(r->word, word, len) == 0)
            return r;
    }
    return NULL;
}

static size_t fmt_status(char *p, int status)
{
    p[0] = (char)('0' + status / 100 % 10);
    p[1] = (char)('0' + status / 10 % 10);
    p[2] = (char)('0' + status % 10);
    return 3;
}

/* Queues "CODE REASON[ BODY]\n". Returns the bytes queued. */
static uint64_t reply(appsrv__conn_t *c, int status, const char *reason, const char *body,
                      size_t blen)
{
    if (reason == NULL)
        reason = appsrv__reason(status);
    size_t rlen = strlen(reason);
    size_t need = 3 + 1 + rlen + (blen ? 1 + blen : 0) + 1;
    char *mem;
    char *p0 = appsrv__out_begin(c, need, &mem);
    if (p0 == NULL) {
        c->close_after = true;
        return 0;
    }
    char *p = p0;
    p += fmt_status(p, status);
    *p++ = ' ';
    memcpy(p, reason, rlen);
    p += rlen;
    if (blen) {
        *p++ = ' ';
        memcpy(p, body, blen);
        p += blen;
    }
    *p++ = '\n';
    appsrv__out_finish(c, p0, need, mem);
    return need;
}

void appsrv__line_error(appsrv__conn_t *c, int status)
{
    uint64_t bytes = reply(c, status, NULL, NULL, 0);
    c->close_after = true;
    c->must_linger = true;
    appsrv__log_request(c, NULL, status, bytes);
}

/* Queues the reply for a finished handler call, or 500. */
static void line_respond(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res, int rc)
{
    int status = res->status;
    const char *reason = res->reason;
    bool ok = rc == 0 && status != 0;
    for (size_t i = 0; ok && i < res->body_len; i++)
        if (res->body[i] == '\n' || res->body[i] == '\r')
            ok = false; /* would break the one-line framing */
    if (reason != NULL && strpbrk(reason, "\r\n") != NULL)
        ok = false;
    uint64_t bytes;
    if (!ok) {
        status = 500;
        bytes = reply(c, status, NULL, NULL, 0);
    } else {
        bytes = reply(c, status, reason, res->body, res->body_len);
    }
    if (res->close)
        c->close_after = true;
    appsrv__res_dispose(res);
    appsrv__log_request(c, req, status, bytes);
}

/* Returns true when the handler deferred its response. */
static bool handle_line(appsrv__conn_t *c, const char *line, size_t len)
{
    appsrv_server_t *srv = c->w->srv;
    appsrv__rctx_t *x = appsrv__ctx(c);
    appsrv_req_t *req = &x->req;
    appsrv_res_t *res = &x->res;

    memset(req, 0, sizeof(*req));
    req->conn = c;
    req->proto = APPSRV_PROTO_LINE;
    req->start_us = srv->cfg.access_log != NULL ? appsrv__now_us() : 0;
    req->target = (appsrv_str_t){line, 0};
    req->body = (appsrv_str_t){"", 0};
    if (len == 0) {
        appsrv__log_request(c, req, 400, reply(c, 400, NULL, NULL, 0));
        return false;
    }
    const char *sp = memchr(line, ' ', len);
    size_t wlen = sp != NULL ? (size_t)(sp - line) : len;
    req->method = (appsrv_str_t){line, wlen};
    req->path = req->method;
    if (sp != NULL)
        req->body = (appsrv_str_t){sp + 1, len - wlen - 1};

    const appsrv__line_route_t *r = find_route(srv, line, wlen);
    if (r == NULL) {
        appsrv__log_request(c, req, 404, reply(c, 404, NULL, NULL, 0));
        return false;
    }
    appsrv__res_dispose(res);
    int rc = r->handler(req, res, r->user);
    if (rc == APPSRV_LATER) {
        appsrv__conn_wait(c, res);
        return true;
    }
    line_respond(c, req, res, rc);
    return false;
}

/* A deferred reply: sent once the host calls appsrv_res_send(). */
static void line_pump(appsrv__conn_t *c)
{
    appsrv__rctx_t *x = appsrv__ctx(c);
    pthread_mutex_lock(&c->w->qlock);
    bool sent = x->res.sent;
    pthread_mutex_unlock(&c->w->qlock);
    if (!sent)
        return;
    appsrv__res_unqueue(&x->res);
    line_respond(c, &x->req, &x->res, 0);
    c->host_holds = false;
    c->state = APPSRV__ST_HEAD;
    c->rpos += c->bpos;
    c->bpos = 0;
    c->nreqs++;
}

int appsrv__line_process(appsrv__conn_t *c)
{
    appsrv_server_t *srv = c->w->srv;
    size_t max_line = srv->cfg.max_line;
    int progress = 0;

    while (!c->closing && !c->close_after) {
        if (c->state == APPSRV__ST_WAIT) {
            line_pump(c);
            if (c->state == APPSRV__ST_WAIT)
                return progress;
            progress = 1;
            continue;
        }
        if (c->rblk == NULL || c->rlen == c->rpos)
            return progress;
        if (appsrv__out_room(c) < 256)
            return progress;
        const char *start = c->rbuf + c->rpos;
        size_t avail = c->rlen - c->rpos;
        /* bpos: bytes already searched for '\n' (no rescans). */
        const char *nl = memchr(start + c->bpos, '\n', avail - c->bpos);
        if (nl == NULL) {
            c->bpos = (uint32_t)avail;
            /* +1: a line of max_line bytes may still get its "\r". */
            if (avail > max_line + 1 || (c->rlen == srv->block_data_cap && c->rpos == 0)) {
                appsrv__line_error(c, 413);
                return 1;
            }
            return progress;
        }
        size_t len = (size_t)(nl - start);
        size_t consumed = len + 1;
        if (len > 0 && start[len - 1] == '\r')
            len--;
        if (len > max_line) {
            appsrv__line_error(c, 413);
            return 1;
        }
        c->bpos = 0;
        progress = 1;
        if (handle_line(c, start, len)) {
            c->bpos = (uint32_t)consumed; /* advanced when the reply goes */
            continue;
        }
        c->rpos += (uint32_t)consumed;
        c->nreqs++;
    }
    return progress;
}
