/* SPDX-License-Identifier: MIT */
/*
 * ws_client.c - WebSocket test helpers (contract in ws_client.h): an
 * in-process server with WebSocket routes, a strict client
 * (handshake checked against RFC 6455 §4.2.2, server frames must be
 * unmasked) and echo handlers. Builds on e2e.c's connection and bounded
 * waits; the accept value is computed here with the library's own SHA-1
 * and base64 (checked against the RFC's example in test_ws_parse.c).
 */
#include "ws_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ws_handshake.h"

/* ---------------------------------------------------------------- server */

static void *server_main(void *arg)
{
    e2e_server_t *s = arg;
    s->run_rc = appsrv_server_run(s->srv);
    atomic_store(&s->run_returned, true);
    return NULL;
}

int wsc_server_start(e2e_server_t *s, const appsrv_config_t *cfg, const wsc_route_t *routes,
                     size_t n)
{
    appsrv_config_t def;
    memset(s, 0, sizeof(*s));
    atomic_init(&s->run_returned, false);
    if (cfg == NULL) {
        appsrv_config_init(&def);
        def.threads = 1;
        cfg = &def;
    }
    int rc = appsrv_server_new(&s->srv, cfg);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (routes[i].h != NULL)
            rc = appsrv_route_ws(s->srv, routes[i].pattern, routes[i].h, routes[i].user);
        else
            rc = appsrv_route(s->srv, "GET", routes[i].pattern, routes[i].handler, routes[i].user);
        if (rc < 0)
            goto fail;
    }
    rc = appsrv_listen_http(s->srv, "127.0.0.1", 0);
    if (rc < 0)
        goto fail;
    s->port = rc;
    rc = -pthread_create(&s->thread, NULL, server_main, s);
    if (rc < 0)
        goto fail;
    s->thread_started = true;
    return 0;
fail:
    appsrv_server_free(s->srv);
    s->srv = NULL;
    return rc;
}

/* ------------------------------------------------------------------- CLI */

int wsc_cli_start(wsc_cli_t *s, const char *const extra[])
{
    memset(s, 0, sizeof(*s));
    char *argv[32];
    size_t n = 0;
    argv[n++] = (char *)e2e_bin_path();
    argv[n++] = "-p";
    argv[n++] = "0";
    argv[n++] = "-t";
    argv[n++] = "2";
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    int pe[2];
    if (pipe2(pe, O_CLOEXEC) < 0)
        return -errno;
    s->pid = e2e_spawn(argv, -1, pe[1], false);
    close(pe[1]);
    if (s->pid < 0) {
        close(pe[0]);
        return (int)s->pid;
    }
    s->err_fd = pe[0];
    size_t len = 0;
    int64_t end = e2e_now_ms() + 10000;
    for (;;) {
        const char *p = strstr(s->err, "listening on http://127.0.0.1:");
        if (p != NULL && strchr(p, '\n') != NULL) {
            s->port = atoi(p + strlen("listening on http://127.0.0.1:"));
            return 0;
        }
        if (e2e_wait_readable(s->err_fd, end) < 0 || len + 1 >= sizeof(s->err))
            break;
        ssize_t r = read(s->err_fd, s->err + len, sizeof(s->err) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        s->err[len] = 0;
    }
    kill(s->pid, SIGKILL);
    e2e_wait_child(s->pid, 5000);
    close(s->err_fd);
    return -EPROTO;
}

int wsc_cli_stop(wsc_cli_t *s)
{
    kill(s->pid, SIGTERM);
    int st = e2e_wait_child(s->pid, 10000);
    if (st < 0) {
        kill(s->pid, SIGKILL);
        e2e_wait_child(s->pid, 5000);
    }
    close(s->err_fd);
    return st;
}

int wsc_run(char *const argv[], char *out, size_t cap, int timeout_ms)
{
    int po[2];
    out[0] = 0;
    if (pipe2(po, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = e2e_spawn(argv, po[1], po[1], true);
    close(po[1]);
    if (pid < 0) {
        close(po[0]);
        return -1;
    }
    size_t len = 0;
    int64_t end = e2e_now_ms() + timeout_ms;
    for (;;) {
        if (e2e_wait_readable(po[0], end) < 0)
            break;
        char buf[4096];
        ssize_t r = read(po[0], buf, sizeof(buf));
        if (r <= 0)
            break;
        size_t k = (size_t)r < cap - 1 - len ? (size_t)r : cap - 1 - len;
        memcpy(out + len, buf, k);
        len += k;
        out[len] = 0;
    }
    close(po[0]);
    int64_t left = end - e2e_now_ms();
    int st = e2e_wait_child(pid, left > 0 ? (int)left : 0);
    if (st < 0) {
        kill(pid, SIGKILL);
        e2e_wait_child(pid, 5000);
    }
    return st;
}

/* ---------------------------------------------------------------- client */

int wsc_open(e2e_conn_t *c, int port, const char *path, const char *extra, e2e_resp_t *r)
{
    memset(r, 0, sizeof(*r));
    int rc = e2e_conn_open(c, port);
    if (rc < 0)
        return rc;
    static atomic_uint seq;
    uint8_t raw[16];
    e2e_fill_pattern(raw, sizeof(raw), atomic_fetch_add(&seq, 1) + 1);
    char key[25];
    appsrv__base64(raw, 16, key);
    char req[2048];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     path, key, extra != NULL ? extra : "");
    if (n < 0 || (size_t)n >= sizeof(req))
        return -ENOSPC;
    rc = e2e_send(c, req, (size_t)n);
    if (rc < 0)
        return rc;
    /* A 101 has no body (1xx: e2e_read_response knows). */
    rc = e2e_read_response(c, r, 5000, 0);
    if (rc < 0)
        return rc;
    if (r->status != 101)
        return -EPROTO;
    char want[29];
    appsrv__ws_accept(key, strlen(key), want);
    const char *acc = e2e_resp_header(r, "Sec-WebSocket-Accept");
    const char *up = e2e_resp_header(r, "Upgrade");
    const char *conn = e2e_resp_header(r, "Connection");
    if (acc == NULL || strcmp(acc, want) != 0 || up == NULL || strcasecmp(up, "websocket") != 0 ||
        conn == NULL || strcasecmp(conn, "Upgrade") != 0)
        return -EPROTO;
    return 0;
}

int wsc_connect(e2e_conn_t *c, int port, const char *path)
{
    e2e_resp_t r;
    int rc = wsc_open(c, port, path, NULL, &r);
    e2e_resp_free(&r);
    return rc;
}

int wsc_send(e2e_conn_t *c, unsigned b0, const void *payload, size_t len)
{
    uint8_t *f = malloc(len + 14);
    if (f == NULL)
        return -ENOMEM;
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = wsc_build(f, b0, payload, len, key);
    int rc = e2e_send(c, f, n);
    free(f);
    return rc;
}

int wsc_read(e2e_conn_t *c, wsc_frame_t *f, int timeout_ms)
{
    memset(f, 0, sizeof(*f));
    uint8_t h[14];
    int rc = e2e_read_exact(c, h, 2, timeout_ms);
    if (rc < 0)
        return rc;
    f->b0 = h[0];
    f->masked = (h[1] & 0x80) != 0;
    uint64_t len = h[1] & 0x7F;
    if (len == 126) {
        if ((rc = e2e_read_exact(c, h + 2, 2, timeout_ms)) < 0)
            return rc;
        len = (uint64_t)h[2] << 8 | h[3];
    } else if (len == 127) {
        if ((rc = e2e_read_exact(c, h + 2, 8, timeout_ms)) < 0)
            return rc;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | h[i];
    }
    uint8_t key[4] = {0};
    if (f->masked && (rc = e2e_read_exact(c, key, 4, timeout_ms)) < 0)
        return rc;
    if (len > (64u << 20))
        return -EPROTO;
    f->data = malloc((size_t)len + 1);
    if (f->data == NULL)
        return -ENOMEM;
    if ((rc = e2e_read_exact(c, f->data, (size_t)len, timeout_ms)) < 0) {
        wsc_frame_free(f);
        return rc;
    }
    for (size_t i = 0; f->masked && i < len; i++)
        f->data[i] ^= key[i & 3];
    f->data[len] = 0;
    f->len = (size_t)len;
    if ((f->b0 & 0x0F) == WSC_CLOSE)
        f->close_code = len >= 2 ? (f->data[0] << 8 | f->data[1]) : 1005;
    return 0;
}

void wsc_frame_free(wsc_frame_t *f)
{
    free(f->data);
    f->data = NULL;
}

int wsc_read_message(e2e_conn_t *c, unsigned *opcode, uint8_t **data, size_t *len, int *close_code,
                     int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    uint8_t *msg = NULL;
    size_t mlen = 0;
    unsigned op = 0;
    for (;;) {
        int64_t left = end - e2e_now_ms();
        wsc_frame_t f;
        int rc = wsc_read(c, &f, left > 0 ? (int)left : 0);
        if (rc < 0) {
            free(msg);
            return rc;
        }
        unsigned fop = f.b0 & 0x0F;
        if (fop == WSC_CLOSE) {
            if (close_code != NULL)
                *close_code = f.close_code;
            wsc_frame_free(&f);
            free(msg);
            return -EPIPE;
        }
        if (fop == WSC_PING || fop == WSC_PONG) {
            wsc_frame_free(&f);
            continue;
        }
        if (fop != WSC_CONT)
            op = fop;
        uint8_t *m = realloc(msg, mlen + f.len + 1);
        if (m == NULL) {
            wsc_frame_free(&f);
            free(msg);
            return -ENOMEM;
        }
        msg = m;
        memcpy(msg + mlen, f.data, f.len);
        mlen += f.len;
        msg[mlen] = 0;
        bool fin = (f.b0 & WSC_FIN) != 0;
        wsc_frame_free(&f);
        if (fin) {
            *opcode = op;
            *data = msg;
            *len = mlen;
            return 0;
        }
    }
}

int wsc_expect_close(e2e_conn_t *c, int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    int code = -ENOMSG;
    for (;;) {
        int64_t left = end - e2e_now_ms();
        wsc_frame_t f;
        int rc = wsc_read(c, &f, left > 0 ? (int)left : 0);
        if (rc == -ETIMEDOUT)
            return -ETIMEDOUT;
        if (rc < 0)
            return code; /* the TCP close */
        if ((f.b0 & 0x0F) == WSC_CLOSE && code == -ENOMSG)
            code = f.close_code;
        wsc_frame_free(&f);
    }
}

/* ----------------------------------------------------------------- traces */

static void trace_put(wsc_trace_t *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->s, cap);
        if (p == NULL)
            abort(); /* a test helper: out of memory ends the test */
        t->s = p;
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = 0;
}

void wsc_trace_msg(wsc_trace_t *t, char tag, const void *payload, size_t len)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%c:", tag);
    trace_put(t, buf, (size_t)n);
    const uint8_t *p = payload;
    if (len <= 16) {
        for (size_t i = 0; i < len; i++) {
            n = snprintf(buf, sizeof(buf), "%02x", p[i]);
            trace_put(t, buf, (size_t)n);
        }
    } else {
        uint32_t h = 2166136261u; /* FNV-1a */
        for (size_t i = 0; i < len; i++)
            h = (h ^ p[i]) * 16777619u;
        n = snprintf(buf, sizeof(buf), "%zu#%08x", len, h);
        trace_put(t, buf, (size_t)n);
    }
    trace_put(t, " ", 1);
}

void wsc_trace_close(wsc_trace_t *t, int code)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "C:%d ", code);
    trace_put(t, buf, (size_t)n);
}

void wsc_trace_eof(wsc_trace_t *t)
{
    trace_put(t, "X ", 2);
}

void wsc_trace_free(wsc_trace_t *t)
{
    free(t->s);
    memset(t, 0, sizeof(*t));
}

const char *wsc_trace_str(const wsc_trace_t *t)
{
    return t->s != NULL ? t->s : "";
}

int wsc_collect(e2e_conn_t *c, wsc_trace_t *got, const char *want, int quiet_ms, int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    uint8_t *msg = NULL;
    size_t mlen = 0;
    char tag = 0;
    int rc = 0;
    for (;;) {
        int64_t left = end - e2e_now_ms();
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        bool done = want != NULL && strcmp(wsc_trace_str(got), want) == 0;
        wsc_frame_t f;
        int r = wsc_read(c, &f, done ? quiet_ms : (int)left);
        if (r == -ETIMEDOUT) {
            if (!done)
                rc = -ETIMEDOUT;
            break;
        }
        if (r < 0) {
            wsc_trace_eof(got);
            break;
        }
        unsigned op = f.b0 & 0x0F;
        if (op == WSC_CLOSE) {
            wsc_trace_close(got, f.close_code);
        } else if (op == WSC_PING || op == WSC_PONG) {
            wsc_trace_msg(got, op == WSC_PING ? 'P' : 'Q', f.data, f.len);
        } else {
            if (op != WSC_CONT) {
                tag = op == WSC_TEXT ? 'T' : 'B';
                mlen = 0;
            }
            uint8_t *m = realloc(msg, mlen + f.len + 1);
            if (m == NULL)
                abort();
            msg = m;
            memcpy(msg + mlen, f.data, f.len);
            mlen += f.len;
            if (f.b0 & WSC_FIN)
                wsc_trace_msg(got, tag, msg, mlen);
        }
        wsc_frame_free(&f);
    }
    free(msg);
    return rc;
}

/* -------------------------------------------------------------- handlers */

static void echo_open(appsrv_ws_t *ws, void *user)
{
    wsc_echo_t *e = user;
    (void)ws;
    atomic_fetch_add(&e->opened, 1);
}

static void echo_message(appsrv_ws_t *ws, appsrv_ws_type_t type, const void *data, size_t len,
                         void *user)
{
    wsc_echo_t *e = user;
    atomic_fetch_add(&e->messages, 1);
    appsrv_ws_send(ws, type, data, len);
}

static void echo_close(appsrv_ws_t *ws, int code, appsrv_str_t reason, void *user)
{
    wsc_echo_t *e = user;
    (void)reason;
    atomic_store(&e->last_code, code);
    atomic_fetch_add(&e->closed, 1);
    appsrv_ws_release(ws);
}

static void echo_drain(appsrv_ws_t *ws, void *user)
{
    wsc_echo_t *e = user;
    (void)ws;
    atomic_fetch_add(&e->drains, 1);
}

const appsrv_ws_handlers_t wsc_echo_handlers = {
    .on_open = echo_open,
    .on_message = echo_message,
    .on_close = echo_close,
    .on_drain = echo_drain,
};
