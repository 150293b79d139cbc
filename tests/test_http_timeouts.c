/* SPDX-License-Identifier: MIT */
/*
 * test_http_timeouts.c - the server's clocks end to end (README "Server behaviour and limits"): the head
 * timeout (408, also for a keep-alive second head and a slow-loris that
 * trickles bytes), the idle keep-alive timeout (restarted by every answer),
 * a stalled body, the write stall timeout and a slow reader that must not
 * block other connections. In-process server, raw clients.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "expect.h"
#include "routes.h"

typedef struct slow_reader {
    e2e_conn_t *c;
    const char *want; /* expected body */
    size_t want_len;
    atomic_bool fast;  /* main says: read at full speed now */
    atomic_size_t got; /* body bytes received so far */
    int err;           /* 0, or what went wrong */
    char msg[160];
} slow_reader_t;

/* Reads a 200 response with a big body in small reads with pauses until
 * told to go fast, checking every byte. Runs on its own thread. */
static void *slow_reader_main(void *arg)
{
    slow_reader_t *sr = arg;
    char head[4096];
    size_t hlen = 0, body_at = 0;
    char buf[4096];
    int64_t end = e2e_now_ms() + 60000;

    /* The head (and possibly the first body bytes). */
    while (body_at == 0) {
        int rc = e2e_read_exact(sr->c, head + hlen, 1, (int)(end - e2e_now_ms()));
        if (rc < 0 || ++hlen == sizeof(head)) {
            sr->err = rc < 0 ? rc : -E2BIG;
            snprintf(sr->msg, sizeof(sr->msg), "head: %d", rc);
            return NULL;
        }
        if (hlen >= 4 && memcmp(head + hlen - 4, "\r\n\r\n", 4) == 0)
            body_at = hlen;
    }
    char cl[64];
    snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n", sr->want_len);
    head[hlen] = '\0';
    if (strncmp(head, "HTTP/1.1 200 OK\r\n", 17) != 0 || strstr(head, cl) == NULL) {
        sr->err = -EPROTO;
        snprintf(sr->msg, sizeof(sr->msg), "bad head: %.100s", head);
        return NULL;
    }
    size_t got = 0;
    while (got < sr->want_len) {
        bool fast = atomic_load(&sr->fast);
        size_t want = fast ? sizeof(buf) : 1024; /* small recv()s while slow */
        if (want > sr->want_len - got)
            want = sr->want_len - got;
        int rc = e2e_read_some(sr->c, buf, want, (int)(end - e2e_now_ms()));
        if (rc < 0) {
            sr->err = rc;
            snprintf(sr->msg, sizeof(sr->msg), "body at %zu: %d", got, rc);
            return NULL;
        }
        want = (size_t)rc;
        if (memcmp(buf, sr->want + got, want) != 0) {
            sr->err = -EILSEQ;
            snprintf(sr->msg, sizeof(sr->msg), "body differs near %zu", got);
            return NULL;
        }
        got += want;
        atomic_store(&sr->got, got);
        if (!fast)
            poll(NULL, 0, 1);
    }
    return NULL;
}

Test(e2e_http, keep_alive_partial_second_head_408, .timeout = 30)
{
    appsrv_config_t cfg = base_cfg();
    cfg.head_timeout_ms = 300;
    cfg.idle_timeout_ms = 20000; /* the head timeout must apply, not this */
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, &cfg, &c);
    send_str(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);
    send_str(&c, "GET /hello HTTP/1.1\r\nHo");
    read_resp(&c, &r, 0); /* within RD (5 s), far below the idle timeout */
    check_status(&r, 408, "Request Timeout");
    cr_assert_str_eq(e2e_resp_header(&r, "Connection"), "close");
    e2e_resp_free(&r);
    expect_closed(&c, 3000);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, body_read_stall_closes, .timeout = 30)
{
    appsrv_config_t cfg = base_cfg();
    cfg.idle_timeout_ms = 500;
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, &cfg, &c);
    send_str(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello");
    /* The body never completes: the server gives up (a 408 or just the
     * close), never hangs on to the connection. */
    char *got = NULL;
    size_t len = 0;
    int rc = e2e_read_until_close(&c, &got, &len, 5000);
    cr_assert_eq(rc, 0, "a stalled body kept the connection open");
    static const char st408[] = "HTTP/1.1 408 Request Timeout\r\n";
    if (len > 0)
        cr_assert(len >= sizeof(st408) - 1 && memcmp(got, st408, sizeof(st408) - 1) == 0,
                  "unexpected answer to a stalled body: '%.*s'", (int)(len < 64 ? len : 64), got);
    free(got);
    close_and_stop(&c, &s, fds0);
}

/* Regression (review of issue 3): the keep-alive idle deadline kept the
 * time of the first answer, so a connection busy with requests every
 * third of the idle timeout was closed one idle timeout after its first
 * request. The idle clock restarts with every answer. */
Test(e2e_http, issue_3_idle_timeout_restarts_after_each_response, .timeout = 30)
{
    appsrv_config_t cfg = base_cfg();
    cfg.idle_timeout_ms = 600;
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, &cfg, &c);
    /* 8 requests 200 ms apart: 1.4 s in all, over twice the idle timeout. */
    for (int i = 0; i < 8; i++) {
        char req[128], body[32];
        snprintf(req, sizeof(req), "GET /seq/%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        snprintf(body, sizeof(body), "seq=%d", i);
        send_str(&c, req);
        e2e_resp_t r;
        read_resp(&c, &r, 0);
        check_status(&r, 200, "OK");
        check_body(&r, body);
        e2e_resp_free(&r);
        e2e_pause_ms(200);
    }
    /* Idle for real now: closed after the timeout, silently. */
    cr_assert_geq(e2e_wait_closed(&c, 5000), 0, "an idle connection was not closed");
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, silent_client_gets_head_timeout, .timeout = 30)
{
    appsrv_config_t cfg = base_cfg();
    cfg.head_timeout_ms = 300;
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_base(&s, &cfg);
    /* Connects and sends nothing: the server must not keep it forever. */
    e2e_conn_t c;
    open_conn(&c, s.port);
    char *got = NULL;
    size_t len = 0;
    cr_assert_eq(e2e_read_until_close(&c, &got, &len, 5000), 0, "silent connection kept open");
    static const char st408[] = "HTTP/1.1 408 Request Timeout\r\n";
    if (len > 0)
        cr_assert(len >= sizeof(st408) - 1 && memcmp(got, st408, sizeof(st408) - 1) == 0);
    free(got);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, err_408_head_timeout, .timeout = 30)
{
    appsrv_config_t cfg = base_cfg();
    cfg.head_timeout_ms = 300;
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, &cfg, &c);
    send_str(&c, "GET /hello HTTP/1.1\r\nHo");
    e2e_resp_t r;
    read_resp(&c, &r, 0); /* arrives after ~300 ms; RD bounds it */
    check_status(&r, 408, "Request Timeout");
    check_std(&r);
    check_body(&r, "Request Timeout");
    cr_assert_str_eq(e2e_resp_header(&r, "Connection"), "close");
    e2e_resp_free(&r);
    expect_closed(&c, 3000);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, head_timeout_counts_from_first_byte_not_per_byte, .timeout = 30)
{
    /* A slow-loris head that keeps trickling bytes still gets its 408. */
    appsrv_config_t cfg = base_cfg();
    cfg.head_timeout_ms = 300;
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, &cfg, &c);
    const char *head =
        "GET /hello HTTP/1.1\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    int64_t t0 = e2e_now_ms();
    bool got = false;
    for (size_t i = 0; head[i] != '\0' && e2e_now_ms() - t0 < 4000; i++) {
        if (e2e_send(&c, head + i, 1) < 0)
            break;
        if (e2e_pump(&c, 50) > 0 || c.eof) {
            got = true;
            break;
        }
    }
    if (!got)
        e2e_pump(&c, 2000);
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 408, "Request Timeout");
    e2e_resp_free(&r);
    expect_closed(&c, 3000);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, idle_keep_alive_timeout_silent_close, .timeout = 30)
{
    appsrv_config_t cfg = base_cfg();
    cfg.idle_timeout_ms = 500;
    cfg.head_timeout_ms = 300;
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, &cfg, &c);
    send_str(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);
    /* Idle: closed without a 408 (nothing was asked). */
    expect_closed(&c, 5000);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, slow_reader_does_not_block_others, .timeout = 90)
{
    int fds0 = e2e_fd_count();
    ref_ctx_t big;
    cr_assert_eq(ref_init(&big, SCALE(32 * MIB, 4 * MIB), 11), 0);
    const e2e_route_t routes[] = {
        {"GET", "/big", h_ref, &big, false},
        {"GET", "/seq/:n", h_seq, NULL, false},
    };
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP); /* one worker */
    e2e_conn_t slow, quick;
    open_conn(&slow, s.port);
    open_conn(&quick, s.port);
    send_str(&slow, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    slow_reader_t sr = {.c = &slow, .want = big.data, .want_len = big.len};
    atomic_init(&sr.fast, false);
    atomic_init(&sr.got, 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, slow_reader_main, &sr), 0);
    cr_assert_eq(e2e_wait_atomic(&big.calls, 1, 3000), 1);
    /* While the big response trickles out, the other connection gets
     * prompt answers (generous bound: not a timing test). */
    for (int i = 0; i < 10; i++) {
        char req[64], want[32];
        snprintf(req, sizeof(req), "GET /seq/%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        snprintf(want, sizeof(want), "seq=%d", i);
        int64_t t0 = e2e_now_ms();
        send_str(&quick, req);
        e2e_resp_t r;
        int rc = e2e_read_response(&quick, &r, 2000, 0);
        cr_assert_eq(rc, 0, "request %d on the other connection: %s after %lld ms", i,
                     appsrv_strerror(rc), (long long)(e2e_now_ms() - t0));
        check_body(&r, want);
        e2e_resp_free(&r);
        e2e_pause_ms(20);
    }
    size_t mid = atomic_load(&sr.got);
    cr_assert_lt(mid, big.len, "the slow reader was not slow");
    atomic_store(&sr.fast, true);
    pthread_join(th, NULL);
    cr_assert_eq(sr.err, 0, "slow reader: %s", sr.msg);
    cr_assert_eq(atomic_load(&sr.got), big.len);
    cr_assert_eq(e2e_wait_atomic(&big.freed, 1, 3000), 1);
    cr_assert(e2e_still_open(&slow, 50));
    e2e_conn_close(&slow);
    e2e_conn_close(&quick);
    stop_srv(&s);
    cr_assert_eq(atomic_load(&big.freed), 1);
    free(big.data);
    expect_fds(fds0);
}

Test(e2e_http, write_stall_timeout_closes, .timeout = 30)
{
    appsrv_config_t cfg = base_cfg();
    cfg.write_timeout_ms = 300;
    int fds0 = e2e_fd_count();
    ref_ctx_t big;
    cr_assert_eq(ref_init(&big, SCALE(16 * MIB, 8 * MIB), 12), 0);
    const e2e_route_t routes[] = {{"GET", "/big", h_ref, &big, false}};
    e2e_server_t s;
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(e2e_wait_atomic(&big.calls, 1, 3000), 1);
    /* Never read: the server gives up after the write stall timeout and
     * drops the response (its free callback runs when the conn is gone). */
    cr_assert_eq(e2e_wait_atomic(&big.freed, 1, 5000), 1, "stalled connection not closed");
    /* What was already in the socket buffers arrives, then the close. */
    char *got = NULL;
    size_t len = 0;
    int rc = e2e_read_until_close(&c, &got, &len, 5000);
    cr_assert_eq(rc, 0, "no close after the write stall");
    cr_assert_lt(len, big.len, "the whole body arrived: no stall happened");
    cr_assert(len > 17 && memcmp(got, "HTTP/1.1 200 OK\r\n", 17) == 0);
    free(got);
    e2e_conn_close(&c);
    stop_srv(&s);
    cr_assert_eq(atomic_load(&big.freed), 1);
    free(big.data);
    expect_fds(fds0);
}
