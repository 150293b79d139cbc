/* SPDX-License-Identifier: MIT */
/*
 * test_http_bodies.c - request bodies end to end (README "Server behaviour and limits"): Content-Length
 * bodies in pieces and of 5 MiB, chunked uploads with extensions and
 * trailers (also a byte per send), Expect: 100-continue (accepted, refused,
 * not needed, ignored for HTTP/1.0), a reset mid-body and half-closed
 * clients. The body limits (413) are in test_http_errors.c.
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

Test(e2e_http, post_content_length_body, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    /* Head and body in separate sends, body split too. */
    send_str(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n");
    cr_assert(e2e_still_open(&c, 50));
    send_str(&c, "hello ");
    cr_assert(e2e_still_open(&c, 50));
    send_str(&c, "world");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_std(&r);
    check_body(&r, "hello world");
    e2e_resp_free(&r);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, post_5mib_roundtrip_exact, .timeout = 60)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_base(&s, NULL);
    size_t n = SCALE(5 * MIB, 1 * MIB);
    char *body = malloc(n);
    cr_assert_not_null(body);
    e2e_fill_pattern(body, n, 77);
    e2e_conn_t c;
    open_conn(&c, s.port);
    const char *paths[] = {"/echo", "/echo_copy"};
    for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
        char head[256];
        snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                 paths[i], n);
        send_str(&c, head);
        send_bytes(&c, body, n);
        e2e_resp_t r;
        int rc = e2e_read_response(&c, &r, 30000, 0);
        cr_assert_eq(rc, 0, "read: %s", appsrv_strerror(rc));
        check_status(&r, 200, "OK");
        check_std(&r);
        cr_assert_eq(r.body_len, n, "%s: body %zu bytes, sent %zu", paths[i], r.body_len, n);
        cr_assert(memcmp(r.body, body, n) == 0, "%s: body differs", paths[i]);
        e2e_resp_free(&r);
    }
    free(body);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, chunked_upload_extensions_trailers, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    send_str(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 "Content-Type: text/plain\r\n\r\n"
                 "5;foo=bar\r\nhello\r\n"
                 "1;flag\r\n \r\n"
                 "A;q=\"quoted ; value\";x=y\r\n0123456789\r\n"
                 "0\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n"
                 "GET /seq/5 HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_std(&r);
    check_body(&r, "hello 0123456789");
    cr_assert_str_eq(e2e_resp_header(&r, "Content-Type"), "text/plain");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_body(&r, "seq=5");
    e2e_resp_free(&r);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, chunked_body_many_small_sends, .timeout = 60)
{
    int fds0 = e2e_fd_count();
    e2e_server_t s;
    start_base(&s, NULL);
    /* A body in chunks of varying sizes, sent in 7-byte pieces and then
     * one byte per send. */
    size_t blen = SCALE(64 * 1024, 8 * 1024);
    char *body = malloc(blen);
    char *wire = malloc(blen * 2 + 4096);
    cr_assert(body && wire);
    e2e_fill_pattern(body, blen, 9);
    size_t w = (size_t)sprintf(wire, "POST /echo HTTP/1.1\r\nHost: x\r\n"
                                     "Transfer-Encoding: chunked\r\n\r\n");
    size_t hlen = w;
    for (size_t off = 0, k = 1; off < blen; k = k * 7 % 1000 + 1) {
        size_t n = blen - off < k ? blen - off : k;
        w += (size_t)sprintf(wire + w, "%zx%s\r\n", n, (k & 1) ? ";e=1" : "");
        memcpy(wire + w, body + off, n);
        w += n;
        memcpy(wire + w, "\r\n", 2);
        w += 2;
        off += n;
    }
    w += (size_t)sprintf(wire + w, "0\r\nT: 1\r\n\r\n");
    e2e_conn_t c;
    open_conn(&c, s.port);
    cr_assert_eq(e2e_send_pieces(&c, wire, w, 7), 0);
    e2e_resp_t r;
    int rc = e2e_read_response(&c, &r, 20000, 0);
    cr_assert_eq(rc, 0, "read: %s", appsrv_strerror(rc));
    check_status(&r, 200, "OK");
    cr_assert_eq(r.body_len, blen);
    cr_assert(memcmp(r.body, body, blen) == 0);
    e2e_resp_free(&r);
    /* Byte by byte, the head too, with a short body. */
    const char *one = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "4;a=b\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n";
    cr_assert_eq(e2e_send_pieces(&c, one, strlen(one), 1), 0);
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, "wikipedia");
    e2e_resp_free(&r);
    (void)hlen;
    free(body);
    free(wire);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, expect_100_continue_accepted, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    send_str(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Content-Length: 11\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 100, "Continue");
    cr_assert_eq(r.nhdrs, 0);
    e2e_resp_free(&r);
    send_str(&c, "hello world");
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_std(&r);
    check_body(&r, "hello world");
    e2e_resp_free(&r);
    /* Chunked with Expect, too. */
    send_str(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
    read_resp(&c, &r, 0);
    check_status(&r, 100, "Continue");
    e2e_resp_free(&r);
    send_str(&c, "2\r\nok\r\n0\r\n\r\n");
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, "ok");
    e2e_resp_free(&r);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, expect_100_continue_refused_unknown_path, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    send_str(&c, "POST /nope HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Content-Length: 5\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 404, "Not Found"); /* the final status, no 100 first */
    check_std(&r);
    check_body(&r, "Not Found");
    e2e_resp_free(&r);
    /* The body was never read: the server closes rather than parse it as
     * the next request. */
    expect_closed(&c, 3000);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, expect_100_not_sent_when_body_already_here, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    /* The body came with the head: a 100 would be a stray response. */
    send_str(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Content-Length: 5\r\n\r\nhello"
                 "GET /seq/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, "hello");
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, "seq=1");
    e2e_resp_free(&r);
    cr_assert(e2e_still_open(&c, 100));
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, expect_100_ignored_for_http10, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    /* RFC 9110 §10.1.1: a server MUST ignore 100-continue from HTTP/1.0. */
    send_str(&c, "POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    cr_assert(e2e_still_open(&c, 200), "interim response sent to an HTTP/1.0 client");
    send_str(&c, "hello");
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, "hello");
    e2e_resp_free(&r);
    expect_closed(&c, 3000);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, client_reset_mid_body_server_survives, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    atomic_int calls = 0;
    const e2e_route_t routes[] = {
        {"POST", "/up", h_hello, &calls, false},
        {"GET", "/hello", h_hello, NULL, false},
    };
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    /* Twice: a body that fits the input block and one that does not. */
    size_t sizes[] = {8000, 400000};
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
        size_t n = sizes[i];
        char *half = calloc(1, n / 2);
        cr_assert_not_null(half);
        char head[128];
        snprintf(head, sizeof(head), "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                 n);
        e2e_conn_t c;
        open_conn(&c, s.port);
        send_str(&c, head);
        send_bytes(&c, half, n / 2);
        cr_assert(e2e_still_open(&c, 50));
        e2e_conn_reset(&c);
        free(half);
        e2e_resp_t r;
        roundtrip(s.port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r, 0);
        check_hello(&r);
        e2e_resp_free(&r);
    }
    stop_srv(&s);
    cr_assert_eq(atomic_load(&calls), 0, "handler ran for an incomplete body");
    expect_fds(fds0);
}

Test(e2e_http, half_close_after_request_gets_response, .timeout = 30)
{
    e2e_server_t s;
    e2e_conn_t c;
    int fds0 = start_base_conn(&s, NULL, &c);
    send_str(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    cr_assert_eq(shutdown(c.fd, SHUT_WR), 0);
    e2e_resp_t r;
    read_resp(&c, &r, 0);
    check_hello(&r);
    e2e_resp_free(&r);
    read_resp(&c, &r, 0);
    check_status(&r, 200, "OK");
    check_body(&r, "abc");
    e2e_resp_free(&r);
    expect_closed(&c, 3000);
    close_and_stop(&c, &s, fds0);
}

Test(e2e_http, half_close_with_big_response, .timeout = 30)
{
    int fds0 = e2e_fd_count();
    ref_ctx_t big;
    cr_assert_eq(ref_init(&big, SCALE(4 * MIB, 1 * MIB), 61), 0);
    const e2e_route_t routes[] = {{"GET", "/big", h_ref, &big, false}};
    e2e_server_t s;
    start_srv(&s, NULL, routes, ARRAY_LEN(routes), E2E_HTTP);
    e2e_conn_t c;
    open_conn(&c, s.port);
    send_str(&c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(shutdown(c.fd, SHUT_WR), 0);
    for (int i = 0; i < 2; i++) {
        e2e_resp_t r;
        int rc = e2e_read_response(&c, &r, 20000, 0);
        cr_assert_eq(rc, 0, "response %d: %s", i, appsrv_strerror(rc));
        check_status(&r, 200, "OK");
        cr_assert_eq(r.body_len, big.len);
        cr_assert(memcmp(r.body, big.data, big.len) == 0);
        e2e_resp_free(&r);
    }
    expect_closed(&c, 3000);
    e2e_conn_close(&c);
    stop_srv(&s);
    cr_assert_eq(atomic_load(&big.freed), 2);
    free(big.data);
    expect_fds(fds0);
}
