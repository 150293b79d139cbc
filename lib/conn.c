/* SPDX-License-Identifier: MIT */
/*
 * conn.c - one client connection from accept to close: reading into the
 * pooled input block, writing the output queue (one writev per batch),
 * timeouts, the lingering close, the idle list and the reference count.
 * Called by loop.c on readiness (edge-triggered: EPOLLIN|EPOLLOUT|
 * EPOLLRDHUP registered once, so no epoll_ctl per request) and by
 * listen.c at accept; does all I/O through the transport table
 * (transport.h) and hands bytes to the protocol table (proto.h).
 * Invariants: bytes of rbuf before the output queue drains may be
 * referenced by queued responses (request views), so rbuf is compacted or
 * released only when the queue is empty. A connection is freed only when
 * its last reference goes (conn.h), and then only after the loop's
 * dispatch pass. A file segment in the output queue (pool.h) is sent
 * through the transport's sendfile operation, or read into a pool block
 * and written when the transport has none: conn.c never knows whether
 * that is TLS.
 */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "stats.h"

enum { TK_NONE = 0, TK_HEAD, TK_IDLE, TK_BODY, TK_WRITE, TK_LINGER, TK_RESPONSE };

#define LINGER_MS 2000
#define MAX_FREE_CONNS 1024
#define CONN_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

static void conn_drive(appsrv__conn_t *c);

/* Between requests: nothing buffered, nothing to send. */
static inline bool conn_idle(const appsrv__conn_t *c)
{
    return c->state == APPSRV__ST_HEAD && !appsrv__out_busy(c) &&
           (c->rblk == NULL || c->rlen == c->rpos);
}

/* ---------------------------------------------------------------- timers */

static void set_timeout(appsrv__conn_t *c, int kind, bool restart)
{
    const appsrv_config_t *cfg = c->w->cfg;
    appsrv__loop_t *loop = &c->w->loop;
    if (kind == c->tkind && !restart)
        return;
    int ms;
    switch (kind) {
    case TK_HEAD:
        ms = cfg->head_timeout_ms;
        break;
    case TK_IDLE:
    case TK_BODY:
        ms = cfg->idle_timeout_ms;
        break;
    case TK_WRITE:
        ms = cfg->write_timeout_ms;
        break;
    case TK_RESPONSE:
        ms = cfg->response_timeout_ms;
        break;
    case TK_NONE:
        c->tkind = TK_NONE;
        appsrv__timer_stop(loop, &c->timer);
        return;
    default:
        ms = LINGER_MS;
        break;
    }
    c->tkind = (uint8_t)kind;
    c->deadline_ms = loop->now_ms + (uint64_t)ms;
    /* Lazy re-arm: a later deadline leaves the heap alone; the timer fires
     * early and moves itself (one heap operation per timeout period, not
     * per request). */
    if (!appsrv__timer_armed(&c->timer) || c->timer.when_ms > c->deadline_ms)
        appsrv__timer_start(loop, &c->timer, c->deadline_ms);
}

/* A timeout fired: counted by kind and reported (rate-limited). Idle and
 * linger timeouts are the normal end of a connection: debug level. */
static void count_timeout(appsrv__conn_t *c)
{
    appsrv__worker_t *w = c->w;
    int k = c->tkind - TK_HEAD;
    if (k < 0 || k >= APPSRV__NTIMEOUTS)
        return;
    appsrv__ctr_add(&w->stats.timeouts[k], 1);
    if (w->cfg->on_event != NULL) {
        bool normal = c->tkind == TK_IDLE || c->tkind == TK_LINGER;
        appsrv__event(&w->stats, w->cfg, w->loop.now_ms, APPSRV__EV_TIMEOUT,
                      normal ? APPSRV_LEVEL_DEBUG : APPSRV_LEVEL_INFO, appsrv__timeout_names[k], 0,
                      0, &c->peer);
    }
}

static void conn_timer_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    appsrv__conn_t *c = appsrv__container_of(t, appsrv__conn_t, timer);
    if (c->closed)
        return;
    if (loop->now_ms < c->deadline_ms) {
        appsrv__timer_start(loop, t, c->deadline_ms);
        return;
    }
    count_timeout(c);
    switch (c->tkind) {
    case TK_RESPONSE:
        /* The host did not answer in time: tell it, and the client. */
        if (appsrv__conn_host_holds(c) && !appsrv__out_busy(c)) {
            c->proto->cancel(c);
            c->proto->error(c, 503);
            conn_drive(c);
            return;
        }
        appsrv__conn_close(c);
        return;
    case TK_HEAD:
    case TK_BODY:
        /* RFC 9110 §15.5.9: 408 tells the client we give up waiting. */
        if (c->ready && !appsrv__out_busy(c) && c->state != APPSRV__ST_LINGER) {
            c->proto->error(c, 408);
            c->readable = false;
            conn_drive(c);
            return;
        }
        if (!c->ready && c->preamble == NULL) /* a handshake that never finished (TLS) */
            appsrv__stats_tls_failed(&c->w->stats, c->w->cfg, loop->now_ms,
                                     "handshake timed out", &c->peer);
        appsrv__conn_close(c);
        return;
    default:
        /* idle keep-alive, write stall, linger: just close */
        appsrv__conn_close(c);
        return;
    }
}

/* ------------------------------------------------------------------ lists */

/* Live and held connections are doubly linked lists headed in the worker;
 * closed ones wait, singly linked, for the end of the pass. */
static void list_push(appsrv__conn_t **head, appsrv__conn_t *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head != NULL)
        (*head)->prev = c;
    *head = c;
}

static void list_unlink(appsrv__conn_t **head, appsrv__conn_t *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

/* The idle list is in the order connections went idle: the head has been
 * idle longest (evicted first at the cap). */
static void idle_push(appsrv__conn_t *c)
{
    appsrv__worker_t *w = c->w;
    c->idle = true;
    c->idle_next = NULL;
    c->idle_prev = w->idle_tail;
    if (w->idle_tail != NULL)
        w->idle_tail->idle_next = c;
    else
        w->idle_head = c;
    w->idle_tail = c;
    w->nidle++;
}

static void idle_unlink(appsrv__conn_t *c)
{
    appsrv__worker_t *w = c->w;
    if (!c->idle)
        return;
    if (c->idle_prev != NULL)
        c->idle_prev->idle_next = c->idle_next;
    else
        w->idle_head = c->idle_next;
    if (c->idle_next != NULL)
        c->idle_next->idle_prev = c->idle_prev;
    else
        w->idle_tail = c->idle_prev;
    c->idle_next = c->idle_prev = NULL;
    c->idle = false;
    w->nidle--;
}

/* ------------------------------------------------------------- out queue */

/* File bytes one flush sends before the connection yields to the others
 * on its worker (a fast reader of a big file would otherwise never see
 * EAGAIN), and the most one sendfile(2) call is asked for. */
#define FILE_BUDGET (8u << 20)

/* Sends from the file segment s at the head of the queue: sendfile when
 * the transport has it, else pread into a pool block and writev (TLS;
 * after a short write the same bytes are read again, which a TLS record
 * retry needs). Memory stays one block whatever the file's size. Returns
 * what the transport returned (bytes, -EAGAIN, -errno); *want is what
 * was offered. A file that ends early is -EIO: the head promised more. */
static ssize_t out_file(appsrv__conn_t *c, const appsrv__seg_t *s, size_t *want)
{
    const appsrv__fseg_t *f = s->free_data;
    size_t rest = s->len - c->out.off;
    off_t pos = f->off + (off_t)c->out.off;
    ssize_t w;
    if (c->sock.tp->sendfile != NULL) {
        *want = rest < FILE_BUDGET ? rest : FILE_BUDGET;
        w = c->sock.tp->sendfile(&c->sock, f->fd, pos, *want);
        if (w != -EINVAL && w != -ENOSYS)
            return w == 0 ? -EIO : w;
    }
    appsrv__pool_t *pool = &c->w->pool;
    appsrv__block_t *b = appsrv__block_get(pool);
    if (b == NULL)
        return -ENOMEM;
    char *buf = appsrv__block_data(pool, b);
    size_t n = rest < pool->data_cap ? rest : pool->data_cap;
    do
        w = pread(f->fd, buf, n, pos);
    while (w < 0 && errno == EINTR);
    if (w > 0) {
        struct iovec iov = {buf, (size_t)w};
        *want = (size_t)w;
        w = c->sock.tp->writev(&c->sock, &iov, 1);
    } else {
        w = w == 0 ? -EIO : -errno;
    }
    appsrv__block_put(pool, b);
    return w;
}

/* Writes as much of the queue as the transport takes. Returns 1 if
 * something was written, 0 if it takes nothing now, -errno on a dead
 * peer. */
static int out_flush(appsrv__conn_t *c)
{
    int progress = 0;
    size_t file_sent = 0;
    while (appsrv__outq_busy(&c->out)) {
        struct iovec iov[APPSRV__MAX_SEGS];
        int n = appsrv__outq_iov(&c->out, iov, APPSRV__MAX_SEGS);
        size_t want = 0;
        ssize_t w = 0;
        const appsrv__seg_t *fs;
        if (n > 0) {
            for (int i = 0; i < n; i++)
                want += iov[i].iov_len;
            w = c->sock.tp->writev(&c->sock, iov, n);
            if (w == -EAGAIN)
                return progress;
            if (w < 0)
                return (int)w;
            appsrv__ctr_add(&c->w->stats.bytes_out, (uint64_t)w);
            progress = 1;
        } else if (appsrv__unlikely((fs = appsrv__outq_file_head(&c->out)) != NULL)) {
            if (file_sent >= FILE_BUDGET) {
                /* Yield; EPOLL_CTL_MOD re-reports a writable socket. */
                appsrv__loop_mod(&c->w->loop, &c->io, CONN_EVENTS);
                return progress;
            }
            w = out_file(c, fs, &want);
            if (w == -EAGAIN)
                return progress;
            if (w < 0)
                return (int)w;
            file_sent += (size_t)w;
            appsrv__ctr_add(&c->w->stats.bytes_out, (uint64_t)w);
            progress = 1;
        }
        appsrv__outq_consume(&c->out, &c->w->pool, (size_t)w);
        if ((size_t)w < want)
            return progress; /* short write: the socket buffer is full */
    }
    return 1;
}

/* ------------------------------------------------------------ input side */

static void rbuf_release(appsrv__conn_t *c)
{
    if (c->rblk != NULL) {
        c->proto->ctx_dispose(c);
        appsrv__block_put(&c->w->pool, c->rblk);
    }
    c->rblk = NULL;
    c->rbuf = NULL;
    c->ctx = NULL;
    c->rlen = c->rpos = 0;
    c->head_started = false;
}

static int rbuf_ensure(appsrv__conn_t *c)
{
    if (c->rblk != NULL)
        return 0;
    appsrv__pool_t *pool = &c->w->pool;
    c->rblk = appsrv__block_get(pool);
    if (c->rblk == NULL)
        return -ENOMEM;
    idle_unlink(c);
    c->rbuf = appsrv__block_data(pool, c->rblk);
    c->ctx = appsrv__block_ctx(c->rblk);
    c->rlen = c->rpos = 0;
    c->head_started = false;
    c->proto->ctx_init(c);
    return 0;
}

/* Moves the unprocessed tail to the front. Only with an empty out queue:
 * queued responses may point into the processed part. */
static void rbuf_compact(appsrv__conn_t *c)
{
    if (c->rpos == 0 || appsrv__out_busy(c))
        return;
    if (c->state == APPSRV__ST_BODY && c->proto->rebase != NULL)
        c->proto->rebase(c, c->rpos);
    memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
    c->rlen -= c->rpos;
    c->rpos = 0;
}

/* Reads once. Returns bytes read, 0 at EOF, -EAGAIN when drained,
 * -ENOBUFS when there is no room until the output drains, or -errno. */
static ssize_t conn_read(appsrv__conn_t *c)
{
    size_t cap = c->w->pool.data_cap;
    char *dst;
    size_t room;
    ssize_t n;

    if (c->state == APPSRV__ST_LINGER) {
        char sink[4096];
        return c->sock.tp->read(&c->sock, sink, sizeof(sink));
    }
    if (rbuf_ensure(c) < 0)
        return -ENOMEM;
    if (c->state == APPSRV__ST_BODY && c->body_in_heap) {
        /* A Content-Length body too big for rbuf goes straight to its own
         * buffer: no copy, and never past the body (pipelining). */
        dst = c->body_heap + c->body_len;
        room = c->body_cap - c->body_len;
    } else {
        if (c->rlen == cap) {
            rbuf_compact(c);
            if (c->rlen == cap && c->state == APPSRV__ST_BODY && c->head_started) {
                /* chunked: drop consumed framing and data (already copied)
                 * between the head and the unparsed bytes */
                uint32_t hl = c->hlen;
                if (c->bpos > hl) {
                    memmove(c->rbuf + c->rpos + hl, c->rbuf + c->rpos + c->bpos,
                            c->rlen - c->rpos - c->bpos);
                    c->rlen -= c->bpos - hl;
                    c->bpos = hl;
                }
            }
            if (c->rlen == cap)
                return -ENOBUFS;
        }
        dst = c->rbuf + c->rlen;
        room = cap - c->rlen;
    }
    if (room == 0)
        return -ENOBUFS;
    n = c->sock.tp->read(&c->sock, dst, room);
    if (n > 0) {
        appsrv__ctr_add(&c->w->stats.bytes_in, (uint64_t)n);
        if (c->state == APPSRV__ST_BODY && c->body_in_heap)
            c->body_len += (size_t)n;
        else
            c->rlen += (uint32_t)n;
        /* With edge triggering, a short read means the socket is drained
         * (a new arrival raises a new edge), saving one read per request.
         * Not after RDHUP: the EOF itself must still be read. Bytes the
         * transport already holds raise no edge: ask it. */
        if ((size_t)n < room && !c->rdhup &&
            (c->sock.tp->pending == NULL || !c->sock.tp->pending(&c->sock)))
            c->readable = false;
    }
    return n;
}

/* ------------------------------------------------------------ life cycle */

/* The client left (FIN or reset) while the host holds its response: the
 * host hears of it through the cancel callback. Responses already queued
 * for earlier pipelined requests still go out before the close. */
static void wait_peer_gone(appsrv__conn_t *c)
{
    if (!appsrv__out_busy(c)) {
        appsrv__conn_close(c);
        return;
    }
    c->proto->cancel(c);
    c->keep_alive = false;
    c->close_after = true;
}

static void conn_io_cb(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events)
{
    (void)loop;
    appsrv__conn_t *c = appsrv__container_of(io, appsrv__conn_t, io);
    if (c->closed)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->readable = true;
    /* A transport's read may wait for the socket to turn writable (a TLS
     * record layer answering a key update): that raises EPOLLOUT only. */
    if ((events & EPOLLOUT) && c->sock.tp->pending != NULL && c->sock.tp->pending(&c->sock))
        c->readable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rdhup = true;
    if (c->rdhup && c->state == APPSRV__ST_WAIT && !c->close_after) {
        wait_peer_gone(c);
        if (c->closed)
            return;
    }
    conn_drive(c);
}

void appsrv__conn_hold(appsrv__conn_t *c)
{
    c->refs++;
    appsrv__ctr_add(&c->w->stats.deferred_begun, 1); /* held = in flight */
}

void appsrv__conn_wait(appsrv__conn_t *c)
{
    appsrv__conn_hold(c);
    c->state = APPSRV__ST_WAIT;
    c->wait_untimed = false;
    c->tkind = TK_NONE; /* each held request gets its own response timeout */
}

void appsrv__conn_drive(appsrv__conn_t *c)
{
    if (!c->closed)
        conn_drive(c);
}

/* Enters the lingering close: our side is done; read and drop what the
 * client still sends (so our last response is not destroyed by a reset
 * for unread data) until EOF or LINGER_MS. */
static void conn_linger(appsrv__conn_t *c)
{
    /* Nothing unread (a plain "Connection: close"): close at once. */
    bool unread = c->must_linger || (c->rblk != NULL && c->rlen > c->rpos);
    if (c->eof || !unread) {
        appsrv__conn_close(c);
        return;
    }
    c->sock.tp->shutdown(&c->sock);
    c->state = APPSRV__ST_LINGER;
    set_timeout(c, TK_LINGER, true);
}

/* Rounds of read+process one readiness event may take before the
 * connection yields to the others on its worker. */
#define DRIVE_ROUNDS 64

static void conn_drive(appsrv__conn_t *c)
{
    uint32_t nreqs0 = c->nreqs;
    int round = 0;
    if (appsrv__unlikely(!c->ready)) {
        if (c->preamble != NULL) {
            /* Before any transport byte (the PROXY header, per-client
             * counts): it reports its own failure, not a handshake's. */
            int r = c->preamble(c);
            if (r < 0) {
                appsrv__conn_close(c);
                return;
            }
            if (r == 0)
                return;
            c->preamble = NULL;
        }
        /* The transport's handshake, bounded by the head timeout that
         * started at accept. */
        int r = c->sock.tp->handshake != NULL ? c->sock.tp->handshake(&c->sock) : 1;
        if (r < 0) {
            appsrv__stats_tls_failed(&c->w->stats, c->w->cfg, c->w->loop.now_ms,
                                     appsrv_strerror(r), &c->peer);
            appsrv__conn_close(c);
            return;
        }
        if (r == 0)
            return;
        c->ready = true;
        c->readable = true; /* the handshake may have read request bytes */
    }
    for (; round < DRIVE_ROUNDS && !c->closed; round++) {
        if (appsrv__out_busy(c)) {
            int r = out_flush(c);
            if (r < 0) {
                appsrv__conn_close(c);
                return;
            }
            if (appsrv__out_busy(c)) {
                /* Backpressure: stop taking requests until EPOLLOUT. */
                set_timeout(c, TK_WRITE, r > 0 || c->tkind != TK_WRITE);
                return;
            }
            if (c->close_after && c->state != APPSRV__ST_LINGER) {
                conn_linger(c);
                if (c->closed)
                    return;
            }
        }
        if (c->state != APPSRV__ST_LINGER && !c->close_after) {
            int r = c->proto->process(c);
            if (r < 0) {
                appsrv__conn_close(c);
                return;
            }
            if (appsrv__out_busy(c))
                continue;
            if (c->close_after)
                continue;
        }
        /* While the host holds a response, later input waits in the
         * socket: bounded memory, and views into rbuf stay put. A FIN seen
         * with the request (same event) cancels it like one seen later. */
        if (c->state == APPSRV__ST_WAIT && c->rdhup && !c->close_after) {
            wait_peer_gone(c);
            if (c->closed)
                return;
            continue; /* flush what is queued, then close */
        }
        if (!c->readable || c->state == APPSRV__ST_WAIT)
            break;
        ssize_t n = conn_read(c);
        if (n == -EAGAIN) {
            c->readable = false;
            break;
        }
        if (n == -ENOBUFS)
            break; /* waiting for the output to drain */
        if (n == 0) {
            c->eof = true;
            c->readable = false;
            if (c->state == APPSRV__ST_LINGER) {
                appsrv__conn_close(c);
                return;
            }
            /* Half-close: answer what is complete, then close. */
            if (c->proto->process(c) < 0) {
                appsrv__conn_close(c);
                return;
            }
            if (appsrv__out_busy(c)) {
                c->close_after = true;
                continue;
            }
            appsrv__conn_close(c);
            return;
        }
        if (n < 0) {
            appsrv__conn_close(c);
            return;
        }
    }
    if (c->closed)
        return;
    if (round == DRIVE_ROUNDS) {
        /* Out of rounds with work left (input, or output the host keeps
         * producing): yield to the other connections, and have epoll
         * report us again. EPOLL_CTL_MOD re-checks readiness, so a socket
         * that is still readable or writable is queued anew; nothing else
         * would wake us when no EAGAIN was seen. */
        appsrv__loop_mod(&c->w->loop, &c->io, CONN_EVENTS);
    }
    if (c->close_after && !appsrv__out_busy(c) && c->state != APPSRV__ST_LINGER) {
        conn_linger(c);
        return;
    }
    /* Arm the timeout that fits the state we are waiting in. */
    if (c->state == APPSRV__ST_LINGER)
        return;
    if (c->state == APPSRV__ST_WAIT) {
        if (!c->wait_untimed && c->w->cfg->response_timeout_ms > 0)
            set_timeout(c, TK_RESPONSE, false);
        else
            set_timeout(c, TK_NONE, true);
        return;
    }
    if (c->state == APPSRV__ST_BODY) {
        set_timeout(c, TK_BODY, true);
    } else if (c->rblk != NULL && c->rlen > c->rpos) {
        /* A partial head: its clock starts with it. Requests answered in
         * this pass mean the buffered bytes begin a new request. */
        set_timeout(c, TK_HEAD, c->nreqs != nreqs0);
    } else if (c->nreqs == 0) {
        set_timeout(c, TK_HEAD, false);
    } else {
        /* Idle from the last answer on: restart when one went out. */
        set_timeout(c, TK_IDLE, c->nreqs != nreqs0);
    }
    bool idle = conn_idle(c);
    if (idle && c->w->drain_idle_close && !c->proto->session) {
        /* Graceful stop: the response in flight is out; nothing else. */
        appsrv__conn_drain_idle(c);
        return;
    }
    if (idle) {
        /* Idle between requests: give the buffer back (no per-connection
         * buffer while idle), and queue for eviction at the cap (not a
         * session: it is not a spare connection). */
        if (c->rblk != NULL)
            rbuf_release(c);
        if (c->nreqs > 0 && !c->idle && !c->proto->session)
            idle_push(c);
    }
}

/* Drops what the connection still buffers and moves it to the closed
 * list, freed or pooled by appsrv__conn_free_closed(). */
static void retire(appsrv__conn_t *c)
{
    free(c->body_heap);
    c->body_heap = NULL;
    rbuf_release(c);
    c->next = c->w->closed;
    c->w->closed = c;
}

void appsrv__conn_accepted(appsrv__worker_t *w, int fd, const appsrv_addr_t *peer,
                           const appsrv__proto_t *proto, void *proto_data,
                           const appsrv__transport_t *tp, void *ldata)
{
    appsrv__conn_accepted_pre(w, fd, peer, proto, proto_data, tp, ldata, NULL);
}

void appsrv__conn_accepted_pre(appsrv__worker_t *w, int fd, const appsrv_addr_t *peer,
                               const appsrv__proto_t *proto, void *proto_data,
                               const appsrv__transport_t *tp, void *ldata,
                               int (*preamble)(appsrv__conn_t *c))
{
    appsrv__conn_t *c = w->free_conns;
    if (c != NULL) {
        w->free_conns = c->next;
        w->nfree_conns--;
    } else {
        c = malloc(sizeof(*c));
        if (c == NULL)
            goto fail;
    }
    memset(c, 0, sizeof(*c));
    c->io.fd = fd;
    c->io.cb = conn_io_cb;
    c->sock = (appsrv__tsock_t){.fd = fd, .tp = tp, .data = NULL};
    if (tp->attach != NULL && tp->attach(&c->sock, ldata) < 0) {
        c->next = w->free_conns;
        w->free_conns = c;
        w->nfree_conns++;
        goto fail;
    }
    c->timer.cb = conn_timer_cb;
    c->w = w;
    c->proto = proto;
    c->proto_data = proto_data;
    c->refs = 1;
    c->ready = tp->handshake == NULL && preamble == NULL;
    c->preamble = preamble;
    c->keep_alive = true;
    if (peer != NULL)
        c->peer = *peer;

    /* TCP_NODELAY comes from the listening socket (Linux copies it to
     * accepted sockets): no setsockopt per connection. */
    list_push(&w->conns, c);
    w->nconns++;
    appsrv__ctr_add(&w->stats.accepted[proto->id & 3], 1);
    appsrv__ctr_add(&w->stats.opened[proto->id & 3], 1);
    set_timeout(c, TK_HEAD, true);
    if (w->draining)
        c->close_after = true;
    /* Optimistic first read: a client sends its request right after the
     * TCP handshake, so by the time we accept it is usually there.
     * Answering it before the fd joins epoll saves the epoll_ctl of a
     * connection that closes after one request (Connection: close); the
     * EPOLL_CTL_ADD after it reports any readiness that came meanwhile,
     * so no edge is lost. */
    c->readable = true;
    conn_drive(c);
    if (c->closed)
        return;
    if (appsrv__loop_add(&w->loop, &c->io, CONN_EVENTS) < 0)
        appsrv__conn_close(c);
    return;

fail:
    {
        appsrv__tsock_t s = {.fd = fd, .tp = tp, .data = NULL};
        tp->close(&s);
    }
    atomic_fetch_sub(w->nconns_total, 1);
}

void appsrv__conn_close(appsrv__conn_t *c)
{
    appsrv__worker_t *w = c->w;
    if (c->closed)
        return;
    c->closed = true;
    if (appsrv__unlikely(c->on_close != NULL)) {
        c->on_close(c);
        c->on_close = NULL;
    }
    appsrv__timer_stop(&w->loop, &c->timer);
    c->sock.tp->close(&c->sock);
    c->io.fd = -1;
    appsrv__outq_reset(&c->out, &w->pool);
    idle_unlink(c);
    list_unlink(&w->conns, c);
    w->nconns--;
    appsrv__ctr_add(&w->stats.closed[c->proto->id & 3], 1);
    atomic_fetch_sub(w->nconns_total, 1);
    c->refs--; /* the loop's */
    bool held = c->refs > 0;
    if (held) {
        list_push(&w->held, c);
        w->nheld++;
    }
    /* The protocol tells the host (cancel), or drops the host's reference
     * when its response was already finished (which may retire c). */
    c->proto->closed(c);
    if (!held)
        retire(c);
}

void appsrv__conn_release(appsrv__conn_t *c)
{
    appsrv__ctr_add(&c->w->stats.deferred_done, 1);
    if (--c->refs != 0 || !c->closed)
        return;
    appsrv__worker_t *w = c->w;
    list_unlink(&w->held, c);
    w->nheld--;
    retire(c);
}

void appsrv__conn_free_closed(appsrv__worker_t *w)
{
    while (w->closed != NULL) {
        appsrv__conn_t *c = w->closed;
        w->closed = c->next;
        if (w->nfree_conns < MAX_FREE_CONNS && !w->draining) {
            c->next = w->free_conns;
            w->free_conns = c;
            w->nfree_conns++;
        } else {
            free(c);
        }
    }
}

void appsrv__conn_close_all(appsrv__worker_t *w, bool reclaim_held)
{
    while (w->conns != NULL)
        appsrv__conn_close(w->conns);
    while (reclaim_held && w->held != NULL) {
        appsrv__conn_t *c = w->held;
        c->refs = 1;
        appsrv__conn_release(c);
    }
    appsrv__conn_free_closed(w);
    while (w->free_conns != NULL) {
        appsrv__conn_t *c = w->free_conns;
        w->free_conns = c->next;
        free(c);
    }
    w->nfree_conns = 0;
}

void appsrv__conn_drain(appsrv__conn_t *c)
{
    /* Idle: left to the idle grace (appsrv__conn_drain_idle()); a request
     * sent meanwhile is answered with Connection: close. */
    if (conn_idle(c) && !c->proto->session)
        return;
    /* In flight (or a session, which says goodbye): answer it, then close
     * (Connection: close). */
    c->keep_alive = false;
    if (c->proto->drain != NULL)
        c->proto->drain(c);
    if (c->closed || c->state == APPSRV__ST_LINGER)
        return;
    conn_drive(c);
}

void appsrv__conn_drain_idle(appsrv__conn_t *c)
{
    if (c->closed || !conn_idle(c) || c->proto->session)
        return;
    /* Bytes that arrived before we looked (epoll not yet reported them)
     * are a request in flight: answer it. */
    char b;
    if (recv(c->sock.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
        c->readable = true;
        conn_drive(c);
        return;
    }
    /* A request may still be on its way: FIN first (shutdown), then read
     * and drop until the client's EOF or the linger timeout, so it sees
     * an orderly close it may retry on (RFC 9112 §9.3.1), never a reset
     * for unread data. */
    c->must_linger = true;
    conn_linger(c);
}

size_t appsrv__conn_evict_idle(appsrv__worker_t *w, size_t n)
{
    size_t done = 0;
    while (done < n && w->idle_head != NULL) {
        appsrv__conn_close(w->idle_head);
        done++;
    }
    return done;
}

int appsrv__conn_switch(appsrv__conn_t *c, const appsrv__proto_t *proto, void *proto_data)
{
    if (c->closed || c->state != APPSRV__ST_HEAD || appsrv__conn_host_holds(c) || c->head_started)
        return APPSRV_ESTATE;
    if (proto->ctx_size(c->w->cfg) > c->w->pool.ctx_cap)
        return -ENOSPC; /* the server sizes blocks for the protocols it may switch to */
    if (c->rblk != NULL)
        c->proto->ctx_dispose(c);
    appsrv__ctr_add(&c->w->stats.closed[c->proto->id & 3], 1);
    appsrv__ctr_add(&c->w->stats.opened[proto->id & 3], 1);
    c->proto = proto;
    c->proto_data = proto_data;
    if (c->rblk != NULL)
        proto->ctx_init(c);
    return 0;
}
