/* SPDX-License-Identifier: MIT */
/*
 * test_cli_signals.c - stopping the appsrv CLI and what it prints
 * (appsrv(1)): SIGINT and SIGTERM exit 0 and close idle connections while a big
 * response or a request body in flight still completes; --access-log, -q
 * (listening lines and errors only) and IPv6. Spawned CLI, tests/support
 * helpers (cli.h).
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
#include <limits.h>
#include <netinet/in.h>
#include <sys/wait.h>

#include "cli.h"

Test(cli, sigint_exits_0_and_closes_idle, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"--idle-timeout", "86400", NULL});
    conn_t idle, lidle;
    open_idle(&idle, &s);
    conn_open(&lidle, &s, s.line_port);
    line_check(&lidle, "PING\r\n", "200 OK PONG\n");
    cr_assert_eq(kill(s.pid, SIGINT), 0);
    conn_expect_close(&idle, deadline(5000), "idle HTTP connection at SIGINT");
    conn_expect_close(&lidle, deadline(5000), "idle line connection at SIGINT");
    srv_wait_ok(&s, "SIGINT");
    conn_close(&idle);
    conn_close(&lidle);
    srv_free(&s);
    assert_all_released();
}

Test(cli, sigterm_exits_0_and_closes_idle, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"--idle-timeout", "86400", NULL});
    conn_t idle;
    open_idle(&idle, &s);
    cr_assert_eq(kill(s.pid, SIGTERM), 0);
    conn_expect_close(&idle, deadline(5000), "idle HTTP connection at SIGTERM");
    srv_wait_ok(&s, "SIGTERM");
    conn_close(&idle);
    srv_free(&s);
    assert_all_released();
}

/* The most a socket send buffer may grow to (tcp_wmem max), 4 MiB when
 * unknown: a response larger than that cannot all sit in the kernel. */
static size_t tcp_wmem_max(void)
{
    size_t v = 4u << 20;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "re");
    if (f != NULL) {
        unsigned long a, b, c;
        if (fscanf(f, "%lu %lu %lu", &a, &b, &c) == 3 && c > 0)
            v = (size_t)c;
        fclose(f);
    }
    return v;
}

/*
 * SIGTERM while a big echo is read slowly (4 KiB receive buffer): the
 * stop has visibly begun (an idle connection got closed) before the client
 * reads on, and the whole response still arrives; exit 0. The body is
 * 1 MiB more than the kernel could buffer for the server (tcp_wmem max),
 * so part of the response is still in appsrv when SIGTERM arrives and the
 * server has to keep sending it - with a 1 MiB body the kernel holds it all
 * and an early exit would go unnoticed.
 */
Test(cli, sigterm_finishes_response_in_flight, .timeout = TMO_BIG)
{
    size_t n = tcp_wmem_max() + (1u << 20);
    if (n > (64u << 20))
        n = 64u << 20;
    char max_body[32];
    snprintf(max_body, sizeof(max_body), "%zu", n);
    srv_t s;
    /* no timeout may close anything during the test: only the stop */
    srv_start(&s, (const char *const[]){"--max-body", max_body, "--head-timeout", "86400",
                                        "--idle-timeout", "86400", NULL});
    char *body = tmalloc(n);
    e2e_fill_pattern(body, n, 99);
    conn_t idle, slow;
    open_idle(&idle, &s);
    conn_open_host(&slow, AF_INET, s.http_port, 4096);
    char head[256];
    int hl =
        snprintf(head, sizeof(head),
                 "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-slow\r\n"
                 "Content-Length: %zu\r\n\r\n",
                 n);
    conn_send(&slow, head, (size_t)hl);
    conn_send(&slow, body, n);
    /* the response has started: its head and some body are here */
    int64_t dl = deadline(10000);
    const char *e;
    while ((e = memmem(e2e_conn_data(&slow), e2e_conn_avail(&slow), "\r\n\r\n", 4)) == NULL ||
           (size_t)(e - e2e_conn_data(&slow)) + 4 >= e2e_conn_avail(&slow)) {
        ssize_t got = conn_fill(&slow, dl);
        cr_assert_gt(got, 0, "echo response did not start: %s", strerror((int)-got));
    }
    cr_assert_eq(kill(s.pid, SIGTERM), 0);
    conn_expect_close(&idle, deadline(5000), "idle connection at SIGTERM");
    resp_t r;
    http_read(&slow, &r, false, deadline(60000));
    expect_resp(&r, "HTTP/1.1 200 OK", "application/x-slow", body, n, "echo in flight at SIGTERM");
    resp_free(&r);
    conn_expect_close(&slow, deadline(5000),
                      "connection whose in-flight response just finished, stop pending");
    srv_wait_ok(&s, "SIGTERM with a response in flight");
    conn_close(&idle);
    conn_close(&slow);
    tfree(body);
    srv_free(&s);
    assert_all_released();
}

/*
 * SIGTERM while the request body is still arriving: that request is in
 * flight too (README: a stop "finishes the requests in flight"). "Expect:
 * 100-continue" makes it observable that appsrv has parsed the head and
 * waits for the body before the signal is sent (without it, a request
 * still unread in the kernel may fairly be dropped with the connection).
 */
Test(cli, sigterm_finishes_request_body_in_flight, .timeout = TMO_BIG)
{
    srv_t s;
    srv_start(&s,
              (const char *const[]){"--head-timeout", "86400", "--idle-timeout", "86400", NULL});
    size_t n = 256 * 1024;
    char *body = tmalloc(n);
    e2e_fill_pattern(body, n, 5);
    conn_t idle, up;
    open_idle(&idle, &s);
    conn_open(&up, &s, s.http_port);
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "PUT /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      n);
    conn_send(&up, head, (size_t)hl);
    char line[256];
    line_read(&up, line, sizeof(line), deadline(5000));
    cr_assert_str_eq(line, "HTTP/1.1 100 Continue\r\n");
    line_read(&up, line, sizeof(line), deadline(5000));
    cr_assert_str_eq(line, "\r\n", "100 Continue with header fields: \"%s\"", line);
    conn_send(&up, body, n / 2);
    cr_assert_eq(kill(s.pid, SIGTERM), 0);
    conn_expect_close(&idle, deadline(5000), "idle connection at SIGTERM");
    int rc = conn_try_send(&up, body + n / 2, n - n / 2, deadline(10000));
    cr_assert_eq(rc, 0, "rest of the body after SIGTERM: %s (request dropped)", strerror(-rc));
    resp_t r;
    http_read(&up, &r, false, deadline(20000));
    expect_resp(&r, "HTTP/1.1 200 OK", "application/octet-stream", body, n,
                "PUT /echo in flight at SIGTERM");
    resp_free(&r);
    conn_expect_close(&up, deadline(5000), "finished connection after SIGTERM");
    srv_wait_ok(&s, "SIGTERM with a request body in flight");
    conn_close(&idle);
    conn_close(&up);
    tfree(body);
    srv_free(&s);
    assert_all_released();
}

/* The stderr lines that are not the CLI's own "appsrv: ..." lines. */
static size_t request_lines(char *log, char *lines[], size_t max)
{
    size_t n = 0;
    for (char *p = strtok(log, "\n"); p != NULL; p = strtok(NULL, "\n"))
        if (strncmp(p, "appsrv: ", 8) != 0 && n < max)
            lines[n++] = p;
    return n;
}

Test(cli, access_log_one_line_per_request, .timeout = TMO)
{
    static const struct {
        const char *a, *b;
    } want[] = {
        {"GET /health", " 200 "},      {"POST /echo", " 200 "}, {"GET /nope", " 404 "},
        {"GET /echo?msg=hi", " 200 "}, {"PING", " 200 "},       {"BOGUS", " 404 "},
    };
    srv_t s;
    srv_start(&s, (const char *const[]){"--access-log", NULL});
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(&c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    resp_free(&r);
    http_do(&c, "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\nhi", &r);
    resp_free(&r);
    http_do(&c, "GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    resp_free(&r);
    http_do(&c, "GET /echo?msg=hi HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    resp_free(&r);
    conn_close(&c);
    conn_open(&c, &s, s.line_port);
    line_check(&c, "PING\r\n", "200 OK PONG\n");
    line_check(&c, "BOGUS\r\n", "404 Not Found\n");
    conn_close(&c);
    srv_pump(&s);
    srv_stop(&s);
    char *lines[32];
    size_t n = request_lines(s.proc.err.buf, lines, 32);
    size_t nw = sizeof(want) / sizeof(want[0]);
    cr_assert_eq(n, nw, "%zu access-log lines, want %zu (one per request)", n, nw);
    bool used[32] = {false};
    for (size_t i = 0; i < nw; i++) {
        bool found = false;
        for (size_t j = 0; j < n && !found; j++) {
            if (!used[j] && strstr(lines[j], want[i].a) != NULL &&
                strstr(lines[j], want[i].b) != NULL)
                used[j] = found = true;
        }
        cr_assert(found, "no access-log line with \"%s\" and \"%s\"", want[i].a, want[i].b);
    }
    srv_free(&s);
    assert_all_released();
}

Test(cli, no_access_log_by_default, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    http_check(&s, "GET", "/health", "HTTP/1.1 200 OK", "text/plain", "OK");
    conn_t c;
    conn_open(&c, &s, s.line_port);
    line_check(&c, "PING\r\n", "200 OK PONG\n");
    conn_close(&c);
    srv_stop(&s);
    char *lines[8];
    size_t n = request_lines(s.proc.err.buf, lines, 8);
    cr_assert_eq(n, 0, "request lines without --access-log: \"%s\"", n ? lines[0] : "");
    srv_free(&s);
    assert_all_released();
}

/* -q: the listening lines stay (srv_start read them); nothing else. */
Test(cli, quiet_keeps_listening_lines_only, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"-q", NULL});
    http_check(&s, "GET", "/health", "HTTP/1.1 200 OK", "text/plain", "OK");
    srv_stop(&s);
    char want[256];
    snprintf(want, sizeof(want),
             "appsrv: listening on http://127.0.0.1:%d\nappsrv: listening on line://127.0.0.1:%d\n",
             s.http_port, s.line_port);
    cr_assert_str_eq(s.proc.err.buf, want, "-q stderr:\n%s", s.proc.err.buf);
    srv_free(&s);
    /* --quiet the same */
    srv_start(&s, (const char *const[]){"--quiet", NULL});
    srv_stop(&s);
    snprintf(want, sizeof(want),
             "appsrv: listening on http://127.0.0.1:%d\nappsrv: listening on line://127.0.0.1:%d\n",
             s.http_port, s.line_port);
    cr_assert_str_eq(s.proc.err.buf, want, "--quiet stderr:\n%s", s.proc.err.buf);
    srv_free(&s);
    assert_all_released();
}

/* -q never silences errors: a port in use is reported, exit status 1. */
static void expect_listen_error(const char *flag)
{
    int fd = track_fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", ntohs(a.sin_port));
    run_t r;
    if (strcmp(flag, "-p") == 0)
        run_cli(&r, (const char *const[]){"-q", "-t", "1", "-p", port, NULL});
    else
        run_cli(&r, (const char *const[]){"-q", "-t", "1", "-p", "0", "-l", port, NULL});
    e2e_strip_valgrind_lines(r.err.buf);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1,
              "%s on a port in use: status 0x%x, want exit 1; stderr:\n%s", flag,
              (unsigned)r.status, r.err.buf);
    cr_assert(strstr(r.err.buf, port) != NULL && strncmp(r.err.buf, "appsrv: ", 8) == 0,
              "-q %s on a port in use: no error naming port %s on stderr:\n%s", flag, port,
              r.err.buf);
    cr_assert(strstr(r.err.buf, "listening on line") == NULL, "stderr:\n%s", r.err.buf);
    run_free(&r);
    close_fd(&fd);
}

Test(cli, quiet_keeps_errors_port_in_use, .timeout = TMO)
{
    expect_listen_error("-p");
    expect_listen_error("-l");
    assert_all_released();
}

static bool have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

Test(cli, ipv6_host, .timeout = TMO)
{
    if (!have_ipv6_loopback())
        cr_skip_test("no IPv6 loopback (::1) here");
    srv_t s;
    srv_start_at(&s, AF_INET6, "[::1]", (const char *const[]){"--host", "::1", NULL});
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(&c, "GET /json HTTP/1.1\r\nHost: [::1]\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "application/json", "{\"message\":\"Hello, World!\"}", 27,
                "GET /json over IPv6");
    resp_free(&r);
    conn_close(&c);
    conn_open(&c, &s, s.line_port);
    line_check(&c, "PING\r\n", "200 OK PONG\n");
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    /* -H short form too */
    srv_start_at(&s, AF_INET6, "[::1]", (const char *const[]){"-H", "::1", NULL});
    http_check(&s, "GET", "/health", "HTTP/1.1 200 OK", "text/plain", "OK");
    srv_finish(&s);
}
