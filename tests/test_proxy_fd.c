/* SPDX-License-Identifier: MIT */
/*
 * test_proxy_fd.c - listener options on an inherited socket
 * (appsrv_listen_opts_fd()): the test makes a listening socket itself, as
 * systemd or start_server would, hands it to the server with the PROXY
 * protocol on, and a raw loopback client sends v1 and v2 headers before
 * HTTP (and a line command): the handler sees the header's client. A
 * connection without a header is closed without an answer; a Unix socket
 * (port 0) takes the options too; and the fd checks and option errors are
 * those of appsrv_listen_http_fd() / appsrv_listen_opts(), the fd staying
 * the caller's after a refusal.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "e2e.h"
#include "proxy_hdr.h"

/* GET /who and the line command WHO: "client=ADDR" */
static int h_who(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    char c[64];
    appsrv_addr_format(appsrv_req_client_addr(req), c, sizeof(c));
    appsrv_res_set_status(res, 200);
    int rc = appsrv_res_printf(res, "client=%s", c);
    return rc < 0 ? rc : 0;
}

static const e2e_route_t routes[] = {{"GET", "/who", h_who, NULL, false},
                                     {NULL, "WHO", h_who, NULL, true}};

typedef struct fd_arg {
    int http_fd, line_fd; /* made here, handed over */
    int http_port, line_port;
} fd_arg_t;

static int setup(appsrv_server_t *srv, void *arg)
{
    fd_arg_t *a = arg;
    appsrv_listen_opts_t o = {.proto = APPSRV_PROTO_HTTP, .proxy_protocol = true};
    a->http_port = appsrv_listen_opts_fd(srv, a->http_fd, &o);
    if (a->http_port < 0)
        return a->http_port;
    o.proto = APPSRV_PROTO_LINE;
    a->line_port = appsrv_listen_opts_fd(srv, a->line_fd, &o);
    return a->line_port < 0 ? a->line_port : 0;
}

/* A listening TCP socket on 127.0.0.1, blocking, as a supervisor makes. */
static int tcp_listener(void)
{
    int fd = appsrv_listen("127.0.0.1", 0, 16, 0);
    cr_assert_geq(fd, 0, "appsrv_listen: %s", appsrv_strerror(fd));
    return fd;
}

static e2e_server_t srv;
static fd_arg_t fa;

static void start(void)
{
    appsrv_config_t cfg = base_cfg();
    cfg.head_timeout_ms = 400;
    fa = (fd_arg_t){.http_fd = tcp_listener(), .line_fd = tcp_listener()};
    int want_http = appsrv_local_port(fa.http_fd), want_line = appsrv_local_port(fa.line_fd);
    cr_assert_eq(e2e_server_start_with(&srv, &cfg, routes, 2, 0, setup, &fa), 0);
    cr_assert_eq(fa.http_port, want_http, "appsrv_listen_opts_fd returns the bound port");
    cr_assert_eq(fa.line_port, want_line);
}

static void stop(void)
{
    cr_assert_eq(e2e_server_stop(&srv, 5000), 0);
}

/* Sends pre, then GET /who; the body must start with want. */
static void who_is(const void *pre, size_t prelen, size_t piece, const char *want)
{
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, fa.http_port), 0);
    cr_assert_eq(e2e_send_pieces(&c, pre, prelen, piece), 0);
    cr_assert_eq(e2e_sends(&c, "GET /who HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    e2e_resp_t r;
    int rc = e2e_read_response(&c, &r, 3000, 0);
    cr_assert_eq(rc, 0, "no response: %s", e2e_errname(rc));
    cr_assert_eq(r.status, 200);
    cr_assert_eq(strncmp(r.body, want, strlen(want)), 0, "got \"%s\", want \"%s...\"", r.body,
                 want);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
}

TestSuite(proxy_fd, .timeout = 30);

Test(proxy_fd, v1_and_v2_on_an_adopted_socket)
{
    start();
    static const char v1[] = "PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n";
    who_is(v1, sizeof(v1) - 1, sizeof(v1) - 1, "client=203.0.113.7:5555");
    who_is(v1, sizeof(v1) - 1, 1, "client=203.0.113.7:5555"); /* byte by byte */
    unsigned char v2[32];
    size_t n = proxy_v2_tcp4(v2, "198.51.100.20", 61000, false);
    who_is(v2, n, n, "client=198.51.100.20:61000");
    who_is(v2, n, 3, "client=198.51.100.20:61000");
    stop();
}

Test(proxy_fd, line_listener_and_missing_header)
{
    start();
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, fa.line_port), 0);
    cr_assert_eq(e2e_sends(&c, "PROXY TCP4 192.0.2.9 127.0.0.1 7000 80\r\nWHO\n"), 0);
    char line[256];
    cr_assert_gt(e2e_read_line(&c, line, sizeof(line), 3000), 0);
    cr_assert(strstr(line, "client=192.0.2.9:7000") != NULL, "line reply: \"%s\"", line);
    e2e_conn_close(&c);
    /* No header: the connection closes without a byte of answer. */
    cr_assert_eq(e2e_conn_open(&c, fa.http_port), 0);
    cr_assert_eq(e2e_sends(&c, "GET /who HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    long got = e2e_wait_closed(&c, 3000);
    cr_assert_eq(got, 0, "a plain GET got %ld bytes, or no close within 3 s", got);
    e2e_conn_close(&c);
    stop();
}

/* A Unix socket's listener is port 0: the options still apply. */
static int unix_setup(appsrv_server_t *s, void *arg)
{
    fd_arg_t *a = arg;
    appsrv_listen_opts_t o = {.proxy_protocol = true}; /* proto 0: HTTP */
    a->http_port = appsrv_listen_opts_fd(s, a->http_fd, &o);
    return a->http_port < 0 ? a->http_port : 0;
}

Test(proxy_fd, unix_socket_takes_the_header)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "appsrv-proxy-fd-%d", (int)getpid());
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                                 strlen(a.sun_path + 1));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, alen), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(fd, 4), 0);
    fa = (fd_arg_t){.http_fd = fd, .line_fd = -1, .http_port = -1};
    cr_assert_eq(e2e_server_start_with(&srv, NULL, routes, 1, 0, unix_setup, &fa), 0);
    cr_assert_eq(fa.http_port, 0);

    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(c, 0);
    cr_assert_eq(connect(c, (struct sockaddr *)&a, alen), 0, "connect: %s", strerror(errno));
    static const char req[] = "PROXY TCP4 203.0.113.8 127.0.0.1 4242 80\r\n"
                              "GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    int64_t dl = e2e_now_ms() + 3000;
    cr_assert_eq(e2e_send_fd(c, req, sizeof(req) - 1, dl), 0);
    char buf[1024];
    size_t len = 0;
    for (;;) {
        cr_assert_eq(e2e_wait_readable(c, dl), 0, "no answer within 3 s; got so far \"%.*s\"",
                     (int)len, buf);
        ssize_t r = read(c, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(c);
    cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0, "answer: \"%s\"", buf);
    cr_assert(strstr(buf, "client=203.0.113.8:4242") != NULL, "answer: \"%s\"", buf);
    stop();
}

Test(proxy_fd, refusals_leave_the_fd_to_the_caller)
{
    appsrv_server_t *s;
    cr_assert_eq(appsrv_server_new(&s, NULL), 0);
    appsrv_listen_opts_t o = {.proxy_protocol = true};
    cr_assert_eq(appsrv_listen_opts_fd(s, -1, &o), -EBADF);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(appsrv_listen_opts_fd(s, p[0], &o), -ENOTSOCK);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    cr_assert_eq(appsrv_listen_opts_fd(s, udp, &o), -EINVAL);
    int tcp = socket(AF_INET, SOCK_STREAM, 0); /* not listening */
    cr_assert_eq(appsrv_listen_opts_fd(s, tcp, &o), -EINVAL);
    int lfd = tcp_listener();
    cr_assert_eq(appsrv_listen_opts_fd(NULL, lfd, &o), -EINVAL);
    appsrv_listen_opts_t bad = {.proto = (appsrv_proto_t)99};
    cr_assert_eq(appsrv_listen_opts_fd(s, lfd, &bad), -EINVAL);
    /* TLS on a line listener (any non-NULL tls: it is not touched). */
    appsrv_listen_opts_t line_tls = {.proto = APPSRV_PROTO_LINE, .tls = (appsrv_tls_t *)&o};
    cr_assert_eq(appsrv_listen_opts_fd(s, lfd, &line_tls), -EINVAL);
    cr_assert_neq(fcntl(p[0], F_GETFD), -1);
    cr_assert_neq(fcntl(udp, F_GETFD), -1);
    cr_assert_neq(fcntl(tcp, F_GETFD), -1);
    cr_assert_neq(fcntl(lfd, F_GETFD), -1, "a refused listener was closed");
    /* NULL opts: plain HTTP, and the server owns the socket from here. */
    cr_assert_eq(appsrv_listen_opts_fd(s, lfd, NULL), appsrv_local_port(lfd));
    appsrv_server_free(s);
    cr_assert_eq(fcntl(lfd, F_GETFD), -1, "the server did not close the adopted socket");
    close(p[0]), close(p[1]), close(udp), close(tcp);
}
