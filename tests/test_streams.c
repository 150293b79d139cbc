/* SPDX-License-Identifier: MIT */
/*
 * test_streams.c - streamed responses end to end (appsrv.h streaming): chunked
 * to HTTP/1.1 with keep-alive after, begun on the host thread, close-
 * delimited to HTTP/1.0, headers only for HEAD, the state errors of the
 * streaming calls, and backpressure: -EAGAIN past 256 KiB unsent, the drain
 * callback, 100 MiB to a slow reader with bounded RSS, a client that leaves
 * or stalls. Streams are read through tests/support's chunked decoder.
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
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>

#include "expect.h"
#include "host.h"
#include "routes.h"

static void stream_test_start(e2e_server_t *s, tctx_t *t, parts_t *p, const appsrv_config_t *cfg)
{
    t->arg = p;
    e2e_route_t routes[] = {
        {"GET", "/s", h_stream_parts, t, false},
        {"GET", "/fast", h_fast, t, false},
    };
    start_srv(s, cfg, routes, ARRAY_LEN(routes), E2E_HTTP);
}

/* GET /st/send2: finished in the handler, then again. */
static int h_st_send2(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    tctx_t *t = user;
    appsrv_res_set_status(res, 200);
    appsrv_res_set_body(res, "s2", 2);
    record_rc(t, appsrv_res_send(res)); /* 0 */
    record_rc(t, appsrv_res_send(res)); /* ESTATE: finished */
    return APPSRV_LATER;
}

/* GET /st/stream: every call out of order, then a good stream. */
static int h_st_stream(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    tctx_t *t = user;
    appsrv_res_set_status(res, 200);
    record_rc(t, appsrv_res_write(res, "x", 1));    /* ESTATE: not streaming */
    record_rc(t, appsrv_res_end(res));              /* ESTATE: not streaming */
    record_rc(t, appsrv_res_stream(res));           /* 0 */
    record_rc(t, appsrv_res_stream(res));           /* ESTATE */
    record_rc(t, appsrv_res_sse_begin(res, 0));     /* ESTATE */
    record_rc(t, appsrv_res_send(res));             /* ESTATE: a stream ends */
    record_rc(t, appsrv_res_write(res, "ok", 2));   /* 0 */
    record_rc(t, appsrv_res_end(res));              /* 0 */
    record_rc(t, appsrv_res_write(res, "late", 4)); /* ESTATE: ended */
    record_rc(t, appsrv_res_end(res));              /* ESTATE: ended */
    return APPSRV_LATER;
}

/* GET /st/sent: sent, then streaming calls. */
static int h_st_sent(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    tctx_t *t = user;
    appsrv_res_set_status(res, 200);
    appsrv_res_set_body(res, "sent", 4);
    record_rc(t, appsrv_res_send(res));          /* 0 */
    record_rc(t, appsrv_res_stream(res));        /* ESTATE */
    record_rc(t, appsrv_res_write(res, "x", 1)); /* ESTATE */
    record_rc(t, appsrv_res_end(res));           /* ESTATE */
    return APPSRV_LATER;
}

/* GET /st/sse: bad event and id fields. */
static int h_st_sse(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    tctx_t *t = user;
    appsrv_res_set_status(res, 200);
    record_rc(t, appsrv_res_sse_begin(res, 0));                /* 0 */
    record_rc(t, appsrv_res_sse_send(res, "a\nb", NULL, "x")); /* -EINVAL */
    record_rc(t, appsrv_res_sse_send(res, "ev", "1\r", "x"));  /* -EINVAL */
    record_rc(t, appsrv_res_sse_send(res, "ev", "1", "x"));    /* 0 */
    record_rc(t, appsrv_res_end(res));                         /* 0 */
    return APPSRV_LATER;
}

/* Line command STREAM: no streams on the line protocol. */
static int l_st_stream(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    tctx_t *t = user;
    record_rc(t, appsrv_res_stream(res));       /* ESTATE */
    record_rc(t, appsrv_res_sse_begin(res, 0)); /* ESTATE */
    appsrv_res_set_status(res, 200);
    appsrv_res_set_body(res, "nostream", 8);
    record_rc(t, appsrv_res_send(res)); /* 0 */
    return APPSRV_LATER;
}

static void expect_rcs(tctx_t *t, const int *want, int n, const char *what)
{
    cr_assert_eq(atomic_load(&t->nrcs), n, "%s: %d calls recorded", what, atomic_load(&t->nrcs));
    for (int i = 0; i < n; i++)
        cr_assert_eq(atomic_load(&t->rcs[i]), want[i], "%s: call %d returned %d (%s), expected %d",
                     what, i + 1, atomic_load(&t->rcs[i]), appsrv_errname(atomic_load(&t->rcs[i])),
                     want[i]);
    atomic_store(&t->nrcs, 0);
}

static void prod_test_start(e2e_server_t *s, tctx_t *t, prod_t *p, const appsrv_config_t *cfg)
{
    t->arg = p;
    e2e_route_t routes[] = {
        {"GET", "/p", h_produce, t, false},
        {"GET", "/fast", h_fast, t, false},
    };
    start_srv(s, cfg, routes, ARRAY_LEN(routes), E2E_HTTP);
}

/* Reads a produced chunked stream to its end through the toolkit's
 * decoder (chunked.h), checking every byte against the pattern. Pauses
 * after every `pause_every` bytes (a slow reader); samples VmRSS. */
typedef struct sread {
    uint64_t got;
    long rss_max;
    bool chunked_ok;
    int rc;
    bool mismatch;
    uint64_t mismatch_at;
} sread_t;

static int pattern_cb(void *ud, const unsigned char *p, size_t n)
{
    sread_t *sr = ud;
    for (size_t i = 0; i < n && !sr->mismatch; i++) {
        if (p[i] != pat_at(sr->got + i)) {
            sr->mismatch = true;
            sr->mismatch_at = sr->got + i;
        }
    }
    sr->got += n;
    return 0;
}

/* The head of the produced stream's 200 answer (its body stays in c). */
static void read_stream_head(e2e_conn_t *c)
{
    e2e_resp_t h;
    int rc = e2e_read_head(c, &h, RD);
    cr_assert_eq(rc, 0, "head: %s", e2e_errname(rc));
    cr_assert_eq(h.status, 200, "head: %d %s", h.status, h.reason);
    const char *te = e2e_resp_header(&h, "Transfer-Encoding");
    cr_assert(te != NULL && strcmp(te, "chunked") == 0, "Transfer-Encoding %s",
              te != NULL ? te : "(none)");
    e2e_resp_free(&h);
}

static void read_produced(e2e_conn_t *c, size_t pause_every, int pause_ms, sread_t *out)
{
    e2e_chunked_t d;
    memset(out, 0, sizeof(*out));
    e2e_chunked_init(&d, pattern_cb, out);
    out->rss_max = e2e_rss_kib(0);
    uint64_t next_pause = pause_every, next_rss = MIB;
    for (;;) {
        c->off += e2e_chunked_feed(&d, e2e_conn_data(c), e2e_conn_avail(c));
        if (d.done || d.err != 0)
            break;
        int n = e2e_conn_fill(c, e2e_now_ms() + 10000);
        if (n < 0) {
            out->rc = n;
            break;
        }
        if (d.got >= next_rss) {
            long rss = e2e_rss_kib(0);
            if (rss > out->rss_max)
                out->rss_max = rss;
            next_rss += MIB;
        }
        if (pause_every > 0 && d.got >= next_pause) {
            e2e_pause_ms(pause_ms);
            next_pause += pause_every;
        }
    }
    out->chunked_ok = d.err == 0 && !out->mismatch && d.done;
    if (out->mismatch)
        cr_log_error("stream differs at byte %llu", (unsigned long long)out->mismatch_at);
}

Test(e2e_deferred, stream_chunked_then_keep_alive, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(2);
    cr_assert_not_null(t);
    static const char *const parts[] = {"alpha ", "beta ", "", "gamma", NULL};
    parts_t p;
    memset(&p, 0, sizeof(p));
    p.parts = parts;
    p.gap_ms = 20;
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    stream_test_start(&s, t, &p, &cfg);
    e2e_conn_t c;
    e2e_resp_t r;
    open_conn(&c, s.port);
    send_str(&c, "GET /s HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_status(&r, 200, NULL);
    check_std_head(&r);
    cr_assert(r.chunked, "HTTP/1.1 stream not chunked");
    cr_assert_null(e2e_resp_header(&r, "Content-Length"));
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Type"), "text/plain");
    cr_assert_null(e2e_resp_header(&r, "Connection"));
    check_body(&r, "alpha beta gamma");
    e2e_resp_free(&r);
    /* then the connection goes on */
    send_str(&c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_body(&r, "fast");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    wait_count(&t->host.ran, 1, RD, "producer");
    cr_assert_eq(atomic_load(&p.write_bad), 0, "appsrv_res_write failed");
    cr_assert_eq(atomic_load(&p.end_rc), 0);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, stream_begun_on_host_thread_pipelined_after, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(2);
    cr_assert_not_null(t);
    static const char *const parts[] = {"from ", "the ", "host", NULL};
    parts_t p;
    memset(&p, 0, sizeof(p));
    p.parts = parts;
    p.begin = true; /* appsrv_res_stream() "later from any thread" */
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    stream_test_start(&s, t, &p, &cfg);
    e2e_conn_t c;
    e2e_resp_t r;
    open_conn(&c, s.port);
    send_str(&c, "GET /s HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_status(&r, 200, NULL);
    cr_assert(r.chunked);
    check_body(&r, "from the host");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_body(&r, "fast");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    wait_count(&t->host.ran, 1, RD, "producer");
    cr_assert_eq(atomic_load(&p.begin_rc), 0, "appsrv_res_stream from the host: %d",
                 atomic_load(&p.begin_rc));
    cr_assert_eq(atomic_load(&p.end_rc), 0);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

/* HTTP/1.0 has no chunked coding: the body ends with the connection. */
Test(e2e_deferred, stream_http10_close_delimited, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(2);
    cr_assert_not_null(t);
    static const char *const parts[] = {"part1,", "part2,", "part3", NULL};
    parts_t p;
    memset(&p, 0, sizeof(p));
    p.parts = parts;
    p.gap_ms = 10;
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    stream_test_start(&s, t, &p, &cfg);
    static const char *const reqs[] = {
        "GET /s HTTP/1.0\r\n\r\n",
        "GET /s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    };
    for (size_t i = 0; i < ARRAY_LEN(reqs); i++) {
        e2e_conn_t c;
        e2e_resp_t r;
        open_conn(&c, s.port);
        send_str(&c, reqs[i]);
        read_resp(&c, &r, 0);
        check_status(&r, 200, NULL);
        check_std_head(&r);
        cr_assert_null(e2e_resp_header(&r, "Transfer-Encoding"), "chunked to HTTP/1.0 (%zu)", i);
        cr_assert_null(e2e_resp_header(&r, "Content-Length"));
        const char *conn = e2e_resp_header(&r, "Connection");
        cr_assert(conn != NULL && strcasecmp(conn, "close") == 0,
                  "close-delimited body without Connection: close (%zu)", i);
        cr_assert(r.until_eof);
        check_body(&r, "part1,part2,part3");
        e2e_resp_free(&r);
        e2e_conn_close(&c);
        wait_count(&t->host.ran, (int)i + 1, RD, "producer");
    }
    cr_assert_eq(atomic_load(&t->host.ok), 2);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, stream_head_sends_headers_only, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(2);
    cr_assert_not_null(t);
    static const char *const parts[] = {"never ", "on the ", "wire", NULL};
    parts_t p;
    memset(&p, 0, sizeof(p));
    p.parts = parts;
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    stream_test_start(&s, t, &p, &cfg);
    e2e_conn_t c;
    e2e_resp_t r;
    open_conn(&c, s.port);
    send_str(&c, "HEAD /s HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, E2E_RESP_HEAD);
    check_status(&r, 200, NULL);
    check_std_head(&r);
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Type"), "text/plain");
    e2e_resp_free(&r);
    wait_count(&t->host.ran, 1, RD, "producer");
    /* No body bytes, no last chunk: the next answer follows the head. */
    send_str(&c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_status(&r, 200, NULL);
    check_body(&r, "fast");
    e2e_resp_free(&r);
    cr_assert(e2e_still_open(&c, 100), "stray bytes after HEAD on a stream");
    e2e_conn_close(&c);
    cr_assert_eq(atomic_load(&p.write_bad), 0, "appsrv_res_write on a HEAD stream failed");
    cr_assert_eq(atomic_load(&p.end_rc), 0);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, state_errors, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(1);
    cr_assert_not_null(t);
    e2e_route_t routes[] = {
        {"GET", "/st/send2", h_st_send2, t, false}, {"GET", "/st/stream", h_st_stream, t, false},
        {"GET", "/st/sent", h_st_sent, t, false},   {"GET", "/st/sse", h_st_sse, t, false},
        {NULL, "STREAM", l_st_stream, t, true},
    };
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    start_srv(&s, &cfg, routes, ARRAY_LEN(routes), E2E_HTTP | E2E_LINE);
    e2e_conn_t c;
    e2e_resp_t r;
    open_conn(&c, s.port);

    send_str(&c, "GET /st/send2 HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_body(&r, "s2");
    e2e_resp_free(&r);
    expect_rcs(t, (const int[]){0, APPSRV_ESTATE}, 2, "send twice");

    send_str(&c, "GET /st/stream HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_status(&r, 200, NULL);
    cr_assert(r.chunked);
    check_body(&r, "ok");
    e2e_resp_free(&r);
    expect_rcs(t,
               (const int[]){APPSRV_ESTATE, APPSRV_ESTATE, 0, APPSRV_ESTATE, APPSRV_ESTATE,
                             APPSRV_ESTATE, 0, 0, APPSRV_ESTATE, APPSRV_ESTATE},
               10, "stream order");

    send_str(&c, "GET /st/sent HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_body(&r, "sent");
    cr_assert_not(r.chunked);
    e2e_resp_free(&r);
    expect_rcs(t, (const int[]){0, APPSRV_ESTATE, APPSRV_ESTATE, APPSRV_ESTATE}, 4,
               "stream after send");

    send_str(&c, "GET /st/sse HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_body(&r, "event: ev\nid: 1\ndata: x\n\n");
    e2e_resp_free(&r);
    expect_rcs(t, (const int[]){0, -EINVAL, -EINVAL, 0, 0}, 5, "sse fields");
    e2e_conn_close(&c);

    open_conn(&c, s.line_port);
    send_str(&c, "STREAM\n");
    char line[128];
    int n = e2e_read_line(&c, line, sizeof(line), RD);
    cr_assert_geq(n, 0, "line reply: %s", appsrv_strerror(n));
    cr_assert_str_eq(line, "200 OK nostream");
    expect_rcs(t, (const int[]){APPSRV_ESTATE, APPSRV_ESTATE, 0}, 3, "line stream");
    e2e_conn_close(&c);
    tctx_free(t);
    stop_and_check(&s, fds0);
}

/*
 * A client that does not read: appsrv_res_write takes data until about
 * 256 KiB wait unsent in the library, then returns -EAGAIN (and keeps
 * doing so, copying nothing). No drain callback while the client sleeps;
 * once it reads, the drain callback fires and the producer completes.
 */
Test(e2e_deferred, backpressure_eagain_past_256k_then_drain, .timeout = 60)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(1);
    cr_assert_not_null(t);
    prod_t p;
    prod_init(&p, 16 * MIB, 4 * KIB);
    p.fill_in_handler = true;
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    prod_test_start(&s, t, &p, &cfg);
    e2e_conn_t c;
    open_conn_rcvbuf(&c, s.port, 16 * 1024);
    send_str(&c, "GET /p HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_count(&t->handled, 1, RD, "handler");
    /* Nothing sent yet: 256 KiB taken (the mark: "more than 256 KiB"
     * read as >= or >), then -EAGAIN with nothing copied. */
    cr_assert_eq(atomic_load(&p.handler_eagain), 1, "no -EAGAIN after %zu bytes unsent",
                 p.handler_accepted);
    cr_assert(p.handler_accepted >= 256 * KIB && p.handler_accepted <= 256 * KIB + p.piece,
              "-EAGAIN after %zu bytes unsent, expected at the 256 KiB mark", p.handler_accepted);

    /* Stuck: waiting for a drain that has not come for 300 ms. */
    int64_t end = e2e_now_ms() + 20000;
    bool stuck = false;
    while (!stuck && e2e_now_ms() < end && !atomic_load(&p.done)) {
        poll(NULL, 0, 20);
        pthread_mutex_lock(&p.mu);
        stuck = p.waiting && e2e_now_ms() - p.wait_since >= 300;
        pthread_mutex_unlock(&p.mu);
    }
    cr_assert(stuck,
              "the producer never blocked on a client that does not read "
              "(accepted %zu bytes)",
              atomic_load(&p.accepted));
    size_t accepted = atomic_load(&p.accepted);
    cr_assert_geq(atomic_load(&p.eagains), 1);
    cr_assert_lt(accepted, p.total, "everything was taken: no backpressure");
    unsigned drains_stalled = prod_drains(&p);

    /* Where are the accepted bytes? In the two kernel socket queues, or
     * held by the library: the latter must be about 256 KiB. */
    int sfd = find_server_side(c.fd);
    if (sfd >= 0) {
        int inq = 0, outq = 0;
        cr_assert_eq(ioctl(c.fd, FIONREAD, &inq), 0);
        cr_assert_eq(ioctl(sfd, SIOCOUTQ, &outq), 0);
        long held = (long)accepted - inq - outq;
        cr_log_info("accepted %zu: client queue %d, server queue %d, library %ld", accepted, inq,
                    outq, held);
        /* Blocked: the last write found >= 256 KiB unsent and no drain
         * (below 64 KiB) came since, so the library holds 64..256 KiB plus
         * at most one piece and one staging block (chunk framing counted
         * in the kernel queues makes it look a little less). */
        cr_assert_geq(held, (long)(64 * KIB) - 16 * (long)KIB, "library held only %ld bytes", held);
        cr_assert_leq(held, (long)(256 * KIB + p.piece) + 64 * (long)KIB,
                      "library held %ld bytes unsent (bound 256 KiB)", held);
    } else {
        cr_log_info("server side of the connection not found: library share not checked");
    }
    /* Still nothing: no drain while the client sleeps. */
    e2e_pause_ms(200);
    cr_assert_eq(prod_drains(&p), drains_stalled, "drain callback while the client reads nothing");
    cr_assert_eq(atomic_load(&p.accepted), accepted, "took more while the client reads nothing");

    /* The client reads: drain callbacks, and the producer finishes. */
    read_stream_head(&c);
    sread_t sr;
    read_produced(&c, 0, 0, &sr);
    if (sr.rc != 0) {
        /* Issue 13 item 5: a stall must explain itself. Both socket queues
         * (0 and 0 with bytes missing means the server stopped sending),
         * and where the producer stands. */
        int inq = -1, outq = -1;
        ioctl(c.fd, FIONREAD, &inq);
        if (sfd >= 0)
            ioctl(sfd, SIOCOUTQ, &outq);
        pthread_mutex_lock(&p.mu);
        bool waiting = p.waiting;
        pthread_mutex_unlock(&p.mu);
        cr_assert_fail("read: %s after %llu of %zu bytes; producer: accepted %zu, eagains %d, "
                       "drain callbacks %u, waiting for a drain %d, done %d; client queue %d, "
                       "server queue %d",
                       appsrv_strerror(sr.rc), (unsigned long long)sr.got, p.total,
                       atomic_load(&p.accepted), atomic_load(&p.eagains), prod_drains(&p),
                       waiting, atomic_load(&p.done), inq, outq);
    }
    cr_assert(sr.chunked_ok, "stream corrupt");
    cr_assert_eq(sr.got, p.total, "got %llu of %zu bytes", (unsigned long long)sr.got, p.total);
    cr_assert_gt(prod_drains(&p), drains_stalled, "no drain callback after the client read");
    wait_count(&p.done, 1, RD, "producer done");
    cr_assert_eq(atomic_load(&p.errors), 0, "producer error %d", atomic_load(&p.last_err));
    cr_assert_eq(atomic_load(&p.end_rc), 0);
    e2e_conn_close(&c);
    tctx_free(t);
    prod_destroy(&p);
    stop_and_check(&s, fds0);
}

/*
 * 100 MiB (8 MiB under valgrind) to a reader slower than the producer:
 * the producer honours -EAGAIN and the drain callback, every byte arrives
 * in order, and the process's RSS (server, producer and client all live
 * here) grows by far less than the stream.
 */
Test(e2e_deferred, stream_100mib_slow_reader_bounded_rss, .timeout = 180)
{
    int fds0 = e2e_fd_count();
    size_t total = SCALE(100 * (size_t)MIB, 8 * (size_t)MIB);
    tctx_t *t = tctx_new(1);
    cr_assert_not_null(t);
    prod_t p;
    prod_init(&p, total, 64 * KIB);
    p.begin = true; /* stream started on the host thread */
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    prod_test_start(&s, t, &p, &cfg);
    e2e_conn_t c;
    open_conn_rcvbuf(&c, s.port, 64 * 1024);
    /* warm-up: the pools and the client buffer exist before the baseline */
    static unsigned char warm[64 * 1024];
    memset(warm, 1, sizeof(warm));
    long rss0 = e2e_rss_kib(0);
    cr_assert_gt(rss0, 0);
    send_str(&c, "GET /p HTTP/1.1\r\nHost: x\r\n\r\n");
    read_stream_head(&c);
    int64_t t0 = e2e_now_ms();
    sread_t sr;
    read_produced(&c, 1 * MIB, 3, &sr);
    int64_t took = e2e_now_ms() - t0;
    long growth = sr.rss_max - rss0;
    cr_log_info("%zu MiB in %lld ms; %d -EAGAIN, %u drains; RSS %ld KiB -> max %ld KiB (+%ld)",
                total / MIB, (long long)took, atomic_load(&p.eagains), prod_drains(&p), rss0,
                sr.rss_max, growth);
    cr_assert_eq(sr.rc, 0, "read: %s", appsrv_strerror(sr.rc));
    cr_assert(sr.chunked_ok, "stream corrupt (framing or bytes)");
    cr_assert_eq(sr.got, total);
    wait_count(&p.done, 1, RD, "producer done");
    cr_assert_eq(atomic_load(&p.stream_rc), 0);
    cr_assert_eq(atomic_load(&p.errors), 0, "producer error %d", atomic_load(&p.last_err));
    cr_assert_eq(atomic_load(&p.end_rc), 0);
    cr_assert_geq(atomic_load(&p.eagains), 1, "the reader never held the producer back");
    cr_assert_geq(prod_drains(&p), 1u);
    if (e2e_under_asan())
        cr_log_info("ASan build: its quarantine and shadow memory make RSS meaningless; "
                    "growth bound not checked");
    else
        cr_assert_lt(growth, 32 * 1024, "RSS grew by %ld KiB streaming %zu MiB (bound 32 MiB)",
                     growth, total / MIB);
    /* keep-alive after 100 MiB */
    e2e_resp_t r;
    send_str(&c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    read_resp(&c, &r, 0);
    check_body(&r, "fast");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    tctx_free(t);
    prod_destroy(&p);
    stop_and_check(&s, fds0);
}

Test(e2e_deferred, stream_client_gone_write_and_end_ecanceled, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(1);
    cr_assert_not_null(t);
    prod_t p;
    prod_init(&p, 64 * MIB, 1024);
    p.stop_after_ms = 1; /* one small write per 10 ms: an event source */
    appsrv_config_t cfg = base_cfg();
    e2e_server_t s;
    prod_test_start(&s, t, &p, &cfg);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /p HTTP/1.1\r\nHost: x\r\n\r\n");
    /* some of the stream arrives, then the client leaves */
    int64_t end = e2e_now_ms() + RD;
    while (c.len < 8 * 1024 && e2e_now_ms() < end)
        e2e_pump(&c, 20);
    cr_assert_geq(c.len, 8 * 1024, "stream did not flow");
    e2e_conn_close(&c);
    wait_count(&t->slots[0].cancels, 1, RD, "cancel callback");
    wait_count(&p.done, 1, RD, "producer stopped");
    cr_assert_eq(atomic_load(&p.last_err), APPSRV_ECANCELED, "write after the client left: %d",
                 atomic_load(&p.last_err));
    cr_assert_eq(atomic_load(&p.end_rc), APPSRV_ECANCELED, "end after the client left: %d",
                 atomic_load(&p.end_rc));
    cr_assert_eq(atomic_load(&t->slots[0].cancels), 1);
    tctx_free(t);
    prod_destroy(&p);
    stop_and_check(&s, fds0);
}

/* A stream reader that stalls for good is cut after write_timeout_ms: the
 * host hears of it (cancel, APPSRV_ECANCELED) instead of waiting forever. */
Test(e2e_deferred, stalled_stream_reader_cut_after_write_timeout, .timeout = 40)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(1);
    cr_assert_not_null(t);
    prod_t p;
    prod_init(&p, 64 * MIB, 16 * KIB);
    appsrv_config_t cfg = base_cfg();
    cfg.write_timeout_ms = 300;
    e2e_server_t s;
    prod_test_start(&s, t, &p, &cfg);
    e2e_conn_t c;
    open_conn_rcvbuf(&c, s.port, 4096);
    send_str(&c, "GET /p HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_count(&t->slots[0].cancels, 1, 5000 * e2e_slow_factor(), "cancel of the stalled stream");
    wait_count(&p.done, 1, RD, "producer stopped");
    cr_assert_eq(atomic_load(&p.end_rc), APPSRV_ECANCELED, "end: %d", atomic_load(&p.end_rc));
    cr_assert_lt(atomic_load(&p.accepted), p.total);
    long extra = e2e_wait_closed(&c, RD);
    cr_assert_geq(extra, 0, "the server did not close the stalled connection");
    e2e_conn_close(&c);
    tctx_free(t);
    prod_destroy(&p);
    stop_and_check(&s, fds0);
}

/* A stop cuts an endless stream at the drain timeout. */
Test(e2e_deferred, stop_cancels_stream_after_drain_timeout, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    tctx_t *t = tctx_new(1);
    cr_assert_not_null(t);
    prod_t p;
    prod_init(&p, 64 * MIB, 256);
    p.stop_after_ms = 1; /* an endless slow event source */
    appsrv_config_t cfg = base_cfg();
    cfg.drain_timeout_ms = 300;
    e2e_server_t s;
    prod_test_start(&s, t, &p, &cfg);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /p HTTP/1.1\r\nHost: x\r\n\r\n");
    int64_t end = e2e_now_ms() + RD;
    while (c.len < 1024 && e2e_now_ms() < end)
        e2e_pump(&c, 20);
    cr_assert_geq(c.len, 1024, "stream did not flow");
    e2e_server_request_stop(&s);
    cr_assert_eq(e2e_server_join(&s, STOP_MS), 0, "run did not return");
    cr_assert_eq(s.run_rc, 0);
    cr_assert(atomic_load(&p.ending), "run returned before the producer ended the stream");
    wait_count(&p.done, 1, RD, "producer done");
    cr_assert_eq(atomic_load(&t->slots[0].cancels), 1);
    cr_assert_eq(atomic_load(&p.last_err), APPSRV_ECANCELED, "write: %d", atomic_load(&p.last_err));
    cr_assert_eq(atomic_load(&p.end_rc), APPSRV_ECANCELED, "end: %d", atomic_load(&p.end_rc));
    /* The stream was cut: no last chunk. */
    char *rest = NULL;
    size_t rest_len = 0;
    cr_assert_eq(e2e_read_until_close(&c, &rest, &rest_len, RD), 0);
    cr_assert(rest_len < 5 || memcmp(rest + rest_len - 5, "0\r\n\r\n", 5) != 0,
              "a canceled stream ended with the last chunk");
    free(rest);
    e2e_conn_close(&c);
    tctx_free(t);
    prod_destroy(&p);
    stop_and_check(&s, fds0);
}
