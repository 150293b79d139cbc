/* SPDX-License-Identifier: MIT */
/*
 * ws_client.h - helpers for the WebSocket tests (tests/test_ws_*.c): an
 * in-process server with WebSocket routes on a background thread, a
 * raw client that does the opening handshake over an e2e_conn_t and
 * reads server frames, and recording echo handlers. Like e2e.h, nothing
 * here asserts (client threads use it); results are returned.
 */
#ifndef APPSRV_TEST_WS_CLIENT_H
#define APPSRV_TEST_WS_CLIENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "appsrv.h"
#include "e2e.h"
#include "ws_frames.h"

/* ---------------------------------------------------------------- server */

typedef struct wsc_route {
    const char *pattern;
    const appsrv_ws_handlers_t *h; /* NULL: a plain HTTP route (handler) */
    appsrv_handler_cb handler;
    void *user;
} wsc_route_t;

/* Like e2e_server_start() with WebSocket routes (and plain HTTP GET
 * routes): cfg NULL means defaults with threads = 1. The server runs on
 * a new thread; s->port is its HTTP port. Stop with e2e_server_stop(). */
int wsc_server_start(e2e_server_t *s, const appsrv_config_t *cfg, const wsc_route_t *routes,
                     size_t n);

/* ------------------------------------------------------------------- CLI */

/* The appsrv CLI (e2e_bin_path()) run with "-p 0 -t 2" and extra flags. */
typedef struct wsc_cli {
    pid_t pid;
    int port;
    int err_fd;     /* its stderr (read end) */
    char err[4096]; /* what it wrote before listening */
} wsc_cli_t;

/* Starts it and reads its HTTP port from the listening line (10 s).
 * Returns 0 or a negative error (the process is gone then). */
int wsc_cli_start(wsc_cli_t *s, const char *const extra[]);
/* SIGTERM, then waits (10 s). Returns its wait status, or -1. */
int wsc_cli_stop(wsc_cli_t *s);

/* Runs argv (searched in PATH) with stdout and stderr into out (NUL-
 * terminated, truncated to cap), at most timeout_ms. Returns the wait
 * status, or -1 on a timeout (the child is killed). */
int wsc_run(char *const argv[], char *out, size_t cap, int timeout_ms);

/* ---------------------------------------------------------------- client */

/* Connects to port and sends a GET for path with the handshake headers
 * (a fresh key), plus extra (whole "Name: value\r\n" lines, may be NULL).
 * Reads the answer into *r. Returns 0 when it is a 101 whose
 * Sec-WebSocket-Accept matches the key, -EPROTO for another answer
 * (*r holds it), or a negative error. The connection stays open either
 * way (close it with e2e_conn_close()). */
int wsc_open(e2e_conn_t *c, int port, const char *path, const char *extra, e2e_resp_t *r);
/* wsc_open() without keeping the response. */
int wsc_connect(e2e_conn_t *c, int port, const char *path);

/* Sends a masked frame. Returns 0 or a negative error. */
int wsc_send(e2e_conn_t *c, unsigned b0, const void *payload, size_t len);

/* A frame read from the server. */
typedef struct wsc_frame {
    unsigned b0;   /* first header byte (FIN, RSV, opcode) */
    bool masked;   /* the server masked it (a protocol error of its own) */
    uint8_t *data; /* payload, malloc'd, NUL-terminated */
    size_t len;
    int close_code; /* close frames: the code, 1005 without one */
} wsc_frame_t;

/* Reads one whole frame within timeout_ms. Returns 0, -ETIMEDOUT,
 * -ECONNRESET (closed first), -ENOMEM. */
int wsc_read(e2e_conn_t *c, wsc_frame_t *f, int timeout_ms);
void wsc_frame_free(wsc_frame_t *f);

/* Reads frames until a data message is whole (answering nothing; pings
 * and pongs are skipped) and returns its opcode and payload (malloc'd).
 * Returns 0, or a negative error, or -EPIPE when a close frame came
 * first (its code in *close_code if not NULL). */
int wsc_read_message(e2e_conn_t *c, unsigned *opcode, uint8_t **data, size_t *len, int *close_code,
                     int timeout_ms);

/*
 * The end of a failed or closed connection, as a strict client sees it:
 * skips data frames, expects a close frame and then the TCP close, all
 * within timeout_ms. Returns the close code (1005 for an empty close
 * frame), -ENOMSG when the connection closed with no close frame, or
 * -ETIMEDOUT. Does not answer the close.
 */
int wsc_expect_close(e2e_conn_t *c, int timeout_ms);

/* ----------------------------------------------------------------- traces */

/*
 * What a server sent, as text, one event per word: "T:<payload>" or
 * "B:<payload>" for a message (reassembled), "Q:<payload>" for a pong,
 * "P:<payload>" for a ping, "C:<code>" for a close frame, "X" for the TCP
 * close. A payload is its hex bytes when it is at most 16 bytes long,
 * else "<len>#<hash>".
 */
typedef struct wsc_trace {
    char *s;
    size_t len, cap;
} wsc_trace_t;

void wsc_trace_msg(wsc_trace_t *t, char tag, const void *payload, size_t len);
void wsc_trace_close(wsc_trace_t *t, int code);
void wsc_trace_eof(wsc_trace_t *t);
void wsc_trace_free(wsc_trace_t *t);
/* The trace so far ("" when empty; never NULL). */
const char *wsc_trace_str(const wsc_trace_t *t);

/*
 * Reads what the server sends into got until the TCP close, or until got
 * equals want and quiet_ms pass with nothing more, or timeout_ms. Returns
 * 0, or -ETIMEDOUT.
 */
int wsc_collect(e2e_conn_t *c, wsc_trace_t *got, const char *want, int quiet_ms, int timeout_ms);

/* -------------------------------------------------------------- handlers */

/* Handlers that echo every message back (same type) and count events;
 * user is a wsc_echo_t. */
typedef struct wsc_echo {
    atomic_int opened, messages, closed;
    atomic_int last_code; /* on_close's code */
    atomic_int drains;
} wsc_echo_t;

extern const appsrv_ws_handlers_t wsc_echo_handlers;

#endif /* APPSRV_TEST_WS_CLIENT_H */
