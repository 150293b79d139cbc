/* SPDX-License-Identifier: MIT */
/*
 * e2e.h - helpers for end-to-end tests over loopback: an in-process server
 * on 127.0.0.1 port 0 running on a background thread, and a raw client
 * with a read buffer that parses HTTP/1.1 responses (Content-Length,
 * chunked, until-EOF) and protocol lines, every wait bounded by a poll()
 * deadline. The helpers never assert (client threads use them too); they
 * return 0 or a negative errno value and the test checks the result.
 * Only the public API (appsrv.h) is used.
 */
#ifndef APPSRV_TEST_E2E_H
#define APPSRV_TEST_E2E_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "appsrv.h"

/* ---------------------------------------------------------------- server */

/* A route to register: method NULL matches any. With line set, pattern is
 * a line-protocol command word (appsrv_route_line) and method is unused. */
typedef struct e2e_route {
    const char *method;
    const char *pattern;
    appsrv_handler_cb handler;
    void *user;
    bool line;
} e2e_route_t;

/* Which listeners e2e_server_start() opens. */
#define E2E_HTTP 0x1u
#define E2E_LINE 0x2u

typedef struct e2e_server {
    appsrv_server_t *srv;
    pthread_t thread;
    bool thread_started;
    bool joined;
    int port;      /* HTTP port, 0 without E2E_HTTP */
    int line_port; /* line port, 0 without E2E_LINE */
    int run_rc;    /* appsrv_server_run()'s result once joined */
    atomic_bool run_returned;
} e2e_server_t;

/*
 * Creates a server from cfg (NULL: defaults with threads = 1), registers
 * routes[0..n), listens on 127.0.0.1 port 0 for what `listeners` asks and
 * runs it on a new thread. Returns 0, or a negative error (nothing left
 * behind then: the server is freed).
 */
int e2e_server_start(e2e_server_t *s, const appsrv_config_t *cfg, const e2e_route_t *routes,
                     size_t n, unsigned listeners);

/* appsrv_server_stop() only (the server keeps draining). */
void e2e_server_request_stop(e2e_server_t *s);

/* Waits at most timeout_ms for appsrv_server_run() to return and joins the
 * thread. Returns 0 (s->run_rc holds run's result) or -ETIMEDOUT. */
int e2e_server_join(e2e_server_t *s, int timeout_ms);

/*
 * appsrv_server_stop() + join (bounded by timeout_ms) + appsrv_server_free().
 * Returns run's result (0 after a normal stop), or -ETIMEDOUT when run did
 * not return in time (then the server is deliberately leaked: freeing a
 * running server would crash the test instead of failing it).
 */
int e2e_server_stop(e2e_server_t *s, int timeout_ms);

/* ---------------------------------------------------------------- client */

/* A client connection with a read-ahead buffer (pipelined responses). */
typedef struct e2e_conn {
    int fd;
    char *buf;
    size_t len, cap; /* bytes buffered / allocated */
    size_t off;      /* first unconsumed byte */
    bool eof;        /* the server closed (read returned 0 or a reset) */
    int err;         /* the error that ended the stream (-ECONNRESET), or 0 */
} e2e_conn_t;

/* Connects to 127.0.0.1:port (2 s bound). Returns 0 or a negative error. */
int e2e_conn_open(e2e_conn_t *c, int port);
/* Closes the socket and frees the buffer; fd < 0 is fine. */
void e2e_conn_close(e2e_conn_t *c);
/* Closes with SO_LINGER 0: the kernel sends a reset. */
void e2e_conn_reset(e2e_conn_t *c);

/* Sends all bytes (5 s progress bound). Returns 0 or a negative error. */
int e2e_send(e2e_conn_t *c, const void *data, size_t len);
int e2e_sends(e2e_conn_t *c, const char *s);
/* Sends data in pieces of `piece` bytes, one send() each (TCP_NODELAY on). */
int e2e_send_pieces(e2e_conn_t *c, const void *data, size_t len, size_t piece);

/* One parsed response. Header names and values are NUL-terminated copies. */
#define E2E_MAX_HDRS 64
typedef struct e2e_resp {
    int major, minor;
    int status;
    char reason[128];
    size_t nhdrs;
    char *names[E2E_MAX_HDRS];
    char *values[E2E_MAX_HDRS];
    char *body; /* NUL-terminated for convenience; body_len excludes it */
    size_t body_len;
    bool chunked;    /* body came chunked */
    bool until_eof;  /* no framing: body read until the close */
    size_t head_len; /* bytes of the status line + headers + blank line */
} e2e_resp_t;

/* Response framing options for e2e_read_response(). */
#define E2E_RESP_HEAD 0x1u /* answer to HEAD: no body whatever the headers */

/*
 * Reads one whole response within timeout_ms: 1xx, 204, 304 and HEAD
 * answers have no body; otherwise chunked, Content-Length or until EOF.
 * Returns 0, -ETIMEDOUT, -ECONNRESET/-EPIPE (closed before a whole
 * response; -ECONNRESET also for a clean EOF then), -EPROTO (malformed),
 * -ENOMEM. *r is always safe to e2e_resp_free().
 */
int e2e_read_response(e2e_conn_t *c, e2e_resp_t *r, int timeout_ms, unsigned flags);
void e2e_resp_free(e2e_resp_t *r);
/* The first header named name (case-insensitive), or NULL. */
const char *e2e_resp_header(const e2e_resp_t *r, const char *name);
/* How many header fields are named name. */
int e2e_resp_header_count(const e2e_resp_t *r, const char *name);

/* Reads one line ending in '\n' (line protocol) into out (without the
 * '\n', NUL-terminated). Returns its length, -ETIMEDOUT, -ECONNRESET
 * (closed first), -ENOSPC (longer than cap - 1). */
int e2e_read_line(e2e_conn_t *c, char *out, size_t cap, int timeout_ms);

/* Reads exactly n bytes (from the buffer first). Returns 0, -ETIMEDOUT or
 * -ECONNRESET. out may be NULL to discard. */
int e2e_read_exact(e2e_conn_t *c, void *out, size_t n, int timeout_ms);

/* Returns up to max bytes: buffered ones first, else one recv() of at
 * most max bytes straight from the socket (small reads for slow-reader
 * tests). Returns the count, -ETIMEDOUT or -ECONNRESET. */
int e2e_read_some(e2e_conn_t *c, void *out, size_t max, int timeout_ms);

/*
 * Reads until the server closes (EOF or reset), at most timeout_ms.
 * Everything unconsumed (buffered and new) is returned in *out (malloc'd,
 * NUL-terminated; the caller frees; may be NULL) and *len.
 * Returns 0 when closed, -ETIMEDOUT when still open.
 */
int e2e_read_until_close(e2e_conn_t *c, char **out, size_t *len, int timeout_ms);

/*
 * Waits at most timeout_ms for the server to close the connection.
 * Returns the number of bytes that arrived before the close (0: closed
 * silently; they are discarded), or -ETIMEDOUT.
 */
long e2e_wait_closed(e2e_conn_t *c, int timeout_ms);

/* True when the server has not closed and sent nothing within wait_ms
 * (a bounded check that a connection stays open). */
bool e2e_still_open(e2e_conn_t *c, int wait_ms);

/* Reads whatever arrives within wait_ms into the buffer (nonblocking
 * after the first poll). Returns bytes buffered now (unconsumed). */
size_t e2e_pump(e2e_conn_t *c, int wait_ms);

/* ----------------------------------------------------------------- misc */

/* Waits until fd is readable (data, EOF or an error) or the absolute
 * deadline (e2e_now_ms) passes. Returns 0, -ETIMEDOUT or a negative errno. */
int e2e_wait_readable(int fd, int64_t deadline);
/* Open fds of this process (/proc/self/fd), or -1. */
int e2e_fd_count(void);

/* The CLI under test: $APPSRV_BIN, else build/appsrv. */
const char *e2e_bin_path(void);
/*
 * fork + exec argv[0] with stdin from /dev/null and stdout/stderr on
 * out_fd/err_fd (-1: /dev/null), default signal dispositions and an empty
 * mask. With search, argv[0] is looked up in PATH (execvp); without, it
 * is a path (execve). The child gets SIGKILL when this process dies, so a
 * test killed by its timeout never leaves it behind. Returns its pid or a
 * negative errno (fork failed); an exec failure is exit status 127.
 */
pid_t e2e_spawn(char *const argv[], int out_fd, int err_fd, bool search);
/* Waits (bounded, polling waitpid) for pid. Returns its wait status, or
 * -1 when it has not exited within timeout_ms. */
int e2e_wait_child(pid_t pid, int timeout_ms);
/* Milliseconds on CLOCK_MONOTONIC. */
int64_t e2e_now_ms(void);
/* Waits (poll-based, at most timeout_ms) until *v >= want. Returns the
 * last value seen. */
int e2e_wait_atomic(atomic_int *v, int want, int timeout_ms);
/* Sleeps ms with poll() (no signals needed). */
void e2e_pause_ms(int ms);
/* True when APPSRV_VALGRIND is set: scale big sizes down. */
bool e2e_valgrind(void);
/* A deterministic, non-periodic byte pattern for body checks. */
void e2e_fill_pattern(void *buf, size_t len, uint32_t seed);
/* True for "Sun, 06 Nov 1994 08:49:37 GMT" shaped strings (RFC 9110
 * §5.6.7 IMF-fixdate). */
bool e2e_is_imf_fixdate(const char *s);

/* Parses an IMF-fixdate into seconds since the epoch (UTC). Returns 0 or
 * -EINVAL. */
int e2e_parse_imf_fixdate(const char *s, int64_t *out);

#endif /* APPSRV_TEST_E2E_H */
