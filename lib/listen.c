/* SPDX-License-Identifier: MIT */
/*
 * listen.c - the server's listeners, from the socket to the accepted
 * connection: TCP or Unix sockets made here (appsrv_listen_*) or inherited
 * (appsrv_listen_*_fd: systemd, start_server), listener options (PROXY
 * protocol preamble, TLS), the block-pool sizing the listeners' protocols
 * need, each worker's watch on every listener, accepting in batches, the
 * connection cap (idle connections evicted, else the protocol's refusal),
 * the pause after EMFILE, and letting go at a graceful stop. Calls sock.c,
 * conn.c (accepted connections), proxy.c and the protocol tables.
 *
 * A listener is one socket in every worker's epoll with EPOLLEXCLUSIVE,
 * rather than one SO_REUSEPORT socket per worker. Measured with 2 workers
 * and wrk -t2 -c64 keep-alive (CPU ticks per worker thread): SO_REUSEPORT
 * 142/68 and 107/79, EPOLLEXCLUSIVE 87/102 and 111/117. REUSEPORT hashes
 * each connection to a worker blindly, busy or not, and long-lived
 * connections keep the skew; with EPOLLEXCLUSIVE the kernel wakes a worker
 * waiting in epoll_wait, i.e. an idle one. With a connection per request
 * both split evenly (73/73 vs 72/72).
 */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "http.h"
#include "line.h"
#include "loop.h"
#include "pool.h"
#include "proxy.h"
#include "server_state.h"
#include "stats.h"
#include "tls.h"
#include "transport.h"
#include "ws.h"

#define ACCEPT_BATCH 64
#define EMFILE_PAUSE_MS 100
#define EVICT_BATCH 4 /* idle connections closed per admission at the cap */

/* ------------------------------------------------------------- listeners */

/* Pool blocks hold a whole request head plus room for pipelined bytes, or
 * a whole line; their context area fits every protocol's context (also
 * WebSocket's, which HTTP connections may switch to). */
void appsrv__server_prepare(appsrv_server_t *srv)
{
    size_t data = srv->cfg.max_head + 4096;
    for (int i = 0; i < srv->nlisteners; i++)
        if (srv->listeners[i].proto == &appsrv__line_proto && srv->cfg.max_line + 2 > data)
            data = srv->cfg.max_line + 2;
    size_t ctx = appsrv__http_proto.ctx_size(&srv->cfg);
    size_t lctx = appsrv__line_proto.ctx_size(&srv->cfg);
    if (lctx > ctx)
        ctx = lctx;
    size_t wctx = appsrv__ws_proto.ctx_size(&srv->cfg);
    if (wctx > ctx)
        ctx = wctx;
    for (int i = 0; i < srv->nworkers; i++)
        appsrv__pool_init(&srv->workers[i].w.pool, ctx, data);
}

static int attach_listener(appsrv_server_t *srv, const appsrv__proto_t *proto, void *proto_data,
                           const appsrv__transport_t *tp, void *tp_data, int fd);

/* Whether another listener may be added: 0 or the error. */
static int listener_room(const appsrv_server_t *srv)
{
    if (srv == NULL)
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    if (srv->nlisteners == APPSRV__MAX_LISTENERS)
        return -ENOSPC;
    return 0;
}

static int add_listener(appsrv_server_t *srv, const appsrv__proto_t *proto, void *proto_data,
                        const appsrv__transport_t *tp, void *tp_data, const char *host,
                        int port)
{
    int room = listener_room(srv);
    if (room < 0)
        return room;
    int fd = appsrv_listen(host, port, srv->cfg.backlog, APPSRV_LISTEN_NONBLOCK);
    if (fd < 0)
        return fd;
    int rc = attach_listener(srv, proto, proto_data, tp, tp_data, fd);
    if (rc < 0)
        close(fd);
    return rc;
}

/* Makes fd (listening, non-blocking) listener number srv->nlisteners.
 * Returns its TCP port, 0 for a Unix socket, or -errno (fd untouched). */
static int attach_listener(appsrv_server_t *srv, const appsrv__proto_t *proto, void *proto_data,
                           const appsrv__transport_t *tp, void *tp_data, int fd)
{
    /* Responses leave in one sendmsg each: Nagle would only add delay.
     * Accepted sockets inherit the option (Linux). */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int bound = appsrv_local_port(fd);
    if (bound == -EAFNOSUPPORT)
        bound = 0; /* a Unix socket (adopted) */
    if (bound < 0)
        return bound;
    appsrv__listener_t *l = &srv->listeners[srv->nlisteners++];
    l->proto = proto;
    l->proto_data = proto_data;
    l->tp = tp;
    l->tp_data = tp_data;
    l->port = bound;
    l->fd = fd;
    l->preamble = srv->cfg.max_conns_per_client > 0 ? appsrv__limit_preamble : NULL;
    atomic_init(&l->users, 0);
    appsrv__server_prepare(srv);
    return bound;
}

int appsrv_listen_http(appsrv_server_t *srv, const char *host, int port)
{
    return add_listener(srv, &appsrv__http_proto, srv != NULL ? srv->router : NULL,
                        &appsrv__transport_plain, NULL, host, port);
}

int appsrv_listen_https(appsrv_server_t *srv, const char *host, int port, appsrv_tls_t *tls)
{
    int rc = appsrv__tls_usable(tls);
    if (rc < 0)
        return rc;
    return add_listener(srv, &appsrv__http_proto, srv != NULL ? srv->router : NULL,
                        &appsrv__transport_tls, tls, host, port);
}

int appsrv_listen_line(appsrv_server_t *srv, const char *host, int port)
{
    return add_listener(srv, &appsrv__line_proto, srv != NULL ? &srv->line_routes : NULL,
                        &appsrv__transport_plain, NULL, host, port);
}

/* Listener options (appsrv.h, "behind a load balancer"), for a socket
 * made here (adopt false: host, port) or inherited (adopt true: fd). */
static int listen_with_opts(appsrv_server_t *srv, const appsrv_listen_opts_t *opts, bool adopt,
                            const char *host, int port, int fd)
{
    appsrv_listen_opts_t o = {.proto = APPSRV_PROTO_HTTP};
    if (opts != NULL)
        o = *opts;
    int rc;
    if (o.proto == APPSRV_PROTO_LINE && o.tls == NULL)
        rc = adopt ? appsrv_listen_line_fd(srv, fd) : appsrv_listen_line(srv, host, port);
    else if ((o.proto == APPSRV_PROTO_HTTP || o.proto == 0) && o.tls != NULL)
        rc = adopt ? appsrv_listen_https_fd(srv, fd, o.tls)
                   : appsrv_listen_https(srv, host, port, o.tls);
    else if (o.proto == APPSRV_PROTO_HTTP || o.proto == 0)
        rc = adopt ? appsrv_listen_http_fd(srv, fd) : appsrv_listen_http(srv, host, port);
    else
        return -EINVAL;
    /* rc: the port, 0 for a Unix socket (adopted), or the error */
    if (rc >= 0 && o.proxy_protocol)
        srv->listeners[srv->nlisteners - 1].preamble = srv->cfg.max_conns_per_client > 0
                                                           ? appsrv__proxy_limit_preamble
                                                           : appsrv__proxy_preamble;
    return rc;
}

int appsrv_listen_opts(appsrv_server_t *srv, const char *host, int port,
                       const appsrv_listen_opts_t *opts)
{
    return listen_with_opts(srv, opts, false, host, port, -1);
}

/* ------------------------------------------------------------ deployment */

/* An adopted socket must be a listening stream socket; it becomes
 * non-blocking and close-on-exec. */
static int check_listening(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);
    if (fd < 0)
        return -EBADF;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0)
        return -errno; /* -EBADF, -ENOTSOCK */
    if (v != SOCK_STREAM)
        return -EINVAL;
    len = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0)
        return -errno;
    if (!v)
        return -EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

static int adopt_listener(appsrv_server_t *srv, const appsrv__proto_t *proto, void *proto_data,
                          const appsrv__transport_t *tp, void *tp_data, int fd)
{
    int rc = listener_room(srv);
    if (rc == 0)
        rc = check_listening(fd);
    if (rc < 0)
        return rc;
    return attach_listener(srv, proto, proto_data, tp, tp_data, fd);
}

int appsrv_listen_http_fd(appsrv_server_t *srv, int fd)
{
    return adopt_listener(srv, &appsrv__http_proto, srv != NULL ? srv->router : NULL,
                          &appsrv__transport_plain, NULL, fd);
}

int appsrv_listen_https_fd(appsrv_server_t *srv, int fd, appsrv_tls_t *tls)
{
    int rc = appsrv__tls_usable(tls);
    if (rc < 0)
        return rc;
    return adopt_listener(srv, &appsrv__http_proto, srv != NULL ? srv->router : NULL,
                          &appsrv__transport_tls, tls, fd);
}

int appsrv_listen_line_fd(appsrv_server_t *srv, int fd)
{
    return adopt_listener(srv, &appsrv__line_proto, srv != NULL ? &srv->line_routes : NULL,
                          &appsrv__transport_plain, NULL, fd);
}

/* The inherited-socket counterpart of appsrv_listen_opts(): the checks
 * of the _fd calls on fd, then the same options. */
int appsrv_listen_opts_fd(appsrv_server_t *srv, int fd, const appsrv_listen_opts_t *opts)
{
    return listen_with_opts(srv, opts, true, NULL, 0, fd);
}

/* ---------------------------------------------------------------- accept */

/* At the cap: the protocol's refusal, best effort, never blocking (the
 * point is to refuse promptly). */
static void refuse(appsrv__sworker_t *sw, int fd, const appsrv__proto_t *proto,
                   const appsrv_addr_t *peer, bool plaintext)
{
    appsrv__worker_t *w = &sw->w;
    char buf[512 + 160];
    char rid[33];
    const char *id = NULL;
    if (w->cfg->request_ids) {
        appsrv__stats_random_id(&w->stats, rid);
        rid[32] = '\0';
        id = rid;
    }
    /* Counted and reported before the client can see the answer, so a
     * scrape that follows it includes it. */
    appsrv__ctr_add(&w->stats.refused, 1);
    appsrv__event(&w->stats, w->cfg, w->loop.now_ms, APPSRV__EV_CONN_REFUSED, APPSRV_LEVEL_WARN,
                  "connection cap reached", 0, 503, peer);
    if (!plaintext) {
        close(fd);
        return;
    }
    size_t n = proto->refusal(buf, sizeof(buf), w->loop.date, id);
    ssize_t rc = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)rc;
    close(fd);
}

/* Counts a new connection against the cap. At the cap, idle keep-alive
 * connections make room (longest idle first, a few at a time, as nginx
 * reuses its keep-alive connections): reopening one costs their client
 * nothing, refusing a new client costs it a failed request. Only this
 * worker's idle connections are candidates (each worker touches only its
 * own). Returns false when every connection is busy. */
static bool admit(appsrv__sworker_t *sw)
{
    appsrv_server_t *srv = sw->srv;
    if (atomic_fetch_add(&srv->nconns, 1) < srv->cfg.max_conns)
        return true;
    atomic_fetch_sub(&srv->nconns, 1);
    if (appsrv__conn_evict_idle(&sw->w, EVICT_BATCH) == 0)
        return false;
    if (atomic_fetch_add(&srv->nconns, 1) < srv->cfg.max_conns)
        return true;
    atomic_fetch_sub(&srv->nconns, 1);
    return false;
}

void appsrv__listen_resume_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    appsrv__sworker_t *sw = appsrv__container_of(t, appsrv__sworker_t, accept_timer);
    for (int i = 0; i < sw->nlw; i++) {
        appsrv__lwatch_t *lw = &sw->lw[i];
        if (lw->paused && lw->io.fd >= 0 &&
            appsrv__loop_add(loop, &lw->io, EPOLLIN | EPOLLEXCLUSIVE) == 0)
            lw->paused = false;
    }
}

static void accept_cb(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events)
{
    (void)events;
    appsrv__lwatch_t *lw = appsrv__container_of(io, appsrv__lwatch_t, io);
    appsrv__sworker_t *sw = lw->sw;
    const appsrv__listener_t *l = &sw->srv->listeners[lw->idx];

    for (int i = 0; i < ACCEPT_BATCH && !sw->w.draining; i++) {
        appsrv_addr_t peer;
        int fd = appsrv_accept(io->fd, &peer, APPSRV_ACCEPT_NONBLOCK);
        if (fd == -EAGAIN)
            return;
        if (fd < 0 && fd != -EAGAIN) {
            appsrv__ctr_add(&sw->w.stats.accept_errors, 1);
            appsrv__event(&sw->w.stats, sw->w.cfg, loop->now_ms, APPSRV__EV_ACCEPT_ERROR,
                          APPSRV_LEVEL_ERROR, appsrv_errname(fd), fd, 0, NULL);
        }
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
            /* Out of descriptors: stop watching the listener for a moment
             * instead of spinning on a level-triggered socket that stays
             * readable. Pending clients wait in the backlog. */
            if (appsrv__loop_del(loop, io) == 0)
                lw->paused = true;
            appsrv__timer_start(loop, &sw->accept_timer, loop->now_ms + EMFILE_PAUSE_MS);
            return;
        }
        if (fd < 0)
            return;
        if (!admit(sw)) {
            /* A transport with a handshake (TLS) cannot carry the
             * protocol's plaintext refusal: counted, then just closed. */
            refuse(sw, fd, l->proto, &peer, l->tp->handshake == NULL);
            continue;
        }
        appsrv__conn_accepted_pre(&sw->w, fd, &peer, l->proto, l->proto_data, l->tp, l->tp_data,
                                  l->preamble);
    }
}
int appsrv__listen_watch(appsrv__sworker_t *sw)
{
    appsrv_server_t *srv = sw->srv;
    for (int i = 0; i < srv->nlisteners; i++) {
        appsrv__lwatch_t *lw = &sw->lw[i];
        lw->io.fd = srv->listeners[i].fd;
        lw->io.cb = accept_cb;
        lw->idx = i;
        lw->sw = sw;
        sw->nlw++;
        /* Level-triggered: a batch cap per wake-up stays fair to the
         * connections, and what is left is reported again. Exclusive:
         * one waiting worker is woken per connection, not all. */
        int rc = appsrv__loop_add(&sw->w.loop, &lw->io, EPOLLIN | EPOLLEXCLUSIVE);
        if (rc < 0)
            return rc;
        atomic_fetch_add(&srv->listeners[i].users, 1);
    }
    return 0;
}

/* A graceful stop: the worker stops watching the listeners (the last
 * worker closes each shared socket) and no longer resumes after EMFILE. */
void appsrv__listen_unwatch(appsrv__sworker_t *sw)
{
    appsrv_server_t *srv = sw->srv;
    appsrv__worker_t *w = &sw->w;
    for (int i = 0; i < sw->nlw; i++) {
        appsrv__lwatch_t *lw = &sw->lw[i];
        if (lw->io.fd < 0)
            continue;
        if (!lw->paused)
            appsrv__loop_del(&w->loop, &lw->io);
        /* The last worker to let go closes the shared socket. */
        if (atomic_fetch_sub(&srv->listeners[lw->idx].users, 1) == 1) {
            close(lw->io.fd);
            srv->listeners[lw->idx].fd = -1;
        }
        lw->io.fd = -1;
    }
    appsrv__timer_stop(&w->loop, &sw->accept_timer);
}
