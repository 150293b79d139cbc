/* SPDX-License-Identifier: MIT */
/*
 * test_e2e_obs_metrics.c - metrics and operational events end to end
 * (issue 19): a known sequence of requests (routes with captures, 404,
 * 405, 400, a head timeout, the line protocol, a held response, a
 * refusal at the cap), then GET /metrics (appsrv_route_metrics). The
 * exposition is validated by `promtool check metrics` (Debian's
 * prometheus package) and by the official Python client's parser
 * (tests/scripts/check_metrics.py), which also checks the counted values
 * against the sequence. The on_event hook: names, levels, statuses, and
 * the per-second rate limit with its suppressed count; EMFILE at accept.
 * Bounded by
 * .timeout; a missing promtool or prometheus_client skips with a message.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <appsrv.h>

#include "e2e.h"
#include "obs_util.h"

#define TMO 60

/* ---------------------------------------------------------------- events */

#define MAX_EV 256
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char name[32], detail[64];
    int level, status, err;
    unsigned suppressed;
} g_ev[MAX_EV];
static int g_nev;

static void on_event(const appsrv_event_t *ev, void *user)
{
    (void)user;
    pthread_mutex_lock(&g_lock);
    if (g_nev < MAX_EV) {
        snprintf(g_ev[g_nev].name, sizeof(g_ev[0].name), "%s", ev->name);
        snprintf(g_ev[g_nev].detail, sizeof(g_ev[0].detail), "%s", ev->detail);
        g_ev[g_nev].level = ev->level;
        g_ev[g_nev].status = ev->status;
        g_ev[g_nev].err = ev->err;
        g_ev[g_nev].suppressed = ev->suppressed;
    }
    g_nev++;
    pthread_mutex_unlock(&g_lock);
}

static int count_events(const char *name, const char *detail, int status)
{
    int n = 0;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_nev && i < MAX_EV; i++)
        if (strcmp(g_ev[i].name, name) == 0 &&
            (detail == NULL || strcmp(g_ev[i].detail, detail) == 0) &&
            (status == 0 || g_ev[i].status == status))
            n++;
    pthread_mutex_unlock(&g_lock);
    return n;
}

/* ---------------------------------------------------------------- routes */

static int h_ok(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "ok", 2);
}

static appsrv_res_t *_Atomic g_held;

static int h_hold(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    atomic_store(&g_held, res);
    return APPSRV_LATER;
}

#define WEIRD "/we\"ird\\path"

static const e2e_route_t routes[] = {
    {"GET", "/hello", h_ok, NULL, false}, {"GET", "/u/:id", h_ok, NULL, false},
    {"GET", WEIRD, h_ok, NULL, false},    {"GET", "/hold", h_hold, NULL, false},
    {NULL, "PING", h_ok, NULL, true},
};

static void *server_thread(void *arg)
{
    e2e_server_t *s = arg;
    s->run_rc = appsrv_server_run(s->srv);
    atomic_store(&s->run_returned, true);
    return NULL;
}

/* head_timeout_ms: short where a test wants a 408, long where idle
 * connections must stay open however slow the machine is. */
static void start(e2e_server_t *s, int max_conns, int head_timeout_ms)
{
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.threads = 2;
    cfg.head_timeout_ms = head_timeout_ms;
    cfg.on_event = on_event;
    if (max_conns > 0)
        cfg.max_conns = max_conns;
    pthread_mutex_lock(&g_lock);
    g_nev = 0;
    pthread_mutex_unlock(&g_lock);
    /* e2e_server_start() runs at once; metrics must be mounted before:
     * routes first, then the metrics route, then listen and run. */
    appsrv_server_t *srv;
    cr_assert_eq(appsrv_server_new(&srv, &cfg), 0);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (routes[i].line)
            cr_assert_eq(appsrv_route_line(srv, routes[i].pattern, routes[i].handler, NULL), 0);
        else
            cr_assert_eq(
                appsrv_route(srv, routes[i].method, routes[i].pattern, routes[i].handler, NULL), 0);
    }
    cr_assert_eq(appsrv_route_metrics(srv, "/metrics"), 0);
    cr_assert_eq(appsrv_route_metrics(srv, "/metrics"), -EEXIST);
    memset(s, 0, sizeof(*s));
    s->srv = srv;
    s->port = appsrv_listen_http(srv, "127.0.0.1", 0);
    s->line_port = appsrv_listen_line(srv, "127.0.0.1", 0);
    cr_assert(s->port > 0 && s->line_port > 0);
    atomic_init(&s->run_returned, false);
    cr_assert_eq(pthread_create(&s->thread, NULL, server_thread, s), 0);
    s->thread_started = true;
}

/* One request on its own connection; returns the status. */
static int ask(int port, const char *raw)
{
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, port), 0);
    cr_assert_eq(e2e_sends(&c, raw), 0);
    e2e_resp_t r;
    int rc = e2e_read_response(&c, &r, 5000, 0);
    cr_assert_eq(rc, 0, "waited 5 s for the answer to %.30s: %d", raw, rc);
    int st = r.status;
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    return st;
}

static char *scrape(int port, const char *path)
{
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, port), 0);
    cr_assert_eq(e2e_sends(&c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    e2e_resp_t r;
    cr_assert_eq(e2e_read_response(&c, &r, 5000, 0), 0, "waited 5 s for /metrics");
    cr_assert_eq(r.status, 200);
    const char *ct = e2e_resp_header(&r, "Content-Type");
    cr_assert(ct != NULL && strncmp(ct, "text/plain; version=0.0.4", 25) == 0, "Content-Type %s",
              ct ? ct : "(none)");
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL);
    fwrite(r.body, 1, r.body_len, f);
    fclose(f);
    char *text = strdup(r.body);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    return text;
}

/* promtool check metrics < file; skipped (false) without promtool. */
static bool promtool(const char *path)
{
    if (!obs_have("/usr/bin/promtool"))
        return false;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < %s", path);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *out;
    int st = obs_run(argv, false, &out, 20000);
    cr_assert_eq(st, 0, "promtool check metrics: exit %d:\n%s", st, out);
    free(out);
    return true;
}

/* check_metrics.py FILE EXPECT...; skipped (false) without the client. */
static bool python_check(const char *path, const char *const *expect, size_t n)
{
    char *probe[] = {"/usr/bin/python3", "-c", "import prometheus_client", NULL};
    char *out;
    int st = obs_run(probe, false, &out, 20000);
    free(out);
    if (st != 0)
        return false;
    char *argv[64] = {"/usr/bin/python3", "tests/scripts/check_metrics.py", (char *)path};
    size_t k = 3;
    for (size_t i = 0; i < n && k < 63; i++)
        argv[k++] = (char *)expect[i];
    argv[k] = NULL;
    st = obs_run(argv, false, &out, 20000);
    cr_assert_eq(st, 0, "check_metrics.py: exit %d:\n%s", st, out);
    free(out);
    return true;
}

Test(obs_metrics, counts_a_known_sequence, .timeout = TMO)
{
    e2e_server_t s;
    start(&s, 0, 300);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ask(s.port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    cr_assert_eq(ask(s.port, "GET /u/1 HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    cr_assert_eq(ask(s.port, "GET /u/22 HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    cr_assert_eq(ask(s.port, "GET " WEIRD " HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    cr_assert_eq(ask(s.port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
    cr_assert_eq(ask(s.port, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"), 405);
    cr_assert_eq(ask(s.port, "GET / HTTP/1.1\r\nBad Header\r\n\r\n"), 400);
    cr_assert_eq(ask(s.port, "G\x01T / HTTP/1.1\r\n\r\n"), 400);
    /* A head that never completes: 408 after head_timeout_ms. */
    cr_assert_eq(ask(s.port, "GET /hello HTTP/1.1\r\n"), 408);
    /* The line protocol. */
    e2e_conn_t l;
    cr_assert_eq(e2e_conn_open(&l, s.line_port), 0);
    cr_assert_eq(e2e_sends(&l, "PING\nPING\nBOGUS\n"), 0);
    char line[64];
    for (int i = 0; i < 3; i++)
        cr_assert_gt(e2e_read_line(&l, line, sizeof(line), 5000), 0, "waited 5 s for line %d", i);
    e2e_conn_close(&l);
    /* A held response: in flight while scraped. */
    atomic_store(&g_held, NULL);
    e2e_conn_t h;
    cr_assert_eq(e2e_conn_open(&h, s.port), 0);
    cr_assert_eq(e2e_sends(&h, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    int64_t end = e2e_now_ms() + 5000;
    while (atomic_load(&g_held) == NULL && e2e_now_ms() < end)
        e2e_pause_ms(2);
    cr_assert(atomic_load(&g_held) != NULL, "waited 5 s for the handler to hold");
    /* The loop takes its hold just after the handler returns: wait (in
     * process, no request) until the gauge shows it. */
    cr_assert(obs_wait_metric(s.srv, "appsrv_deferred_responses 1", 5000),
              "waited 5 s for appsrv_deferred_responses 1");

    char path[64];
    obs_tmpfile(path, sizeof(path), "metrics");
    char *text = scrape(s.port, path);
    static const char *const expect[] = {
        "appsrv_requests_total{proto=\"http\",method=\"GET\",route=\"/hello\",code=\"2xx\"}=3",
        "appsrv_requests_total{proto=\"http\",method=\"GET\",route=\"/u/:id\",code=\"2xx\"}=2",
        /* One entry split over two lines (parenthesized for clang's
         * -Wstring-concatenation). */
        ("appsrv_requests_total{proto=\"http\",method=\"GET\",route=\"/we\\\"ird\\\\path\","
         "code=\"2xx\"}=1"),
        /* 404, 405, two 400s and the 408: no route. */
        "appsrv_requests_total{proto=\"http\",method=\"*\",route=\"(none)\",code=\"4xx\"}=5",
        "appsrv_requests_total{proto=\"line\",method=\"\",route=\"PING\",code=\"2xx\"}=2",
        "appsrv_requests_total{proto=\"line\",method=\"\",route=\"(none)\",code=\"4xx\"}=1",
        "appsrv_request_duration_seconds_count=14",
        "appsrv_protocol_errors_total{status=\"400\"}=2",
        "appsrv_timeouts_total{kind=\"head\"}=1",
        "appsrv_timeouts_total{kind=\"response\"}=0",
        "appsrv_connections_accepted_total{proto=\"http\"}=13",
        "appsrv_connections_accepted_total{proto=\"line\"}=1",
        "appsrv_open_connections{proto=\"http\"}>=2",
        "appsrv_deferred_responses=1",
        "appsrv_connections_refused_total=0",
        "appsrv_received_bytes_total>=300",
        "appsrv_sent_bytes_total>=1000",
        "appsrv_tls_handshake_failures_total=0",
        "appsrv_websocket_messages_total{direction=\"in\"}=0",
        "process_cpu_seconds_total>=0",
        "process_resident_memory_bytes>=1000000",
        "process_open_fds>=5",
        "process_start_time_seconds>=1700000000",
    };
    bool py = python_check(path, expect, sizeof(expect) / sizeof(expect[0]));
    bool pt = promtool(path);
    /* The label escaping as written, whatever the parsers say. */
    cr_assert(strstr(text, "route=\"/we\\\"ird\\\\path\"") != NULL, "escaped label:\n%s", text);
    free(text);

    /* Finish the held response: no longer in flight. */
    cr_assert_eq(appsrv_res_send(atomic_load(&g_held)), 0);
    e2e_resp_t r;
    cr_assert_eq(e2e_read_response(&h, &r, 5000, 0), 0, "waited 5 s for the held answer");
    e2e_resp_free(&r);
    e2e_conn_close(&h);
    text = scrape(s.port, path);
    static const char *const after[] = {"appsrv_deferred_responses=0",
                                        "appsrv_request_duration_seconds_count=16"};
    python_check(path, after, 2);
    cr_assert(strstr(text, "\nappsrv_deferred_responses 0\n") != NULL, "%s", text);
    free(text);

    /* Events: two protocol errors (400), one head timeout; no more. */
    cr_assert_eq(count_events("protocol_error", "Bad Request", 400), 2);
    cr_assert_eq(count_events("timeout", "head", 0), 1);
    cr_assert_eq(count_events("conn_refused", NULL, 0), 0);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0, "waited 10 s for the stop");
    unlink(path);
    if (!py || !pt)
        cr_skip_test("%s%s", py ? "" : "python3-prometheus-client missing: parser not run; ",
                     pt ? "" : "promtool missing (apt-get install prometheus): not run");
}

Test(obs_metrics, refusals_counted_and_reported, .timeout = TMO)
{
    e2e_server_t s;
    start(&s, 1, 30000);
    /* One busy connection holds the cap (a partial head: not evictable). */
    e2e_conn_t busy;
    cr_assert_eq(e2e_conn_open(&busy, s.port), 0);
    cr_assert_eq(e2e_sends(&busy, "GET /hello HTTP/1.1\r\n"), 0);
    cr_assert(obs_wait_metric(s.srv, "appsrv_connections_accepted_total{proto=\"http\"} 1", 5000),
              "waited 5 s for the first connection to be accepted");
    for (int i = 0; i < 3; i++) {
        e2e_conn_t c;
        cr_assert_eq(e2e_conn_open(&c, s.port), 0);
        e2e_resp_t r;
        cr_assert_eq(e2e_read_response(&c, &r, 5000, 0), 0, "waited 5 s for refusal %d", i);
        cr_assert_eq(r.status, 503);
        e2e_resp_free(&r);
        e2e_conn_close(&c);
    }
    e2e_conn_close(&busy);
    int nref = count_events("conn_refused", NULL, 503);
    cr_assert_eq(nref, 3, "%d conn_refused events after 3 refusals", nref);
    char *text;
    cr_assert_gt(appsrv_metrics_format(s.srv, &text), 0);
    cr_assert(strstr(text, "\nappsrv_connections_refused_total 3\n") != NULL, "%s", text);
    free(text);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0, "waited 10 s for the stop");
}

/* At most 10 events per name per second per worker; what was dropped is
 * reported in the next one delivered. */
Test(obs_metrics, events_are_rate_limited, .timeout = TMO)
{
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.threads = 1;
    cfg.on_event = on_event;
    pthread_mutex_lock(&g_lock);
    g_nev = 0;
    pthread_mutex_unlock(&g_lock);
    e2e_server_t s;
    cr_assert_eq(e2e_server_start(&s, &cfg, routes, 1, E2E_HTTP), 0);
    int64_t t0 = e2e_now_ms();
    for (int i = 0; i < 25; i++)
        cr_assert_eq(ask(s.port, "G\x01T / HTTP/1.1\r\n\r\n"), 400);
    int64_t t1 = e2e_now_ms();
    pthread_mutex_lock(&g_lock);
    int burst = g_nev;
    pthread_mutex_unlock(&g_lock);
    int64_t secs = t1 / 1000 - t0 / 1000 + 1; /* seconds the burst touched */
    cr_assert_leq(burst, 10 * secs, "%d events in %lld s", burst, (long long)secs);
    cr_assert_geq(burst, 10);
    /* A new second: the next one goes out and counts what was dropped. */
    e2e_pause_ms((int)(1000 - e2e_now_ms() % 1000) + 50);
    cr_assert_eq(ask(s.port, "G\x01T / HTTP/1.1\r\n\r\n"), 400);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0, "waited 10 s for the stop");
    unsigned total = 0;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_nev; i++) {
        cr_assert_str_eq(g_ev[i].name, "protocol_error");
        cr_assert_eq(g_ev[i].level, APPSRV_LEVEL_INFO);
        total += 1 + g_ev[i].suppressed;
    }
    pthread_mutex_unlock(&g_lock);
    cr_assert_eq(total, 26, "delivered + suppressed = %u, want 26", total);
}

/* Highest open fd of this process, or -1. */
static int max_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int m = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && atoi(e->d_name) > m)
            m = atoi(e->d_name);
    closedir(d);
    return m;
}

/* Out of descriptors: accept fails with EMFILE, the listener pauses, the
 * hook hears "accept_error" with the errno, the counter moves, and the
 * server serves again once descriptors are back. (Criterion runs each
 * test in its own process, so the lowered limit stays in here.) */
Test(obs_metrics, emfile_is_reported_and_survived, .timeout = TMO)
{
    if (e2e_valgrind())
        cr_skip_test("valgrind keeps descriptors of its own above any limit set here");
    e2e_server_t s;
    start(&s, 0, 30000);
    enum { N = 8 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fds[i], 0);
    }
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)max_fd() + 1; /* no descriptor left above */
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int64_t end = e2e_now_ms() + 5000;
    int connected = 0;
    while (count_events("accept_error", NULL, 0) == 0 && e2e_now_ms() < end) {
        if (connected < N) {
            cr_assert_eq(connect(fds[connected], (struct sockaddr *)&a, sizeof(a)), 0);
            connected++;
        }
        e2e_pause_ms(20);
    }
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    cr_assert_geq(count_events("accept_error", "EMFILE", 0), 1,
                  "waited 5 s (%d connections) for an accept_error event", connected);
    pthread_mutex_lock(&g_lock);
    int k = 0;
    while (k < g_nev && k < MAX_EV && strcmp(g_ev[k].name, "accept_error") != 0)
        k++;
    cr_assert(k < g_nev && k < MAX_EV);
    cr_assert_eq(g_ev[k].err, -EMFILE);
    cr_assert_eq(g_ev[k].level, APPSRV_LEVEL_ERROR);
    pthread_mutex_unlock(&g_lock);
    /* Descriptors are back: every connection is served after the pause. */
    for (int i = 0; i < connected; i++) {
        cr_assert_eq(appsrv_send_all(fds[i], "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 33, 2000),
                     33);
        char buf[256];
        ssize_t n = appsrv_recv(fds[i], buf, sizeof(buf) - 1, 5000);
        cr_assert_gt(n, 12, "waited 5 s for an answer on connection %d: %zd", i, n);
        buf[n] = '\0';
        cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0, "%s", buf);
        close(fds[i]);
    }
    for (int i = connected; i < N; i++)
        close(fds[i]);
    char *text;
    cr_assert_gt(appsrv_metrics_format(s.srv, &text), 0);
    cr_assert(strstr(text, "\nappsrv_accept_errors_total 0\n") == NULL, "%s", text);
    free(text);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0, "waited 10 s for the stop");
}
