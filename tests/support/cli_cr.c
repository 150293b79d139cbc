/* SPDX-License-Identifier: MIT */
/*
 * cli_cr.c - the CLI suites' Criterion-facing helpers (contract in cli.h):
 * the suite's bookkeeping and .fini, the appsrv child through proc.c's
 * spawner, connections and responses through client.c's reader.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/* ------------------------------------------------------------ environment */

int64_t deadline(int64_t base_ms)
{
    return now_ms() + (under_valgrind() ? base_ms * 8 : base_ms);
}

int remaining(int64_t dl)
{
    int64_t r = dl - now_ms();
    return r < 0 ? 0 : r > INT32_MAX ? INT32_MAX : (int)r;
}

size_t big_size(void)
{
    return under_valgrind() ? 64 * 1024 : 1024 * 1024;
}

int pipeline_count(void)
{
    return under_valgrind() ? 100 : 1000;
}

/* --------------------------------------------------- tracked resources */

#define MAX_FDS  64
#define MAX_MEM  64
#define MAX_KIDS 8

static int g_fds[MAX_FDS];
static size_t g_nfds;
static void *g_mem[MAX_MEM];
static size_t g_nmem;
static pid_t g_kids[MAX_KIDS];
static size_t g_nkids;
static int g_fd_base = -1;

/* Forgets fd without closing it (its owner closes it). */
static void untrack_fd(int fd)
{
    for (size_t i = 0; i < g_nfds; i++) {
        if (g_fds[i] == fd) {
            g_fds[i] = g_fds[--g_nfds];
            return;
        }
    }
}

int track_fd(int fd)
{
    cr_assert_geq(fd, 0, "open failed: %s", strerror(errno));
    cr_assert_lt(g_nfds, MAX_FDS, "too many fds tracked");
    g_fds[g_nfds++] = fd;
    return fd;
}

void close_fd(int *fd)
{
    if (*fd < 0)
        return;
    for (size_t i = 0; i < g_nfds; i++) {
        if (g_fds[i] == *fd) {
            g_fds[i] = g_fds[--g_nfds];
            break;
        }
    }
    close(*fd);
    *fd = -1;
}

void *tmalloc(size_t n)
{
    cr_assert_lt(g_nmem, MAX_MEM, "too many blocks tracked");
    void *p = malloc(n ? n : 1);
    cr_assert_not_null(p, "out of memory (%zu bytes)", n);
    g_mem[g_nmem++] = p;
    return p;
}

void tfree(void *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < g_nmem; i++) {
        if (g_mem[i] == p) {
            g_mem[i] = g_mem[--g_nmem];
            break;
        }
    }
    free(p);
}

static void track_kid(pid_t pid)
{
    cr_assert_lt(g_nkids, MAX_KIDS, "too many children tracked");
    g_kids[g_nkids++] = pid;
}

static void untrack_kid(pid_t pid)
{
    for (size_t i = 0; i < g_nkids; i++) {
        if (g_kids[i] == pid) {
            g_kids[i] = g_kids[--g_nkids];
            return;
        }
    }
}

static void suite_init(void)
{
    /* A dead peer must give EPIPE, never kill the test. */
    signal(SIGPIPE, SIG_IGN);
    g_fd_base = e2e_fd_count();
}

/* Runs after every test, also after a failed assertion: reclaims what the
 * test could not release. Only our own children, by PID. */
static void suite_fini(void)
{
    for (size_t i = 0; i < g_nkids; i++) {
        kill(g_kids[i], SIGKILL);
        waitpid(g_kids[i], NULL, 0);
    }
    g_nkids = 0;
    for (size_t i = 0; i < g_nfds; i++)
        close(g_fds[i]);
    g_nfds = 0;
    for (size_t i = 0; i < g_nmem; i++)
        free(g_mem[i]);
    g_nmem = 0;
}

TestSuite(cli, .init = suite_init, .fini = suite_fini);

/* ----------------------------------------------------------------- runs */

void run_prog(run_t *r, char *const argv[], int64_t base_ms)
{
    e2e_proc_t p;
    int rc = e2e_proc_spawn(&p, argv, E2E_PROC_OUT | E2E_PROC_ERR);
    cr_assert_eq(rc, 0, "spawn %s: %s", argv[0], strerror(-rc));
    track_kid(p.pid);
    rc = e2e_proc_wait(&p, remaining(deadline(base_ms)));
    if (rc < 0) {
        untrack_kid(p.pid);
        e2e_proc_free(&p);
        cr_assert_fail("%s: child did not exit within the deadline", argv[0]);
    }
    untrack_kid(p.pid);
    r->status = p.status;
    r->out = p.out;
    r->err = p.err;
    memset(&p.out, 0, sizeof(p.out));
    memset(&p.err, 0, sizeof(p.err));
    p.out.fd = p.err.fd = -1;
    e2e_proc_free(&p);
    if (r->out.buf == NULL)
        r->out.buf = calloc(1, 1);
    if (r->err.buf == NULL)
        r->err.buf = calloc(1, 1);
    cr_assert(r->out.buf != NULL && r->err.buf != NULL);
}

void run_free(run_t *r)
{
    free(r->out.buf);
    free(r->err.buf);
    r->out.buf = r->err.buf = NULL;
}

void run_cli(run_t *r, const char *const args[])
{
    char *argv[32];
    size_t n = 0;
    argv[n++] = (char *)e2e_bin_path();
    for (size_t i = 0; args[i] != NULL; i++) {
        cr_assert_lt(n, 31);
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    run_prog(r, argv, 5000);
}

/* ------------------------------------------------------------ the server */

void srv_start_at(srv_t *s, int family, const char *shown_host, const char *const extra[])
{
    const char *args[32];
    size_t n = 0;
    static const char *const base[] = {"-p", "0", "-l", "0", "-t", "2"};
    for (size_t i = 0; i < ARRAY_LEN(base); i++)
        args[n++] = base[i];
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        cr_assert_lt(n, 31);
        args[n++] = extra[i];
    }
    args[n] = NULL;
    memset(s, 0, sizeof(*s));
    s->family = family;
    int rc = e2e_appsrv_start(&s->proc, args, 0, shown_host, &s->http_port, &s->line_port,
                              remaining(deadline(5000)));
    if (s->proc.pid > 0)
        track_kid(s->proc.pid);
    s->pid = s->proc.pid;
    cr_assert_eq(rc, 0, "no listening lines for %s (%s); stderr so far:\n%s", shown_host,
                 rc == -ECHILD ? "appsrv exited" : e2e_errname(rc),
                 s->proc.err.buf != NULL ? s->proc.err.buf : "");
}

void srv_start(srv_t *s, const char *const extra[])
{
    srv_start_at(s, AF_INET, "127.0.0.1", extra);
}

void srv_pump(srv_t *s)
{
    e2e_proc_pump(&s->proc);
}

void srv_wait_ok(srv_t *s, const char *why)
{
    int rc = e2e_proc_wait(&s->proc, remaining(deadline(10000)));
    if (rc < 0) {
        untrack_kid(s->pid);
        e2e_proc_free(&s->proc); /* SIGKILL, ours, by pid */
        cr_assert_fail("%s: child did not exit within the deadline", why);
    }
    untrack_kid(s->pid);
    int st = s->proc.status;
    char *err = s->proc.err.buf;
    e2e_strip_valgrind_lines(err);
    cr_assert(WIFEXITED(st), "%s: appsrv did not exit normally (status 0x%x); stderr:\n%s", why,
              (unsigned)st, err);
    cr_assert_eq(WEXITSTATUS(st), 0, "%s: appsrv exit status %d, want 0; stderr:\n%s", why,
                 WEXITSTATUS(st), err);
}

void srv_stop_sig(srv_t *s, int sig)
{
    cr_assert_eq(kill(s->pid, sig), 0, "kill: %s", strerror(errno));
    srv_wait_ok(s, sig == SIGINT ? "SIGINT" : "SIGTERM");
}

void srv_stop(srv_t *s)
{
    srv_stop_sig(s, SIGTERM);
}

void srv_free(srv_t *s)
{
    e2e_proc_free(&s->proc);
}

void srv_finish(srv_t *s)
{
    srv_stop(s);
    srv_free(s);
    assert_all_released();
}

/* ------------------------------------------------------------ the client */

void conn_open_host(conn_t *c, int family, int port, int rcvbuf)
{
    int rc = e2e_conn_open_ex(c, family, port, rcvbuf, 2000);
    cr_assert_eq(rc, 0, "connect to port %d: %s", port, strerror(-rc));
    track_fd(c->fd);
}

void conn_open(conn_t *c, const srv_t *s, int port)
{
    conn_open_host(c, s->family, port, 0);
}

void conn_close(conn_t *c)
{
    untrack_fd(c->fd);
    e2e_conn_close(c);
}

int conn_try_send(conn_t *c, const void *data, size_t len, int64_t dl)
{
    return e2e_send_fd(c->fd, data, len, dl);
}

void conn_send(conn_t *c, const void *data, size_t len)
{
    int rc = conn_try_send(c, data, len, deadline(10000));
    cr_assert_eq(rc, 0, "send of %zu bytes failed: %s", len, strerror(-rc));
}

void conn_sends(conn_t *c, const char *s)
{
    conn_send(c, s, strlen(s));
}

ssize_t conn_fill(conn_t *c, int64_t dl)
{
    int rc = e2e_conn_fill(c, dl);
    if (rc == -ECONNRESET)
        return c->err; /* 0 at a clean EOF */
    return rc;
}

int conn_expect_close(conn_t *c, int64_t dl, const char *what)
{
    cr_assert_eq(e2e_conn_avail(c), 0, "%s: unexpected bytes before the close: \"%.*s\"", what,
                 (int)(e2e_conn_avail(c) > 200 ? 200 : e2e_conn_avail(c)), e2e_conn_data(c));
    long extra = e2e_wait_closed(c, remaining(dl));
    cr_assert_neq(extra, -ETIMEDOUT, "%s: the connection was not closed within the deadline", what);
    cr_assert_eq(extra, 0, "%s: %ld unexpected bytes before the close", what, extra);
    return -c->err;
}

/* ------------------------------------------------------------------ HTTP */

void resp_from(resp_t *r, e2e_resp_t *e)
{
    memset(r, 0, sizeof(*r));
    r->e = *e;
    memset(e, 0, sizeof(*e));
    r->status = r->e.status;
    e2e_status_line(&r->e, r->status_line, sizeof(r->status_line));
    size_t n = 1;
    for (size_t i = 0; i < r->e.nhdrs; i++)
        n += strlen(r->e.names[i]) + strlen(r->e.values[i]) + 4;
    r->head = tmalloc(n);
    r->head[0] = '\0';
    for (size_t i = 0, w = 0; i < r->e.nhdrs; i++)
        w += (size_t)sprintf(r->head + w, "%s: %s\r\n", r->e.names[i], r->e.values[i]);
    r->body = r->e.body;
    r->body_len = r->e.body_len;
}

void http_read(conn_t *c, resp_t *r, bool head_req, int64_t dl)
{
    e2e_resp_t e;
    unsigned flags = E2E_RESP_SKIP_1XX | (head_req ? E2E_RESP_HEAD : 0);
    int rc = e2e_read_response(c, &e, remaining(dl), flags);
    if (rc < 0)
        e2e_resp_free(&e);
    cr_assert_eq(rc, 0, "no whole response (%s); %zu bytes unread: \"%.*s\"", e2e_errname(rc),
                 e2e_conn_avail(c), (int)(e2e_conn_avail(c) > 300 ? 300 : e2e_conn_avail(c)),
                 e2e_conn_data(c));
    resp_from(r, &e);
    cr_assert(r->e.major == 1 && r->e.minor == 1, "malformed status line \"%s\"", r->status_line);
    char v[64];
    cr_assert_eq(resp_header(r, "Transfer-Encoding", v, sizeof(v)), 0,
                 "unexpected Transfer-Encoding \"%s\" on \"%s\"", v, r->status_line);
    cr_assert_eq(resp_header(r, "Content-Length", v, sizeof(v)), 1,
                 "want exactly one Content-Length on \"%s\"; headers:\n%s", r->status_line,
                 r->head);
}

void resp_free(resp_t *r)
{
    tfree(r->head);
    e2e_resp_free(&r->e);
    r->head = r->body = NULL;
}

/* Last statement of every test: nothing left open or allocated. */
void assert_all_released(void)
{
    cr_assert_eq(g_nkids, 0, "%zu children left running", g_nkids);
    cr_assert_eq(g_nfds, 0, "%zu tracked fds left open", g_nfds);
    cr_assert_eq(g_nmem, 0, "%zu tracked blocks left allocated", g_nmem);
    int n = e2e_fd_count();
    cr_assert_eq(n, g_fd_base, "fd leak: %d open at start, %d at end", g_fd_base, n);
}

/* Copies the first value of header name (OWS trimmed) into out and
 * returns how many times the field occurs. */
int resp_header(const resp_t *r, const char *name, char *out, size_t cap)
{
    int count = 0;
    size_t nlen = strlen(name);
    if (cap > 0)
        out[0] = '\0';
    for (const char *p = r->head; *p != '\0';) {
        const char *eol = strstr(p, "\r\n");
        cr_assert_not_null(eol);
        if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1, *e = eol;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (count++ == 0 && cap > 0) {
                size_t len = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
                memcpy(out, v, len);
                out[len] = '\0';
            }
        }
        p = eol + 2;
    }
    return count;
}

/* Status line, the one Content-Type and the body, all exact. */
void expect_resp(const resp_t *r, const char *status_line, const char *ctype, const void *body,
                 size_t blen, const char *what)
{
    cr_assert_str_eq(r->status_line, status_line, "%s: status line \"%s\", want \"%s\"", what,
                     r->status_line, status_line);
    if (ctype != NULL) {
        char ct[1024];
        int n = resp_header(r, "Content-Type", ct, sizeof(ct));
        cr_assert_eq(n, 1, "%s: %d Content-Type fields, want 1; headers:\n%s", what, n, r->head);
        cr_assert_str_eq(ct, ctype, "%s: Content-Type \"%s\", want \"%s\"", what, ct, ctype);
    }
    if (body != NULL) {
        cr_assert_eq(r->body_len, blen, "%s: body of %zu bytes, want %zu: \"%.*s\"", what,
                     r->body_len, blen, (int)(r->body_len > 200 ? 200 : r->body_len), r->body);
        cr_assert(memcmp(r->body, body, blen) == 0, "%s: body differs: \"%.*s\"", what,
                  (int)(r->body_len > 200 ? 200 : r->body_len), r->body);
    }
}

/* One request on an open connection, one response read. */
void http_do(conn_t *c, const char *req, resp_t *r)
{
    conn_sends(c, req);
    http_read(c, r, strncmp(req, "HEAD ", 5) == 0, deadline(5000));
}

/* "METHOD TARGET" on a fresh connection, checked exactly. */
void http_check(const srv_t *s, const char *method, const char *target, const char *status_line,
                const char *ctype, const char *body)
{
    conn_t c;
    conn_open(&c, s, s->http_port);
    char req[2048];
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", method, target);
    resp_t r;
    http_do(&c, req, &r);
    char what[1100];
    snprintf(what, sizeof(what), "%s %s", method, target);
    expect_resp(&r, status_line, ctype, body, body != NULL ? strlen(body) : 0, what);
    resp_free(&r);
    conn_close(&c);
}

/* POST/PUT /echo with body and optional Content-Type; checks the echo. */
void echo_check(const srv_t *s, const char *method, const char *ctype, const char *body,
                size_t blen, const char *want_ctype)
{
    conn_t c;
    conn_open(&c, s, s->http_port);
    char *req = tmalloc(blen + 2048);
    int n = snprintf(req, 2048,
                     "%s /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%sContent-Length: %zu\r\n\r\n",
                     method, ctype != NULL ? "Content-Type: " : "", ctype != NULL ? ctype : "",
                     ctype != NULL ? "\r\n" : "", blen);
    cr_assert(n > 0 && n < 2048);
    memcpy(req + n, body, blen);
    conn_send(&c, req, (size_t)n + blen);
    tfree(req);
    resp_t r;
    http_read(&c, &r, false, deadline(20000));
    char what[64];
    snprintf(what, sizeof(what), "%s /echo (%zu bytes)", method, blen);
    expect_resp(&r, "HTTP/1.1 200 OK", want_ctype, body, blen, what);
    resp_free(&r);
    conn_close(&c);
}

/* An idle keep-alive connection: one request answered, then quiet. */
void open_idle(conn_t *c, const srv_t *s)
{
    conn_open(c, s, s->http_port);
    resp_t r;
    http_do(c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "OK", 2, "idle connection");
    resp_free(&r);
}

/* Sends req (its own line ending included) and expects exactly want. */
void line_check(conn_t *c, const char *req, const char *want)
{
    conn_sends(c, req);
    char got[512];
    line_read(c, got, sizeof(got), deadline(5000));
    cr_assert_str_eq(got, want, "line request \"%s\": got \"%s\", want \"%s\"", req, got, want);
}

/* ---------------------------------------------------------- line protocol */

void line_read(conn_t *c, char *out, size_t cap, int64_t dl)
{
    int n = e2e_read_line(c, out, cap - 1, remaining(dl));
    cr_assert_geq(n, 0, "no complete response line (%s); got \"%.*s\"", e2e_errname(n),
                  (int)(e2e_conn_avail(c) > 200 ? 200 : e2e_conn_avail(c)), e2e_conn_data(c));
    out[n] = '\n';
    out[n + 1] = '\0';
}
