/* SPDX-License-Identifier: MIT */
/*
 * expect.h - the Criterion-facing half of the toolkit: start/stop an
 * in-process server, open/send/read on the test's thread and check what
 * came back, each failing the test with the state it saw. The status
 * helper E2E_EXPECT_STATUS and the table runner E2E_EXPECT_TABLE (rows in
 * table.h) serve the error, limit and CLI suites. Only the test's own
 * thread may call these (they assert); client threads use client.h.
 */
#ifndef APPSRV_TEST_EXPECT_H
#define APPSRV_TEST_EXPECT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "e2e.h"
#include "routes.h"
#include "table.h"

/* ------------------------------------------------------------- servers */

/* start_srv() with routes.h's base routes, HTTP only. */
void start_base(e2e_server_t *s, const appsrv_config_t *cfg);
void start_srv(e2e_server_t *s, const appsrv_config_t *cfg, const e2e_route_t *routes, size_t n,
               unsigned listeners);
/* HTTP only, with setup(srv, arg) before the listener (e2e.h). */
void start_srv_with(e2e_server_t *s, const appsrv_config_t *cfg, const e2e_route_t *routes,
                    size_t n, e2e_setup_cb setup, void *arg);
/* The usual start of a test: the fd count first (returned), then
 * start_base() and c connected to it. */
int start_base_conn(e2e_server_t *s, const appsrv_config_t *cfg, e2e_conn_t *c);
/* Stop, join (STOP_MS, or ms) and free; run must have returned 0. */
void stop_srv(e2e_server_t *s);
void stop_srv_within(e2e_server_t *s, int ms);
/* The fd count is back at before (taken first thing in the test). */
void expect_fds(int before);
/* The usual end of a test: stop_srv(), then expect_fds(fds0); with c
 * first closed for close_and_stop(). */
void stop_and_check(e2e_server_t *s, int fds0);
void close_and_stop(e2e_conn_t *c, e2e_server_t *s, int fds0);
/* Polls (bounded) until *v >= want; fails the test otherwise. */
void wait_count(atomic_int *v, int want, int timeout_ms, const char *what);

/* -------------------------------------------------------------- client */

void open_conn(e2e_conn_t *c, int port);
void open_conn_rcvbuf(e2e_conn_t *c, int port, int rcvbuf);
void send_str(e2e_conn_t *c, const char *s);
void send_bytes(e2e_conn_t *c, const void *p, size_t n);
/* One whole response within RD (or timeout_ms). */
void read_resp(e2e_conn_t *c, e2e_resp_t *r, unsigned flags);
void read_resp_t(e2e_conn_t *c, e2e_resp_t *r, unsigned flags, int timeout_ms);
/* One request, one response, on a fresh connection to port. */
void roundtrip(int port, const char *req, e2e_resp_t *r, unsigned flags);
/* The server closes silently within timeout_ms. */
void expect_closed(e2e_conn_t *c, int timeout_ms);
/* One protocol line, exactly want (without its '\n'). */
void expect_line(e2e_conn_t *c, const char *want);

/* ------------------------------------------------------------ responses */

/* "HTTP/1.1 <status> <reason>"; reason NULL: any. */
void check_status(const e2e_resp_t *r, int status, const char *reason);
/* README "Server behaviour and limits": one "Server: appsrv/<version>", one IMF-fixdate Date, framed by
 * exactly one Content-Length or chunked (never until EOF). */
void check_std(const e2e_resp_t *r);
/* Server and Date only (streams to HTTP/1.0, HEAD on a stream). */
void check_std_head(const e2e_resp_t *r);
/* The exact body (and Content-Length, when present, its length). */
void check_body(const e2e_resp_t *r, const char *body);
/* A plain 200 "hello\n" text/plain answer (routes.h's h_hello). */
void check_hello(const e2e_resp_t *r);

/* --------------------------------------------------------------- tables */

/* Runs one row (table.h) against port and fails the test with its why. */
void expect_row(int port, const e2e_row_t *row);
/* Runs rows[0..n) (each followed by probe unless NULL) against port. */
void expect_table(int port, const e2e_row_t *rows, size_t n, const e2e_row_t *probe);
/* Sends the bytes of lit on a new connection, reads one answer and checks
 * its status and whether the server closed after it. */
#define E2E_EXPECT_STATUS(port, lit, status, close)                                                \
    expect_row((port), &(const e2e_row_t){E2E_RAW(lit), (status), (close), #lit, NULL, NULL})
#define E2E_EXPECT_TABLE(port, rows, probe) expect_table((port), (rows), ARRAY_LEN(rows), (probe))

/* The library's error answer to bad bytes: exact status line, standard
 * headers, "Connection: close", the reason as body, then the close. */
void expect_error(int port, const void *req, size_t len, int status, const char *reason);
#define EXPECT_ERROR(port, lit, status, reason)                                                    \
    expect_error((port), (lit), sizeof(lit) - 1, (status), (reason))

#endif /* APPSRV_TEST_EXPECT_H */
