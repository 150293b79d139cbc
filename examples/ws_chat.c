/* SPDX-License-Identifier: MIT */
/*
 * ws_chat.c - WebSocket chat rooms for a mobile app.
 *
 *   GET  /chat/:room?name=NAME   WebSocket (subprotocol "chat.v1" if asked for)
 *   POST /announce               body: text sent to every member of every room
 *
 * A client that joins gets "* NAME joined" and every message of its room as
 * "NAME: text" (text messages; binary ones are refused with close 1003).
 * NAME is 1..32 letters, digits, '-' or '_' (else the upgrade gets 400).
 *
 * What it shows: the handle lifetime rule and broadcasting. Each member is
 * a (handle, room, name) entry in one list behind a mutex; the list owns
 * the reference on_open gives, and on_close removes the entry and releases
 * it, under the same lock. A broadcast is a loop over the list under the
 * lock: appsrv_ws_send() copies and never blocks, so holding the lock over
 * it is fine, and any thread may do it - here loop threads of every worker
 * (on_message, POST /announce), as a host's own threads could. A member
 * that cannot keep up (-EAGAIN: 256 KiB of its messages unsent) is closed
 * with 1008 instead of being waited for.
 *
 * Usage: ws_chat [PORT]   (default 8080; 0: a free port)
 *   python3 -m websockets 'ws://127.0.0.1:8080/chat/lobby?name=ann'
 *   curl -d 'maintenance at noon' http://127.0.0.1:8080/announce
 */
#define _POSIX_C_SOURCE 200809L /* sigaction */
#include <appsrv.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME 32
#define MAX_ROOM 64

typedef struct member {
    appsrv_ws_t *ws; /* the list's reference (from on_open) */
    char room[MAX_ROOM + 1];
    char name[MAX_NAME + 1];
    struct member *next;
} member_t;

static struct {
    pthread_mutex_t lock;
    member_t *head;
} g_chat = {PTHREAD_MUTEX_INITIALIZER, NULL};

static appsrv_server_t *g_srv;

/* Sends text to every member of room (every room when room is NULL).
 * With g_chat.lock held. */
static void broadcast_locked(const char *room, const char *text, size_t len)
{
    for (member_t *m = g_chat.head; m != NULL; m = m->next) {
        if (room != NULL && strcmp(m->room, room) != 0)
            continue;
        if (appsrv_ws_send(m->ws, APPSRV_WS_TEXT, text, len) == -EAGAIN)
            appsrv_ws_close(m->ws, 1008, "too slow"); /* on_close removes it */
    }
}

static int copy_token(appsrv_str_t s, char *out, size_t cap)
{
    if (s.ptr == NULL || s.len == 0 || s.len >= cap)
        return -1;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return -1;
    }
    memcpy(out, s.ptr, s.len);
    out[s.len] = '\0';
    return 0;
}

/* The handshake is valid: decide with the request in hand. */
static int chat_upgrade(appsrv_ws_t *ws, appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    member_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return 503;
    char name[MAX_NAME + 1];
    ssize_t n = appsrv_req_query_param(req, "name", name, sizeof(name));
    if (copy_token(appsrv_req_param(req, "room"), m->room, sizeof(m->room)) < 0 || n <= 0 ||
        copy_token((appsrv_str_t){name, (size_t)n}, m->name, sizeof(m->name)) < 0) {
        free(m);
        appsrv_res_add_header(res, "Content-Type", "text/plain");
        appsrv_res_set_body(res, "bad room or name\n", 17);
        return 400;
    }
    appsrv_ws_select_protocol(ws, "chat.v1"); /* -ENOENT when not offered: fine */
    appsrv_ws_set_data(ws, m);
    return 0;
}

static void chat_open(appsrv_ws_t *ws, void *user)
{
    (void)user;
    member_t *m = appsrv_ws_data(ws);
    m->ws = ws;
    char line[128];
    int n = snprintf(line, sizeof(line), "* %s joined", m->name);
    pthread_mutex_lock(&g_chat.lock);
    m->next = g_chat.head;
    g_chat.head = m;
    broadcast_locked(m->room, line, (size_t)n);
    pthread_mutex_unlock(&g_chat.lock);
}

static void chat_message(appsrv_ws_t *ws, appsrv_ws_type_t type, const void *data, size_t len,
                         void *user)
{
    (void)user;
    member_t *m = appsrv_ws_data(ws);
    if (type != APPSRV_WS_TEXT) {
        appsrv_ws_close(ws, 1003, "text only");
        return;
    }
    char *line = malloc(MAX_NAME + 2 + len);
    if (line == NULL)
        return;
    int k = snprintf(line, MAX_NAME + 3, "%s: ", m->name);
    memcpy(line + k, data, len);
    pthread_mutex_lock(&g_chat.lock);
    broadcast_locked(m->room, line, (size_t)k + len);
    pthread_mutex_unlock(&g_chat.lock);
    free(line);
}

static void chat_close(appsrv_ws_t *ws, int code, appsrv_str_t reason, void *user)
{
    (void)code, (void)reason, (void)user;
    member_t *m = appsrv_ws_data(ws);
    char line[128];
    int n = snprintf(line, sizeof(line), "* %s left", m->name);
    pthread_mutex_lock(&g_chat.lock);
    for (member_t **p = &g_chat.head; *p != NULL; p = &(*p)->next)
        if (*p == m) {
            *p = m->next;
            break;
        }
    broadcast_locked(m->room, line, (size_t)n);
    pthread_mutex_unlock(&g_chat.lock);
    free(m);
    appsrv_ws_release(ws); /* the list's reference: nobody can reach ws now */
}

/* POST /announce: from an HTTP handler, i.e. any worker's loop thread. */
static int announce(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    appsrv_str_t body = appsrv_req_body(req);
    char *line = malloc(body.len + 2);
    if (line == NULL)
        return -ENOMEM;
    memcpy(line, "! ", 2);
    memcpy(line + 2, body.ptr, body.len);
    int members = 0;
    pthread_mutex_lock(&g_chat.lock);
    broadcast_locked(NULL, line, body.len + 2);
    for (member_t *m = g_chat.head; m != NULL; m = m->next)
        members++;
    pthread_mutex_unlock(&g_chat.lock);
    free(line);
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    return appsrv_res_printf(res, "%d\n", members) < 0 ? -ENOMEM : 0;
}

static void on_signal(int sig)
{
    (void)sig;
    appsrv_server_stop(g_srv); /* members get close 1001, then run returns */
}

int main(int argc, char **argv)
{
    static const appsrv_ws_handlers_t chat = {
        .on_upgrade = chat_upgrade,
        .on_open = chat_open,
        .on_message = chat_message,
        .on_close = chat_close,
    };
    int rc = appsrv_server_new(&g_srv, NULL);
    if (rc == 0)
        rc = appsrv_route_ws(g_srv, "/chat/:room", &chat, NULL);
    if (rc == 0)
        rc = appsrv_route(g_srv, "POST", "/announce", announce, NULL);
    if (rc == 0)
        rc = appsrv_listen_http(g_srv, "127.0.0.1", argc > 1 ? atoi(argv[1]) : 8080);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    if (rc > 0 && sigaction(SIGINT, &sa, NULL) == 0 && sigaction(SIGTERM, &sa, NULL) == 0) {
        fprintf(stderr, "ws_chat: listening on http://127.0.0.1:%d\n", rc);
        rc = appsrv_server_run(g_srv);
    }
    if (rc < 0)
        fprintf(stderr, "ws_chat: %s\n", appsrv_strerror(rc));
    appsrv_server_free(g_srv);
    return rc < 0;
}
