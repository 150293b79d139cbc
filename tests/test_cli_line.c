/* SPDX-License-Identifier: MIT */
/*
 * test_cli_line.c - the appsrv CLI's line protocol end to end (appsrv(1)):
 * PING, ECHO, QUIT then close, empty (400) and unknown (404) lines, the
 * 64 KiB line limit (413 then close, also mid-send and without a newline)
 * and a long pipeline answered in order. Spawned CLI, tests/support
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

Test(cli, line_ping, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    line_check(&c, "PING\r\n", "200 OK PONG\n");
    line_check(&c, "PING\n", "200 OK PONG\n");
    conn_close(&c);
    srv_finish(&s);
}

Test(cli, line_echo, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    line_check(&c, "ECHO some text\r\n", "200 OK some text\n");
    line_check(&c, "ECHO some text\n", "200 OK some text\n");
    line_check(&c, "ECHO  two  spaces \r\n", "200 OK  two  spaces \n");
    line_check(&c, "ECHO PING\r\n", "200 OK PING\n");
    conn_close(&c);
    srv_finish(&s);
}

Test(cli, line_quit_then_close, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    line_check(&c, "PING\r\n", "200 OK PONG\n");
    line_check(&c, "QUIT\r\n", "200 OK BYE\n");
    int err = conn_expect_close(&c, deadline(5000), "after QUIT");
    cr_assert_eq(err, 0, "after QUIT: reset (%s) instead of a clean EOF", strerror(err));
    conn_close(&c);
    srv_finish(&s);
}

Test(cli, line_empty_is_400, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    line_check(&c, "\r\n", "400 Bad Request\n");
    line_check(&c, "\n", "400 Bad Request\n");
    line_check(&c, "PING\r\n", "200 OK PONG\n"); /* still open */
    conn_close(&c);
    srv_finish(&s);
}

Test(cli, line_unknown_is_404, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    line_check(&c, "FOO\r\n", "404 Not Found\n");
    line_check(&c, "PINGX\r\n", "404 Not Found\n");
    line_check(&c, "GET / HTTP/1.1\r\n", "404 Not Found\n");
    line_check(&c, "PING\r\n", "200 OK PONG\n"); /* still open */
    conn_close(&c);
    srv_finish(&s);
}

/* 64 KiB of line is fine; one byte more is 413 and the close. */
Test(cli, line_limit_boundary, .timeout = TMO)
{
    size_t max = 64 * 1024;
    srv_t s;
    srv_start(&s, NULL);
    char *line = tmalloc(max + 3);
    memcpy(line, "ECHO ", 5);
    memset(line + 5, 'x', max - 5);
    memcpy(line + max, "\r\n", 2);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    conn_send(&c, line, max + 2);
    char *got = tmalloc(max + 16);
    line_read(&c, got, max + 16, deadline(5000));
    cr_assert_eq(strlen(got), 7 + (max - 5) + 1, "a %zu-byte line: got \"%.40s...\"", max, got);
    cr_assert(strncmp(got, "200 OK xxx", 10) == 0, "got \"%.40s\"", got);
    /* now one byte over, all bytes sent (nothing left unread) */
    line[max] = 'x';
    line[max + 1] = '\n';
    conn_send(&c, line, max + 2);
    line_read(&c, got, max + 16, deadline(5000));
    cr_assert_str_eq(got, "413 Payload Too Large\n");
    conn_expect_close(&c, deadline(5000), "after 413");
    conn_close(&c);
    tfree(got);
    tfree(line);
    srv_finish(&s);
}

/* A line far over the limit: 413 arrives before the close, even though the
 * client is still sending (a close over unread bytes resets the
 * connection; the 413 must not be lost to it). */
Test(cli, line_too_long_is_413_then_close, .timeout = TMO)
{
    size_t n = 200 * 1024;
    srv_t s;
    srv_start(&s, NULL);
    char *line = tmalloc(n + 2);
    memcpy(line, "ECHO ", 5);
    memset(line + 5, 'y', n - 5);
    memcpy(line + n, "\r\n", 2);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    int rc = conn_try_send(&c, line, n + 2, deadline(5000));
    cr_assert(rc == 0 || rc == -EPIPE || rc == -ECONNRESET, "send: %s", strerror(-rc));
    char got[256];
    line_read(&c, got, sizeof(got), deadline(5000));
    cr_assert_str_eq(got, "413 Payload Too Large\n");
    conn_expect_close(&c, deadline(5000), "after 413");
    conn_close(&c);
    /* and without any newline at all */
    conn_open(&c, &s, s.line_port);
    rc = conn_try_send(&c, line, n, deadline(5000));
    cr_assert(rc == 0 || rc == -EPIPE || rc == -ECONNRESET, "send: %s", strerror(-rc));
    line_read(&c, got, sizeof(got), deadline(5000));
    cr_assert_str_eq(got, "413 Payload Too Large\n");
    conn_expect_close(&c, deadline(5000), "after 413 (no newline)");
    conn_close(&c);
    tfree(line);
    srv_finish(&s);
}

Test(cli, line_pipelined_in_order, .timeout = TMO_BIG)
{
    int count = pipeline_count();
    srv_t s;
    srv_start(&s, NULL);
    char *req = tmalloc((size_t)count * 32 + 16);
    char *want = tmalloc((size_t)count * 32 + 16);
    size_t rl = 0, wl = 0;
    for (int i = 0; i < count; i++) {
        const char *eol = i % 2 ? "\r\n" : "\n";
        switch (i % 4) {
        case 0:
            rl += (size_t)sprintf(req + rl, "PING%s", eol);
            wl += (size_t)sprintf(want + wl, "200 OK PONG\n");
            break;
        case 1:
            rl += (size_t)sprintf(req + rl, "ECHO line %d%s", i, eol);
            wl += (size_t)sprintf(want + wl, "200 OK line %d\n", i);
            break;
        case 2:
            rl += (size_t)sprintf(req + rl, "NOPE %d%s", i, eol);
            wl += (size_t)sprintf(want + wl, "404 Not Found\n");
            break;
        default:
            rl += (size_t)sprintf(req + rl, "%s", i % 8 == 3 ? eol : "ECHO x\r\n");
            wl += (size_t)sprintf(want + wl, "%s", i % 8 == 3 ? "400 Bad Request\n" : "200 OK x\n");
            break;
        }
    }
    rl += (size_t)sprintf(req + rl, "QUIT\r\n");
    wl += (size_t)sprintf(want + wl, "200 OK BYE\n");
    conn_t c;
    conn_open(&c, &s, s.line_port);
    ssize_t sent = send(c.fd, req, rl, MSG_NOSIGNAL); /* all in one write */
    cr_assert_gt(sent, 0, "send: %s", strerror(errno));
    if ((size_t)sent < rl) /* a short write still leaves them pipelined */
        conn_send(&c, req + sent, rl - (size_t)sent);
    char *got = NULL;
    size_t len = 0;
    int rc = e2e_read_until_close(&c, &got, &len, remaining(deadline(10000)));
    cr_assert_eq(rc, 0, "after %zu of %zu bytes: %s", len, wl, e2e_errname(rc));
    cr_assert_eq(len, wl, "got %zu bytes of responses, want %zu", len, wl);
    for (size_t i = 0; i < wl; i++) {
        if (got[i] != want[i]) {
            size_t ls = i;
            while (ls > 0 && want[ls - 1] != '\n')
                ls--;
            cr_assert_fail("responses out of order at byte %zu: got \"%.30s\", want \"%.30s\"", i,
                           got + ls, want + ls);
        }
    }
    free(got);
    conn_close(&c);
    tfree(req);
    tfree(want);
    srv_finish(&s);
}
