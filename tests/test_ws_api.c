/* SPDX-License-Identifier: MIT */
/*
 * test_ws_api.c - the WebSocket API end to end against an in-process
 * server: the opening handshake's checks (table of raw requests and the
 * status each gets), refusals from on_upgrade with the host's headers,
 * subprotocol selection, route parameters and host data, callbacks in
 * order, messages NUL-terminated, argument errors, and sessions that are
 * not evicted at the connection cap. Lifetimes, threads, timeouts and
 * closes are in test_ws_life.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_client.h"
#include "ws_handshake.h"

#define TMO .timeout = 30

/* ------------------------------------------------------------ recording */

typedef struct rec {
    pthread_mutex_t lock;
    char log[4096];
    atomic_int opened, closed;
    int refuse;               /* on_upgrade returns this */
    const char *protocols[4]; /* tried in order in on_upgrade */
    int select_rc[4];
    const char *seen_protocol; /* appsrv_ws_protocol() in on_open */
    char param[64];
    int late_select_rc;
} rec_t;

static void rec_add(rec_t *r, const char *fmt, const char *s, size_t n, int v)
{
    pthread_mutex_lock(&r->lock);
    size_t used = strlen(r->log);
    snprintf(r->log + used, sizeof(r->log) - used, fmt, (int)n, s, v);
    pthread_mutex_unlock(&r->lock);
}

static int r_upgrade(appsrv_ws_t *ws, appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    rec_t *r = user;
    appsrv_str_t id = appsrv_req_param(req, "id");
    if (id.ptr != NULL && id.len < sizeof(r->param)) {
        memcpy(r->param, id.ptr, id.len);
        r->param[id.len] = 0;
    }
    for (int i = 0; i < 4 && r->protocols[i] != NULL; i++) {
        r->select_rc[i] = appsrv_ws_select_protocol(ws, r->protocols[i]);
        if (r->select_rc[i] == 0)
            break;
    }
    appsrv_ws_set_data(ws, r);
    if (r->refuse == 401) {
        appsrv_res_add_header(res, "WWW-Authenticate", "Bearer realm=\"ws\"");
        appsrv_res_set_body(res, "{\"error\":\"unauthorized\"}", 24);
    }
    rec_add(r, "upgrade%.*s%d;", "", 0, r->refuse);
    return r->refuse;
}

static void r_open(appsrv_ws_t *ws, void *user)
{
    rec_t *r = user;
    cr_assert_eq(appsrv_ws_data(ws), r);
    r->seen_protocol = appsrv_ws_protocol(ws);
    r->late_select_rc = appsrv_ws_select_protocol(ws, "chat");
    rec_add(r, "open%.*s%d;", "", 0, 0);
    atomic_fetch_add(&r->opened, 1);
}

static void r_message(appsrv_ws_t *ws, appsrv_ws_type_t type, const void *data, size_t len,
                      void *user)
{
    rec_t *r = user;
    const char *s = data;
    /* a NUL follows every message */
    rec_add(r, "msg:%.*s:%d;", s, len, s[len] == 0 ? (int)type : -1);
    appsrv_ws_send(ws, type, data, len);
}

static void r_close(appsrv_ws_t *ws, int code, appsrv_str_t reason, void *user)
{
    rec_t *r = user;
    rec_add(r, "close:%.*s:%d;", reason.ptr, reason.len, code);
    atomic_fetch_add(&r->closed, 1);
    appsrv_ws_release(ws);
}

static const appsrv_ws_handlers_t rec_handlers = {
    .on_upgrade = r_upgrade,
    .on_open = r_open,
    .on_message = r_message,
    .on_close = r_close,
};

static void rec_server(e2e_server_t *s, rec_t *r, const appsrv_config_t *cfg)
{
    pthread_mutex_init(&r->lock, NULL);
    wsc_route_t routes[] = {
        {"/ws", &rec_handlers, NULL, r},
        {"/rooms/:id", &rec_handlers, NULL, r},
    };
    cr_assert_eq(wsc_server_start(s, cfg, routes, 2), 0);
}

/* ------------------------------------------------------------ handshake */

typedef struct hs_row {
    const char *name;
    const char *req; /* after the request line */
    const char *line;
    int status;
    const char *hdr, *val; /* a header the answer must carry (or NULL) */
} hs_row_t;

#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define V13 "Sec-WebSocket-Version: 13\r\n"
#define UPG "Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define GET "GET /ws HTTP/1.1"

static const hs_row_t hs_rows[] = {
    {"valid", UPG KEY V13, GET, 101, "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
    {"no Upgrade: 426", "Connection: Upgrade\r\n" KEY V13, GET, 426, "Upgrade", "websocket"},
    {"plain GET: 426", "", GET, 426, "Sec-WebSocket-Version", "13"},
    {"Upgrade: h2c: 426", "Upgrade: h2c\r\nConnection: Upgrade\r\n" KEY V13, GET, 426, NULL, NULL},
    {"Upgrade token list, any case", "Upgrade: foo/1, WebSocket\r\nConnection: Upgrade\r\n" KEY V13,
     GET, 101, NULL, NULL},
    {"Connection without upgrade: 400", "Upgrade: websocket\r\nConnection: keep-alive\r\n" KEY V13,
     GET, 400, NULL, NULL},
    {"Connection: keep-alive, Upgrade",
     "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" KEY V13, GET, 101, NULL, NULL},
    {"Connection: upgrade (lower case)", "Upgrade: websocket\r\nConnection: upgrade\r\n" KEY V13,
     GET, 101, NULL, NULL},
    {"Connection in two fields",
     "Upgrade: websocket\r\nConnection: keep-alive\r\nConnection: Upgrade\r\n" KEY V13, GET, 101,
     NULL, NULL},
    {"Connection: Upgrade, close: upgrades all the same",
     "Upgrade: websocket\r\nConnection: Upgrade, close\r\n" KEY V13, GET, 101, NULL, NULL},
    {"Connection: upgrades (not the token): 400",
     "Upgrade: websocket\r\nConnection: upgrades\r\n" KEY V13, GET, 400, NULL, NULL},
    {"version 8: 426", UPG KEY "Sec-WebSocket-Version: 8\r\n", GET, 426, "Sec-WebSocket-Version",
     "13"},
    {"no version: 426", UPG KEY, GET, 426, "Sec-WebSocket-Version", "13"},
    {"version 13 twice: 426", UPG KEY V13 V13, GET, 426, NULL, NULL},
    {"no key: 400", UPG V13, GET, 400, NULL, NULL},
    {"key not base64: 400", UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j!Q==\r\n" V13, GET, 400,
     NULL, NULL},
    {"key of 20 bytes: 400", UPG "Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZmdoaWo=\r\n" V13, GET,
     400, NULL, NULL},
    {"two keys: 400", UPG KEY KEY V13, GET, 400, NULL, NULL},
    {"HTTP/1.0: 400", UPG KEY V13, "GET /ws HTTP/1.0", 400, NULL, NULL},
    {"HEAD: 400", UPG KEY V13, "HEAD /ws HTTP/1.1", 400, NULL, NULL},
    {"POST: 405", UPG KEY V13 "Content-Length: 0\r\n", "POST /ws HTTP/1.1", 405, "Allow",
     "GET, HEAD"},
    {"permessage-deflate offered: declined",
     UPG KEY V13 "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n", GET,
     101, NULL, NULL},
};

Test(ws_api, handshake_table, TMO)
{
    rec_t r = {0};
    e2e_server_t s;
    rec_server(&s, &r, NULL);
    for (size_t i = 0; i < sizeof(hs_rows) / sizeof(hs_rows[0]); i++) {
        const hs_row_t *row = &hs_rows[i];
        e2e_conn_t c;
        cr_assert_eq(e2e_conn_open(&c, s.port), 0);
        char req[1024];
        snprintf(req, sizeof(req), "%s\r\nHost: x\r\n%s\r\n", row->line, row->req);
        cr_assert_eq(e2e_sends(&c, req), 0);
        e2e_resp_t resp;
        bool head = row->status == 101 || strncmp(row->line, "HEAD", 4) == 0;
        cr_assert_eq(e2e_read_response(&c, &resp, 5000, head ? E2E_RESP_HEAD : 0), 0, "%s",
                     row->name);
        cr_assert_eq(resp.status, row->status, "%s: %d", row->name, resp.status);
        if (row->hdr != NULL) {
            const char *v = e2e_resp_header(&resp, row->hdr);
            cr_assert(v != NULL && strcmp(v, row->val) == 0, "%s: %s: %s", row->name, row->hdr,
                      v ? v : "(absent)");
        }
        if (row->status == 101) {
            cr_assert_str_eq(e2e_resp_header(&resp, "Upgrade"), "websocket", "%s", row->name);
            cr_assert_str_eq(e2e_resp_header(&resp, "Connection"), "Upgrade", "%s", row->name);
            cr_assert_null(e2e_resp_header(&resp, "Sec-WebSocket-Extensions"), "%s", row->name);
            cr_assert_null(e2e_resp_header(&resp, "Content-Length"), "%s", row->name);
            cr_assert_null(e2e_resp_header(&resp, "Sec-WebSocket-Protocol"), "%s", row->name);
            /* It speaks WebSocket now. */
            cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_TEXT, "hi", 2), 0);
            unsigned op;
            uint8_t *m;
            size_t n;
            cr_assert_eq(wsc_read_message(&c, &op, &m, &n, NULL, 5000), 0, "%s", row->name);
            cr_assert(op == WSC_TEXT && n == 2 && memcmp(m, "hi", 2) == 0);
            free(m);
        }
        e2e_resp_free(&resp);
        e2e_conn_close(&c);
    }
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
    cr_assert_eq(atomic_load(&r.opened), 7);
    cr_assert_eq(atomic_load(&r.closed), 7);
}

/* Frames right behind the handshake, in the same write, are WebSocket. */
Test(ws_api, frames_pipelined_after_handshake, TMO)
{
    rec_t r = {0};
    e2e_server_t s;
    rec_server(&s, &r, NULL);
    e2e_conn_t c;
    cr_assert_eq(e2e_conn_open(&c, s.port), 0);
    wsc_buf_t b = {0};
    const char *req = GET "\r\nHost: x\r\n" UPG KEY V13 "\r\n";
    wsc_buf_raw(&b, req, strlen(req));
    wsc_buf_frame(&b, WSC_FIN | WSC_TEXT, "one", 3, true);
    wsc_buf_frame(&b, WSC_FIN | WSC_BIN, "two", 3, true);
    cr_assert_eq(e2e_send(&c, b.p, b.len), 0);
    e2e_resp_t resp;
    cr_assert_eq(e2e_read_response(&c, &resp, 5000, E2E_RESP_HEAD), 0);
    cr_assert_eq(resp.status, 101);
    e2e_resp_free(&resp);
    wsc_trace_t t = {0};
    cr_assert_eq(wsc_collect(&c, &t, "T:6f6e65 B:74776f ", 50, 5000), 0);
    cr_assert_str_eq(wsc_trace_str(&t), "T:6f6e65 B:74776f ");
    wsc_trace_free(&t);
    /* Both messages counted in and their echoes out (metrics). */
    char *m = NULL;
    cr_assert_gt(appsrv_metrics_format(s.srv, &m), 0);
    cr_expect(strstr(m, "direction=\"in\"} 2\n") != NULL && strstr(m, "direction=\"out\"} 2\n") != NULL,
              "WebSocket messages not counted: %.400s",
              strstr(m, "appsrv_websocket_messages") ? strstr(m, "appsrv_websocket_messages") : "(none)");
    free(m);
    wsc_buf_free(&b);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

/* ------------------------------------------------------------- refusals */

Test(ws_api, refusal_with_host_headers, TMO)
{
    rec_t r = {.refuse = 401};
    e2e_server_t s;
    rec_server(&s, &r, NULL);
    e2e_conn_t c;
    e2e_resp_t resp;
    cr_assert_eq(wsc_open(&c, s.port, "/ws", NULL, &resp), -EPROTO);
    cr_assert_eq(resp.status, 401);
    cr_assert_str_eq(e2e_resp_header(&resp, "WWW-Authenticate"), "Bearer realm=\"ws\"");
    cr_assert_str_eq(resp.body, "{\"error\":\"unauthorized\"}");
    cr_assert_null(e2e_resp_header(&resp, "Upgrade"));
    e2e_resp_free(&resp);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
    cr_assert_str_eq(r.log, "upgrade401;");
}

Test(ws_api, refusal_plain_and_bad_return, TMO)
{
    rec_t r = {.refuse = 403};
    e2e_server_t s;
    rec_server(&s, &r, NULL);
    for (int k = 0; k < 2; k++) {
        e2e_conn_t c;
        e2e_resp_t resp;
        cr_assert_eq(wsc_open(&c, s.port, "/ws", NULL, &resp), -EPROTO);
        cr_assert_eq(resp.status, k == 0 ? 403 : 500);
        cr_assert_str_eq(resp.body, k == 0 ? "Forbidden" : "Internal Server Error");
        /* The connection stays HTTP: a second request works. */
        cr_assert_eq(e2e_sends(&c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
        e2e_resp_free(&resp);
        cr_assert_eq(e2e_read_response(&c, &resp, 5000, 0), 0);
        cr_assert_eq(resp.status, 404);
        e2e_resp_free(&resp);
        e2e_conn_close(&c);
        r.refuse = 7; /* not a status: 500 */
    }
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
    cr_assert_eq(atomic_load(&r.opened), 0);
}

/* ---------------------------------------------------- subprotocols, data */

Test(ws_api, subprotocol_selected_from_offer, TMO)
{
    rec_t r = {.protocols = {"v3.chat", "superchat", "chat"}};
    e2e_server_t s;
    rec_server(&s, &r, NULL);
    e2e_conn_t c;
    e2e_resp_t resp;
    cr_assert_eq(wsc_open(&c, s.port, "/ws",
                          "Sec-WebSocket-Protocol: chat, superchat\r\n"
                          "Sec-WebSocket-Protocol: x\r\n",
                          &resp),
                 0);
    cr_assert_str_eq(e2e_resp_header(&resp, "Sec-WebSocket-Protocol"), "superchat");
    e2e_resp_free(&resp);
    cr_assert_eq(e2e_wait_atomic(&r.opened, 1, 5000), 1);
    cr_assert_eq(r.select_rc[0], -ENOENT);
    cr_assert_eq(r.select_rc[1], 0);
    cr_assert_str_eq(r.seen_protocol, "superchat");
    cr_assert_eq(r.late_select_rc, APPSRV_ESTATE); /* outside on_upgrade */
    e2e_conn_close(&c);
    /* Nothing offered: nothing selected, no header. */
    cr_assert_eq(wsc_open(&c, s.port, "/ws", NULL, &resp), 0);
    cr_assert_null(e2e_resp_header(&resp, "Sec-WebSocket-Protocol"));
    e2e_resp_free(&resp);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

Test(ws_api, params_data_order_and_nul, TMO)
{
    rec_t r = {0};
    e2e_server_t s;
    rec_server(&s, &r, NULL);
    e2e_conn_t c;
    cr_assert_eq(wsc_connect(&c, s.port, "/rooms/42"), 0);
    cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_TEXT, "in place", 8), 0);
    cr_assert_eq(wsc_send(&c, WSC_BIN, "frag", 4), 0);
    cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_CONT, "mented", 6), 0);
    cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_CLOSE, "\x0f\xa0see you", 9), 0);
    cr_assert_eq(wsc_expect_close(&c, 5000), 4000);
    e2e_conn_close(&c);
    cr_assert_eq(e2e_wait_atomic(&r.closed, 1, 5000), 1);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
    cr_assert_str_eq(r.param, "42");
    cr_assert_str_eq(r.log, "upgrade0;open0;msg:in place:1;msg:fragmented:2;close:see you:4000;");
}

/* ------------------------------------------------------------- argument */

static void noop_open(appsrv_ws_t *ws, void *user)
{
    (void)ws, (void)user;
}

static void noop_close(appsrv_ws_t *ws, int code, appsrv_str_t reason, void *user)
{
    (void)code, (void)reason, (void)user;
    appsrv_ws_release(ws);
}

Test(ws_api, route_errors, TMO)
{
    appsrv_server_t *srv;
    cr_assert_eq(appsrv_server_new(&srv, NULL), 0);
    appsrv_ws_handlers_t h = {.on_open = noop_open, .on_close = noop_close};
    appsrv_ws_handlers_t no_open = {.on_close = noop_close};
    appsrv_ws_handlers_t no_close = {.on_open = noop_open};
    cr_assert_eq(appsrv_route_ws(NULL, "/ws", &h, NULL), -EINVAL);
    cr_assert_eq(appsrv_route_ws(srv, "/ws", NULL, NULL), -EINVAL);
    cr_assert_eq(appsrv_route_ws(srv, "/ws", &no_open, NULL), -EINVAL);
    cr_assert_eq(appsrv_route_ws(srv, "/ws", &no_close, NULL), -EINVAL);
    cr_assert_eq(appsrv_route_ws(srv, NULL, &h, NULL), -EINVAL);
    cr_assert_eq(appsrv_route_ws(srv, "ws", &h, NULL), -EINVAL);
    cr_assert_eq(appsrv_route_ws(srv, "/ws", &h, NULL), 0);
    cr_assert_eq(appsrv_route_ws(srv, "/ws", &h, NULL), -EEXIST);
    cr_assert_eq(appsrv_route_ws(srv, "/ws/:room", &h, NULL), 0);
    appsrv_server_free(srv);
}

Test(ws_api, config_ranges, TMO)
{
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cr_assert_eq(cfg.max_ws_message, 1024 * 1024);
    cr_assert_eq(cfg.ws_ping_ms, 30000);
    cr_assert_eq(cfg.ws_close_timeout_ms, 5000);
    appsrv_server_t *srv;
    appsrv_config_t bad = cfg;
    bad.max_ws_message = 0;
    cr_assert_eq(appsrv_server_new(&srv, &bad), -EINVAL);
    bad = cfg;
    bad.max_ws_message = (1u << 30) + 1;
    cr_assert_eq(appsrv_server_new(&srv, &bad), -EINVAL);
    bad = cfg;
    bad.ws_ping_ms = -1;
    cr_assert_eq(appsrv_server_new(&srv, &bad), -EINVAL);
    bad = cfg;
    bad.ws_close_timeout_ms = 0;
    cr_assert_eq(appsrv_server_new(&srv, &bad), -EINVAL);
    bad = cfg;
    bad.ws_ping_ms = 0;
    cr_assert_eq(appsrv_server_new(&srv, &bad), 0);
    appsrv_server_free(srv);
}

/* Sends with bad arguments fail without queuing anything. */
static atomic_int arg_checks;

static void argcheck_open(appsrv_ws_t *ws, void *user)
{
    (void)user;
    int ok =
        appsrv_ws_send(ws, (appsrv_ws_type_t)3, "x", 1) == -EINVAL &&
        appsrv_ws_send(ws, APPSRV_WS_TEXT, "\xff", 1) == -EINVAL &&
        appsrv_ws_send(ws, APPSRV_WS_BINARY, NULL, 1) == -EINVAL &&
        appsrv_ws_send(ws, APPSRV_WS_BINARY, "\xff", 1) == 0 &&
        appsrv_ws_send(ws, APPSRV_WS_TEXT, NULL, 0) == 0 &&
        appsrv_ws_close(ws, 1005, NULL) == -EINVAL && appsrv_ws_close(ws, 999, NULL) == -EINVAL &&
        appsrv_ws_close(ws, 1000, "\xc3") == -EINVAL &&
        appsrv_ws_close(ws, 1000,
                        "0123456789012345678901234567890123456789012345678901234567890123456789"
                        "012345678901234567890123456789012345678901234567890123") == -EINVAL &&
        appsrv_ws_close(ws, 4001, "done") == 0 &&
        appsrv_ws_close(ws, 1000, NULL) == APPSRV_ECLOSED &&
        appsrv_ws_send(ws, APPSRV_WS_TEXT, "late", 4) == APPSRV_ECLOSED;
    atomic_store(&arg_checks, ok ? 1 : -1);
}

Test(ws_api, send_and_close_arguments, TMO)
{
    appsrv_ws_handlers_t h = {.on_open = argcheck_open, .on_close = noop_close};
    wsc_route_t route = {"/ws", &h, NULL, NULL};
    e2e_server_t s;
    cr_assert_eq(wsc_server_start(&s, NULL, &route, 1), 0);
    e2e_conn_t c;
    cr_assert_eq(wsc_connect(&c, s.port, "/ws"), 0);
    wsc_trace_t t = {0};
    cr_assert_eq(wsc_send(&c, WSC_FIN | WSC_CLOSE, "\x0f\xa1", 2), 0);
    cr_assert_eq(wsc_collect(&c, &t, NULL, 0, 5000), 0);
    cr_assert_str_eq(wsc_trace_str(&t), "B:ff T: C:4001 X ");
    wsc_trace_free(&t);
    e2e_conn_close(&c);
    cr_assert_eq(atomic_load(&arg_checks), 1);
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

/* ---------------------------------------------------------- connection cap */

/* Idle WebSocket sessions are not spare keep-alive connections: at the
 * cap a new client is refused rather than one of them evicted. */
Test(ws_api, sessions_not_evicted_at_cap, TMO)
{
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.threads = 1;
    cfg.max_conns = 2;
    cfg.ws_ping_ms = 0;
    rec_t r = {0};
    e2e_server_t s;
    rec_server(&s, &r, &cfg);
    e2e_conn_t a, b, c;
    cr_assert_eq(wsc_connect(&a, s.port, "/ws"), 0);
    cr_assert_eq(wsc_connect(&b, s.port, "/ws"), 0);
    cr_assert_eq(e2e_conn_open(&c, s.port), 0);
    cr_assert_eq(e2e_sends(&c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    e2e_resp_t resp;
    cr_assert_eq(e2e_read_response(&c, &resp, 5000, 0), 0);
    cr_assert_eq(resp.status, 503);
    e2e_resp_free(&resp);
    e2e_conn_close(&c);
    for (int i = 0; i < 2; i++) {
        e2e_conn_t *x = i ? &b : &a;
        cr_assert_eq(wsc_send(x, WSC_FIN | WSC_TEXT, "alive", 5), 0);
        unsigned op;
        uint8_t *m;
        size_t n;
        cr_assert_eq(wsc_read_message(x, &op, &m, &n, NULL, 5000), 0);
        free(m);
        e2e_conn_close(x);
    }
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}
