/* SPDX-License-Identifier: MIT */
/*
 * cli.h - the Criterion-facing helpers of the CLI suites (test_cli_*.c):
 * the spawned appsrv (proc.h) with its listening lines read, stopped by a
 * signal and judged by its exit status; loopback connections, responses
 * and protocol lines through client.h, checked exactly; and the suite's
 * bookkeeping (TestSuite(cli) with a .fini that kills our own children,
 * by pid, and reclaims fds and blocks after a failed assertion).
 */
#ifndef APPSRV_TEST_CLI_H
#define APPSRV_TEST_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "e2e.h"

/* Criterion timeouts (seconds); generous so a valgrind run fits too. */
#define TMO     60
#define TMO_BIG 180

/* ------------------------------------------------------------ environment */

static inline bool under_valgrind(void)
{
    return e2e_valgrind();
}
static inline int64_t now_ms(void)
{
    return e2e_now_ms();
}
/* A deadline of base milliseconds from now, stretched under valgrind. */
int64_t deadline(int64_t base_ms);
/* Milliseconds left until dl (0 once passed). */
int remaining(int64_t dl);
/* 1 MiB and 1,000 normally; smaller when everything runs under valgrind. */
size_t big_size(void);
int pipeline_count(void);

/* --------------------------------------------------- tracked resources */

/* fds and blocks the suite's .fini reclaims when an assertion aborts. */
int track_fd(int fd);
void close_fd(int *fd);
void *tmalloc(size_t n);
void tfree(void *p);
/* Last statement of every test: nothing left running, open or allocated. */
void assert_all_released(void);

/* ----------------------------------------------------------------- runs */

/* A program run to completion: exit status and both outputs. */
typedef struct {
    int status;
    e2e_sink_t out, err;
} run_t;

void run_prog(run_t *r, char *const argv[], int64_t base_ms);
void run_free(run_t *r);
/* Runs the CLI with args (NULL-terminated) and returns when it exits. */
void run_cli(run_t *r, const char *const args[]);

/* ------------------------------------------------------------ the server */

typedef struct {
    e2e_proc_t proc; /* its stderr so far in proc.err.buf */
    pid_t pid;
    int http_port, line_port;
    int family;
} srv_t;

/* Starts "appsrv -p 0 -l 0 -t 2 EXTRA..." and waits for both listening
 * lines, printed with shown_host ("127.0.0.1", "[::1]"). */
void srv_start_at(srv_t *s, int family, const char *shown_host, const char *const extra[]);
void srv_start(srv_t *s, const char *const extra[]);
/* Reads whatever the server wrote to stderr meanwhile (non-blocking). */
void srv_pump(srv_t *s);
/* Waits for the exit caused by an earlier signal; status must be 0. The
 * whole stderr is then in s->proc.err.buf (valgrind's lines removed). */
void srv_wait_ok(srv_t *s, const char *why);
/* Sends sig (SIGTERM for srv_stop) and expects a prompt exit 0. */
void srv_stop_sig(srv_t *s, int sig);
void srv_stop(srv_t *s);
void srv_free(srv_t *s);
/* The usual end of a test: srv_stop(), srv_free(), assert_all_released(). */
void srv_finish(srv_t *s);

/* ------------------------------------------------------------ the client */

typedef e2e_conn_t conn_t;

void conn_open_host(conn_t *c, int family, int port, int rcvbuf);
void conn_open(conn_t *c, const srv_t *s, int port);
void conn_close(conn_t *c);
/* Sends all of data; returns 0 or -errno (EPIPE, ECONNRESET, ETIMEDOUT). */
int conn_try_send(conn_t *c, const void *data, size_t len, int64_t dl);
void conn_send(conn_t *c, const void *data, size_t len);
void conn_sends(conn_t *c, const char *s);
/* Receives more: > 0 bytes, 0 at EOF, or -errno (-ETIMEDOUT, -ECONNRESET). */
ssize_t conn_fill(conn_t *c, int64_t dl);
/* The peer closed (EOF or reset) with nothing more sent. Returns the
 * errno of a reset, 0 for a clean EOF. */
int conn_expect_close(conn_t *c, int64_t dl, const char *what);

/* ------------------------------------------------------------------ HTTP */

typedef struct {
    e2e_resp_t e; /* as client.h's reader parsed it */
    int status;
    char status_line[256]; /* "HTTP/1.1 200 OK" */
    char *head;            /* the header fields, "Name: value\r\n" each */
    char *body;
    size_t body_len;
} resp_t;

/* Copies the first value of header name into out and returns how many
 * times the field occurs. */
int resp_header(const resp_t *r, const char *name, char *out, size_t cap);
/* Reads one response (skipping 1xx; head_req: no body). Content-Length
 * must be there exactly once (every appsrv response has one), no
 * Transfer-Encoding, the body complete. */
void http_read(conn_t *c, resp_t *r, bool head_req, int64_t dl);
/* Fills r from a response e2e_parse_response() made (takes e over). */
void resp_from(resp_t *r, e2e_resp_t *e);
void resp_free(resp_t *r);
/* Status line, the one Content-Type and the body, all exact (NULL: not
 * checked). */
void expect_resp(const resp_t *r, const char *status_line, const char *ctype, const void *body,
                 size_t blen, const char *what);
/* One request on an open connection, one response read. */
void http_do(conn_t *c, const char *req, resp_t *r);
/* "METHOD TARGET" on a fresh connection, checked exactly. */
void http_check(const srv_t *s, const char *method, const char *target, const char *status_line,
                const char *ctype, const char *body);
/* POST/PUT /echo with body and optional Content-Type; checks the echo. */
void echo_check(const srv_t *s, const char *method, const char *ctype, const char *body,
                size_t blen, const char *want_ctype);
/* An idle keep-alive connection: one request answered, then quiet. */
void open_idle(conn_t *c, const srv_t *s);

/* ---------------------------------------------------------- line protocol */

/* Reads one response line, "\n" included, into out. */
void line_read(conn_t *c, char *out, size_t cap, int64_t dl);
/* Sends req (its own line ending included) and expects exactly want. */
void line_check(conn_t *c, const char *req, const char *want);

#endif /* APPSRV_TEST_CLI_H */
