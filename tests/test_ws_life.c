/* SPDX-License-Identifier: MIT */
/*
 * test_ws_life.c - WebSocket handles over time, end to end: sends from
 * other threads (order, backpressure with -EAGAIN and on_drain), the
 * lifetime rule (a thread sending while peers vanish never touches freed
 * memory - run under ASan and valgrind by make asan/valgrind), closes
 * started by the host (answered, or not within ws_close_timeout_ms),
 * server pings (answered; a silent peer is closed), the idle and head
 * timeouts, a peer that resets, and the graceful stop (close 1001; run
 * waits for the host's last reference).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ws_client.h"

#define TMO .timeout = 60

/* --------------------------------------------------------------- keeper */

/* Handlers that keep every open handle in a list (as a broadcasting host
 * does) and count events. */
#define MAXH 256

typedef struct keeper {
    pthread_mutex_t lock;
    appsrv_ws_t *ws[MAXH];
    int n;
    atomic_int opened, closed, drains, messages;
    atomic_int codes[8]; /* on_close codes, in order (first 8) */
    bool keep_ref;       /* do not release in on_close (the test does) */
} keeper_t;

static void k_open(appsrv_ws_t *ws, void *user)
{
    keeper_t *k = user;
    pthread_mutex_lock(&k->lock);
    if (k->n < MAXH)
        k->ws[k->n++] = ws;
    pthread_mutex_unlock(&k->lock);
    atomic_fetch_add(&k->opened, 1);
}

static void k_message(appsrv_ws_t *ws, appsrv_ws_type_t type, const void *data, size_t len,
                      void *user)
{
    keeper_t *k = user;
    atomic_fetch_add(&k->messages, 1);
    appsrv_ws_send(ws, type, data, len);
}

static void k_close(appsrv_ws_t *ws, int code, appsrv_str_t reason, void *user)
{
    keeper_t *k = user;
    (void)reason;
    int i = atomic_fetch_add(&k->closed, 1);
    if (i < 8)
        atomic_store(&k->codes[i], code);
    pthread_mutex_lock(&k->lock);
    for (int j = 0; j < k->n; j++)
        if (k->ws[j] == ws) {
            k->ws[j] = k->ws[--k->n];
            break;
        }
    pthread_mutex_unlock(&k->lock);
    if (!k->keep_ref)
        appsrv_ws_release(ws);
}

static void k_drain(appsrv_ws_t *ws, void *user)
{
    keeper_t *k = user;
    (void)ws;
    atomic_fetch_add(&k->drains, 1);
}

static const appsrv_ws_handlers_t keeper_handlers = {
    .on_open = k_open,
    .on_message = k_message,
    .on_close = k_close,
    .on_drain = k_drain,
};

static void keeper_server(e2e_server_t *s, keeper_t *k, appsrv_config_t *cfg)
{
    pthread_mutex_init(&k->lock, NULL);
    wsc_route_t r = {"/ws", &keeper_handlers, NULL, k};
    cr_assert_eq(wsc_server_start(s, cfg, &r, 1), 0);
}

/* A keeper server on cfg and one client connected to /ws. */
static void keeper_open(e2e_server_t *s, keeper_t *k, appsrv_config_t *cfg, e2e_conn_t *c)
{
    keeper_server(s, k, cfg);
    cr_assert_eq(wsc_connect(c, s->port, "/ws"), 0);
}

/* The server saw its one connection end, with code. */
static void keeper_closed(keeper_t *k, int code)
{
    cr_assert_eq(e2e_wait_atomic(&k->closed, 1, 5000), 1, "on_close not called within 5 s");
    cr_assert_eq(atomic_load(&k->codes[0]), code);
}

/* ... and then the client closes and the server stops. */
static void keeper_end(e2e_server_t *s, keeper_t *k, e2e_conn_t *c, int code)
{
    keeper_closed(k, code);
    e2e_conn_close(c);
    cr_assert_eq(e2e_server_stop(s, 10000), 0);
}

static appsrv_config_t quiet_cfg(void)
{
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.threads = 1;
    cfg.ws_ping_ms = 0;
    return cfg;
}

/* The first handle the keeper holds, with a reference of the test's. */
static appsrv_ws_t *keeper_take(keeper_t *k)
{
    pthread_mutex_lock(&k->lock);
    appsrv_ws_t *ws = k->n > 0 ? k->ws[0] : NULL;
    if (ws != NULL)
        appsrv_ws_hold(ws);
    pthread_mutex_unlock(&k->lock);
    return ws;
}

/* -------------------------------------------------------- other threads */

typedef struct sender {
    appsrv_ws_t *ws;
    int count;
    int rc;
} sender_t;

static void *send_numbers(void *arg)
{
    sender_t *s = arg;
    for (int i = 0; i < s->count; i++) {
        char m[32];
        int n = snprintf(m, sizeof(m), "%d", i);
        int rc;
        while ((rc = appsrv_ws_send(s->ws, APPSRV_WS_TEXT, m, (size_t)n)) == -EAGAIN)
            e2e_pause_ms(1);
        if (rc < 0) {
            s->rc = rc;
            return NULL;
        }
    }
    return NULL;
}

Test(ws_life, sends_from_another_thread_in_order, TMO)
{
    keeper_t k = {0};
    appsrv_config_t cfg = quiet_cfg();
    e2e_server_t s;
    e2e_conn_t c;
    keeper_open(&s, &k, &cfg, &c);
    cr_assert_eq(e2e_wait_atomic(&k.opened, 1, 5000), 1);
    sender_t snd = {keeper_take(&k), e2e_valgrind() ? 500 : 5000, 0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, send_numbers, &snd), 0);
    for (int i = 0; i < snd.count; i++) {
        unsigned op;
        uint8_t *m;
        size_t n;
        cr_assert_eq(wsc_read_message(&c, &op, &m, &n, NULL, 10000), 0, "message %d", i);
        cr_assert_eq(atoi((char *)m), i);
        free(m);
    }
    pthread_join(th, NULL);
    cr_assert_eq(snd.rc, 0);
    appsrv_ws_release(snd.ws);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

Test(ws_life, backpressure_eagain_then_drain, TMO)
{
    keeper_t k = {0};
    appsrv_config_t cfg = quiet_cfg();
    e2e_server_t s;
    e2e_conn_t c;
    keeper_open(&s, &k, &cfg, &c);
    cr_assert_eq(e2e_wait_atomic(&k.opened, 1, 5000), 1);
    appsrv_ws_t *ws = keeper_take(&k);
    static uint8_t big[64 * 1024];
    e2e_fill_pattern(big, sizeof(big), 3);
    int sent = 0, rc;
    while ((rc = appsrv_ws_send(ws, APPSRV_WS_BINARY, big, sizeof(big))) == 0 && sent < 1000)
        sent++;
    cr_assert_eq(rc, -EAGAIN, "sent %d without -EAGAIN", sent);
    /* Bounded: 256 KiB wait beyond what the sockets' buffers hold (a few
     * MiB on loopback, autotuned). */
    cr_assert_lt(sent, 400);
    cr_log_info("backpressure: -EAGAIN after %d messages of 64 KiB", sent);
    /* on_drain may come before the client reads (the kernel's socket
     * buffers take what the server writes); it must come by the end. */
    for (int i = 0; i < sent; i++) {
        unsigned op;
        uint8_t *m;
        size_t n;
        cr_assert_eq(wsc_read_message(&c, &op, &m, &n, NULL, 10000), 0);
        cr_assert(op == WSC_BIN && n == sizeof(big) && memcmp(m, big, n) == 0);
        free(m);
    }
    cr_assert_eq(e2e_wait_atomic(&k.drains, 1, 5000), 1);
    cr_assert_eq(appsrv_ws_send(ws, APPSRV_WS_BINARY, big, 10), 0);
    appsrv_ws_release(ws);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

/* A client that floods without reading: input is held back once output
 * backs up, so the server's memory stays bounded and echoes never fail. */
typedef struct flood {
    e2e_conn_t *c;
    const uint8_t *frame;
    size_t len;
    int count;
    int rc;
} flood_t;

static void *flood_main(void *arg)
{
    flood_t *f = arg;
    for (int i = 0; i < f->count && f->rc == 0; i++) {
        const uint8_t *p = f->frame;
        size_t left = f->len;
        while (left > 0) {
            ssize_t w = send(f->c->fd, p, left, MSG_NOSIGNAL);
            if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
                /* The toolkit's sockets are non-blocking: wait (bounded)
                 * for the server to take more. */
                struct pollfd pfd = {.fd = f->c->fd, .events = POLLOUT};
                if (poll(&pfd, 1, 10000) <= 0) {
                    f->rc = -ETIMEDOUT;
                    break;
                }
                continue;
            }
            if (w <= 0) {
                f->rc = -errno;
                break;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    return NULL;
}

Test(ws_life, flood_without_reading_is_throttled, TMO)
{
    keeper_t k = {0};
    appsrv_config_t cfg = quiet_cfg();
    e2e_server_t s;
    e2e_conn_t c;
    keeper_open(&s, &k, &cfg, &c);
    static uint8_t frame[16 * 1024 + 14];
    static uint8_t pl[16 * 1024];
    e2e_fill_pattern(pl, sizeof(pl), 9);
    static const uint8_t key[4] = {1, 2, 3, 4};
    flood_t f = {&c, frame, wsc_build(frame, WSC_FIN | WSC_BIN, pl, sizeof(pl), key), 2000, 0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, flood_main, &f), 0);
    e2e_pause_ms(e2e_valgrind() ? 2000 : 300);
    int taken = atomic_load(&k.messages);
    cr_assert_lt(taken, f.count, "the server took all %d messages without pushing back", taken);
    cr_log_info("flood: %d of %d messages taken before the client read", taken, f.count);
    /* Now read everything: every message comes back. */
    for (int i = 0; i < f.count; i++) {
        unsigned op;
        uint8_t *m;
        size_t n;
        cr_assert_eq(wsc_read_message(&c, &op, &m, &n, NULL, 10000), 0, "echo %d", i);
        cr_assert(n == sizeof(pl) && memcmp(m, pl, n) == 0);
        free(m);
    }
    pthread_join(th, NULL);
    cr_assert_eq(f.rc, 0);
    cr_assert_eq(atomic_load(&k.messages), f.count);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

/* ------------------------------------------------------------- lifetime */

typedef struct blaster {
    keeper_t *k;
    atomic_bool stop;
    atomic_int eclosed, ok;
} blaster_t;

/* Sends to every kept handle over and over, outside the keeper's lock:
 * it holds its own reference on each while it uses it. */
static void *blast(void *arg)
{
    blaster_t *b = arg;
    while (!atomic_load(&b->stop)) {
        appsrv_ws_t *mine[MAXH];
        int n = 0;
        pthread_mutex_lock(&b->k->lock);
        for (int i = 0; i < b->k->n; i++) {
            appsrv_ws_hold(b->k->ws[i]);
            mine[n++] = b->k->ws[i];
        }
        pthread_mutex_unlock(&b->k->lock);
        for (int i = 0; i < n; i++) {
            int rc = appsrv_ws_send(mine[i], APPSRV_WS_TEXT, "blast", 5);
            if (rc == APPSRV_ECLOSED)
                atomic_fetch_add(&b->eclosed, 1);
            else if (rc == 0)
                atomic_fetch_add(&b->ok, 1);
            appsrv_ws_release(mine[i]);
        }
        /* Valgrind runs one thread at a time: a pass without a pause
         * starves the loops (a handshake timed out so in a CI run). */
        if (e2e_valgrind())
            e2e_pause_ms(1);
    }
    return NULL;
}

/* Stops the blaster; before any assertion, which would leave it running
 * on the test's stack frame. */
static void blast_stop(blaster_t *b, pthread_t th)
{
    atomic_store(&b->stop, true);
    pthread_join(th, NULL);
}

Test(ws_life, peers_vanish_while_another_thread_sends, .timeout = 120)
{
    keeper_t k = {0};
    appsrv_config_t cfg = quiet_cfg();
    cfg.threads = 2;
    e2e_server_t s;
    keeper_server(&s, &k, &cfg);
    blaster_t b = {.k = &k};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, blast, &b), 0);
    int rounds = e2e_valgrind() ? 3 : 20, per = 16;
    for (int r = 0; r < rounds; r++) {
        e2e_conn_t c[16];
        for (int i = 0; i < per; i++) {
            int rc = wsc_connect(&c[i], s.port, "/ws");
            if (rc != 0) {
                blast_stop(&b, th);
                cr_assert_fail("round %d, connection %d: %s (%d closed so far, blaster: %d sent, "
                               "%d ECLOSED)",
                               r, i, e2e_errname(rc), atomic_load(&k.closed),
                               atomic_load(&b.ok), atomic_load(&b.eclosed));
            }
        }
        e2e_pause_ms(5);
        for (int i = 0; i < per; i++) {
            if (i % 3 == 0)
                e2e_conn_reset(&c[i]); /* RST */
            else if (i % 3 == 1)
                e2e_conn_close(&c[i]); /* FIN */
            else {
                wsc_send(&c[i], WSC_FIN | WSC_CLOSE, "\x03\xe8", 2);
                e2e_conn_close(&c[i]);
            }
        }
    }
    int closed = e2e_wait_atomic(&k.closed, rounds * per, 10000);
    blast_stop(&b, th);
    cr_assert_eq(closed, rounds * per);
    cr_assert_gt(atomic_load(&b.ok), 0);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

/* The host drops its reference early; the connection goes on, callbacks
 * still get a valid handle, and on_close still comes. */
static atomic_int early_closed;

static void early_open(appsrv_ws_t *ws, void *user)
{
    (void)user;
    appsrv_ws_release(ws);
}

static void early_message(appsrv_ws_t *ws, appsrv_ws_type_t type, const void *data, size_t len,
                          void *user)
{
    (void)user;
    appsrv_ws_send(ws, type, data, len);
}

static void early_close(appsrv_ws_t *ws, int code, appsrv_str_t reason, void *user)
{
    (void)ws, (void)reason, (void)user;
    atomic_store(&early_closed, code);
}

Test(ws_life, release_before_close, TMO)
{
    appsrv_ws_handlers_t h = {
        .on_open = early_open, .on_message = early_message, .on_close = early_close};
    wsc_route_t route = {"/ws", &h, NULL, NULL};
    appsrv_config_t cfg = quiet_cfg();
    e2e_server_t s;
    cr_assert_eq(wsc_server_start(&s, &cfg, &route, 1), 0);
    e2e_conn_t c;
    cr_assert_eq(wsc_connect(&c, s.port, "/ws"), 0);
    cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_TEXT, "still here", 10), 0);
    unsigned op;
    uint8_t *m;
    size_t n;
    cr_assert_eq(wsc_read_message(&c, &op, &m, &n, NULL, 5000), 0);
    free(m);
    cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_CLOSE, "\x03\xe9", 2), 0);
    cr_assert_eq(wsc_expect_close(&c, 5000), 1001);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_wait_atomic(&early_closed, 1001, 5000), 1001);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

/* ---------------------------------------------------------------- closes */

Test(ws_life, host_close_answered, TMO)
{
    keeper_t k = {0};
    appsrv_config_t cfg = quiet_cfg();
    e2e_server_t s;
    e2e_conn_t c;
    keeper_open(&s, &k, &cfg, &c);
    cr_assert_eq(e2e_wait_atomic(&k.opened, 1, 5000), 1);
    appsrv_ws_t *ws = keeper_take(&k);
    cr_assert_eq(appsrv_ws_send(ws, APPSRV_WS_TEXT, "last words", 10), 0);
    cr_assert_eq(appsrv_ws_close(ws, 4100, "bye"), 0);
    cr_assert_eq(appsrv_ws_send(ws, APPSRV_WS_TEXT, "too late", 8), APPSRV_ECLOSED);
    cr_assert_eq(appsrv_ws_close(ws, 1000, NULL), APPSRV_ECLOSED);
    wsc_frame_t f;
    cr_assert_eq(wsc_read(&c, &f, 5000), 0);
    cr_assert_str_eq((char *)f.data, "last words");
    wsc_frame_free(&f);
    cr_assert_eq(wsc_read(&c, &f, 5000), 0);
    cr_assert_eq(f.close_code, 4100);
    cr_assert_eq(f.len, 5);
    cr_assert_eq(memcmp(f.data + 2, "bye", 3), 0);
    wsc_frame_free(&f);
    cr_assert_eq(atomic_load(&k.closed), 0); /* not before the handshake ends */
    cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_CLOSE, "\x10\x04", 2), 0);
    cr_assert_eq(e2e_wait_closed(&c, 5000), 0);
    keeper_closed(&k, 4100);
    appsrv_ws_release(ws); /* still valid after on_close: the test's reference */
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

Test(ws_life, host_close_unanswered_times_out, TMO)
{
    keeper_t k = {0};
    appsrv_config_t cfg = quiet_cfg();
    /* The timer starts from the loop's clock of the iteration that sends
     * the close, which may be older than t0 (read on this thread) by as
     * long as one iteration takes: tens of ms under valgrind. A 1 s
     * timeout with a 0.5 s lower bound still tells a timeout that waited
     * from one that did not. */
    cfg.ws_close_timeout_ms = 1000;
    e2e_server_t s;
    e2e_conn_t c;
    keeper_open(&s, &k, &cfg, &c);
    cr_assert_eq(e2e_wait_atomic(&k.opened, 1, 5000), 1);
    appsrv_ws_t *ws = keeper_take(&k);
    int64_t t0 = e2e_now_ms();
    cr_assert_eq(appsrv_ws_close(ws, 1000, NULL), 0);
    appsrv_ws_release(ws);
    cr_assert_eq(wsc_expect_close(&c, 5000), 1000);
    int64_t took = e2e_now_ms() - t0;
    cr_assert(took >= 500 && took < 4000, "closed after %lld ms", (long long)took);
    keeper_end(&s, &k, &c, 1006);
}

Test(ws_life, peer_reset_gives_1006, TMO)
{
    keeper_t k = {0};
    appsrv_config_t cfg = quiet_cfg();
    e2e_server_t s;
    e2e_conn_t c;
    keeper_open(&s, &k, &cfg, &c);
    cr_assert_eq(wsc_send(&c, WSC_TEXT, "half a message", 14), 0);
    cr_assert_eq(e2e_wait_atomic(&k.opened, 1, 5000), 1);
    e2e_conn_reset(&c);
    keeper_closed(&k, 1006);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

/* ----------------------------------------------------------------- pings */

Test(ws_life, pings_answered_keep_it_open, TMO)
{
    keeper_t k = {0};
    appsrv_config_t cfg = quiet_cfg();
    cfg.ws_ping_ms = 100;
    e2e_server_t s;
    e2e_conn_t c;
    keeper_open(&s, &k, &cfg, &c);
    int pings = 0;
    int64_t end = e2e_now_ms() + 700;
    while (e2e_now_ms() < end) {
        wsc_frame_t f;
        int rc = wsc_read(&c, &f, 300);
        cr_assert_eq(rc, 0, "no ping within 300 ms (%d)", rc);
        cr_assert_eq(f.b0, WSC_FIN | WSC_PING);
        cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_PONG, f.data, f.len), 0);
        wsc_frame_free(&f);
        pings++;
    }
    cr_assert_geq(pings, 4);
    cr_assert_eq(atomic_load(&k.closed), 0);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

Test(ws_life, silent_peer_closed_after_a_ping, TMO)
{
    keeper_t k = {0};
    appsrv_config_t cfg = quiet_cfg();
    /* A ping after one period of silence, the close after a second one:
     * two periods from the server's clock, which started at the upgrade,
     * before this thread's t0 by as long as the 101 took to reach it
     * (70 ms and more under valgrind). One period is the lower bound. */
    const int ping = SCALE(100, 500);
    cfg.ws_ping_ms = ping;
    e2e_server_t s;
    e2e_conn_t c;
    keeper_open(&s, &k, &cfg, &c);
    int64_t t0 = e2e_now_ms();
    wsc_trace_t t = {0};
    cr_assert_eq(wsc_collect(&c, &t, NULL, 0, 5000 + 4 * ping), 0);
    int64_t took = e2e_now_ms() - t0;
    cr_assert_str_eq(wsc_trace_str(&t), "P:617070737276 X ");
    cr_assert(took >= ping && took < 2000 + 4 * ping, "closed after %lld ms", (long long)took);
    keeper_closed(&k, 1006);
    wsc_trace_free(&t);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

/* -------------------------------------------------------------- timeouts */

Test(ws_life, idle_timeout_closes, TMO)
{
    keeper_t k = {0};
    appsrv_config_t cfg = quiet_cfg();
    /* Pings a third of the timeout apart, four of them: longer than the
     * timeout in all, with two thirds of it to spare for a late ping on a
     * loaded machine (100 ms of 200 was not enough under valgrind with
     * four test jobs on two cores). */
    const int idle = SCALE(600, 1500);
    cfg.idle_timeout_ms = idle;
    e2e_server_t s;
    e2e_conn_t c;
    keeper_open(&s, &k, &cfg, &c);
    /* Activity restarts the clock. */
    for (int i = 0; i < 4; i++) {
        e2e_pause_ms(idle / 3);
        cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_PING, "", 0), 0, "ping %d of 4 was refused", i);
    }
    cr_assert_eq(atomic_load(&k.closed), 0);
    int64_t t0 = e2e_now_ms();
    cr_assert_geq(e2e_wait_closed(&c, 5000 + idle), 0);
    int64_t took = e2e_now_ms() - t0;
    cr_assert(took >= idle / 2 && took < 2000 + idle, "closed after %lld ms", (long long)took);
    keeper_end(&s, &k, &c, 1006);
}

Test(ws_life, stalled_frame_head_timeout, TMO)
{
    keeper_t k = {0};
    appsrv_config_t cfg = quiet_cfg();
    cfg.head_timeout_ms = 200;
    e2e_server_t s;
    e2e_conn_t c;
    keeper_open(&s, &k, &cfg, &c);
    cr_assert_eq(e2e_send(&c, "\x81", 1), 0); /* half a header */
    cr_assert_eq(wsc_expect_close(&c, 5000), 1008);
    keeper_end(&s, &k, &c, 1006);
}

/* A large frame is read straight into the message buffer; a peer that
 * stalls inside it meets the idle timeout, one that resets leaves nothing
 * behind (the buffer is freed once, by the WebSocket side). */
static size_t big_frame_prefix(uint8_t **out, size_t total, size_t sent)
{
    uint8_t *pl = malloc(total);
    cr_assert_not_null(pl);
    e2e_fill_pattern(pl, total, 11);
    uint8_t *f = malloc(total + 14);
    cr_assert_not_null(f);
    static const uint8_t key[4] = {9, 8, 7, 6};
    size_t n = wsc_build(f, WSC_FIN | WSC_BIN, pl, total, key);
    free(pl);
    *out = f;
    return n - (total - sent);
}

Test(ws_life, large_frame_stalled_meets_idle_timeout, TMO)
{
    keeper_t k = {0};
    appsrv_config_t cfg = quiet_cfg();
    cfg.idle_timeout_ms = 300;
    e2e_server_t s;
    e2e_conn_t c;
    keeper_open(&s, &k, &cfg, &c);
    uint8_t *f;
    size_t n = big_frame_prefix(&f, 200 * 1024, 90 * 1024);
    cr_assert_eq(e2e_send(&c, f, n), 0);
    free(f);
    cr_assert_eq(wsc_expect_close(&c, 5000), 1008);
    keeper_closed(&k, 1006);
    cr_assert_eq(atomic_load(&k.messages), 0);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

Test(ws_life, reset_inside_large_frame, TMO)
{
    keeper_t k = {0};
    appsrv_config_t cfg = quiet_cfg();
    e2e_server_t s;
    keeper_server(&s, &k, &cfg);
    for (int i = 0; i < 4; i++) {
        e2e_conn_t c;
        cr_assert_eq(wsc_connect(&c, s.port, "/ws"), 0);
        uint8_t *f;
        size_t n = big_frame_prefix(&f, 512 * 1024, (size_t)(40 + 100 * i) * 1024);
        cr_assert_eq(e2e_send(&c, f, n), 0);
        free(f);
        e2e_pause_ms(20);
        e2e_conn_reset(&c);
    }
    cr_assert_eq(e2e_wait_atomic(&k.closed, 4, 5000), 4);
    /* The server still echoes a large message whole. */
    e2e_conn_t c;
    cr_assert_eq(wsc_connect(&c, s.port, "/ws"), 0);
    uint8_t *f;
    size_t n = big_frame_prefix(&f, 300 * 1024, 300 * 1024);
    cr_assert_eq(e2e_send(&c, f, n), 0);
    free(f);
    unsigned op;
    uint8_t *m;
    size_t len;
    cr_assert_eq(wsc_read_message(&c, &op, &m, &len, NULL, 5000), 0);
    uint8_t *want = malloc(len);
    e2e_fill_pattern(want, len, 11);
    cr_assert(op == WSC_BIN && len == 300 * 1024 && memcmp(m, want, len) == 0);
    free(want);
    free(m);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

/* ------------------------------------------------------------------ stop */

static void *release_later(void *arg)
{
    appsrv_ws_t *ws = arg;
    e2e_pause_ms(300);
    appsrv_ws_release(ws);
    return NULL;
}

Test(ws_life, graceful_stop_says_going_away, TMO)
{
    keeper_t k = {.keep_ref = true};
    appsrv_config_t cfg = quiet_cfg();
    e2e_server_t s;
    e2e_conn_t c;
    keeper_open(&s, &k, &cfg, &c);
    cr_assert_eq(e2e_wait_atomic(&k.opened, 1, 5000), 1);
    pthread_mutex_lock(&k.lock);
    appsrv_ws_t *ws = k.ws[0];
    pthread_mutex_unlock(&k.lock);
    e2e_server_request_stop(&s);
    wsc_frame_t f;
    cr_assert_eq(wsc_read(&c, &f, 5000), 0);
    cr_assert_eq(f.close_code, 1001);
    cr_assert_str_eq((char *)f.data + 2, "server stopping");
    wsc_frame_free(&f);
    cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_CLOSE, "\x03\xe9", 2), 0);
    cr_assert_eq(e2e_wait_closed(&c, 5000), 0);
    keeper_closed(&k, 1001);
    /* run waits for the host's last reference. */
    pthread_t th;
    int64_t t0 = e2e_now_ms();
    cr_assert_eq(pthread_create(&th, NULL, release_later, ws), 0);
    cr_assert_eq(e2e_server_join(&s, 10000), 0);
    cr_assert_geq(e2e_now_ms() - t0, 250);
    pthread_join(th, NULL);
    cr_assert_eq(s.run_rc, 0);
    appsrv_server_free(s.srv);
    e2e_conn_close(&c);
}
