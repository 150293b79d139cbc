/* SPDX-License-Identifier: MIT */
/*
 * live.c - live updates to a user's other devices. Owns the hub: a
 * per-user list of subscribers behind one mutex, each a WebSocket
 * (GET /v1/live, appsrv_route_ws) or a server-sent events stream
 * (GET /v1/events, the fallback). Events are published from database
 * threads: straight to the hub with SQLite, or through the store's NOTIFY
 * with PostgreSQL, whose listener thread calls live_deliver() on every
 * instance. Sends copy and never block (appsrv_ws_send, appsrv_res_sse_send),
 * so they run under the hub lock; a subscriber that falls behind is closed.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define BUCKETS 256
#define NOTIFY_MAX 7900 /* PostgreSQL's NOTIFY payload limit is 8000 bytes */

enum { PENDING, ACTIVE, DONE, CANCELED };

typedef struct sub {
    int64_t user;
    appsrv_ws_t *ws;     /* a WebSocket subscriber, or */
    appsrv_res_t *res;   /* an SSE stream */
    appsrv_loop_t *loop; /* SSE: its worker's loop */
    int state;           /* under the hub lock */
    atomic_int refs;
    char hash[TOKEN_HASH_HEX + 1]; /* WebSocket: token to check */
    struct sub *prev, *next;
} sub_t;

static struct {
    pthread_mutex_t lock;
    sub_t *b[BUCKETS];
} g_hub = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void unref(sub_t *s)
{
    if (atomic_fetch_sub(&s->refs, 1) == 1)
        free(s);
}

/* With the lock. */
static void link_sub(sub_t *s, int64_t user)
{
    sub_t **head = &g_hub.b[(uint64_t)user % BUCKETS];
    s->user = user;
    s->state = ACTIVE;
    s->prev = NULL;
    s->next = *head;
    if (*head != NULL)
        (*head)->prev = s;
    *head = s;
}

static void unlink_sub(sub_t *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        g_hub.b[(uint64_t)s->user % BUCKETS] = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->state = DONE;
}

/* With the lock: a subscriber that cannot keep up is let go. */
static void drop_slow(sub_t *s)
{
    unlink_sub(s);
    if (s->ws != NULL) {
        appsrv_ws_close(s->ws, 1008, "too slow");
        return; /* on_close drops the list's reference */
    }
    appsrv_res_end(s->res);
    unref(s);
}

void live_publish_local(int64_t user, const char *text)
{
    pthread_mutex_lock(&g_hub.lock);
    for (sub_t *s = g_hub.b[(uint64_t)user % BUCKETS], *next; s != NULL; s = next) {
        next = s->next;
        if (s->user != user)
            continue;
        int rc = s->ws != NULL ? appsrv_ws_send(s->ws, APPSRV_WS_TEXT, text, strlen(text))
                               : appsrv_res_sse_send(s->res, "note", NULL, text);
        if (rc == -EAGAIN)
            drop_slow(s);
    }
    pthread_mutex_unlock(&g_hub.lock);
}

/* Publishes event j (consumed) to user's subscribers on every instance. */
static void publish(store_conn_t *c, int64_t user, json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    if (text != NULL && g_app.vt->notify != NULL && strlen(text) > NOTIFY_MAX) {
        /* Too long for NOTIFY: without the note; clients fetch it. */
        free(text);
        json_object_del(j, "note");
        text = json_dumps(j, JSON_COMPACT);
    }
    json_decref(j);
    if (text == NULL)
        return;
    if (g_app.vt->notify == NULL) {
        live_publish_local(user, text);
    } else {
        size_t len = strlen(text) + 32;
        char *payload = malloc(len);
        if (payload != NULL) {
            snprintf(payload, len, "E %lld %s", (long long)user, text);
            g_app.vt->notify(c, payload);
            free(payload);
        }
    }
    free(text);
}

void live_note_event(store_conn_t *c, int64_t user, const char *type, const note_t *n,
                     int64_t id, const char *device)
{
    json_t *j = json_pack("{s:s, s:I, s:s}", "type", type, "id", (json_int_t)id, "device",
                          device);
    if (j != NULL && n != NULL) {
        json_object_set_new(j, "version", json_integer(n->version));
        json_object_set_new(j, "note", note_json(n));
    }
    publish(c, user, j);
}

void live_photo_event(store_conn_t *c, int64_t user, const char *type, const photo_t *p,
                      const char *device)
{
    publish(c, user, json_pack("{s:s, s:I, s:s, s:o}", "type", type, "id",
                               (json_int_t)p->note_id, "device", device, "photo",
                               photo_json(p)));
}

void live_deliver(const char *payload)
{
    if (payload[0] == 'L' && payload[1] == ' ') {
        auth_forget(payload + 2);
    } else if (payload[0] == 'E' && payload[1] == ' ') {
        char *end;
        long long user = strtoll(payload + 2, &end, 10);
        if (user > 0 && *end == ' ')
            live_publish_local(user, end + 1);
    }
}

/* ------------------------------------------------------------ WebSocket */

static int ws_upgrade(appsrv_ws_t *ws, appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)res, (void)user;
    sub_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return 503;
    /* A client that sent its token as a subprotocol needs one selected. */
    appsrv_ws_select_protocol(ws, "photonotes.v1");
    s->user = auth_cached_user(req);
    if (s->user == 0 && !auth_token_hash(req, s->hash)) {
        free(s);
        return 401; /* the hook lets no such request through: defensive */
    }
    atomic_init(&s->refs, 1); /* the connection's, until on_close */
    s->state = PENDING;
    appsrv_ws_set_data(ws, s);
    return 0;
}

static const char k_ready[] = "{\"type\":\"ready\"}";

/* On a db thread: checks the token of a WebSocket the cache did not know. */
static void ws_auth_job(store_conn_t *c, void *arg)
{
    sub_t *s = arg;
    int64_t user = 0;
    int rc = auth_lookup(c, s->hash, &user);
    pthread_mutex_lock(&g_hub.lock);
    bool refuse = s->state == PENDING && rc != 0;
    if (s->state == PENDING && rc == 0) {
        link_sub(s, user);
        appsrv_ws_send(s->ws, APPSRV_WS_TEXT, k_ready, sizeof(k_ready) - 1);
    } else if (refuse) {
        s->state = DONE;
    }
    pthread_mutex_unlock(&g_hub.lock);
    if (refuse)
        appsrv_ws_close(s->ws, 4401, rc == -ENOENT ? "unauthorized" : "session store failed");
    appsrv_ws_release(s->ws);
    unref(s);
}

static void ws_open(appsrv_ws_t *ws, void *user)
{
    (void)user;
    sub_t *s = appsrv_ws_data(ws);
    s->ws = ws; /* the reference on_open gives is dropped in ws_close */
    if (s->user > 0) {
        pthread_mutex_lock(&g_hub.lock);
        link_sub(s, s->user);
        appsrv_ws_send(ws, APPSRV_WS_TEXT, k_ready, sizeof(k_ready) - 1);
        pthread_mutex_unlock(&g_hub.lock);
        return;
    }
    atomic_fetch_add(&s->refs, 1);
    appsrv_ws_hold(ws);
    if (dbpool_submit(g_app.pool, ws_auth_job, s) != 0) {
        appsrv_ws_close(ws, 1013, "busy, try again later");
        appsrv_ws_release(ws);
        unref(s);
    }
}

static void ws_close(appsrv_ws_t *ws, int code, appsrv_str_t reason, void *user)
{
    (void)code, (void)reason, (void)user;
    sub_t *s = appsrv_ws_data(ws);
    pthread_mutex_lock(&g_hub.lock);
    if (s->state == ACTIVE)
        unlink_sub(s);
    s->state = DONE;
    pthread_mutex_unlock(&g_hub.lock);
    appsrv_ws_release(ws);
    unref(s);
}

/* ------------------------------------------------------------------ SSE */

/* Loop thread, after the cancel or stop callback has returned (it must
 * not take the hub lock: a publisher holding it may be waiting in
 * appsrv_res_sse_send() for that very callback). */
static void sse_drop(appsrv_loop_t *loop, void *arg)
{
    (void)loop;
    sub_t *s = arg;
    pthread_mutex_lock(&g_hub.lock);
    bool end = s->state == ACTIVE;
    if (end)
        unlink_sub(s);
    else if (s->state == PENDING)
        s->state = CANCELED; /* the job finishes res */
    pthread_mutex_unlock(&g_hub.lock);
    if (end) {
        appsrv_res_end(s->res);
        unref(s); /* the list's */
    }
    unref(s); /* this task's */
}

static void sse_gone(appsrv_res_t *res, void *arg)
{
    (void)res;
    sub_t *s = arg;
    atomic_fetch_add(&s->refs, 1);
    if (appsrv_loop_post(s->loop, sse_drop, s) != 0)
        unref(s);
}

static int run_events(store_conn_t *c, job_t *j)
{
    sub_t *s = j->ext;
    bool ok = auth_resolve(c, j);
    pthread_mutex_lock(&g_hub.lock);
    bool keep = ok && s->state == PENDING && appsrv_res_sse_begin(j->res, 15000) == 0;
    if (keep) {
        link_sub(s, j->user); /* the job's reference is the list's now */
        appsrv_res_sse_send(j->res, "ready", NULL, k_ready);
    } else {
        s->state = DONE;
    }
    pthread_mutex_unlock(&g_hub.lock);
    if (keep)
        return JOB_KEEP;
    unref(s);
    if (ok) /* gone or stopping before it began */
        return reply_error(j->res, 503, "unavailable", "the stream ended");
    return 0; /* the 401 */
}

static int on_events(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    sub_t *s = calloc(1, sizeof(*s));
    job_t *j = s != NULL ? job_new(req, res, run_events, false) : NULL;
    if (j == NULL) {
        free(s);
        return -ENOMEM;
    }
    atomic_init(&s->refs, 1); /* the job's */
    s->state = PENDING;
    s->res = res;
    s->loop = appsrv_req_loop(req);
    j->ext = s;
    appsrv_res_on_cancel(res, sse_gone, s);
    appsrv_res_on_stop(res, sse_gone, s);
    int rc = job_defer(j);
    if (rc != APPSRV_LATER)
        unref(s); /* answered 503 at once: no callback will come */
    return rc;
}

int live_routes(appsrv_server_t *srv)
{
    static const appsrv_ws_handlers_t h = {
        .on_upgrade = ws_upgrade, .on_open = ws_open, .on_close = ws_close};
    int rc = appsrv_route_ws(srv, "/v1/live", &h, NULL);
    if (rc == 0)
        rc = appsrv_route(srv, "GET", "/v1/events", on_events, NULL);
    return rc;
}
