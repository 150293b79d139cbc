/* SPDX-License-Identifier: MIT */
/*
 * res.c - the response object: the appsrv_res_* builders (status, reason,
 * headers, body), finishing a deferred response from any thread, stream
 * writes with backpressure, and the cancel and stop notifications. Calls
 * async.c (the completion queue and its lock, the only lock shared with
 * host threads) and conn.c (the host's reference on the connection);
 * called by the host and by the protocols (http.c, line.c), which frame
 * and send. Invariant: a response is off the completion queue whenever it
 * is disposed or reset, whatever the path.
 */
#include "res.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "status.h"

static void res_service(appsrv__aitem_t *it);

static appsrv__async_t *res_async(const appsrv_res_t *res)
{
    return &res->conn->w->async;
}

/* ------------------------------------------------------------ life cycle */

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
    res->upgrade = NULL;
    res->upgrade_data = NULL;
    res->aitem.next = res->aitem.prev = NULL;
    atomic_init(&res->aitem.queued, false);
    res->aitem.cb = res_service;
    res->deferred = res->sent = res->streaming = res->ended = false;
    res->gone = res->cancelling = res->want_drain = false;
    res->pend_head = res->pend_tail = NULL;
    res->pend_bytes = res->pend_off = 0;
    res->on_drain = NULL;
    res->drain_ud = NULL;
    res->head_sent = res->chunked = res->no_body = false;
    res->cancel_called = res->stop_called = false;
    res->hb_ms = 0;
    res->last_out_ms = 0;
    res->out_bytes = 0;
    res->out_body = 0;
    res->hb_timer.idx = 0;
    res->hb_timer.cb = NULL;
    res->on_cancel = NULL;
    res->cancel_ud = NULL;
    res->on_stop = NULL;
    res->stop_ud = NULL;
    res->coding = NULL;
    res->coding_state = NULL;
    res->no_compress = false;
    res->file_fd = -1;
}

static void body_release(appsrv_res_t *res)
{
    if (res->body_is_heap)
        free(res->body);
    else if (res->body_is_ref && res->ref_free != NULL)
        res->ref_free(res->body, res->ref_ud);
    appsrv__res_body_taken(res);
}

void appsrv__res_take_body(appsrv_res_t *res, char *buf, size_t len)
{
    body_release(res);
    res->body = buf;
    res->body_len = res->body_cap = len;
    res->body_is_heap = true;
}

void appsrv__res_body_taken(appsrv_res_t *res)
{
    res->body = res->body_inline;
    res->body_len = 0;
    res->body_cap = sizeof(res->body_inline);
    res->body_is_heap = res->body_is_ref = false;
    res->ref_free = NULL;
    res->ref_ud = NULL;
}

void appsrv__res_dispose(appsrv_res_t *res)
{
    appsrv__conn_t *c = res->conn;
    /* Off the queue first: a response finished by the handler itself
     * (appsrv_res_send() and then a return other than APPSRV_LATER) is
     * still linked there. */
    appsrv__async_remove(&c->w->async, &res->aitem);
    while (res->pend_head != NULL) {
        appsrv__chunk_t *ch = res->pend_head;
        res->pend_head = ch->next;
        free(ch);
    }
    if (appsrv__timer_armed(&res->hb_timer))
        appsrv__timer_stop(&c->w->loop, &res->hb_timer);
    free(res->reason);
    if (res->hdrs != res->hdrs_inline)
        free(res->hdrs);
    body_release(res);
    if (res->coding != NULL)
        res->coding->free(res->coding_state);
    if (appsrv__unlikely(res->file_fd >= 0))
        close(res->file_fd);
    appsrv__res_reset(res, c);
}

void appsrv__res_simple(appsrv_res_t *res, int status)
{
    bool close = res->close;
    appsrv__res_dispose(res);
    res->close = close;
    res->status = status;
    const char *r = appsrv__reason(status);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    appsrv_res_set_body(res, r, strlen(r));
}

/* -------------------------------------------------------------- builders */

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
        return appsrv__ieq(name, nl, "date", 4);
    case 6:
        return appsrv__ieq(name, nl, "server", 6);
    case 10:
        return appsrv__ieq(name, nl, "connection", 10);
    case 14:
        return appsrv__ieq(name, nl, "content-length", 14);
    case 17:
        return appsrv__ieq(name, nl, "transfer-encoding", 17);
    default:
        return false;
    }
}

/* Makes the header buffer hold need bytes. Returns 0, -ENOSPC, -ENOMEM. */
static int hdrs_reserve(appsrv_res_t *res, size_t need)
{
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
    return 0;
}

int appsrv__res_add_line(appsrv_res_t *res, const char *line, size_t len)
{
    size_t need = res->hdrs_len + len;
    if (appsrv__unlikely(need > res->hdrs_cap)) {
        int rc = hdrs_reserve(res, need);
        if (rc < 0)
            return rc;
    }
    memcpy(res->hdrs + res->hdrs_len, line, len);
    res->hdrs_len = need;
    return 0;
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
    int rc = hdrs_reserve(res, need);
    if (rc < 0)
        return rc;
    char *p = res->hdrs + res->hdrs_len;
    memcpy(p, name, nl);
    p += nl;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, value, vl);
    p += vl;
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

/* ------------------------------------------------- held by the host */

void appsrv__res_defer(appsrv_res_t *res)
{
    appsrv__async_t *a = res_async(res);
    appsrv__async_lock(a);
    res->deferred = true;
    appsrv__async_unlock(a);
}

appsrv__res_state_t appsrv__res_state(appsrv_res_t *res)
{
    appsrv__async_t *a = res_async(res);
    appsrv__async_lock(a);
    appsrv__res_state_t st = {res->sent, res->streaming, res->ended};
    appsrv__async_unlock(a);
    return st;
}

/* With the lock held, before a host call acts on res: while the cancel
 * callback runs on the loop, callers on other threads wait for it to
 * return (the callback itself may call in). Then a cancelled res answers
 * APPSRV_ECANCELED, so a host that frees its context on that answer never
 * races its own callback. */
static void wait_cancel_locked(appsrv__async_t *a, appsrv_res_t *res)
{
    while (res->cancelling && !pthread_equal(res->cancel_thread, pthread_self()))
        appsrv__async_wait_locked(a);
}

void appsrv__res_cancel(appsrv_res_t *res)
{
    appsrv__async_t *a = res_async(res);
    appsrv__async_lock(a);
    bool done = res->sent || res->ended;
    /* A host that already finished res must not hear of it again. */
    bool call = !done && !res->gone && !res->cancel_called && res->on_cancel != NULL;
    if (!done && !call)
        res->gone = true;
    if (call) {
        res->gone = true; /* the callback's own calls see it at once */
        res->cancelling = true;
        res->cancel_thread = pthread_self();
    }
    res->cancel_called = true;
    appsrv__async_unlock(a);
    if (!call)
        return;
    res->on_cancel(res, res->cancel_ud);
    appsrv__async_lock(a);
    res->cancelling = false;
    pthread_cond_broadcast(&a->cond);
    appsrv__async_unlock(a);
}

void appsrv__res_stop(appsrv_res_t *res)
{
    if (res->stop_called || res->on_stop == NULL)
        return;
    appsrv__res_state_t st = appsrv__res_state(res);
    if (st.sent || st.ended)
        return;
    res->stop_called = true;
    res->on_stop(res, res->stop_ud);
}

void appsrv__res_conn_closed(appsrv_res_t *res)
{
    appsrv__conn_t *c = res->conn;
    if (!appsrv__conn_host_holds(c))
        return;
    if (appsrv__timer_armed(&res->hb_timer))
        appsrv__timer_stop(&c->w->loop, &res->hb_timer);
    appsrv__res_state_t st = appsrv__res_state(res);
    if (st.sent || st.ended) {
        /* Finished but not yet seen by the loop: release it now. */
        appsrv__res_done(res);
        return;
    }
    /* The host keeps req and res (and the connection's memory) until it
     * finishes res; tell it the client is gone. */
    appsrv__res_cancel(res);
}

void appsrv__res_done(appsrv_res_t *res)
{
    appsrv__async_remove(res_async(res), &res->aitem);
    appsrv__conn_release(res->conn);
}

/* Called from the completion queue on the loop thread. */
static void res_service(appsrv__aitem_t *it)
{
    appsrv_res_t *res = appsrv__container_of(it, appsrv_res_t, aitem);
    appsrv__conn_t *c = res->conn;
    bool abandoned = c->closed || c->close_after || c->state == APPSRV__ST_LINGER;
    if (!abandoned) {
        appsrv__conn_drive(c); /* the protocol frames what is new */
        return;
    }
    /* The client is gone or was answered 503: the host finished late;
     * release what it held. */
    if (!appsrv__conn_host_holds(c))
        return; /* released already */
    appsrv__res_state_t st = appsrv__res_state(res);
    if (!st.sent && !st.ended)
        return;
    if (!c->closed)
        appsrv__res_dispose(res);
    appsrv__conn_release(c); /* may free c's memory (closed, last reference) */
}

static int res_finish(appsrv_res_t *res, bool end)
{
    appsrv__async_t *a = res_async(res);
    int rc;
    appsrv__async_lock(a);
    wait_cancel_locked(a, res);
    if (end ? !res->streaming || res->ended : res->streaming || res->sent) {
        rc = APPSRV_ESTATE;
    } else {
        if (end)
            res->ended = true;
        else
            res->sent = true;
        rc = res->gone ? APPSRV_ECANCELED : 0;
        appsrv__async_post_locked(a, &res->aitem);
    }
    appsrv__async_unlock(a);
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

void appsrv_res_on_stop(appsrv_res_t *res, appsrv_res_cb cb, void *ud)
{
    res->on_stop = cb;
    res->stop_ud = ud;
}

void appsrv_res_on_drain(appsrv_res_t *res, appsrv_res_cb cb, void *ud)
{
    appsrv__async_t *a = res_async(res);
    appsrv__async_lock(a);
    res->on_drain = cb;
    res->drain_ud = ud;
    appsrv__async_unlock(a);
}

/* ---------------------------------------------------------------- streams */

int appsrv__res_stream_begin(appsrv_res_t *res, int hb_ms)
{
    appsrv__async_t *a = res_async(res);
    int rc;
    if (res->conn->proto->id != APPSRV_PROTO_HTTP)
        return APPSRV_ESTATE;
    appsrv__async_lock(a);
    wait_cancel_locked(a, res);
    if (res->streaming || res->sent || res->ended) {
        rc = APPSRV_ESTATE;
    } else {
        res->streaming = true;
        /* RFC 9110 §15.3.5, §15.4.5: no content in 204 and 304. */
        res->no_body = res->status == 204 || res->status == 304;
        res->hb_ms = hb_ms > 0 ? hb_ms : 0;
        rc = res->gone ? APPSRV_ECANCELED : 0;
        if (res->deferred)
            appsrv__async_post_locked(a, &res->aitem);
    }
    appsrv__async_unlock(a);
    return rc;
}

int appsrv_res_stream(appsrv_res_t *res)
{
    return appsrv__res_stream_begin(res, 0);
}

int appsrv_res_write(appsrv_res_t *res, const void *data, size_t len)
{
    appsrv__async_t *a = res_async(res);
    int rc = 0;
    if (len == 0)
        return 0;
    appsrv__async_lock(a);
    wait_cancel_locked(a, res);
    if (!res->streaming || res->ended)
        rc = APPSRV_ESTATE;
    else if (res->gone)
        rc = APPSRV_ECANCELED;
    else if (res->no_body)
        rc = APPSRV_ENOBODY;
    else if (res->pend_bytes >= APPSRV__STREAM_HIGH) {
        res->want_drain = true;
        rc = -EAGAIN;
    }
    appsrv__async_unlock(a);
    if (rc != 0)
        return rc;
    appsrv__chunk_t *ch = malloc(sizeof(*ch) + len);
    if (ch == NULL)
        return -ENOMEM;
    ch->next = NULL;
    ch->len = len;
    memcpy(ch->data, data, len);
    appsrv__async_lock(a);
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
            appsrv__async_post_locked(a, &res->aitem);
    }
    appsrv__async_unlock(a);
    return rc;
}

bool appsrv__res_pump(appsrv_res_t *res, appsrv__take_cb take, void *ud, bool *ended)
{
    appsrv__async_t *a = res_async(res);
    bool progress = false, call_drain = false;

    appsrv__async_lock(a);
    while (res->pend_head != NULL) {
        appsrv__chunk_t *ch = res->pend_head;
        size_t n = take(ch->data + res->pend_off, ch->len - res->pend_off, ud);
        if (n == 0)
            break;
        res->pend_off += n;
        res->pend_bytes -= n;
        progress = true;
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
    *ended = res->ended && res->pend_head == NULL;
    appsrv__async_unlock(a);

    if (progress)
        res->last_out_ms = res->conn->w->loop.now_ms;
    if (call_drain)
        res->on_drain(res, res->drain_ud);
    return progress;
}
