/* SPDX-License-Identifier: MIT */
/*
 * host.c - the host thread, its job queue, the deferring and streaming
 * handlers and the server-side socket probes of the deferred suites
 * (contract in host.h). No assertions: loop and host threads run this.
 */
#include "host.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

void host_record(host_t *h, int rc)
{
    if (rc == 0)
        atomic_fetch_add(&h->ok, 1);
    else if (rc == APPSRV_ECANCELED)
        atomic_fetch_add(&h->canceled, 1);
    else if (rc == APPSRV_ESTATE)
        atomic_fetch_add(&h->estate, 1);
    else {
        atomic_fetch_add(&h->other, 1);
        atomic_store(&h->last_other, rc);
    }
}

uint32_t sum32(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint32_t s = 2166136261u;
    for (size_t i = 0; i < n; i++)
        s = (s ^ b[i]) * 16777619u;
    return s;
}

void pat_fill(unsigned char *p, uint64_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pat_at(off + i);
}

static void job_send(job_t *j)
{
    host_t *h = j->host;
    if (j->want_len > 0 &&
        (j->view.len != j->want_len || memcmp(j->view.ptr, j->want, j->want_len) != 0))
        atomic_fetch_add(&h->view_bad, 1);
    if (j->bview.len > 0 && sum32(j->bview.ptr, j->bview.len) != j->bsum)
        atomic_fetch_add(&h->view_bad, 1);
    if (j->status > 0) {
        appsrv_res_set_status(j->res, j->status);
        appsrv_res_add_header(j->res, "Content-Type", "text/plain");
        if (j->big > 0) {
            unsigned char *b = malloc(j->big);
            if (b != NULL) {
                pat_fill(b, 0, j->big);
                appsrv_res_set_body(j->res, b, j->big);
                free(b);
            }
        } else {
            appsrv_res_set_body(j->res, j->body, strlen(j->body));
        }
    }
    if (j->slot != NULL)
        atomic_store(&j->slot->finishing, 1);
    int rc = appsrv_res_send(j->res);
    if (j->slot != NULL) {
        atomic_store(&j->slot->rc, rc);
        atomic_store(&j->slot->finished, 1);
    }
    host_record(h, rc);
}

static void job_run(job_t *j)
{
    host_t *h = j->host;
    if (j->fn != NULL)
        j->fn(j);
    else
        job_send(j);
    free(j);
    atomic_fetch_add(&h->ran, 1);
}

static void *host_main(void *arg)
{
    host_t *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        int64_t now = e2e_now_ms(), next = HELD;
        job_t **pp = &h->head, *j = NULL;
        while (*pp != NULL) {
            job_t *k = *pp;
            if (h->quit || k->due_ms <= now) {
                *pp = k->next;
                j = k;
                break;
            }
            if (k->due_ms < next)
                next = k->due_ms;
            pp = &k->next;
        }
        if (j != NULL) {
            pthread_mutex_unlock(&h->mu);
            job_run(j);
            pthread_mutex_lock(&h->mu);
            continue;
        }
        if (h->quit)
            break;
        if (next == HELD) {
            pthread_cond_wait(&h->cv, &h->mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t ns = ts.tv_nsec + (next - now) * 1000000;
            ts.tv_sec += (time_t)(ns / 1000000000);
            ts.tv_nsec = (long)(ns % 1000000000);
            pthread_cond_timedwait(&h->cv, &h->mu, &ts);
        }
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int host_start(host_t *h)
{
    memset(h, 0, sizeof(*h));
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    int err = pthread_create(&h->th, NULL, host_main, h);
    if (err != 0)
        return -err;
    h->started = true;
    return 0;
}

/* Hands a job to the host thread (any thread; handlers call it). */
void host_push(host_t *h, job_t *j)
{
    j->host = h;
    j->next = NULL;
    atomic_fetch_add(&h->pushed, 1);
    pthread_mutex_lock(&h->mu);
    if (h->quit && j->fn == NULL) {
        /* The host is shutting down: finish at once rather than never. */
        pthread_mutex_unlock(&h->mu);
        job_run(j);
        return;
    }
    job_t **pp = &h->head;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = j;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* Makes every held job due now. */
void host_release_all(host_t *h)
{
    pthread_mutex_lock(&h->mu);
    for (job_t *j = h->head; j != NULL; j = j->next)
        if (j->due_ms == HELD)
            j->due_ms = 0;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

bool host_quitting(host_t *h)
{
    pthread_mutex_lock(&h->mu);
    bool q = h->quit;
    pthread_mutex_unlock(&h->mu);
    return q;
}

/* Finishes every job left (now) and joins the host thread. */
void host_finish(host_t *h)
{
    if (!h->started)
        return;
    pthread_mutex_lock(&h->mu);
    h->quit = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->th, NULL);
    h->started = false;
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
}

tctx_t *tctx_new(size_t nslots)
{
    tctx_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->nslots = nslots ? nslots : 1;
    t->slots = calloc(t->nslots, sizeof(slot_t));
    if (t->slots == NULL || host_start(&t->host) < 0) {
        free(t->slots);
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < t->nslots; i++)
        t->slots[i].t = t;
    return t;
}

void tctx_free(tctx_t *t)
{
    host_finish(&t->host);
    free(t->slots);
    free(t);
}

slot_t *slot_of(tctx_t *t, long id)
{
    if (id < 0 || (size_t)id >= t->nslots)
        id = 0;
    return &t->slots[id];
}

void cancel_cb(appsrv_res_t *res, void *ud)
{
    slot_t *s = ud;
    tctx_t *t = s->t;
    atomic_store(&s->t_cancel, e2e_now_ms());
    if (atomic_load(&s->finished) && atomic_load(&s->rc) == 0)
        atomic_fetch_add(&s->cancel_after_finish, 1);
    if (atomic_load(&t->send_in_cancel)) {
        /* Allowed by the header: the callback may finish res itself. */
        int rc = appsrv_res_send(res);
        atomic_store(&s->rc, rc);
        atomic_store(&s->finished, 1);
        host_record(&t->host, rc);
        atomic_fetch_add(&t->host.ran, 1);
    }
    /* counted last: a test that saw the count sees everything above */
    atomic_fetch_add(&s->cancels, 1);
    atomic_fetch_add(&t->cancels, 1);
    if (atomic_load(&t->release_on_cancel))
        host_release_all(&t->host);
}

void record_rc(tctx_t *t, int rc)
{
    int i = atomic_fetch_add(&t->nrcs, 1);
    if (i < (int)ARRAY_LEN(t->rcs))
        atomic_store(&t->rcs[i], rc);
}

long qint(const appsrv_req_t *req, const char *name, long def)
{
    char buf[32];
    ssize_t n = appsrv_req_query_param(req, name, buf, sizeof(buf));
    if (n <= 0)
        return def;
    return strtol(buf, NULL, 10);
}

int h_fast(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    tctx_t *t = user;
    if (t != NULL)
        atomic_fetch_add(&t->fast, 1);
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    return appsrv_res_set_body(res, "fast", 4);
}

/*
 * GET|POST /d?id=N[&ms=M][&mode=h][&big=B]: deferred. The host thread
 * finishes it M ms after the handler ran (no ms: held until released),
 * answering "d N" (or B pattern bytes). mode=h sets status and body in
 * the handler instead of on the host thread.
 */
int h_defer(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    tctx_t *t = user;
    long id = qint(req, "id", 0);
    long ms = qint(req, "ms", -1);
    char mode[8] = "";
    appsrv_req_query_param(req, "mode", mode, sizeof(mode));
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->res = res;
    j->due_ms = ms < 0 ? HELD : e2e_now_ms() + ms;
    j->slot = slot_of(t, id);
    j->big = (size_t)qint(req, "big", 0);
    snprintf(j->body, sizeof(j->body), "d %ld", id);
    j->view = appsrv_req_target(req);
    if (j->view.len < sizeof(j->want)) {
        memcpy(j->want, j->view.ptr, j->view.len);
        j->want_len = j->view.len;
    }
    j->bview = appsrv_req_body(req);
    j->bsum = sum32(j->bview.ptr, j->bview.len);
    if (strcmp(mode, "h") == 0) {
        appsrv_res_set_status(res, 200);
        appsrv_res_add_header(res, "Content-Type", "text/plain");
        appsrv_res_set_body(res, j->body, strlen(j->body));
    } else {
        j->status = 200;
    }
    appsrv_res_on_cancel(res, cancel_cb, j->slot);
    atomic_fetch_add(&t->handled, 1);
    host_push(&t->host, j);
    return APPSRV_LATER;
}

/* Line command "SLOW <id> [ms]": deferred like /d, reply "200 OK slow <id>". */
int l_slow(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    tctx_t *t = user;
    appsrv_str_t b = appsrv_req_body(req);
    char args[64];
    snprintf(args, sizeof(args), "%.*s", (int)(b.len < 63 ? b.len : 63), b.ptr ? b.ptr : "");
    long id = 0, ms = -1;
    int k = sscanf(args, "%ld %ld", &id, &ms);
    if (k < 2)
        ms = -1;
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->res = res;
    j->due_ms = ms < 0 ? HELD : e2e_now_ms() + ms;
    j->slot = slot_of(t, id);
    j->status = 200;
    snprintf(j->body, sizeof(j->body), "slow %ld", id);
    j->view = b;
    if (b.len < sizeof(j->want)) {
        memcpy(j->want, b.ptr, b.len);
        j->want_len = b.len;
    }
    appsrv_res_on_cancel(res, cancel_cb, j->slot);
    atomic_fetch_add(&t->handled, 1);
    host_push(&t->host, j);
    return APPSRV_LATER;
}

void job_parts(job_t *j)
{
    parts_t *p = j->arg;
    if (p->begin)
        atomic_store(&p->begin_rc, appsrv_res_stream(j->res));
    for (size_t i = 0; p->parts[i] != NULL; i++) {
        if (p->gap_ms > 0 && i > 0)
            e2e_pause_ms(p->gap_ms);
        int rc = appsrv_res_write(j->res, p->parts[i], strlen(p->parts[i]));
        if (rc != 0)
            atomic_fetch_add(&p->write_bad, 1);
    }
    int rc = appsrv_res_end(j->res);
    atomic_store(&p->end_rc, rc);
    if (j->slot != NULL) {
        atomic_store(&j->slot->rc, rc);
        atomic_store(&j->slot->finished, 1);
    }
    host_record(j->host, rc);
}

/* GET /s: a stream of the parts in t->arg (started in the handler unless
 * the parts say the host starts it). */
int h_stream_parts(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    tctx_t *t = user;
    parts_t *p = t->arg;
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    if (!p->begin && appsrv_res_stream(res) != 0) {
        free(j);
        return -1;
    }
    j->res = res;
    j->due_ms = 0;
    j->fn = job_parts;
    j->arg = p;
    j->slot = slot_of(t, 0);
    appsrv_res_on_cancel(res, cancel_cb, j->slot);
    atomic_fetch_add(&t->handled, 1);
    host_push(&t->host, j);
    return APPSRV_LATER;
}

void prod_init(prod_t *p, size_t total, size_t piece)
{
    memset(p, 0, sizeof(*p));
    p->total = total;
    p->piece = piece;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
}

void prod_destroy(prod_t *p)
{
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

unsigned prod_drains(prod_t *p)
{
    pthread_mutex_lock(&p->mu);
    unsigned d = p->drains;
    pthread_mutex_unlock(&p->mu);
    return d;
}

/* The drain callback: loop thread, must not block. */
void drain_cb(appsrv_res_t *res, void *ud)
{
    (void)res;
    prod_t *p = ud;
    pthread_mutex_lock(&p->mu);
    p->drains++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Waits (bounded; cut short when the host quits or the response is
 * canceled) for a drain after d0. */
bool prod_wait_drain(prod_t *p, host_t *h, slot_t *sl, unsigned d0, int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    pthread_mutex_lock(&p->mu);
    p->waiting = true;
    p->wait_since = e2e_now_ms();
    while (p->drains == d0) {
        int64_t now = e2e_now_ms();
        if (now >= end)
            break;
        pthread_mutex_unlock(&p->mu);
        bool q = host_quitting(h) || (sl != NULL && atomic_load(&sl->cancels) > 0);
        pthread_mutex_lock(&p->mu);
        if (q)
            break;
        int64_t slice = end - now < 50 ? end - now : 50;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + slice * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    bool ok = p->drains != d0;
    p->waiting = false;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

void job_produce(job_t *j)
{
    prod_t *p = j->arg;
    appsrv_res_t *res = j->res;
    appsrv_res_on_drain(res, drain_cb, p);
    if (p->begin)
        atomic_store(&p->stream_rc, appsrv_res_stream(res));
    unsigned char *buf = malloc(p->piece);
    size_t off = p->handler_accepted;
    while (buf != NULL && off < p->total) {
        size_t n = p->total - off < p->piece ? p->total - off : p->piece;
        pat_fill(buf, off, n);
        unsigned d0 = prod_drains(p);
        int rc = appsrv_res_write(res, buf, n);
        if (rc == 0) {
            off += n;
            atomic_store(&p->accepted, off);
            if (p->stop_after_ms > 0)
                e2e_pause_ms(10); /* a slow event source */
            continue;
        }
        if (rc == -EAGAIN) {
            atomic_fetch_add(&p->eagains, 1);
            if (!prod_wait_drain(p, j->host, j->slot, d0, 30000)) {
                if (j->slot != NULL && atomic_load(&j->slot->cancels) > 0)
                    continue; /* the next write says APPSRV_ECANCELED */
                atomic_fetch_add(&p->errors, 1);
                atomic_store(&p->last_err, -ETIMEDOUT);
                break;
            }
            continue;
        }
        atomic_fetch_add(&p->errors, 1);
        atomic_store(&p->last_err, rc);
        break;
    }
    free(buf);
    atomic_store(&p->ending, 1);
    int rc = appsrv_res_end(res);
    atomic_store(&p->end_rc, rc);
    if (j->slot != NULL) {
        atomic_store(&j->slot->rc, rc);
        atomic_store(&j->slot->finished, 1);
    }
    host_record(j->host, rc);
    atomic_store(&p->done, 1);
}

/* GET /p: a produced stream (t->arg is the prod_t). */
int h_produce(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    tctx_t *t = user;
    prod_t *p = t->arg;
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "application/octet-stream");
    if (!p->begin && appsrv_res_stream(res) != 0) {
        free(j);
        return -1;
    }
    appsrv_res_on_drain(res, drain_cb, p);
    if (p->fill_in_handler) {
        /* On the loop thread nothing can be sent meanwhile: the writes are
         * taken until exactly the 256 KiB mark, then -EAGAIN. */
        unsigned char *b = malloc(p->piece);
        if (b == NULL) {
            free(j);
            return -ENOMEM;
        }
        size_t off = 0;
        for (int i = 0; i < 4096; i++) {
            pat_fill(b, off, p->piece);
            int rc = appsrv_res_write(res, b, p->piece);
            if (rc == -EAGAIN) {
                atomic_store(&p->handler_eagain, 1);
                break;
            }
            if (rc != 0)
                break;
            off += p->piece;
        }
        free(b);
        p->handler_accepted = off;
        atomic_store(&p->accepted, off);
    }
    j->res = res;
    j->due_ms = 0;
    j->fn = job_produce;
    j->arg = p;
    j->slot = slot_of(t, 0);
    appsrv_res_on_cancel(res, cancel_cb, j->slot);
    atomic_fetch_add(&t->handled, 1);
    host_push(&t->host, j);
    return APPSRV_LATER;
}

/*
 * The server's end of a client connection: the server runs in this
 * process, so its socket is one of our fds. Found by matching addresses
 * (reading queue sizes only; the library's use of it is undisturbed).
 */
int find_server_side(int client_fd)
{
    struct sockaddr_in me, peer;
    socklen_t l1 = sizeof(me), l2 = sizeof(peer);
    if (getsockname(client_fd, (struct sockaddr *)&me, &l1) < 0 ||
        getpeername(client_fd, (struct sockaddr *)&peer, &l2) < 0)
        return -1;
    for (int fd = 0; fd < 4096; fd++) {
        if (fd == client_fd)
            continue;
        struct sockaddr_in a, b;
        socklen_t la = sizeof(a), lb = sizeof(b);
        if (getsockname(fd, (struct sockaddr *)&a, &la) < 0 || a.sin_family != AF_INET)
            continue;
        if (a.sin_port != peer.sin_port)
            continue;
        if (getpeername(fd, (struct sockaddr *)&b, &lb) < 0)
            continue;
        if (b.sin_port == me.sin_port)
            return fd;
    }
    return -1;
}

/* Waits (bounded) until the server's end of a connection has seen the
 * client's FIN (POLLRDHUP). A readiness query only: the library's epoll
 * registration is not affected. */
bool wait_peer_fin(int server_fd, int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd p = {.fd = server_fd, .events = POLLRDHUP};
        int left = (int)(end - e2e_now_ms());
        if (left < 0)
            left = 0;
        int pr = poll(&p, 1, left);
        if (pr > 0 && (p.revents & (POLLRDHUP | POLLHUP)))
            return true;
        if (pr == 0 || e2e_now_ms() >= end)
            return false;
    }
}

/* Waits (bounded) until the server has accepted client_fd; returns the
 * server's end of it, or -1. */
int wait_accepted(int client_fd, int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    int sfd;
    while ((sfd = find_server_side(client_fd)) < 0 && e2e_now_ms() < end)
        poll(NULL, 0, 2);
    return sfd;
}

bool raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return false;
    if (rl.rlim_cur >= want)
        return true;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return false;
    return rl.rlim_cur >= want;
}

const e2e_route_t *defer_routes(tctx_t *t, size_t *n)
{
    static e2e_route_t r[4];
    r[0] = (e2e_route_t){"GET", "/d", h_defer, t, false};
    r[1] = (e2e_route_t){"POST", "/d", h_defer, t, false};
    r[2] = (e2e_route_t){"GET", "/fast", h_fast, t, false};
    r[3] = (e2e_route_t){NULL, "SLOW", l_slow, t, true};
    *n = ARRAY_LEN(r);
    return r;
}

appsrv_config_t timeout_cfg(int ms)
{
    appsrv_config_t cfg = base_cfg();
    cfg.response_timeout_ms = ms;
    return cfg;
}
