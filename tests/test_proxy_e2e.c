/* SPDX-License-Identifier: MIT */
/*
 * test_proxy_e2e.c - behind a load balancer, end to end on loopback: a
 * raw client sends PROXY protocol v1 and v2 headers (whole, byte by
 * byte, LOCAL, UNKNOWN) and then HTTP, and the handler sees the client
 * the header reported (appsrv_req_client_addr) while appsrv_req_peer
 * stays the socket's; a connection without a header, with a bad one or
 * one that never completes is closed without an answer. Trusted
 * X-Forwarded-For / -Proto (appsrv_trust_proxy): the right-to-left walk,
 * several fields, malformed elements, an untrusted peer ignored, and the
 * two combined. Also the pure CIDR and element parsers (lib/trust.c).
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "e2e.h"
#include "proxy_hdr.h"
#include "trust.h"

/* GET /who: "client=ADDR peer=ADDR scheme=S" */
static int h_who(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    char c[64], p[64];
    appsrv_addr_format(appsrv_req_client_addr(req), c, sizeof(c));
    appsrv_addr_format(appsrv_req_peer(req), p, sizeof(p));
    appsrv_str_t s = appsrv_req_scheme(req);
    appsrv_res_set_status(res, 200);
    int rc = appsrv_res_printf(res, "client=%s peer=%s scheme=%.*s", c, p, (int)s.len, s.ptr);
    return rc < 0 ? rc : 0;
}

static const e2e_route_t routes[] = {{"GET", "/who", h_who, NULL, false},
                                     {NULL, "WHO", h_who, NULL, true}};

typedef struct setup_arg {
    bool proxy_protocol;
    const char *trust;
    int port;
    int line_port; /* a line listener with the PROXY protocol too */
} setup_arg_t;

static int setup(appsrv_server_t *srv, void *arg)
{
    setup_arg_t *a = arg;
    if (a->trust != NULL) {
        int rc = appsrv_trust_proxy(srv, a->trust);
        if (rc < 0)
            return rc;
    }
    appsrv_listen_opts_t o = {.proto = APPSRV_PROTO_HTTP, .proxy_protocol = a->proxy_protocol};
    a->port = appsrv_listen_opts(srv, "127.0.0.1", 0, &o);
    if (a->port < 0)
        return a->port;
    o.proto = APPSRV_PROTO_LINE;
    a->line_port = appsrv_listen_opts(srv, "127.0.0.1", 0, &o);
    return a->line_port < 0 ? a->line_port : 0;
}

static e2e_server_t srv;
static setup_arg_t sa;

/* The access-log callback: the last entry's client and peer. */
static char log_client[64], log_peer[64];
static atomic_int nlogged;

static void on_log(const appsrv_log_entry_t *e, void *user)
{
    (void)user;
    appsrv_addr_format(e->client, log_client, sizeof(log_client));
    appsrv_addr_format(e->peer, log_peer, sizeof(log_peer));
    atomic_fetch_add(&nlogged, 1);
}

static void start(bool proxy_protocol, const char *trust)
{
    appsrv_config_t cfg = base_cfg();
    cfg.access_log = on_log;
    cfg.head_timeout_ms = 400;
    sa = (setup_arg_t){.proxy_protocol = proxy_protocol, .trust = trust};
    cr_assert_eq(e2e_server_start_with(&srv, &cfg, routes, 2, 0, setup, &sa), 0);
}

static void stop(void)
{
    cr_assert_eq(e2e_server_stop(&srv, 5000), 0);
}

/* Sends pre (the PROXY header; piece bytes per send, 0: whole) then
 * "GET /who" with extra header lines, and returns the body. */
static void who(e2e_conn_t *c, const void *pre, size_t prelen, size_t piece, const char *extra,
                char *out, size_t cap)
{
    if (prelen > 0)
        cr_assert_eq(e2e_send_pieces(c, pre, prelen, piece ? piece : prelen), 0);
    char req[512];
    snprintf(req, sizeof(req), "GET /who HTTP/1.1\r\nHost: x\r\n%s\r\n", extra ? extra : "");
    cr_assert_eq(e2e_sends(c, req), 0);
    e2e_resp_t r;
    int rc = e2e_read_response(c, &r, 3000, 0);
    cr_assert_eq(rc, 0, "no response: %s", e2e_errname(rc));
    cr_assert_eq(r.status, 200);
    snprintf(out, cap, "%s", r.body);
    e2e_resp_free(&r);
}

static void expect_prefix(const char *got, const char *want)
{
    cr_assert_eq(strncmp(got, want, strlen(want)), 0, "got \"%s\", want \"%s...\"", got, want);
}

TestSuite(proxy_e2e, .timeout = 30);

Test(proxy_e2e, v1_then_keepalive)
{
    start(true, NULL);
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
    static const char h[] = "PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n";
    char body[256];
    who(&c, h, sizeof(h) - 1, 0, NULL, body, sizeof(body));
    expect_prefix(body, "client=203.0.113.7:5555 peer=127.0.0.1:");
    /* The same connection's next request keeps the client. */
    who(&c, NULL, 0, 0, NULL, body, sizeof(body));
    expect_prefix(body, "client=203.0.113.7:5555 peer=127.0.0.1:");
    e2e_conn_close(&c);
    stop();
}

Test(proxy_e2e, v1_tcp6_byte_by_byte)
{
    start(true, NULL);
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
    static const char h[] = "PROXY TCP6 2001:db8::5 ::1 40000 443\r\n";
    char body[256];
    who(&c, h, sizeof(h) - 1, 1, NULL, body, sizeof(body));
    expect_prefix(body, "client=[2001:db8::5]:40000 peer=127.0.0.1:");
    e2e_conn_close(&c);
    stop();
}

Test(proxy_e2e, v2_every_piece_size)
{
    start(true, NULL);
    unsigned char h[64];
    size_t n = proxy_v2_tcp4(h, "198.51.100.20", 61000, true);
    for (size_t piece = 1; piece <= n; piece += 4) {
        e2e_conn_t c;
        cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
        char body[256];
        who(&c, h, n, piece, NULL, body, sizeof(body));
        expect_prefix(body, "client=198.51.100.20:61000 peer=127.0.0.1:");
        e2e_conn_close(&c);
    }
    stop();
}

Test(proxy_e2e, v2_local_and_v1_unknown_keep_socket_address)
{
    start(true, NULL);
    static const unsigned char local[16] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51,
                                            0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00};
    static const char unknown[] = "PROXY UNKNOWN\r\n";
    char body[256];
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
    who(&c, local, sizeof(local), 0, NULL, body, sizeof(body));
    expect_prefix(body, "client=127.0.0.1:");
    e2e_conn_close(&c);
    cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
    who(&c, unknown, sizeof(unknown) - 1, 0, NULL, body, sizeof(body));
    expect_prefix(body, "client=127.0.0.1:");
    e2e_conn_close(&c);
    stop();
}

/* Sends bytes and expects a silent close (no answer at all). */
static void expect_silent_close(const void *data, size_t len, int timeout_ms)
{
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
    if (len > 0)
        cr_assert_eq(e2e_send(&c, data, len), 0);
    long got = e2e_wait_closed(&c, timeout_ms);
    cr_assert_eq(got, 0, "after %zu bytes \"%.*s\": %ld bytes or timeout before close", len,
                 (int)(len < 40 ? len : 40), (const char *)data, got);
    e2e_conn_close(&c);
}

Test(proxy_e2e, missing_bad_or_slow_header_closes)
{
    start(true, NULL);
    static const char get[] = "GET /who HTTP/1.1\r\nHost: x\r\n\r\n";
    expect_silent_close(get, sizeof(get) - 1, 2000);
    static const char bad[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\nGET /who HTTP/1.1\r\n\r\n";
    expect_silent_close(bad, sizeof(bad) - 1, 2000);
    static const char v2bad[] = "\r\n\r\n\0\r\nQUIT\n\x21\x12\x00\x0c";
    expect_silent_close(v2bad, sizeof(v2bad) - 1, 2000);
    /* Half a header: closed by the head timeout (400 ms). */
    static const char half[] = "PROXY TCP4 1.2.3.4 ";
    expect_silent_close(half, sizeof(half) - 1, 3000);
    /* Nothing at all: the same. */
    expect_silent_close(NULL, 0, 3000);
    /* The server still serves good connections. */
    e2e_conn_t c;
    char body[256];
    cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
    static const char h[] = "PROXY TCP4 203.0.113.1 127.0.0.1 1 2\r\n";
    who(&c, h, sizeof(h) - 1, 0, NULL, body, sizeof(body));
    expect_prefix(body, "client=203.0.113.1:1 ");
    e2e_conn_close(&c);
    stop();
}

Test(proxy_e2e, line_listener)
{
    start(true, NULL);
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, sa.line_port), 0);
    cr_assert_eq(e2e_sends(&c, "PROXY TCP4 192.0.2.44 127.0.0.1 4444 7\r\nWHO\r\n"), 0);
    char line[256];
    cr_assert_gt(e2e_read_line(&c, line, sizeof(line), 3000), 0);
    expect_prefix(line, "200 OK client=192.0.2.44:4444 peer=127.0.0.1:");
    e2e_conn_close(&c);
    /* No header: closed. */
    cr_assert_eq(e2e_conn_open(&c, sa.line_port), 0);
    cr_assert_eq(e2e_sends(&c, "WHO\r\n"), 0);
    cr_assert_eq(e2e_wait_closed(&c, 2000), 0);
    e2e_conn_close(&c);
    stop();
}

Test(proxy_e2e, plain_listener_unaffected)
{
    start(false, NULL);
    e2e_conn_t c;
    char body[256];
    cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
    who(&c, NULL, 0, 0, "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n", body,
        sizeof(body));
    /* Nothing trusted: the headers are ignored. */
    expect_prefix(body, "client=127.0.0.1:");
    cr_assert(strstr(body, "scheme=http") != NULL && strstr(body, "https") == NULL, "%s", body);
    e2e_conn_close(&c);
    stop();
}

static void xff_case(const char *extra, const char *want)
{
    e2e_conn_t c;
    char body[256];
    cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
    who(&c, NULL, 0, 0, extra, body, sizeof(body));
    expect_prefix(body, want);
    e2e_conn_close(&c);
}

Test(proxy_e2e, xff_trusted_walk)
{
    start(false, "127.0.0.0/8, 10.0.0.0/8");
    xff_case("X-Forwarded-For: 198.51.100.9\r\n", "client=198.51.100.9:0 ");
    xff_case("X-Forwarded-For: 198.51.100.9, 10.1.1.1, 127.0.0.5\r\n", "client=198.51.100.9:0 ");
    xff_case("X-Forwarded-For: 203.0.113.1, 198.51.100.9, 10.1.1.1\r\n", "client=198.51.100.9:0 ");
    /* Several fields: one list, in order. */
    xff_case("X-Forwarded-For: 203.0.113.1\r\nX-Forwarded-For: 10.2.2.2\r\n",
             "client=203.0.113.1:0 ");
    xff_case("X-Forwarded-For: 10.2.2.2\r\nx-forwarded-for: 198.51.100.3\r\n",
             "client=198.51.100.3:0 ");
    /* A malformed element stops the walk: the last good one stays. */
    xff_case("X-Forwarded-For: 198.51.100.9, nonsense, 10.1.1.1\r\n", "client=10.1.1.1:0 ");
    xff_case("X-Forwarded-For: nonsense\r\n", "client=127.0.0.1:");
    xff_case("X-Forwarded-For: 198.51.100.9,, 10.1.1.1\r\n", "client=10.1.1.1:0 ");
    /* Ports and brackets (dropped: X-Forwarded-For clients have port 0); IPv6. */
    xff_case("X-Forwarded-For: 198.51.100.9:4711\r\n", "client=198.51.100.9:0 ");
    xff_case("X-Forwarded-For: [2001:db8::1]:443\r\n", "client=[2001:db8::1]:0 ");
    xff_case("X-Forwarded-For: 2001:db8::2\r\n", "client=[2001:db8::2]:0 ");
    /* All trusted: the leftmost. */
    xff_case("X-Forwarded-For: 10.9.9.9, 127.0.0.3\r\n", "client=10.9.9.9:0 ");
    /* X-Forwarded-Proto from a trusted peer: its last element. */
    xff_case("X-Forwarded-Proto: https\r\n", "client=127.0.0.1:");
    e2e_conn_t c;
    char body[256];
    cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
    who(&c, NULL, 0, 0, "X-Forwarded-Proto: http, HTTPS\r\n", body, sizeof(body));
    cr_assert(strstr(body, "scheme=https") != NULL, "%s", body);
    who(&c, NULL, 0, 0, "X-Forwarded-Proto: gopher\r\n", body, sizeof(body));
    cr_assert(strstr(body, "scheme=http") != NULL && strstr(body, "https") == NULL, "%s", body);
    e2e_conn_close(&c);
    stop();
}

/* The access log of requests the parser refused (no req->conn, maybe no
 * headers yet) and of good ones: client and peer. */
Test(proxy_e2e, access_log_client_and_peer)
{
    start(true, "10.0.0.0/8");
    static const char h[] = "PROXY TCP4 10.1.2.3 10.0.0.1 5000 80\r\n";
    static const char bad[] =
        "GET / HTTP/1.1\r\nX-Forwarded-For: 198.51.100.5\r\nBad Header\r\n\r\n";
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
    cr_assert_eq(e2e_sends(&c, h), 0);
    cr_assert_eq(e2e_sends(&c, bad), 0);
    e2e_resp_t r;
    cr_assert_eq(e2e_read_response(&c, &r, 3000, 0), 0);
    cr_assert_eq(r.status, 400);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    cr_assert_geq(e2e_wait_atomic(&nlogged, 1, 3000), 1, "no access-log entry");
    cr_assert(strncmp(log_client, "10.1.2.3:5000", 13) == 0 ||
                  strncmp(log_client, "198.51.100.5", 12) == 0,
              "client %s", log_client);
    cr_assert(strncmp(log_peer, "127.0.0.1:", 10) == 0, "peer %s", log_peer);
    char body[256];
    cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
    who(&c, h, sizeof(h) - 1, 0, "X-Forwarded-For: 198.51.100.6\r\n", body, sizeof(body));
    e2e_conn_close(&c);
    cr_assert_geq(e2e_wait_atomic(&nlogged, 2, 3000), 2, "no second access-log entry");
    cr_assert_str_eq(log_client, "198.51.100.6:0");
    cr_assert(strncmp(log_peer, "127.0.0.1:", 10) == 0, "peer %s", log_peer);
    stop();
}

Test(proxy_e2e, xff_untrusted_peer_ignored)
{
    start(false, "10.0.0.0/8,::1/128");
    xff_case("X-Forwarded-For: 198.51.100.9\r\n", "client=127.0.0.1:");
    stop();
}

Test(proxy_e2e, proxy_protocol_with_trusted_xff)
{
    /* The PROXY header's source is the peer the trust list judges. */
    start(true, "10.0.0.0/8");
    e2e_conn_t c;
    char body[256];
    cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
    static const char h[] = "PROXY TCP4 10.1.2.3 10.0.0.1 5000 80\r\n";
    who(&c, h, sizeof(h) - 1, 0, "X-Forwarded-For: 198.51.100.77\r\n", body, sizeof(body));
    expect_prefix(body, "client=198.51.100.77:0 peer=127.0.0.1:");
    e2e_conn_close(&c);
    cr_assert_eq(e2e_conn_open(&c, sa.port), 0);
    static const char h2[] = "PROXY TCP4 203.0.113.3 10.0.0.1 5000 80\r\n";
    who(&c, h2, sizeof(h2) - 1, 0, "X-Forwarded-For: 198.51.100.77\r\n", body, sizeof(body));
    expect_prefix(body, "client=203.0.113.3:5000 ");
    e2e_conn_close(&c);
    stop();
}

/* ------------------------------------------------- pure: lib/trust.c */

Test(proxy_trust, cidr_lists)
{
    appsrv__trust_t *t;
    cr_assert_eq(appsrv__trust_parse("10.0.0.0/8, 192.168.1.1 ,::1/128,2001:db8::/32", &t), 0);
    cr_assert_eq(t->n, 4u);
    appsrv_addr_t a;
    cr_assert(appsrv__trust_parse_addr("10.255.0.1", 10, &a) && appsrv__trust_has(t, &a));
    cr_assert(appsrv__trust_parse_addr("11.0.0.1", 8, &a) && !appsrv__trust_has(t, &a));
    cr_assert(appsrv__trust_parse_addr("192.168.1.1", 11, &a) && appsrv__trust_has(t, &a));
    cr_assert(appsrv__trust_parse_addr("192.168.1.2", 11, &a) && !appsrv__trust_has(t, &a));
    cr_assert(appsrv__trust_parse_addr("::1", 3, &a) && appsrv__trust_has(t, &a));
    cr_assert(appsrv__trust_parse_addr("2001:db8:ffff::9", 16, &a) && appsrv__trust_has(t, &a));
    cr_assert(appsrv__trust_parse_addr("2001:db9::", 10, &a) && !appsrv__trust_has(t, &a));
    /* IPv4-mapped IPv6 matches the IPv4 network. */
    cr_assert(appsrv__trust_parse_addr("::ffff:10.1.2.3", 15, &a) && appsrv__trust_has(t, &a));
    free(t);
    cr_assert_eq(appsrv__trust_parse("0.0.0.0/0", &t), 0);
    cr_assert(appsrv__trust_parse_addr("1.2.3.4", 7, &a) && appsrv__trust_has(t, &a));
    free(t);
    cr_assert_eq(appsrv__trust_parse("10.0.0.0/9", &t), 0);
    cr_assert(appsrv__trust_parse_addr("10.127.0.0", 10, &a) && appsrv__trust_has(t, &a));
    cr_assert(appsrv__trust_parse_addr("10.128.0.0", 10, &a) && !appsrv__trust_has(t, &a));
    free(t);
    const char *bad[] = {
        "",  " ",           "10.0.0.0/33", "::/129",       "10.0.0.0/",   "10.0.0/8",
        "x", "10.0.0.0/8,", ",10.0.0.0/8", "10.0.0.0/8/8", "10.0.0.0/-1", "10.0.0.0/1a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(appsrv__trust_parse(bad[i], &t), -EINVAL, "\"%s\"", bad[i]);
        cr_assert_null(t);
    }
}

Test(proxy_trust, xff_elements)
{
    appsrv_addr_t a;
    const char *good[] = {"1.2.3.4",    " 1.2.3.4 ", "1.2.3.4:80", "[::1]",
                          "[::1]:8080", "::1",       "2001:db8::1"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_assert(appsrv__trust_parse_addr(good[i], strlen(good[i]), &a), "\"%s\"", good[i]);
    const char *bad[] = {"",          "unknown",  "1.2.3.4:", "1.2.3.4:123456", "[1.2.3.4]",
                         "[::1",      "[::1]:",   "[::1]x",   "1.2.3.4:8a",     "_hidden",
                         "1.2.3.4.5", "::1:80:x", "1.2.3.4 5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(!appsrv__trust_parse_addr(bad[i], strlen(bad[i]), &a), "\"%s\"", bad[i]);
}
