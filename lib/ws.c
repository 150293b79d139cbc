/* SPDX-License-Identifier: MIT */
/*
 * ws.c - WebSocket (RFC 6455) as a protocol table (proto.h) over a
 * connection that answered 101: frames in through the pure decoder
 * (ws_parse.c) into whole messages for on_message, pings answered, the
 * closing handshake both ways (§7), server pings on a timer, and the
 * host's queued sends moved into the output queue. Called by conn.c (the
 * table), http.c (appsrv__ws_switch after the 101) and ws_api.c. Memory:
 * nothing per connection while idle beyond the handle - the input block
 * goes back between frames as between HTTP requests, a message is
 * reassembled in its own allocation only when it does not arrive whole
 * in one read, and that allocation is freed once delivered.
 */
#include "ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "res.h"
#include "stats.h"

/* Output room a frame step needs before input is decoded: a pong or a
 * close (at most 2 + 125 bytes) always fits. */
#define STEP_ROOM 256
/* Queued sends this small are copied into the staging area; larger ones
 * are written from their own allocation. */
#define COPY_MAX 512
/* A data frame with at least this much payload still to come, once the
 * input block is empty, is read straight into the message buffer (conn.c's
 * body_heap path): one copy and far fewer reads for large messages. */
#define DIRECT_MIN (16 * 1024)

static const appsrv_ws_handlers_t *handlers(const appsrv_ws_t *ws)
{
    return &ws->route->h;
}

static void *user(const appsrv_ws_t *ws)
{
    return ws->route->user;
}

static appsrv__async_t *ws_async(const appsrv_ws_t *ws)
{
    return &ws->conn->w->async;
}

/* ------------------------------------------------------------- life cycle */

static void free_chunks(appsrv__ws_chunk_t *ch)
{
    while (ch != NULL) {
        appsrv__ws_chunk_t *next = ch->next;
        free(ch);
        ch = next;
    }
}

void appsrv__ws_discard(appsrv_ws_t *ws)
{
    free(ws->protocol);
    free(ws);
}

/* Frees ws once the loop is done with it (on_close returned) and the host
 * holds no reference. Loop thread. */
static void maybe_free(appsrv_ws_t *ws)
{
    appsrv__async_t *a = ws_async(ws);
    if (!ws->loop_done)
        return;
    appsrv__async_lock(a);
    bool last = ws->refs == 0;
    appsrv__async_unlock(a);
    if (!last)
        return;
    appsrv__async_remove(a, &ws->aitem);
    free_chunks(ws->pend_head);
    free(ws->msg);
    free(ws->peer_reason);
    appsrv__conn_t *c = ws->conn;
    appsrv__ws_discard(ws);
    appsrv__conn_release(c); /* may retire c: closed, last reference */
}

void appsrv__ws_service(appsrv__aitem_t *it)
{
    appsrv_ws_t *ws = appsrv__container_of(it, appsrv_ws_t, aitem);
    if (ws->loop_done) {
        maybe_free(ws); /* the host dropped its last reference */
        return;
    }
    appsrv__conn_drive(ws->conn); /* its process pumps the new sends */
}

/* -------------------------------------------------------------- output */

/* Queues a frame the loop makes (pong, ping, close): small, and the room
 * was checked. */
static void put_control(appsrv__conn_t *c, unsigned op, const void *payload, size_t len)
{
    uint8_t *p = (uint8_t *)appsrv__out_reserve(c, APPSRV__WS_MAX_HEAD + len);
    if (p == NULL) {
        c->close_after = true; /* cannot happen: room checked first */
        return;
    }
    size_t h = appsrv__ws_frame_head(p, op, len);
    if (len > 0)
        memcpy(p + h, payload, len);
    appsrv__out_commit(c, (char *)p, h + len);
}

static void close_payload(uint8_t *out, size_t *len, unsigned code, const char *reason, size_t rl)
{
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    memcpy(out + 2, reason, rl);
    *len = 2 + rl;
}

/* Sends are over: no more host frames (those still pending are dropped;
 * those the output queue holds already go out). */
static void set_closing(appsrv_ws_t *ws)
{
    appsrv__async_t *a = ws_async(ws);
    appsrv__async_lock(a);
    ws->closing = true;
    appsrv__ws_chunk_t *drop = ws->pend_head;
    for (appsrv__ws_chunk_t *ch = drop; ch != NULL; ch = ch->next)
        ws->pend_bytes -= ch->len;
    ws->pend_head = ws->pend_tail = NULL;
    ws->want_drain = false;
    ws->pend_seen = ws->pend_bytes;
    appsrv__async_unlock(a);
    free_chunks(drop);
}

/* Our close frame is queued: wait (bounded) for the peer's. */
static void close_sent(appsrv_ws_t *ws)
{
    appsrv__conn_t *c = ws->conn;
    ws->close_sent = true;
    appsrv__timer_start(&c->w->loop, &ws->timer,
                        c->w->loop.now_ms + (uint64_t)c->w->cfg->ws_close_timeout_ms);
}

/* Fails the connection (RFC 6455 §7.1.7): a close frame with code, then
 * the TCP close. */
static void fail(appsrv_ws_t *ws, unsigned code)
{
    appsrv__conn_t *c = ws->conn;
    set_closing(ws);
    if (!ws->close_sent) {
        uint8_t pl[2];
        size_t n;
        close_payload(pl, &n, code, "", 0);
        put_control(c, APPSRV__WS_OP_CLOSE, pl, n);
        ws->close_sent = true;
    }
    if (ws->close_code == 0)
        ws->close_code = (uint16_t)code;
    appsrv__timer_stop(&c->w->loop, &ws->timer);
    c->close_after = true;
    c->must_linger = true; /* the peer may still be sending: no reset */
}

/* The output queue wrote (or dropped) a queued frame: it no longer counts
 * towards the send limit. */
static void chunk_written(void *data, void *ud)
{
    appsrv__ws_chunk_t *ch = data;
    appsrv_ws_t *ws = ud;
    appsrv__async_t *a = ws_async(ws);
    ws->inflight -= ch->len;
    appsrv__async_lock(a);
    ws->pend_bytes -= ch->len;
    appsrv__async_unlock(a);
    free(ch);
}

int appsrv__ws_pump(appsrv_ws_t *ws)
{
    appsrv__conn_t *c = ws->conn;
    appsrv__async_t *a = ws_async(ws);
    int progress = 0;
    bool closed_now = false, call_drain = false;
    uint64_t nmsgs = 0;

    appsrv__async_lock(a);
    while (ws->pend_head != NULL && !ws->close_sent) {
        appsrv__ws_chunk_t *ch = ws->pend_head;
        uint8_t *frame = ch->data + ch->off;
        char *dst = ch->len <= COPY_MAX ? appsrv__out_reserve(c, ch->len) : NULL;
        if (dst != NULL) {
            memcpy(dst, frame, ch->len);
            appsrv__out_commit(c, dst, ch->len);
        } else if (ws->inflight >= APPSRV__STREAM_HIGH || appsrv__out_room(c) == 0 ||
                   appsrv__out_ref(c, frame, ch->len, chunk_written, ch, ws) < 0) {
            break; /* after the next flush */
        } else {
            ws->inflight += ch->len;
        }
        ws->pend_head = ch->next;
        if (ws->pend_head == NULL)
            ws->pend_tail = NULL;
        if (dst != NULL)
            ws->pend_bytes -= ch->len; /* copied; a referenced one counts until written */
        progress = 1;
        if (ch->close)
            closed_now = true;
        else
            nmsgs++;
        if (dst != NULL)
            free(ch);
        if (closed_now)
            break;
    }
    if (ws->want_drain && ws->pend_bytes < APPSRV__STREAM_LOW) {
        ws->want_drain = false;
        call_drain = handlers(ws)->on_drain != NULL;
    }
    ws->pend_seen = ws->pend_bytes;
    appsrv__async_unlock(a);
    if (nmsgs > 0)
        appsrv__ctr_add(&c->w->stats.ws_messages_out, nmsgs); /* metrics */

    if (closed_now) {
        set_closing(ws); /* anything sent after the close is dropped */
        close_sent(ws);
    }
    if (call_drain)
        handlers(ws)->on_drain(ws, user(ws));
    return progress;
}

/* -------------------------------------------------------------- input */

static void deliver(appsrv_ws_t *ws, unsigned opcode, const void *data, size_t len)
{
    if (handlers(ws)->on_message == NULL)
        return;
    appsrv_ws_type_t type = opcode == APPSRV__WS_OP_TEXT ? APPSRV_WS_TEXT : APPSRV_WS_BINARY;
    appsrv__stats_ws_message(&ws->conn->w->stats, true);
    handlers(ws)->on_message(ws, type, data, len, user(ws));
}

/* Hands the message reassembled in ws->msg to the host, then frees it. */
static void deliver_msg(appsrv_ws_t *ws, unsigned opcode)
{
    ws->msg[ws->msg_len] = 0;
    uint8_t *m = ws->msg;
    size_t n = ws->msg_len;
    ws->msg = NULL;
    ws->msg_len = ws->msg_cap = 0;
    deliver(ws, opcode, m, n);
    free(m); /* nothing is kept between messages */
}

/* Direct reads: conn.c reads the rest of the current frame into
 * ws->msg[msg_len .. msg_len + rx.left) (room was made when the frame
 * began: msg_cap covers the announced length). */
static void direct_begin(appsrv_ws_t *ws)
{
    appsrv__conn_t *c = ws->conn;
    c->state = APPSRV__ST_BODY;
    c->body_in_heap = true;
    c->body_heap = (char *)ws->msg;
    c->body_len = ws->msg_len;
    c->body_cap = ws->msg_len + (size_t)ws->rx.left;
}

static void direct_end(appsrv_ws_t *ws)
{
    appsrv__conn_t *c = ws->conn;
    c->state = APPSRV__ST_HEAD;
    c->body_in_heap = false;
    c->body_heap = NULL;
    c->body_len = c->body_cap = 0;
}

/* The bytes read directly since last time. Returns 1 on progress. */
static int direct_step(appsrv_ws_t *ws)
{
    appsrv__conn_t *c = ws->conn;
    size_t got = c->body_len - ws->msg_len;
    if (got == 0)
        return 0;
    appsrv__ws_ev_t ev = appsrv__ws_rx_payload(&ws->rx, ws->msg + ws->msg_len, got);
    if (ev.kind == APPSRV__WS_EV_ERROR) {
        direct_end(ws);
        fail(ws, ev.code);
        return 1;
    }
    ws->msg_len += ev.len;
    if (!ws->rx.in_frame) {
        direct_end(ws);
        if (ev.last)
            deliver_msg(ws, ev.opcode);
    }
    return 1;
}

/* A piece of a data message. Returns 0, or -1 when out of memory (the
 * connection is failed). */
static int on_data(appsrv_ws_t *ws, const appsrv__ws_ev_t *ev)
{
    appsrv__conn_t *c = ws->conn;
    if (ev->first && ev->last) {
        /* Whole in the input block: delivered in place, NUL after it for
         * the host's convenience (the byte is put back). */
        char *end = c->rbuf + c->w->pool.data_cap;
        uint8_t *after = ev->data + ev->len;
        if ((char *)after < end) {
            uint8_t saved = *after;
            *after = 0;
            deliver(ws, ev->opcode, ev->data, ev->len);
            *after = saved;
            return 0;
        }
    }
    if (ev->first)
        ws->msg_len = 0;
    /* Announced so far (the frame in progress included), and a NUL. */
    size_t need = (size_t)ws->rx.msg.len + 1;
    if (ev->last)
        need = ws->msg_len + ev->len + 1;
    if (need > ws->msg_cap) {
        size_t cap = ws->msg_cap * 2 > need ? ws->msg_cap * 2 : need;
        size_t limit = c->w->cfg->max_ws_message + 1;
        if (cap > limit)
            cap = limit;
        if (cap < need)
            cap = need;
        uint8_t *m = realloc(ws->msg, cap);
        if (m == NULL) {
            fail(ws, APPSRV__WS_INTERNAL);
            return -1;
        }
        ws->msg = m;
        ws->msg_cap = cap;
    }
    memcpy(ws->msg + ws->msg_len, ev->data, ev->len);
    ws->msg_len += ev->len;
    if (ev->last)
        deliver_msg(ws, ev->opcode);
    else if (ws->rx.in_frame && ws->rx.left >= DIRECT_MIN && c->rlen == c->rpos)
        direct_begin(ws);
    return 0;
}

static void on_control(appsrv_ws_t *ws, const appsrv__ws_ev_t *ev)
{
    appsrv__conn_t *c = ws->conn;
    switch (ev->opcode) {
    case APPSRV__WS_OP_PING:
        /* §5.5.2: a pong with the same payload, unless we have closed. */
        if (!ws->close_sent)
            put_control(c, APPSRV__WS_OP_PONG, ev->data, ev->len);
        break;
    case APPSRV__WS_OP_PONG:
        break; /* liveness is any input (ws_process) */
    case APPSRV__WS_OP_CLOSE:
        ws->close_rcvd = true;
        ws->close_code = ev->code;
        if (ev->len > 2) {
            ws->peer_reason = malloc(ev->len - 2);
            if (ws->peer_reason != NULL) {
                memcpy(ws->peer_reason, ev->data + 2, ev->len - 2);
                ws->peer_reason_len = (uint8_t)(ev->len - 2);
            }
        }
        set_closing(ws);
        if (!ws->close_sent) {
            /* §5.5.1: answer with a close, echoing the code. */
            put_control(c, APPSRV__WS_OP_CLOSE, ev->data, ev->len >= 2 ? 2 : 0);
            ws->close_sent = true;
        }
        /* §7.1.1: the server closes the TCP connection first; the peer
         * sends nothing after its close (§5.5.1), so no lingering. */
        appsrv__timer_stop(&c->w->loop, &ws->timer);
        c->close_after = true;
        break;
    default:
        break;
    }
}

static int ws_process(appsrv__conn_t *c)
{
    appsrv_ws_t *ws = c->proto_data;
    int progress = 0;
    ws->in_process = true;
    progress |= appsrv__ws_pump(ws);
    while (!c->closed && !c->close_after) {
        if (c->state == APPSRV__ST_BODY) {
            /* A large frame read straight into the message buffer. */
            int r = direct_step(ws);
            progress |= r;
            if (r > 0)
                ws->ping_out = false;
            if (c->state == APPSRV__ST_BODY || c->close_after)
                break;
            appsrv__ws_pump(ws); /* what on_message sent */
            continue;
        }
        /* Output backpressure holds input back: a peer that does not read
         * cannot make us queue without bound. */
        if (appsrv__out_room(c) < STEP_ROOM || ws->pend_seen >= APPSRV__STREAM_LOW)
            break;
        if (c->rblk == NULL || c->rlen == c->rpos)
            break;
        uint8_t *p = (uint8_t *)c->rbuf + c->rpos;
        appsrv__ws_ev_t ev = appsrv__ws_rx_step(&ws->rx, p, c->rlen - c->rpos);
        c->rpos += (uint32_t)ev.used;
        if (ev.used > 0) {
            progress = 1;
            ws->ping_out = false; /* the peer is alive */
        }
        if (ev.kind == APPSRV__WS_EV_ERROR) {
            fail(ws, ev.code);
            progress = 1;
            break;
        }
        if (ev.kind == APPSRV__WS_EV_MORE) {
            if (ev.used == 0)
                break;
            continue;
        }
        if (ev.kind == APPSRV__WS_EV_CONTROL) {
            on_control(ws, &ev);
            continue;
        }
        if (on_data(ws, &ev) < 0)
            break;
        if (ev.last)
            appsrv__ws_pump(ws); /* what on_message sent, before more input */
    }
    progress |= appsrv__ws_pump(ws);
    ws->in_process = false;
    if (progress)
        c->nreqs++; /* restarts the idle timeout (conn.c) */
    return progress;
}

/* -------------------------------------------------------------- timers */

static void ws_timer_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    appsrv_ws_t *ws = appsrv__container_of(t, appsrv_ws_t, timer);
    appsrv__conn_t *c = ws->conn;
    if (c->closed)
        return;
    if (ws->close_sent || ws->ping_out) {
        /* The peer never answered our close, or has been silent for a
         * whole interval since our ping: give up (on_close: 1006). */
        appsrv__conn_close(c);
        return;
    }
    if (appsrv__out_room(c) >= STEP_ROOM) {
        put_control(c, APPSRV__WS_OP_PING, "appsrv", 6);
        ws->ping_out = true;
    }
    appsrv__timer_start(loop, t, loop->now_ms + (uint64_t)c->w->cfg->ws_ping_ms);
    appsrv__conn_drive(c);
}

/* -------------------------------------------------------------- switch */

void appsrv__ws_switch(appsrv__conn_t *c, void *data)
{
    appsrv_ws_t *ws = data;
    ws->aitem.cb = appsrv__ws_service;
    /* The switch needs the connection unheld; the handle's reference
     * follows at once. */
    bool ok = !c->close_after && appsrv__conn_switch(c, &appsrv__ws_proto, ws) == 0;
    appsrv__conn_hold(c);
    if (!ok) {
        /* The 101 could not be queued (out of memory): the connection
         * ends here. The host accepted it, so it still hears on_open and
         * on_close, as for a peer that vanished at once. */
        c->close_after = true;
        ws->closing = true;
        handlers(ws)->on_open(ws, user(ws));
        handlers(ws)->on_close(ws, APPSRV__WS_ABNORMAL, (appsrv_str_t){"", 0}, user(ws));
        ws->loop_done = true;
        maybe_free(ws);
        return;
    }
    const appsrv_config_t *cfg = c->w->cfg;
    ws->rx.max = cfg->max_ws_message;
    ws->rx.need_mask = true;
    ws->timer.cb = ws_timer_cb;
    if (cfg->ws_ping_ms > 0)
        appsrv__timer_start(&c->w->loop, &ws->timer, c->w->loop.now_ms + (uint64_t)cfg->ws_ping_ms);
    ws->in_process = true; /* sends from on_open go straight out */
    handlers(ws)->on_open(ws, user(ws));
    ws->in_process = false;
}

/* ------------------------------------------------------- the table */

static size_t ws_ctx_size(const appsrv_config_t *cfg)
{
    (void)cfg;
    return 0; /* all state is in the handle */
}

static void ws_ctx_noop(appsrv__conn_t *c)
{
    (void)c;
}

/* A head (frame) or body timeout: the peer stalled inside a frame. */
static void ws_error(appsrv__conn_t *c, int status)
{
    appsrv_ws_t *ws = c->proto_data;
    (void)status;
    fail(ws, APPSRV__WS_POLICY);
    ws->close_code = APPSRV__WS_ABNORMAL;
}

static void ws_closed(appsrv__conn_t *c)
{
    appsrv_ws_t *ws = c->proto_data;
    appsrv__timer_stop(&c->w->loop, &ws->timer);
    set_closing(ws);
    if (c->body_heap == (char *)ws->msg)
        c->body_heap = NULL; /* ours, not conn.c's to free */
    free(ws->msg);
    ws->msg = NULL;
    ws->msg_len = ws->msg_cap = 0;
    int code = ws->close_code != 0 ? ws->close_code : APPSRV__WS_ABNORMAL;
    appsrv_str_t reason = {ws->peer_reason != NULL ? ws->peer_reason : "", ws->peer_reason_len};
    handlers(ws)->on_close(ws, code, reason, user(ws));
    ws->loop_done = true;
    maybe_free(ws);
}

/* Graceful stop: close with 1001 (§7.4.1 "going away") after what the
 * host queued; the peer's answer or the close timeout ends it. */
static void ws_drain(appsrv__conn_t *c)
{
    appsrv_ws_t *ws = c->proto_data;
    if (ws->close_sent || c->close_after)
        return;
    appsrv__ws_pump(ws);
    if (ws->close_sent || appsrv__out_room(c) < STEP_ROOM)
        return; /* the close timeout or drain timeout ends it */
    static const char why[] = "server stopping";
    uint8_t pl[2 + sizeof(why)];
    size_t n;
    close_payload(pl, &n, APPSRV__WS_GOING_AWAY, why, sizeof(why) - 1);
    set_closing(ws);
    put_control(c, APPSRV__WS_OP_CLOSE, pl, n);
    close_sent(ws);
}

static void ws_cancel(appsrv__conn_t *c)
{
    (void)c; /* never waits on the host */
}

static size_t ws_refusal(char *buf, size_t cap, const char *date, const char *rid)
{
    (void)buf, (void)cap, (void)date, (void)rid;
    return 0; /* never a listener's protocol */
}

const appsrv__proto_t appsrv__ws_proto = {
    .name = "websocket",
    .id = APPSRV_PROTO_WS,
    .session = true,
    .ctx_size = ws_ctx_size,
    .ctx_init = ws_ctx_noop,
    .ctx_dispose = ws_ctx_noop,
    .process = ws_process,
    .error = ws_error,
    .cancel = ws_cancel,
    .closed = ws_closed,
    .rebase = NULL,
    .drain = ws_drain,
    .refusal = ws_refusal,
};
