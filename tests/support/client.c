/* SPDX-License-Identifier: MIT */
/*
 * client.c - the raw loopback client (contract in client.h): sockets with
 * deadlines, a buffered connection, the strict response reader (chunked
 * bodies through chunked.c) and the other bounded readers. Never asserts,
 * so client threads and tests/adversarial/ may call it.
 */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chunked.h"
#include "proc.h"

/* ------------------------------------------------------------- sockets */

int e2e_tcp_connect_start(int family, int port, int rcvbuf)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc;
    if (family == AF_INET6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                                 .sin6_port = htons((uint16_t)port),
                                 .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    }
    if (rc != 0 && errno != EINPROGRESS) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int e2e_wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - e2e_now_ms();
        struct pollfd pfd = {.fd = fd, .events = events};
        int pr = poll(&pfd, 1, left > 0 ? (int)left : 0);
        if (pr > 0)
            return pfd.revents;
        if (pr == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

int e2e_wait_readable(int fd, int64_t deadline)
{
    int rc = e2e_wait_fd(fd, POLLIN, deadline);
    return rc < 0 ? rc : 0;
}

int e2e_tcp_connect(int family, int port, int rcvbuf, int timeout_ms)
{
    int fd = e2e_tcp_connect_start(family, port, rcvbuf);
    if (fd < 0)
        return fd;
    int rc = e2e_wait_fd(fd, POLLOUT, e2e_now_ms() + timeout_ms);
    int err = 0;
    socklen_t len = sizeof(err);
    if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        close(fd);
        return rc < 0 ? rc : -(err != 0 ? err : EIO);
    }
    return fd;
}

int e2e_send_fd(int fd, const void *data, size_t len, int64_t deadline)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = e2e_wait_fd(fd, POLLOUT, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------- connection */

int e2e_conn_open_ex(e2e_conn_t *c, int family, int port, int rcvbuf, int timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    int fd = e2e_tcp_connect(family, port, rcvbuf, timeout_ms);
    if (fd < 0)
        return fd;
    c->fd = fd;
    return 0;
}

int e2e_conn_open(e2e_conn_t *c, int port)
{
    return e2e_conn_open_ex(c, AF_INET, port, 0, 2000);
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

void e2e_rst_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

int e2e_send(e2e_conn_t *c, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    return e2e_send_fd(c->fd, data, len, e2e_now_ms() + 5000);
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

int e2e_conn_fill(e2e_conn_t *c, int64_t deadline)
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
            return e2e_conn_fill(c, deadline);
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
        int rc = e2e_conn_fill(c, deadline);
        if (rc < 0)
            return rc;
    }
}

static int need_bytes(e2e_conn_t *c, size_t n, int64_t deadline)
{
    while (c->len - c->off < n) {
        int rc = e2e_conn_fill(c, deadline);
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

typedef struct body_sink {
    e2e_resp_t *r;
    size_t cap;
} body_sink_t;

static int body_cb(void *ud, const unsigned char *p, size_t n)
{
    body_sink_t *b = ud;
    return body_append(b->r, &b->cap, (const char *)p, n);
}

/* The body through the one chunked decoder (chunked.h). */
static int read_chunked(e2e_conn_t *c, e2e_resp_t *r, int64_t deadline)
{
    body_sink_t b = {r, 0};
    e2e_chunked_t d;
    e2e_chunked_init(&d, body_cb, &b);
    for (;;) {
        c->off += e2e_chunked_feed(&d, c->buf + c->off, c->len - c->off);
        if (d.err != 0)
            return d.err == -ENOMEM ? -ENOMEM : -EPROTO;
        if (d.done)
            break;
        int rc = e2e_conn_fill(c, deadline);
        if (rc < 0)
            return rc;
    }
    if (r->body == NULL)
        return body_append(r, &b.cap, "", 0);
    return 0;
}

static int read_head(e2e_conn_t *c, e2e_resp_t *r, int64_t deadline)
{
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
    return 0;
}

int e2e_read_head(e2e_conn_t *c, e2e_resp_t *r, int timeout_ms)
{
    return read_head(c, r, e2e_now_ms() + timeout_ms);
}

static int read_one(e2e_conn_t *c, e2e_resp_t *r, int64_t deadline, unsigned flags)
{
    int rc = read_head(c, r, deadline);
    if (rc < 0)
        return rc;

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
        rc = need_bytes(c, (size_t)n, deadline);
        if (rc < 0)
            return rc;
        rc = body_append(r, &cap, c->buf + c->off, (size_t)n);
        c->off += (size_t)n;
        return rc;
    }
    /* No framing: the body runs to the close. */
    r->until_eof = true;
    for (;;) {
        rc = e2e_conn_fill(c, deadline);
        if (rc == -ECONNRESET)
            break;
        if (rc < 0)
            return rc;
    }
    rc = body_append(r, &cap, c->buf + c->off, c->len - c->off);
    c->off = c->len;
    return rc;
}

int e2e_read_response(e2e_conn_t *c, e2e_resp_t *r, int timeout_ms, unsigned flags)
{
    int64_t deadline = e2e_now_ms() + timeout_ms;
    for (;;) {
        int rc = read_one(c, r, deadline, flags);
        if (rc < 0 || !(flags & E2E_RESP_SKIP_1XX) || r->status >= 200)
            return rc;
        e2e_resp_free(r);
    }
}

int e2e_parse_response(const void *data, size_t len, e2e_resp_t *r, unsigned flags)
{
    e2e_conn_t c = {.fd = -1, .eof = true, .len = len, .cap = len + 1};
    c.buf = malloc(len + 1);
    if (c.buf == NULL) {
        memset(r, 0, sizeof(*r));
        return -ENOMEM;
    }
    memcpy(c.buf, data, len);
    int rc = e2e_read_response(&c, r, 0, flags);
    free(c.buf);
    return rc;
}

bool e2e_resp_closes(const e2e_resp_t *r)
{
    const char *v = e2e_resp_header(r, "Connection");
    return v != NULL && strcasecmp(v, "close") == 0;
}

void e2e_status_line(const e2e_resp_t *r, char *out, size_t cap)
{
    snprintf(out, cap, "HTTP/%d.%d %03d %s", r->major, r->minor, r->status, r->reason);
}

const char *e2e_reason(int status)
{
    static const struct {
        int status;
        const char *reason;
    } t[] = {
        {100, "Continue"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {413, "Payload Too Large"},
        {414, "URI Too Long"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (t[i].status == status)
            return t[i].reason;
    return NULL;
}

const char *e2e_errname(int rc)
{
    switch (rc) {
    case -ETIMEDOUT:
        return "timeout";
    case -ECONNRESET:
        return "closed before a whole response";
    case -EPROTO:
        return "malformed response";
    case -ECONNREFUSED:
        return "connection refused";
    default:
        return strerror(-rc);
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
        int rc = e2e_conn_fill(c, deadline);
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
        int rc = e2e_conn_fill(c, deadline);
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
        rc = e2e_conn_fill(c, deadline);
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
        int rc = e2e_conn_fill(c, deadline);
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
    int rc = e2e_conn_fill(c, e2e_now_ms() + wait_ms);
    return rc == -ETIMEDOUT;
}

size_t e2e_pump(e2e_conn_t *c, int wait_ms)
{
    int64_t deadline = e2e_now_ms() + wait_ms;
    while (e2e_conn_fill(c, deadline) > 0)
        ;
    return c->len - c->off;
}
