/* SPDX-License-Identifier: MIT */
/*
 * test_e2e_tls_hostile.c - the HTTPS listener against hostile and odd
 * clients, and the TLS API's contracts: plaintext HTTP to the TLS port,
 * truncated and stalled ClientHellos (closed, at the head timeout),
 * 1,000 slow handshakes while normal requests are answered, random
 * bytes after a valid handshake, handshakes counted against max_conns,
 * key updates during a stalled big response, certificate reload under
 * load with no failed request, SNI added while running, and the error
 * returns of appsrv_tls_new()/appsrv_listen_https().
 *
 * In-process server (tls_util.h) on 127.0.0.1 port 0 with a short head
 * timeout; raw sockets for the hostile bytes and a blocking OpenSSL
 * client for the good ones. Built with TLS=no the suite is skipped.
 */
#include <criterion/criterion.h>

#ifndef APPSRV_HAVE_TLS
Test(tls_hostile, skipped)
{
    cr_skip_test("built with TLS=no: no HTTPS to test");
}
#else

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "e2e.h"
#include "tls_util.h"

#define TMO     60
#define HEAD_MS 800
#define TLS_STOP_MS (e2e_valgrind() ? 30000 : 10000)

static tls_pki_t g_pki;
static appsrv_tls_t *g_tls;
static e2e_server_t g_srv;
static int g_https;

static int h_hello(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "hello", 5);
}

static int h_big(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    size_t n = 4u << 20;
    char *p = malloc(n);
    if (p == NULL)
        return -ENOMEM;
    e2e_fill_pattern(p, n, 11);
    appsrv_res_set_status(res, 200);
    int rc = appsrv_res_set_body(res, p, n);
    free(p);
    return rc;
}

static const e2e_route_t ROUTES[] = {
    {"GET", "/hello", h_hello, NULL, false},
    {"GET", "/big", h_big, NULL, false},
};

static void start(int threads, int max_conns, int head_ms)
{
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.threads = threads;
    cfg.max_conns = max_conns;
    cfg.head_timeout_ms = head_ms;
    int rc = tls_server_start(&g_srv, &cfg, ROUTES, 2, g_tls, &g_https);
    cr_assert_eq(rc, 0, "server start: %s", appsrv_strerror(rc));
}

static void setup(void)
{
    cr_assert_eq(tls_pki_make(&g_pki), 0, "making the test PKI with openssl failed");
    int rc = appsrv_tls_new(&g_tls, NULL, g_pki.chain, g_pki.key, NULL);
    cr_assert_eq(rc, 0, "appsrv_tls_new: %s", appsrv_strerror(rc));
}

static void teardown(void)
{
    if (g_srv.srv != NULL)
        e2e_server_stop(&g_srv, TLS_STOP_MS); /* a test that failed early */
    appsrv_tls_free(g_tls);
    g_tls = NULL;
    tls_pki_remove(&g_pki);
}

/* Every test ends here: the server must stop (drain) in time. Asserting
 * in .fini is not safe with Criterion, hence a call in each body. */
static void stop_server(void)
{
    int rc = e2e_server_stop(&g_srv, TLS_STOP_MS);
    cr_assert_eq(rc, 0, "server stop: run returned %d (%s)", rc, appsrv_strerror(rc));
}

/* One good request on a new TLS connection: 0 or a negative errno. */
static int good_request(const char *sni, char *cn, size_t cncap)
{
    /* valgrind runs the server and every client thread of this process
     * one at a time: waits stretch */
    int tmo = e2e_valgrind() ? 30000 : 5000;
    tls_client_t c;
    int rc = tls_client_open(&c, g_https, g_pki.ca, sni, NULL, tmo);
    if (rc < 0)
        return rc;
    int status = 0;
    char body[64];
    rc = tls_client_request(&c, "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n", &status, body,
                            sizeof(body), tmo);
    if (rc == 0 && (status != 200 || strcmp(body, "hello") != 0))
        rc = -EPROTO;
    if (rc == 0 && cn != NULL)
        rc = tls_client_peer_cn(&c, cn, cncap);
    tls_client_close(&c);
    return rc;
}

static void expect_serving(const char *when)
{
    int rc = good_request(NULL, NULL, 0);
    cr_expect_eq(rc, 0, "no good request %s: %s", when, appsrv_strerror(rc));
}

/* A TLS 1.x handshake record header announcing 512 bytes, and a few. */
static const unsigned char HELLO_START[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
                                            0x00, 0x01, 0xfc, 0x03, 0x03};

/* ------------------------------------------------------------------ tests */

Test(tls_hostile, plaintext_http_to_tls_port, .init = setup, .fini = teardown, .timeout = TMO)
{
    start(1, 100, 5000);
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, g_https), 0);
    cr_assert_eq(e2e_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    int64_t t0 = e2e_now_ms();
    long n = e2e_wait_closed(&c, 3000);
    cr_expect_geq(n, 0, "plaintext on the TLS port was not closed within 3 s");
    cr_expect_lt(e2e_now_ms() - t0, 2000, "closed only at a timeout, not at once");
    e2e_conn_close(&c);
    expect_serving("after plaintext HTTP on the TLS port");
    /* The failed handshake is counted (metrics are summed at any time). */
    char *m = NULL;
    cr_assert_gt(appsrv_metrics_format(g_srv.srv, &m), 0);
    cr_expect(strstr(m, "appsrv_tls_handshake_failures_total 1\n") != NULL,
              "failed handshake not counted: %.300s",
              strstr(m, "appsrv_tls_handshake") ? strstr(m, "appsrv_tls_handshake") : "(none)");
    free(m);
    stop_server();
}

Test(tls_hostile, truncated_client_hello, .init = setup, .fini = teardown, .timeout = TMO)
{
    start(1, 100, HEAD_MS);
    /* truncated, then FIN: closed at once */
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, g_https), 0);
    cr_assert_eq(e2e_send(&c, HELLO_START, sizeof(HELLO_START)), 0);
    shutdown(c.fd, SHUT_WR);
    int64_t t0 = e2e_now_ms();
    cr_expect_geq(e2e_wait_closed(&c, 3000), 0, "truncated ClientHello + FIN not closed");
    cr_expect_lt(e2e_now_ms() - t0, HEAD_MS / 2, "closed only at the head timeout");
    e2e_conn_close(&c);
    /* truncated, then silence: closed at the head timeout */
    cr_assert_eq(e2e_conn_open(&c, g_https), 0);
    t0 = e2e_now_ms();
    cr_assert_eq(e2e_send(&c, HELLO_START, sizeof(HELLO_START)), 0);
    cr_expect_geq(e2e_wait_closed(&c, HEAD_MS + 3000), 0, "stalled ClientHello not closed");
    int64_t dt = e2e_now_ms() - t0;
    /* The lower bound is loose: the server counts from its loop's clock,
     * read at the start of the pass that accepted, which under valgrind on
     * a loaded machine can lag the test's clock by a large fraction of
     * HEAD_MS (seen: 659 ms). Closing at once is the failure it guards. */
    cr_expect(dt >= HEAD_MS / 2 && dt < HEAD_MS + 1500, "closed after %lld ms, head timeout %d",
              (long long)dt, HEAD_MS);
    e2e_conn_close(&c);
    expect_serving("after truncated ClientHellos");
    stop_server();
}

Test(tls_hostile, stalled_handshake_closed_at_head_timeout, .init = setup, .fini = teardown,
     .timeout = TMO)
{
    start(1, 100, HEAD_MS);
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, g_https), 0);
    int64_t t0 = e2e_now_ms();
    cr_expect_geq(e2e_wait_closed(&c, HEAD_MS + 3000), 0, "silent client not closed");
    int64_t dt = e2e_now_ms() - t0;
    /* The lower bound is loose: the server counts from its loop's clock,
     * read at the start of the pass that accepted, which under valgrind on
     * a loaded machine can lag the test's clock by a large fraction of
     * HEAD_MS (seen: 659 ms). Closing at once is the failure it guards. */
    cr_expect(dt >= HEAD_MS / 2 && dt < HEAD_MS + 1500, "closed after %lld ms, head timeout %d",
              (long long)dt, HEAD_MS);
    e2e_conn_close(&c);
    stop_server();
}

Test(tls_hostile, slow_handshakes_do_not_block_requests, .init = setup, .fini = teardown,
     .timeout = 120)
{
    int n = e2e_valgrind() ? 200 : 1000;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)(3 * n + 100) && rl.rlim_max >= (rlim_t)(3 * n + 100)) {
        rl.rlim_cur = (rlim_t)(3 * n + 100);
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    start(2, 10000, 10000);
    int *fds = calloc((size_t)n, sizeof(int));
    cr_assert_not_null(fds);
    int opened = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = appsrv_connect("127.0.0.1", g_https, 2000);
        if (fds[i] < 0)
            break;
        opened++;
        /* each sends a few bytes of a ClientHello, then dribbles */
        if (send(fds[i], HELLO_START, 6, MSG_NOSIGNAL) != 6)
            break;
    }
    cr_assert_eq(opened, n, "opened only %d of %d slow handshakes", opened, n);
    for (int round = 0; round < 20; round++) {
        for (int i = round; i < n; i += 20) {
            ssize_t w = send(fds[i], HELLO_START + 6 + (round % 5), 1, MSG_NOSIGNAL);
            (void)w;
        }
        int64_t t0 = e2e_now_ms();
        int rc = good_request(NULL, NULL, 0);
        int64_t dt = e2e_now_ms() - t0;
        cr_assert_eq(rc, 0, "request %d among %d slow handshakes: %s", round, n,
                     appsrv_strerror(rc));
        cr_expect_lt(dt, e2e_valgrind() ? 5000 : 1000, "request %d took %lld ms", round,
                     (long long)dt);
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
    stop_server();
}

Test(tls_hostile, random_bytes_after_handshake, .init = setup, .fini = teardown, .timeout = TMO)
{
    start(1, 100, 5000);
    for (int round = 0; round < 3; round++) {
        tls_client_t c;
        cr_assert_eq(tls_client_open(&c, g_https, g_pki.ca, NULL, NULL, 5000), 0);
        unsigned char junk[4096];
        e2e_fill_pattern(junk, sizeof(junk), (uint32_t)round);
        if (round == 1)
            memcpy(junk, "\x17\x03\x03\x00\x40", 5); /* a plausible record header */
        cr_assert_eq(send(c.fd, junk, sizeof(junk), MSG_NOSIGNAL), (ssize_t)sizeof(junk));
        e2e_conn_t raw = {.fd = c.fd};
        cr_expect_geq(e2e_wait_closed(&raw, 3000), 0, "junk after the handshake not closed");
        free(raw.buf);
        tls_client_close(&c);
    }
    expect_serving("after random bytes");
    stop_server();
}

Test(tls_hostile, fin_without_close_notify_is_a_half_close, .init = setup, .fini = teardown,
     .timeout = TMO)
{
    /* RFC 8446 §6.1 asks for close_notify, but many clients just send
     * FIN: the request before it is still answered, as over cleartext. */
    start(1, 100, 5000);
    tls_client_t c;
    cr_assert_eq(tls_client_open(&c, g_https, g_pki.ca, NULL, NULL, 5000), 0);
    const char *req = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t w;
    cr_assert_eq(SSL_write_ex(c.ssl, req, strlen(req), &w), 1);
    shutdown(c.fd, SHUT_WR);
    char buf[512] = "";
    size_t got = 0, n;
    while (got < sizeof(buf) - 1 && SSL_read_ex(c.ssl, buf + got, sizeof(buf) - 1 - got, &n) == 1)
        got += n;
    ERR_clear_error();
    buf[got] = '\0';
    cr_expect(strstr(buf, "200 OK") != NULL && strstr(buf, "hello") != NULL,
              "no answer after a bare FIN: %s", buf);
    tls_client_close(&c);
    stop_server();
}

Test(tls_hostile, handshakes_count_against_max_conns, .init = setup, .fini = teardown,
     .timeout = TMO)
{
    start(1, 4, 5000);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = appsrv_connect("127.0.0.1", g_https, 2000);
        cr_assert_geq(fds[i], 0);
    }
    e2e_pause_ms(100); /* accepted and counted */
    tls_client_t c;
    cr_expect_neq(tls_client_open(&c, g_https, g_pki.ca, NULL, NULL, 3000), 0,
                  "a 5th connection got through a cap of 4 held by handshakes");
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    e2e_pause_ms(100);
    expect_serving("once the stalled handshakes left");
    stop_server();
}

Test(tls_hostile, key_updates, .init = setup, .fini = teardown, .timeout = TMO)
{
    start(1, 100, 5000);
    tls_client_t c;
    cr_assert_eq(tls_client_open(&c, g_https, g_pki.ca, NULL, NULL, 5000), 0);
    int status;
    char body[64];
    for (int i = 0; i < 50; i++) {
        /* RFC 8446 §4.6.3: the server must answer with its own update */
        cr_assert_eq(
            SSL_key_update(c.ssl, i % 2 ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED),
            1);
        cr_assert_eq(tls_client_request(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &status, body,
                                        sizeof(body), 5000),
                     0, "request %d after a key update", i);
        cr_expect_eq(status, 200);
    }
    /* a requested update while a 4 MiB answer is stuck in full buffers,
     * and a pipelined request behind it */
    size_t w;
    const char *big = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *hello = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(SSL_write_ex(c.ssl, big, strlen(big), &w), 1);
    e2e_pause_ms(200);
    cr_assert_eq(SSL_key_update(c.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
    cr_assert_eq(SSL_write_ex(c.ssl, hello, strlen(hello), &w), 1);
    size_t want = (4u << 20), got = 0;
    char *buf = malloc(want + 4096);
    cr_assert_not_null(buf);
    char *head_end = NULL;
    while (head_end == NULL || got < (size_t)(head_end + 4 - buf) + want) {
        size_t n = 0;
        cr_assert_eq(SSL_read_ex(c.ssl, buf + got, want + 4095 - got, &n), 1,
                     "big response cut after %zu bytes", got);
        got += n;
        buf[got] = '\0';
        if (head_end == NULL)
            head_end = strstr(buf, "\r\n\r\n");
    }
    char *want_body = malloc(want);
    e2e_fill_pattern(want_body, want, 11);
    cr_expect(memcmp(head_end + 4, want_body, want) == 0, "big body differs");
    free(want_body);
    size_t extra = got - (size_t)(head_end + 4 - buf) - want;
    char tail[256] = "";
    memcpy(tail, head_end + 4 + want, extra < 255 ? extra : 255);
    free(buf);
    /* the pipelined /hello answer follows (maybe partly read already) */
    while (strstr(tail, "hello") == NULL) {
        size_t n = 0, l = strlen(tail);
        cr_assert_eq(SSL_read_ex(c.ssl, tail + l, sizeof(tail) - 1 - l, &n), 1,
                     "no answer to the request after the key update; got: %s", tail);
        tail[l + n] = '\0';
    }
    tls_client_close(&c);
    stop_server();
}

/* ------------------------------------------------------------ reload/SNI */

typedef struct load {
    atomic_bool stop;
    atomic_int ok, failed, saw1, saw2;
    int last_err;
} load_t;

static void *load_main(void *arg)
{
    load_t *l = arg;
    while (!atomic_load(&l->stop)) {
        char cn[64] = "";
        int rc = good_request(NULL, cn, sizeof(cn));
        if (rc == 0) {
            atomic_fetch_add(&l->ok, 1);
            if (strcmp(cn, "localhost-1") == 0)
                atomic_fetch_add(&l->saw1, 1);
            if (strcmp(cn, "localhost-2") == 0)
                atomic_fetch_add(&l->saw2, 1);
        } else {
            l->last_err = rc;
            atomic_fetch_add(&l->failed, 1);
        }
    }
    return NULL;
}

static void put_files(const char *chain, const char *key, const char *live_c, const char *live_k)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "cp %s %s.tmp && cp %s %s.tmp && mv %s.tmp %s && mv %s.tmp %s",
             chain, live_c, key, live_k, live_c, live_c, live_k, live_k);
    cr_assert_eq(tls_sh(cmd, 10000, NULL), 0);
}

Test(tls_hostile, reload_under_load, .init = setup, .fini = teardown, .timeout = 120)
{
    char live_c[160], live_k[160];
    snprintf(live_c, sizeof(live_c), "%s/live.pem", g_pki.dir);
    snprintf(live_k, sizeof(live_k), "%s/live.key", g_pki.dir);
    put_files(g_pki.chain, g_pki.key, live_c, live_k);
    appsrv_tls_free(g_tls);
    cr_assert_eq(appsrv_tls_new(&g_tls, NULL, live_c, live_k, NULL), 0);
    start(2, 1000, 5000);
    load_t l = {0};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, load_main, &l), 0);
    int reloads = 0, bad = 0;
    const int rounds = SCALE(30, 10); /* each reload parses PEM: slow under valgrind */
    for (int i = 0; i < rounds; i++) {
        e2e_pause_ms(30);
        if (i % 10 == 9) {
            /* a broken certificate: refused, the live one stays */
            char cmd[600];
            snprintf(cmd, sizeof(cmd), "echo garbage > %s.tmp && mv %s.tmp %s", live_c, live_c,
                     live_c);
            cr_assert_eq(tls_sh(cmd, 10000, NULL), 0);
            int rc = appsrv_tls_reload(g_tls);
            cr_expect_eq(rc, APPSRV_ETLSCERT, "reload of a broken file: %s", appsrv_strerror(rc));
            bad++;
        }
        if (i % 2 == 0)
            put_files(g_pki.chain2, g_pki.key2, live_c, live_k);
        else
            put_files(g_pki.chain, g_pki.key, live_c, live_k);
        int rc = appsrv_tls_reload(g_tls);
        cr_expect_eq(rc, 0, "reload %d: %s", i, appsrv_strerror(rc));
        reloads++;
    }
    e2e_pause_ms(100);
    atomic_store(&l.stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_expect_eq(atomic_load(&l.failed), 0, "%d of %d requests failed during %d reloads (%s)",
                 atomic_load(&l.failed), atomic_load(&l.ok) + atomic_load(&l.failed), reloads,
                 appsrv_strerror(l.last_err));
    cr_expect_gt(atomic_load(&l.ok), SCALE(50, 10), "only %d requests", atomic_load(&l.ok));
    cr_expect_gt(atomic_load(&l.saw1), 0, "never saw certificate 1");
    cr_expect_gt(atomic_load(&l.saw2), 0, "never saw certificate 2");
    cr_expect_eq(bad, rounds / 10);
    stop_server();
}

Test(tls_hostile, sni_added_while_running, .init = setup, .fini = teardown, .timeout = TMO)
{
    start(1, 100, 5000);
    char cn[64];
    cr_expect_neq(good_request("alt.test", cn, sizeof(cn)), 0,
                  "alt.test verified before its certificate was added");
    int rc = appsrv_tls_add_sni(g_tls, "alt.test", g_pki.alt_chain, g_pki.alt_key, NULL);
    cr_assert_eq(rc, 0, "add_sni: %s", appsrv_strerror(rc));
    cr_assert_eq(good_request("alt.test", cn, sizeof(cn)), 0);
    cr_expect_str_eq(cn, "alt.test");
    cr_assert_eq(good_request(NULL, cn, sizeof(cn)), 0);
    cr_expect_str_eq(cn, "localhost-1");
    /* a reload keeps the SNI entry */
    cr_assert_eq(appsrv_tls_reload(g_tls), 0);
    cr_assert_eq(good_request("alt.test", cn, sizeof(cn)), 0);
    cr_expect_str_eq(cn, "alt.test");
    /* replacing the name with another certificate */
    cr_assert_eq(appsrv_tls_add_sni(g_tls, "alt.test", g_pki.chain2, g_pki.key2, NULL), 0);
    cr_assert_eq(good_request(NULL, cn, sizeof(cn)), 0);
    cr_expect_str_eq(cn, "localhost-1");
    stop_server();
}

Test(tls_hostile, api_errors, .init = setup, .fini = teardown, .timeout = TMO)
{
    appsrv_tls_t *t = (appsrv_tls_t *)1;
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing.pem", g_pki.dir);
    cr_expect_eq(appsrv_tls_new(&t, NULL, missing, g_pki.key, NULL), -ENOENT);
    cr_expect_null(t);
    cr_expect_eq(appsrv_tls_new(NULL, NULL, g_pki.chain, g_pki.key, NULL), -EINVAL);
    cr_expect_eq(appsrv_tls_new(&t, NULL, NULL, g_pki.key, NULL), -EINVAL);
    cr_expect_eq(appsrv_tls_new(&t, NULL, g_pki.key, g_pki.key, NULL), APPSRV_ETLSCERT);
    cr_expect_eq(appsrv_tls_new(&t, NULL, g_pki.chain, g_pki.key2, NULL), APPSRV_ETLSKEY);
    cr_expect_eq(appsrv_tls_new(&t, NULL, g_pki.chain, g_pki.enc_key, NULL), APPSRV_ETLSKEY);
    cr_expect_eq(appsrv_tls_new(&t, NULL, g_pki.chain, g_pki.enc_key, "wrong"), APPSRV_ETLSKEY);
    cr_expect_eq(appsrv_tls_new(&t, NULL, g_pki.chain, g_pki.enc_key, "secret"), 0);
    appsrv_tls_free(t);
    appsrv_tls_config_t cfg;
    appsrv_tls_config_init(&cfg);
    cfg.ciphers = "NO-SUCH-CIPHER";
    cr_expect_eq(appsrv_tls_new(&t, &cfg, g_pki.chain, g_pki.key, NULL), APPSRV_ETLSCONF);
    appsrv_tls_config_init(&cfg);
    cfg.groups = "no-such-group";
    cr_expect_eq(appsrv_tls_new(&t, &cfg, g_pki.chain, g_pki.key, NULL), APPSRV_ETLSCONF);
    appsrv_tls_config_init(&cfg);
    cfg.min_version = 0x0302;
    cr_expect_eq(appsrv_tls_new(&t, &cfg, g_pki.chain, g_pki.key, NULL), -EINVAL);
    cr_expect_eq(appsrv_tls_add_sni(g_tls, "", g_pki.chain, g_pki.key, NULL), -EINVAL);
    cr_expect_eq(appsrv_tls_add_sni(g_tls, "x.test", missing, g_pki.key, NULL), -ENOENT);
    cr_expect_eq(appsrv_tls_reload(NULL), -EINVAL);
    cr_expect(appsrv_tls_available());
    appsrv_server_t *srv;
    cr_assert_eq(appsrv_server_new(&srv, NULL), 0);
    cr_expect_eq(appsrv_listen_https(srv, "127.0.0.1", 0, NULL), -EINVAL);
    appsrv_server_free(srv);
    cr_expect_str_eq(appsrv_errname(APPSRV_ETLSKEY), "APPSRV_ETLSKEY");
}

Test(tls_hostile, tls13_only_config, .init = setup, .fini = teardown, .timeout = TMO)
{
    appsrv_tls_free(g_tls);
    appsrv_tls_config_t cfg;
    appsrv_tls_config_init(&cfg);
    cfg.min_version = APPSRV_TLS1_3;
    cfg.ticket_key_seconds = 0; /* session cache instead of tickets */
    cr_assert_eq(appsrv_tls_new(&g_tls, &cfg, g_pki.chain, g_pki.key, NULL), 0);
    start(1, 100, 5000);
    char cmd[512], *out = NULL;
    snprintf(cmd, sizeof(cmd),
             "timeout 20 openssl s_client -connect 127.0.0.1:%d -CAfile %s -tls1_2 </dev/null 2>&1",
             g_https, g_pki.ca);
    cr_expect_neq(tls_sh(cmd, 30000, &out), 0, "TLS 1.2 accepted by a 1.3-only server: %s", out);
    free(out);
    expect_serving("over TLS 1.3 with a session cache");
    stop_server();
}

#endif /* APPSRV_HAVE_TLS */
