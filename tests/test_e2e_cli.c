/* SPDX-License-Identifier: MIT */
/*
 * test_e2e_cli.c - end-to-end tests of the appsrv CLI (SPEC §5).
 *
 * Each test spawns the real binary ($APPSRV_BIN, else build/appsrv) with
 * "-p 0 -l 0 -t 2" plus the flags under test, reads the two listening
 * lines from its stderr (pipe, poll() deadline), talks HTTP/1.1 and the
 * line protocol to it over loopback sockets, then stops it with a signal
 * and waits for exit status 0 with a deadline (SIGKILL to that child
 * only, and fail, when it overruns). Flag handling (exit 2 + usage, -V,
 * -h), graceful stop with a request in flight, --access-log, -q, IPv6
 * and curl as an independent client are covered too.
 *
 * Everything a test opens (fds, children, heap) is tracked so the suite
 * .fini reclaims it when an assertion aborts the test; the happy path
 * releases it all itself and checks the fd count at the end. Spawned
 * children get PR_SET_PDEATHSIG so a timed-out test never orphans a
 * server. APPSRV_VALGRIND=1 (valgrind --trace-children runs the server
 * under valgrind too) shrinks the big payloads and stretches deadlines.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <appsrv.h> /* APPSRV_VERSION_STRING only; the server is the CLI */

#include "e2e.h"

/* Criterion timeouts (seconds); generous so a valgrind run fits too. */
#define TMO 60
#define TMO_BIG 180

/* ------------------------------------------------------------ environment */

static bool under_valgrind(void)
{
    const char *v = getenv("APPSRV_VALGRIND");
    return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

/* A deadline of base milliseconds, stretched under valgrind. */
static int64_t scaled(int64_t base)
{
    return under_valgrind() ? base * 8 : base;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline(int64_t base_ms)
{
    return now_ms() + scaled(base_ms);
}

static int remaining(int64_t dl)
{
    int64_t r = dl - now_ms();
    return r < 0 ? 0 : r > INT_MAX ? INT_MAX : (int)r;
}

/* 1 MiB and 1,000 normally; smaller when everything runs under valgrind. */
static size_t big_size(void)
{
    return under_valgrind() ? 64 * 1024 : 1024 * 1024;
}

static int pipeline_count(void)
{
    return under_valgrind() ? 100 : 1000;
}

/* ------------------------------------------------ tracked resources */

#define MAX_FDS 64
#define MAX_MEM 64
#define MAX_KIDS 8

static int g_fds[MAX_FDS];
static size_t g_nfds;
static void *g_mem[MAX_MEM];
static size_t g_nmem;
static pid_t g_kids[MAX_KIDS];
static size_t g_nkids;
static int g_fd_base = -1;

static int track_fd(int fd)
{
    cr_assert_geq(fd, 0, "open failed: %s", strerror(errno));
    cr_assert_lt(g_nfds, MAX_FDS, "too many fds tracked");
    g_fds[g_nfds++] = fd;
    return fd;
}

static void close_fd(int *fd)
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

static void *tmalloc(size_t n)
{
    cr_assert_lt(g_nmem, MAX_MEM, "too many blocks tracked");
    void *p = malloc(n ? n : 1);
    cr_assert_not_null(p, "out of memory (%zu bytes)", n);
    g_mem[g_nmem++] = p;
    return p;
}

static void *trealloc(void *old, size_t n)
{
    if (old == NULL)
        return tmalloc(n);
    for (size_t i = 0; i < g_nmem; i++) {
        if (g_mem[i] == old) {
            void *p = realloc(old, n ? n : 1);
            cr_assert_not_null(p, "out of memory (%zu bytes)", n);
            g_mem[i] = p;
            return p;
        }
    }
    cr_assert_fail("trealloc of an untracked block");
    return NULL;
}

static void tfree(void *p)
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

/* Last statement of every test: nothing left open or allocated. */
static void assert_all_released(void)
{
    cr_assert_eq(g_nkids, 0, "%zu children left running", g_nkids);
    cr_assert_eq(g_nfds, 0, "%zu tracked fds left open", g_nfds);
    cr_assert_eq(g_nmem, 0, "%zu tracked blocks left allocated", g_nmem);
    int n = e2e_fd_count();
    cr_assert_eq(n, g_fd_base, "fd leak: %d open at start, %d at end", g_fd_base, n);
}

/* ------------------------------------------------------------- processes */

/* e2e_spawn() (argv[0] a path, no PATH search), tracked so that a failed
 * test still reaps it. */
static pid_t spawn(char *const argv[], int out_fd, int err_fd)
{
    pid_t pid = e2e_spawn(argv, out_fd, err_fd, false);
    cr_assert_geq(pid, 0, "fork: %s", strerror((int)-pid));
    track_kid(pid);
    return pid;
}

/* A pidfd to poll() for the child's exit, or -1: older kernels, and
 * valgrind 3.19 does not know the syscall (it warns loudly). */
static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    if (under_valgrind())
        return -1;
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        return track_fd(fd);
    }
#else
    (void)pid;
#endif
    return -1; /* wait_child() falls back to short waitpid polls */
}

/* An output stream of a child, kept whole (NUL-terminated). */
typedef struct {
    int fd; /* read end; -1 once at EOF */
    char *buf;
    size_t len, cap;
} sink_t;

static void sink_init(sink_t *k, int fd)
{
    k->fd = fd;
    k->cap = 4096;
    k->len = 0;
    k->buf = tmalloc(k->cap);
    k->buf[0] = '\0';
}

/* Reads what is available now; closes the fd at EOF. */
static void sink_read(sink_t *k)
{
    for (;;) {
        if (k->fd < 0)
            return;
        if (k->cap - k->len < 4096) {
            k->cap *= 2;
            k->buf = trealloc(k->buf, k->cap);
        }
        ssize_t n = read(k->fd, k->buf + k->len, k->cap - k->len - 1);
        if (n > 0) {
            k->len += (size_t)n;
            k->buf[k->len] = '\0';
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        close_fd(&k->fd); /* EOF or error */
    }
}

static void sink_free(sink_t *k)
{
    close_fd(&k->fd);
    tfree(k->buf);
    k->buf = NULL;
}

/*
 * Waits until pid has exited and every sink is at EOF, draining the sinks
 * meanwhile (so the child never blocks on a full pipe). On the deadline
 * the child gets SIGKILL and the test fails. Returns the wait status.
 */
static int wait_child(pid_t pid, int pidfd, sink_t *sinks, size_t nsinks, int64_t dl,
                      const char *what)
{
    int status = 0;
    bool exited = false;
    for (;;) {
        bool any_open = false;
        for (size_t i = 0; i < nsinks; i++)
            any_open = any_open || sinks[i].fd >= 0;
        if (!exited) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            cr_assert_geq(r, 0, "waitpid: %s", strerror(errno));
            if (r == pid) {
                exited = true;
                untrack_kid(pid);
            }
        }
        if (exited && !any_open)
            return status;
        int left = remaining(dl);
        if (left == 0) {
            if (!exited) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                untrack_kid(pid);
            }
            cr_assert_fail("%s: %s within the deadline", what,
                           exited ? "child's output did not reach EOF" : "child did not exit");
        }
        struct pollfd pfd[4];
        nfds_t n = 0;
        for (size_t i = 0; i < nsinks && n < 3; i++)
            if (sinks[i].fd >= 0)
                pfd[n++] = (struct pollfd){.fd = sinks[i].fd, .events = POLLIN};
        int tmo = left;
        if (!exited) {
            if (pidfd >= 0)
                pfd[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
            else if (tmo > 20)
                tmo = 20; /* no pidfd: re-check waitpid often */
        }
        if (poll(pfd, n, tmo) < 0 && errno != EINTR)
            cr_assert_fail("poll: %s", strerror(errno));
        for (size_t i = 0; i < nsinks; i++)
            sink_read(&sinks[i]);
    }
}

/* A program run to completion: exit status and both outputs. */
typedef struct {
    int status;
    sink_t out, err;
} run_t;

static void run_prog(run_t *r, char *const argv[], int64_t base_ms)
{
    int po[2], pe[2];
    cr_assert_eq(pipe2(po, O_CLOEXEC | O_NONBLOCK), 0, "pipe2: %s", strerror(errno));
    track_fd(po[0]);
    track_fd(po[1]);
    cr_assert_eq(pipe2(pe, O_CLOEXEC | O_NONBLOCK), 0, "pipe2: %s", strerror(errno));
    track_fd(pe[0]);
    track_fd(pe[1]);
    /* The child's ends are blocking (O_NONBLOCK is per open file). */
    fcntl(po[1], F_SETFL, 0);
    fcntl(pe[1], F_SETFL, 0);
    pid_t pid = spawn(argv, po[1], pe[1]);
    close_fd(&po[1]);
    close_fd(&pe[1]);
    int pidfd = open_pidfd(pid);
    sink_t sinks[2];
    sink_init(&sinks[0], po[0]);
    sink_init(&sinks[1], pe[0]);
    r->status = wait_child(pid, pidfd, sinks, 2, deadline(base_ms), argv[0]);
    close_fd(&pidfd);
    r->out = sinks[0];
    r->err = sinks[1];
}

static void run_free(run_t *r)
{
    sink_free(&r->out);
    sink_free(&r->err);
}

/* Runs the CLI with args (NULL-terminated) and returns when it exits. */
static void run_cli(run_t *r, const char *const args[])
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

/* Drops valgrind's own "==PID== ..." lines (it shares the child's stderr). */
static void strip_valgrind_lines(char *s)
{
    char *w = s;
    for (char *p = s; *p != '\0';) {
        char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) + 1 : strlen(p);
        bool vg = p[0] == '=' && p[1] == '=' && p[2] >= '0' && p[2] <= '9';
        if (!vg) {
            memmove(w, p, len);
            w += len;
        }
        p += len;
    }
    *w = '\0';
}

/* ------------------------------------------------------------ the server */

typedef struct {
    pid_t pid;
    int pidfd;
    sink_t err; /* its stderr so far */
    int http_port, line_port;
    int family;
} srv_t;

/*
 * Finds "appsrv: listening on SCHEME://HOST:PORT\n" as a whole line of
 * log and returns PORT, or -1 when there is no such line (yet).
 */
static int find_listen_port(const char *log, const char *scheme, const char *host)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "appsrv: listening on %s://%s:", scheme, host);
    size_t plen = strlen(prefix);
    for (const char *p = log; p != NULL && *p != '\0';) {
        if (strncmp(p, prefix, plen) == 0) {
            const char *d = p + plen;
            long port = 0;
            const char *q = d;
            while (*q >= '0' && *q <= '9' && q - d < 6)
                port = port * 10 + (*q++ - '0');
            if (q > d && *q == '\n' && port > 0 && port < 65536)
                return (int)port;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

/*
 * Starts "appsrv -p 0 -l 0 -t 2 EXTRA..." and waits (poll deadline) for
 * both listening lines, printed with shown_host ("127.0.0.1", "[::1]").
 */
static void srv_start_at(srv_t *s, int family, const char *shown_host, const char *const extra[])
{
    char *argv[32];
    size_t n = 0;
    argv[n++] = (char *)e2e_bin_path();
    static const char *const base[] = {"-p", "0", "-l", "0", "-t", "2"};
    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
        argv[n++] = (char *)base[i];
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        cr_assert_lt(n, 31);
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;

    int pe[2];
    cr_assert_eq(pipe2(pe, O_CLOEXEC | O_NONBLOCK), 0, "pipe2: %s", strerror(errno));
    track_fd(pe[0]);
    track_fd(pe[1]);
    fcntl(pe[1], F_SETFL, 0);
    s->family = family;
    s->pid = spawn(argv, -1, pe[1]);
    close_fd(&pe[1]);
    s->pidfd = open_pidfd(s->pid);
    sink_init(&s->err, pe[0]);

    int64_t dl = deadline(5000);
    for (;;) {
        s->http_port = find_listen_port(s->err.buf, "http", shown_host);
        s->line_port = find_listen_port(s->err.buf, "line", shown_host);
        if (s->http_port > 0 && s->line_port > 0)
            return;
        cr_assert(s->err.fd >= 0, "appsrv exited before both listening lines; stderr:\n%s",
                  s->err.buf);
        int left = remaining(dl);
        cr_assert(left > 0, "no listening lines for %s within the deadline; stderr so far:\n%s",
                  shown_host, s->err.buf);
        struct pollfd pfd = {.fd = s->err.fd, .events = POLLIN};
        poll(&pfd, 1, left);
        sink_read(&s->err);
    }
}

static void srv_start(srv_t *s, const char *const extra[])
{
    srv_start_at(s, AF_INET, "127.0.0.1", extra);
}

/* Reads whatever the server wrote to stderr meanwhile (non-blocking). */
static void srv_pump(srv_t *s)
{
    sink_read(&s->err);
}

/* Waits for the exit caused by an earlier signal; status must be 0. The
 * whole stderr is then in s->err.buf (valgrind's lines removed). */
static void srv_wait_ok(srv_t *s, const char *why)
{
    int st = wait_child(s->pid, s->pidfd, &s->err, 1, deadline(10000), why);
    close_fd(&s->pidfd);
    strip_valgrind_lines(s->err.buf);
    cr_assert(WIFEXITED(st), "%s: appsrv did not exit normally (status 0x%x); stderr:\n%s", why,
              (unsigned)st, s->err.buf);
    cr_assert_eq(WEXITSTATUS(st), 0, "%s: appsrv exit status %d, want 0; stderr:\n%s", why,
                 WEXITSTATUS(st), s->err.buf);
}

/* Sends sig and expects a prompt exit with status 0. */
static void srv_stop_sig(srv_t *s, int sig)
{
    cr_assert_eq(kill(s->pid, sig), 0, "kill: %s", strerror(errno));
    srv_wait_ok(s, sig == SIGINT ? "SIGINT" : "SIGTERM");
}

static void srv_stop(srv_t *s)
{
    srv_stop_sig(s, SIGTERM);
}

static void srv_free(srv_t *s)
{
    sink_free(&s->err);
}

/* ------------------------------------------------------------ the client */

typedef struct {
    int fd;
    char *buf; /* received, not yet consumed */
    size_t len, cap;
} conn_t;

static void conn_open_host(conn_t *c, int family, int port, int rcvbuf)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    c->fd = track_fd(fd);
    if (rcvbuf > 0)
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    int rc;
    if (family == AF_INET6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                                 .sin6_port = htons((uint16_t)port),
                                 .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    }
    cr_assert_eq(rc, 0, "connect to port %d: %s", port, strerror(errno));
    cr_assert_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    c->cap = 16384;
    c->len = 0;
    c->buf = tmalloc(c->cap);
}

static void conn_open(conn_t *c, const srv_t *s, int port)
{
    conn_open_host(c, s->family, port, 0);
}

static void conn_close(conn_t *c)
{
    close_fd(&c->fd);
    tfree(c->buf);
    c->buf = NULL;
}

/* Sends all of data; returns 0 or -errno (EPIPE, ECONNRESET, ETIMEDOUT). */
static int conn_try_send(conn_t *c, const void *data, size_t len, int64_t dl)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int left = remaining(dl);
        if (left == 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        poll(&pfd, 1, left);
    }
    return 0;
}

static void conn_send(conn_t *c, const void *data, size_t len)
{
    int rc = conn_try_send(c, data, len, deadline(10000));
    cr_assert_eq(rc, 0, "send of %zu bytes failed: %s", len, strerror(-rc));
}

static void conn_sends(conn_t *c, const char *s)
{
    conn_send(c, s, strlen(s));
}

/* Receives more into c->buf: >0 bytes, 0 at EOF, or -errno (-ETIMEDOUT). */
static ssize_t conn_fill(conn_t *c, int64_t dl)
{
    for (;;) {
        if (c->cap - c->len < 16384) {
            c->cap *= 2;
            c->buf = trealloc(c->buf, c->cap);
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n >= 0) {
            c->len += (size_t)n;
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int left = remaining(dl);
        if (left == 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        poll(&pfd, 1, left);
    }
}

static void conn_consume(conn_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* The peer closed (EOF or reset) with nothing more sent. Returns the
 * errno of a reset, 0 for a clean EOF. */
static int conn_expect_close(conn_t *c, int64_t dl, const char *what)
{
    for (;;) {
        cr_assert_eq(c->len, 0, "%s: unexpected bytes before the close: \"%.*s\"", what,
                     (int)(c->len > 200 ? 200 : c->len), c->buf);
        ssize_t n = conn_fill(c, dl);
        cr_assert_neq(n, -ETIMEDOUT, "%s: the connection was not closed within the deadline", what);
        if (n == 0)
            return 0;
        if (n < 0)
            return (int)-n;
    }
}

/* ------------------------------------------------------------------ HTTP */

typedef struct {
    int status;
    char status_line[256];
    char *head; /* header lines after the status line, each ending "\r\n" */
    char *body;
    size_t body_len;
} resp_t;

static const char *mem_find(const char *h, size_t hlen, const char *n)
{
    size_t nlen = strlen(n);
    if (nlen == 0 || hlen < nlen)
        return NULL;
    for (size_t i = 0; i + nlen <= hlen; i++)
        if (h[i] == n[0] && memcmp(h + i, n, nlen) == 0)
            return h + i;
    return NULL;
}

/* Copies the first value of header name (OWS trimmed) into out and
 * returns how many times the field occurs. */
static int resp_header(const resp_t *r, const char *name, char *out, size_t cap)
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

/*
 * Reads one response (skipping 1xx). head_req: the request was HEAD, so
 * there is no body whatever Content-Length says. Content-Length must be
 * present (every appsrv response has one) and the body complete.
 */
static void http_read(conn_t *c, resp_t *r, bool head_req, int64_t dl)
{
    memset(r, 0, sizeof(*r));
    for (;;) {
        const char *end;
        while ((end = mem_find(c->buf, c->len, "\r\n\r\n")) == NULL) {
            ssize_t n = conn_fill(c, dl);
            cr_assert_gt(n, 0, "response head incomplete (%s); got %zu bytes: \"%.*s\"",
                         n == 0 ? "EOF" : strerror((int)-n), c->len,
                         (int)(c->len > 300 ? 300 : c->len), c->buf);
        }
        size_t hlen = (size_t)(end - c->buf) + 4;
        const char *sl_end = mem_find(c->buf, hlen, "\r\n");
        size_t sl_len = (size_t)(sl_end - c->buf);
        cr_assert_lt(sl_len, sizeof(r->status_line), "status line too long");
        memcpy(r->status_line, c->buf, sl_len);
        r->status_line[sl_len] = '\0';
        cr_assert(sl_len >= 12 && strncmp(r->status_line, "HTTP/1.1 ", 9) == 0 &&
                      r->status_line[12] == ' ',
                  "malformed status line \"%s\"", r->status_line);
        r->status = atoi(r->status_line + 9);
        size_t fields = hlen - sl_len - 2 - 2; /* without status line and blank line */
        r->head = tmalloc(fields + 1);
        memcpy(r->head, sl_end + 2, fields);
        r->head[fields] = '\0';
        conn_consume(c, hlen);
        if (r->status >= 100 && r->status < 200) {
            tfree(r->head);
            r->head = NULL;
            continue;
        }
        break;
    }
    char cl[64];
    char te[64];
    cr_assert_eq(resp_header(r, "Transfer-Encoding", te, sizeof(te)), 0,
                 "unexpected Transfer-Encoding \"%s\" on \"%s\"", te, r->status_line);
    cr_assert_eq(resp_header(r, "Content-Length", cl, sizeof(cl)), 1,
                 "want exactly one Content-Length on \"%s\"; headers:\n%s", r->status_line,
                 r->head);
    char *endp;
    unsigned long long want = strtoull(cl, &endp, 10);
    cr_assert(cl[0] >= '0' && cl[0] <= '9' && *endp == '\0', "bad Content-Length \"%s\"", cl);
    if (head_req)
        want = 0;
    while (c->len < want) {
        ssize_t n = conn_fill(c, dl);
        cr_assert_gt(n, 0, "body incomplete (%s): %zu of %llu bytes",
                     n == 0 ? "EOF" : strerror((int)-n), c->len, want);
    }
    r->body_len = (size_t)want;
    r->body = tmalloc(r->body_len + 1);
    memcpy(r->body, c->buf, r->body_len);
    r->body[r->body_len] = '\0';
    conn_consume(c, r->body_len);
}

static void resp_free(resp_t *r)
{
    tfree(r->head);
    tfree(r->body);
    r->head = r->body = NULL;
}

/* Status line, the one Content-Type and the body, all exact. */
static void expect_resp(const resp_t *r, const char *status_line, const char *ctype,
                        const void *body, size_t blen, const char *what)
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
static void http_do(conn_t *c, const char *req, resp_t *r)
{
    conn_sends(c, req);
    http_read(c, r, strncmp(req, "HEAD ", 5) == 0, deadline(5000));
}

/* "METHOD TARGET" on a fresh connection, checked exactly. */
static void http_check(const srv_t *s, const char *method, const char *target,
                       const char *status_line, const char *ctype, const char *body)
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

static void fill_pattern(char *p, size_t n, unsigned seed)
{
    uint32_t x = 2463534242u ^ seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (char)(x >> 24);
    }
}

/* POST/PUT /echo with body and optional Content-Type; checks the echo. */
static void echo_check(const srv_t *s, const char *method, const char *ctype, const char *body,
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

/* The header block minus the Date field (it may tick between two
 * responses), for "same headers" comparisons. */
static void headers_without_date(const char *head, char *out, size_t cap)
{
    size_t w = 0;
    for (const char *p = head; *p != '\0';) {
        const char *eol = strstr(p, "\r\n");
        size_t len = (size_t)(eol - p) + 2;
        /* Date and X-Request-ID differ from one response to the next. */
        if (strncasecmp(p, "Date:", 5) != 0 && strncasecmp(p, "X-Request-ID:", 13) != 0) {
            cr_assert_lt(w + len, cap);
            memcpy(out + w, p, len);
            w += len;
        }
        p += len;
    }
    out[w] = '\0';
}

/* ---------------------------------------------------------- line protocol */

/* Reads one response line, "\n" included, into out. */
static void line_read(conn_t *c, char *out, size_t cap, int64_t dl)
{
    const char *nl;
    while ((nl = memchr(c->buf, '\n', c->len)) == NULL) {
        ssize_t n = conn_fill(c, dl);
        cr_assert_gt(n, 0, "no complete response line (%s); got \"%.*s\"",
                     n == 0 ? "EOF" : strerror((int)-n), (int)(c->len > 200 ? 200 : c->len),
                     c->buf);
    }
    size_t len = (size_t)(nl - c->buf) + 1;
    cr_assert_lt(len, cap, "response line of %zu bytes too long", len);
    memcpy(out, c->buf, len);
    out[len] = '\0';
    conn_consume(c, len);
}

/* Sends req (its own line ending included) and expects exactly want. */
static void line_check(conn_t *c, const char *req, const char *want)
{
    conn_sends(c, req);
    char got[512];
    line_read(c, got, sizeof(got), deadline(5000));
    cr_assert_str_eq(got, want, "line request \"%s\": got \"%s\", want \"%s\"", req, got, want);
}

/* ====================================================== HTTP route table */

Test(cli, http_get_health, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(&c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "OK", 2, "GET /health");
    char v[128];
    cr_assert_eq(resp_header(&r, "Server", v, sizeof(v)), 1);
    cr_assert_str_eq(v, "appsrv/" APPSRV_VERSION_STRING);
    cr_assert_eq(resp_header(&r, "Date", v, sizeof(v)), 1);
    resp_free(&r);
    /* keep-alive by default: the same connection serves again */
    http_do(&c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "OK", 2, "second GET /health");
    resp_free(&r);
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, http_get_plaintext, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    http_check(&s, "GET", "/plaintext", "HTTP/1.1 200 OK", "text/plain", "Hello, World!");
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, http_get_json, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    http_check(&s, "GET", "/json", "HTTP/1.1 200 OK", "application/json",
               "{\"message\":\"Hello, World!\"}");
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, http_post_echo_with_content_type, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    char body[1024];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)(i % 256); /* every byte value: NUL, CR, LF, 0xff */
    echo_check(&s, "POST", "application/x-test; charset=binary", body, sizeof(body),
               "application/x-test; charset=binary");
    echo_check(&s, "POST", "text/plain", "hello\r\n\r\nworld", 14, "text/plain");
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, http_put_echo_with_content_type, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    char body[3000];
    fill_pattern(body, sizeof(body), 7);
    echo_check(&s, "PUT", "image/png", body, sizeof(body), "image/png");
    echo_check(&s, "PUT", "application/json", "{\"a\":1}", 7, "application/json");
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, http_echo_default_content_type, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    echo_check(&s, "POST", NULL, "no type\0here", 12, "application/octet-stream");
    echo_check(&s, "PUT", NULL, "put without type", 16, "application/octet-stream");
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, http_echo_empty_body, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    echo_check(&s, "POST", NULL, "", 0, "application/octet-stream");
    echo_check(&s, "PUT", "text/plain", "", 0, "text/plain");
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

/* SPEC §5: "with the request's Content-Type" - whatever its length. */
Test(cli, http_echo_long_content_type, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    char ct[700];
    int n = snprintf(ct, sizeof(ct), "application/x-long; note=");
    memset(ct + n, 'a', 600);
    ct[n + 600] = '\0';
    echo_check(&s, "POST", ct, "body", 4, ct);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, http_echo_chunked_body, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(
        &c,
        "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/x-chunks\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n1;ext=1\r\n \r\nb\r\nchunked wor\r\n2\r\nld\r\n0\r\nX-Trailer: 1\r\n\r\n",
        &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/x-chunks", "hello chunked world", 19,
                "chunked POST /echo");
    resp_free(&r);
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, http_post_echo_1mib_byte_exact, .timeout = TMO_BIG)
{
    srv_t s;
    srv_start(&s, NULL);
    size_t n = big_size();
    char *body = tmalloc(n);
    fill_pattern(body, n, 42);
    echo_check(&s, "POST", "application/octet-stream", body, n, "application/octet-stream");
    tfree(body);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, http_get_echo_query_decoding, .timeout = TMO)
{
    static const struct {
        const char *target, *want, *comment;
    } rows[] = {
        {"/echo?msg=hello", "hello", "plain"},
        {"/echo?msg=hello+world", "hello world", "'+' is a space"},
        {"/echo?msg=%48%65%6C%6c%6F", "Hello", "%XX, both hex cases"},
        {"/echo?msg=100%25+sure%21", "100% sure!", "%25 and '+' together"},
        {"/echo?msg=a%2Bb", "a+b", "%2B is a literal plus"},
        {"/echo?msg=%e2%82%ac%20", "\xe2\x82\xac ", "UTF-8 bytes"},
        {"/echo?msg=a%26b%3Dc", "a&b=c", "encoded separators stay"},
        {"/echo?x=1&msg=second&y=2", "second", "msg among other parameters"},
        {"/echo?msg=", "", "present but empty"},
    };
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.http_port);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char req[512];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", rows[i].target);
        resp_t r;
        http_do(&c, req, &r);
        char what[256];
        snprintf(what, sizeof(what), "GET %s (%s)", rows[i].target, rows[i].comment);
        expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", rows[i].want, strlen(rows[i].want), what);
        resp_free(&r);
    }
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, http_get_echo_without_msg_is_400, .timeout = TMO)
{
    static const char *const targets[] = {"/echo", "/echo?", "/echo?other=1", "/echo?msgx=1",
                                          "/echo?message=hi"};
    srv_t s;
    srv_start(&s, NULL);
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
        http_check(&s, "GET", targets[i], "HTTP/1.1 400 Bad Request", NULL, NULL);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

/* Allow must be exactly ", "-separated methods, each once, the set want. */
static void expect_allow(const resp_t *r, const char *const want[], size_t nwant, const char *what)
{
    char allow[256];
    cr_assert_eq(resp_header(r, "Allow", allow, sizeof(allow)), 1,
                 "%s: want one Allow header; headers:\n%s", what, r->head);
    size_t seen = 0;
    bool used[8] = {false};
    for (char *p = allow;;) {
        char *comma = strstr(p, ", ");
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        bool found = false;
        for (size_t i = 0; i < nwant; i++) {
            if (strlen(want[i]) == len && strncmp(p, want[i], len) == 0) {
                cr_assert(!used[i], "%s: %s twice in Allow \"%s\"", what, want[i], allow);
                used[i] = found = true;
            }
        }
        cr_assert(found, "%s: unexpected method in Allow \"%s\"", what, allow);
        seen++;
        if (comma == NULL)
            break;
        p = comma + 2;
    }
    cr_assert_eq(seen, nwant, "%s: Allow \"%s\" has %zu methods, want %zu", what, allow, seen,
                 nwant);
}

Test(cli, http_known_path_other_method_is_405, .timeout = TMO)
{
    static const char *const get_only[] = {"GET", "HEAD"};
    static const char *const echo[] = {"GET", "HEAD", "POST", "PUT"};
    static const struct {
        const char *method, *path;
    } rows[] = {
        {"POST", "/health"},    {"PUT", "/health"}, {"DELETE", "/plaintext"},
        {"POST", "/plaintext"}, {"PUT", "/json"},   {"PATCH", "/json"},
        {"DELETE", "/echo"},    {"PATCH", "/echo"}, {"OPTIONS", "/echo"},
    };
    srv_t s;
    srv_start(&s, NULL);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bool is_echo = strcmp(rows[i].path, "/echo") == 0;
        conn_t c;
        conn_open(&c, &s, s.http_port);
        char req[256];
        snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc",
                 rows[i].method, rows[i].path);
        resp_t r;
        http_do(&c, req, &r);
        char what[128];
        snprintf(what, sizeof(what), "%s %s", rows[i].method, rows[i].path);
        expect_resp(&r, "HTTP/1.1 405 Method Not Allowed", NULL, NULL, 0, what);
        if (is_echo)
            expect_allow(&r, echo, 4, what);
        else
            expect_allow(&r, get_only, 2, what);
        resp_free(&r);
        conn_close(&c);
    }
    /* GET-only paths list exactly "GET, HEAD". */
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(&c, "POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", &r);
    char allow[128];
    resp_header(&r, "Allow", allow, sizeof(allow));
    cr_assert_str_eq(allow, "GET, HEAD");
    resp_free(&r);
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, http_unknown_path_is_404, .timeout = TMO)
{
    static const struct {
        const char *method, *target;
    } rows[] = {
        {"GET", "/"},           {"GET", "/nope"},     {"GET", "/health/x"},
        {"GET", "/Health"},     {"GET", "/echox"},    {"GET", "/echo/"},
        {"POST", "/nope"},      {"DELETE", "/x/y/z"}, {"GET", "/plaintext.txt"},
        {"GET", "/nope?msg=1"},
    };
    srv_t s;
    srv_start(&s, NULL);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        http_check(&s, rows[i].method, rows[i].target, "HTTP/1.1 404 Not Found", "text/plain",
                   "Not Found");
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

/*
 * HEAD wherever GET works: the same status and headers (Date aside), no
 * body. HEAD and GET alternate pipelined on one connection, so a body
 * after a HEAD answer would break the framing of the next response.
 */
Test(cli, http_head_like_get_without_body, .timeout = TMO)
{
    static const char *const targets[] = {"/health",          "/plaintext", "/json",
                                          "/echo?msg=a+b%21", "/echo",      "/nope"};
    size_t nt = sizeof(targets) / sizeof(targets[0]);
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.http_port);
    char req[4096];
    size_t len = 0;
    for (size_t i = 0; i < nt; i++) {
        len += (size_t)snprintf(req + len, sizeof(req) - len,
                                "HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                                "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                                targets[i], targets[i]);
    }
    conn_send(&c, req, len);
    for (size_t i = 0; i < nt; i++) {
        resp_t h, g;
        http_read(&c, &h, true, deadline(5000));
        http_read(&c, &g, false, deadline(5000));
        cr_assert_str_eq(h.status_line, g.status_line, "HEAD %s: \"%s\", GET: \"%s\"", targets[i],
                         h.status_line, g.status_line);
        char hh[2048], gh[2048];
        headers_without_date(h.head, hh, sizeof(hh));
        headers_without_date(g.head, gh, sizeof(gh));
        cr_assert_str_eq(hh, gh, "HEAD %s headers differ from GET's:\n%s\nvs\n%s", targets[i], hh,
                         gh);
        cr_assert_eq(h.body_len, 0);
        resp_free(&h);
        resp_free(&g);
    }
    cr_assert_eq(c.len, 0, "bytes after the last response: \"%.*s\"", (int)c.len, c.buf);
    /* The exact GET answers were checked elsewhere; pin two HEAD ones. */
    resp_t r;
    http_do(&c, "HEAD /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "", 0, "HEAD /plaintext");
    char cl[32];
    resp_header(&r, "Content-Length", cl, sizeof(cl));
    cr_assert_str_eq(cl, "13");
    resp_free(&r);
    http_do(&c, "HEAD /json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "application/json", "", 0, "HEAD /json");
    resp_header(&r, "Content-Length", cl, sizeof(cl));
    cr_assert_str_eq(cl, "27");
    resp_free(&r);
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

/* ==================================================== line protocol table */

Test(cli, line_ping, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    line_check(&c, "PING\r\n", "200 OK PONG\n");
    line_check(&c, "PING\n", "200 OK PONG\n");
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, line_echo, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    line_check(&c, "ECHO some text\r\n", "200 OK some text\n");
    line_check(&c, "ECHO some text\n", "200 OK some text\n");
    line_check(&c, "ECHO  two  spaces \r\n", "200 OK  two  spaces \n");
    line_check(&c, "ECHO PING\r\n", "200 OK PING\n");
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, line_quit_then_close, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    line_check(&c, "PING\r\n", "200 OK PONG\n");
    line_check(&c, "QUIT\r\n", "200 OK BYE\n");
    int err = conn_expect_close(&c, deadline(5000), "after QUIT");
    cr_assert_eq(err, 0, "after QUIT: reset (%s) instead of a clean EOF", strerror(err));
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, line_empty_is_400, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    line_check(&c, "\r\n", "400 Bad Request\n");
    line_check(&c, "\n", "400 Bad Request\n");
    line_check(&c, "PING\r\n", "200 OK PONG\n"); /* still open */
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, line_unknown_is_404, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    line_check(&c, "FOO\r\n", "404 Not Found\n");
    line_check(&c, "PINGX\r\n", "404 Not Found\n");
    line_check(&c, "GET / HTTP/1.1\r\n", "404 Not Found\n");
    line_check(&c, "PING\r\n", "200 OK PONG\n"); /* still open */
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

/* 64 KiB of line is fine; one byte more is 413 and the close. */
Test(cli, line_limit_boundary, .timeout = TMO)
{
    size_t max = 64 * 1024;
    srv_t s;
    srv_start(&s, NULL);
    char *line = tmalloc(max + 3);
    memcpy(line, "ECHO ", 5);
    memset(line + 5, 'x', max - 5);
    memcpy(line + max, "\r\n", 2);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    conn_send(&c, line, max + 2);
    char *got = tmalloc(max + 16);
    line_read(&c, got, max + 16, deadline(5000));
    cr_assert_eq(strlen(got), 7 + (max - 5) + 1, "a %zu-byte line: got \"%.40s...\"", max, got);
    cr_assert(strncmp(got, "200 OK xxx", 10) == 0, "got \"%.40s\"", got);
    /* now one byte over, all bytes sent (nothing left unread) */
    line[max] = 'x';
    line[max + 1] = '\n';
    conn_send(&c, line, max + 2);
    line_read(&c, got, max + 16, deadline(5000));
    cr_assert_str_eq(got, "413 Payload Too Large\n");
    conn_expect_close(&c, deadline(5000), "after 413");
    conn_close(&c);
    tfree(got);
    tfree(line);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

/* A line far over the limit: 413 arrives before the close, even though the
 * client is still sending (a close over unread bytes resets the
 * connection; the 413 must not be lost to it). */
Test(cli, line_too_long_is_413_then_close, .timeout = TMO)
{
    size_t n = 200 * 1024;
    srv_t s;
    srv_start(&s, NULL);
    char *line = tmalloc(n + 2);
    memcpy(line, "ECHO ", 5);
    memset(line + 5, 'y', n - 5);
    memcpy(line + n, "\r\n", 2);
    conn_t c;
    conn_open(&c, &s, s.line_port);
    int rc = conn_try_send(&c, line, n + 2, deadline(5000));
    cr_assert(rc == 0 || rc == -EPIPE || rc == -ECONNRESET, "send: %s", strerror(-rc));
    char got[256];
    line_read(&c, got, sizeof(got), deadline(5000));
    cr_assert_str_eq(got, "413 Payload Too Large\n");
    conn_expect_close(&c, deadline(5000), "after 413");
    conn_close(&c);
    /* and without any newline at all */
    conn_open(&c, &s, s.line_port);
    rc = conn_try_send(&c, line, n, deadline(5000));
    cr_assert(rc == 0 || rc == -EPIPE || rc == -ECONNRESET, "send: %s", strerror(-rc));
    line_read(&c, got, sizeof(got), deadline(5000));
    cr_assert_str_eq(got, "413 Payload Too Large\n");
    conn_expect_close(&c, deadline(5000), "after 413 (no newline)");
    conn_close(&c);
    tfree(line);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, line_pipelined_in_order, .timeout = TMO_BIG)
{
    int count = pipeline_count();
    srv_t s;
    srv_start(&s, NULL);
    char *req = tmalloc((size_t)count * 32 + 16);
    char *want = tmalloc((size_t)count * 32 + 16);
    size_t rl = 0, wl = 0;
    for (int i = 0; i < count; i++) {
        const char *eol = i % 2 ? "\r\n" : "\n";
        switch (i % 4) {
        case 0:
            rl += (size_t)sprintf(req + rl, "PING%s", eol);
            wl += (size_t)sprintf(want + wl, "200 OK PONG\n");
            break;
        case 1:
            rl += (size_t)sprintf(req + rl, "ECHO line %d%s", i, eol);
            wl += (size_t)sprintf(want + wl, "200 OK line %d\n", i);
            break;
        case 2:
            rl += (size_t)sprintf(req + rl, "NOPE %d%s", i, eol);
            wl += (size_t)sprintf(want + wl, "404 Not Found\n");
            break;
        default:
            rl += (size_t)sprintf(req + rl, "%s", i % 8 == 3 ? eol : "ECHO x\r\n");
            wl += (size_t)sprintf(want + wl, "%s", i % 8 == 3 ? "400 Bad Request\n" : "200 OK x\n");
            break;
        }
    }
    rl += (size_t)sprintf(req + rl, "QUIT\r\n");
    wl += (size_t)sprintf(want + wl, "200 OK BYE\n");
    conn_t c;
    conn_open(&c, &s, s.line_port);
    ssize_t sent = send(c.fd, req, rl, MSG_NOSIGNAL); /* all in one write */
    cr_assert_gt(sent, 0, "send: %s", strerror(errno));
    if ((size_t)sent < rl) /* a short write still leaves them pipelined */
        conn_send(&c, req + sent, rl - (size_t)sent);
    int64_t dl = deadline(10000);
    for (;;) {
        ssize_t n = conn_fill(&c, dl);
        cr_assert_geq(n, 0, "after %zu of %zu bytes: %s", c.len, wl, strerror((int)-n));
        if (n == 0)
            break;
    }
    cr_assert_eq(c.len, wl, "got %zu bytes of responses, want %zu", c.len, wl);
    for (size_t i = 0; i < wl; i++) {
        if (c.buf[i] != want[i]) {
            size_t ls = i;
            while (ls > 0 && want[ls - 1] != '\n')
                ls--;
            cr_assert_fail("responses out of order at byte %zu: got \"%.30s\", want \"%.30s\"", i,
                           c.buf + ls, want + ls);
        }
    }
    conn_close(&c);
    tfree(req);
    tfree(want);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

/* ================================================================= flags */

static void expect_bad_usage(const char *const args[], const char *what)
{
    run_t r;
    run_cli(&r, args);
    strip_valgrind_lines(r.err.buf);
    cr_assert(WIFEXITED(r.status), "%s: did not exit normally (0x%x)", what, (unsigned)r.status);
    cr_assert_eq(WEXITSTATUS(r.status), 2, "%s: exit status %d, want 2; stderr:\n%s", what,
                 WEXITSTATUS(r.status), r.err.buf);
    cr_assert(strstr(r.err.buf, "usage: appsrv") != NULL, "%s: no usage on stderr:\n%s", what,
              r.err.buf);
    cr_assert(strstr(r.err.buf, "listening on") == NULL, "%s: it started listening", what);
    cr_assert_eq(r.out.len, 0, "%s: stdout not empty: \"%s\"", what, r.out.buf);
    run_free(&r);
}

Test(cli, flag_unknown_long, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"-p", "0", "--bogus", NULL}, "--bogus");
    assert_all_released();
}

Test(cli, flag_unknown_short, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"-p", "0", "-z", NULL}, "-z");
    assert_all_released();
}

Test(cli, flag_port_out_of_range, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"--port", "70000", NULL}, "--port 70000");
    expect_bad_usage((const char *const[]){"-p", "0", "--line-port", "65536", NULL},
                     "--line-port 65536");
    assert_all_released();
}

Test(cli, flag_port_not_a_number, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"--port", "abc", NULL}, "--port abc");
    expect_bad_usage((const char *const[]){"--port", "-1", NULL}, "--port -1");
    expect_bad_usage((const char *const[]){"--port", "80x", NULL}, "--port 80x");
    expect_bad_usage((const char *const[]){"--port", "", NULL}, "--port ''");
    assert_all_released();
}

Test(cli, flag_threads_zero, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"-p", "0", "--threads", "0", NULL}, "--threads 0");
    expect_bad_usage((const char *const[]){"-p", "0", "-t", "abc", NULL}, "-t abc");
    assert_all_released();
}

Test(cli, flag_port_without_value, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"--port", NULL}, "--port (no value)");
    expect_bad_usage((const char *const[]){"-p", NULL}, "-p (no value)");
    assert_all_released();
}

Test(cli, flag_stray_argument, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"-p", "0", "extra", NULL}, "stray argument");
    assert_all_released();
}

Test(cli, flag_other_values_out_of_range, .timeout = TMO)
{
    expect_bad_usage((const char *const[]){"-p", "0", "--max-conns", "0", NULL}, "--max-conns 0");
    expect_bad_usage((const char *const[]){"-p", "0", "--idle-timeout", "0", NULL},
                     "--idle-timeout 0");
    expect_bad_usage((const char *const[]){"-p", "0", "--head-timeout", "x", NULL},
                     "--head-timeout x");
    expect_bad_usage((const char *const[]){"-p", "0", "--max-body", "-5", NULL}, "--max-body -5");
    expect_bad_usage((const char *const[]){"-p", "0", "--access-log=1", NULL}, "--access-log=1");
    assert_all_released();
}

static void expect_version(const char *flag)
{
    run_t r;
    run_cli(&r, (const char *const[]){flag, NULL});
    strip_valgrind_lines(r.err.buf);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s: status 0x%x", flag,
              (unsigned)r.status);
    cr_assert_str_eq(r.out.buf, "appsrv " APPSRV_VERSION_STRING "\n", "%s printed \"%s\"", flag,
                     r.out.buf);
    cr_assert_str_eq(r.err.buf, "", "%s wrote to stderr: \"%s\"", flag, r.err.buf);
    run_free(&r);
}

Test(cli, flag_version, .timeout = TMO)
{
    expect_version("-V");
    expect_version("--version");
    assert_all_released();
}

static void expect_help(const char *flag)
{
    static const char *const flags[] = {
        "--host",       "--port",     "--line-port",    "--threads",
        "--max-conns",  "--max-body", "--idle-timeout", "--head-timeout",
        "--access-log", "--quiet",    "--version",      "--help",
    };
    run_t r;
    run_cli(&r, (const char *const[]){flag, NULL});
    strip_valgrind_lines(r.err.buf);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s: status 0x%x", flag,
              (unsigned)r.status);
    cr_assert(strncmp(r.out.buf, "usage: appsrv", 13) == 0, "%s printed \"%s\"", flag, r.out.buf);
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        cr_assert(strstr(r.out.buf, flags[i]) != NULL, "%s: help does not mention %s", flag,
                  flags[i]);
    cr_assert_str_eq(r.err.buf, "", "%s wrote to stderr: \"%s\"", flag, r.err.buf);
    run_free(&r);
}

Test(cli, flag_help, .timeout = TMO)
{
    expect_help("-h");
    expect_help("--help");
    assert_all_released();
}

/* ======================================================= server options */

Test(cli, max_body_limits_echo, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"--max-body", "16", NULL});
    echo_check(&s, "POST", "text/plain", "0123456789abcdef", 16, "text/plain");
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(&c,
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 17\r\n\r\n"
            "0123456789abcdefg",
            &r);
    cr_assert(strncmp(r.status_line, "HTTP/1.1 413 ", 13) == 0,
              "17 bytes over --max-body 16: \"%s\"", r.status_line);
    resp_free(&r);
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, head_timeout_gives_408, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"--head-timeout", "1", NULL});
    conn_t c;
    conn_open(&c, &s, s.http_port);
    conn_sends(&c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"); /* never finished */
    resp_t r;
    http_read(&c, &r, false, deadline(5000));
    cr_assert_str_eq(r.status_line, "HTTP/1.1 408 Request Timeout");
    resp_free(&r);
    conn_expect_close(&c, deadline(5000), "after 408");
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, idle_timeout_closes_keepalive, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"--idle-timeout", "1", NULL});
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(&c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "OK", 2, "GET /health");
    resp_free(&r);
    int64_t t0 = now_ms();
    conn_expect_close(&c, deadline(5000), "idle keep-alive with --idle-timeout 1");
    cr_assert_geq(now_ms() - t0, 500, "closed after %lld ms, before the 1 s idle timeout",
                  (long long)(now_ms() - t0));
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

/* SPEC §4: connections beyond the cap are refused promptly (503 or close). */
Test(cli, max_conns_refuses_extra, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"--max-conns", "1", "-t", "1", NULL});
    conn_t a;
    conn_open(&a, &s, s.http_port);
    resp_t r;
    http_do(&a, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "OK", 2, "first connection");
    resp_free(&r);
    /* Busy (a head in progress): an idle one would make room instead. */
    const char *part = "GET /plaintext HTTP/1.1\r\n";
    cr_assert_eq(conn_try_send(&a, part, strlen(part), deadline(5000)), 0);
    poll(NULL, 0, 50);
    conn_t b;
    conn_open(&b, &s, s.http_port);
    const char *get = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    int rc = conn_try_send(&b, get, strlen(get), deadline(5000));
    cr_assert(rc == 0 || rc == -EPIPE || rc == -ECONNRESET);
    /* either 503 and close, or just the close */
    int64_t dl = deadline(5000);
    ssize_t n;
    while ((n = conn_fill(&b, dl)) > 0) {
    }
    cr_assert_neq(n, -ETIMEDOUT, "connection over --max-conns 1 neither answered nor closed");
    if (b.len > 0)
        cr_assert(strncmp(b.buf, "HTTP/1.1 503 ", 13) == 0, "over the cap: \"%.*s\"",
                  (int)(b.len > 100 ? 100 : b.len), b.buf);
    conn_close(&b);
    /* the first one still works */
    http_do(&a, "Host: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "Hello, World!", 13, "first connection");
    resp_free(&r);
    conn_close(&a);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

/* ======================================================= signals, stop */

/* An idle keep-alive connection: one request answered, then quiet. */
static void open_idle(conn_t *c, const srv_t *s)
{
    conn_open(c, s, s->http_port);
    resp_t r;
    http_do(c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "text/plain", "OK", 2, "idle connection");
    resp_free(&r);
}

Test(cli, sigint_exits_0_and_closes_idle, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"--idle-timeout", "86400", NULL});
    conn_t idle, lidle;
    open_idle(&idle, &s);
    conn_open(&lidle, &s, s.line_port);
    line_check(&lidle, "PING\r\n", "200 OK PONG\n");
    cr_assert_eq(kill(s.pid, SIGINT), 0);
    conn_expect_close(&idle, deadline(5000), "idle HTTP connection at SIGINT");
    conn_expect_close(&lidle, deadline(5000), "idle line connection at SIGINT");
    srv_wait_ok(&s, "SIGINT");
    conn_close(&idle);
    conn_close(&lidle);
    srv_free(&s);
    assert_all_released();
}

Test(cli, sigterm_exits_0_and_closes_idle, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"--idle-timeout", "86400", NULL});
    conn_t idle;
    open_idle(&idle, &s);
    cr_assert_eq(kill(s.pid, SIGTERM), 0);
    conn_expect_close(&idle, deadline(5000), "idle HTTP connection at SIGTERM");
    srv_wait_ok(&s, "SIGTERM");
    conn_close(&idle);
    srv_free(&s);
    assert_all_released();
}

/* The most a socket send buffer may grow to (tcp_wmem max), 4 MiB when
 * unknown: a response larger than that cannot all sit in the kernel. */
static size_t tcp_wmem_max(void)
{
    size_t v = 4u << 20;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "re");
    if (f != NULL) {
        unsigned long a, b, c;
        if (fscanf(f, "%lu %lu %lu", &a, &b, &c) == 3 && c > 0)
            v = (size_t)c;
        fclose(f);
    }
    return v;
}

/*
 * SIGTERM while a big echo is read slowly (4 KiB receive buffer): the
 * stop has visibly begun (an idle connection got closed) before the client
 * reads on, and the whole response still arrives; exit 0. The body is
 * 1 MiB more than the kernel could buffer for the server (tcp_wmem max),
 * so part of the response is still in appsrv when SIGTERM arrives and the
 * server has to keep sending it - with a 1 MiB body the kernel holds it all
 * and an early exit would go unnoticed.
 */
Test(cli, sigterm_finishes_response_in_flight, .timeout = TMO_BIG)
{
    size_t n = tcp_wmem_max() + (1u << 20);
    if (n > (64u << 20))
        n = 64u << 20;
    char max_body[32];
    snprintf(max_body, sizeof(max_body), "%zu", n);
    srv_t s;
    /* no timeout may close anything during the test: only the stop */
    srv_start(&s, (const char *const[]){"--max-body", max_body, "--head-timeout", "86400",
                                        "--idle-timeout", "86400", NULL});
    char *body = tmalloc(n);
    fill_pattern(body, n, 99);
    conn_t idle, slow;
    open_idle(&idle, &s);
    conn_open_host(&slow, AF_INET, s.http_port, 4096);
    char head[256];
    int hl =
        snprintf(head, sizeof(head),
                 "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-slow\r\n"
                 "Content-Length: %zu\r\n\r\n",
                 n);
    conn_send(&slow, head, (size_t)hl);
    conn_send(&slow, body, n);
    /* the response has started: its head and some body are here */
    int64_t dl = deadline(10000);
    const char *e;
    while ((e = mem_find(slow.buf, slow.len, "\r\n\r\n")) == NULL ||
           (size_t)(e - slow.buf) + 4 >= slow.len) {
        ssize_t got = conn_fill(&slow, dl);
        cr_assert_gt(got, 0, "echo response did not start: %s", strerror((int)-got));
    }
    cr_assert_eq(kill(s.pid, SIGTERM), 0);
    conn_expect_close(&idle, deadline(5000), "idle connection at SIGTERM");
    resp_t r;
    http_read(&slow, &r, false, deadline(60000));
    expect_resp(&r, "HTTP/1.1 200 OK", "application/x-slow", body, n, "echo in flight at SIGTERM");
    resp_free(&r);
    conn_expect_close(&slow, deadline(5000),
                      "connection whose in-flight response just finished, stop pending");
    srv_wait_ok(&s, "SIGTERM with a response in flight");
    conn_close(&idle);
    conn_close(&slow);
    tfree(body);
    srv_free(&s);
    assert_all_released();
}

/*
 * SIGTERM while the request body is still arriving: that request is in
 * flight too (SPEC §4 "finishes the requests in flight"). "Expect:
 * 100-continue" makes it observable that appsrv has parsed the head and
 * waits for the body before the signal is sent (without it, a request
 * still unread in the kernel may fairly be dropped with the connection).
 */
Test(cli, sigterm_finishes_request_body_in_flight, .timeout = TMO_BIG)
{
    srv_t s;
    srv_start(&s,
              (const char *const[]){"--head-timeout", "86400", "--idle-timeout", "86400", NULL});
    size_t n = 256 * 1024;
    char *body = tmalloc(n);
    fill_pattern(body, n, 5);
    conn_t idle, up;
    open_idle(&idle, &s);
    conn_open(&up, &s, s.http_port);
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "PUT /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      n);
    conn_send(&up, head, (size_t)hl);
    char line[256];
    line_read(&up, line, sizeof(line), deadline(5000));
    cr_assert_str_eq(line, "HTTP/1.1 100 Continue\r\n");
    line_read(&up, line, sizeof(line), deadline(5000));
    cr_assert_str_eq(line, "\r\n", "100 Continue with header fields: \"%s\"", line);
    conn_send(&up, body, n / 2);
    cr_assert_eq(kill(s.pid, SIGTERM), 0);
    conn_expect_close(&idle, deadline(5000), "idle connection at SIGTERM");
    int rc = conn_try_send(&up, body + n / 2, n - n / 2, deadline(10000));
    cr_assert_eq(rc, 0, "rest of the body after SIGTERM: %s (request dropped)", strerror(-rc));
    resp_t r;
    http_read(&up, &r, false, deadline(20000));
    expect_resp(&r, "HTTP/1.1 200 OK", "application/octet-stream", body, n,
                "PUT /echo in flight at SIGTERM");
    resp_free(&r);
    conn_expect_close(&up, deadline(5000), "finished connection after SIGTERM");
    srv_wait_ok(&s, "SIGTERM with a request body in flight");
    conn_close(&idle);
    conn_close(&up);
    tfree(body);
    srv_free(&s);
    assert_all_released();
}

/* ===================================================== logging, -q, IPv6 */

/* The stderr lines that are not the CLI's own "appsrv: ..." lines. */
static size_t request_lines(char *log, char *lines[], size_t max)
{
    size_t n = 0;
    for (char *p = strtok(log, "\n"); p != NULL; p = strtok(NULL, "\n"))
        if (strncmp(p, "appsrv: ", 8) != 0 && n < max)
            lines[n++] = p;
    return n;
}

Test(cli, access_log_one_line_per_request, .timeout = TMO)
{
    static const struct {
        const char *a, *b;
    } want[] = {
        {"GET /health", " 200 "},      {"POST /echo", " 200 "}, {"GET /nope", " 404 "},
        {"GET /echo?msg=hi", " 200 "}, {"PING", " 200 "},       {"BOGUS", " 404 "},
    };
    srv_t s;
    srv_start(&s, (const char *const[]){"--access-log", NULL});
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(&c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    resp_free(&r);
    http_do(&c, "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\nhi", &r);
    resp_free(&r);
    http_do(&c, "GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    resp_free(&r);
    http_do(&c, "GET /echo?msg=hi HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &r);
    resp_free(&r);
    conn_close(&c);
    conn_open(&c, &s, s.line_port);
    line_check(&c, "PING\r\n", "200 OK PONG\n");
    line_check(&c, "BOGUS\r\n", "404 Not Found\n");
    conn_close(&c);
    srv_pump(&s);
    srv_stop(&s);
    char *lines[32];
    size_t n = request_lines(s.err.buf, lines, 32);
    size_t nw = sizeof(want) / sizeof(want[0]);
    cr_assert_eq(n, nw, "%zu access-log lines, want %zu (one per request)", n, nw);
    bool used[32] = {false};
    for (size_t i = 0; i < nw; i++) {
        bool found = false;
        for (size_t j = 0; j < n && !found; j++) {
            if (!used[j] && strstr(lines[j], want[i].a) != NULL &&
                strstr(lines[j], want[i].b) != NULL)
                used[j] = found = true;
        }
        cr_assert(found, "no access-log line with \"%s\" and \"%s\"", want[i].a, want[i].b);
    }
    srv_free(&s);
    assert_all_released();
}

Test(cli, no_access_log_by_default, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, NULL);
    http_check(&s, "GET", "/health", "HTTP/1.1 200 OK", "text/plain", "OK");
    conn_t c;
    conn_open(&c, &s, s.line_port);
    line_check(&c, "PING\r\n", "200 OK PONG\n");
    conn_close(&c);
    srv_stop(&s);
    char *lines[8];
    size_t n = request_lines(s.err.buf, lines, 8);
    cr_assert_eq(n, 0, "request lines without --access-log: \"%s\"", n ? lines[0] : "");
    srv_free(&s);
    assert_all_released();
}

/* -q: the listening lines stay (srv_start read them); nothing else. */
Test(cli, quiet_keeps_listening_lines_only, .timeout = TMO)
{
    srv_t s;
    srv_start(&s, (const char *const[]){"-q", NULL});
    http_check(&s, "GET", "/health", "HTTP/1.1 200 OK", "text/plain", "OK");
    srv_stop(&s);
    char want[256];
    snprintf(want, sizeof(want),
             "appsrv: listening on http://127.0.0.1:%d\nappsrv: listening on line://127.0.0.1:%d\n",
             s.http_port, s.line_port);
    cr_assert_str_eq(s.err.buf, want, "-q stderr:\n%s", s.err.buf);
    srv_free(&s);
    /* --quiet the same */
    srv_start(&s, (const char *const[]){"--quiet", NULL});
    srv_stop(&s);
    snprintf(want, sizeof(want),
             "appsrv: listening on http://127.0.0.1:%d\nappsrv: listening on line://127.0.0.1:%d\n",
             s.http_port, s.line_port);
    cr_assert_str_eq(s.err.buf, want, "--quiet stderr:\n%s", s.err.buf);
    srv_free(&s);
    assert_all_released();
}

/* -q never silences errors: a port in use is reported, exit status 1. */
static void expect_listen_error(const char *flag)
{
    int fd = track_fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", ntohs(a.sin_port));
    run_t r;
    if (strcmp(flag, "-p") == 0)
        run_cli(&r, (const char *const[]){"-q", "-t", "1", "-p", port, NULL});
    else
        run_cli(&r, (const char *const[]){"-q", "-t", "1", "-p", "0", "-l", port, NULL});
    strip_valgrind_lines(r.err.buf);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1,
              "%s on a port in use: status 0x%x, want exit 1; stderr:\n%s", flag,
              (unsigned)r.status, r.err.buf);
    cr_assert(strstr(r.err.buf, port) != NULL && strncmp(r.err.buf, "appsrv: ", 8) == 0,
              "-q %s on a port in use: no error naming port %s on stderr:\n%s", flag, port,
              r.err.buf);
    cr_assert(strstr(r.err.buf, "listening on line") == NULL, "stderr:\n%s", r.err.buf);
    run_free(&r);
    close_fd(&fd);
}

Test(cli, quiet_keeps_errors_port_in_use, .timeout = TMO)
{
    expect_listen_error("-p");
    expect_listen_error("-l");
    assert_all_released();
}

static bool have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

Test(cli, ipv6_host, .timeout = TMO)
{
    if (!have_ipv6_loopback())
        cr_skip_test("no IPv6 loopback (::1) here");
    srv_t s;
    srv_start_at(&s, AF_INET6, "[::1]", (const char *const[]){"--host", "::1", NULL});
    conn_t c;
    conn_open(&c, &s, s.http_port);
    resp_t r;
    http_do(&c, "GET /json HTTP/1.1\r\nHost: [::1]\r\n\r\n", &r);
    expect_resp(&r, "HTTP/1.1 200 OK", "application/json", "{\"message\":\"Hello, World!\"}", 27,
                "GET /json over IPv6");
    resp_free(&r);
    conn_close(&c);
    conn_open(&c, &s, s.line_port);
    line_check(&c, "PING\r\n", "200 OK PONG\n");
    conn_close(&c);
    srv_stop(&s);
    srv_free(&s);
    /* -H short form too */
    srv_start_at(&s, AF_INET6, "[::1]", (const char *const[]){"-H", "::1", NULL});
    http_check(&s, "GET", "/health", "HTTP/1.1 200 OK", "text/plain", "OK");
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

/* ================================================================== curl */

static bool find_curl(char *out, size_t cap)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/bin:/bin";
    for (const char *p = path; *p != '\0';) {
        const char *e = strchr(p, ':');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (len > 0 && len + 6 < cap) {
            snprintf(out, cap, "%.*s/curl", (int)len, p);
            if (access(out, X_OK) == 0)
                return true;
        }
        p += len;
        if (*p == ':')
            p++;
    }
    return false;
}

/* Runs curl -s -i --max-time T EXTRA... URL; output in r->out. */
static void run_curl(run_t *r, const char *curl, const char *const extra[], const char *url)
{
    char *argv[24];
    size_t n = 0;
    argv[n++] = (char *)curl;
    argv[n++] = "-s";
    argv[n++] = "-i";
    argv[n++] = "--max-time";
    argv[n++] = under_valgrind() ? "60" : "5";
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        argv[n++] = (char *)extra[i];
    argv[n++] = (char *)url;
    argv[n] = NULL;
    run_prog(r, argv, 10000);
    cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
              "curl %s: status 0x%x; output:\n%s", url, (unsigned)r->status, r->out.buf);
}

/* Splits curl -i output; checks status line, Content-Type, body. */
static void expect_curl(const run_t *r, const char *status_line, const char *ctype,
                        const char *body, size_t blen, const char *cl)
{
    const char *out = r->out.buf;
    const char *end = strstr(out, "\r\n\r\n");
    cr_assert_not_null(end, "curl output has no header end:\n%s", out);
    resp_t fake = {0};
    const char *sl_end = strstr(out, "\r\n");
    snprintf(fake.status_line, sizeof(fake.status_line), "%.*s", (int)(sl_end - out), out);
    cr_assert_str_eq(fake.status_line, status_line, "curl status line \"%s\"", fake.status_line);
    size_t hl = (size_t)(end - sl_end);
    fake.head = tmalloc(hl + 1);
    memcpy(fake.head, sl_end + 2, hl);
    fake.head[hl] = '\0';
    char v[256];
    cr_assert_eq(resp_header(&fake, "Content-Type", v, sizeof(v)), 1);
    cr_assert_str_eq(v, ctype);
    cr_assert_eq(resp_header(&fake, "Content-Length", v, sizeof(v)), 1);
    cr_assert_str_eq(v, cl);
    size_t got = r->out.len - (size_t)(end + 4 - out);
    cr_assert_eq(got, blen, "curl body of %zu bytes, want %zu", got, blen);
    cr_assert(memcmp(end + 4, body, blen) == 0, "curl body differs");
    tfree(fake.head);
}

Test(cli, curl_get_plaintext, .timeout = TMO)
{
    char curl[PATH_MAX];
    if (!find_curl(curl, sizeof(curl)))
        cr_skip_test("curl is not installed");
    srv_t s;
    srv_start(&s, NULL);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/plaintext", s.http_port);
    run_t r;
    run_curl(&r, curl, NULL, url);
    expect_curl(&r, "HTTP/1.1 200 OK", "text/plain", "Hello, World!", 13, "13");
    run_free(&r);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

/* --data-binary from a file over 1 KiB: curl also sends
 * "Expect: 100-continue" first. */
Test(cli, curl_post_echo_data_binary, .timeout = TMO)
{
    char curl[PATH_MAX];
    if (!find_curl(curl, sizeof(curl)))
        cr_skip_test("curl is not installed");
    size_t n = 100 * 1024;
    char *body = tmalloc(n);
    fill_pattern(body, n, 11);
    char path[] = "/tmp/appsrv_e2e_XXXXXX";
    int fd = mkstemp(path);
    track_fd(fd);
    cr_assert_eq(write(fd, body, n), (ssize_t)n);
    close_fd(&fd);
    char data[64];
    snprintf(data, sizeof(data), "@%s", path);
    srv_t s;
    srv_start(&s, NULL);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", s.http_port);
    run_t r;
    run_curl(&r, curl,
             (const char *const[]){"--data-binary", data, "-H", "Content-Type: application/x-curl",
                                   NULL},
             url);
    unlink(path);
    /* curl -i prints the "100 Continue" interim head first */
    if (strncmp(r.out.buf, "HTTP/1.1 100 ", 13) == 0) {
        char *e = strstr(r.out.buf, "\r\n\r\n");
        cr_assert_not_null(e);
        size_t skip = (size_t)(e + 4 - r.out.buf);
        memmove(r.out.buf, r.out.buf + skip, r.out.len - skip + 1);
        r.out.len -= skip;
    }
    char cl[32];
    snprintf(cl, sizeof(cl), "%zu", n);
    expect_curl(&r, "HTTP/1.1 200 OK", "application/x-curl", body, n, cl);
    run_free(&r);
    /* and a short literal without a Content-Type header of our own */
    run_curl(&r, curl, (const char *const[]){"--data-binary", "a=1&b=two", NULL}, url);
    expect_curl(&r, "HTTP/1.1 200 OK", "application/x-www-form-urlencoded", "a=1&b=two", 9, "9");
    run_free(&r);
    tfree(body);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}

Test(cli, curl_head, .timeout = TMO)
{
    char curl[PATH_MAX];
    if (!find_curl(curl, sizeof(curl)))
        cr_skip_test("curl is not installed");
    srv_t s;
    srv_start(&s, NULL);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/json", s.http_port);
    run_t r;
    run_curl(&r, curl, (const char *const[]){"-I", NULL}, url);
    expect_curl(&r, "HTTP/1.1 200 OK", "application/json", "", 0, "27");
    run_free(&r);
    srv_stop(&s);
    srv_free(&s);
    assert_all_released();
}
