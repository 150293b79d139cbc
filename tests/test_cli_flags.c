/* SPDX-License-Identifier: MIT */
/*
 * test_cli_flags.c - the appsrv CLI's command line (appsrv(1)): bad flags and
 * values exit 2 with the usage, -V and -h, and the server options that
 * change behaviour (--max-body, --head-timeout, --idle-timeout,
 * --max-conns). Spawned CLI, tests/support helpers (cli.h).
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

static void expect_bad_usage(const char *const args[], const char *what)
{
    run_t r;
    run_cli(&r, args);
    e2e_strip_valgrind_lines(r.err.buf);
    cr_assert(WIFEXITED(r.status), "%s: did not exit normally (0x%x)", what, (unsigned)r.status);
    cr_assert_eq(WEXITSTATUS(r.status), 2, "%s: exit status %d, want 2; stderr:\n%s", what,
                 WEXITSTATUS(r.status), r.err.buf);
    cr_assert(strstr(r.err.buf, "usage: appsrv") != NULL, "%s: no usage on stderr:\n%s", what,
              r.err.buf);
    cr_assert(strstr(r.err.buf, "listening on") == NULL, "%s: it started listening", what);
    cr_assert_eq(r.out.len, 0, "%s: stdout not empty: \"%s\"", what, r.out.buf);
    run_free(&r);
}

Test(cli, flag_unknown_long, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"-p", "0", "--bogus", NULL}, "--bogus");
    assert_all_released();
}

Test(cli, flag_unknown_short, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"-p", "0", "-z", NULL}, "-z");
    assert_all_released();
}

Test(cli, flag_port_out_of_range, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"--port", "70000", NULL}, "--port 70000");
    expect_bad_usage((const char *const[]){"-p", "0", "--line-port", "65536", NULL},
                     "--line-port 65536");
    assert_all_released();
}

Test(cli, flag_port_not_a_number, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"--port", "abc", NULL}, "--port abc");
    expect_bad_usage((const char *const[]){"--port", "-1", NULL}, "--port -1");
    expect_bad_usage((const char *const[]){"--port", "80x", NULL}, "--port 80x");
    expect_bad_usage((const char *const[]){"--port", "", NULL}, "--port ''");
    assert_all_released();
}

Test(cli, flag_threads_zero, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"-p", "0", "--threads", "0", NULL}, "--threads 0");
    expect_bad_usage((const char *const[]){"-p", "0", "-t", "abc", NULL}, "-t abc");
    assert_all_released();
}

Test(cli, flag_port_without_value, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"--port", NULL}, "--port (no value)");
    expect_bad_usage((const char *const[]){"-p", NULL}, "-p (no value)");
    assert_all_released();
}

Test(cli, flag_stray_argument, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"-p", "0", "extra", NULL}, "stray argument");
    assert_all_released();
}

Test(cli, flag_other_values_out_of_range, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"-p", "0", "--max-conns", "0", NULL}, "--max-conns 0");
    expect_bad_usage((const char *const[]){"-p", "0", "--idle-timeout", "0", NULL},
                     "--idle-timeout 0");
    expect_bad_usage((const char *const[]){"-p", "0", "--head-timeout", "x", NULL},
                     "--head-timeout x");
    expect_bad_usage((const char *const[]){"-p", "0", "--max-body", "-5", NULL}, "--max-body -5");
    expect_bad_usage((const char *const[]){"-p", "0", "--access-log=1", NULL}, "--access-log=1");
    assert_all_released();
}

static void expect_version(const char *flag)
{
    run_t r;
    run_cli(&r, (const char *const[]){flag, NULL});
    e2e_strip_valgrind_lines(r.err.buf);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s: status 0x%x", flag,
              (unsigned)r.status);
    cr_assert_str_eq(r.out.buf, "appsrv " APPSRV_VERSION_STRING "\n", "%s printed \"%s\"", flag,
                     r.out.buf);
    cr_assert_str_eq(r.err.buf, "", "%s wrote to stderr: \"%s\"", flag, r.err.buf);
    run_free(&r);
}

Test(cli, flag_version, .timeout = TMO)
{
    expect_version("-V");
    expect_version("--version");
    assert_all_released();
}

static void expect_help(const char *flag)
{
    static const char *const flags[] = {
        "--host",       "--port",     "--line-port",    "--threads",
        "--max-conns",  "--max-body", "--idle-timeout", "--head-timeout",
        "--access-log", "--quiet",    "--version",      "--help",
    };
    run_t r;
    run_cli(&r, (const char *const[]){flag, NULL});
    e2e_strip_valgrind_lines(r.err.buf);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s: status 0x%x", flag,
              (unsigned)r.status);
    cr_assert(strncmp(r.out.buf, "usage: appsrv", 13) == 0, "%s printed \"%s\"", flag, r.out.buf);
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        cr_assert(strstr(r.out.buf, flags[i]) != NULL, "%s: help does not mention %s", flag,
                  flags[i]);
    cr_assert_str_eq(r.err.buf, "", "%s wrote to stderr: \"%s\"", flag, r.err.buf);
    run_free(&r);
}

Test(cli, flag_help, .timeout = TMO)
{
    expect_help("-h");
    expect_help("--help");
    assert_all_released();
}

Test(cli, max_body_limits_echo, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"--max-body", "16", NULL});
    echo_check(&s, "POST", "text/plain", "0123456789abcdef", 16, "text/plain");
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(&c,
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 17\r\n\r\n"
            "0123456789abcdefg",
            &r);
    cr_assert(strncmp(r.status_line, "HTTP/1.1 413 ", 13) == 0,
              "17 bytes over --max-body 16: \"%s\"", r.status_line);
    resp_free(&r);
    conn_close(&c);
    srv_finish(&s);
}

Test(cli, head_timeout_gives_408, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"--head-timeout", "1", NULL});
    conn_t c;
    conn_open(&c, &s, s.http_port);
    conn_sends(&c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"); /* never finished */
    resp_t r;
    http_read(&c, &r, false, deadline(5000));
    cr_assert_str_eq(r.status_line, "HTTP/1.1 408 Request Timeout");
    resp_free(&r);
    conn_expect_close(&c, deadline(5000), "after 408");
    conn_close(&c);
    srv_finish(&s);
}

Test(cli, idle_timeout_closes_keepalive, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"--idle-timeout", "1", NULL});
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(&c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "OK", 2, "GET /health");
    resp_free(&r);
    int64_t t0 = now_ms();
    conn_expect_close(&c, deadline(5000), "idle keep-alive with --idle-timeout 1");
    cr_assert_geq(now_ms() - t0, 500, "closed after %lld ms, before the 1 s idle timeout",
                  (long long)(now_ms() - t0));
    conn_close(&c);
    srv_finish(&s);
}

/* README "Server behaviour and limits": connections beyond the cap are refused promptly (503 or close). */
Test(cli, max_conns_refuses_extra, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"--max-conns", "1", "-t", "1", NULL});
    conn_t a;
    conn_open(&a, &s, s.http_port);
    resp_t r;
    http_do(&a, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "OK", 2, "first connection");
    resp_free(&r);
    /* Busy (a head in progress): an idle one would make room instead. */
    const char *part = "GET /plaintext HTTP/1.1\r\n";
    cr_assert_eq(conn_try_send(&a, part, strlen(part), deadline(5000)), 0);
    e2e_pause_ms(50);
    conn_t b;
    conn_open(&b, &s, s.http_port);
    const char *get = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    int rc = conn_try_send(&b, get, strlen(get), deadline(5000));
    cr_assert(rc == 0 || rc == -EPIPE || rc == -ECONNRESET);
    /* either 503 and close, or just the close */
    int64_t dl = deadline(5000);
    ssize_t n;
    while ((n = conn_fill(&b, dl)) > 0) {
    }
    cr_assert_neq(n, -ETIMEDOUT, "connection over --max-conns 1 neither answered nor closed");
    if (e2e_conn_avail(&b) > 0)
        cr_assert(strncmp(e2e_conn_data(&b), "HTTP/1.1 503 ", 13) == 0, "over the cap: \"%.*s\"",
                  (int)(e2e_conn_avail(&b) > 100 ? 100 : e2e_conn_avail(&b)), e2e_conn_data(&b));
    conn_close(&b);
    /* the first one still works */
    http_do(&a, "Host: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "Hello, World!", 13, "first connection");
    resp_free(&r);
    conn_close(&a);
    srv_finish(&s);
}
