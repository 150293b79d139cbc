/* SPDX-License-Identifier: MIT */
/*
 * http_out.h - the response side of HTTP/1.1 (http_out.c): framing heads
 * and bodies into the connection's output queue, the library's own
 * answers, routing with its 404/405, and the responses the host holds.
 * Used by http.c and http_body.c.
 */
#ifndef APPSRV_HTTP_OUT_H
#define APPSRV_HTTP_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "http_ctx.h"
#include "req.h"
#include "res.h"

/* Frames a library-made response with a short text body straight into the
 * output queue (parse errors, timeouts). Returns the bytes queued. */
uint64_t appsrv__http_queue_simple(appsrv__conn_t *c, int status, const appsrv_req_t *req);
/* Frames the head (and, unless stream, the body) of res; takes the body's
 * ownership. Returns the bytes queued. */
uint64_t appsrv__http_queue_head(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res,
                                 bool stream);
/* Fills res with the library's answer status (the error responder's). */
void appsrv__http_lib_answer(appsrv__conn_t *c, const appsrv_req_t *req, appsrv_res_t *res,
                             int status);
/* Routes req; on a miss fills res with 404 or 405 (+ Allow), false. */
bool appsrv__http_route(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res);
/* The request is answered: the connection moves on to the next one. */
void appsrv__http_finish_request(appsrv__conn_t *c);
/* The connection's side of a response the host holds (state WAIT, or a
 * streamed body's BODY). Returns 1 on progress. */
int appsrv__http_pump(appsrv__conn_t *c);
/* The protocol table's refusal: a whole 503 for a connection over the cap. */
size_t appsrv__http_refusal(char *buf, size_t cap, const char *date, const char *rid);

static inline uint64_t appsrv__http_queue_response(appsrv__conn_t *c, appsrv_req_t *req,
                                                   appsrv_res_t *res)
{
    uint64_t n = appsrv__http_queue_head(c, req, res, false);
    res->out_bytes += n;
    return n;
}

/* Queues res for req, logs it and moves on to the next request (or, after
 * a 101, to the protocol res switches to). */
static APPSRV__HTTP_INLINE void appsrv__http_respond(appsrv__conn_t *c, appsrv_req_t *req,
                                                     appsrv_res_t *res)
{
    int status = res->status;
    void (*upgrade)(appsrv__conn_t *, void *) = res->upgrade;
    void *upgrade_data = res->upgrade_data;
    if (res->close)
        c->keep_alive = false;
    uint64_t bytes = appsrv__http_queue_response(c, req, res);
    uint64_t body = res->out_body;
    appsrv__res_dispose(res);
    appsrv__http_log_once(c, req, status, bytes, body, false);
    appsrv__http_finish_request(c);
    if (upgrade != NULL)
        upgrade(c, upgrade_data);
}

#endif /* APPSRV_HTTP_OUT_H */
