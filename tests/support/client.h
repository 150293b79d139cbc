/* SPDX-License-Identifier: MIT */
/*
 * client.h - the raw loopback client of the tests: connect (127.0.0.1 or
 * ::1, optional small receive buffer), send with a deadline, a read-ahead
 * buffer, the one HTTP/1.1 response reader (strict: CRLF line ends, exact
 * framing by Content-Length, chunked via chunked.h, or until EOF), the
 * protocol-line reader and bounded close checks. Used by every Criterion
 * suite and by tests/adversarial/. Plain C without libappsrv; it never
 * asserts (client threads use it): 0 or a negative errno value.
 */
#ifndef APPSRV_TEST_CLIENT_H
#define APPSRV_TEST_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------- sockets */

/* Starts a non-blocking connect to 127.0.0.1:port (AF_INET) or [::1]:port
 * (AF_INET6); rcvbuf > 0 sets SO_RCVBUF first. TCP_NODELAY on. Returns the
 * fd (the connect may still be in progress) or a negative errno. */
int e2e_tcp_connect_start(int family, int port, int rcvbuf);
/* Same, waiting (bounded) until connected. Returns the fd or -errno. */
int e2e_tcp_connect(int family, int port, int rcvbuf, int timeout_ms);
/* Waits until fd shows one of events or the absolute deadline (e2e_now_ms)
 * passes. Returns the revents (> 0), -ETIMEDOUT or a negative errno. */
int e2e_wait_fd(int fd, short events, int64_t deadline);
/* Readable: data, EOF or an error. Returns 0, -ETIMEDOUT or -errno. */
int e2e_wait_readable(int fd, int64_t deadline);
/* Sends all of data on a (non-blocking) socket by the absolute deadline.
 * Returns 0 or -errno (-EPIPE, -ECONNRESET, -ETIMEDOUT). */
int e2e_send_fd(int fd, const void *data, size_t len, int64_t deadline);
/* Closes with SO_LINGER 0: the kernel sends a reset. */
void e2e_rst_close(int fd);

/* ---------------------------------------------------------- connection */

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
/* Any family, with SO_RCVBUF rcvbuf (> 0) set before the connect, within
 * timeout_ms. */
int e2e_conn_open_ex(e2e_conn_t *c, int family, int port, int rcvbuf, int timeout_ms);
/* Closes the socket and frees the buffer; fd < 0 is fine. */
void e2e_conn_close(e2e_conn_t *c);
/* Closes with SO_LINGER 0: the kernel sends a reset. */
void e2e_conn_reset(e2e_conn_t *c);

/* Sends all bytes (5 s progress bound). Returns 0 or a negative error. */
int e2e_send(e2e_conn_t *c, const void *data, size_t len);
int e2e_sends(e2e_conn_t *c, const char *s);
/* Sends data in pieces of `piece` bytes, one send() each. */
int e2e_send_pieces(e2e_conn_t *c, const void *data, size_t len, size_t piece);

/* Reads once into the buffer, waiting until the absolute deadline.
 * Returns the bytes read (> 0), -ETIMEDOUT, -ECONNRESET when closed (EOF
 * or reset; c->eof), -ENOMEM. */
int e2e_conn_fill(e2e_conn_t *c, int64_t deadline);
/* The unconsumed bytes. */
static inline const char *e2e_conn_data(const e2e_conn_t *c)
{
    return c->buf != NULL ? c->buf + c->off : "";
}
static inline size_t e2e_conn_avail(const e2e_conn_t *c)
{
    return c->len - c->off;
}

/* ------------------------------------------------------------ responses */

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
#define E2E_RESP_HEAD     0x1u /* answer to HEAD: no body whatever the headers */
#define E2E_RESP_SKIP_1XX 0x2u /* skip interim 1xx answers */

/*
 * Reads one whole response within timeout_ms: 1xx, 204, 304 and HEAD
 * answers have no body; otherwise chunked, Content-Length or until EOF.
 * Returns 0, -ETIMEDOUT, -ECONNRESET/-EPIPE (closed before a whole
 * response; -ECONNRESET also for a clean EOF then), -EPROTO (malformed),
 * -ENOMEM. *r is always safe to e2e_resp_free().
 */
int e2e_read_response(e2e_conn_t *c, e2e_resp_t *r, int timeout_ms, unsigned flags);
void e2e_resp_free(e2e_resp_t *r);
/* Reads the status line and header fields only (no body: it stays in the
 * buffer, e2e_conn_data()). Same results as e2e_read_response(). */
int e2e_read_head(e2e_conn_t *c, e2e_resp_t *r, int timeout_ms);
/* The first header named name (case-insensitive), or NULL. */
const char *e2e_resp_header(const e2e_resp_t *r, const char *name);
/* How many header fields are named name. */
int e2e_resp_header_count(const e2e_resp_t *r, const char *name);
/* Parses one whole response from memory (a program's captured output): the
 * data ends where the connection would have closed. */
int e2e_parse_response(const void *data, size_t len, e2e_resp_t *r, unsigned flags);
/* True when the response says "Connection: close" (any case). */
bool e2e_resp_closes(const e2e_resp_t *r);
/* "HTTP/1.1 200 OK" into out. */
void e2e_status_line(const e2e_resp_t *r, char *out, size_t cap);
/* The reason phrase appsrv sends with status, or NULL when unknown. */
const char *e2e_reason(int status);
/* A short printable description of rc (-ETIMEDOUT: "timeout", ...). */
const char *e2e_errname(int rc);
/* True for "Sun, 06 Nov 1994 08:49:37 GMT" shaped strings (RFC 9110
 * §5.6.7 IMF-fixdate). */
bool e2e_is_imf_fixdate(const char *s);

/* Parses an IMF-fixdate into seconds since the epoch (UTC). Returns 0 or
 * -EINVAL. */
int e2e_parse_imf_fixdate(const char *s, int64_t *out);

/* ------------------------------------------------------- other readers */

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

#endif /* APPSRV_TEST_CLIENT_H */
