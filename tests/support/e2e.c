/* SPDX-License-Identifier: MIT */
/*
 * e2e.c - end-to-end test helpers (contract in e2e.h): a server on a
 * background thread, a buffered raw client that parses responses strictly
 * (CRLF line ends, exact framing) and bounded waits built on poll().
 * Uses only the public API; never asserts, so client threads may call it.
 */
#include "e2e.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- misc */

int64_t e2e_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void e2e_pause_ms(int ms)
{
    int64_t end = e2e_now_ms() + ms;
    for (;;) {
        int64_t left = end - e2e_now_ms();
        if (left <= 0)
            return;
        poll(NULL, 0, (int)left);
    }
}

int e2e_wait_readable(int fd, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - e2e_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, left > 0 ? (int)left : 0);
        if (pr > 0)
            return 0;
        if (pr == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

int e2e_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

const char *e2e_bin_path(void)
{
    const char *b = getenv("APPSRV_BIN");
    return b != NULL && *b != '\0' ? b : "build/appsrv";
}

pid_t e2e_spawn(char *const argv[], int out_fd, int err_fd, bool search)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int null = open("/dev/null", O_RDWR);
        if (null < 0)
            _exit(127);
        if (dup2(null, 0) < 0 || dup2(out_fd >= 0 ? out_fd : null, 1) < 0 ||
            dup2(err_fd >= 0 ? err_fd : null, 2) < 0)
            _exit(127);
        if (null > 2)
            close(null);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGPIPE, &dfl, NULL);
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGTERM, &dfl, NULL);
        sigemptyset(&dfl.sa_mask);
        sigprocmask(SIG_SETMASK, &dfl.sa_mask, NULL);
        if (search)
            execvp(argv[0], argv);
        else
            execve(argv[0], argv, environ);
        _exit(127);
    }
    return pid;
}

int e2e_wait_child(pid_t pid, int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -1;
        if (e2e_now_ms() >= end)
            return -1;
        poll(NULL, 0, 10);
    }
}

int e2e_wait_atomic(atomic_int *v, int want, int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    int cur;
    while ((cur = atomic_load(v)) < want && e2e_now_ms() < end)
        poll(NULL, 0, 2);
    return cur;
}

bool e2e_valgrind(void)
{
    const char *v = getenv("APPSRV_VALGRIND");
    return v != NULL && v[0] != '\0';
}

void e2e_fill_pattern(void *buf, size_t len, uint32_t seed)
{
    unsigned char *p = buf;
    uint32_t x = seed ? seed : 0x9e3779b9u;
    for (size_t i = 0; i < len; i++) {
        if ((i & 3) == 0) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
        }
        p[i] = (unsigned char)(x >> ((i & 3) * 8));
    }
}

bool e2e_is_imf_fixdate(const char *s)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    static const char shape[] = "aaa, dd aaa dddd dd:dd:dd GMT";
    if (s == NULL || strlen(s) != sizeof(shape) - 1)
        return false;
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd') {
            if (s[i] < '0' || s[i] > '9')
                return false;
        } else if (shape[i] != 'a' && shape[i] != s[i]) {
            return false;
        }
    }
    bool ok = false;
    for (size_t i = 0; i < 7; i++)
        ok |= memcmp(s, days[i], 3) == 0;
    if (!ok)
        return false;
    ok = false;
    for (size_t i = 0; i < 12; i++)
        ok |= memcmp(s + 8, mons[i], 3) == 0;
    int day = (s[5] - '0') * 10 + (s[6] - '0');
    int hh = (s[17] - '0') * 10 + (s[18] - '0');
    int mm = (s[20] - '0') * 10 + (s[21] - '0');
    int ss = (s[23] - '0') * 10 + (s[24] - '0');
    return ok && day >= 1 && day <= 31 && hh < 24 && mm < 60 && ss <= 60;
}

int e2e_parse_imf_fixdate(const char *s, int64_t *out)
{
    static const char mons[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (!e2e_is_imf_fixdate(s))
        return -EINVAL;
    int mon = 0;
    while (mon < 12 && memcmp(mons + 3 * mon, s + 8, 3) != 0)
        mon++;
    struct tm tm = {
        .tm_mday = (s[5] - '0') * 10 + (s[6] - '0'),
        .tm_mon = mon,
        .tm_year =
            ((s[12] - '0') * 1000 + (s[13] - '0') * 100 + (s[14] - '0') * 10 + (s[15] - '0')) -
            1900,
        .tm_hour = (s[17] - '0') * 10 + (s[18] - '0'),
        .tm_min = (s[20] - '0') * 10 + (s[21] - '0'),
        .tm_sec = (s[23] - '0') * 10 + (s[24] - '0'),
    };
    *out = (int64_t)timegm(&tm);
    return 0;
}

/* ---------------------------------------------------------------- server */

static void *server_thread(void *arg)
{
    e2e_server_t *s = arg;
    s->run_rc = appsrv_server_run(s->srv);
    atomic_store(&s->run_returned, true);
    return NULL;
}

int e2e_server_start(e2e_server_t *s, const appsrv_config_t *cfg, const e2e_route_t *routes,
                     size_t n, unsigned listeners)
{
    appsrv_config_t def;
    int rc;

    memset(s, 0, sizeof(*s));
    atomic_init(&s->run_returned, false);
    if (cfg == NULL) {
        appsrv_config_init(&def);
        def.threads = 1;
        cfg = &def;
    }
    rc = appsrv_server_new(&s->srv, cfg);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (routes[i].line)
            rc = appsrv_route_line(s->srv, routes[i].pattern, routes[i].handler, routes[i].user);
        else
            rc = appsrv_route(s->srv, routes[i].method, routes[i].pattern, routes[i].handler,
                              routes[i].user);
        if (rc < 0)
            goto free_srv;
    }
    if (listeners & E2E_HTTP) {
        rc = appsrv_listen_http(s->srv, "127.0.0.1", 0);
        if (rc < 0)
            goto free_srv;
        s->port = rc;
    }
    if (listeners & E2E_LINE) {
        rc = appsrv_listen_line(s->srv, "127.0.0.1", 0);
        if (rc < 0)
            goto free_srv;
        s->line_port = rc;
    }
    rc = -pthread_create(&s->thread, NULL, server_thread, s);
    if (rc < 0)
        goto free_srv;
    s->thread_started = true;
    return 0;

free_srv:
    appsrv_server_free(s->srv);
    s->srv = NULL;
    return rc;
}

void e2e_server_request_stop(e2e_server_t *s)
{
    appsrv_server_stop(s->srv);
}

int e2e_server_join(e2e_server_t *s, int timeout_ms)
{
    if (!s->thread_started || s->joined)
        return 0;
    int64_t end = e2e_now_ms() + timeout_ms;
    while (!atomic_load(&s->run_returned)) {
        if (e2e_now_ms() >= end)
            return -ETIMEDOUT;
        poll(NULL, 0, 2);
    }
    pthread_join(s->thread, NULL);
    s->joined = true;
    return 0;
}

int e2e_server_stop(e2e_server_t *s, int timeout_ms)
{
    if (s->srv == NULL)
        return -EINVAL;
    appsrv_server_stop(s->srv);
    if (e2e_server_join(s, timeout_ms) < 0)
        return -ETIMEDOUT;
    appsrv_server_free(s->srv);
    s->srv = NULL;
    return s->run_rc;
}

/* ---------------------------------------------------------------- client */

int e2e_conn_open(e2e_conn_t *c, int port)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    int fd = appsrv_connect("127.0.0.1", port, 2000);
    if (fd < 0)
        return fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    return 0;
}

void e2e_conn_close(e2e_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = c->off = 0;
}

void e2e_conn_reset(e2e_conn_t *c)
{
    if (c->fd >= 0) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    e2e_conn_close(c);
}

int e2e_send(e2e_conn_t *c, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    ssize_t n = appsrv_send_all(c->fd, data, len, 5000);
    return n < 0 ? (int)n : 0;
}

int e2e_sends(e2e_conn_t *c, const char *s)
{
    return e2e_send(c, s, strlen(s));
}

int e2e_send_pieces(e2e_conn_t *c, const void *data, size_t len, size_t piece)
{
    const char *p = data;
    while (len > 0) {
        size_t k = len < piece ? len : piece;
        int rc = e2e_send(c, p, k);
        if (rc < 0)
            return rc;
        p += k;
        len -= k;
    }
    return 0;
}

/* Makes room for at least want more bytes in the read buffer. */
static int buf_room(e2e_conn_t *c, size_t want)
{
    if (c->off == c->len) {
        c->off = c->len = 0;
    } else if (c->off > 0 && c->off >= c->cap / 2) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->cap - c->len >= want)
        return 0;
    size_t ncap = c->cap ? c->cap : 65536;
    while (ncap - c->len < want)
        ncap *= 2;
    char *b = realloc(c->buf, ncap);
    if (b == NULL)
        return -ENOMEM;
    c->buf = b;
    c->cap = ncap;
    return 0;
}

/* Reads once, waiting until deadline (absolute, e2e_now_ms). Returns bytes
 * read (> 0), -ETIMEDOUT, -ECONNRESET when closed (EOF or reset). */
static int fill(e2e_conn_t *c, int64_t deadline)
{
    if (c->eof)
        return -ECONNRESET;
    int rc = e2e_wait_readable(c->fd, deadline);
    if (rc < 0)
        return rc;
    if (buf_room(c, 65536) < 0)
        return -ENOMEM;
    ssize_t n;
    do
        n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n == 0) {
        c->eof = true;
        return -ECONNRESET;
    }
    if (n < 0) {
        if (errno == EAGAIN)
            return fill(c, deadline);
        c->eof = true;
        c->err = -errno;
        return -ECONNRESET;
    }
    c->len += (size_t)n;
    return (int)n;
}

void e2e_resp_free(e2e_resp_t *r)
{
    for (size_t i = 0; i < r->nhdrs; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->body);
    memset(r, 0, sizeof(*r));
}

const char *e2e_resp_header(const e2e_resp_t *r, const char *name)
{
    for (size_t i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

int e2e_resp_header_count(const e2e_resp_t *r, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < r->nhdrs; i++)
        n += strcasecmp(r->names[i], name) == 0;
    return n;
}

static char *dup_n(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* Finds "\r\n" at or after from in the unconsumed bytes; returns its
 * offset from c->off, or -1 (need more), or -2 on a bare LF. */
static long find_crlf(const e2e_conn_t *c, size_t from)
{
    const char *p = c->buf + c->off;
    size_t n = c->len - c->off;
    for (size_t i = from; i < n; i++) {
        if (p[i] == '\n')
            return (i > 0 && p[i - 1] == '\r') ? (long)i - 1 : -2;
    }
    return -1;
}

/* Waits for a CRLF-terminated line starting at offset `at` (from c->off).
 * Returns its length (without CRLF) or a negative error. */
static long need_line(e2e_conn_t *c, size_t at, int64_t deadline)
{
    for (;;) {
        long e = find_crlf(c, at);
        if (e == -2)
            return -EPROTO;
        if (e >= 0)
            return e - (long)at;
        int rc = fill(c, deadline);
        if (rc < 0)
            return rc;
    }
}

static int need_bytes(e2e_conn_t *c, size_t n, int64_t deadline)
{
    while (c->len - c->off < n) {
        int rc = fill(c, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_u64(const char *s, size_t n, int base, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 16)
        return -EPROTO;
    for (size_t i = 0; i < n; i++) {
        int d;
        char ch = s[i];
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (base == 16 && ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else if (base == 16 && ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            return -EPROTO;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = v;
    return 0;
}

static int body_append(e2e_resp_t *r, size_t *cap, const char *p, size_t n)
{
    if (r->body_len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 256;
        while (ncap < r->body_len + n + 1)
            ncap *= 2;
        char *b = realloc(r->body, ncap);
        if (b == NULL)
            return -ENOMEM;
        r->body = b;
        *cap = ncap;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 0;
}

static int read_chunked(e2e_conn_t *c, e2e_resp_t *r, int64_t deadline)
{
    size_t cap = 0;
    for (;;) {
        long ll = need_line(c, 0, deadline);
        if (ll < 0)
            return (int)ll;
        const char *line = c->buf + c->off;
        size_t szlen = 0;
        while (szlen < (size_t)ll && line[szlen] != ';')
            szlen++;
        uint64_t sz;
        if (parse_u64(line, szlen, 16, &sz) < 0)
            return -EPROTO;
        c->off += (size_t)ll + 2;
        if (sz == 0)
            break;
        int rc = need_bytes(c, (size_t)sz + 2, deadline);
        if (rc < 0)
            return rc;
        if (body_append(r, &cap, c->buf + c->off, (size_t)sz) < 0)
            return -ENOMEM;
        if (c->buf[c->off + sz] != '\r' || c->buf[c->off + sz + 1] != '\n')
            return -EPROTO;
        c->off += (size_t)sz + 2;
    }
    for (;;) { /* trailers up to the empty line */
        long ll = need_line(c, 0, deadline);
        if (ll < 0)
            return (int)ll;
        c->off += (size_t)ll + 2;
        if (ll == 0)
            break;
    }
    if (r->body == NULL)
        return body_append(r, &cap, "", 0);
    return 0;
}

int e2e_read_response(e2e_conn_t *c, e2e_resp_t *r, int timeout_ms, unsigned flags)
{
    int64_t deadline = e2e_now_ms() + timeout_ms;
    memset(r, 0, sizeof(*r));

    /* Status line: HTTP/d.d SP ddd SP reason CRLF */
    long ll = need_line(c, 0, deadline);
    if (ll < 0)
        return (int)ll;
    const char *s = c->buf + c->off;
    if (ll < 12 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.' || s[8] != ' ' || s[12] != ' ' ||
        s[5] < '0' || s[5] > '9' || s[7] < '0' || s[7] > '9')
        return -EPROTO;
    r->major = s[5] - '0';
    r->minor = s[7] - '0';
    uint64_t st;
    if (parse_u64(s + 9, 3, 10, &st) < 0)
        return -EPROTO;
    r->status = (int)st;
    size_t rl = (size_t)ll - 13;
    if (rl >= sizeof(r->reason))
        rl = sizeof(r->reason) - 1;
    memcpy(r->reason, s + 13, rl);
    r->reason[rl] = '\0';

    /* Header fields up to the blank line. */
    size_t at = (size_t)ll + 2;
    for (;;) {
        ll = need_line(c, at, deadline);
        if (ll < 0)
            return (int)ll;
        const char *h = c->buf + c->off + at;
        if (ll == 0) {
            at += 2;
            break;
        }
        const char *colon = memchr(h, ':', (size_t)ll);
        if (colon == NULL || colon == h || r->nhdrs == E2E_MAX_HDRS)
            return -EPROTO;
        for (const char *q = h; q < colon; q++)
            if (*q == ' ' || *q == '\t')
                return -EPROTO;
        const char *v = colon + 1, *ve = h + ll;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        r->names[r->nhdrs] = dup_n(h, (size_t)(colon - h));
        r->values[r->nhdrs] = dup_n(v, (size_t)(ve - v));
        r->nhdrs++;
        if (r->names[r->nhdrs - 1] == NULL || r->values[r->nhdrs - 1] == NULL)
            return -ENOMEM;
        at += (size_t)ll + 2;
    }
    r->head_len = at;
    c->off += at;

    size_t cap = 0;
    bool no_body = (r->status >= 100 && r->status < 200) || r->status == 204 || r->status == 304 ||
                   (flags & E2E_RESP_HEAD);
    const char *te = e2e_resp_header(r, "Transfer-Encoding");
    const char *cl = e2e_resp_header(r, "Content-Length");
    if (no_body)
        return body_append(r, &cap, "", 0);
    if (te != NULL) {
        if (strcasecmp(te, "chunked") != 0 || cl != NULL)
            return -EPROTO;
        r->chunked = true;
        return read_chunked(c, r, deadline);
    }
    if (cl != NULL) {
        uint64_t n;
        if (parse_u64(cl, strlen(cl), 10, &n) < 0 ||
            e2e_resp_header_count(r, "Content-Length") != 1)
            return -EPROTO;
        int rc = need_bytes(c, (size_t)n, deadline);
        if (rc < 0)
            return rc;
        rc = body_append(r, &cap, c->buf + c->off, (size_t)n);
        c->off += (size_t)n;
        return rc;
    }
    /* No framing: the body runs to the close. */
    r->until_eof = true;
    for (;;) {
        int rc = fill(c, deadline);
        if (rc == -ECONNRESET)
            break;
        if (rc < 0)
            return rc;
    }
    int rc = body_append(r, &cap, c->buf + c->off, c->len - c->off);
    c->off = c->len;
    return rc;
}

int e2e_read_line(e2e_conn_t *c, char *out, size_t cap, int timeout_ms)
{
    int64_t deadline = e2e_now_ms() + timeout_ms;
    for (;;) {
        const char *p = c->buf ? c->buf + c->off : NULL;
        size_t n = c->len - c->off;
        const char *nl = p ? memchr(p, '\n', n) : NULL;
        if (nl != NULL) {
            size_t ll = (size_t)(nl - p);
            if (ll + 1 > cap)
                return -ENOSPC;
            memcpy(out, p, ll);
            out[ll] = '\0';
            c->off += ll + 1;
            return (int)ll;
        }
        int rc = fill(c, deadline);
        if (rc < 0)
            return rc;
    }
}

int e2e_read_exact(e2e_conn_t *c, void *out, size_t n, int timeout_ms)
{
    int64_t deadline = e2e_now_ms() + timeout_ms;
    char *o = out;
    while (n > 0) {
        size_t have = c->len - c->off;
        if (have > 0) {
            size_t k = have < n ? have : n;
            if (o != NULL) {
                memcpy(o, c->buf + c->off, k);
                o += k;
            }
            c->off += k;
            n -= k;
            continue;
        }
        int rc = fill(c, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int e2e_read_some(e2e_conn_t *c, void *out, size_t max, int timeout_ms)
{
    size_t have = c->len - c->off;
    if (have > 0) {
        size_t k = have < max ? have : max;
        memcpy(out, c->buf + c->off, k);
        c->off += k;
        return (int)k;
    }
    if (c->eof)
        return -ECONNRESET;
    int64_t deadline = e2e_now_ms() + timeout_ms;
    for (;;) {
        int rc = e2e_wait_readable(c->fd, deadline);
        if (rc < 0)
            return rc;
        ssize_t n = recv(c->fd, out, max, MSG_DONTWAIT);
        if (n > 0)
            return (int)n;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        c->eof = true;
        c->err = n < 0 ? -errno : 0;
        return -ECONNRESET;
    }
}

int e2e_read_until_close(e2e_conn_t *c, char **out, size_t *len, int timeout_ms)
{
    int64_t deadline = e2e_now_ms() + timeout_ms;
    int rc;
    for (;;) {
        rc = fill(c, deadline);
        if (rc == -ECONNRESET) {
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
    }
    size_t n = c->len - c->off;
    if (len != NULL)
        *len = n;
    if (out != NULL) {
        *out = dup_n(c->buf ? c->buf + c->off : "", n);
        if (*out == NULL)
            return -ENOMEM;
    }
    c->off = c->len;
    return rc;
}

long e2e_wait_closed(e2e_conn_t *c, int timeout_ms)
{
    int64_t deadline = e2e_now_ms() + timeout_ms;
    long extra = 0;
    for (;;) {
        extra += (long)(c->len - c->off);
        c->off = c->len;
        int rc = fill(c, deadline);
        if (rc == -ECONNRESET)
            return extra;
        if (rc < 0)
            return rc;
    }
}

bool e2e_still_open(e2e_conn_t *c, int wait_ms)
{
    if (c->eof || c->len > c->off)
        return false;
    int rc = fill(c, e2e_now_ms() + wait_ms);
    return rc == -ETIMEDOUT;
}

size_t e2e_pump(e2e_conn_t *c, int wait_ms)
{
    int64_t deadline = e2e_now_ms() + wait_ms;
    while (fill(c, deadline) > 0)
        ;
    return c->len - c->off;
}
