/* SPDX-License-Identifier: MIT */
/*
 * internal.h - cross-module declarations of the server layer. Private:
 * never installed. Everything that leaves a .c file through here is named
 * appsrv__* so a static link cannot collide with the host's symbols.
 *
 * Dependencies point one way: loop <- conn <- http/line <- server.
 * Ownership: a server owns its workers and listening sockets; a worker
 * owns its loop, connections and the block pool; a connection owns its blocks, its
 * output queue and, while a request is active, the request and response.
 */
#ifndef APPSRV_INTERNAL_H
#define APPSRV_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#include "appsrv.h"
#include "http_parse.h"
#include "router.h"

#define APPSRV__SERVER_HEADER "appsrv/" APPSRV_VERSION_STRING

#define appsrv__container_of(ptr, type, member)                                \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#if defined(__GNUC__)
#define appsrv__likely(x) __builtin_expect(!!(x), 1)
#define appsrv__unlikely(x) __builtin_expect(!!(x), 0)
#else
#define appsrv__likely(x) (x)
#define appsrv__unlikely(x) (x)
#endif

/* ------------------------------------------------------------------ loop */

typedef struct appsrv__loop appsrv__loop_t;
typedef struct appsrv__io appsrv__io_t;
typedef struct appsrv__timer appsrv__timer_t;

typedef void (*appsrv__io_cb)(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events);
typedef void (*appsrv__timer_cb)(appsrv__loop_t *loop, appsrv__timer_t *t);

/* An fd watched by one loop. The loop never owns the fd. */
struct appsrv__io {
    int fd;
    appsrv__io_cb cb;
};

/* A one-shot timer in the loop's binary heap. idx 0: not armed. */
struct appsrv__timer {
    uint64_t when_ms;
    uint32_t idx;
    appsrv__timer_cb cb;
};

#define APPSRV__MAX_EVENTS 256

struct appsrv__loop {
    int epfd;
    int wakefd; /* eventfd: appsrv__loop_wake() from any thread or signal */
    appsrv__io_t wake_io;
    uint64_t now_ms;       /* CLOCK_MONOTONIC, refreshed once per pass */
    int64_t date_sec;      /* the second date[] describes */
    char date[32];         /* IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT" */
    appsrv__timer_t **heap; /* heap[1..nheap] */
    uint32_t nheap, heap_cap;
    struct epoll_event events[APPSRV__MAX_EVENTS];
};

int appsrv__loop_init(appsrv__loop_t *loop, appsrv__io_cb on_wake);
void appsrv__loop_dispose(appsrv__loop_t *loop);
/* events: EPOLL* bits; edge-triggered connections pass EPOLLET. */
int appsrv__loop_add(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events);
int appsrv__loop_mod(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events);
int appsrv__loop_del(appsrv__loop_t *loop, appsrv__io_t *io);
/* One pass: wait (bounded by the next timer and max_wait_ms), dispatch I/O,
 * then expired timers. Returns the number of I/O events or -errno. */
int appsrv__loop_run_once(appsrv__loop_t *loop, int max_wait_ms);
/* Async-signal-safe, any thread. */
void appsrv__loop_wake(appsrv__loop_t *loop);
/* Drains the eventfd counter (from the wake callback). */
void appsrv__loop_wake_ack(appsrv__loop_t *loop);
/* Arms (or re-arms) t to fire at when_ms. Returns 0 or -ENOMEM. */
int appsrv__timer_start(appsrv__loop_t *loop, appsrv__timer_t *t, uint64_t when_ms);
void appsrv__timer_stop(appsrv__loop_t *loop, appsrv__timer_t *t);
static inline bool appsrv__timer_armed(const appsrv__timer_t *t)
{
    return t->idx != 0;
}
/* Refreshes now_ms and the Date string. */
void appsrv__loop_update_time(appsrv__loop_t *loop);
/* Microseconds, CLOCK_MONOTONIC (for the access log). */
uint64_t appsrv__now_us(void);

/* ---------------------------------------------------------------- server */

typedef struct appsrv__worker appsrv__worker_t;
typedef struct appsrv__conn appsrv__conn_t;
typedef struct appsrv__block appsrv__block_t;

enum { APPSRV__LISTEN_HTTP = 1, APPSRV__LISTEN_LINE = 2 };

#define APPSRV__MAX_LISTENERS 8

typedef struct appsrv__line_route {
    char *word;
    size_t word_len;
    appsrv_handler_cb handler;
    void *user;
} appsrv__line_route_t;

typedef struct appsrv__listener {
    int kind;
    int port;
    int fd;           /* shared by every worker's epoll (EPOLLEXCLUSIVE) */
    atomic_int users; /* workers still watching fd; the last closes it */
} appsrv__listener_t;

struct appsrv_server {
    appsrv_config_t cfg;
    appsrv__router_t *router;
    appsrv__line_route_t *line_routes;
    size_t nline_routes;
    appsrv__listener_t listeners[APPSRV__MAX_LISTENERS];
    int nlisteners;
    appsrv__worker_t *workers;
    int nworkers;
    atomic_int nconns;      /* open client connections, all workers */
    atomic_bool stopping;
    bool ran;
    size_t block_data_cap;  /* bytes of data in a pool block */
    size_t block_size;      /* whole block, header included */
};

/* A worker-local listener watcher. */
typedef struct appsrv__lwatch {
    appsrv__io_t io;
    int kind;
    bool paused;
    appsrv__worker_t *w;
} appsrv__lwatch_t;

struct appsrv__worker {
    appsrv__loop_t loop;
    appsrv_server_t *srv;
    int id;
    pthread_t thread;
    appsrv__lwatch_t lw[APPSRV__MAX_LISTENERS];
    int nlw;
    appsrv__timer_t accept_timer; /* resumes accepting after EMFILE */
    appsrv__timer_t drain_timer;  /* forces the end of a graceful stop */
    bool draining;
    bool drain_expired;
    /* live connections, doubly linked through conn->next/prev */
    appsrv__conn_t *conns;
    size_t nconns;
    appsrv__conn_t *free_conns; /* recycled structs */
    size_t nfree_conns;
    appsrv__conn_t *closed;     /* closed this pass, freed after dispatch */
    appsrv__block_t *free_blocks;
    size_t nfree_blocks;
    appsrv__conn_t *zombies;     /* closed conns whose response the host holds */
    size_t nzombies;
    pthread_mutex_t qlock;       /* completion queue + shared res fields */
    appsrv_res_t *q_head, *q_tail;
};

/* Block pool: fixed-size buffers that connections borrow while active. */
appsrv__block_t *appsrv__block_get(appsrv__worker_t *w);
void appsrv__block_put(appsrv__worker_t *w, appsrv__block_t *b);
void appsrv__pool_dispose(appsrv__worker_t *w);

/* ------------------------------------------------------------ connection */

/* One output segment: a run of bytes to write, and what to release after. */
typedef struct appsrv__seg {
    const char *ptr;
    size_t len;
    void (*free_cb)(void *data, void *ud);
    void *free_data;
    void *free_ud;
} appsrv__seg_t;

#define APPSRV__MAX_SEGS 64
#define APPSRV__RES_INLINE_HDRS 512
#define APPSRV__RES_INLINE_BODY 1024
#define APPSRV__RES_MAX_HDRS 8192

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
    uint64_t start_us;
};

/* A piece of stream data written by the host, waiting for the loop. */
typedef struct appsrv__chunk {
    struct appsrv__chunk *next;
    size_t len;
    char data[];
} appsrv__chunk_t;

#define APPSRV__STREAM_HIGH (256 * 1024)
#define APPSRV__STREAM_LOW (64 * 1024)

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
    /* Deferred and streamed responses. Fields below up to 'loop only' are
     * shared with host threads under the worker's qlock. */
    appsrv_res_t *q_next; /* worker completion queue, doubly linked */
    appsrv_res_t *q_prev;
    bool queued;          /* on the completion queue */
    bool deferred;        /* the handler returned APPSRV_LATER */
    bool sent;            /* appsrv_res_send() called */
    bool streaming;       /* appsrv_res_stream() called */
    bool ended;           /* appsrv_res_end() called */
    bool gone;            /* cancelled: client gone or timed out */
    bool want_drain;      /* a write returned -EAGAIN */
    appsrv__chunk_t *pend_head, *pend_tail;
    size_t pend_bytes;
    size_t pend_off;      /* bytes of pend_head already taken */
    appsrv_res_cb on_drain;
    void *drain_ud;
    /* loop only */
    bool head_sent;       /* stream head queued */
    bool chunked;         /* stream framed with chunked coding */
    bool cancel_called;
    int hb_ms;            /* SSE heartbeat interval */
    uint64_t last_out_ms; /* last stream output, for the heartbeat */
    appsrv__timer_t hb_timer;
    appsrv_res_cb on_cancel;
    void *cancel_ud;
    char hdrs_inline[APPSRV__RES_INLINE_HDRS];
    char body_inline[APPSRV__RES_INLINE_BODY];
};

/* The request context: everything a connection needs only while it is
 * working on a request. It lives at the front of the read block. */
typedef struct appsrv__rctx {
    appsrv__http_head_t head;
    appsrv__chunked_t chunk;
    struct appsrv_req req;
    struct appsrv_res res;
} appsrv__rctx_t;

struct appsrv__block {
    appsrv__block_t *next; /* pool free list */
    appsrv__rctx_t ctx;
    appsrv__seg_t segs[APPSRV__MAX_SEGS];
    /* then max_headers appsrv__hdr_t, then data (block_data_cap bytes) */
    _Alignas(16) char tail[];
};

enum {
    APPSRV__ST_HEAD = 0, /* waiting for / parsing a request head or line */
    APPSRV__ST_BODY,     /* reading a request body */
    APPSRV__ST_LINGER,   /* response sent; draining input before close */
    APPSRV__ST_WAIT,     /* a deferred or streamed response is in progress */
};

struct appsrv__conn {
    appsrv__io_t io;
    appsrv__timer_t timer;
    uint64_t deadline_ms; /* the timer fires at or before this */
    appsrv__worker_t *w;
    appsrv__conn_t *next, *prev;
    appsrv__block_t *rblk; /* input + request context */
    appsrv__block_t *oblk; /* output staging + segment array */
    char *rbuf;            /* data area of rblk */
    char *obuf;            /* data area of oblk */
    uint32_t rlen;         /* bytes in rbuf */
    uint32_t rpos;         /* start of the current request in rbuf */
    uint32_t olen;         /* bytes used in obuf */
    uint16_t nsegs;        /* queued segments */
    uint16_t seg_head;     /* first segment not fully written */
    size_t seg_off;        /* bytes of segs[seg_head] already written */
    char *body_heap;       /* request body when it does not fit rbuf */
    size_t body_len, body_cap;
    uint32_t bpos;         /* offset from rpos past the consumed request
                              bytes (head, then body bytes parsed) */
    uint32_t hlen;         /* length of the current request's head */
    uint32_t nreqs;        /* requests answered on this connection */
    uint8_t proto;         /* APPSRV_PROTO_* */
    uint8_t state;         /* APPSRV__ST_* */
    uint8_t tkind;         /* which timeout the deadline stands for */
    bool readable;         /* unread input may be waiting (edge seen) */
    bool rdhup;            /* peer shut its write side */
    bool eof;              /* read returned 0 */
    bool keep_alive;       /* this request's connection may be reused */
    bool close_after;      /* close once the output queue drains */
    bool must_linger;      /* request bytes may be unread: lingering close */
    bool closing;          /* closed; on the worker's closed list */
    bool head_started;     /* the parser state is set for this request */
    bool body_in_heap;     /* Content-Length body read into body_heap */
    bool host_holds;       /* a deferred/streamed response is with the host */
    bool zombie;           /* closed while the host holds its response */
    appsrv_addr_t peer;
};

/* conn.c */
void appsrv__conn_accepted(appsrv__worker_t *w, int fd, const appsrv_addr_t *peer, int kind);
void appsrv__conn_close(appsrv__conn_t *c);
void appsrv__conn_free_closed(appsrv__worker_t *w);
void appsrv__conn_drain(appsrv__conn_t *c); /* graceful stop: close if idle */
void appsrv__conn_drive(appsrv__conn_t *c);
/* The handler returned APPSRV_LATER: the host holds res from now on. */
void appsrv__conn_wait(appsrv__conn_t *c, appsrv_res_t *res);
/* Appends a copy of bytes to the output queue. Returns 0 or -ENOSPC when
 * the staging area is full (flush first). */
int appsrv__out_copy(appsrv__conn_t *c, const void *data, size_t len);
/* Reserves need bytes of staging space (NULL: no room; flush first), then
 * commits the len <= need bytes written there as output. */
char *appsrv__out_reserve(appsrv__conn_t *c, size_t need);
void appsrv__out_commit(appsrv__conn_t *c, char *p, size_t len);
/* Space for need bytes of output: in the staging area when it has room,
 * else a heap buffer (*heap set). appsrv__out_finish() then queues the
 * len bytes written there. Returns NULL when out of memory. */
char *appsrv__out_begin(appsrv__conn_t *c, size_t need, char **heap);
void appsrv__out_finish(appsrv__conn_t *c, char *p0, size_t len, char *heap);
/* free(data), as an output segment's release callback. */
void appsrv__free_cb(void *data, void *ud);
/* Appends a reference; free_cb(data, ud) runs once written or dropped.
 * Returns 0 or -ENOSPC (no segment slot). */
int appsrv__out_ref(appsrv__conn_t *c, const void *data, size_t len,
                    void (*free_cb)(void *, void *), void *data_to_free, void *ud);
/* Bytes of staging space left / segment slots left. */
size_t appsrv__out_room(const appsrv__conn_t *c);
static inline bool appsrv__out_busy(const appsrv__conn_t *c)
{
    return c->nsegs != 0;
}
/* The request context (valid while c->rblk is held). */
static inline appsrv__rctx_t *appsrv__ctx(appsrv__conn_t *c)
{
    return &c->rblk->ctx;
}
appsrv__hdr_t *appsrv__block_hdrs(appsrv__block_t *b);

/* Called from the completion queue on the loop thread. */
void appsrv__res_service(appsrv_res_t *res);
/* Runs the cancel callback once, and marks res gone. */
void appsrv__res_cancel(appsrv_res_t *res);
/* Frees a zombie conn once its response is finished. */
void appsrv__conn_release_zombie(appsrv__conn_t *c);
/* Takes res off the completion queue if it is there. */
void appsrv__res_unqueue(appsrv_res_t *res);
/* Queues res for the loop (caller holds qlock) and wakes it. */
void appsrv__res_enqueue_locked(appsrv_res_t *res);
/* Takes the oldest response off w's completion queue, or NULL (caller
 * holds qlock). */
appsrv_res_t *appsrv__res_pop_locked(appsrv__worker_t *w);

/* http.c / line.c: consume buffered input, queue responses.
 * Returns 1 when progress was made, 0 when more input (or output room) is
 * needed, or -1 when the connection must close now. */
int appsrv__http_process(appsrv__conn_t *c);
int appsrv__line_process(appsrv__conn_t *c);
/* Queues a library-made error response (and closes after it). */
void appsrv__http_error(appsrv__conn_t *c, int status);
void appsrv__line_error(appsrv__conn_t *c, int status);
/* Response object life cycle (http.c). */
void appsrv__res_reset(appsrv_res_t *res, appsrv__conn_t *c);
void appsrv__res_dispose(appsrv_res_t *res);
const char *appsrv__reason(int status);
/* Calls the access-log callback, if any. */
void appsrv__log_request(appsrv__conn_t *c, const appsrv_req_t *req, int status, uint64_t bytes);

#endif /* APPSRV_INTERNAL_H */
