/* SPDX-License-Identifier: MIT */
/*
 * test_e2e_obs_reqid.c - request IDs end to end (issue 19): an incoming
 * X-Request-ID is kept only when it is 1..128 bytes of [A-Za-z0-9._-]
 * (lengths 0, 1, 128, 129 and bad bytes tried), else the worker makes a
 * 32-hex-digit one; the same ID reaches the handler (appsrv_req_id), the
 * response's X-Request-ID field and the access-log entry; the library's
 * own answers carry one too (404, 400 before any head was parsed, 408 on
 * a head timeout, 503 at the connection cap); IDs off means no field and
 * a NULL accessor. Every test is bounded by .timeout.
 */
#include <criterion/criterion.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <appsrv.h>

#include "e2e.h"
#include "obs_util.h"

#define TMO 30

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_handler_id[200];
static bool g_handler_null;
static char g_log_id[200];

static int h_id(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t id = appsrv_req_id(req);
    pthread_mutex_lock(&g_lock);
    g_handler_null = id.ptr == NULL;
    snprintf(g_handler_id, sizeof(g_handler_id), "%.*s", (int)id.len, id.ptr ? id.ptr : "");
    pthread_mutex_unlock(&g_lock);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, id.ptr ? id.ptr : "", id.len);
}

static void on_entry(const appsrv_log_entry_t *e, void *user)
{
    (void)user;
    pthread_mutex_lock(&g_lock);
    snprintf(g_log_id, sizeof(g_log_id), "%.*s", (int)e->request_id.len,
             e->request_id.ptr ? e->request_id.ptr : "");
    pthread_mutex_unlock(&g_lock);
}

static const e2e_route_t routes[] = {{"GET", "/id", h_id, NULL, false}};

static void start(e2e_server_t *s, bool ids, int head_timeout_ms, int max_conns)
{
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.threads = 1;
    cfg.request_ids = ids;
    cfg.access_log = on_entry;
    if (head_timeout_ms > 0)
        cfg.head_timeout_ms = head_timeout_ms;
    if (max_conns > 0)
        cfg.max_conns = max_conns;
    cr_assert_eq(e2e_server_start(s, &cfg, routes, 1, E2E_HTTP), 0);
}

static bool is_hex32(const char *s)
{
    return s != NULL && strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

/* Sends raw, reads one answer; returns the X-Request-ID (copied to out,
 * "" when absent) and the status. */
static int ask(int port, const char *raw, char *out, size_t cap)
{
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, port), 0);
    cr_assert_eq(e2e_sends(&c, raw), 0);
    e2e_resp_t r;
    int rc = e2e_read_response(&c, &r, 5000, 0);
    cr_assert_eq(rc, 0, "waited 5 s for the answer to %.30s: %d", raw, rc);
    const char *id = e2e_resp_header(&r, "X-Request-ID");
    cr_assert_leq(e2e_resp_header_count(&r, "X-Request-ID"), 1, "two X-Request-ID fields");
    snprintf(out, cap, "%s", id ? id : "");
    int status = r.status;
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    return status;
}

static void ask_with(int port, const char *value, char *out, size_t cap)
{
    char raw[512];
    if (value == NULL)
        snprintf(raw, sizeof(raw), "GET /id HTTP/1.1\r\nHost: x\r\n\r\n");
    else
        snprintf(raw, sizeof(raw), "GET /id HTTP/1.1\r\nHost: x\r\nX-Request-ID: %s\r\n\r\n",
                 value);
    cr_assert_eq(ask(port, raw, out, cap), 200);
    /* The handler and the log saw the same ID as the client. */
    pthread_mutex_lock(&g_lock);
    cr_assert_str_eq(g_handler_id, out, "handler saw %s, client %s", g_handler_id, out);
    cr_assert_str_eq(g_log_id, out, "log has %s, client %s", g_log_id, out);
    pthread_mutex_unlock(&g_lock);
}

Test(obs_reqid, accepted_and_rejected_values, .timeout = TMO)
{
    e2e_server_t s;
    start(&s, true, 0, 0);
    char v128[129], v129[130], got[300];
    memset(v128, 'a', 128);
    v128[0] = 'Z', v128[1] = '9', v128[2] = '.', v128[3] = '_', v128[4] = '-';
    v128[128] = '\0';
    memset(v129, 'b', 129);
    v129[129] = '\0';
    /* Kept as sent. */
    static const char *const ok[] = {"x", "A", "0", "-", "abc-DEF_0.9", NULL};
    for (size_t i = 0; ok[i] != NULL; i++) {
        ask_with(s.port, ok[i], got, sizeof(got));
        cr_assert_str_eq(got, ok[i], "X-Request-ID %s came back as %s", ok[i], got);
    }
    ask_with(s.port, v128, got, sizeof(got));
    cr_assert_str_eq(got, v128, "a 128-byte ID was not kept");
    /* Replaced: empty (length 0), 129 bytes, bad bytes. */
    static const char *const bad[] = {"",    "a b",      "a/b", "a\"b", "a:b", "{x}",
                                      "a+b", "\xc3\xa9", "a,b", "a\tb", NULL};
    const char *vals[16];
    size_t n = 0;
    for (size_t i = 0; bad[i] != NULL; i++)
        vals[n++] = bad[i];
    vals[n++] = v129;
    char seen[16][64];
    for (size_t i = 0; i < n; i++) {
        ask_with(s.port, vals[i], got, sizeof(got));
        cr_assert(is_hex32(got), "X-Request-ID \"%s\": got %s, want a new 32-hex ID", vals[i], got);
        snprintf(seen[i], sizeof(seen[i]), "%s", got);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(seen[i], seen[j], "the same ID twice: %s", got);
    }
    /* No field at all: a new one. */
    ask_with(s.port, NULL, got, sizeof(got));
    cr_assert(is_hex32(got), "no X-Request-ID: got %s", got);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0, "waited 10 s for the stop");
}

Test(obs_reqid, library_answers_carry_one, .timeout = TMO)
{
    e2e_server_t s;
    start(&s, true, 300, 0);
    char got[300];
    /* A 404 made by the router. */
    cr_assert_eq(ask(s.port, "GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-ID: mine\r\n\r\n", got,
                     sizeof(got)),
                 404);
    cr_assert_str_eq(got, "mine");
    /* A 400 before the head is parsed: no request, a new ID. */
    cr_assert_eq(ask(s.port, "BAD\x01 / HTTP/1.1\r\n\r\n", got, sizeof(got)), 400);
    cr_assert(is_hex32(got), "400: X-Request-ID %s", got);
    pthread_mutex_lock(&g_lock);
    cr_assert_str_eq(g_log_id, got, "400 logged with %s, sent %s", g_log_id, got);
    pthread_mutex_unlock(&g_lock);
    /* A 408: nothing at all was sent before the head timeout. */
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, s.port), 0);
    e2e_resp_t r;
    int rc = e2e_read_response(&c, &r, 5000, 0);
    cr_assert_eq(rc, 0, "waited 5 s for the 408: %d", rc);
    cr_assert_eq(r.status, 408);
    cr_assert(is_hex32(e2e_resp_header(&r, "X-Request-ID")), "408 without an ID");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0, "waited 10 s for the stop");
}

Test(obs_reqid, refusal_at_the_cap_carries_one, .timeout = TMO)
{
    e2e_server_t s;
    start(&s, true, 0, 1);
    e2e_conn_t first;
    cr_assert_eq(e2e_conn_open(&first, s.port), 0);
    /* The first connection is busy (a partial head), so no eviction. */
    cr_assert_eq(e2e_sends(&first, "GET /id HTTP/1.1\r\n"), 0);
    cr_assert(obs_wait_metric(s.srv, "appsrv_connections_accepted_total{proto=\"http\"} 1", 5000),
              "waited 5 s for the first connection to be accepted");
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, s.port), 0);
    e2e_resp_t r;
    int rc = e2e_read_response(&c, &r, 5000, 0);
    cr_assert_eq(rc, 0, "waited 5 s for the refusal: %d", rc);
    cr_assert_eq(r.status, 503);
    cr_assert(is_hex32(e2e_resp_header(&r, "X-Request-ID")), "503 without an ID");
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    e2e_conn_close(&first);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0, "waited 10 s for the stop");
}

Test(obs_reqid, off_by_default, .timeout = TMO)
{
    e2e_server_t s;
    start(&s, false, 0, 0);
    char got[300];
    cr_assert_eq(
        ask(s.port, "GET /id HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\n\r\n", got, sizeof(got)),
        200);
    cr_assert_str_eq(got, "", "X-Request-ID %s with request IDs off", got);
    pthread_mutex_lock(&g_lock);
    cr_assert(g_handler_null, "appsrv_req_id() not NULL with IDs off");
    cr_assert_str_eq(g_log_id, "");
    pthread_mutex_unlock(&g_lock);
    cr_assert_eq(ask(s.port, "BAD\x01 / HTTP/1.1\r\n\r\n", got, sizeof(got)), 400);
    cr_assert_str_eq(got, "");
    cr_assert_eq(e2e_server_stop(&s, 10000), 0, "waited 10 s for the stop");
}
