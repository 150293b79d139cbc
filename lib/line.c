/* SPDX-License-Identifier: MIT */
/*
 * line.c - the line protocol as a protocol table (proto.h), and its
 * command routes: a request is one line ending in "\n" (a "\r" before it
 * is dropped); the first word is the command (method and route), the
 * rest after one space the body. The handler's status, reason and body
 * become one reply line "CODE REASON[ BODY]\n". Called by conn.c with
 * buffered input; uses the same request/response objects as http.c.
 * Invariant: a reply is always exactly one line, so a body holding CR or
 * LF is refused with 500 rather than breaking the framing for the client.
 */
#include "line.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "req.h"
#include "res.h"
#include "stats.h"
#include "status.h"

typedef struct line_ctx {
    struct appsrv_req req;
    struct appsrv_res res;
    bool logged;
} line_ctx_t;

static inline line_ctx_t *ctx_of(appsrv__conn_t *c)
{
    return (line_ctx_t *)c->ctx;
}

/* ----------------------------------------------------------------- routes */

int appsrv__line_routes_add(appsrv__line_routes_t *t, const char *command,
                            appsrv_handler_cb handler, void *user)
{
    if (command == NULL || handler == NULL || command[0] == '\0')
        return -EINVAL;
    size_t n = strlen(command);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)command[i];
        if (ch <= ' ' || ch == 0x7f)
            return -EINVAL;
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].word_len == n && memcmp(t->v[i].word, command, n) == 0)
            return -EEXIST;
    appsrv__line_route_t *r = realloc(t->v, (t->n + 1) * sizeof(*t->v));
    if (r == NULL)
        return -ENOMEM;
    t->v = r;
    char *word = malloc(n + 1);
    if (word == NULL)
        return -ENOMEM;
    memcpy(word, command, n + 1);
    r[t->n++] = (appsrv__line_route_t){word, n, handler, user};
    return 0;
}

void appsrv__line_routes_free(appsrv__line_routes_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].word);
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

static const appsrv__line_route_t *find_route(const appsrv__line_routes_t *t, const char *word,
                                              size_t len)
{
    for (size_t i = 0; i < t->n; i++) {
        const appsrv__line_route_t *r = &t->v[i];
        if (r->word_len == len && memcmp(r->word, word, len) == 0)
            return r;
    }
    return NULL;
}

/* ---------------------------------------------------------------- replies */

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
    p[0] = (char)('0' + status / 100 % 10);
    p[1] = (char)('0' + status / 10 % 10);
    p[2] = (char)('0' + status % 10);
    p += 3;
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

/* body: the reply's payload bytes (after "CODE REASON "). */
static void log_once(appsrv__conn_t *c, const appsrv_req_t *req, int status, uint64_t bytes,
                     uint64_t body, bool aborted)
{
    if (c->ctx != NULL) {
        line_ctx_t *x = ctx_of(c);
        if (x->logged)
            return;
        x->logged = true;
    }
    appsrv__log_request(c, req, status, bytes, body, aborted);
}

static void line_error(appsrv__conn_t *c, int status)
{
    uint64_t bytes = reply(c, status, NULL, NULL, 0);
    c->close_after = true;
    c->must_linger = true;
    if (c->state == APPSRV__ST_WAIT)
        log_once(c, &ctx_of(c)->req, status, bytes, 0, false);
    else
        appsrv__log_request(c, NULL, status, bytes, 0, false); /* no line parsed */
}

/* A line the protocol refused (too long): counted, reported, answered. */
static void protocol_error(appsrv__conn_t *c, int status)
{
    appsrv__worker_t *w = c->w;
    appsrv__ctr_add(&w->stats.proto_errors[status - 400], 1);
    if (w->cfg->on_event != NULL)
        appsrv__event(&w->stats, w->cfg, w->loop.now_ms, APPSRV__EV_PROTOCOL_ERROR,
                      APPSRV_LEVEL_INFO, appsrv__reason(status), 0, status, &c->peer);
    line_error(c, status);
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
    uint64_t bytes, body = 0;
    if (!ok) {
        status = 500;
        bytes = reply(c, status, NULL, NULL, 0);
    } else {
        bytes = reply(c, status, reason, res->body, res->body_len);
        body = res->body_len;
    }
    if (res->close)
        c->close_after = true;
    appsrv__res_dispose(res);
    log_once(c, req, status, bytes, body, false);
}

/* Returns true when the handler deferred its response. */
static bool handle_line(appsrv__conn_t *c, const char *line, size_t len)
{
    line_ctx_t *x = ctx_of(c);
    appsrv_req_t *req = &x->req;
    appsrv_res_t *res = &x->res;

    memset(req, 0, sizeof(*req));
    x->logged = false;
    req->conn = c;
    req->proto = APPSRV_PROTO_LINE;
    req->start_us = appsrv__unlikely(c->w->obs) ? appsrv__now_us() : 0;
    req->in_bytes = len + 1;
    req->target = (appsrv_str_t){line, 0};
    req->body = (appsrv_str_t){"", 0};
    if (appsrv__unlikely(c->w->cfg->request_ids))
        appsrv__req_set_id(req, &c->w->stats, (appsrv_str_t){NULL, 0});
    if (len == 0) {
        log_once(c, req, 400, reply(c, 400, NULL, NULL, 0), 0, false);
        return false;
    }
    const char *sp = memchr(line, ' ', len);
    size_t wlen = sp != NULL ? (size_t)(sp - line) : len;
    req->method = (appsrv_str_t){line, wlen};
    req->path = req->method;
    if (sp != NULL)
        req->body = (appsrv_str_t){sp + 1, len - wlen - 1};

    const appsrv__line_route_t *r = find_route(c->proto_data, line, wlen);
    if (r == NULL) {
        log_once(c, req, 404, reply(c, 404, NULL, NULL, 0), 0, false);
        return false;
    }
    req->match.pattern = r->word;
    req->match.route = (int)(r - ((const appsrv__line_routes_t *)c->proto_data)->v);
    appsrv__res_dispose(res);
    int rc = r->handler(req, res, r->user);
    if (rc == APPSRV_LATER) {
        appsrv__res_defer(res);
        appsrv__conn_wait(c);
        if (c->w->draining)
            appsrv__res_stop(res);
        return true;
    }
    line_respond(c, req, res, rc);
    return false;
}

/* A deferred reply: sent once the host calls appsrv_res_send(). */
static void line_pump(appsrv__conn_t *c)
{
    line_ctx_t *x = ctx_of(c);
    if (!appsrv__res_state(&x->res).sent)
        return;
    line_respond(c, &x->req, &x->res, 0);
    appsrv__res_done(&x->res); /* drops the host's reference: c stays open */
    c->state = APPSRV__ST_HEAD;
    c->rpos += c->bpos;
    c->bpos = 0;
    c->nreqs++;
}

static int line_process(appsrv__conn_t *c)
{
    size_t max_line = c->w->cfg->max_line;
    int progress = 0;

    while (!c->closed && !c->close_after) {
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
            if (avail > max_line + 1 || (c->rlen == c->w->pool.data_cap && c->rpos == 0)) {
                protocol_error(c, 413);
                return 1;
            }
            return progress;
        }
        size_t len = (size_t)(nl - start);
        size_t consumed = len + 1;
        if (len > 0 && start[len - 1] == '\r')
            len--;
        if (len > max_line) {
            protocol_error(c, 413);
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

static size_t line_ctx_size(const appsrv_config_t *cfg)
{
    (void)cfg;
    return sizeof(line_ctx_t);
}

static void line_ctx_init(appsrv__conn_t *c)
{
    line_ctx_t *x = ctx_of(c);
    x->logged = false;
    appsrv__res_reset(&x->res, c);
}

static void line_ctx_dispose(appsrv__conn_t *c)
{
    appsrv__res_dispose(&ctx_of(c)->res);
}

static void line_cancel(appsrv__conn_t *c)
{
    appsrv__res_cancel(&ctx_of(c)->res);
}

static void line_closed(appsrv__conn_t *c)
{
    if (c->ctx == NULL || (c->state != APPSRV__ST_WAIT && !appsrv__conn_host_holds(c)))
        return;
    line_ctx_t *x = ctx_of(c);
    log_once(c, &x->req, 499, 0, 0, true);
    appsrv__res_conn_closed(&x->res);
}

static void line_drain(appsrv__conn_t *c)
{
    if (c->state == APPSRV__ST_WAIT && c->ctx != NULL)
        appsrv__res_stop(&ctx_of(c)->res);
}

static size_t line_refusal(char *buf, size_t cap, const char *date, const char *rid)
{
    static const char msg[] = "503 Service Unavailable\n";
    (void)date;
    (void)rid;
    if (cap < sizeof(msg) - 1)
        return 0;
    memcpy(buf, msg, sizeof(msg) - 1);
    return sizeof(msg) - 1;
}

const appsrv__proto_t appsrv__line_proto = {
    .name = "line",
    .id = APPSRV_PROTO_LINE,
    .ctx_size = line_ctx_size,
    .ctx_init = line_ctx_init,
    .ctx_dispose = line_ctx_dispose,
    .process = line_process,
    .error = line_error,
    .cancel = line_cancel,
    .closed = line_closed,
    .rebase = NULL,
    .drain = line_drain,
    .refusal = line_refusal,
};
