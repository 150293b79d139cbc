/* SPDX-License-Identifier: MIT */
/*
 * ws_api.c - the WebSocket calls of the public API: endpoint routes, the
 * opening handshake (RFC 6455 §4.2: checks, on_upgrade, the 101 with
 * Sec-WebSocket-Accept and the chosen subprotocol), and the handle -
 * sends and closes from any thread, references, subprotocol, host data.
 * Calls ws_handshake.c (SHA-1, base64, token lists), ws_parse.c (frame
 * headers, UTF-8), res.c (the 101 or the refusal), ws.c (switch, pump)
 * and async.c (the lock and queue shared with the loop); called by the
 * host and by http.c through the route's handler. Invariant: a send
 * copies, so the caller's buffer is free again when the call returns.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "req.h"
#include "res.h"
#include "stats.h"
#include "status.h"
#include "ws.h"
#include "ws_handshake.h"

/* ----------------------------------------------------------------- routes */

appsrv__ws_route_t *appsrv__ws_route_new(appsrv__ws_route_t **list, const appsrv_ws_handlers_t *h,
                                         void *user)
{
    appsrv__ws_route_t *r = malloc(sizeof(*r));
    if (r == NULL)
        return NULL;
    r->h = *h;
    r->user = user;
    r->next = *list;
    *list = r;
    return r;
}

void appsrv__ws_routes_free(appsrv__ws_route_t *list)
{
    while (list != NULL) {
        appsrv__ws_route_t *next = list->next;
        free(list);
        list = next;
    }
}

/* -------------------------------------------------------------- handshake */

/* Does any field named name hold token tok in its list? */
static bool header_has_token(const appsrv_req_t *req, const char *name, const char *tok, bool ci)
{
    size_t nl = strlen(name), tl = strlen(tok);
    size_t n = appsrv_req_header_count(req);
    for (size_t i = 0; i < n; i++) {
        appsrv_str_t hn, hv;
        appsrv_req_header_at(req, i, &hn, &hv);
        if (appsrv__ieq(hn.ptr, hn.len, name, nl) &&
            appsrv__token_list_has(hv.ptr, hv.len, tok, tl, ci))
            return true;
    }
    return false;
}

/* The only field named name; ptr NULL when absent or repeated. */
static appsrv_str_t header_once(const appsrv_req_t *req, const char *name)
{
    size_t nl = strlen(name), n = appsrv_req_header_count(req);
    appsrv_str_t found = {NULL, 0};
    for (size_t i = 0; i < n; i++) {
        appsrv_str_t hn, hv;
        appsrv_req_header_at(req, i, &hn, &hv);
        if (appsrv__ieq(hn.ptr, hn.len, name, nl)) {
            if (found.ptr != NULL)
                return (appsrv_str_t){NULL, 0};
            found = hv;
        }
    }
    return found;
}

/* RFC 6455 §4.2.1. Returns 0 with *key set, or the status to refuse with
 * (res gets the headers that go with it). */
static int check_handshake(const appsrv_req_t *req, appsrv_res_t *res, appsrv_str_t *key)
{
    /* Not a WebSocket upgrade at all: say what this resource speaks
     * (RFC 9110 §15.5.22). */
    if (!header_has_token(req, "Upgrade", "websocket", true)) {
        appsrv_res_add_header(res, "Upgrade", "websocket");
        appsrv_res_add_header(res, "Sec-WebSocket-Version", "13");
        return 426;
    }
    if (req->method.len != 3 || memcmp(req->method.ptr, "GET", 3) != 0 || req->minor < 1)
        return 400; /* "An HTTP/1.1 or higher GET request" */
    if (!header_has_token(req, "Connection", "upgrade", true))
        return 400;
    /* §4.4: a version we do not speak gets 426 and the one we do. */
    appsrv_str_t v = header_once(req, "Sec-WebSocket-Version");
    if (v.ptr == NULL || v.len != 2 || memcmp(v.ptr, "13", 2) != 0) {
        appsrv_res_add_header(res, "Sec-WebSocket-Version", "13");
        return 426;
    }
    *key = header_once(req, "Sec-WebSocket-Key");
    if (key->ptr == NULL || !appsrv__ws_key_ok(key->ptr, key->len))
        return 400;
    return 0;
}

/* A refusal: status, and the reason as text unless the host set a body
 * or headers of its own. */
static void refuse(appsrv_res_t *res, int status)
{
    res->status = status;
    if (res->body_len == 0 && res->hdrs_len == 0) {
        const char *r = appsrv__reason(status);
        appsrv_res_add_header(res, "Content-Type", "text/plain");
        appsrv_res_set_body(res, r, strlen(r));
    }
}

int appsrv__ws_upgrade(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    const appsrv__ws_route_t *route = user;
    appsrv__conn_t *c = req->conn;
    appsrv_str_t key;
    int st = check_handshake(req, res, &key);
    if (st != 0) {
        refuse(res, st);
        return 0;
    }
    if (c->w->draining) {
        refuse(res, 503);
        return 0;
    }
    appsrv_ws_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return -ENOMEM;
    ws->conn = c;
    ws->route = route;
    ws->refs = 1; /* the host's, from on_open */
    atomic_init(&ws->aitem.queued, false);
    if (route->h.on_upgrade != NULL) {
        ws->upgrade_req = req;
        int rc = route->h.on_upgrade(ws, req, res, route->user);
        ws->upgrade_req = NULL;
        if (rc != 0) {
            appsrv__ws_discard(ws);
            refuse(res, rc >= 400 && rc <= 599 ? rc : 500);
            return 0;
        }
    }
    char accept[29];
    appsrv__ws_accept(key.ptr, key.len, accept);
    /* §4.2.2: 101, Upgrade, Connection (http_out.c), the accept value and the
     * subprotocol; no Sec-WebSocket-Extensions: none is agreed. */
    appsrv_res_set_body(res, "", 0);
    if (appsrv_res_add_header(res, "Upgrade", "websocket") < 0 ||
        appsrv_res_add_header(res, "Sec-WebSocket-Accept", accept) < 0 ||
        (ws->protocol != NULL &&
         appsrv_res_add_header(res, "Sec-WebSocket-Protocol", ws->protocol) < 0)) {
        appsrv__ws_discard(ws);
        return -ENOMEM;
    }
    /* The connection goes on as WebSocket whatever Connection said
     * besides "upgrade", or the host asked of res. */
    res->close = false;
    c->keep_alive = true;
    res->status = 101;
    res->upgrade = appsrv__ws_switch;
    res->upgrade_data = ws;
    return 0;
}

/* --------------------------------------------------------------- handles */

int appsrv_ws_select_protocol(appsrv_ws_t *ws, const char *protocol)
{
    if (ws == NULL || protocol == NULL)
        return -EINVAL;
    if (ws->upgrade_req == NULL)
        return APPSRV_ESTATE;
    size_t n = strlen(protocol);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)protocol[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", ch) != NULL)
            return -ENOENT; /* not a token (§4.1): no client offers it */
    }
    if (n == 0 || !header_has_token(ws->upgrade_req, "Sec-WebSocket-Protocol", protocol, false))
        return -ENOENT;
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, protocol, n + 1);
    free(ws->protocol);
    ws->protocol = copy;
    return 0;
}

const char *appsrv_ws_protocol(const appsrv_ws_t *ws)
{
    return ws->protocol;
}

void appsrv_ws_set_data(appsrv_ws_t *ws, void *data)
{
    ws->data = data;
}

void *appsrv_ws_data(const appsrv_ws_t *ws)
{
    return ws->data;
}

const appsrv_addr_t *appsrv_ws_peer(const appsrv_ws_t *ws)
{
    return &ws->conn->peer;
}

void appsrv_ws_hold(appsrv_ws_t *ws)
{
    appsrv__async_t *a = &ws->conn->w->async;
    appsrv__async_lock(a);
    ws->refs++;
    appsrv__async_unlock(a);
}

void appsrv_ws_release(appsrv_ws_t *ws)
{
    appsrv__async_t *a = &ws->conn->w->async;
    appsrv__async_lock(a);
    /* The last one: the loop frees ws once it is done with it too. */
    if (--ws->refs == 0)
        appsrv__async_post_locked(a, &ws->aitem);
    appsrv__async_unlock(a);
}

/* True on the loop thread, inside this connection's own processing:
 * output may go straight into its queue, and the loop pumps the rest
 * before it waits again. in_process is read only on that thread. */
static bool on_own_loop(const appsrv_ws_t *ws)
{
    const appsrv__worker_t *w = ws->conn->w;
    return pthread_equal(pthread_self(), w->thread) && ws->in_process;
}

/* Queues frame ch (after the sends before it). Returns 0 or
 * APPSRV_ECLOSED (ch is freed then). */
static int enqueue(appsrv_ws_t *ws, appsrv__ws_chunk_t *ch, bool own_loop)
{
    appsrv__async_t *a = &ws->conn->w->async;
    int rc = 0;
    appsrv__async_lock(a);
    if (ws->closing) {
        rc = APPSRV_ECLOSED;
    } else {
        ch->next = NULL;
        if (ws->pend_tail != NULL)
            ws->pend_tail->next = ch;
        else
            ws->pend_head = ch;
        ws->pend_tail = ch;
        ws->pend_bytes += ch->len;
        if (ch->close)
            ws->closing = true;
        if (!own_loop)
            appsrv__async_post_locked(a, &ws->aitem);
    }
    appsrv__async_unlock(a);
    if (rc != 0)
        free(ch);
    return rc;
}

static appsrv__ws_chunk_t *make_chunk(unsigned op, const void *p1, size_t n1, const void *p2,
                                      size_t n2)
{
    size_t len = n1 + n2;
    appsrv__ws_chunk_t *ch = malloc(sizeof(*ch) + APPSRV__WS_MAX_HEAD + len);
    if (ch == NULL)
        return NULL;
    uint8_t head[APPSRV__WS_MAX_HEAD];
    size_t h = appsrv__ws_frame_head(head, op, len);
    ch->off = (uint8_t)(APPSRV__WS_MAX_HEAD - h);
    memcpy(ch->data + ch->off, head, h);
    if (n1 > 0)
        memcpy(ch->data + APPSRV__WS_MAX_HEAD, p1, n1);
    if (n2 > 0)
        memcpy(ch->data + APPSRV__WS_MAX_HEAD + n1, p2, n2);
    ch->len = h + len;
    ch->close = false;
    return ch;
}

int appsrv_ws_send(appsrv_ws_t *ws, appsrv_ws_type_t type, const void *data, size_t len)
{
    if (ws == NULL || (type != APPSRV_WS_TEXT && type != APPSRV_WS_BINARY) ||
        (data == NULL && len > 0))
        return -EINVAL;
    if (type == APPSRV_WS_TEXT &&
        appsrv__utf8_check(APPSRV__UTF8_ACCEPT, data, len) != APPSRV__UTF8_ACCEPT)
        return -EINVAL; /* RFC 6455 §5.6: text is UTF-8 */
    unsigned op = type == APPSRV_WS_TEXT ? APPSRV__WS_OP_TEXT : APPSRV__WS_OP_BINARY;
    appsrv__async_t *a = &ws->conn->w->async;
    bool own = on_own_loop(ws);
    bool direct = false;
    int rc = 0;
    appsrv__async_lock(a);
    if (ws->closing) {
        rc = APPSRV_ECLOSED;
    } else if (ws->pend_bytes >= APPSRV__STREAM_HIGH) {
        ws->want_drain = true;
        rc = -EAGAIN;
    } else {
        direct = own && ws->pend_head == NULL;
    }
    appsrv__async_unlock(a);
    if (rc != 0)
        return rc;
    if (direct) {
        /* On the loop, nothing queued before it: straight into the output
         * queue when it fits the staging area (no allocation). */
        appsrv__conn_t *c = ws->conn;
        uint8_t *p = (uint8_t *)appsrv__out_reserve(c, APPSRV__WS_MAX_HEAD + len);
        if (p != NULL) {
            size_t h = appsrv__ws_frame_head(p, op, len);
            if (len > 0)
                memcpy(p + h, data, len);
            appsrv__out_commit(c, (char *)p, h + len);
            appsrv__stats_ws_message(&c->w->stats, false); /* metrics */
            return 0;
        }
    }
    appsrv__ws_chunk_t *ch = make_chunk(op, data, len, NULL, 0);
    if (ch == NULL)
        return -ENOMEM;
    return enqueue(ws, ch, own);
}

int appsrv_ws_close(appsrv_ws_t *ws, int code, const char *reason)
{
    if (ws == NULL || code < 0 || !appsrv__ws_close_code_ok((unsigned)code))
        return -EINVAL;
    size_t rl = reason != NULL ? strlen(reason) : 0;
    if (rl > APPSRV__WS_MAX_REASON ||
        appsrv__utf8_check(APPSRV__UTF8_ACCEPT, (const uint8_t *)reason, rl) != APPSRV__UTF8_ACCEPT)
        return -EINVAL; /* §5.5.1: at most 125 bytes with the code, UTF-8 */
    uint8_t cb[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    appsrv__ws_chunk_t *ch = make_chunk(APPSRV__WS_OP_CLOSE, cb, 2, reason, rl);
    if (ch == NULL)
        return -ENOMEM;
    ch->close = true;
    return enqueue(ws, ch, on_own_loop(ws));
}
