/* SPDX-License-Identifier: MIT */
/*
 * http.c - HTTP/1.1 on top of a connection: turns buffered bytes into
 * requests (http_parse.c), reads bodies (Content-Length in place or in one
 * allocation; chunked decoded into a growing buffer within max_body),
 * answers 100-continue, routes (router.c), calls the handler and frames the
 * response (status line, Server, Date, Content-Length, Connection) into the
 * connection's output queue (conn.c). Also the request accessors and the
 * response object. Invariant: a request's views point into rbuf or the
 * body buffer, both kept until its response has been written.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define STATUS_MAP(X)                                                          \
    X(100, "Continue")                                                         \
    X(101, "Switching Protocols")                                              \
    X(200, "OK")                                                               \
    X(201, "Created")                                                          \
    X(202, "Accepted")                                                         \
    X(203, "Non-Authoritative Information")                                    \
    X(204, "No Content")                                                       \
    X(205, "Reset Content")                                                    \
    X(206, "Partial Content")                                                  \
    X(300, "Multiple Choices")                                                 \
    X(301, "Moved Permanently")                                                \
    X(302, "Found")                                                            \
    X(303, "See Other")                                                        \
    X(304, "Not Modified")                                                     \
    X(307, "Temporary Redirect")                                               \
    X(308, "Permanent Redirect")                                               \
    X(400, "Bad Request")                                                      \
    X(401, "Unauthorized")                                                     \
    X(402, "Payment Required")                                                 \
    X(403, "Forbidden")                                                        \
    X(404, "Not Found")                                                        \
    X(405, "Method Not Allowed")                                               \
    X(406, "Not Acceptable")                                                   \
    X(408, "Request Timeout")                                                  \
    X(409, "Conflict")                                                         \
    X(410, "Gone")                                                             \
    X(411, "Length Required")                                                  \
    X(412, "Precondition Failed")                                              \
    X(413, "Payload Too Large")                                                \
    X(414, "URI Too Long")                                                     \
    X(415, "Unsupported Media Type")                                           \
    X(416, "Range Not Satisfiable")                                            \
    X(417, "Expectation Failed")                                               \
    X(421, "Misdirected Request")                                              \
    X(422, "Unprocessable Content")                                            \
    X(425, "Too Early")                                                        \
    X(426, "Upgrade Required")                                                 \
    X(428, "Precondition Required")                                            \
    X(429, "Too Many Requests")                                                \
    X(431, "Request Header Fields Too Large")                                  \
    X(451, "Unavailable For Legal Reasons")                                    \
    X(500, "Internal Server Error")                                            \
    X(501, "Not Implemented")                                                  \
    X(502, "Bad Gateway")                                                      \
    X(503, "Service Unavailable")                                              \
    X(504, "Gateway Timeout")                                                  \
    X(505, "HTTP Version Not Supported")                                       \
    X(507, "Insufficient Storage")

const char *appsrv__reason(int status)
{
    switch (status) {
#define X_CASE(code, text)                                                     \
    case code:                                                                 \
        return text;
        STATUS_MAP(X_CASE)
#undef X_CASE
    default:
        break;
    }
    if (status >= 200 && status < 300)
        return "Success";
    if (status >= 300 && status < 400)
        return "Redirection";
    if (status >= 400 && status < 500)
        return "Client Error";
    return "Server Error";
}

/* --------------------------------------------------------------- helpers */

static size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* "HTTP/1.1 <status> <reason>\r\nServer: ...\r\nDate: <date>\r\n": the
 * start of every response head; at most 80 + rlen bytes. */
static inline char *put_status_head(char *p, int status, const char *reason, size_t rlen,
                                    const char *date)
{
    p = PUT_LIT(p, "HTTP/1.1 ");
    p += fmt_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = put(p, reason, rlen);
    p = PUT_LIT(p, "\r\nServer: " APPSRV__SERVER_HEADER "\r\nDate: ");
    p = put(p, date, 29);
    return PUT_LIT(p, "\r\n");
}

static bool ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

void appsrv__log_request(appsrv__conn_t *c, const appsrv_req_t *req, int status, uint64_t bytes)
{
    const appsrv_config_t *cfg = &c->w->srv->cfg;
    if (cfg->access_log == NULL)
        return;
    appsrv_log_entry_t e = {
        .peer = &c->peer,
        .proto = (appsrv_proto_t)c->proto,
        .status = status,
        .bytes = bytes,
    };
    if (req != NULL) {
        e.method = req->method;
        e.target = req->target;
        uint64_t now = appsrv__now_us();
        e.usec = now > req->start_us ? now - req->start_us : 0;
    }
    cfg->access_log(&e, cfg->access_log_user);
}

/* ---------------------------------------------------------- error replies */

/* Frames a library-made response with a short text body straight into the
 * output queue. Used for parse errors and timeouts (no request object). */
static uint64_t queue_simple(appsrv__conn_t *c, int status, bool close, const char *extra_hdr,
                             size_t extra_len)
{
    const char *reason = appsrv__reason(status);
    size_t rlen = strlen(reason);
    size_t need = 160 + 2 * rlen + extra_len;
    char *mem;
    char *p0 = appsrv__out_begin(c, need, &mem);
    if (p0 == NULL)
        return 0;
    char *p = put_status_head(p0, status, reason, rlen, c->w->loop.date);
    p = PUT_LIT(p, "Content-Type: text/plain\r\nContent-Length: ");
    p += fmt_u64(p, rlen);
    p = PUT_LIT(p, "\r\n");
    if (extra_len)
        p = put(p, extra_hdr, extra_len);
    if (close)
        p = PUT_LIT(p, "Connection: close\r\n");
    p = PUT_LIT(p, "\r\n");
    p = put(p, reason, rlen);
    size_t len = (size_t)(p - p0);
    appsrv__out_finish(c, p0, len, mem);
    return len;
}

void appsrv__http_error(appsrv__conn_t *c, int status)
{
    uint64_t bytes = queue_simple(c, status, true, NULL, 0);
    c->close_after = true;
    c->must_linger = true;
    c->keep_alive = false;
    appsrv__log_request(c, NULL, status, bytes);
}

/* ------------------------------------------------------- response object */

void appsrv__res_reset(appsrv_res_t *res, appsrv__conn_t *c)
{
    res->conn = c;
    res->status = 0;
    res->reason = NULL;
    res->hdrs = res->hdrs_inline;
    res->hdrs_len = 0;
    res->hdrs_cap = sizeof(res->hdrs_inline);
    res->body = res->body_inline;
    res->body_len = 0;
    res->body_cap = sizeof(res->body_inline);
    res->ref_free = NULL;
    res->ref_ud = NULL;
    res->body_is_ref = false;
    res->body_is_heap = false;
    res->close = false;
    res->deferred = res->sent = res->streaming = res->ended = false;
    res->gone = res->want_drain = false;
    res->pend_head = res->pend_tail = NULL;
    res->pend_bytes = res->pend_off = 0;
    res->on_drain = NULL;
    res->drain_ud = NULL;
    res->head_sent = res->chunked = res->cancel_called = false;
    res->hb_ms = 0;
    res->last_out_ms = 0;
    res->hb_timer.idx = 0;
    res->hb_timer.cb = NULL;
    res->on_cancel = NULL;
    res->cancel_ud = NULL;
    res->queued = false;
    res->q_next = res->q_prev = NULL;
}

static void body_release(appsrv_res_t *res)
{
    if (res->body_is_heap)
        free(res->body);
    else if (res->body_is_ref && res->ref_free != NULL)
        res->ref_free(res->body, res->ref_ud);
    res->body = res->body_inline;
    res->body_len = 0;
    res->body_cap = sizeof(res->body_inline);
    res->body_is_heap = res->body_is_ref = false;
    res->ref_free = NULL;
    res->ref_ud = NULL;
}

void appsrv__res_dispose(appsrv_res_t *res)
{
    while (res->pend_head != NULL) {
        appsrv__chunk_t *ch = res->pend_head;
        res->pend_head = ch->next;
        free(ch);
    }
    if (res->conn != NULL && appsrv__timer_armed(&res->hb_timer))
        appsrv__timer_stop(&res->conn->w->loop, &res->hb_timer);
    free(res->reason);
    if (res->hdrs != res->hdrs_inline)
        free(res->hdrs);
    body_release(res);
    appsrv__res_reset(res, res->conn);
}

void appsrv_res_close(appsrv_res_t *res)
{
    res->close = true;
}

int appsrv_res_set_status(appsrv_res_t *res, int status)
{
    if (status < 200 || status > 999)
        return -EINVAL;
    res->status = status;
    return 0;
}

/* RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ) */
static bool is_text_byte(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

int appsrv_res_set_reason(appsrv_res_t *res, const char *reason)
{
    char *copy = NULL;
    if (reason != NULL) {
        size_t n = strlen(reason);
        for (size_t i = 0; i < n; i++)
            if (!is_text_byte((unsigned char)reason[i]))
                return -EINVAL;
        copy = malloc(n + 1);
        if (copy == NULL)
            return -ENOMEM;
        memcpy(copy, reason, n + 1);
    }
    free(res->reason);
    res->reason = copy;
    return 0;
}

/* RFC 9110 §5.6.2 tchar, as a table: header names are checked per call. */
static const uint8_t tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
    ['~'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1,
    ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,
    ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1,
    ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,
    ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* The header fields the library writes itself. */
static bool is_managed(const char *name, size_t nl)
{
    switch (nl) {
    case 4:
        return ieq(name, nl, "date", 4);
    case 6:
        return ieq(name, nl, "server", 6);
    case 10:
        return ieq(name, nl, "connection", 10);
    case 14:
        return ieq(name, nl, "content-length", 14);
    case 17:
        return ieq(name, nl, "transfer-encoding", 17);
    default:
        return false;
    }
}

int appsrv_res_add_header(appsrv_res_t *res, const char *name, const char *value)
{
    if (name == NULL || value == NULL)
        return -EINVAL;
    size_t nl = strlen(name), vl = strlen(value);
    if (nl == 0)
        return -EINVAL;
    for (size_t i = 0; i < nl; i++)
        if (!tchar[(unsigned char)name[i]])
            return -EINVAL;
    for (size_t i = 0; i < vl; i++)
        if (!is_text_byte((unsigned char)value[i]))
            return -EINVAL; /* CR, LF, NUL: header injection */
    if (is_managed(name, nl))
        return -EINVAL;
    size_t need = res->hdrs_len + nl + vl + 4;
    if (need > APPSRV__RES_MAX_HDRS)
        return -ENOSPC;
    if (need > res->hdrs_cap) {
        size_t cap = res->hdrs_cap * 2;
        while (cap < need)
            cap *= 2;
        if (cap > APPSRV__RES_MAX_HDRS)
            cap = APPSRV__RES_MAX_HDRS;
        char *h;
        if (res->hdrs == res->hdrs_inline) {
            h = malloc(cap);
            if (h != NULL)
                memcpy(h, res->hdrs, res->hdrs_len);
        } else {
            h = realloc(res->hdrs, cap);
        }
        if (h == NULL)
            return -ENOMEM;
        res->hdrs = h;
        res->hdrs_cap = cap;
    }
    char *p = res->hdrs + res->hdrs_len;
    p = put(p, name, nl);
    *p++ = ':';
    *p++ = ' ';
    p = put(p, value, vl);
    *p++ = '\r';
    *p++ = '\n';
    res->hdrs_len = need;
    return 0;
}

/* Makes the body an owned, writable buffer of at least cap bytes that
 * keeps the current contents. */
static int body_reserve(appsrv_res_t *res, size_t cap)
{
    if (!res->body_is_ref && cap <= res->body_cap)
        return 0;
    size_t ncap = res->body_cap > 0 ? res->body_cap : 64;
    while (ncap < cap) {
        if (ncap > SIZE_MAX / 2)
            return -ENOMEM;
        ncap *= 2;
    }
    char *b;
    if (res->body_is_heap) {
        b = realloc(res->body, ncap);
        if (b == NULL)
            return -ENOMEM;
    } else {
        b = malloc(ncap);
        if (b == NULL)
            return -ENOMEM;
        memcpy(b, res->body, res->body_len);
        if (res->body_is_ref && res->ref_free != NULL)
            res->ref_free(res->body, res->ref_ud);
        res->body_is_ref = false;
        res->ref_free = NULL;
    }
    res->body = b;
    res->body_cap = ncap;
    res->body_is_heap = true;
    return 0;
}

int appsrv_res_append(appsrv_res_t *res, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (res->body_len + len < len || body_reserve(res, res->body_len + len) < 0)
        return -ENOMEM;
    memcpy(res->body + res->body_len, data, len);
    res->body_len += len;
    return 0;
}

int appsrv_res_set_body(appsrv_res_t *res, const void *data, size_t len)
{
    if (res->body_is_ref)
        body_release(res);
    res->body_len = 0;
    return appsrv_res_append(res, data, len);
}

int appsrv_res_printf(appsrv_res_t *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if (body_reserve(res, res->body_len + (size_t)n + 1) < 0)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(res->body + res->body_len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    res->body_len += (size_t)n;
    return n;
}

int appsrv_res_set_body_ref(appsrv_res_t *res, const void *data, size_t len,
                            void (*free_cb)(void *data, void *ud), void *ud)
{
    body_release(res);
    res->body = (char *)(uintptr_t)data;
    res->body_len = len;
    res->body_cap = len;
    res->body_is_ref = true;
    res->ref_free = free_cb;
    res->ref_ud = ud;
    return 0;
}

/* ------------------------------------------------------ request accessors */

appsrv_proto_t appsrv_req_proto(const appsrv_req_t *req)
{
    return req->proto;
}

appsrv_str_t appsrv_req_method(const appsrv_req_t *req)
{
    return req->method;
}

appsrv_str_t appsrv_req_target(const appsrv_req_t *req)
{
    return req->target;
}

appsrv_str_t appsrv_req_path(const appsrv_req_t *req)
{
    return req->path;
}

appsrv_str_t appsrv_req_query(const appsrv_req_t *req)
{
    if (!req->has_query)
        return (appsrv_str_t){NULL, 0};
    return req->query;
}

int appsrv_req_http_minor(const appsrv_req_t *req)
{
    return req->minor;
}

ssize_t appsrv_req_query_param(const appsrv_req_t *req, const char *name, char *buf,
                               size_t cap)
{
    const char *val;
    size_t vlen;
    if (!req->has_query || name == NULL ||
        !appsrv__query_find(req->query.ptr, req->query.len, name, &val, &vlen))
        return -ENOENT;
    return appsrv_pct_decode(val, vlen, buf, cap, true);
}

appsrv_str_t appsrv_req_param(const appsrv_req_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (unsigned i = 0; i < req->match.nparams; i++) {
        const appsrv__param_t *p = &req->match.params[i];
        if (p->name_len == nl && memcmp(p->name, name, nl) == 0)
            return (appsrv_str_t){p->val, p->val_len};
    }
    return (appsrv_str_t){NULL, 0};
}

appsrv_str_t appsrv_req_header(const appsrv_req_t *req, const char *name)
{
    size_t nl = strlen(name);
    for (uint32_t i = 0; i < req->nhdrs; i++) {
        const appsrv__hdr_t *h = &req->hdrs[i];
        if (ieq(req->base + h->name.off, h->name.len, name, nl))
            return (appsrv_str_t){req->base + h->value.off, h->value.len};
    }
    return (appsrv_str_t){NULL, 0};
}

size_t appsrv_req_header_count(const appsrv_req_t *req)
{
    return req->nhdrs;
}

int appsrv_req_header_at(const appsrv_req_t *req, size_t i, appsrv_str_t *name,
                         appsrv_str_t *value)
{
    if (i >= req->nhdrs)
        return -ERANGE;
    const appsrv__hdr_t *h = &req->hdrs[i];
    if (name != NULL)
        *name = (appsrv_str_t){req->base + h->name.off, h->name.len};
    if (value != NULL)
        *value = (appsrv_str_t){req->base + h->value.off, h->value.len};
    return 0;
}

appsrv_str_t appsrv_req_body(const appsrv_req_t *req)
{
    return req->body;
}

const appsrv_addr_t *appsrv_req_peer(const appsrv_req_t *req)
{
    return &req->conn->peer;
}

/* ---------------------------------------------------------------- framing */

/* Frames res for req into the output queue; takes the body's ownership.
 * Returns the bytes queued (head + body). */
static uint64_t queue_head(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res,
                           bool stream);

static uint64_t queue_response(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res)
{
    return queue_head(c, req, res, false);
}

/* Frames the head (and, unless stream, the body) of res. A stream head
 * announces chunked coding to HTTP/1.1 clients and a close-delimited body
 * to HTTP/1.0 ones. */
static uint64_t queue_head(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res,
                           bool stream)
{
    int st = res->status;
    /* RFC 9110 §8.6, §15.3.5, §15.4.5: no content in 204 and 304. */
    bool no_content = st == 204 || st == 304;
    size_t blen = no_content || stream ? 0 : res->body_len;
    bool send_body = !req->is_head && blen > 0;
    const char *reason = res->reason != NULL ? res->reason : appsrv__reason(st);
    size_t rlen = strlen(reason);
    bool inline_body = send_body && blen <= APPSRV__RES_INLINE_BODY;
    size_t need = 128 + rlen + res->hdrs_len + 40 + (inline_body ? blen : 0);

    char *mem;
    char *p0 = appsrv__out_begin(c, need, &mem);
    if (p0 == NULL) {
        c->close_after = true;
        return 0;
    }
    char *p = put_status_head(p0, st, reason, rlen, c->w->loop.date);
    if (stream) {
        if (req->minor >= 1 && !no_content) {
            p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
            res->chunked = true;
        } else {
            c->keep_alive = false; /* RFC 9112 §6.3: the close ends it */
        }
    } else if (!no_content) {
        /* HEAD keeps the Content-Length a GET would have (RFC 9110 §9.3.2). */
        p = PUT_LIT(p, "Content-Length: ");
        p += fmt_u64(p, res->body_len);
        p = PUT_LIT(p, "\r\n");
    }
    p = put(p, res->hdrs, res->hdrs_len);
    if (!c->keep_alive)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (req->minor == 0)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    if (inline_body)
        p = put(p, res->body, blen);
    size_t hlen = (size_t)(p - p0);
    appsrv__out_finish(c, p0, hlen, mem);

    if (send_body && !inline_body) {
        int rc;
        if (res->body_is_heap) {
            rc = appsrv__out_ref(c, res->body, blen, appsrv__free_cb, res->body, NULL);
            if (rc == 0) {
                res->body_is_heap = false;
                res->body = res->body_inline;
                res->body_cap = sizeof(res->body_inline);
            }
        } else if (res->body_is_ref) {
            rc = appsrv__out_ref(c, res->body, blen, res->ref_free, res->body, res->ref_ud);
            if (rc == 0) {
                res->body_is_ref = false;
                res->ref_free = NULL;
                res->body = res->body_inline;
                res->body_cap = sizeof(res->body_inline);
            }
        } else {
            rc = appsrv__out_copy(c, res->body, blen);
        }
        if (rc < 0)
            c->close_after = true; /* cannot happen: room checked first */
        hlen += blen;
    }
    res->body_len = 0;
    return hlen;
}

static void simple_body(appsrv_res_t *res, int status)
{
    appsrv__res_dispose(res);
    res->status = status;
    const char *r = appsrv__reason(status);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    appsrv_res_set_body(res, r, strlen(r));
}

/* Routes req. On a miss, fills res with 404 or 405 (+ Allow) and returns
 * false. */
static bool route(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res)
{
    appsrv_server_t *srv = c->w->srv;
    const char *path = req->path.len ? req->path.ptr : "/";
    size_t plen = req->path.len ? req->path.len : 1;
    int r = appsrv__router_match(srv->router, req->method.ptr, req->method.len, path, plen,
                                 &req->match);
    if (r == 0)
        return true;
    if (r == -405) {
        char allow[256];
        appsrv__router_allow(srv->router, path, plen, allow, sizeof(allow));
        simple_body(res, 405);
        appsrv_res_add_header(res, "Allow", allow);
    } else {
        simple_body(res, 404);
    }
    return false;
}

static void finish_request(appsrv__conn_t *c)
{
    if (c->body_heap != NULL) {
        /* The request body lives until its response is written (echo
         * handlers may reference it): release it from the queue. */
        if (appsrv__out_ref(c, c->body_heap, 0, appsrv__free_cb, c->body_heap, NULL) < 0)
            free(c->body_heap); /* cannot happen: room checked first */
        c->body_heap = NULL;
    }
    c->body_len = c->body_cap = 0;
    c->body_in_heap = false;
    c->rpos += c->bpos;
    c->bpos = 0;
    c->state = APPSRV__ST_HEAD;
    c->head_started = false;
    c->nreqs++;
    if (!c->keep_alive)
        c->close_after = true;
}

static void dispatch(appsrv__conn_t *c)
{
    appsrv__rctx_t *x = appsrv__ctx(c);
    appsrv_req_t *req = &x->req;
    appsrv_res_t *res = &x->res;

    /* res is clean here: reset with its block, disposed after each use. */
    if (x->head.target_form == APPSRV__TARGET_ASTERISK) {
        /* OPTIONS * (RFC 9110 §9.3.7): the server as a whole is alive. */
        res->status = 200;
    } else if (route(c, req, res)) {
        int rc = req->match.handler(req, res, req->match.user);
        if (rc == APPSRV_LATER) {
            /* The host finishes res later (any thread): wait for it. */
            appsrv__conn_wait(c, res);
            return;
        }
        if (rc < 0 || res->status == 0)
            simple_body(res, 500);
    }
    int status = res->status;
    if (res->close)
        c->keep_alive = false;
    uint64_t bytes = queue_response(c, req, res);
    appsrv__res_dispose(res);
    appsrv__log_request(c, req, status, bytes);
    finish_request(c);
}

/* ------------------------------------------- deferred responses, streams */

static void hb_timer_cb(appsrv__loop_t *loop, appsrv__timer_t *t);

/* Finishes the response the host held: the connection moves on to the
 * next request. Caller: loop thread, res no longer reachable by the host. */
static void finish_deferred(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res, int status,
                            uint64_t bytes)
{
    appsrv__res_unqueue(res);
    if (res->close)
        c->keep_alive = false;
    appsrv__res_dispose(res);
    appsrv__log_request(c, req, status, bytes);
    c->host_holds = false;
    finish_request(c);
}

/* Moves what the host has written into the output queue, framed. Returns
 * 1 on progress. Holds qlock while copying (at most a staging area). */
static int pump_stream(appsrv__conn_t *c, appsrv_req_t *req, appsrv_res_t *res)
{
    appsrv__worker_t *w = c->w;
    int progress = 0;
    bool call_drain = false, ended;

    pthread_mutex_lock(&w->qlock);
    while (res->pend_head != NULL) {
        appsrv__chunk_t *ch = res->pend_head;
        size_t avail = ch->len - res->pend_off;
        size_t n = avail;
        if (!req->is_head) {
            size_t room = appsrv__out_room(c);
            if (room < 64)
                break;
            if (n > room - 32)
                n = room - 32;
            char *p0 = appsrv__out_reserve(c, n + 32);
            if (p0 == NULL)
                break;
            char *p = p0;
            if (res->chunked) {
                static const char hex[] = "0123456789abcdef";
                char tmp[16];
                int k = 0;
                size_t v = n;
                do {
                    tmp[k++] = hex[v & 15];
                    v >>= 4;
                } while (v != 0);
                while (k > 0)
                    *p++ = tmp[--k];
                *p++ = '\r';
                *p++ = '\n';
            }
            memcpy(p, ch->data + res->pend_off, n);
            p += n;
            if (res->chunked) {
                *p++ = '\r';
                *p++ = '\n';
            }
            appsrv__out_commit(c, p0, (size_t)(p - p0));
        }
        res->pend_off += n;
        res->pend_bytes -= n;
        progress = 1;
        if (res->pend_off == ch->len) {
            res->pend_head = ch->next;
            if (res->pend_head == NULL)
                res->pend_tail = NULL;
            res->pend_off = 0;
            free(ch);
        }
    }
    if (res->want_drain && res->pend_bytes < APPSRV__STREAM_LOW) {
        res->want_drain = false;
        call_drain = res->on_drain != NULL;
    }
    ended = res->ended && res->pend_head == NULL;
    pthread_mutex_unlock(&w->qlock);

    if (progress)
        res->last_out_ms = w->loop.now_ms;
    if (call_drain)
        res->on_drain(res, res->drain_ud);
    if (ended) {
        if (res->chunked && !req->is_head && appsrv__out_copy(c, "0\r\n\r\n", 5) < 0)
            return progress; /* no room: after the next flush */
        finish_deferred(c, req, res, res->status, 0);
        return 1;
    }
    return progress;
}

/* The connection's side of a response the host holds. */
static int pump(appsrv__conn_t *c)
{
    appsrv__rctx_t *x = appsrv__ctx(c);
    appsrv_req_t *req = &x->req;
    appsrv_res_t *res = &x->res;
    bool sent, streaming;

    pthread_mutex_lock(&c->w->qlock);
    sent = res->sent;
    streaming = res->streaming;
    pthread_mutex_unlock(&c->w->qlock);
    if (streaming) {
        if (!res->head_sent) {
            if (appsrv__out_room(c) < 512)
                return 0;
            if (res->status == 0)
                res->status = 200;
            queue_head(c, req, res, true);
            res->head_sent = true;
            res->last_out_ms = c->w->loop.now_ms;
            if (res->hb_ms > 0) {
                res->hb_timer.cb = hb_timer_cb;
                appsrv__timer_start(&c->w->loop, &res->hb_timer,
                                    c->w->loop.now_ms + (uint64_t)res->hb_ms);
            }
        }
        return pump_stream(c, req, res) | 1;
    }
    if (!sent)
        return 0;
    if (res->status == 0)
        simple_body(res, 500);
    int status = res->status;
    if (res->close)
        c->keep_alive = false;
    uint64_t bytes = queue_response(c, req, res);
    finish_deferred(c, req, res, status, bytes);
    return 1;
}

static void hb_timer_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    appsrv_res_t *res = appsrv__container_of(t, appsrv_res_t, hb_timer);
    appsrv__conn_t *c = res->conn;
    if (c->closing || c->state != APPSRV__ST_WAIT)
        return;
    uint64_t due = res->last_out_ms + (uint64_t)res->hb_ms;
    if (loop->now_ms >= due && appsrv__out_busy(c)) {
        /* Output still queued: the path is not idle; look again later. */
        due = loop->now_ms + (uint64_t)res->hb_ms;
    } else if (loop->now_ms >= due) {
        /* An SSE comment line: ignored by clients, keeps the path warm. */
        static const char beat[] = "c\r\n:heartbeat\n\n\r\n";
        static const char beat10[] = ":heartbeat\n\n";
        if (!c->zombie && !appsrv__ctx(c)->req.is_head) {
            if (res->chunked)
                appsrv__out_copy(c, beat, sizeof(beat) - 1);
            else
                appsrv__out_copy(c, beat10, sizeof(beat10) - 1);
        }
        res->last_out_ms = loop->now_ms;
        due = loop->now_ms + (uint64_t)res->hb_ms;
        appsrv__conn_drive(c);
        /* The drive may have ended the stream (res reset, timer cleared)
         * or moved on to a next request that armed it afresh. */
        if (c->closing || c->state != APPSRV__ST_WAIT || t->cb != hb_timer_cb ||
            appsrv__timer_armed(t))
            return;
    }
    appsrv__timer_start(loop, t, due);
}

/* The completion queue is doubly linked: a response leaves it in O(1)
 * when its connection closes first. */
static void q_unlink_locked(appsrv__worker_t *w, appsrv_res_t *res)
{
    if (res->q_prev != NULL)
        res->q_prev->q_next = res->q_next;
    else
        w->q_head = res->q_next;
    if (res->q_next != NULL)
        res->q_next->q_prev = res->q_prev;
    else
        w->q_tail = res->q_prev;
    res->q_next = res->q_prev = NULL;
    res->queued = false;
}

void appsrv__res_unqueue(appsrv_res_t *res)
{
    appsrv__worker_t *w = res->conn->w;
    pthread_mutex_lock(&w->qlock);
    if (res->queued)
        q_unlink_locked(w, res);
    pthread_mutex_unlock(&w->qlock);
}

appsrv_res_t *appsrv__res_pop_locked(appsrv__worker_t *w)
{
    appsrv_res_t *res = w->q_head;
    if (res != NULL)
        q_unlink_locked(w, res);
    return res;
}

void appsrv__res_enqueue_locked(appsrv_res_t *res)
{
    appsrv__worker_t *w = res->conn->w;
    if (res->queued)
        return;
    res->queued = true;
    res->q_next = NULL;
    res->q_prev = w->q_tail;
    if (w->q_tail != NULL)
        w->q_tail->q_next = res;
    else
        w->q_head = res;
    w->q_tail = res;
    appsrv__loop_wake(&w->loop);
}

void appsrv__res_cancel(appsrv_res_t *res)
{
    appsrv__worker_t *w = res->conn->w;
    pthread_mutex_lock(&w->qlock);
    bool done = res->sent || res->ended;
    if (!done)
        res->gone = true;
    pthread_mutex_unlock(&w->qlock);
    /* A host that already finished res must not hear of it again. */
    if (!done && !res->cancel_called) {
        res->cancel_called = true;
        if (res->on_cancel != NULL)
            res->on_cancel(res, res->cancel_ud);
    }
}

void appsrv__res_service(appsrv_res_t *res)
{
    appsrv__conn_t *c = res->conn;
    if (c->zombie) {
        pthread_mutex_lock(&c->w->qlock);
        bool done = res->sent || res->ended;
        pthread_mutex_unlock(&c->w->qlock);
        if (done)
            appsrv__conn_release_zombie(c);
        return;
    }
    if (c->host_holds && (c->close_after || c->state == APPSRV__ST_LINGER)) {
        /* Abandoned (503 after response_timeout_ms): the host finished
         * late; release what it held, the connection is closing. */
        pthread_mutex_lock(&c->w->qlock);
        bool done = res->sent || res->ended;
        pthread_mutex_unlock(&c->w->qlock);
        if (done) {
            appsrv__res_dispose(res);
            c->host_holds = false;
        }
        return;
    }
    if (c->host_holds)
        appsrv__conn_drive(c);
}

static int res_finish(appsrv_res_t *res, bool end)
{
    appsrv__worker_t *w = res->conn->w;
    int rc = 0;
    pthread_mutex_lock(&w->qlock);
    if (end ? !res->streaming || res->ended : res->streaming || res->sent) {
        rc = APPSRV_ESTATE;
    } else {
        if (end)
            res->ended = true;
        else
            res->sent = true;
        rc = res->gone ? APPSRV_ECANCELED : 0;
        appsrv__res_enqueue_locked(res);
    }
    pthread_mutex_unlock(&w->qlock);
    return rc;
}

int appsrv_res_send(appsrv_res_t *res)
{
    return res_finish(res, false);
}

int appsrv_res_end(appsrv_res_t *res)
{
    return res_finish(res, true);
}

void appsrv_res_on_cancel(appsrv_res_t *res, appsrv_res_cb cb, void *ud)
{
    res->on_cancel = cb;
    res->cancel_ud = ud;
}

void appsrv_res_on_drain(appsrv_res_t *res, appsrv_res_cb cb, void *ud)
{
    appsrv__worker_t *w = res->conn->w;
    pthread_mutex_lock(&w->qlock);
    res->on_drain = cb;
    res->drain_ud = ud;
    pthread_mutex_unlock(&w->qlock);
}

static int stream_begin(appsrv_res_t *res, int hb_ms)
{
    appsrv__conn_t *c = res->conn;
    appsrv__worker_t *w = c->w;
    int rc;
    if (c->proto != APPSRV_PROTO_HTTP)
        return APPSRV_ESTATE;
    pthread_mutex_lock(&w->qlock);
    if (res->streaming || res->sent || res->ended) {
        rc = APPSRV_ESTATE;
    } else {
        res->streaming = true;
        res->hb_ms = hb_ms > 0 ? hb_ms : 0;
        rc = res->gone ? APPSRV_ECANCELED : 0;
        if (res->deferred)
            appsrv__res_enqueue_locked(res);
    }
    pthread_mutex_unlock(&w->qlock);
    return rc;
}

int appsrv_res_stream(appsrv_res_t *res)
{
    return stream_begin(res, 0);
}

int appsrv_res_sse_begin(appsrv_res_t *res, int heartbeat_ms)
{
    /* Headers first: once streaming, the head may go out at any moment. */
    if (res->streaming)
        return APPSRV_ESTATE;
    int rc = appsrv_res_add_header(res, "Content-Type", "text/event-stream");
    if (rc == 0)
        rc = appsrv_res_add_header(res, "Cache-Control", "no-cache");
    if (rc < 0)
        return rc;
    return stream_begin(res, heartbeat_ms);
}

int appsrv_res_write(appsrv_res_t *res, const void *data, size_t len)
{
    appsrv__worker_t *w = res->conn->w;
    int rc = 0;
    if (len == 0)
        return 0;
    pthread_mutex_lock(&w->qlock);
    if (!res->streaming || res->ended) {
        rc = APPSRV_ESTATE;
    } else if (res->gone) {
        rc = APPSRV_ECANCELED;
    } else if (res->pend_bytes >= APPSRV__STREAM_HIGH) {
        res->want_drain = true;
        rc = -EAGAIN;
    }
    pthread_mutex_unlock(&w->qlock);
    if (rc != 0)
        return rc;
    appsrv__chunk_t *ch = malloc(sizeof(*ch) + len);
    if (ch == NULL)
        return -ENOMEM;
    ch->next = NULL;
    ch->len = len;
    memcpy(ch->data, data, len);
    pthread_mutex_lock(&w->qlock);
    if (res->gone || res->ended) {
        rc = res->gone ? APPSRV_ECANCELED : APPSRV_ESTATE;
        free(ch);
    } else {
        if (res->pend_tail != NULL)
            res->pend_tail->next = ch;
        else
            res->pend_head = ch;
        res->pend_tail = ch;
        res->pend_bytes += len;
        if (res->deferred)
            appsrv__res_enqueue_locked(res);
    }
    pthread_mutex_unlock(&w->qlock);
    return rc;
}

static bool has_crlf(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") != NULL;
}

int appsrv_res_sse_send(appsrv_res_t *res, const char *event, const char *id, const char *data)
{
    if (has_crlf(event) || has_crlf(id))
        return -EINVAL;
    size_t dl = data != NULL ? strlen(data) : 0;
    size_t lines = 1;
    for (size_t i = 0; i < dl; i++)
        lines += data[i] == '\n';
    size_t cap = 16 + (event ? strlen(event) + 8 : 0) + (id ? strlen(id) + 5 : 0) + dl +
                 lines * 7;
    char *buf = malloc(cap);
    if (buf == NULL)
        return -ENOMEM;
    char *p = buf;
    if (event != NULL) {
        p = PUT_LIT(p, "event: ");
        p = put(p, event, strlen(event));
        *p++ = '\n';
    }
    if (id != NULL) {
        p = PUT_LIT(p, "id: ");
        p = put(p, id, strlen(id));
        *p++ = '\n';
    }
    /* One data field per line (a CR or CRLF also ends a line in SSE). */
    size_t start = 0;
    for (size_t i = 0; i <= dl; i++) {
        if (i == dl || data[i] == '\n' || data[i] == '\r') {
            p = PUT_LIT(p, "data: ");
            p = put(p, data + start, i - start);
            *p++ = '\n';
            if (i < dl && data[i] == '\r' && i + 1 < dl && data[i + 1] == '\n')
                i++;
            start = i + 1;
        }
    }
    *p++ = '\n';
    int rc = appsrv_res_write(res, buf, (size_t)(p - buf));
    free(buf);
    return rc;
}

/* ------------------------------------------------------------- the state */

static void fill_request(appsrv__conn_t *c, uint32_t head_len)
{
    appsrv__rctx_t *x = appsrv__ctx(c);
    appsrv__http_head_t *h = &x->head;
    appsrv_req_t *req = &x->req;
    const char *base = c->rbuf + c->rpos;

    req->conn = c;
    req->proto = APPSRV_PROTO_HTTP;
    req->minor = h->minor;
    req->base = base;
    req->method = (appsrv_str_t){base + h->method.off, h->method.len};
    req->target = (appsrv_str_t){base + h->target.off, h->target.len};
    req->path = (appsrv_str_t){base + h->path.off, h->path.len};
    req->query = (appsrv_str_t){base + h->query.off, h->query.len};
    req->has_query = h->has_query;
    req->hdrs = h->hdrs;
    req->nhdrs = h->nhdrs;
    /* RFC 9112 §3.2.2: for an absolute-form target the Host field is
     * ignored; the handler sees the target's authority as its value. */
    if (h->target_form == APPSRV__TARGET_ABSOLUTE)
        for (uint32_t i = 0; i < h->nhdrs; i++)
            if (ieq(base + h->hdrs[i].name.off, h->hdrs[i].name.len, "host", 4))
                h->hdrs[i].value = h->authority;
    req->body = (appsrv_str_t){"", 0};
    req->is_head = h->method.len == 4 && memcmp(req->method.ptr, "HEAD", 4) == 0;
    req->match.nparams = 0;
    req->start_us = c->w->srv->cfg.access_log != NULL ? appsrv__now_us() : 0;
    c->bpos = head_len;
    c->hlen = head_len;
}

/* Starts the body phase. Returns 0, or a status to answer with (and
 * close: the body was not read). */
static int begin_body(appsrv__conn_t *c, uint32_t head_len)
{
    appsrv_server_t *srv = c->w->srv;
    appsrv__rctx_t *x = appsrv__ctx(c);
    appsrv__http_head_t *h = &x->head;
    size_t cap = srv->block_data_cap;
    size_t avail = c->rlen - c->rpos - head_len;
    bool need_more = false;

    c->keep_alive = h->minor >= 1 ? !h->conn_close : (h->conn_keep_alive && !h->conn_close);
    if (c->w->draining)
        c->keep_alive = false;
    c->body_len = 0;
    c->body_in_heap = false;
    if (h->is_chunked) {
        memset(&x->chunk, 0, sizeof(x->chunk));
        need_more = true;
    } else if (h->has_content_length && h->content_length > 0) {
        if (h->content_length > srv->cfg.max_body)
            return 413;
        size_t cl = (size_t)h->content_length;
        if (cl > avail) {
            need_more = true;
            if (c->rpos > 0 && c->rpos + head_len + cl > cap && !appsrv__out_busy(c)) {
                memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
                c->rlen -= c->rpos;
                c->rpos = 0;
                fill_request(c, head_len);
            }
            if (c->rpos + head_len + cl > cap) {
                /* Does not fit: one allocation of exactly the body. */
                c->body_heap = malloc(cl);
                if (c->body_heap == NULL)
                    return 503;
                memcpy(c->body_heap, c->rbuf + c->rpos + head_len, avail);
                c->body_len = avail;
                c->body_cap = cl;
                c->body_in_heap = true;
                c->bpos = head_len + (uint32_t)avail;
            }
        }
    }
    c->state = APPSRV__ST_BODY;
    /* RFC 9110 §10.1.1: answer 100 before reading the body, or the final
     * status at once when the body would be refused. */
    if (need_more && h->expect_continue && h->minor >= 1 && avail == 0) {
        appsrv_req_t *req = &x->req;
        appsrv_res_t *res = &x->res;
        appsrv__res_dispose(res);
        if (x->head.target_form != APPSRV__TARGET_ASTERISK && !route(c, req, res)) {
            c->keep_alive = false;
            int status = res->status;
            uint64_t bytes = queue_response(c, req, res);
            appsrv__res_dispose(res);
            appsrv__log_request(c, req, status, bytes);
            c->close_after = true;
            c->must_linger = true; /* the client may send the body anyway */
            return 0;
        }
        appsrv__out_copy(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    }
    return 0;
}

/* Returns 1 when the body is complete, 0 when more is needed, or
 * -status. */
static int read_body(appsrv__conn_t *c)
{
    appsrv_server_t *srv = c->w->srv;
    appsrv__rctx_t *x = appsrv__ctx(c);
    appsrv__http_head_t *h = &x->head;
    appsrv_req_t *req = &x->req;
    uint32_t head_len = c->hlen;

    if (h->is_chunked) {
        const char *p = c->rbuf + c->rpos + c->bpos;
        size_t len = c->rlen - c->rpos - c->bpos;
        while (len > 0 && !x->chunk.done) {
            size_t dlen = 0;
            int64_t n = appsrv__chunked_parse(&x->chunk, p, len, srv->cfg.max_head, &dlen);
            if (n < 0)
                return (int)n;
            if (dlen > 0) {
                if (c->body_len + dlen > srv->cfg.max_body)
                    return -413;
                if (c->body_len + dlen > c->body_cap) {
                    size_t ncap = c->body_cap ? c->body_cap : 4096;
                    while (ncap < c->body_len + dlen)
                        ncap *= 2;
                    if (ncap > srv->cfg.max_body)
                        ncap = srv->cfg.max_body;
                    char *b = realloc(c->body_heap, ncap);
                    if (b == NULL)
                        return -503;
                    c->body_heap = b;
                    c->body_cap = ncap;
                }
                memcpy(c->body_heap + c->body_len, p, dlen);
                c->body_len += dlen;
            }
            p += n;
            len -= (size_t)n;
            c->bpos += (uint32_t)n;
        }
        if (!x->chunk.done)
            return 0;
        req->body = (appsrv_str_t){c->body_heap ? c->body_heap : "", c->body_len};
        return 1;
    }
    if (!h->has_content_length || h->content_length == 0)
        return 1;
    if (c->body_in_heap) {
        if (c->body_len < c->body_cap)
            return 0;
        req->body = (appsrv_str_t){c->body_heap, c->body_len};
        return 1;
    }
    size_t avail = c->rlen - c->rpos - head_len;
    if (avail < h->content_length)
        return 0;
    req->body = (appsrv_str_t){c->rbuf + c->rpos + head_len, (size_t)h->content_length};
    c->bpos = head_len + (uint32_t)h->content_length;
    return 1;
}

int appsrv__http_process(appsrv__conn_t *c)
{
    appsrv_server_t *srv = c->w->srv;
    const appsrv__http_limits_t lim = {
        .max_head = srv->cfg.max_head,
        .max_target = srv->cfg.max_target,
        .max_headers = srv->cfg.max_headers,
    };
    int progress = 0;

    while (!c->closing && !c->close_after) {
        if (c->state == APPSRV__ST_WAIT) {
            progress |= pump(c);
            if (c->state == APPSRV__ST_WAIT)
                return progress;
            continue;
        }
        if (c->state == APPSRV__ST_HEAD) {
            if (c->rblk == NULL || c->rlen == c->rpos)
                return progress;
            /* Room for one more response; else flush first. */
            if (appsrv__out_room(c) < 512)
                return progress;
            appsrv__rctx_t *x = appsrv__ctx(c);
            if (!c->head_started) {
                memset(&x->head, 0, sizeof(x->head));
                x->head.hdrs = appsrv__block_hdrs(c->rblk);
                c->head_started = true;
            }
            int r = appsrv__http_parse_head(&x->head, c->rbuf + c->rpos, c->rlen - c->rpos, &lim);
            if (r == APPSRV__AGAIN) {
                if (c->rlen == srv->block_data_cap && c->rpos == 0) {
                    appsrv__http_error(c, 431); /* unreachable: cap > max_head */
                    return 1;
                }
                return progress;
            }
            if (r < 0) {
                appsrv__http_error(c, -r);
                return 1;
            }
            fill_request(c, (uint32_t)r);
            int st = begin_body(c, (uint32_t)r);
            if (st != 0) {
                appsrv__http_error(c, st);
                return 1;
            }
            progress = 1;
            if (c->close_after)
                return progress;
        }
        int r = read_body(c);
        if (r == 0)
            return progress;
        if (r < 0) {
            appsrv__http_error(c, -r);
            return 1;
        }
        dispatch(c);
        progress = 1;
    }
    return progress;
}
