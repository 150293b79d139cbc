/* SPDX-License-Identifier: MIT */
/*
 * proto.h - the seam above a connection: a table of operations a
 * protocol (HTTP/1.1 in http.c, the line protocol in line.c, WebSocket
 * in ws.c after a 101) gives conn.c. conn.c owns the socket, buffers,
 * timeouts and the close; it calls the protocol to turn buffered input
 * into queued output and never names a protocol. server.c chooses the
 * table per listener; a connection may switch tables at a request
 * boundary (appsrv__conn_switch()). Every operation runs on the loop
 * thread.
 */
#ifndef APPSRV_PROTO_H
#define APPSRV_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef struct appsrv__conn appsrv__conn_t;

typedef struct appsrv__proto {
    const char *name;
    appsrv_proto_t id;
    /* Connections are sessions (WebSocket): an idle one is not a spare
     * keep-alive connection - never evicted at the cap, and at a graceful
     * stop drain() is called (to say goodbye) instead of a plain close. */
    bool session;
    /* Bytes of per-request context the protocol keeps in the connection's
     * input block (conn->ctx) for this configuration. */
    size_t (*ctx_size)(const appsrv_config_t *cfg);
    /* conn->ctx is fresh (an input block was taken) / about to be given
     * back (the connection is idle or gone): set up / release it. */
    void (*ctx_init)(appsrv__conn_t *c);
    void (*ctx_dispose)(appsrv__conn_t *c);
    /* Bytes arrived, output drained, or the host finished work: consume
     * buffered input and queue output. Returns 1 on progress, 0 when it
     * needs more input or output room, -1 to close at once. */
    int (*process)(appsrv__conn_t *c);
    /* Queues a library-made error answer (408 on a head or body timeout,
     * 503 when the host's answer timed out) and closes after it. */
    void (*error)(appsrv__conn_t *c, int status);
    /* The host holds a response and the client is gone or the response
     * timed out: tell the host (its cancel callback). */
    void (*cancel)(appsrv__conn_t *c);
    /* The connection was closed (socket gone; the host may still hold a
     * response and with it a reference to the connection). */
    void (*closed)(appsrv__conn_t *c);
    /* The input buffer moved under a request whose body is being read:
     * views into it shift down by shift bytes. NULL: keeps no views. */
    void (*rebase)(appsrv__conn_t *c, uint32_t shift);
    /* The server began a graceful stop while this connection is busy:
     * tell the host (stop notification) so it can end long responses. */
    void (*drain)(appsrv__conn_t *c);
    /* Writes what a client refused at the connection cap is told; returns
     * its length (<= cap). date: the current IMF-fixdate; rid: a request
     * ID for the answer (cfg.request_ids), or NULL. */
    size_t (*refusal)(char *buf, size_t cap, const char *date, const char *rid);
} appsrv__proto_t;

#endif /* APPSRV_PROTO_H */
