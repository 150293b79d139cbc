/* SPDX-License-Identifier: MIT */
/*
 * http_ctx.h - the per-request context of HTTP/1.1, shared by the three
 * files of the protocol: http.c (the protocol table, heads, dispatch),
 * http_out.c (framing, the library's answers, held responses) and
 * http_body.c (bodies beyond the head, appsrv_route_ex() heads and
 * streamed bodies). Header only: the context, its accessor, the
 * log-once helper (req.h) and the inlining hints the hot path relies on.
 */
#ifndef APPSRV_HTTP_CTX_H
#define APPSRV_HTTP_CTX_H

#include <stdbool.h>
#include <stdint.h>

#include "async.h"
#include "common.h"
#include "conn.h"
#include "http_parse.h"
#include "req.h"
#include "res.h"

/* The per-request context, at the front of the input block's context
 * area; max_headers header slots follow it. */
typedef struct appsrv__http_ctx {
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
} appsrv__http_ctx_t;

static inline appsrv__http_ctx_t *appsrv__http_ctx(appsrv__conn_t *c)
{
    return (appsrv__http_ctx_t *)c->ctx;
}

static inline void appsrv__http_log_once(appsrv__conn_t *c, const appsrv_req_t *req, int status,
                                         uint64_t bytes, uint64_t body, bool aborted)
{
    appsrv__http_ctx_t *x = appsrv__http_ctx(c);
    if (x->logged)
        return;
    x->logged = true;
    appsrv__log_request(c, req, status, bytes, body, aborted);
}

/* appsrv__http_respond() (http_out.h) is on every request's path and, with
 * a second (cold) caller, no longer called once: keep it inlined into
 * dispatch() (http.c). The appsrv_route_ex() code (http_body.c) is kept out of
 * line. */
#if defined(__GNUC__)
#define APPSRV__HTTP_INLINE inline __attribute__((always_inline))
#define APPSRV__HTTP_COLD __attribute__((noinline, cold))
#else
#define APPSRV__HTTP_INLINE inline
#define APPSRV__HTTP_COLD
#endif

#endif /* APPSRV_HTTP_CTX_H */
