/* SPDX-License-Identifier: MIT */
/*
 * test_proxy_limits.c - per-client limits end to end on loopback, with
 * clients on several source addresses (bind() to 127.0.0.2, 127.0.0.3
 * before connect): max_conns_per_client closes a client's extra
 * connection while another address is served; rate_limit answers 429 +
 * Retry-After (JSON through the error responder) to the address over its
 * rate only; behind a PROXY header the header's client is what counts,
 * and behind a trusted proxy each X-Forwarded-For client has its own
 * bucket. Also the table's bounds with a flood of distinct addresses.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "climit.h"
#include "client.h"
#include "e2e.h"

static int h_ok(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    (void)user;
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "ok", 2);
}

static const e2e_route_t routes[] = {{"GET", "/", h_ok, NULL, false}};

typedef struct lim_arg {
    bool proxy_protocol;
    const char *trust;
    int port;
} lim_arg_t;

static int setup(appsrv_server_t *srv, void *arg)
{
    lim_arg_t *a = arg;
    int rc = appsrv_set_error_responder(srv, appsrv_error_json, NULL);
    if (rc < 0)
        return rc;
    if (a->trust != NULL && (rc = appsrv_trust_proxy(srv, a->trust)) < 0)
        return rc;
    appsrv_listen_opts_t o = {.proto = APPSRV_PROTO_HTTP, .proxy_protocol = a->proxy_protocol};
    a->port = appsrv_listen_opts(srv, "127.0.0.1", 0, &o);
    return a->port < 0 ? a->port : 0;
}

static e2e_server_t srv;
static lim_arg_t la;

static void start(int max_conns, double rate, double burst, bool pp, const char *trust)
{
    appsrv_config_t cfg = base_cfg();
    cfg.max_conns_per_client = max_conns;
    cfg.rate_limit = rate;
    cfg.rate_burst = burst;
    la = (lim_arg_t){.proxy_protocol = pp, .trust = trust};
    cr_assert_eq(e2e_server_start_with(&srv, &cfg, routes, 1, 0, setup, &la), 0);
}

/* Connects from src (127.0.0.x) to the server, 2 s bound. */
static void open_from(e2e_conn_t *c, const char *src)
{
    memset(c, 0, sizeof(*c));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &a.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind %s: %s", src,
                 strerror(errno));
    a.sin_port = htons((uint16_t)la.port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
    c->fd = fd;
}

/* One GET / on c; returns the status (0: the connection closed first). */
static int get(e2e_conn_t *c, const char *extra, char *retry_after, size_t cap)
{
    char req[256];
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: x\r\n%s\r\n", extra ? extra : "");
    if (e2e_sends(c, req) < 0)
        return 0;
    e2e_resp_t r;
    int rc = e2e_read_response(c, &r, 3000, 0);
    if (rc == -ECONNRESET || rc == -EPIPE)
        return 0;
    cr_assert_eq(rc, 0, "no response: %s", e2e_errname(rc));
    int status = r.status;
    if (retry_after != NULL) {
        const char *v = e2e_resp_header(&r, "Retry-After");
        snprintf(retry_after, cap, "%s", v ? v : "");
        if (status == 429)
            cr_assert(strstr(r.body, "\"status\":429") != NULL, "body: %s", r.body);
    }
    e2e_resp_free(&r);
    return status;
}

TestSuite(proxy_limits, .timeout = 30);

Test(proxy_limits, conns_per_client_by_source_address)
{
    start(2, 0, 0, false, NULL);
    e2e_conn_t a1, a2, a3, b1;
    open_from(&a1, "127.0.0.2");
    open_from(&a2, "127.0.0.2");
    cr_assert_eq(get(&a1, NULL, NULL, 0), 200);
    cr_assert_eq(get(&a2, NULL, NULL, 0), 200);
    /* The third from 127.0.0.2 is closed without an answer... */
    open_from(&a3, "127.0.0.2");
    cr_assert_eq(get(&a3, NULL, NULL, 0), 0, "127.0.0.2's third connection was served");
    e2e_conn_close(&a3);
    /* ...while 127.0.0.3 is served. */
    open_from(&b1, "127.0.0.3");
    cr_assert_eq(get(&b1, NULL, NULL, 0), 200);
    cr_assert_eq(get(&a1, NULL, NULL, 0), 200, "a limited address's open connections go on");
    /* One closes: 127.0.0.2 may open another (once the server saw it). */
    e2e_conn_close(&a1);
    int st = 0;
    for (int i = 0; i < 100 && st != 200; i++) {
        e2e_conn_t c;
        open_from(&c, "127.0.0.2");
        st = get(&c, NULL, NULL, 0);
        e2e_conn_close(&c);
        if (st != 200)
            usleep(20 * 1000);
    }
    cr_assert_eq(st, 200, "127.0.0.2 still refused 2 s after closing a connection");
    e2e_conn_close(&a2);
    e2e_conn_close(&b1);
    cr_assert_eq(e2e_server_stop(&srv, 5000), 0);
}

Test(proxy_limits, rate_per_client_429_retry_after)
{
    start(0, 1, 2, false, NULL); /* 1/s, bursts of 2 */
    e2e_conn_t a, b;
    char ra[32];
    open_from(&a, "127.0.0.2");
    open_from(&b, "127.0.0.3");
    cr_assert_eq(get(&a, NULL, ra, sizeof(ra)), 200);
    cr_assert_eq(get(&a, NULL, ra, sizeof(ra)), 200);
    cr_assert_eq(get(&a, NULL, ra, sizeof(ra)), 429);
    cr_assert(atoi(ra) >= 1 && atoi(ra) <= 1, "Retry-After: \"%s\"", ra);
    /* The other address has its own bucket. */
    cr_assert_eq(get(&b, NULL, ra, sizeof(ra)), 200);
    cr_assert_eq(get(&b, NULL, ra, sizeof(ra)), 200);
    /* The 429 kept the connection usable. */
    cr_assert_eq(get(&a, NULL, ra, sizeof(ra)), 429);
    e2e_conn_close(&a);
    e2e_conn_close(&b);
    cr_assert_eq(e2e_server_stop(&srv, 5000), 0);
}

Test(proxy_limits, proxy_header_client_counts)
{
    start(1, 0, 0, true, NULL);
    static const char h1[] = "PROXY TCP4 203.0.113.1 127.0.0.1 1000 80\r\n";
    static const char h2[] = "PROXY TCP4 203.0.113.2 127.0.0.1 1000 80\r\n";
    e2e_conn_t a, b, c;
    /* Same socket peer, two clients: both served. */
    cr_assert_eq(e2e_conn_open(&a, la.port), 0);
    cr_assert_eq(e2e_sends(&a, h1), 0);
    cr_assert_eq(get(&a, NULL, NULL, 0), 200);
    cr_assert_eq(e2e_conn_open(&b, la.port), 0);
    cr_assert_eq(e2e_sends(&b, h2), 0);
    cr_assert_eq(get(&b, NULL, NULL, 0), 200);
    /* The same client again: over its limit of 1. */
    cr_assert_eq(e2e_conn_open(&c, la.port), 0);
    cr_assert_eq(e2e_sends(&c, h1), 0);
    cr_assert_eq(get(&c, NULL, NULL, 0), 0);
    e2e_conn_close(&a);
    e2e_conn_close(&b);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&srv, 5000), 0);
}

Test(proxy_limits, rate_per_forwarded_client)
{
    start(0, 1, 1, false, "127.0.0.1/32");
    e2e_conn_t a;
    cr_assert_eq(e2e_conn_open(&a, la.port), 0);
    cr_assert_eq(get(&a, "X-Forwarded-For: 198.51.100.1\r\n", NULL, 0), 200);
    cr_assert_eq(get(&a, "X-Forwarded-For: 198.51.100.1\r\n", NULL, 0), 429);
    cr_assert_eq(get(&a, "X-Forwarded-For: 198.51.100.2\r\n", NULL, 0), 200);
    /* The proxy itself (no X-Forwarded-For) is one more client. */
    cr_assert_eq(get(&a, NULL, NULL, 0), 200);
    e2e_conn_close(&a);
    cr_assert_eq(e2e_server_stop(&srv, 5000), 0);
}

/* The table under a flood of distinct addresses: bounded (fixed size by
 * construction), a client with open connections keeps its count, and a
 * full set admits untracked instead of refusing. */
Test(proxy_limits, table_flood)
{
    appsrv__climit_t *t;
    cr_assert_eq(appsrv__climit_new(&t, 1, 0, 0), 0);
    appsrv_addr_t a = {0};
    a.u.in4.sin_family = AF_INET;
    a.len = sizeof(a.u.in4);
    inet_pton(AF_INET, "192.0.2.1", &a.u.in4.sin_addr);
    bool counted;
    cr_assert(appsrv__climit_conn_open(t, &a, 0, &counted) && counted);
    appsrv_addr_t x = a;
    size_t untracked = 0;
    for (uint32_t i = 0; i < 100000; i++) {
        uint32_t ip = htonl(0x0a000000u + i);
        memcpy(&x.u.in4.sin_addr, &ip, 4);
        cr_assert(appsrv__climit_conn_open(t, &x, i, &counted), "address %u refused", i);
        untracked += !counted;
    }
    cr_assert_gt(untracked, 0u, "a full table should admit untracked");
    /* The first client's connection is still counted: a second is refused. */
    cr_assert(!appsrv__climit_conn_open(t, &a, 1, &counted));
    appsrv__climit_conn_close(t, &a);
    cr_assert(appsrv__climit_conn_open(t, &a, 2, &counted) && counted);
    appsrv__climit_free(t);
    /* IPv6: one /64 is one client (a fresh table: the flood holds every
     * entry of the first). */
    cr_assert_eq(appsrv__climit_new(&t, 1, 0, 0), 0);
    appsrv_addr_t v6 = {0}, v6b;
    v6.u.in6.sin6_family = AF_INET6;
    v6.len = sizeof(v6.u.in6);
    inet_pton(AF_INET6, "2001:db8:1:2::1", &v6.u.in6.sin6_addr);
    v6b = v6;
    inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &v6b.u.in6.sin6_addr);
    cr_assert(appsrv__climit_conn_open(t, &v6, 3, &counted) && counted);
    cr_assert(!appsrv__climit_conn_open(t, &v6b, 4, &counted), "same /64 not one client");
    appsrv__climit_free(t);
}
