/* SPDX-License-Identifier: MIT */
/*
 * test_cli_events.c - the CLI's deferred answers read by real clients:
 * /events (server-sent events) read by curl -N, and /delay (a deferred
 * response finished by the CLI's timer thread) that must never come early,
 * read by a raw client and by curl. The CLI is spawned by tests/support's
 * process spawner; every wait is bounded.
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
#include <sys/wait.h>

#include "expect.h"
#include "routes.h"

/* The CLI under test, spawned by the toolkit (proc.h). */
typedef struct cli {
    e2e_proc_t proc;
    int port;
} cli_t;

/* Starts appsrv -p 0 -t 2 -q and reads its listening line. */
static void cli_start(cli_t *c)
{
    static const char *const args[] = {"-p", "0", "-t", "2", "-q", NULL};
    int rc =
        e2e_appsrv_start(&c->proc, args, 0, "127.0.0.1", &c->port, NULL, 5000 * e2e_slow_factor());
    cr_assert_eq(rc, 0, "%s: no listening line (%s); stderr: %s", e2e_bin_path(), e2e_errname(rc),
                 c->proc.err.buf != NULL ? c->proc.err.buf : "");
}

/* SIGTERM, then a bounded wait: it must exit 0. */
static void cli_stop(cli_t *c)
{
    int rc = e2e_proc_stop(&c->proc, SIGTERM, 15000 * (e2e_valgrind() ? 3 : 1));
    int st = c->proc.status;
    char *err = strdup(c->proc.err.buf != NULL ? c->proc.err.buf : "");
    e2e_proc_free(&c->proc);
    cr_assert_eq(rc, 0, "appsrv did not exit after SIGTERM; stderr: %s", err);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "appsrv exit status 0x%x; stderr: %s", st,
              err);
    free(err);
}

/* Runs argv (PATH search) to completion, bounded, capturing stdout into
 * *out (malloc'd). Returns the wait status, or -1 when it overran (then it
 * is killed). */
static int run_capture(char *const argv[], char **out, size_t *out_len, int timeout_ms)
{
    e2e_proc_t p;
    int rc = e2e_proc_spawn(&p, argv, E2E_PROC_OUT | E2E_PROC_SEARCH);
    cr_assert_eq(rc, 0, "spawn %s: %s", argv[0], e2e_errname(rc));
    rc = e2e_proc_wait(&p, timeout_ms);
    int st = rc == 0 ? p.status : -1;
    *out = strdup(p.out.buf != NULL ? p.out.buf : "");
    *out_len = p.out.len;
    e2e_proc_free(&p);
    cr_assert_not_null(*out);
    return st;
}

/* SSE as a browser's EventSource reads it: fields per event, blank line
 * ends the event, ':' lines are comments. */
typedef struct sse_parsed {
    int n;
    char event[16][32], id[16][32], data[16][64];
} sse_parsed_t;

static bool sse_parse(const char *s, sse_parsed_t *out)
{
    memset(out, 0, sizeof(*out));
    char ev[32] = "", id[32] = "", data[64] = "";
    bool any = false;
    while (*s != '\0') {
        const char *eol = strchr(s, '\n');
        if (eol == NULL)
            return false; /* an unfinished line */
        size_t ll = (size_t)(eol - s);
        if (ll > 0 && s[ll - 1] == '\r')
            ll--;
        if (ll == 0) {
            if (any) {
                if (out->n == 16)
                    return false;
                strcpy(out->event[out->n], ev);
                strcpy(out->id[out->n], id);
                strcpy(out->data[out->n], data);
                out->n++;
            }
            ev[0] = id[0] = data[0] = '\0';
            any = false;
        } else if (s[0] != ':') {
            const char *colon = memchr(s, ':', ll);
            size_t nl = colon ? (size_t)(colon - s) : ll;
            const char *v = colon ? colon + 1 : s + ll;
            if (v < s + ll && *v == ' ')
                v++;
            size_t vl = (size_t)(s + ll - v);
            char *dst = NULL;
            if (nl == 5 && memcmp(s, "event", 5) == 0)
                dst = ev;
            else if (nl == 2 && memcmp(s, "id", 2) == 0)
                dst = id;
            else if (nl == 4 && memcmp(s, "data", 4) == 0)
                dst = data;
            if (dst != NULL) {
                if (vl > 31)
                    vl = 31;
                memcpy(dst, v, vl);
                dst[vl] = '\0';
                any = true;
            }
        }
        s = eol + 1;
    }
    return !any; /* no event left without its blank line */
}

Test(e2e_deferred, cli_sse_events_read_by_curl, .timeout = 120)
{
    int fds0 = e2e_fd_count();
    cli_t cli = {0};
    cli_start(&cli);
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/events?n=5", cli.port);
    char *argv[] = {"curl", "-sN", "--max-time", "10", url, NULL};
    char *out;
    size_t len;
    int64_t t0 = e2e_now_ms();
    int st = run_capture(argv, &out, &len, 30000 * e2e_slow_factor());
    int64_t took = e2e_now_ms() - t0;
    sse_parsed_t ev;
    bool ok = sse_parse(out, &ev);
    char *copy = strdup(out);
    free(out);
    cli_stop(&cli);
    cr_assert_neq(st, -1, "curl did not finish");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "curl exit status 0x%x (%d); output: %s", st,
              WIFEXITED(st) ? WEXITSTATUS(st) : -1, copy);
    cr_assert(ok, "not a well-formed event stream: '%s'", copy);
    cr_assert_eq(ev.n, 5, "%d events in '%s'", ev.n, copy);
    for (int i = 0; i < 5; i++) {
        char want_id[16], want_data[32];
        snprintf(want_id, sizeof(want_id), "%d", i + 1);
        snprintf(want_data, sizeof(want_data), "tick %d", i + 1);
        cr_assert_str_eq(ev.event[i], "tick", "event %d", i);
        cr_assert_str_eq(ev.id[i], want_id, "event %d", i);
        cr_assert_str_eq(ev.data[i], want_data, "event %d", i);
    }
    /* one event per 100 ms: the stream took at least 400 ms */
    cr_assert_geq(took, 400, "5 events in %lld ms", (long long)took);
    free(copy);
    expect_fds(fds0);
}

/* The CLI's timer thread must never answer /delay early: with a
 * millisecond clock it fired up to 1 ms before the delay had passed. */
Test(e2e_deferred, cli_delay_never_early, .timeout = 120)
{
    int fds0 = e2e_fd_count();
    cli_t cli = {0};
    cli_start(&cli);
    e2e_conn_t c;
    open_conn(&c, cli.port);
    int n = e2e_valgrind() ? 5 : 30;
    for (int i = 0; i < n; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        send_str(&c, "GET /delay?ms=20 HTTP/1.1\r\nHost: x\r\n\r\n");
        e2e_resp_t r;
        read_resp(&c, &r, 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        int64_t us = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
        check_status(&r, 200, NULL);
        check_body(&r, "OK");
        e2e_resp_free(&r);
        cr_assert_geq(us, 20000, "request %d answered after %lld us, before the 20 ms delay", i,
                      (long long)us);
    }
    e2e_conn_close(&c);
    cli_stop(&cli);
    expect_fds(fds0);
}

Test(e2e_deferred, cli_delay_read_by_curl, .timeout = 120)
{
    int fds0 = e2e_fd_count();
    cli_t cli = {0};
    cli_start(&cli);
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/delay?ms=200", cli.port);
    char *argv[] = {"curl", "-s", "--max-time", "10", "-w", " %{http_code} %{time_total}",
                    url,    NULL};
    char *out;
    size_t len;
    int st = run_capture(argv, &out, &len, 30000 * e2e_slow_factor());
    char *copy = strdup(out);
    free(out);
    cli_stop(&cli);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "curl status 0x%x: %s", st, copy);
    char body[16] = "";
    int code = 0;
    double secs = 0;
    cr_assert_eq(sscanf(copy, "%15s %d %lf", body, &code, &secs), 3, "curl output '%s'", copy);
    cr_assert_str_eq(body, "OK");
    cr_assert_eq(code, 200);
    cr_assert_geq(secs, 0.2, "answered after %.3f s, before the 200 ms delay", secs);
    free(copy);
    expect_fds(fds0);
}

/* Issue 13 item 4: a long /events stream ends cleanly and at once when
 * the CLI is stopped (stop notification), instead of holding the drain
 * for its whole timeout and being cut without its last chunk. */
Test(e2e_deferred, issue_13_cli_events_end_at_once_on_sigterm, .timeout = 120)
{
    int fds0 = e2e_fd_count();
    cli_t c;
    cli_start(&c);
    e2e_conn_t conn;
    open_conn(&conn, c.port);
    send_str(&conn, "GET /events?n=1000 HTTP/1.1\r\nHost: x\r\n\r\n");
    e2e_resp_t head;
    int rc = e2e_read_head(&conn, &head, 5000 * e2e_slow_factor());
    cr_assert_eq(rc, 0, "no stream head: %s", e2e_errname(rc));
    cr_assert_eq(head.status, 200);
    e2e_resp_free(&head);
    /* Two events have come: the stream is running. */
    int64_t dl = e2e_now_ms() + 5000 * e2e_slow_factor();
    while (e2e_now_ms() < dl && (e2e_conn_avail(&conn) == 0 ||
                                 strstr(e2e_conn_data(&conn), "data: tick 2") == NULL))
        if (e2e_conn_fill(&conn, dl) <= 0)
            break;
    cr_assert(e2e_conn_avail(&conn) > 0 && strstr(e2e_conn_data(&conn), "data: tick 2") != NULL,
              "no second event; got '%.200s'", e2e_conn_avail(&conn) ? e2e_conn_data(&conn) : "");
    int64_t t0 = e2e_now_ms();
    cr_assert_eq(kill(c.proc.pid, SIGTERM), 0);
    /* The stream ends with its last chunk, then the connection closes. */
    char *rest = NULL;
    size_t len = 0;
    rc = e2e_read_until_close(&conn, &rest, &len, 8000 * e2e_slow_factor());
    int64_t took = e2e_now_ms() - t0;
    cr_assert_eq(rc, 0, "stream still open %lld ms after SIGTERM; got '%.200s'", (long long)took,
                 rest != NULL ? rest : "");
    cr_assert(len >= 5 && memcmp(rest + len - 5, "0\r\n\r\n", 5) == 0,
              "stream cut without its last chunk: ends '%.40s'",
              rest != NULL && len > 40 ? rest + len - 40 : (rest ? rest : ""));
    cr_assert(took < 3000 * e2e_slow_factor(), "stream ended %lld ms after SIGTERM "
              "(the drain timeout is 10 s)", (long long)took);
    free(rest);
    e2e_conn_close(&conn);
    cli_stop(&c);
    expect_fds(fds0);
}
