/* SPDX-License-Identifier: MIT */
/*
 * test_e2e_obs_log.c - the access log end to end (issue 19): an in-process
 * server with the library's file logger (appsrv_access_log_file) answers
 * ordinary, error (400, 404, 413), aborted, streamed, pipelined and
 * hostile requests (quotes, backslashes, control and invalid UTF-8 bytes
 * in the target and header fields); after a graceful stop the file is
 * parsed by real parsers: a Python regular expression of Apache's
 * combined format (tests/scripts/check_access_log.py), and for JSON lines
 * Python's json module, `python3 -m json.tool --json-lines` and Node's
 * JSON.parse (tests/scripts/json_lines.js). Every field that matters is
 * compared byte for byte through hex. Each test is bounded by .timeout.
 */
#include <criterion/criterion.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <appsrv.h>

#include "e2e.h"
#include "obs_util.h"

#define TMO 60

/* ---------------------------------------------------------------- routes */

static int h_hello(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "hello", 5);
}

static int h_stream(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    if (appsrv_res_stream(res) < 0)
        return -1;
    appsrv_res_write(res, "a", 1);
    appsrv_res_write(res, "bb", 2);
    appsrv_res_end(res);
    return APPSRV_LATER;
}

static atomic_int g_held;

static void hold_cancel(appsrv_res_t *res, void *ud)
{
    (void)ud;
    appsrv_res_send(res); /* released all the same: APPSRV_ECANCELED */
}

static int h_hold(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    appsrv_res_on_cancel(res, hold_cancel, NULL);
    atomic_fetch_add(&g_held, 1);
    return APPSRV_LATER;
}

static int h_echo(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t b = appsrv_req_body(req);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body_ref(res, b.ptr, b.len, NULL, NULL);
}

static const e2e_route_t routes[] = {
    {"GET", "/hello", h_hello, NULL, false},
    {"GET", "/stream", h_stream, NULL, false},
    {"GET", "/hold", h_hold, NULL, false},
    {"POST", "/echo", h_echo, NULL, false},
};

/* ------------------------------------------------------------- scenario */

/* One expected log line: status, the method, target, referer and
 * user-agent bytes (NULL: not checked; "" : absent), version, body. */
typedef struct want {
    int status;
    const char *method, *target;
    size_t target_len;
    const char *version; /* "HTTP/1.1", or NULL: not checked */
    const char *body;    /* "-" or a decimal count; NULL: not checked */
    const char *referer, *ua;
    const char *ua_json; /* the user agent as JSON carries it (U+FFFD) */
    bool aborted;
} want_t;

#define UA_HOSTILE      "Mozilla \"q\" \\b\t\xc3\xa9\xff\xfe end"
#define UA_HOSTILE_JSON "Mozilla \"q\" \\b\t\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd end"
#define REF_HOSTILE     "http://r/?a=\"b\"&c=\\"
#define TARGET_QUOTES   "/q?x=\"a\\b\"&y='|{}^`"

static const want_t wants[] = {
    {200, "GET", "/hello", 6, "HTTP/1.1", "5", REF_HOSTILE, UA_HOSTILE, UA_HOSTILE_JSON, false},
    {404, "GET", "/missing", 8, "HTTP/1.1", "9", "", "", "", false},
    {400, NULL, NULL, 0, NULL, NULL, "", "", "", false},            /* bad version */
    {413, "POST", "/echo", 5, "HTTP/1.1", NULL, "", "", "", false}, /* over max_body */
    {200, "GET", "/stream", 7, "HTTP/1.1", "3", "", "", "", false}, /* chunked */
    {499, "GET", "/hold", 5, "HTTP/1.1", "-", "", "", "", true},    /* client left */
    {404, "GET", TARGET_QUOTES, sizeof(TARGET_QUOTES) - 1, "HTTP/1.1", "9", "", "", "", false},
    {400, NULL, NULL, 0, NULL, NULL, "", "", "", false},           /* \xff in target */
    {400, NULL, NULL, 0, NULL, NULL, "", "", "", false},           /* \x01 in a field */
    {200, "POST", "/echo", 5, "HTTP/1.0", "3", "", "", "", false}, /* HTTP/1.0 */
    {200, "GET", "/hello", 6, "HTTP/1.1", "5", "", "pipelined-1", "pipelined-1", false},
    {200, "GET", "/hello", 6, "HTTP/1.1", "5", "", "pipelined-2", "pipelined-2", false},
};
#define NWANT (sizeof(wants) / sizeof(wants[0]))

/* Sends raw on a fresh connection and reads n responses (or the close). */
static void exchange(int port, const char *raw, size_t len, int n, int want_status)
{
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, port), 0, "connect");
    cr_assert_eq(e2e_send(&c, raw, len), 0, "send");
    for (int i = 0; i < n; i++) {
        e2e_resp_t r;
        int rc = e2e_read_response(&c, &r, 5000, 0);
        cr_assert_eq(rc, 0, "waited 5 s for response %d to %.40s: %d", i, raw, rc);
        cr_assert_eq(r.status, want_status, "%.40s: status %d, want %d", raw, r.status,
                     want_status);
        e2e_resp_free(&r);
    }
    e2e_conn_close(&c);
}

static void *server_thread(void *arg)
{
    e2e_server_t *s = arg;
    s->run_rc = appsrv_server_run(s->srv);
    atomic_store(&s->run_returned, true);
    return NULL;
}

/* Runs srv (routes and log already set up) on a thread, as
 * e2e_server_start() does; e2e_server_stop() ends it. */
static void run_own(e2e_server_t *s, appsrv_server_t *srv)
{
    int port = appsrv_listen_http(srv, "127.0.0.1", 0);
    cr_assert_gt(port, 0);
    memset(s, 0, sizeof(*s));
    s->srv = srv;
    s->port = port;
    atomic_init(&s->run_returned, false);
    cr_assert_eq(pthread_create(&s->thread, NULL, server_thread, s), 0);
    s->thread_started = true;
}

static void exchange_s(int port, const char *raw, int n, int want_status)
{
    exchange(port, raw, strlen(raw), n, want_status);
}

static void run_scenario(appsrv_log_format_t format, const char *path)
{
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.threads = 2;
    cfg.max_body = 1024;
    cfg.request_ids = true;
    e2e_server_t s;
    appsrv_server_t *srv;
    /* e2e_server_start() runs at once: set the log up on a server of our
     * own first, the same way (new, routes, log, listen, run). */
    cr_assert_eq(appsrv_server_new(&srv, &cfg), 0);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        cr_assert_eq(
            appsrv_route(srv, routes[i].method, routes[i].pattern, routes[i].handler, NULL), 0);
    cr_assert_eq(appsrv_access_log_file(srv, path, format), 0);
    cr_assert_eq(appsrv_access_log_file(srv, path, format), APPSRV_ESTATE, "a second log");
    run_own(&s, srv);
    int port = s.port;

    static const char hello[] = "GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: " UA_HOSTILE
                                "\r\nReferer: " REF_HOSTILE "\r\n\r\n";
    exchange(port, hello, sizeof(hello) - 1, 1, 200);
    exchange_s(port, "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n", 1, 404);
    exchange_s(port, "GET /a HTTP/9.x\r\nHost: x\r\n\r\n", 1, 400);
    static const char big[] = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n";
    exchange(port, big, sizeof(big) - 1, 1, 413);
    exchange_s(port, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n", 1, 200);

    /* Aborted: the client leaves while the host holds the response. */
    atomic_store(&g_held, 0);
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, port), 0);
    cr_assert_eq(e2e_sends(&c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    cr_assert_eq(e2e_wait_atomic(&g_held, 1, 5000), 1, "waited 5 s for the handler to hold");
    e2e_conn_close(&c);

    static const char quotes[] = "GET " TARGET_QUOTES " HTTP/1.1\r\nHost: x\r\n\r\n";
    exchange(port, quotes, sizeof(quotes) - 1, 1, 404);
    exchange_s(port, "GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", 1, 400);
    static const char ctl[] = "GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x01z\r\n\r\n";
    exchange(port, ctl, sizeof(ctl) - 1, 1, 400);
    static const char v10[] = "POST /echo HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc";
    exchange(port, v10, sizeof(v10) - 1, 1, 200);
    static const char pipe2[] = "GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: pipelined-1\r\n\r\n"
                                "GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: pipelined-2\r\n\r\n";
    exchange(port, pipe2, sizeof(pipe2) - 1, 2, 200);

    /* The aborted request is logged when the loop sees the close: a stop
     * drains first, and every line is written before run returns. */
    int rc = e2e_server_stop(&s, 10000);
    cr_assert_eq(rc, 0, "waited 10 s for the server to stop: %d", rc);
}

/* ------------------------------------------------------------- checking */

typedef struct rec {
    int status;
    char method[256], target[1024], version[16], body[24], referer[256], ua[256], rid[160];
    char aborted[4];
} rec_t;

static size_t parse_recs(char *out, rec_t *recs, size_t max)
{
    size_t n = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "REC ", 4) != 0)
            continue;
        cr_assert_lt(n, max, "too many log lines");
        rec_t *r = &recs[n++];
        int k = sscanf(line, "REC %d %255s %1023s %15s %23s %255s %255s %159s %3s", &r->status,
                       r->method, r->target, r->version, r->body, r->referer, r->ua, r->rid,
                       r->aborted);
        cr_assert_eq(k, 9, "bad parser output line: %s", line);
    }
    return n;
}

static bool field_is(const char *got, const char *raw, size_t len)
{
    char hex[2100];
    if (raw == NULL)
        return true;
    if (len == 0)
        return strcmp(got, "-") == 0;
    obs_hex(raw, len, hex);
    return strcmp(got, hex) == 0;
}

static bool matches(const rec_t *r, const want_t *w, bool json)
{
    const char *ua = json ? w->ua_json : w->ua;
    return r->status == w->status &&
           field_is(r->method, w->method, w->method ? strlen(w->method) : 0) &&
           field_is(r->target, w->target, w->target_len) &&
           (w->version == NULL || strcmp(r->version, w->version) == 0) &&
           (w->body == NULL || strcmp(r->body, w->body) == 0) &&
           field_is(r->referer, w->referer, strlen(w->referer)) &&
           field_is(r->ua, ua, strlen(ua)) &&
           (!json || strcmp(r->aborted, w->aborted ? "1" : "0") == 0);
}

static void check_log(const char *path, bool json)
{
    char *out;
    char *argv[] = {"/usr/bin/python3", "tests/scripts/check_access_log.py",
                    json ? "json" : "combined", (char *)path, NULL};
    int st = obs_run(argv, false, &out, 20000);
    size_t flen;
    char *file = obs_slurp(path, &flen);
    cr_assert_eq(st, 0, "check_access_log.py exit %d:\n%s\nlog:\n%s", st, out, file);
    static rec_t recs[64];
    size_t n = parse_recs(out, recs, 64);
    cr_assert_eq(n, NWANT, "%zu log lines, want %zu:\n%s", n, NWANT, file);
    bool used[64] = {false};
    for (size_t i = 0; i < NWANT; i++) {
        bool found = false;
        for (size_t j = 0; j < n && !found; j++)
            if (!used[j] && matches(&recs[j], &wants[i], json))
                used[j] = found = true;
        cr_assert(found, "no log line for expectation %zu (status %d %s); log:\n%s", i,
                  wants[i].status, wants[i].target ? wants[i].target : "", file);
    }
    if (json) {
        /* Every generated or accepted ID: 1..128 of [A-Za-z0-9._-]. */
        for (size_t j = 0; j < n; j++) {
            size_t l = strlen(recs[j].rid);
            cr_assert(l == 32 && strspn(recs[j].rid, "0123456789abcdef") == 32,
                      "line %zu: request_id %s is not 32 hex digits", j, recs[j].rid);
        }
    }
    free(out);
    free(file);
}

Test(obs_log, combined_lines_parse_as_apache_combined, .timeout = TMO)
{
    char path[64];
    obs_tmpfile(path, sizeof(path), "combined");
    run_scenario(APPSRV_LOG_COMBINED, path);
    check_log(path, false);
    if (getenv("APPSRV_OBS_KEEP") == NULL) /* keep the file to look at it */
        unlink(path);
}

Test(obs_log, json_lines_parse_with_python_and_node, .timeout = TMO)
{
    char path[64];
    obs_tmpfile(path, sizeof(path), "json");
    run_scenario(APPSRV_LOG_JSON, path);
    check_log(path, true);

    char *out;
    char *tool[] = {"/usr/bin/python3", "-m", "json.tool", "--json-lines", path, NULL};
    int st = obs_run(tool, false, &out, 20000);
    cr_assert_eq(st, 0, "python3 -m json.tool --json-lines: exit %d: %s", st, out);
    free(out);
    char *node[] = {"node", "tests/scripts/json_lines.js", path, NULL};
    st = obs_run(node, true, &out, 20000);
    if (st == 127) {
        free(out);
        unlink(path);
        cr_skip_test("node is not installed (apt-get install nodejs): JSON.parse not run");
    }
    char want[32];
    snprintf(want, sizeof(want), "LINES %zu", NWANT);
    cr_assert_eq(st, 0, "node json_lines.js: exit %d: %s", st, out);
    cr_assert(strstr(out, want) != NULL, "node: %s, want %s", out, want);
    free(out);
    unlink(path);
}

/* The raw callback still gets every entry, alongside the file, with the
 * new fields filled in. */
static atomic_int g_entries;
static char g_rid[160];
static char g_route[64];
static int g_minor = -2;

static void on_entry(const appsrv_log_entry_t *e, void *user)
{
    (void)user;
    if (e->status == 200 && e->request_id.len > 0 && e->request_id.len < sizeof(g_rid)) {
        memcpy(g_rid, e->request_id.ptr, e->request_id.len);
        g_rid[e->request_id.len] = '\0';
        snprintf(g_route, sizeof(g_route), "%.*s", (int)e->route.len,
                 e->route.ptr ? e->route.ptr : "");
        g_minor = e->http_minor;
    }
    atomic_fetch_add(&g_entries, 1);
}

Test(obs_log, callback_and_file_both_get_entries, .timeout = TMO)
{
    char path[64];
    obs_tmpfile(path, sizeof(path), "both");
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.threads = 1;
    cfg.request_ids = true;
    cfg.access_log = on_entry;
    atomic_store(&g_entries, 0);
    appsrv_server_t *srv;
    cr_assert_eq(appsrv_server_new(&srv, &cfg), 0);
    cr_assert_eq(appsrv_route(srv, "GET", "/hello", h_hello, NULL), 0);
    cr_assert_eq(appsrv_access_log_fd(srv, -1, APPSRV_LOG_JSON), -EINVAL);
    cr_assert_eq(appsrv_access_log_fd(srv, 1, (appsrv_log_format_t)9), -EINVAL);
    cr_assert_eq(appsrv_access_log_file(srv, path, APPSRV_LOG_COMBINED), 0);
    e2e_server_t s;
    run_own(&s, srv);
    int port = s.port;
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, port), 0);
    cr_assert_eq(e2e_sends(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    e2e_resp_t r;
    cr_assert_eq(e2e_read_response(&c, &r, 5000, 0), 0, "waited 5 s for the response");
    const char *rid = e2e_resp_header(&r, "X-Request-ID");
    cr_assert(rid != NULL, "no X-Request-ID");
    char sent[160];
    snprintf(sent, sizeof(sent), "%s", rid);
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0, "waited 10 s for the stop");
    cr_assert_eq(atomic_load(&g_entries), 1);
    cr_assert_str_eq(g_rid, sent, "logged ID %s, sent %s", g_rid, sent);
    cr_assert_str_eq(g_route, "/hello");
    cr_assert_eq(g_minor, 1);
    size_t len;
    char *file = obs_slurp(path, &len);
    cr_assert(file != NULL && strstr(file, "\"GET /hello HTTP/1.1\" 200 5 \"-\" \"-\"\n") != NULL,
              "file: %s", file ? file : "(none)");
    free(file);
    unlink(path);
}
