/* SPDX-License-Identifier: MIT */
/*
 * server.c - the server object: configuration, routes, listeners, worker
 * threads, the connection cap, the block pool and graceful stop. Each
 * worker owns one loop (loop.c) and one listening socket per listener.
 *
 * A listener is one socket in every worker's epoll with EPOLLEXCLUSIVE,
 * rather than one SO_REUSEPORT socket per worker. Measured with 2 workers
 * and wrk -t2 -c64 keep-alive (CPU ticks per worker thread): SO_REUSEPORT
 * 142/68 and 107/79, EPOLLEXCLUSIVE 87/102 and 111/117. REUSEPORT hashes
 * each connection to a worker blindly, busy or not, and long-lived
 * connections keep the skew; with EPOLLEXCLUSIVE the kernel wakes a worker
 * waiting in epoll_wait, i.e. an idle one. With a connection per request
 * both split evenly (73/73 vs 72/72).
 * appsrv_server_stop() only sets a flag and writes each loop's eventfd,
 * so it is async-signal-safe; each worker then drains on its own thread.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define MAX_FREE_BLOCKS 32
#define ACCEPT_BATCH 64
#define EMFILE_PAUSE_MS 100

/* ------------------------------------------------------------------ pool */

appsrv__block_t *appsrv__block_get(appsrv__worker_t *w)
{
    appsrv__block_t *b = w->free_blocks;
    if (b != NULL) {
        w->free_blocks = b->next;
        w->nfree_blocks--;
        return b;
    }
    return malloc(w->srv->block_size);
}

void appsrv__block_put(appsrv__worker_t *w, appsrv__block_t *b)
{
    if (w->nfree_blocks < MAX_FREE_BLOCKS) {
        b->next = w->free_blocks;
        w->free_blocks = b;
        w->nfree_blocks++;
        return;
    }
    free(b);
}

void appsrv__pool_dispose(appsrv__worker_t *w)
{
    while (w->free_blocks != NULL) {
        appsrv__block_t *b = w->free_blocks;
        w->free_blocks = b->next;
        free(b);
    }
    w->nfree_blocks = 0;
}

/* ---------------------------------------------------------------- config */

void appsrv_config_init(appsrv_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = n > 0 ? (int)n : 1;
    cfg->max_conns = 10000;
    cfg->max_head = 16 * 1024;
    cfg->max_target = 8 * 1024;
    cfg->max_headers = 128;
    cfg->max_body = 8 * 1024 * 1024;
    cfg->max_line = 64 * 1024;
    cfg->head_timeout_ms = 10 * 1000;
    cfg->idle_timeout_ms = 60 * 1000;
    cfg->write_timeout_ms = 30 * 1000;
    cfg->drain_timeout_ms = 10 * 1000;
    cfg->backlog = 511;
    cfg->response_timeout_ms = 30 * 1000;
}

static int check_config(const appsrv_config_t *c)
{
    if (c->threads < 1 || c->threads > 1024 || c->max_conns < 1)
        return -EINVAL;
    if (c->max_head < 64 || c->max_head > (1u << 30) || c->max_target < 1 ||
        c->max_target > c->max_head || c->max_headers < 1 || c->max_headers > 65535)
        return -EINVAL;
    if (c->max_line < 1 || c->max_line > (1u << 30) || c->max_body > ((size_t)1 << 40))
        return -EINVAL;
    if (c->head_timeout_ms < 1 || c->idle_timeout_ms < 1 || c->write_timeout_ms < 1 ||
        c->drain_timeout_ms < 0 || c->response_timeout_ms < 0)
        return -EINVAL;
    return 0;
}

/* Pool blocks hold a whole request head plus room for pipelined bytes, or
 * a whole line. */
static void size_blocks(appsrv_server_t *srv)
{
    size_t data = srv->cfg.max_head + 4096;
    for (int i = 0; i < srv->nlisteners; i++)
        if (srv->listeners[i].kind == APPSRV__LISTEN_LINE && srv->cfg.max_line + 2 > data)
            data = srv->cfg.max_line + 2;
    data = (data + 15) & ~(size_t)15;
    srv->block_data_cap = data;
    srv->block_size = sizeof(appsrv__block_t) + srv->cfg.max_headers * sizeof(appsrv__hdr_t) + data;
}

/* ---------------------------------------------------------------- server */

static void wake_cb(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events);

int appsrv_server_new(appsrv_server_t **out, const appsrv_config_t *cfg)
{
    appsrv_config_t defaults;
    int rc;

    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (cfg == NULL) {
        appsrv_config_init(&defaults);
        cfg = &defaults;
    }
    rc = check_config(cfg);
    if (rc < 0)
        return rc;
    appsrv_server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return -ENOMEM;
    srv->cfg = *cfg;
    atomic_init(&srv->nconns, 0);
    atomic_init(&srv->stopping, false);
    rc = appsrv__router_new(&srv->router);
    if (rc < 0)
        goto free_srv;
    srv->workers = calloc((size_t)cfg->threads, sizeof(*srv->workers));
    if (srv->workers == NULL) {
        rc = -ENOMEM;
        goto free_router;
    }
    for (int i = 0; i < cfg->threads; i++) {
        appsrv__worker_t *w = &srv->workers[i];
        w->srv = srv;
        w->id = i;
        rc = appsrv__loop_init(&w->loop, wake_cb);
        if (rc < 0)
            goto free_loops;
        pthread_mutex_init(&w->qlock, NULL);
        srv->nworkers++;
    }
    size_blocks(srv);
    *out = srv;
    return 0;

free_loops:
    for (int i = 0; i < srv->nworkers; i++) {
        appsrv__loop_dispose(&srv->workers[i].loop);
        pthread_mutex_destroy(&srv->workers[i].qlock);
    }
    free(srv->workers);
free_router:
    appsrv__router_free(srv->router);
free_srv:
    free(srv);
    return rc;
}

int appsrv_route(appsrv_server_t *srv, const char *method, const char *pattern,
                 appsrv_handler_cb handler, void *user)
{
    if (srv == NULL)
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    return appsrv__router_add(srv->router, method, pattern, handler, user);
}

int appsrv_route_line(appsrv_server_t *srv, const char *command, appsrv_handler_cb handler,
                      void *user)
{
    if (srv == NULL || command == NULL || handler == NULL || command[0] == '\0')
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    size_t n = strlen(command);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)command[i];
        if (ch <= ' ' || ch == 0x7f)
            return -EINVAL;
    }
    for (size_t i = 0; i < srv->nline_routes; i++)
        if (srv->line_routes[i].word_len == n && memcmp(srv->line_routes[i].word, command, n) == 0)
            return -EEXIST;
    appsrv__line_route_t *r =
        realloc(srv->line_routes, (srv->nline_routes + 1) * sizeof(*srv->line_routes));
    if (r == NULL)
        return -ENOMEM;
    srv->line_routes = r;
    char *word = malloc(n + 1);
    if (word == NULL)
        return -ENOMEM;
    memcpy(word, command, n + 1);
    r[srv->nline_routes++] = (appsrv__line_route_t){word, n, handler, user};
    return 0;
}

static int listen_kind(appsrv_server_t *srv, int kind, const char *host, int port)
{
    if (srv == NULL)
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    if (srv->nlisteners == APPSRV__MAX_LISTENERS)
        return -ENOSPC;
    int fd = appsrv_listen(host, port, srv->cfg.backlog, APPSRV_LISTEN_NONBLOCK);
    if (fd < 0)
        return fd;
    /* Responses leave in one sendmsg each: Nagle would only add delay.
     * Accepted sockets inherit the option (Linux). */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int bound = appsrv_local_port(fd);
    if (bound < 0) {
        close(fd);
        return bound;
    }
    appsrv__listener_t *l = &srv->listeners[srv->nlisteners++];
    l->kind = kind;
    l->port = bound;
    l->fd = fd;
    atomic_init(&l->users, 0);
    size_blocks(srv);
    return bound;
}

int appsrv_listen_http(appsrv_server_t *srv, const char *host, int port)
{
    return listen_kind(srv, APPSRV__LISTEN_HTTP, host, port);
}

int appsrv_listen_line(appsrv_server_t *srv, const char *host, int port)
{
    return listen_kind(srv, APPSRV__LISTEN_LINE, host, port);
}

/* ---------------------------------------------------------------- accept */

static void refuse(appsrv__worker_t *w, int fd, int kind)
{
    char buf[256];
    size_t n;
    if (kind == APPSRV__LISTEN_LINE) {
        static const char msg[] = "503 Service Unavailable\n";
        memcpy(buf, msg, sizeof(msg) - 1);
        n = sizeof(msg) - 1;
    } else {
        static const char a[] = "HTTP/1.1 503 Service Unavailable\r\nServer: " APPSRV__SERVER_HEADER
                                "\r\nDate: ";
        static const char b[] = "\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n"
                                "Retry-After: 1\r\nConnection: close\r\n\r\n"
                                "Service Unavailable\n";
        memcpy(buf, a, sizeof(a) - 1);
        n = sizeof(a) - 1;
        memcpy(buf + n, w->loop.date, 29);
        n += 29;
        memcpy(buf + n, b, sizeof(b) - 1);
        n += sizeof(b) - 1;
    }
    /* Best effort, never blocks: the point is to refuse promptly. */
    ssize_t rc = send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)rc;
    close(fd);
}

static void accept_resume_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    appsrv__worker_t *w = appsrv__container_of(t, appsrv__worker_t, accept_timer);
    for (int i = 0; i < w->nlw; i++) {
        appsrv__lwatch_t *lw = &w->lw[i];
        if (lw->paused && lw->io.fd >= 0 &&
            appsrv__loop_add(loop, &lw->io, EPOLLIN | EPOLLEXCLUSIVE) == 0)
            lw->paused = false;
    }
}

static void accept_cb(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events)
{
    (void)events;
    appsrv__lwatch_t *lw = appsrv__container_of(io, appsrv__lwatch_t, io);
    appsrv__worker_t *w = lw->w;
    appsrv_server_t *srv = w->srv;

    for (int i = 0; i < ACCEPT_BATCH && !w->draining; i++) {
        appsrv_addr_t peer;
        int fd = appsrv_accept(io->fd, &peer, APPSRV_ACCEPT_NONBLOCK);
        if (fd == -EAGAIN)
            return;
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
            /* Out of descriptors: stop watching the listener for a moment
             * instead of spinning on a level-triggered socket that stays
             * readable. Pending clients wait in the backlog. */
            if (appsrv__loop_del(loop, io) == 0)
                lw->paused = true;
            appsrv__timer_start(loop, &w->accept_timer, loop->now_ms + EMFILE_PAUSE_MS);
            return;
        }
        if (fd < 0)
            return;
        if (atomic_fetch_add(&srv->nconns, 1) >= srv->cfg.max_conns) {
            atomic_fetch_sub(&srv->nconns, 1);
            refuse(w, fd, lw->kind);
            continue;
        }
        appsrv__conn_accepted(w, fd, &peer, lw->kind);
    }
}

/* ------------------------------------------------------------------ stop */

static void drain_timeout_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    (void)loop;
    appsrv__worker_t *w = appsrv__container_of(t, appsrv__worker_t, drain_timer);
    w->drain_expired = true;
}

static void begin_drain(appsrv__worker_t *w)
{
    appsrv_server_t *srv = w->srv;
    w->draining = true;
    for (int i = 0; i < w->nlw; i++) {
        appsrv__lwatch_t *lw = &w->lw[i];
        if (lw->io.fd < 0)
            continue;
        if (!lw->paused)
            appsrv__loop_del(&w->loop, &lw->io);
        /* The last worker to let go closes the shared socket. */
        if (atomic_fetch_sub(&srv->listeners[i].users, 1) == 1) {
            close(lw->io.fd);
            srv->listeners[i].fd = -1;
        }
        lw->io.fd = -1;
    }
    appsrv__timer_stop(&w->loop, &w->accept_timer);
    appsrv__conn_t *c = w->conns;
    while (c != NULL) {
        appsrv__conn_t *next = c->next;
        appsrv__conn_drain(c);
        c = next;
    }
    appsrv__timer_start(&w->loop, &w->drain_timer,
                        w->loop.now_ms + (uint64_t)srv->cfg.drain_timeout_ms);
}

static void wake_cb(appsrv__loop_t *loop, appsrv__io_t *io, uint32_t events)
{
    (void)io;
    (void)events;
    appsrv__worker_t *w = appsrv__container_of(loop, appsrv__worker_t, loop);
    appsrv__loop_wake_ack(loop);
    /* Responses finished by host threads. One at a time: servicing one may
     * unlink another (a finished response leaves the queue). Bounded, so
     * a host that keeps writing cannot starve this loop's sockets. */
    for (int n = 0; n < 4096; n++) {
        pthread_mutex_lock(&w->qlock);
        appsrv_res_t *res = appsrv__res_pop_locked(w);
        pthread_mutex_unlock(&w->qlock);
        if (res == NULL)
            break;
        appsrv__res_service(res);
    }
    if (w->q_head != NULL)
        appsrv__loop_wake(loop); /* the rest on the next pass */
    if (atomic_load(&w->srv->stopping) && !w->draining)
        begin_drain(w);
}

void appsrv_server_stop(appsrv_server_t *srv)
{
    if (srv == NULL)
        return;
    atomic_store(&srv->stopping, true);
    for (int i = 0; i < srv->nworkers; i++)
        appsrv__loop_wake(&srv->workers[i].loop);
}

/* ------------------------------------------------------------------- run */

static void close_all(appsrv__worker_t *w)
{
    while (w->conns != NULL)
        appsrv__conn_close(w->conns);
    appsrv__conn_free_closed(w);
}

static void *worker_main(void *arg)
{
    appsrv__worker_t *w = arg;
    /* After a stop, the loop runs until its connections are closed and
     * the host has finished every response it held. */
    while (!(w->draining && w->nconns == 0 && w->nzombies == 0)) {
        if (appsrv__loop_run_once(&w->loop, -1) < 0)
            break; /* epoll itself failed: nothing sane is left to do */
        appsrv__conn_free_closed(w);
        if (w->drain_expired)
            close_all(w);
    }
    close_all(w);
    appsrv__timer_stop(&w->loop, &w->drain_timer);
    appsrv__timer_stop(&w->loop, &w->accept_timer);
    while (w->free_conns != NULL) {
        appsrv__conn_t *c = w->free_conns;
        w->free_conns = c->next;
        free(c);
    }
    w->nfree_conns = 0;
    appsrv__pool_dispose(w);
    return NULL;
}

static int worker_setup(appsrv__worker_t *w)
{
    appsrv_server_t *srv = w->srv;
    w->accept_timer.cb = accept_resume_cb;
    w->drain_timer.cb = drain_timeout_cb;
    for (int i = 0; i < srv->nlisteners; i++) {
        appsrv__lwatch_t *lw = &w->lw[i];
        lw->io.fd = srv->listeners[i].fd;
        lw->io.cb = accept_cb;
        lw->kind = srv->listeners[i].kind;
        lw->w = w;
        w->nlw++;
        /* Level-triggered: a batch cap per wake-up stays fair to the
         * connections, and what is left is reported again. Exclusive:
         * one waiting worker is woken per connection, not all. */
        int rc = appsrv__loop_add(&w->loop, &lw->io, EPOLLIN | EPOLLEXCLUSIVE);
        if (rc < 0)
            return rc;
        atomic_fetch_add(&srv->listeners[i].users, 1);
    }
    return 0;
}

int appsrv_server_run(appsrv_server_t *srv)
{
    if (srv == NULL)
        return -EINVAL;
    if (srv->ran)
        return APPSRV_ESTATE;
    if (srv->nlisteners == 0)
        return -EINVAL;
    srv->ran = true;
    for (int i = 0; i < srv->nworkers; i++) {
        int rc = worker_setup(&srv->workers[i]);
        if (rc < 0)
            return rc;
    }
    /* A stop that came before run still counts. */
    if (atomic_load(&srv->stopping))
        appsrv_server_stop(srv);

    int started = 1, rc = 0;
    for (; started < srv->nworkers; started++) {
        appsrv__worker_t *w = &srv->workers[started];
        /* Workers take no asynchronous signals: the host's handlers run on
         * its own thread, and appsrv_server_stop() reaches every loop. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int err = pthread_create(&w->thread, NULL, worker_main, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (err != 0) {
            rc = -err;
            appsrv_server_stop(srv);
            break;
        }
    }
    worker_main(&srv->workers[0]);
    for (int i = 1; i < started; i++)
        pthread_join(srv->workers[i].thread, NULL);
    return rc;
}

void appsrv_server_free(appsrv_server_t *srv)
{
    if (srv == NULL)
        return;
    for (int i = 0; i < srv->nlisteners; i++)
        if (srv->listeners[i].fd >= 0)
            close(srv->listeners[i].fd);
    for (int i = 0; i < srv->nworkers; i++) {
        appsrv__worker_t *w = &srv->workers[i];
        while (w->conns != NULL)
            appsrv__conn_close(w->conns);
        appsrv__conn_free_closed(w);
        /* Zombies left here mean the host never finished a response it
         * held (a broken contract): reclaim the memory anyway. */
        while (w->zombies != NULL)
            appsrv__conn_release_zombie(w->zombies);
        appsrv__conn_free_closed(w);
        while (w->free_conns != NULL) {
            appsrv__conn_t *c = w->free_conns;
            w->free_conns = c->next;
            free(c);
        }
        appsrv__pool_dispose(w);
        appsrv__loop_dispose(&w->loop);
        pthread_mutex_destroy(&w->qlock);
    }
    free(srv->workers);
    for (size_t i = 0; i < srv->nline_routes; i++)
        free(srv->line_routes[i].word);
    free(srv->line_routes);
    appsrv__router_free(srv->router);
    free(srv);
}
