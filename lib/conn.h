/* SPDX-License-Identifier: MIT */
/*
 * conn.h - one client connection from accept to close: the transport
 * under it (transport.h), the protocol above it (proto.h), the input
 * block, the output queue, timeouts and the close.
 *
 * Lifetime, one rule: a connection is freed when its reference count
 * drops to zero. The loop holds one reference from accept until
 * appsrv__conn_close(); a protocol takes one more (appsrv__conn_hold())
 * for every response the host holds, and drops it (appsrv__conn_release())
 * once the host has finished that response and the loop has seen it. A
 * closed connection that is still referenced keeps its request and
 * response memory (the host may use them) but no socket, timer or
 * output. Memory is given back only after the loop's dispatch pass.
 */
#ifndef APPSRV_CONN_H
#define APPSRV_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "loop.h"
#include "pool.h"
#include "proto.h"
#include "transport.h"
#include "worker.h"

enum {
    APPSRV__ST_HEAD = 0, /* waiting for / parsing a request head or line */
    APPSRV__ST_BODY,     /* reading a request body */
    APPSRV__ST_LINGER,   /* response sent; draining input before close */
    APPSRV__ST_WAIT,     /* the host holds a response; input waits */
};

struct appsrv__conn {
    appsrv__io_t io; /* io.fd == sock.fd while open */
    appsrv__tsock_t sock;
    appsrv__timer_t timer;
    uint64_t deadline_ms; /* the timer fires at or before this */
    appsrv__worker_t *w;
    appsrv__conn_t *next, *prev;           /* live / held / closed list */
    appsrv__conn_t *idle_next, *idle_prev; /* the worker's idle list */
    const appsrv__proto_t *proto;
    void *proto_data;      /* the listener's data for proto (routes) */
    appsrv__block_t *rblk; /* input + protocol context */
    char *rbuf;            /* data area of rblk */
    void *ctx;             /* context area of rblk (NULL without rblk) */
    uint32_t rlen;         /* bytes in rbuf */
    uint32_t rpos;         /* start of the current request in rbuf */
    appsrv__outq_t out;
    char *body_heap;       /* request body when it does not fit rbuf */
    size_t body_len, body_cap;
    uint32_t bpos;         /* offset from rpos past the consumed request
                              bytes (head, then body bytes parsed) */
    uint32_t hlen;         /* length of the current request's head */
    uint32_t nreqs;        /* requests answered on this connection */
    uint32_t refs;         /* see "Lifetime" above */
    uint8_t state;         /* APPSRV__ST_* */
    uint8_t tkind;         /* which timeout the deadline stands for */
    bool ready;            /* the transport's handshake is done */
    bool readable;         /* unread input may be waiting (edge seen) */
    bool rdhup;            /* peer shut its write side */
    bool eof;              /* read returned 0 */
    bool keep_alive;       /* this request's connection may be reused */
    bool close_after;      /* close once the output queue drains */
    bool must_linger;      /* request bytes may be unread: lingering close */
    bool closed;           /* appsrv__conn_close() ran */
    bool idle;             /* on the worker's idle list */
    bool head_started;     /* the parser state is set for this request */
    bool body_in_heap;     /* Content-Length body read into body_heap */
    bool wait_untimed;     /* in WAIT, no response timeout (a stream) */
    appsrv_addr_t peer;
    /* Behind a proxy (lib/proxy.c): a step before the transport's
     * handshake that reads the PROXY protocol header; NULL when the
     * listener has none or once it is done. client is the address the
     * header reported (has_client), else unused. */
    int (*preamble)(appsrv__conn_t *c);
    void (*on_close)(appsrv__conn_t *c); /* set by a preamble (per-client
                                            counts); runs once at close */
    bool has_client;
    appsrv_addr_t client;
};

/* The client's address: what a PROXY header reported, else the socket
 * peer. */
static inline const appsrv_addr_t *appsrv__conn_client(const appsrv__conn_t *c)
{
    return c->has_client ? &c->client : &c->peer;
}

/* Takes over fd (non-blocking, accepted): the connection speaks proto
 * (with proto_data) over transport tp, whose attach step gets the
 * listener's ldata (the TLS context; NULL for plain). The caller has
 * counted it in w->nconns_total; on failure the fd is closed and the
 * count given back. */
void appsrv__conn_accepted(appsrv__worker_t *w, int fd, const appsrv_addr_t *peer,
                           const appsrv__proto_t *proto, void *proto_data,
                           const appsrv__transport_t *tp, void *ldata);
/* The same with a preamble step (see the field): it runs before the
 * transport's handshake, under the head timeout, each time the socket is
 * readable, and returns 1 when done, 0 to wait for more input, or -errno
 * to close the connection (it reports its own event). NULL: none. */
void appsrv__conn_accepted_pre(appsrv__worker_t *w, int fd, const appsrv_addr_t *peer,
                               const appsrv__proto_t *proto, void *proto_data,
                               const appsrv__transport_t *tp, void *ldata,
                               int (*preamble)(appsrv__conn_t *c));
/* Closes the socket now (queued output is dropped) and drops the loop's
 * reference. Idempotent. */
void appsrv__conn_close(appsrv__conn_t *c);
void appsrv__conn_hold(appsrv__conn_t *c);
void appsrv__conn_release(appsrv__conn_t *c);
/* True while the host holds a response on c (any reference but the
 * loop's, which goes at close). */
static inline bool appsrv__conn_host_holds(const appsrv__conn_t *c)
{
    return c->refs > (c->closed ? 0u : 1u);
}
/* Reads, processes and writes what it can (nothing once closed). */
void appsrv__conn_drive(appsrv__conn_t *c);
/* The host holds the current response: input waits, a reference is taken
 * (released by the protocol when the response is done). */
void appsrv__conn_wait(appsrv__conn_t *c);
/* Graceful stop: closes c if idle, else lets it finish and close. */
void appsrv__conn_drain(appsrv__conn_t *c);
/* Graceful stop after the idle grace: an idle keep-alive connection
 * closes without a reset for a request racing the close; one with request
 * bytes waiting is in flight and answered (Connection: close). Others are
 * left alone. */
void appsrv__conn_drain_idle(appsrv__conn_t *c);
/* Closes up to n of w's longest-idle keep-alive connections (to admit
 * new ones at the connection cap). Returns how many were closed. */
size_t appsrv__conn_evict_idle(appsrv__worker_t *w, size_t n);
/* Frees (or recycles) the connections closed during this pass. */
void appsrv__conn_free_closed(appsrv__worker_t *w);
/* Closes every live connection and reclaims the held ones (server free:
 * a host that never finished a response broke its contract). */
void appsrv__conn_close_all(appsrv__worker_t *w, bool reclaim_held);
/* Switches c to another protocol at a request boundary (nothing held,
 * nothing half-parsed). Input already buffered stays for the new one.
 * Returns 0, APPSRV_ESTATE, or -ENOSPC when proto's context does not fit
 * the worker's blocks. */
int appsrv__conn_switch(appsrv__conn_t *c, const appsrv__proto_t *proto, void *proto_data);

/* ------------------------------------------------- output, for protocols */

static inline bool appsrv__out_busy(const appsrv__conn_t *c)
{
    return appsrv__outq_busy(&c->out);
}

static inline size_t appsrv__out_room(appsrv__conn_t *c)
{
    return appsrv__outq_room(&c->out, &c->w->pool);
}

static inline int appsrv__out_copy(appsrv__conn_t *c, const void *data, size_t len)
{
    return appsrv__outq_copy(&c->out, &c->w->pool, data, len);
}

static inline char *appsrv__out_reserve(appsrv__conn_t *c, size_t need)
{
    return appsrv__outq_reserve(&c->out, &c->w->pool, need);
}

static inline void appsrv__out_commit(appsrv__conn_t *c, char *p, size_t len)
{
    appsrv__outq_commit(&c->out, p, len);
}

static inline char *appsrv__out_begin(appsrv__conn_t *c, size_t need, char **heap)
{
    return appsrv__outq_begin(&c->out, &c->w->pool, need, heap);
}

static inline void appsrv__out_finish(appsrv__conn_t *c, char *p0, size_t len, char *heap)
{
    appsrv__outq_finish(&c->out, &c->w->pool, p0, len, heap);
}

static inline int appsrv__out_ref(appsrv__conn_t *c, const void *data, size_t len,
                                  void (*free_cb)(void *, void *), void *data_to_free, void *ud)
{
    return appsrv__outq_ref(&c->out, &c->w->pool, data, len, free_cb, data_to_free, ud);
}

/* A file body segment (pool.h): fd is the queue's from here on. */
static inline int appsrv__out_file(appsrv__conn_t *c, int fd, off_t off, size_t len)
{
    return appsrv__outq_file(&c->out, &c->w->pool, fd, off, len);
}

#endif /* APPSRV_CONN_H */
