/* SPDX-License-Identifier: MIT */
/*
 * host.h - the host side of the deferred-response suites (test_deferred*.c,
 * test_streams.c, test_sse.c): what a host program would do. Handlers hand
 * res to a small host thread through a mutex-protected job queue and
 * return APPSRV_LATER; the host thread finishes each job after its delay
 * (or when the test releases it), from its own thread. Stream producers
 * run there too and honour -EAGAIN and the drain callback. Nothing here
 * asserts: server and host threads record what they saw in atomics.
 */
#ifndef APPSRV_TEST_HOST_H
#define APPSRV_TEST_HOST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include "e2e.h"

/*
 * A job the host thread finishes: by default it (optionally) sets status
 * and body from its own thread, checks that request views it was handed
 * still hold their bytes (req stays valid until res is finished, even
 * after the client is gone) and calls appsrv_res_send(). With fn set, fn
 * runs instead (stream producers).
 */
/*
 * A job the host thread finishes: by default it (optionally) sets status
 * and body from its own thread, checks that request views it was handed
 * still hold their bytes (req stays valid until res is finished, even
 * after the client is gone) and calls appsrv_res_send(). With fn set, fn
 * runs instead (stream producers).
 */
typedef struct host host_t;

typedef struct job job_t;

typedef struct tctx tctx_t;

#define HELD INT64_MAX /* due time of a job held until host_release_all() */

/* Per-request bookkeeping that outlives the request (cancel ud). */
typedef struct slot {
    tctx_t *t;
    atomic_int cancels;             /* cancel callbacks for this request */
    atomic_int finishing;           /* the host is calling appsrv_res_send/end */
    atomic_int finished;            /* the host finished res (and saw rc) */
    atomic_int rc;                  /* what appsrv_res_send/end returned */
    atomic_int cancel_after_finish; /* cancel ran after a successful finish */
    _Atomic int64_t t_cancel;       /* when the cancel callback ran */
} slot_t;

struct job {
    job_t *next;
    host_t *host;
    appsrv_res_t *res;
    int64_t due_ms;
    void (*fn)(job_t *j);
    void *arg;
    int status; /* > 0: the host thread sets status + body */
    char body[128];
    size_t big;        /* > 0: body of this many pattern bytes instead */
    appsrv_str_t view; /* request target as the handler saw it */
    char want[128];
    size_t want_len;
    appsrv_str_t bview; /* request body */
    uint32_t bsum;
    slot_t *slot;
};

struct host {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    job_t *head;
    bool quit;
    bool started;
    pthread_t th;
    atomic_int pushed, ran, ok, canceled, estate, other, last_other, view_bad;
};

struct tctx {
    host_t host;
    slot_t *slots;
    size_t nslots;
    atomic_int handled; /* deferring handler calls */
    atomic_int cancels; /* cancel callbacks, all requests */
    atomic_int fast;    /* /fast answers */
    atomic_bool release_on_cancel;
    atomic_bool send_in_cancel; /* the cancel callback finishes res */
    /* state-error checks recorded by handlers (loop thread) */
    atomic_int rcs[16];
    atomic_int nrcs;
    /* a response held by a handler for another handler to finish */
    appsrv_res_t *held;
    atomic_int held_rc;
    atomic_int flag_a, flag_b;
    void *arg; /* per-test extra */
};

/* Writes the NULL-terminated strings in arg, then ends the stream. With
 * begin set, the host thread starts the stream itself. */
typedef struct parts {
    const char *const *parts;
    bool begin; /* appsrv_res_stream() from the host thread */
    int gap_ms; /* pause between parts (the reader sees them apart) */
    atomic_int begin_rc, write_bad, end_rc;
} parts_t;

/*
 * A producer of `total` pattern bytes in `piece`-byte writes that honours
 * -EAGAIN (waits for the drain callback) the way a host should.
 */
typedef struct prod {
    size_t total, piece;
    bool begin;                /* appsrv_res_stream() from the host thread */
    bool fill_in_handler;      /* the handler writes until -EAGAIN first */
    int stop_after_ms;         /* > 0: write one piece per 10 ms until canceled */
    size_t handler_accepted;   /* what the handler's writes took */
    atomic_int handler_eagain; /* the handler's writes ended with -EAGAIN */
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* CLOCK_MONOTONIC */
    unsigned drains;    /* drain callbacks seen (mu) */
    bool waiting;       /* blocked on a drain (mu) */
    int64_t wait_since; /* (mu) */
    atomic_int eagains, errors, last_err, end_rc, done, stream_rc, ending;
    atomic_size_t accepted; /* bytes appsrv_res_write took */
} prod_t;

/* The deterministic stream pattern: a hash of the 256-byte block plus the
 * offset in it, so a lost, doubled or reordered byte is caught. */
static inline unsigned char pat_at(uint64_t off)
{
    uint64_t x = (off >> 8) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return (unsigned char)((x >> 24) + (off & 0xff));
}

void host_record(host_t *h, int rc);
uint32_t sum32(const void *p, size_t n);
void pat_fill(unsigned char *p, uint64_t off, size_t n);
/* Starts the host thread. Returns 0 or a negative errno. */
int host_start(host_t *h);
/* Hands a job to the host thread (any thread; handlers call it). */
void host_push(host_t *h, job_t *j);
/* Makes every held job due now. */
void host_release_all(host_t *h);
bool host_quitting(host_t *h);
/* Finishes every job left (now) and joins the host thread. */
void host_finish(host_t *h);
/* A test context with nslots request slots and a running host thread, or
 * NULL. */
tctx_t *tctx_new(size_t nslots);
void tctx_free(tctx_t *t);
slot_t *slot_of(tctx_t *t, long id);
void cancel_cb(appsrv_res_t *res, void *ud);
void record_rc(tctx_t *t, int rc);
long qint(const appsrv_req_t *req, const char *name, long def);
int h_fast(appsrv_req_t *req, appsrv_res_t *res, void *user);
/*
 * GET|POST /d?id=N[&ms=M][&mode=h][&big=B]: deferred. The host thread
 * finishes it M ms after the handler ran (no ms: held until released),
 * answering "d N" (or B pattern bytes). mode=h sets status and body in
 * the handler instead of on the host thread.
 */
int h_defer(appsrv_req_t *req, appsrv_res_t *res, void *user);
/* Line command "SLOW <id> [ms]": deferred like /d, reply "200 OK slow <id>". */
int l_slow(appsrv_req_t *req, appsrv_res_t *res, void *user);
void job_parts(job_t *j);
/* GET /s: a stream of the parts in t->arg (started in the handler unless
 * the parts say the host starts it). */
int h_stream_parts(appsrv_req_t *req, appsrv_res_t *res, void *user);
void prod_init(prod_t *p, size_t total, size_t piece);
void prod_destroy(prod_t *p);
unsigned prod_drains(prod_t *p);
/* The drain callback: loop thread, must not block. */
void drain_cb(appsrv_res_t *res, void *ud);
/* Waits (bounded; cut short when the host quits or the response is
 * canceled) for a drain after d0. */
bool prod_wait_drain(prod_t *p, host_t *h, slot_t *sl, unsigned d0, int timeout_ms);
void job_produce(job_t *j);
/* GET /p: a produced stream (t->arg is the prod_t). */
int h_produce(appsrv_req_t *req, appsrv_res_t *res, void *user);
/*
 * The server's end of a client connection: the server runs in this
 * process, so its socket is one of our fds. Found by matching addresses
 * (reading queue sizes only; the library's use of it is undisturbed).
 */
int find_server_side(int client_fd);
/* Waits (bounded) until the server's end of a connection has seen the
 * client's FIN (POLLRDHUP). A readiness query only: the library's epoll
 * registration is not affected. */
bool wait_peer_fin(int server_fd, int timeout_ms);
/* Waits (bounded) until the server has accepted client_fd; returns the
 * server's end of it, or -1. */
int wait_accepted(int client_fd, int timeout_ms);
bool raise_nofile(rlim_t want);
const e2e_route_t *defer_routes(tctx_t *t, size_t *n);
appsrv_config_t timeout_cfg(int ms);

#endif /* APPSRV_TEST_HOST_H */
