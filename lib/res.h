/* SPDX-License-Identifier: MIT */
/*
 * res.h - the response object: what the host builds (status, headers,
 * body) and the deferred/streamed state it shares with the loop. res.c
 * implements the appsrv_res_* builders, finishing from any thread, stream
 * writes with backpressure, cancel and stop notifications; the protocol
 * (http.c, line.c) frames and sends it. Fields marked "shared" are read
 * and written under the worker's async lock (async.h); the rest belong to
 * the loop thread or to the one thread holding res.
 */
#ifndef APPSRV_RES_H
#define APPSRV_RES_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "async.h"
#include "common.h"
#include "conn.h"
#include "loop.h"

#define APPSRV__RES_INLINE_HDRS 512
#define APPSRV__RES_INLINE_BODY 1024
#define APPSRV__RES_MAX_HDRS 8192

#define APPSRV__STREAM_HIGH (256 * 1024)
#define APPSRV__STREAM_LOW (64 * 1024)

/*
 * A content coding applied to a response's stream data as http_out.c frames
 * it (gzip.c's). encode compresses in[0..len) with a flush (finish: the
 * last call, len may be 0) into out[0..cap) and returns the bytes written,
 * or -1 on failure; cap >= bound(len). free releases the state.
 */
typedef struct appsrv__coding {
    size_t (*bound)(size_t len);
    long (*encode)(void *state, const char *in, size_t len, bool finish, char *out, size_t cap);
    void (*free)(void *state);
} appsrv__coding_t;

/* A piece of stream data written by the host, waiting for the loop. */
typedef struct appsrv__chunk {
    struct appsrv__chunk *next;
    size_t len;
    char data[];
} appsrv__chunk_t;

struct appsrv_res {
    appsrv__conn_t *conn;
    int status;
    char *reason; /* malloc'd custom phrase or NULL */
    char *hdrs;   /* "Name: value\r\n"... */
    size_t hdrs_len, hdrs_cap;
    char *body;
    size_t body_len, body_cap;
    void (*ref_free)(void *data, void *ud);
    void *ref_ud;
    bool body_is_ref;  /* body points at host memory */
    bool body_is_heap; /* body is malloc'd by us */
    bool close;        /* close the connection after this response */
    /* Protocol switch (101): called once this response is queued and its
     * request finished (appsrv__http_respond(), http_out.h); NULL for
     * none. */
    void (*upgrade)(appsrv__conn_t *c, void *data);
    void *upgrade_data;
    /* shared (async lock) */
    appsrv__aitem_t aitem; /* on the worker's completion queue */
    bool deferred;         /* the handler returned APPSRV_LATER */
    bool sent;             /* appsrv_res_send() called */
    bool streaming;        /* appsrv_res_stream() called */
    bool ended;            /* appsrv_res_end() called */
    bool gone;             /* cancelled: client gone or timed out */
    bool cancelling;       /* the cancel callback is running */
    bool want_drain;       /* a write returned -EAGAIN */
    pthread_t cancel_thread; /* the thread running the cancel callback */
    appsrv__chunk_t *pend_head, *pend_tail;
    size_t pend_bytes;
    size_t pend_off; /* bytes of pend_head already taken */
    appsrv_res_cb on_drain;
    void *drain_ud;
    /* loop thread */
    bool head_sent;   /* stream head queued */
    bool chunked;     /* stream framed with chunked coding */
    bool no_body;     /* HEAD, 204 or 304: stream data is dropped */
    bool cancel_called;
    bool stop_called;
    int hb_ms;            /* SSE heartbeat interval */
    uint64_t last_out_ms; /* last stream output, for the heartbeat */
    uint64_t out_bytes;   /* bytes framed so far (access log) */
    uint64_t out_body;    /* body bytes among them (no framing) */
    appsrv__timer_t hb_timer;
    appsrv_res_cb on_cancel;
    void *cancel_ud;
    appsrv_res_cb on_stop;
    void *stop_ud;
    /* A file body (file.c: appsrv_res_fd()): file_len bytes of file_fd
     * from file_off, sent instead of body. res owns file_fd (-1: none)
     * until http_out.c moves it into the output queue; dispose closes it. */
    int file_fd;
    off_t file_off;
    uint64_t file_len;
    char hdrs_inline[APPSRV__RES_INLINE_HDRS];
    char body_inline[APPSRV__RES_INLINE_BODY];
    /* Content coding (gzip.c): the stream's encoder, freed with res, and
     * appsrv_res_no_compress(). Loop thread / the thread holding res. */
    const appsrv__coding_t *coding;
    void *coding_state;
    bool no_compress;
};

/* A fresh response for c (when its input block is taken). */
void appsrv__res_reset(appsrv_res_t *res, appsrv__conn_t *c);
/* Releases what res holds (body, headers, stream data, its queue slot
 * and timer) and resets it. Loop thread; the host no longer holds res. */
void appsrv__res_dispose(appsrv_res_t *res);
/* Fills res with a library answer: status, text/plain reason body. */
void appsrv__res_simple(appsrv_res_t *res, int status);
/* Appends a whole "Name: value\r\n" line the library wrote itself (a
 * constant, already valid): appsrv_res_add_header() without its checks,
 * for hooks that add the same field to every response (CORS' Vary).
 * Returns 0, -ENOSPC, -ENOMEM. */
int appsrv__res_add_line(appsrv_res_t *res, const char *line, size_t len);
#define APPSRV__RES_ADD_LINE(res, lit) appsrv__res_add_line((res), (lit), sizeof(lit) - 1)
/* Replaces the body (released) with buf[0..len), a malloc'd buffer res
 * now owns (gzip.c's compressed body). */
void appsrv__res_take_body(appsrv_res_t *res, char *buf, size_t len);
/* Body ownership moves to the output queue: forget it without freeing. */
void appsrv__res_body_taken(appsrv_res_t *res);

/* The handler returned APPSRV_LATER: the host holds res from now on. */
void appsrv__res_defer(appsrv_res_t *res);
/* The loop's view of a held response, read under the lock. */
typedef struct appsrv__res_state {
    bool sent, streaming, ended;
} appsrv__res_state_t;
appsrv__res_state_t appsrv__res_state(appsrv_res_t *res);
/* Loop thread: runs the cancel callback once (the client is gone or the
 * response timed out); later host calls report APPSRV_ECANCELED, and
 * none does before the callback has returned. */
void appsrv__res_cancel(appsrv_res_t *res);
/* Loop thread: runs the stop callback once (graceful stop began). */
void appsrv__res_stop(appsrv_res_t *res);
/* Loop thread: the connection closed while the host may hold res: drops
 * the host's reference now if res was already finished, else cancels. */
void appsrv__res_conn_closed(appsrv_res_t *res);
/* Loop thread: the held response res is done and framed: leave the queue
 * and drop the host's reference on the connection. */
void appsrv__res_done(appsrv_res_t *res);

/* Starts streaming (appsrv_res_stream(), and SSE with a heartbeat
 * interval). Any thread. */
int appsrv__res_stream_begin(appsrv_res_t *res, int hb_ms);

/* Stream data, loop thread: moves up to what fits of the host's pending
 * writes into out (via take(chunk bytes, len, ud), which returns how many
 * it took). Runs the drain callback when the backlog fell below the low
 * mark. Returns true on progress; *ended when end was called and
 * everything is taken. */
typedef size_t (*appsrv__take_cb)(const char *data, size_t len, void *ud);
bool appsrv__res_pump(appsrv_res_t *res, appsrv__take_cb take, void *ud, bool *ended);

#endif /* APPSRV_RES_H */
