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
    void *data[APPSRV_MAX_HOOKS]; /* appsrv_req_data() slots (mw.c) */
};

/* Shifts every view into the input block down by shift bytes (the block
 * was compacted under the request). */
void appsrv__req_rebase(appsrv_req_t *req, uint32_t shift);

/* Calls the access-log callback, if any. req may be NULL (nothing
 * parsed); bytes: response bytes handed to the transport; aborted: the
 * client left or the response was cut before it was complete. */
void appsrv__log_request(appsrv__conn_t *c, const appsrv_req_t *req, int status, uint64_t bytes,
                         bool aborted);

#endif /* APPSRV_REQ_H */
