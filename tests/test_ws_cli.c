/* SPDX-License-Identifier: MIT */
/*
 * test_ws_cli.c - the CLI's WebSocket routes and real clients against
 * them: GET /ws echo and GET /ws/room broadcast with raw frames,
 * --max-ws-message and --ws-ping, SIGTERM with sessions open (close 1001,
 * exit 0); then interoperability with Python `websockets` (Debian
 * python3-websockets, /usr/bin/python3), the npm `ws` package
 * (tests/interop/node_modules: `make interop-deps`), Node's built-in
 * WebSocket (--experimental-websocket on Node 20) and curl when it speaks
 * ws:// (Debian 12's curl 7.88 does not: that test says so and skips).
 * A client that is not installed skips its test with the command that
 * installs it; each runs as its own process, bounded in time.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ws_client.h"

#define TMO .timeout = 60

static void echo_one(e2e_conn_t *c, unsigned op, const void *p, size_t n)
{
    cr_assert_eq(wsc_send(c, WSC_FIN | op, p, n), 0);
    unsigned got_op;
    uint8_t *m;
    size_t len;
    cr_assert_eq(wsc_read_message(c, &got_op, &m, &len, NULL, 10000), 0);
    cr_assert_eq(got_op, op);
    cr_assert_eq(len, n);
    cr_assert(n == 0 || memcmp(m, p, n) == 0);
    free(m);
}

static void stop_ok(wsc_cli_t *s)
{
    int st = wsc_cli_stop(s);
    cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "appsrv exit status 0x%x", st);
}

Test(ws_cli, echo_text_binary_large, TMO)
{
    wsc_cli_t s;
    cr_assert_eq(wsc_cli_start(&s, NULL), 0);
    e2e_conn_t c;
    cr_assert_eq(wsc_connect(&c, s.port, "/ws"), 0);
    echo_one(&c, WSC_TEXT, "hello", 5);
    echo_one(&c, WSC_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11);
    echo_one(&c, WSC_BIN, "\x00\xff", 2);
    echo_one(&c, WSC_TEXT, "", 0);
    size_t n = 1 << 20;
    uint8_t *big = malloc(n);
    cr_assert_not_null(big);
    e2e_fill_pattern(big, n, 5);
    echo_one(&c, WSC_BIN, big, n);
    free(big);
    cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_CLOSE, "\x03\xe8", 2), 0);
    cr_assert_eq(wsc_expect_close(&c, 5000), 1000);
    e2e_conn_close(&c);
    stop_ok(&s);
}

Test(ws_cli, room_broadcasts_to_every_member, TMO)
{
    wsc_cli_t s;
    cr_assert_eq(wsc_cli_start(&s, NULL), 0);
    enum { N = 4 };
    e2e_conn_t c[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(wsc_connect(&c[i], s.port, "/ws/room"), 0);
    /* Joins are processed on two workers: let them all land. */
    e2e_pause_ms(100);
    for (int i = 0; i < N; i++) {
        char m[16];
        int k = snprintf(m, sizeof(m), "from %d", i);
        cr_assert_eq(wsc_send(&c[i], WSC_FIN | WSC_TEXT, m, (size_t)k), 0);
    }
    for (int i = 0; i < N; i++) {
        int seen = 0;
        for (int j = 0; j < N; j++) {
            unsigned op;
            uint8_t *m;
            size_t len;
            cr_assert_eq(wsc_read_message(&c[i], &op, &m, &len, NULL, 5000), 0);
            cr_assert(op == WSC_TEXT && len == 6 && memcmp(m, "from ", 5) == 0);
            seen |= 1 << (m[5] - '0');
            free(m);
        }
        cr_assert_eq(seen, (1 << N) - 1, "member %d saw 0x%x", i, seen);
    }
    /* A member that left gets nothing more; the others still do. */
    e2e_conn_close(&c[0]);
    e2e_pause_ms(100);
    cr_assert_eq(wsc_send(&c[1], WSC_FIN | WSC_BIN, "\x01", 1), 0);
    for (int i = 1; i < N; i++) {
        unsigned op;
        uint8_t *m;
        size_t len;
        cr_assert_eq(wsc_read_message(&c[i], &op, &m, &len, NULL, 5000), 0);
        cr_assert(op == WSC_BIN && len == 1 && m[0] == 1);
        free(m);
        e2e_conn_close(&c[i]);
    }
    stop_ok(&s);
}

Test(ws_cli, options_message_cap_and_ping, TMO)
{
    wsc_cli_t s;
    cr_assert_eq(
        wsc_cli_start(&s, (const char *const[]){"--max-ws-message", "100", "--ws-ping", "1", NULL}),
        0);
    e2e_conn_t c;
    cr_assert_eq(wsc_connect(&c, s.port, "/ws"), 0);
    char buf[101];
    memset(buf, 'a', sizeof(buf));
    echo_one(&c, WSC_TEXT, buf, 100);
    /* A ping arrives within a second or so; answer it. */
    wsc_frame_t f;
    cr_assert_eq(wsc_read(&c, &f, 3000), 0);
    cr_assert_eq(f.b0, WSC_FIN | WSC_PING);
    cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_PONG, f.data, f.len), 0);
    wsc_frame_free(&f);
    cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_TEXT, buf, 101), 0);
    cr_assert_eq(wsc_expect_close(&c, 5000), 1009);
    e2e_conn_close(&c);
    stop_ok(&s);
}

Test(ws_cli, sigterm_closes_sessions_with_1001, TMO)
{
    wsc_cli_t s;
    cr_assert_eq(wsc_cli_start(&s, NULL), 0);
    e2e_conn_t a, b;
    cr_assert_eq(wsc_connect(&a, s.port, "/ws"), 0);
    cr_assert_eq(wsc_connect(&b, s.port, "/ws/room"), 0);
    cr_assert_eq(kill(s.pid, SIGTERM), 0);
    for (int i = 0; i < 2; i++) {
        e2e_conn_t *c = i ? &b : &a;
        wsc_frame_t f;
        cr_assert_eq(wsc_read(c, &f, 5000), 0);
        cr_assert_eq(f.close_code, 1001);
        wsc_frame_free(&f);
        cr_assert_eq(wsc_send(c, WSC_FIN | WSC_CLOSE, "\x03\xe9", 2), 0);
        cr_assert_eq(e2e_wait_closed(c, 5000), 0);
        e2e_conn_close(c);
    }
    stop_ok(&s); /* SIGTERM again: harmless; it exits 0 */
}

/* ------------------------------------------------------------ interop */

static const char *interop_dir(void)
{
    return "tests/interop";
}

static void run_client(char *const argv[], const char *who)
{
    static char out[65536];
    int st = wsc_run(argv, out, sizeof(out), 40000);
    cr_assert(st >= 0, "%s: timed out; output:\n%s", who, out);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed (status 0x%x):\n%s", who,
              (unsigned)st, out);
    cr_assert_not_null(strstr(out, "all ok"), "%s:\n%s", who, out);
    int checks = 0;
    for (const char *p = out; (p = strstr(p, "ok ")) != NULL; p += 3)
        checks += p == out || p[-1] == '\n';
    cr_log_info("%s: %d checks passed", who, checks);
}

Test(ws_interop, python_websockets, TMO)
{
    if (access("/usr/bin/python3", X_OK) != 0 ||
        system("/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1") != 0)
        cr_skip_test("python3-websockets is not installed (apt-get install python3-websockets)");
    wsc_cli_t s;
    cr_assert_eq(wsc_cli_start(&s, NULL), 0);
    char port[16], script[256];
    snprintf(port, sizeof(port), "%d", s.port);
    snprintf(script, sizeof(script), "%s/ws_client.py", interop_dir());
    run_client((char *const[]){"/usr/bin/python3", script, port, NULL}, "python websockets");
    stop_ok(&s);
}

Test(ws_interop, node_ws_package, TMO)
{
    char mod[256];
    snprintf(mod, sizeof(mod), "%s/node_modules/ws/package.json", interop_dir());
    if (system("node --version >/dev/null 2>&1") != 0 || access(mod, R_OK) != 0)
        cr_skip_test("node or the npm ws package is missing (apt-get install nodejs npm; "
                     "make interop-deps)");
    wsc_cli_t s;
    cr_assert_eq(wsc_cli_start(&s, NULL), 0);
    char port[16], script[256];
    snprintf(port, sizeof(port), "%d", s.port);
    snprintf(script, sizeof(script), "%s/ws_client.js", interop_dir());
    run_client((char *const[]){"node", script, "ws", port, NULL}, "node ws");
    stop_ok(&s);
}

Test(ws_interop, node_builtin_websocket, TMO)
{
    /* Node 22 has WebSocket; Node 20 behind --experimental-websocket. */
    static char out[256];
    char *probe[] = {"node", "--experimental-websocket", "-e",
                     "process.exit(typeof WebSocket === 'function' ? 0 : 3)", NULL};
    int st = system("node --version >/dev/null 2>&1") == 0 ? wsc_run(probe, out, sizeof(out), 10000)
                                                           : -1;
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        cr_skip_test("this node has no built-in WebSocket client (%s)", out);
    wsc_cli_t s;
    cr_assert_eq(wsc_cli_start(&s, NULL), 0);
    char port[16], script[256];
    snprintf(port, sizeof(port), "%d", s.port);
    snprintf(script, sizeof(script), "%s/ws_client.js", interop_dir());
    run_client((char *const[]){"node", "--experimental-websocket", script, "builtin", port, NULL},
               "node built-in WebSocket");
    stop_ok(&s);
}

Test(ws_interop, curl_if_it_speaks_ws, TMO)
{
    static char out[4096];
    int st = wsc_run((char *const[]){"curl", "--version", NULL}, out, sizeof(out), 10000);
    const char *protos = strstr(out, "Protocols:");
    if (st != 0 || protos == NULL || strstr(protos, " ws") == NULL)
        cr_skip_test("curl does not speak ws:// here (its Protocols line has no ws; Debian 12's "
                     "curl 7.88 is built without it)");
    /* curl 7.86+ built with WebSockets: an upgrade answered 101. */
    wsc_cli_t s;
    cr_assert_eq(wsc_cli_start(&s, NULL), 0);
    char url[64];
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", s.port);
    st = wsc_run((char *const[]){"curl", "-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}",
                                 url, NULL},
                 out, sizeof(out), 10000);
    cr_assert_not_null(strstr(out, "101"), "curl: %s", out);
    stop_ok(&s);
}
