/* SPDX-License-Identifier: MIT */
/*
 * limit.c - the ceiling for this machine: a bare single-threaded epoll HTTP
 * responder that does the least possible work per request.
 *
 * It validates nothing. A request is complete at "\r\n\r\n"; a POST (or PUT)
 * waits for Content-Length body bytes and gets them echoed back; anything else
 * gets a canned "Hello, World!". Every complete request found by one read is
 * answered, and the whole batch goes out in ONE write. A request carrying
 * "Connection: close" is answered with "Connection: close" and the socket is
 * closed after the write. Idle connections hold no buffer (one small struct);
 * only a partial request or an unsent response is kept on the heap.
 *
 * usage: limit PORT   (binds 127.0.0.1:PORT; SIGINT/SIGTERM exit cleanly)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define RBUF_SIZE (256 * 1024)
#define WBUF_SIZE (1024 * 1024)
#define MAX_EVENTS 256

struct conn {
    int fd;
    char *in;       /* leftover partial request, or NULL */
    size_t in_len, in_cap;
    char *out;      /* unsent response bytes, or NULL */
    size_t out_len, out_off;
    int close_after; /* close once everything is written */
};

static volatile sig_atomic_t g_stop;
static char g_rbuf[RBUF_SIZE];
static char g_wbuf[WBUF_SIZE];
static int g_ep;

/* "Date: ...\r\n", refreshed at most once a second. */
static char g_date[64];
static size_t g_date_len;
static time_t g_date_sec = -1;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void refresh_date(void)
{
    time_t now = time(NULL);
    if (now == g_date_sec)
        return;
    g_date_sec = now;
    struct tm tm;
    gmtime_r(&now, &tm);
    g_date_len = strftime(g_date, sizeof(g_date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Case-insensitive: does the head contain "\r\nNAME:"? Returns the value. */
static const char *find_header(const char *head, size_t len, const char *name)
{
    size_t nl = strlen(name);
    const char *p = head, *end = head + len;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        p++;
        if ((size_t)(end - p) <= nl)
            return NULL;
        size_t i = 0;
        while (i < nl && lower((unsigned char)p[i]) == name[i])
            i++;
        if (i == nl && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            return v;
        }
    }
    return NULL;
}

static void conn_free(struct conn *c)
{
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

static void set_events(struct conn *c, unsigned ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &e);
}

/*
 * Answer every complete request in buf[0..len) into g_wbuf. Returns bytes
 * consumed; *wlen gets the response bytes, *close_after is set if a request
 * asked for close (processing stops there).
 */
static size_t answer(const char *buf, size_t len, size_t *wlen, int *close_after, size_t *need)
{
    static const char hello_head[] = "HTTP/1.1 200 OK\r\nServer: limit\r\n";
    static const char hello_tail[] = "Content-Length: 13\r\nContent-Type: text/plain\r\n";
    static const char hello_body[] = "\r\nHello, World!";
    static const char close_hdr[] = "Connection: close\r\n";
    size_t off = 0, w = 0;
    *need = 0;
    refresh_date();
    while (off < len) {
        const char *req = buf + off;
        const char *eoh = memmem(req, len - off, "\r\n\r\n", 4);
        if (eoh == NULL)
            break;
        size_t head_len = (size_t)(eoh - req) + 4;
        size_t body_len = 0;
        int is_post = (req[0] == 'P');
        if (is_post) {
            const char *cl = find_header(req, head_len, "content-length");
            if (cl != NULL)
                body_len = strtoul(cl, NULL, 10);
            if (body_len > WBUF_SIZE) {
                *close_after = -1;
                break;
            }
            if (len - off < head_len + body_len) {
                *need = head_len + body_len;
                break;
            }
        }
        int want_close = 0;
        const char *cv = find_header(req, head_len, "connection");
        if (cv != NULL && lower((unsigned char)cv[0]) == 'c')
            want_close = 1;
        size_t room = sizeof(g_wbuf) - w;
        size_t resp_max = 256 + body_len;
        if (resp_max > sizeof(g_wbuf)) {
            *close_after = -1; /* larger than this toy supports: drop it */
            break;
        }
        if (resp_max > room)
            break; /* flush what we have first, then go on */
        char *o = g_wbuf + w;
        if (is_post) {
            int n = snprintf(o, room,
                             "HTTP/1.1 200 OK\r\nServer: limit\r\n%.*sContent-Length: %zu\r\n"
                             "Content-Type: application/octet-stream\r\n%s\r\n",
                             (int)g_date_len, g_date, body_len, want_close ? close_hdr : "");
            o += n;
            memcpy(o, req + head_len, body_len);
            o += body_len;
        } else {
            memcpy(o, hello_head, sizeof(hello_head) - 1);
            o += sizeof(hello_head) - 1;
            memcpy(o, g_date, g_date_len);
            o += g_date_len;
            memcpy(o, hello_tail, sizeof(hello_tail) - 1);
            o += sizeof(hello_tail) - 1;
            if (want_close) {
                memcpy(o, close_hdr, sizeof(close_hdr) - 1);
                o += sizeof(close_hdr) - 1;
            }
            memcpy(o, hello_body, sizeof(hello_body) - 1);
            o += sizeof(hello_body) - 1;
        }
        w = (size_t)(o - g_wbuf);
        off += head_len + body_len;
        if (want_close) {
            *close_after = 1;
            off = len; /* ignore anything after a close */
            break;
        }
    }
    *wlen = w;
    return off;
}

/* Write g_wbuf[0..w); keep any unsent part on the heap. 0 ok, -1 dead. */
static int flush(struct conn *c, size_t w)
{
    size_t off = 0;
    while (off < w) {
        ssize_t n = write(c->fd, g_wbuf + off, w - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->out = malloc(w - off);
            if (c->out == NULL)
                return -1;
            memcpy(c->out, g_wbuf + off, w - off);
            c->out_len = w - off;
            c->out_off = 0;
            set_events(c, EPOLLOUT);
            return 1;
        }
        return -1;
    }
    return 0;
}

/* Process buffered input; returns -1 if the connection must go. */
static int process(struct conn *c, const char *buf, size_t len)
{
    size_t need = 0;
    for (;;) {
        size_t w = 0;
        size_t used = answer(buf, len, &w, &c->close_after, &need);
        if (c->close_after < 0)
            return -1;
        buf += used;
        len -= used;
        if (w > 0) {
            int r = flush(c, w);
            if (r < 0)
                return -1;
            if (r > 0)
                break; /* blocked: keep the rest of the input for later */
        }
        if (c->close_after)
            return c->out ? 0 : -1;
        if (used == 0 || len == 0)
            break;
    }
    /* Keep the unprocessed tail (a partial request, or input behind a
     * blocked write) in the connection's own buffer. */
    if (len == 0) {
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
        return 0;
    }
    if (c->in != NULL && buf >= c->in && buf < c->in + c->in_cap) {
        memmove(c->in, buf, len);
        c->in_len = len;
        return 0;
    }
    size_t cap = len < 4096 ? 4096 : len * 2;
    if (cap < need + 16384)
        cap = need + 16384;
    char *nb = malloc(cap);
    if (nb == NULL)
        return -1;
    memcpy(nb, buf, len);
    free(c->in);
    c->in = nb;
    c->in_len = len;
    c->in_cap = cap;
    return 0;
}

static void on_readable(struct conn *c)
{
    ssize_t n;
    if (c->in == NULL) {
        n = read(c->fd, g_rbuf, sizeof(g_rbuf));
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            conn_free(c);
            return;
        }
        if (process(c, g_rbuf, (size_t)n) < 0)
            conn_free(c);
        return;
    }
    if (c->in_cap - c->in_len < 16384) {
        size_t cap = c->in_cap * 2;
        char *nb = realloc(c->in, cap);
        if (nb == NULL) {
            conn_free(c);
            return;
        }
        c->in = nb;
        c->in_cap = cap;
    }
    n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        conn_free(c);
        return;
    }
    c->in_len += (size_t)n;
    if (process(c, c->in, c->in_len) < 0)
        conn_free(c);
}

static void on_writable(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        conn_free(c);
        return;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    if (c->close_after) {
        conn_free(c);
        return;
    }
    set_events(c, EPOLLIN);
    if (c->in != NULL && c->in_len > 0 && process(c, c->in, c->in_len) < 0)
        conn_free(c);
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of fds: try again on the next event */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &e) < 0)
            conn_free(c);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: limit PORT\n");
        return 2;
    }
    int port = atoi(argv[1]);
    bench_stop_signals(on_signal);

    int lfd = bench_listen(port);
    if (lfd < 0) {
        perror("limit: listen");
        return 1;
    }
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &le);
    fprintf(stderr, "limit: listening on http://127.0.0.1:%d\n", port);

    struct epoll_event evs[MAX_EVENTS];
    while (!g_stop) {
        int n = epoll_wait(g_ep, evs, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL)
                on_accept(lfd);
            else if (evs[i].events & EPOLLOUT)
                on_writable(c);
            else
                on_readable(c);
        }
    }
    close(lfd);
    close(g_ep);
    return 0;
}
