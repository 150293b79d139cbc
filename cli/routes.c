/* SPDX-License-Identifier: MIT */
/*
 * routes.c - the CLI's demo routes (appsrv(1)): /health, /ready,
 * /plaintext, /json, /echo; POST /upload (multipart/form-data taken as it
 * arrives) and POST /stream (the body echoed as it arrives); GET /delay
 * and GET /events, deferred responses finished by the library's timers
 * (appsrv_timer_*) on the request's own loop, so the CLI needs no timer
 * thread; GET /ws, a WebSocket echo, and GET /ws/room, a broadcast room
 * whose members are kept in a locked list (the handle references are the
 * list's); the line protocol's PING, ECHO and QUIT. Public API only.
 */
#include "routes.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <appsrv.h>

/* ---------------------------------------------------------------- routes */

static int text(appsrv_res_t *res, int status, const char *type, const char *body)
{
    appsrv_res_set_status(res, status);
    appsrv_res_add_header(res, "Content-Type", type);
    return appsrv_res_set_body(res, body, strlen(body));
}

static int h_health(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    return text(res, 200, "text/plain", "OK");
}

static int h_plaintext(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    return text(res, 200, "text/plain", "Hello, World!");
}

/* GET /ready: 200 while serving, 503 from the start of a stop (the drain
 * delay), so a load balancer stops sending new clients first. */
static int h_ready(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    if (appsrv_server_draining(user))
        return text(res, 503, "text/plain", "draining");
    return text(res, 200, "text/plain", "ready");
}

static int h_json(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    return text(res, 200, "application/json", "{\"message\":\"Hello, World!\"}");
}

static int h_echo_body(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t ct = appsrv_req_header(req, "Content-Type");
    appsrv_res_set_status(res, 200);
    int rc = -ENOENT;
    if (ct.ptr != NULL) {
        /* add_header takes a C string; the view is not NUL-terminated. */
        char *type = malloc(ct.len + 1);
        if (type == NULL)
            return -ENOMEM;
        memcpy(type, ct.ptr, ct.len);
        type[ct.len] = '\0';
        rc = appsrv_res_add_header(res, "Content-Type", type);
        free(type);
    }
    if (rc < 0)
        appsrv_res_add_header(res, "Content-Type", "application/octet-stream");
    /* The request body lives until the response is sent: no copy. */
    appsrv_str_t body = appsrv_req_body(req);
    return appsrv_res_set_body_ref(res, body.ptr, body.len, NULL, NULL);
}

static void free_cb(void *data, void *ud)
{
    (void)ud;
    free(data);
}

static int h_echo_query(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t q = appsrv_req_query(req);
    char *buf = malloc(q.len + 1);
    if (buf == NULL)
        return -ENOMEM;
    ssize_t n = appsrv_req_query_param(req, "msg", buf, q.len + 1);
    if (n < 0) {
        free(buf);
        return text(res, 400, "text/plain",
                    n == -ENOENT ? "missing msg parameter\n" : "bad msg parameter\n");
    }
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    return appsrv_res_set_body_ref(res, buf, (size_t)n, free_cb, NULL);
}

/* /upload and /stream */
/*
 * POST /upload: multipart/form-data taken as it arrives (never buffered
 * whole): per part its name, filename (null without one), Content-Type
 * (null without one), size and CRC-32, as JSON once the body ended.
 * POST /stream: the body streamed back as it arrives (chunked).
 */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* CRC-32 (ISO-HDLC, as zlib's crc32()): crc of the data so far in, the
 * new one out; start with 0. */
static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

typedef struct upload {
    appsrv_res_t *res;
    appsrv_multipart_t *mp;
    char *json; /* {"parts":[... so far */
    size_t len, cap;
    bool failed; /* the JSON could not grow */
    uint64_t size;
    uint32_t crc;
} upload_t;

static void up_put(upload_t *u, const char *s, size_t n)
{
    if (u->len + n + 1 > u->cap) {
        size_t cap = u->cap ? u->cap : 256;
        while (cap < u->len + n + 1)
            cap *= 2;
        char *j = realloc(u->json, cap);
        if (j == NULL) {
            u->failed = true;
            return;
        }
        u->json = j;
        u->cap = cap;
    }
    memcpy(u->json + u->len, s, n);
    u->len += n;
}

/* A JSON string (RFC 8259), or null for an absent value. */
static void up_str(upload_t *u, appsrv_str_t v)
{
    if (v.ptr == NULL) {
        up_put(u, "null", 4);
        return;
    }
    up_put(u, "\"", 1);
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.ptr[i];
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            up_put(u, esc, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
            up_put(u, esc, 6);
        } else {
            up_put(u, (const char *)&ch, 1);
        }
    }
    up_put(u, "\"", 1);
}

static int up_part(const appsrv_part_t *p, void *ud)
{
    upload_t *u = ud;
    up_put(u, p->index > 0 ? ",{\"name\":" : "{\"name\":", p->index > 0 ? 9 : 8);
    up_str(u, p->name);
    up_put(u, ",\"filename\":", 12);
    up_str(u, p->filename);
    up_put(u, ",\"type\":", 8);
    up_str(u, p->content_type);
    u->size = 0;
    u->crc = 0;
    return u->failed ? -ENOMEM : 0;
}

static int up_data(const appsrv_part_t *p, const void *data, size_t len, void *ud)
{
    (void)p;
    upload_t *u = ud;
    u->size += len;
    u->crc = crc32_update(u->crc, data, len);
    return 0;
}

static int up_part_end(const appsrv_part_t *p, void *ud)
{
    (void)p;
    upload_t *u = ud;
    char tail[64];
    int n = snprintf(tail, sizeof(tail), ",\"size\":%llu,\"crc32\":\"%08x\"}",
                     (unsigned long long)u->size, (unsigned)u->crc);
    up_put(u, tail, (size_t)n);
    return u->failed ? -ENOMEM : 0;
}

static void up_free(upload_t *u)
{
    appsrv_multipart_free(u->mp);
    free(u->json);
    free(u);
}

/* Finishes the response (once) and frees u. */
static void up_answer(upload_t *u, int status, const char *why)
{
    appsrv_res_t *res = u->res;
    if (status == 200) {
        up_put(u, "]}\n", 3);
        if (u->failed) {
            status = 500;
            why = "out of memory";
        }
    }
    if (status == 200) {
        text(res, 200, "application/json", "");
        appsrv_res_set_body(res, u->json, u->len);
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s\n", why);
        text(res, status, "text/plain", msg);
    }
    appsrv_res_send(res);
    up_free(u);
}

static int up_body(appsrv_req_t *req, const void *data, size_t len, int end, void *ud)
{
    (void)req;
    upload_t *u = ud;
    if (end == 0) {
        int rc = appsrv_multipart_feed(u->mp, data, len);
        if (rc < 0) {
            up_answer(u, rc == -E2BIG || rc == -EMSGSIZE || rc == APPSRV_EPARSE ? 400 : 500,
                      appsrv_multipart_error(u->mp));
            return -1; /* the rest is not read */
        }
        return 0;
    }
    if (end == APPSRV_ECANCELED)
        return 0; /* up_cancel follows */
    if (end == -EMSGSIZE)
        up_answer(u, 413, "Payload Too Large");
    else if (end < 0)
        up_answer(u, 400, "malformed chunked body");
    else if (appsrv_multipart_finish(u->mp) < 0)
        up_answer(u, 400, appsrv_multipart_error(u->mp));
    else
        up_answer(u, 200, NULL);
    return 0;
}

static void up_cancel(appsrv_res_t *res, void *ud)
{
    appsrv_res_send(res); /* APPSRV_ECANCELED: released all the same */
    up_free(ud);
}

static int h_upload(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    upload_t *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return -ENOMEM;
    u->res = res;
    static const appsrv_multipart_handlers_t h = {up_part, up_data, up_part_end, 0, 0};
    appsrv_str_t ct = appsrv_req_header(req, "Content-Type");
    int rc = ct.ptr == NULL ? -ENOENT : appsrv_multipart_new(&u->mp, ct, &h, u);
    if (rc < 0) {
        free(u);
        return text(res, rc == -ENOENT ? 415 : 400, "text/plain",
                    rc == -ENOENT ? "expected multipart/form-data\n"
                                  : "bad multipart/form-data boundary\n");
    }
    up_put(u, "{\"parts\":[", 10);
    appsrv_req_body_stream(req, up_body, u);
    appsrv_res_on_cancel(res, up_cancel, u);
    return APPSRV_LATER;
}

typedef struct stream_echo {
    appsrv_req_t *req;
    appsrv_res_t *res;
    char *pend; /* a piece the stream refused (-EAGAIN), sent on drain */
    size_t pend_len;
    bool ended;
} stream_echo_t;

static void se_end(stream_echo_t *s)
{
    appsrv_res_end(s->res); /* 0 or APPSRV_ECANCELED: released either way */
    free(s->pend);
    free(s);
}

/* The stream drained: the refused piece goes out, then reading resumes. */
static void se_drain(appsrv_res_t *res, void *ud)
{
    stream_echo_t *s = ud;
    if (s->pend_len == 0)
        return;
    int rc = appsrv_res_write(res, s->pend, s->pend_len);
    if (rc == -EAGAIN)
        return; /* the next drain */
    s->pend_len = 0;
    if (s->ended)
        se_end(s);
    else
        appsrv_req_body_resume(s->req);
}

static int se_body(appsrv_req_t *req, const void *data, size_t len, int end, void *ud)
{
    (void)req;
    stream_echo_t *s = ud;
    if (end == APPSRV_ECANCELED)
        return 0; /* se_cancel follows */
    if (end != 0) {
        /* The end, or an error (over --max-body: the library cuts the
         * connection, so the last chunk never goes out). */
        if (s->pend_len > 0) {
            s->ended = true; /* ends after the drain */
            return 0;
        }
        se_end(s);
        return 0;
    }
    int rc = appsrv_res_write(s->res, data, len);
    if (rc == -EAGAIN) {
        char *p = realloc(s->pend, len);
        if (p == NULL)
            return -ENOMEM;
        memcpy(p, data, len);
        s->pend = p;
        s->pend_len = len;
        return APPSRV_PAUSE;
    }
    return rc < 0 ? rc : 0;
}

static void se_cancel(appsrv_res_t *res, void *ud)
{
    (void)res;
    se_end(ud);
}

static int h_stream(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    stream_echo_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->req = req;
    s->res = res;
    appsrv_res_set_status(res, 200);
    appsrv_str_t ct = appsrv_req_header(req, "Content-Type");
    char type[256];
    if (ct.ptr != NULL && ct.len < sizeof(type)) {
        memcpy(type, ct.ptr, ct.len);
        type[ct.len] = '\0';
    } else {
        strcpy(type, "application/octet-stream");
    }
    if (appsrv_res_add_header(res, "Content-Type", type) < 0)
        appsrv_res_add_header(res, "Content-Type", "application/octet-stream");
    appsrv_res_on_drain(res, se_drain, s);
    appsrv_res_on_cancel(res, se_cancel, s);
    appsrv_req_body_stream(req, se_body, s);
    appsrv_res_stream(res);
    return APPSRV_LATER;
}

static int l_ping(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "PONG", 4);
}

static int l_echo(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t body = appsrv_req_body(req);
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, body.ptr, body.len);
}

static int l_quit(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    appsrv_res_close(res);
    return appsrv_res_set_body(res, "BYE", 3);
}


/* -------------------------------------------------------------- WebSocket */

/* GET /ws: every message comes back as a message of the same type. */
static void ws_echo_open(appsrv_ws_t *ws, void *user)
{
    (void)ws, (void)user;
}

static void ws_echo_message(appsrv_ws_t *ws, appsrv_ws_type_t type, const void *data, size_t len,
                            void *user)
{
    (void)user;
    /* Input waits while output backs up, so this does not see -EAGAIN;
     * anything else (closing) just drops the echo. */
    appsrv_ws_send(ws, type, data, len);
}

static void ws_echo_close(appsrv_ws_t *ws, int code, appsrv_str_t reason, void *user)
{
    (void)code, (void)reason, (void)user;
    appsrv_ws_release(ws); /* the reference on_open gave us */
}

/* GET /ws/room: one room; every message goes to every member (the sender
 * too). The list owns the members' references: added in on_open,
 * removed and released in on_close, all under the lock, so a broadcast
 * (under the same lock) only sees handles it may use. */
static struct {
    pthread_mutex_t lock;
    appsrv_ws_t **v;
    size_t n, cap;
} g_room = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0};

static void room_open(appsrv_ws_t *ws, void *user)
{
    (void)user;
    pthread_mutex_lock(&g_room.lock);
    if (g_room.n == g_room.cap) {
        size_t cap = g_room.cap ? g_room.cap * 2 : 64;
        appsrv_ws_t **v = realloc(g_room.v, cap * sizeof(*v));
        if (v == NULL) {
            pthread_mutex_unlock(&g_room.lock);
            appsrv_ws_close(ws, 1011, "out of memory");
            return; /* on_close still releases it */
        }
        g_room.v = v;
        g_room.cap = cap;
    }
    g_room.v[g_room.n++] = ws;
    appsrv_ws_set_data(ws, &g_room); /* marks a member */
    pthread_mutex_unlock(&g_room.lock);
}

static void room_message(appsrv_ws_t *ws, appsrv_ws_type_t type, const void *data, size_t len,
                         void *user)
{
    (void)ws, (void)user;
    pthread_mutex_lock(&g_room.lock);
    for (size_t i = 0; i < g_room.n; i++) {
        /* A member that lets 256 KiB pile up is too slow for the room. */
        if (appsrv_ws_send(g_room.v[i], type, data, len) == -EAGAIN)
            appsrv_ws_close(g_room.v[i], 1008, "too slow");
    }
    pthread_mutex_unlock(&g_room.lock);
}

static void room_close(appsrv_ws_t *ws, int code, appsrv_str_t reason, void *user)
{
    (void)code, (void)reason, (void)user;
    pthread_mutex_lock(&g_room.lock);
    for (size_t i = 0; i < g_room.n; i++)
        if (g_room.v[i] == ws) {
            g_room.v[i] = g_room.v[--g_room.n];
            break;
        }
    pthread_mutex_unlock(&g_room.lock);
    appsrv_ws_release(ws);
}

static const appsrv_ws_handlers_t ws_echo = {
    .on_open = ws_echo_open,
    .on_message = ws_echo_message,
    .on_close = ws_echo_close,
};

static const appsrv_ws_handlers_t ws_room = {
    .on_open = room_open,
    .on_message = room_message,
    .on_close = room_close,
};

/* ------------------------------------------------------- timed responses */

/* A deferred response finished by a timer on the request's own loop
 * (appsrv_timer_*): /delay sends it once, /events sends one event per
 * period. Everything here runs on that loop's thread. */
typedef struct job {
    appsrv_res_t *res;
    appsrv_timer_t *timer;
    int left; /* /events: events still to send */
    int seq;
    bool stopping; /* the server began draining: the stream ends now */
} job_t;

static void job_free(job_t *j)
{
    appsrv_timer_free(j->timer); /* from its own callback: freed on return */
    free(j);
}

static void delay_fire(appsrv_timer_t *t, void *user)
{
    (void)t;
    job_t *j = user;
    appsrv_res_send(j->res); /* APPSRV_ECANCELED: released all the same */
    job_free(j);
}

/* GET /delay?ms=N: answers "OK" after N ms (N <= 10,000). */
static int h_delay(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    char buf[16];
    ssize_t n = appsrv_req_query_param(req, "ms", buf, sizeof(buf));
    uint64_t ms = 0;
    bool ok = n > 0;
    for (ssize_t i = 0; ok && i < n; i++) {
        ok = buf[i] >= '0' && buf[i] <= '9';
        ms = ms * 10 + (uint64_t)(buf[i] - '0');
    }
    if (!ok || ms > 10000)
        return text(res, 400, "text/plain", "ms must be 0..10000\n");
    text(res, 200, "text/plain", "OK");
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->res = res;
    if (appsrv_timer_new(appsrv_req_loop(req), delay_fire, j, &j->timer) < 0 ||
        appsrv_timer_start(j->timer, ms, 0) < 0) {
        job_free(j);
        return -ENOMEM;
    }
    return APPSRV_LATER;
}

static void events_fire(appsrv_timer_t *t, void *user)
{
    (void)t;
    job_t *j = user;
    char data[32], id[16];
    snprintf(data, sizeof(data), "tick %d", j->seq);
    snprintf(id, sizeof(id), "%d", j->seq);
    int rc = j->left > 0 && !j->stopping ? appsrv_res_sse_send(j->res, "tick", id, data) : 0;
    if (rc == -EAGAIN)
        return; /* slow reader: the same event on the next tick */
    if (j->left <= 1 || rc < 0 || j->stopping) {
        appsrv_res_end(j->res);
        job_free(j);
        return;
    }
    j->left--;
    j->seq++;
}

/* The stop notification of an /events stream (loop thread): the stream
 * ends at once, cleanly (last chunk included), instead of the drain
 * timeout cutting it. */
static void events_on_stop(appsrv_res_t *res, void *ud)
{
    (void)res;
    job_t *j = ud;
    j->stopping = true;
    appsrv_timer_start(j->timer, 0, 0);
}

/* GET /events?n=N: N server-sent events, one per 100 ms (N <= 1,000). */
static int h_events(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    char buf[16];
    ssize_t n = appsrv_req_query_param(req, "n", buf, sizeof(buf));
    int count = 0;
    bool ok = n > 0;
    for (ssize_t i = 0; ok && i < n; i++) {
        ok = buf[i] >= '0' && buf[i] <= '9' && count <= 1000;
        count = count * 10 + (buf[i] - '0');
    }
    if (!ok || count > 1000)
        return text(res, 400, "text/plain", "n must be 0..1000\n");
    appsrv_res_set_status(res, 200);
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->res = res;
    j->left = count;
    j->seq = 1;
    if (appsrv_timer_new(appsrv_req_loop(req), events_fire, j, &j->timer) < 0) {
        free(j);
        return -ENOMEM;
    }
    if (appsrv_res_sse_begin(res, 15000) < 0) {
        job_free(j);
        return -1;
    }
    if (count == 0 || appsrv_timer_start(j->timer, 0, 100) < 0) {
        appsrv_res_end(res);
        job_free(j);
        return APPSRV_LATER;
    }
    appsrv_res_on_stop(res, events_on_stop, j);
    return APPSRV_LATER;
}

/* ----------------------------------------------------------- registration */

void routes_init(void)
{
    crc_init();
}

void routes_free(void)
{
    free(g_room.v);
}

int routes_add_http(appsrv_server_t *srv, uint64_t max_upload)
{
    CHECK(appsrv_route(srv, "GET", "/health", h_health, NULL));
    CHECK(appsrv_route(srv, "GET", "/ready", h_ready, srv));
    CHECK(appsrv_route(srv, "GET", "/plaintext", h_plaintext, NULL));
    CHECK(appsrv_route(srv, "GET", "/json", h_json, NULL));
    CHECK(appsrv_route(srv, "POST", "/echo", h_echo_body, NULL));
    CHECK(appsrv_route(srv, "PUT", "/echo", h_echo_body, NULL));
    CHECK(appsrv_route(srv, "GET", "/echo", h_echo_query, NULL));
    CHECK(appsrv_route(srv, "GET", "/delay", h_delay, NULL));
    CHECK(appsrv_route(srv, "GET", "/events", h_events, NULL));
    CHECK(appsrv_route_ex(srv, "POST", "/upload", h_upload,
                          &(appsrv_route_opts_t){.max_body = max_upload, .stream_body = true},
                          NULL));
    CHECK(appsrv_route_ex(srv, "POST", "/stream", h_stream,
                          &(appsrv_route_opts_t){.stream_body = true}, NULL));
    CHECK(appsrv_route_ws(srv, "/ws", &ws_echo, NULL));
    CHECK(appsrv_route_ws(srv, "/ws/room", &ws_room, NULL));
    return 0;
}

int routes_add_line(appsrv_server_t *srv)
{
    CHECK(appsrv_route_line(srv, "PING", l_ping, NULL));
    CHECK(appsrv_route_line(srv, "ECHO", l_echo, NULL));
    CHECK(appsrv_route_line(srv, "QUIT", l_quit, NULL));
    return 0;
}
