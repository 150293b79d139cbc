/* SPDX-License-Identifier: MIT */
/*
 * test_http_keepalive.c - keep-alive and pipelining end to end (README "Server behaviour and limits"):
 * HTTP/1.0 and 1.1 connection rules and Connection token lists, pipelines
 * of 100 to thousands of requests (mixed methods, big bodies and answers,
 * concurrent send and read), an error mid-pipeline, and a two-worker
 * server under concurrent clients. In-process server, raw clients.
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

typedef struct sender {
    e2e_conn_t *c;
    const char *data;
    size_t len;
    int rc;
} sender_t;

static void *sender_main(void *arg)
{
    sender_t *sd = arg;
    sd->rc = e2e_send(sd->c, sd->data, sd->len);
    return NULL;
}

typedef struct mt_client {
    int port;
    int id;
    int nreq;
    int ok;
    char msg[128];
} mt_client_t;

static void *mt_client_main(void *arg)
{
    mt_client_t *m = arg;
    e2e_conn_t c = {.fd = -1};
    for (int i = 0; i < m->nreq; i++) {
        if (i % 5 == 0) { /* a new connection every 5 requests */
            e2e_conn_close(&c);
            int rc = e2e_conn_open(&c, m->port);
            if (rc < 0) {
                snprintf(m->msg, sizeof(m->msg), "connect: %d", rc);
                return NULL;
            }
        }
        char req[96], want[32];
        int n = m->id * 1000 + i;
        snprintf(req, sizeof(req), "GET /seq/%d HTTP/1.1\r\nHost: x\r\n\r\n", n);
        snprintf(want, sizeof(want), "seq=%d", n);
        e2e_resp_t r;
        int rc = e2e_sends(&c, req);
        if (rc == 0)
            rc = e2e_read_response(&c, &r, 10000, 0);
        if (rc < 0) {
            snprintf(m->msg, sizeof(m->msg), "request %d: %d", n, rc);
            e2e_conn_close(&c);
            return NULL;
        }
        if (r.status == 200 && strcmp(r.body, want) == 0)
            m->ok++;
        else
            snprintf(m->msg, sizeof(m->msg), "request %d: %d '%s'", n, r.status, r.body);
        e2e_resp_free(&r);
    }
    e2e_conn_close(&c);
    return NULL;
}

Test(e2e_http, keep_alive_three_requests, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    for (int i = 0; i < 3; i++) {
        char req[128], body[32];
        snprintf(req, sizeof(req), "GET /seq/%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        snprintf(body, sizeof(body), "seq=%d", i);
        send_str(&c, req);
        e2e_resp_t r;
        read_resp(&c, &r, 0);
        check_status(&r, 200, "OK");
        check_std(&r);
        check_body(&r, body);
        cr_assert_null(e2e_resp_header(&r, "Connection"));
        e2e_resp_free(&r);
    }
    cr_assert(e2e_still_open(&c, 100));
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, http10_closes_by_default, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    send_str(&c, "GET /hello HTTP/1.0\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_hello(&r);
    const char *conn = e2e_resp_header(&r, "Connection");
    if (conn != NULL)
        cr_assert_str_eq(conn, "close");
    e2e_resp_free(&r);
    expect_closed(&c, 3000);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, http10_keep_alive_requested, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    for (int i = 0; i < 2; i++) {
        send_str(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        e2e_resp_t r;
        read_resp(&c, &r, 0);
        check_hello(&r);
        cr_assert_not_null(e2e_resp_header(&r, "Connection"));
        cr_assert_str_eq(e2e_resp_header(&r, "Connection"), "keep-alive");
        e2e_resp_free(&r);
    }
    cr_assert(e2e_still_open(&c, 100));
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, http11_connection_close, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    /* The second request must not be answered. */
    send_str(&c, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                 "GET /seq/2 HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_hello(&r);
    cr_assert_not_null(e2e_resp_header(&r, "Connection"));
    cr_assert_str_eq(e2e_resp_header(&r, "Connection"), "close");
    e2e_resp_free(&r);
    expect_closed(&c, 3000);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, connection_header_token_lists, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_base(&s, NULL);
    e2e_conn_t c;
    e2e_resp_t r;
    /* HTTP/1.0 with the usual capitalisation, twice on one connection */
    open_conn(&c, s.port);
    for (int i = 0; i < 2; i++) {
        send_str(&c, "GET /hello HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        read_resp(&c, &r, 0);
        check_hello(&r);
        cr_assert_str_eq(e2e_resp_header(&r, "Connection"), "keep-alive");
        e2e_resp_free(&r);
    }
    e2e_conn_close(&c);
    /* HTTP/1.1: "close" anywhere in the list, any case */
    open_conn(&c, s.port);
    send_str(&c, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: foo, CLOSE\r\n\r\n");
    read_resp(&c, &r, 0);
    check_hello(&r);
    cr_assert_str_eq(e2e_resp_header(&r, "Connection"), "close");
    e2e_resp_free(&r);
    expect_closed(&c, 3000);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, pipeline_100_in_order, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    enum { N = 100 };
    char *all = malloc(N * 64);
    cr_assert_not_null(all);
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)sprintf(all + len, "GET /seq/%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
    /* One send(): e2e_send hands the whole buffer to one send_all. */
    send_bytes(&c, all, len);
    free(all);
    for (int i = 0; i < N; i++) {
        e2e_resp_t r;
        char want[32];
        snprintf(want, sizeof(want), "seq=%d", i);
        read_resp(&c, &r, 0);
        check_status(&r, 200, "OK");
        check_std(&r);
        check_body(&r, want);
        e2e_resp_free(&r);
    }
    cr_assert(e2e_still_open(&c, 100));
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, pipeline_mixed_get_post, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    send_str(&c, "GET /seq/1 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/x-a\r\n"
                 "Content-Length: 5\r\n\r\nhello"
                 "GET /seq/2 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                 "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                 "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nGET"
                 "GET /seq/3 HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_body(&r, "seq=1");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, "hello");
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Type"), "text/x-a");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_body(&r, "seq=2");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, "abcde");
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Type"), "application/octet-stream");
    e2e_resp_free(&r);
    read_resp(&c, &r, E2E_RESP_HEAD);
    check_status(&r, 200, "OK");
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Length"), "6");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_std(&r);
    check_body(&r, "");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_body(&r, "GET");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_body(&r, "seq=3");
    e2e_resp_free(&r);
    cr_assert(e2e_still_open(&c, 100));
    close_and_stop(&c, &s, fds0);
}

/*
 * Thousands of pipelined requests, some with big bodies, some with big
 * answers, sent from one thread while another reads: more input than the
 * input buffer and more output than the socket buffers at once.
 */
Test(e2e_http, pipeline_flood_concurrent_send_and_read, .timeout = 90)
{
    int fds0 = e2e_fd_count();
    ref_ctx_t big;
    cr_assert_eq(ref_init(&big, 200 * 1024, 51), 0);
    const e2e_route_t routes[] = {
        {"GET", "/big", h_ref, &big, false},
        {"GET", "/seq/:n", h_seq, NULL, false},
        {"POST", "/echo", h_echo, NULL, false},
    };
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    int n = SCALE(3000, 600);
    size_t blen = 50000;
    char *pb = malloc(blen);
    size_t cap = (size_t)n * 80 + (size_t)(n / 100 + 1) * (blen + 200);
    char *all = malloc(cap);
    cr_assert(pb && all);
    e2e_fill_pattern(pb, blen, 52);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (i % 100 == 50) {
            len += (size_t)sprintf(
                all + len, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", blen);
            memcpy(all + len, pb, blen);
            len += blen;
        } else if (i % 100 == 99) {
            len += (size_t)sprintf(all + len, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
        } else {
            len += (size_t)sprintf(all + len, "GET /seq/%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        }
    }
    e2e_conn_t c;
    open_conn(&c, s.port);
    sender_t sd = {.c = &c, .data = all, .len = len};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, sender_main, &sd), 0);
    int bad = -1;
    for (int i = 0; i < n && bad < 0; i++) {
        e2e_resp_t r;
        int rc = e2e_read_response(&c, &r, 20000, 0);
        if (rc != 0 || r.status != 200) {
            bad = i;
            e2e_resp_free(&r);
            break;
        }
        if (i % 100 == 50) {
            if (r.body_len != blen || memcmp(r.body, pb, blen) != 0)
                bad = i;
        } else if (i % 100 == 99) {
            if (r.body_len != big.len || memcmp(r.body, big.data, big.len) != 0)
                bad = i;
        } else {
            char want[32];
            snprintf(want, sizeof(want), "seq=%d", i);
            if (strcmp(r.body, want) != 0)
                bad = i;
        }
        e2e_resp_free(&r);
    }
    pthread_join(th, NULL);
    cr_assert_eq(bad, -1, "response %d wrong or missing", bad);
    cr_assert_eq(sd.rc, 0, "send: %s", appsrv_strerror(sd.rc));
    cr_assert(e2e_still_open(&c, 100));
    e2e_conn_close(&c);
    free(all);
    free(pb);
    stop_srv(&s);
    free(big.data);
    expect_fds(fds0);
}

Test(e2e_http, pipeline_many_big_responses, .timeout = 60)
{
    int fds0 = e2e_fd_count();
    ref_ctx_t big;
    cr_assert_eq(ref_init(&big, 256 * 1024, 21), 0);
    const e2e_route_t routes[] = {
        {"GET", "/pad/:n", h_pad, NULL, false},
        {"GET", "/big", h_ref, &big, false},
        {"GET", "/seq/:n", h_seq, NULL, false},
    };
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    /* 100 heap bodies (more than any segment table), then ref bodies
     * interleaved with small ones, all in one send. */
    enum { NPAD = 100, NBIG = 12 };
    char *all = malloc((NPAD + 2 * NBIG) * 64);
    cr_assert_not_null(all);
    size_t len = 0;
    for (int i = 0; i < NPAD; i++)
        len += (size_t)sprintf(all + len, "GET /pad/%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
    for (int i = 0; i < NBIG; i++)
        len += (size_t)sprintf(all + len,
                               "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /seq/%d HTTP/1.1\r\nHost: x\r\n\r\n",
                               i);
    send_bytes(&c, all, len);
    free(all);
    for (int i = 0; i < NPAD; i++) {
        e2e_resp_t r;
        char want[3001];
        snprintf(want, sizeof(want), "%03000d", i);
        read_resp(&c, &r, 0);
        check_status(&r, 200, "OK");
        check_body(&r, want);
        e2e_resp_free(&r);
    }
    for (int i = 0; i < NBIG; i++) {
        e2e_resp_t r;
        char want[32];
        read_resp(&c, &r, 0);
        check_status(&r, 200, "OK");
        cr_assert_eq(r.body_len, big.len);
        cr_assert(memcmp(r.body, big.data, big.len) == 0, "big body %d differs", i);
        e2e_resp_free(&r);
        snprintf(want, sizeof(want), "seq=%d", i);
        read_resp(&c, &r, 0);
        check_body(&r, want);
        e2e_resp_free(&r);
    }
    cr_assert(e2e_still_open(&c, 100));
    cr_assert_eq(e2e_wait_atomic(&big.freed, NBIG, 3000), NBIG);
    e2e_conn_close(&c);
    stop_srv(&s);
    cr_assert_eq(atomic_load(&big.freed), NBIG);
    free(big.data);
    expect_fds(fds0);
}

Test(e2e_http, pipeline_after_large_bodies, .timeout = 60)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_base(&s, NULL);
    /* A Content-Length body and a chunked body, both larger than the
     * input buffer, each followed by a pipelined request in the same send:
     * the body reader must stop exactly at the body's end. */
    size_t n = 100000, cn = 300000;
    char *body = malloc(cn);
    char *wire = malloc(n + 2 * cn + 4096);
    cr_assert(body && wire);
    e2e_fill_pattern(body, cn, 31);
    size_t w =
        (size_t)sprintf(wire, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
    memcpy(wire + w, body, n);
    w += n;
    w += (size_t)sprintf(wire + w,
                         "GET /seq/1 HTTP/1.1\r\nHost: x\r\n\r\n"
                         "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (size_t off = 0; off < cn; off += 30000) {
        w += (size_t)sprintf(wire + w, "%x\r\n", 30000);
        memcpy(wire + w, body + off, 30000);
        w += 30000;
        memcpy(wire + w, "\r\n", 2);
        w += 2;
    }
    w += (size_t)sprintf(wire + w, "0\r\n\r\nGET /seq/2 HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_bytes(&c, wire, w);
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    cr_assert_eq(r.body_len, n);
    cr_assert(memcmp(r.body, body, n) == 0);
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_body(&r, "seq=1");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    cr_assert_eq(r.body_len, cn);
    cr_assert(memcmp(r.body, body, cn) == 0);
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_body(&r, "seq=2");
    e2e_resp_free(&r);
    free(body);
    free(wire);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, pipeline_error_answers_earlier_then_closes, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    send_str(&c, "GET /seq/1 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"
                 "GET /seq/2 HTTP/1.1\r\nHost: x\r\nX-A : bad\r\n\r\n"
                 "GET /seq/3 HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_body(&r, "seq=1");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_body(&r, "ok");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 400, "Bad Request");
    cr_assert_str_eq(e2e_resp_header(&r, "Connection"), "close");
    e2e_resp_free(&r);
    expect_closed(&c, 3000); /* seq/3 is never answered */
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, multi_threaded_server_concurrent_clients, .timeout = 60)
{
    appsrv_config_t cfg = base_cfg();
    cfg.threads = 2;
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_base(&s, &cfg);
    enum { NCLIENTS = 8, PER = 25 }; /* 200 requests */
    mt_client_t m[NCLIENTS];
    pthread_t th[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        m[i] = (mt_client_t){.port = s.port, .id = i + 1, .nreq = PER};
        cr_assert_eq(pthread_create(&th[i], NULL, mt_client_main, &m[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        pthread_join(th[i], NULL);
        total += m[i].ok;
    }
    for (int i = 0; i < NCLIENTS; i++)
        cr_assert_eq(m[i].ok, PER, "client %d: %d ok; %s", i, m[i].ok, m[i].msg);
    cr_assert_eq(total, NCLIENTS * PER);
    stop_and_check(&s, fds0);
}
