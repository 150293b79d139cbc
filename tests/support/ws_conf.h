/* SPDX-License-Identifier: MIT */
/*
 * ws_conf.h - the runner of the WebSocket conformance tables
 * (test_ws_conf_*.c), modelled on Autobahn|Testsuite: each row writes the
 * client's raw frames and the server frames it must get back (an echo
 * server: every message returns as one message of the same type). The
 * runner plays every row against a fresh connection whole, byte by byte
 * and split at a set of offsets (every offset for short rows), ending each
 * row that does not end itself with a close 1000 from the client, and
 * compares the server's trace (ws_client.h) with the row's. Static
 * functions: included by each conformance file, which is a Criterion file.
 */
#ifndef APPSRV_TEST_WS_CONF_H
#define APPSRV_TEST_WS_CONF_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_client.h"

typedef struct conf_row {
    const char *id; /* the Autobahn case it follows */
    const char *name;
    void (*fn)(wsc_buf_t *send, wsc_trace_t *want, size_t arg);
    size_t arg;
    bool ends; /* the row closes (or fails) the connection itself */
} conf_row_t;

/* Sends frames (masked), expects the same trace back. */
#define SEND(b0, p, n)  wsc_buf_frame(send, (b0), (p), (n), true)
#define SENDS(b0, lit)  wsc_buf_frame(send, (b0), (lit), sizeof(lit) - 1, true)
#define ECHO(tag, p, n) wsc_trace_msg(want, (tag), (p), (n))
#define ECHOS(tag, lit) wsc_trace_msg(want, (tag), (lit), sizeof(lit) - 1)
#define PONG(p, n)      wsc_trace_msg(want, 'Q', (p), (n))
#define CLOSED(code)                                                                               \
    do {                                                                                           \
        wsc_trace_close(want, (code));                                                             \
        wsc_trace_eof(want);                                                                       \
    } while (0)

/* Text payload: ASCII letters; binary payload: a pattern of all bytes. */
static inline uint8_t *conf_payload(size_t n, bool text)
{
    uint8_t *p = malloc(n + 1);
    cr_assert_not_null(p);
    if (text)
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t)('a' + i % 26);
    else
        e2e_fill_pattern(p, n, (uint32_t)n + 1);
    return p;
}

static inline void conf_server(e2e_server_t *s, size_t max_msg)
{
    static wsc_echo_t echo;
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.threads = 1;
    cfg.ws_ping_ms = 0;
    if (max_msg > 0)
        cfg.max_ws_message = max_msg;
    wsc_route_t r = {"/echo", &wsc_echo_handlers, NULL, &echo};
    cr_assert_eq(wsc_server_start(s, &cfg, &r, 1), 0);
}

/* One row, one way of cutting its bytes: piece > 0 sends that many bytes
 * per write, split > 0 cuts it in two there. */
static inline void conf_play(int port, const conf_row_t *row, const uint8_t *data, size_t len,
                             const char *want, size_t piece, size_t split)
{
    e2e_conn_t c;
    int rc = wsc_connect(&c, port, "/echo");
    cr_assert_eq(rc, 0, "%s %s: handshake %d", row->id, row->name, rc);
    if (piece > 0)
        rc = e2e_send_pieces(&c, data, len, piece);
    else if (split > 0)
        rc = e2e_send(&c, data, split) | e2e_send(&c, data + split, len - split);
    else
        rc = e2e_send(&c, data, len);
    /* A server that failed the connection early may reset the rest. */
    (void)rc;
    wsc_trace_t got = {0};
    rc = wsc_collect(&c, &got, NULL, 0, 10000);
    cr_assert_eq(rc, 0, "%s %s (piece %zu, split %zu): no close in time; got '%s' want '%s'",
                 row->id, row->name, piece, split, wsc_trace_str(&got), want);
    cr_assert_str_eq(wsc_trace_str(&got), want, "%s %s (piece %zu, split %zu)", row->id, row->name,
                     piece, split);
    wsc_trace_free(&got);
    e2e_conn_close(&c);
}

static inline void conf_run(const conf_row_t *rows, size_t n, size_t max_msg, bool splits)
{
    e2e_server_t s;
    conf_server(&s, max_msg);
    for (size_t i = 0; i < n; i++) {
        const conf_row_t *row = &rows[i];
        wsc_buf_t send = {0};
        wsc_trace_t want = {0};
        row->fn(&send, &want, row->arg);
        if (!row->ends) {
            wsc_buf_frame(&send, WSC_FIN | WSC_CLOSE, "\x03\xe8", 2, true);
            wsc_trace_close(&want, 1000);
            wsc_trace_eof(&want);
        }
        const char *w = wsc_trace_str(&want);
        conf_play(s.port, row, send.p, send.len, w, 0, 0);
        if (splits && send.len <= 4096)
            conf_play(s.port, row, send.p, send.len, w, 1, 0);
        if (splits && send.len > 1) {
            size_t step = send.len <= 64 ? 1 : send.len / 7 + 1;
            for (size_t k = 1; k < send.len; k += step)
                conf_play(s.port, row, send.p, send.len, w, 0, k);
        }
        wsc_buf_free(&send);
        wsc_trace_free(&want);
    }
    cr_assert_eq(e2e_server_stop(&s, 10000), 0);
}

#endif /* APPSRV_TEST_WS_CONF_H */
