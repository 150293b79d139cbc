/* SPDX-License-Identifier: MIT */
/*
 * req.h - the request object the host reads through the appsrv_req_*
 * accessors (req.c): views into the connection's input block or body
 * buffer, valid until the response has been written. Filled by the
 * protocol that parsed it (http.c, line.c). Also the access-log entry.
 */
#ifndef APPSRV_REQ_H
#define APPSRV_REQ_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "conn.h"
#include "http_parse.h"
#include "router.h"

#define APPSRV__REQ_ID_MAX 128 /* X-Request-ID kept up to this length */
#define APPSRV__MINOR_NONE 255 /* minor before the request line is parsed */

struct appsrv_req {
    appsrv__conn_t *conn;
    appsrv_proto_t proto;
    uint8_t minor;
    bool has_query;
    bool is_head;
    appsrv_str_t method, target, path, query, body;
    const char *base; /* header spans are offsets from here */
    const appsrv__hdr_t *hdrs;
    uint32_t nhdrs;
    appsrv__match_t match;
    uint64_t start_us; /* the request's first byte was seen (0: not logged) */
    uint64_t in_bytes; /* request bytes read so far (head, body framing) */
    uint8_t id_len;    /* request ID (cfg.request_ids), 0: none yet */
    char id[APPSRV__REQ_ID_MAX];
    void *data[APPSRV_MAX_HOOKS]; /* appsrv_req_data() slots (mw.c) */
    appsrv_addr_t xclient; /* appsrv_req_client_addr()'s answer, written at
                              each call (trusted X-Forwarded-For) */
};

/* Shifts every view into the input block down by shift bytes (the block
 * was compacted under the request). */
void appsrv__req_rebase(appsrv_req_t *req, uint32_t shift);

/* A request is done: counts it (cfg.metrics), hands its entry to the
 * access-log callback and the access-log file. req may be NULL (nothing
 * parsed); bytes: response bytes handed to the transport, body: the body
 * bytes among them; aborted: the client left or the response was cut
 * before it was complete. Inline: with nothing observing, one test. */
void appsrv__log_request_slow(appsrv__conn_t *c, const appsrv_req_t *req, int status,
                              uint64_t bytes, uint64_t body, bool aborted);
static inline void appsrv__log_request(appsrv__conn_t *c, const appsrv_req_t *req, int status,
                                       uint64_t bytes, uint64_t body, bool aborted)
{
    if (appsrv__unlikely(c->w->obs))
        appsrv__log_request_slow(c, req, status, bytes, body, aborted);
}

/* Sets req's ID: the client's X-Request-ID when it is 1..128 bytes of
 * [A-Za-z0-9._-] (value: the field, or NULL), else a new random one. */
void appsrv__req_set_id(appsrv_req_t *req, appsrv__stats_t *st, appsrv_str_t value);

#endif /* APPSRV_REQ_H */
