/* SPDX-License-Identifier: MIT */
/*
 * conn.c - one client connection from accept to close: reading into the
 * pooled input block, the output queue (staging area + segments written
 * with one sendmsg), timeouts, lingering close. Called by loop.c on
 * readiness (edge-triggered: EPOLLIN|EPOLLOUT|EPOLLRDHUP registered once,
 * so no epoll_ctl per request) and by server.c at accept; calls http.c or
 * line.c to turn buffered bytes into queued responses.
 * Invariants: bytes of rbuf before the output queue drains may be
 * referenced by queued responses (request views), so rbuf is compacted or
 * released only when the queue is empty. A conn is freed only from the
 * worker's closed list, after the loop's dispatch pass.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

enum { TK_NONE = 0, TK_HEAD, TK_IDLE, TK_BODY, TK_WRITE, TK_LINGER, TK_RESPONSE };

#define LINGER_MS 2000
#define MAX_FREE_CONNS 1024

static void conn_drive(appsrv__conn_t *c);

appsrv__hdr_t *appsrv__block_hdrs(appsrv__block_t *b)
{
    return (appsrv__hdr_t *)(void *)b->tail;
}

static char *block_data(const appsrv_server_t *srv, appsrv__block_t *b)
{
    return b->tail + srv->cfg.max_headers * sizeof(appsrv__hdr_t);
}

/* ---------------------------------------------------------------- timers */

static void set_timeout(appsrv__conn_t *c, int kind, bool restart)
{
    const appsrv_config_t *cfg = &c->w->srv->cfg;
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

static void conn_timer_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    appsrv__conn_t *c = appsrv__container_of(t, appsrv__conn_t, timer);
    if (c->closing)
        return;
    if (loop->now_ms < c->deadline_ms) {
        appsrv__timer_start(loop, t, c->deadline_ms);
        return;
    }
    switch (c->tkind) {
    case TK_RESPONSE:
        /* The host did not answer in time: tell it, and the client. */
        if (c->host_holds && !appsrv__out_busy(c)) {
            appsrv__res_cancel(&appsrv__ctx(c)->res);
            if (c->proto == APPSRV_PROTO_HTTP)
                appsrv__http_error(c, 503);
            else
                appsrv__line_error(c, 503);
            conn_drive(c);
            return;
        }
        appsrv__conn_close(c);
        return;
    case TK_HEAD:
    case TK_BODY:
        /* RFC 9110 §15.5.9: 408 tells the client we give up waiting. */
        if (!appsrv__out_busy(c) && c->state != APPSRV__ST_LINGER) {
            if (c->proto == APPSRV_PROTO_HTTP)
                appsrv__http_error(c, 408);
            else
                appsrv__line_error(c, 408);
            c->readable = false;
            conn_drive(c);
            return;
        }
        appsrv__conn_close(c);
        return;
    default:
        /* idle keep-alive, write stall, linger: just close */
        appsrv__conn_close(c);
        return;
    }
}

/* ------------------------------------------------------------- out queue */

size_t appsrv__out_room(const appsrv__conn_t *c)
{
    if (c->nsegs >= APPSRV__MAX_SEGS - 4)
        return 0;
    if (c->oblk == NULL)
        return c->w->srv->block_data_cap;
    return c->w->srv->block_data_cap - c->olen;
}

static int out_ensure(appsrv__conn_t *c)
{
    if (c->oblk == NULL) {
        c->oblk = appsrv__block_get(c->w);
        if (c->oblk == NULL)
            return -ENOMEM;
        c->obuf = block_data(c->w->srv, c->oblk);
        c->olen = 0;
    }
    return 0;
}

char *appsrv__out_reserve(appsrv__conn_t *c, size_t need)
{
    if (out_ensure(c) < 0)
        return NULL;
    if (need > c->w->srv->block_data_cap - c->olen || c->nsegs >= APPSRV__MAX_SEGS)
        return NULL;
    return c->obuf + c->olen;
}

void appsrv__out_commit(appsrv__conn_t *c, char *p, size_t len)
{
    if (len == 0)
        return;
    c->olen += (uint32_t)len;
    appsrv__seg_t *segs = c->oblk->segs;
    if (c->nsegs > c->seg_head) {
        appsrv__seg_t *last = &segs[c->nsegs - 1];
        /* Consecutive staged bytes form one segment: a batch of pipelined
         * responses goes out as one iovec. */
        if (last->free_cb == NULL && last->ptr + last->len == p) {
            last->len += len;
            return;
        }
    }
    segs[c->nsegs++] = (appsrv__seg_t){.ptr = p, .len = len};
}

void appsrv__free_cb(void *data, void *ud)
{
    (void)ud;
    free(data);
}

char *appsrv__out_begin(appsrv__conn_t *c, size_t need, char **heap)
{
    *heap = NULL;
    char *p = appsrv__out_reserve(c, need);
    if (p == NULL)
        p = *heap = malloc(need);
    return p;
}

void appsrv__out_finish(appsrv__conn_t *c, char *p0, size_t len, char *heap)
{
    if (heap == NULL)
        appsrv__out_commit(c, p0, len);
    else if (appsrv__out_ref(c, heap, len, appsrv__free_cb, heap, NULL) < 0)
        free(heap); /* cannot happen: callers check the room first */
}

int appsrv__out_copy(appsrv__conn_t *c, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    char *p = appsrv__out_reserve(c, len);
    if (p == NULL)
        return c->oblk == NULL ? -ENOMEM : -ENOSPC;
    memcpy(p, data, len);
    appsrv__out_commit(c, p, len);
    return 0;
}

int appsrv__out_ref(appsrv__conn_t *c, const void *data, size_t len,
                    void (*free_cb)(void *, void *), void *data_to_free, void *ud)
{
    if (out_ensure(c) < 0)
        return -ENOMEM;
    if (c->nsegs >= APPSRV__MAX_SEGS)
        return -ENOSPC;
    c->oblk->segs[c->nsegs++] = (appsrv__seg_t){
        .ptr = data, .len = len, .free_cb = free_cb, .free_data = data_to_free, .free_ud = ud};
    return 0;
}

static void seg_release(appsrv__seg_t *s)
{
    if (s->free_cb != NULL) {
        void (*cb)(void *, void *) = s->free_cb;
        s->free_cb = NULL;
        cb(s->free_data, s->free_ud);
    }
}

static void out_reset(appsrv__conn_t *c)
{
    if (c->oblk != NULL) {
        for (unsigned i = c->seg_head; i < c->nsegs; i++)
            seg_release(&c->oblk->segs[i]);
        appsrv__block_put(c->w, c->oblk);
    }
    c->oblk = NULL;
    c->obuf = NULL;
    c->olen = 0;
    c->nsegs = c->seg_head = 0;
    c->seg_off = 0;
}

/* Writes as much of the queue as the socket takes. Returns 1 if something
 * was written, 0 if the socket is full, -errno on a dead peer. */
static int out_flush(appsrv__conn_t *c)
{
    int progress = 0;
    while (c->seg_head < c->nsegs) {
        struct iovec iov[APPSRV__MAX_SEGS];
        appsrv__seg_t *segs = c->oblk->segs;
        int n = 0;
        for (unsigned i = c->seg_head; i < c->nsegs; i++) {
            size_t off = i == c->seg_head ? c->seg_off : 0;
            if (segs[i].len - off == 0)
                continue;
            iov[n].iov_base = (void *)(segs[i].ptr + off);
            iov[n].iov_len = segs[i].len - off;
            n++;
        }
        ssize_t w = 0;
        if (n > 0) {
            struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
            w = sendmsg(c->io.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN)
                    return progress;
                return -errno;
            }
            progress = 1;
        }
        /* Advance over what was written; release finished segments
         * (zero-length ones only carry a release, e.g. a request body). */
        size_t left = (size_t)w;
        while (c->seg_head < c->nsegs) {
            appsrv__seg_t *s = &segs[c->seg_head];
            size_t rest = s->len - c->seg_off;
            if (left < rest) {
                c->seg_off += left;
                break;
            }
            left -= rest;
            seg_release(s);
            c->seg_head++;
            c->seg_off = 0;
        }
        if (c->seg_head < c->nsegs && n > 0)
            return progress; /* short write: the socket buffer is full */
    }
    out_reset(c);
    return 1;
}

/* ------------------------------------------------------------ input side */

static void rbuf_release(appsrv__conn_t *c)
{
    if (c->rblk != NULL) {
        appsrv__res_dispose(&appsrv__ctx(c)->res);
        appsrv__block_put(c->w, c->rblk);
    }
    c->rblk = NULL;
    c->rbuf = NULL;
    c->rlen = c->rpos = 0;
    c->head_started = false;
}

static int rbuf_ensure(appsrv__conn_t *c)
{
    if (c->rblk != NULL)
        return 0;
    c->rblk = appsrv__block_get(c->w);
    if (c->rblk == NULL)
        return -ENOMEM;
    c->rbuf = block_data(c->w->srv, c->rblk);
    c->rlen = c->rpos = 0;
    c->head_started = false;
    appsrv__res_reset(&appsrv__ctx(c)->res, c);
    return 0;
}

/* Moves the unprocessed tail to the front. Only with an empty out queue:
 * queued responses may point into the processed part. */
static void rbuf_compact(appsrv__conn_t *c)
{
    if (c->rpos == 0 || appsrv__out_busy(c))
        return;
    if (c->state == APPSRV__ST_BODY) {
        /* The request's views were taken when its head was parsed. */
        appsrv_req_t *r = &appsrv__ctx(c)->req;
        r->base -= c->rpos;
        r->method.ptr -= c->rpos;
        r->target.ptr -= c->rpos;
        r->path.ptr -= c->rpos;
        r->query.ptr -= c->rpos;
    }
    memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
    c->rlen -= c->rpos;
    c->rpos = 0;
}

/* Reads once. Returns bytes read, 0 at EOF, -EAGAIN when drained,
 * -ENOBUFS when there is no room until the output drains, or -errno. */
static ssize_t conn_read(appsrv__conn_t *c)
{
    size_t cap = c->w->srv->block_data_cap;
    char *dst;
    size_t room;
    ssize_t n;

    if (c->state == APPSRV__ST_LINGER) {
        char sink[4096];
        do
            n = recv(c->io.fd, sink, sizeof(sink), 0);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
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
    do
        n = recv(c->io.fd, dst, room, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n > 0) {
        if (c->state == APPSRV__ST_BODY && c->body_in_heap)
            c->body_len += (size_t)n;
        else
            c->rlen += (uint32_t)n;
        /* With edge triggering, a short read means the socket is drained
         * (a new arrival raises a new edge), saving one read per request.
         * Not after RDHUP: the EOF itself must still be read. */
        if ((size_t)n < room && !c->rdhup)
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
    appsrv__res_cancel(&appsrv__ctx(c)->res);
    c->keep_alive = false;
    c->close_after = true;
}

static void conn_io_cb(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events)
{
    (void)loop;
    appsrv__conn_t *c = appsrv__container_of(io, appsrv__conn_t, io);
    if (c->closing)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->readable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rdhup = true;
    if (c->rdhup && c->state == APPSRV__ST_WAIT && !c->close_after) {
        wait_peer_gone(c);
        if (c->closing)
            return;
    }
    conn_drive(c);
}

void appsrv__conn_wait(appsrv__conn_t *c, appsrv_res_t *res)
{
    pthread_mutex_lock(&c->w->qlock);
    res->deferred = true;
    pthread_mutex_unlock(&c->w->qlock);
    c->host_holds = true;
    c->state = APPSRV__ST_WAIT;
    c->tkind = TK_NONE; /* each deferred request gets its own response timeout */
}

void appsrv__conn_drive(appsrv__conn_t *c)
{
    if (!c->closing)
        conn_drive(c);
}

static int process(appsrv__conn_t *c)
{
    if (c->proto == APPSRV_PROTO_HTTP)
        return appsrv__http_process(c);
    return appsrv__line_process(c);
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
    shutdown(c->io.fd, SHUT_WR);
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
    for (; round < DRIVE_ROUNDS && !c->closing; round++) {
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
                if (c->closing)
                    return;
            }
        }
        if (c->state != APPSRV__ST_LINGER && !c->close_after) {
            int r = process(c);
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
            if (c->closing)
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
            if (process(c) < 0) {
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
    if (c->closing)
        return;
    if (round == DRIVE_ROUNDS && c->readable) {
        /* Fairness: yield, and have epoll report us again. EPOLL_CTL_MOD
         * re-checks readiness, so an edge-triggered fd that still has
         * input is queued anew. */
        appsrv__loop_mod(&c->w->loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    }
    if (c->close_after && !appsrv__out_busy(c) && c->state != APPSRV__ST_LINGER) {
        conn_linger(c);
        return;
    }
    /* Arm the timeout that fits the state we are waiting in. */
    if (c->state == APPSRV__ST_LINGER)
        return;
    if (c->state == APPSRV__ST_WAIT) {
        bool streaming = appsrv__ctx(c)->res.head_sent;
        if (!streaming && c->w->srv->cfg.response_timeout_ms > 0)
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
    bool idle = c->state == APPSRV__ST_HEAD && !appsrv__out_busy(c) &&
                (c->rblk == NULL || c->rlen == c->rpos);
    if (idle && c->w->draining) {
        /* Graceful stop: the response in flight is out; nothing else. */
        appsrv__conn_close(c);
        return;
    }
    /* Idle between requests: give the buffer back (SPEC §7 memory). */
    if (idle && c->rblk != NULL)
        rbuf_release(c);
}

/* A worker's live and zombie connections are doubly linked lists headed
 * in the worker; closed ones wait, singly linked, for the end of the pass. */
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

void appsrv__conn_accepted(appsrv__worker_t *w, int fd, const appsrv_addr_t *peer, int kind)
{
    appsrv__conn_t *c = w->free_conns;
    if (c != NULL) {
        w->free_conns = c->next;
        w->nfree_conns--;
    } else {
        c = malloc(sizeof(*c));
        if (c == NULL) {
            close(fd);
            atomic_fetch_sub(&w->srv->nconns, 1);
            return;
        }
    }
    memset(c, 0, sizeof(*c));
    c->io.fd = fd;
    c->io.cb = conn_io_cb;
    c->timer.cb = conn_timer_cb;
    c->w = w;
    c->proto = kind == APPSRV__LISTEN_LINE ? APPSRV_PROTO_LINE : APPSRV_PROTO_HTTP;
    c->keep_alive = true;
    if (peer != NULL)
        c->peer = *peer;

    /* TCP_NODELAY comes from the listening socket (Linux copies it to
     * accepted sockets): no setsockopt per connection. */
    if (appsrv__loop_add(&w->loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) < 0) {
        close(fd);
        atomic_fetch_sub(&w->srv->nconns, 1);
        c->next = w->free_conns;
        w->free_conns = c;
        w->nfree_conns++;
        return;
    }
    list_push(&w->conns, c);
    w->nconns++;
    set_timeout(c, TK_HEAD, true);
    if (w->draining)
        c->close_after = true;
}

void appsrv__conn_close(appsrv__conn_t *c)
{
    appsrv__worker_t *w = c->w;
    if (c->closing)
        return;
    c->closing = true;
    appsrv__timer_stop(&w->loop, &c->timer);
    /* close(2) removes the fd from epoll: it is never dup'd. */
    close(c->io.fd);
    c->io.fd = -1;
    out_reset(c);
    if (c->host_holds) {
        appsrv_res_t *res = &appsrv__ctx(c)->res;
        pthread_mutex_lock(&w->qlock);
        bool done = res->sent || res->ended;
        pthread_mutex_unlock(&w->qlock);
        if (done) {
            /* Finished but not yet serviced: release it with the conn. */
            appsrv__res_unqueue(res);
            c->host_holds = false;
        }
    }
    if (c->host_holds) {
        /* The host still holds req and res: keep them (and the body)
         * until it finishes res; tell it the client is gone. */
        appsrv_res_t *res = &appsrv__ctx(c)->res;
        appsrv__timer_stop(&w->loop, &res->hb_timer);
        appsrv__res_cancel(res);
        c->zombie = true;
        w->nzombies++;
    }
    list_unlink(&w->conns, c);
    w->nconns--;
    atomic_fetch_sub(&w->srv->nconns, 1);
    if (c->zombie)
        list_push(&w->zombies, c);
    else
        retire(c);
}

void appsrv__conn_release_zombie(appsrv__conn_t *c)
{
    appsrv__worker_t *w = c->w;
    list_unlink(&w->zombies, c);
    c->host_holds = false;
    c->zombie = false;
    w->nzombies--;
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

void appsrv__conn_drain(appsrv__conn_t *c)
{
    bool idle = c->state == APPSRV__ST_HEAD && !appsrv__out_busy(c) &&
                (c->rblk == NULL || c->rlen == c->rpos);
    if (idle) {
        appsrv__conn_close(c);
        return;
    }
    /* In flight: answer it, then close (Connection: close). */
    c->keep_alive = false;
    if (c->state == APPSRV__ST_LINGER)
        return;
    conn_drive(c);
}
