/* SPDX-License-Identifier: MIT */
/*
 * http_body.h - request bodies of HTTP/1.1 beyond the in-place
 * Content-Length (http_body.c): chunked decoding, 100-continue, and the
 * appsrv_route_ex() routes whose heads are decided before the
 * body and whose bodies may be streamed with pause/resume. Used by http.c.
 */
#ifndef APPSRV_HTTP_BODY_H
#define APPSRV_HTTP_BODY_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "http_parse.h"

/* A route registered with appsrv_route_ex(): the router's
 * handler is appsrv__route_ex_call and its user this record, so
 * http_body.c recognises such routes by their handler. Owned by the
 * server. */
typedef struct appsrv__route_ex {
    appsrv_handler_cb handler;
    void *user;
    appsrv_route_opts_t opts;
    struct appsrv__route_ex *next;
} appsrv__route_ex_t;

int appsrv__route_ex_call(appsrv_req_t *req, appsrv_res_t *res, void *ex);

static inline bool appsrv__http_body_announced(const appsrv__http_head_t *h)
{
    return h->is_chunked || (h->has_content_length && h->content_length > 0);
}

/* The head asks for 100-continue before any body byte: the 100, or the
 * final answer (404/405) and the close. */
void appsrv__http_continue(appsrv__conn_t *c);
/* Decodes a chunked body. 1 complete, 0 more needed, or -status. */
int appsrv__http_read_chunked(appsrv__conn_t *c);

/* Only when some route was registered with appsrv_route_ex() (w->route_ex). */
/* A head that announces a body or expects 100: routes it and runs its
 * on_head. 1 when answered (refused), else 0 with the body limit set. */
int appsrv__http_head_decide(appsrv__conn_t *c);
/* The handler of a stream_body route, right after the head. */
void appsrv__http_stream_dispatch(appsrv__conn_t *c);
/* A streamed body in state BODY. 1 on progress, 0 when waiting. */
int appsrv__http_stream_step(appsrv__conn_t *c);
/* The connection closes: a body still coming ends with ECANCELED. */
void appsrv__http_stream_gone(appsrv__conn_t *c);
/* A graceful stop: a body still coming (or paused) ends with -ESHUTDOWN. */
void appsrv__http_stream_stop(appsrv__conn_t *c);
/* The block's context is disposed: its resume item leaves the queue. */
void appsrv__http_resume_dispose(appsrv__conn_t *c);

#endif /* APPSRV_HTTP_BODY_H */
