/* SPDX-License-Identifier: MIT */
/*
 * sse.c - server-sent events (WHATWG HTML §9.2) on top of streamed
 * responses: the event/text/event-stream head, one event per call framed
 * as "event:/id:/data:" lines, and a heartbeat comment written through the
 * same stream when nothing else was sent for a while. Calls res.c only;
 * called by the host.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "res.h"

static const char beat[] = ":heartbeat\n\n";

/* Fires every hb_ms on the loop thread; writes a comment line when the
 * stream has been silent that long (ignored by clients; keeps proxies and
 * mobile radios from dropping an idle connection). */
static void hb_timer_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    appsrv_res_t *res = appsrv__container_of(t, appsrv_res_t, hb_timer);
    appsrv__conn_t *c = res->conn;
    if (c->closed || c->state != APPSRV__ST_WAIT || !res->head_sent)
        return;
    uint64_t due = res->last_out_ms + (uint64_t)res->hb_ms;
    if (loop->now_ms >= due) {
        /* Output still queued means the path is not idle: no beat. */
        if (!appsrv__out_busy(c))
            appsrv_res_write(res, beat, sizeof(beat) - 1);
        res->last_out_ms = loop->now_ms;
        due = loop->now_ms + (uint64_t)res->hb_ms;
    }
    appsrv__timer_start(loop, t, due);
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
    if (heartbeat_ms > 0)
        res->hb_timer.cb = hb_timer_cb; /* started with the head (http_out.c) */
    return appsrv__res_stream_begin(res, heartbeat_ms);
}

static bool has_crlf(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") != NULL;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
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
        p = put(p, "event: ", 7);
        p = put(p, event, strlen(event));
        *p++ = '\n';
    }
    if (id != NULL) {
        p = put(p, "id: ", 4);
        p = put(p, id, strlen(id));
        *p++ = '\n';
    }
    /* One data field per line (a CR or CRLF also ends a line in SSE). */
    size_t start = 0;
    for (size_t i = 0; i <= dl; i++) {
        if (i == dl || data[i] == '\n' || data[i] == '\r') {
            p = put(p, "data: ", 6);
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
