/* SPDX-License-Identifier: MIT */
/*
 * ws.h - WebSocket (RFC 6455) inside the library: the handle (struct
 * appsrv_ws), the protocol table an HTTP connection switches to after a
 * 101 (ws.c), and the endpoint routes server.c keeps, each an HTTP GET
 * route whose handler (appsrv__ws_upgrade, ws_api.c) checks the opening
 * handshake and arranges the switch. Fields marked "shared" are read and
 * written under the worker's async lock (async.h); the rest belong to the
 * loop thread, except conn, route and protocol, which are fixed once the
 * handle is open.
 */
#ifndef APPSRV_WS_H
#define APPSRV_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "async.h"
#include "common.h"
#include "conn.h"
#include "loop.h"
#include "proto.h"
#include "ws_parse.h"

typedef struct appsrv__ws_route {
    struct appsrv__ws_route *next;
    appsrv_ws_handlers_t h;
    void *user;
} appsrv__ws_route_t;

/* A frame queued by a send, waiting for the loop: its header is written
 * right-aligned before the payload, so the frame is data[off..off+len). */
typedef struct appsrv__ws_chunk {
    struct appsrv__ws_chunk *next;
    size_t len;
    uint8_t off;
    bool close; /* a close frame: the last one this side sends */
    uint8_t data[];
} appsrv__ws_chunk_t;

struct appsrv_ws {
    appsrv__conn_t *conn; /* held (one reference) while the handle lives */
    const appsrv__ws_route_t *route;
    void *data;                /* the host's pointer */
    char *protocol;            /* selected subprotocol (malloc'd) or NULL */
    appsrv_req_t *upgrade_req; /* during on_upgrade only */
    /* loop thread */
    appsrv__ws_rx_t rx;
    uint8_t *msg; /* a message being reassembled (heap), or NULL */
    size_t msg_len, msg_cap;
    appsrv__timer_t timer; /* the next ping, or the end of the close wait */
    size_t inflight;       /* bytes of chunks the output queue references */
    size_t pend_seen;      /* pend_bytes as last seen by the loop */
    char *peer_reason;     /* the peer's close reason (malloc'd) or NULL */
    uint8_t peer_reason_len;
    uint16_t close_code; /* for on_close; 0 until known (then 1006) */
    bool in_process;     /* inside this connection's own processing */
    bool close_sent;     /* our close frame is queued */
    bool close_rcvd;     /* the peer's close frame arrived */
    bool ping_out;       /* a ping went out and nothing came back yet */
    bool loop_done;      /* on_close has returned */
    /* shared (async lock) */
    appsrv__aitem_t aitem; /* on the worker's completion queue */
    appsrv__ws_chunk_t *pend_head, *pend_tail;
    size_t pend_bytes;    /* queued by sends, not yet written: the pending
                             chunks and those the output queue references */
    unsigned refs;   /* the host's references */
    bool closing;    /* sends fail: close asked, sent or received, or gone */
    bool want_drain; /* a send returned -EAGAIN */
};

/* ----------------------------------------------------------------- ws.c */

extern const appsrv__proto_t appsrv__ws_proto;

/* http.c's upgrade hook: the 101 for ws's handshake is queued and the
 * request finished: switch c to WebSocket and open ws (on_open). */
void appsrv__ws_switch(appsrv__conn_t *c, void *ws);
/* Frees a handle that never opened (refused, or the switch failed). */
void appsrv__ws_discard(appsrv_ws_t *ws);
/* Moves queued sends into the output queue. Loop thread; returns 1 on
 * progress. */
int appsrv__ws_pump(appsrv_ws_t *ws);
/* The completion-queue callback (sends and releases from other threads). */
void appsrv__ws_service(appsrv__aitem_t *it);

/* ------------------------------------------------------------- ws_api.c */

/* A route's handlers and user pointer (copied), pushed on *list (the
 * server frees the list with appsrv__ws_routes_free()). Returns the
 * route, or NULL when out of memory. */
appsrv__ws_route_t *appsrv__ws_route_new(appsrv__ws_route_t **list, const appsrv_ws_handlers_t *h,
                                         void *user);
void appsrv__ws_routes_free(appsrv__ws_route_t *list);

/* The HTTP handler of a WebSocket route (user: its appsrv__ws_route_t). */
int appsrv__ws_upgrade(appsrv_req_t *req, appsrv_res_t *res, void *user);

#endif /* APPSRV_WS_H */
