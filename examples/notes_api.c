/* SPDX-License-Identifier: MIT */
/*
 * notes_api.c - a small mobile-app backend: a JSON REST API for notes.
 *
 *   POST   /v1/notes        {"title":"…","body":"…"}  201, Location, the note
 *   GET    /v1/notes        ?limit=N&after=ID         200 {"notes":[…],"next_after":ID|null}
 *   GET    /v1/notes/:id                              200 the note, or 404
 *   PUT    /v1/notes/:id    {"title":"…","body":"…"}  200 the note, or 404
 *   DELETE /v1/notes/:id                              204, or 404
 *
 * A note is {"id":1,"title":"…","body":"…"}; ids are decimal integers that
 * only grow, so a list is in creation order and "after" is a stable cursor.
 * Every request needs "Authorization: Bearer <token>", the token being the
 * NOTES_API_TOKEN environment variable; without it, or with another token,
 * the answer is 401 with a WWW-Authenticate challenge (RFC 6750 §3).
 * Request bodies must be application/json (else 415) holding an object with
 * exactly a string "title" (1..200 bytes) and a string "body" (at most
 * 16 KiB); anything else is 400. Errors are JSON too:
 * {"error":"invalid_json","message":"…"}. Unknown paths and methods get the
 * library's plain-text 404 and 405 + Allow.
 *
 * Threads: the server runs these handlers on every worker thread at once.
 * The notes live in one array behind a pthread rwlock; inside the lock the
 * handlers only copy memory (never I/O, never JSON text), so a loop thread
 * never waits long. JSON is parsed and printed by jansson (libjansson-dev),
 * which this example uses; libappsrv itself depends on nothing.
 *
 * Usage: NOTES_API_TOKEN=secret notes_api [PORT]   (default 8080; 0: a free port)
 *   curl -H 'Authorization: Bearer secret' -H 'Content-Type: application/json' \
 *        -d '{"title":"Milk","body":"2 litres"}' http://127.0.0.1:8080/v1/notes
 */
#define _POSIX_C_SOURCE 200809L /* pthreads, sigaction */
#include <appsrv.h>

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TITLE 200           /* bytes of UTF-8 */
#define MAX_TEXT (16 * 1024)    /* bytes of a note's body */
#define MAX_NOTES 10000         /* then POST gets 507 */
#define MAX_REQUEST (64 * 1024) /* request body; larger: 413 from the library */
#define LIST_DEFAULT 50         /* notes per page */
#define LIST_MAX 100
#define MAX_ID 9007199254740991ull /* 2^53 - 1: exact in every JSON client */

struct note {
    uint64_t id;
    char *title, *body; /* NUL-terminated: jansson refuses "\u0000" */
};

struct app {
    const char *token; /* the bearer token clients must send */
    size_t token_len;
    pthread_rwlock_t lock; /* guards what follows */
    struct note *notes;    /* sorted by id: new ids are always the largest */
    size_t n, cap;
    uint64_t last_id;
};

/* ------------------------------------------------------------- responses */

static void free_text(void *data, void *ud)
{
    (void)ud;
    free(data); /* json_dumps() text */
}

/* Answers status with j (consumed) as the JSON body. Returns what a handler
 * returns: 0, or negative (the library then answers 500). */
static int send_json(appsrv_res_t *res, int status, json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL)
        return -ENOMEM;
    int rc = appsrv_res_set_status(res, status);
    if (rc == 0)
        rc = appsrv_res_add_header(res, "Content-Type", "application/json");
    if (rc == 0)
        rc = appsrv_res_add_header(res, "Cache-Control", "no-store"); /* private data */
    if (rc < 0) {
        free(text);
        return rc;
    }
    /* No copy: the library calls free_text() once the bytes are sent. */
    return appsrv_res_set_body_ref(res, text, strlen(text), free_text, NULL);
}

/* {"error": code, "message": message}. message may quote client bytes;
 * jansson checks it is UTF-8, and the error is sent without it if not. */
static int send_error(appsrv_res_t *res, int status, const char *code, const char *message)
{
    json_t *j = json_pack("{s:s, s:s}", "error", code, "message", message);
    if (j == NULL)
        j = json_pack("{s:s}", "error", code);
    return send_json(res, status, j);
}

static json_t *note_json(uint64_t id, const char *title, const char *body)
{
    return json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id, "title", title, "body", body);
}

/* ---------------------------------------------------------------- checks */

static bool ascii_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x += 'a' - 'A';
        if (y >= 'A' && y <= 'Z')
            y += 'a' - 'A';
        if (x != y)
            return false;
    }
    return true;
}

/* Compares in time that depends on the lengths only, not on where the
 * bytes differ: a client cannot guess the token byte by byte. */
static bool token_equal(const char *given, size_t given_len, const char *token, size_t len)
{
    unsigned char diff = given_len != len;
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)(token[i] ^ (i < given_len ? given[i] : 0));
    return diff == 0;
}

/*
 * Checks "Authorization: Bearer <token>" (RFC 6750 §2.1; the scheme is
 * case-insensitive). Returns true when the request may proceed; otherwise
 * res holds the 401 and the handler returns *rc.
 */
static bool authorized(const struct app *app, appsrv_req_t *req, appsrv_res_t *res, int *rc)
{
    appsrv_str_t h = appsrv_req_header(req, "Authorization");
    const char *p = h.ptr;
    size_t len = h.len;
    bool bearer = p != NULL && len > 7 && ascii_ieq(p, "Bearer ", 7);
    if (bearer) {
        p += 7, len -= 7;
        while (len > 0 && *p == ' ')
            p++, len--;
        if (token_equal(p, len, app->token, app->token_len))
            return true;
    }
    /* No credentials: a bare challenge; wrong ones: say so (RFC 6750 §3.1). */
    *rc = appsrv_res_add_header(res, "WWW-Authenticate",
                                bearer ? "Bearer realm=\"notes\", error=\"invalid_token\""
                                       : "Bearer realm=\"notes\"");
    if (*rc == 0)
        *rc = send_error(res, 401, "unauthorized",
                         bearer ? "invalid bearer token" : "missing bearer token");
    return false;
}

/* Whether the request says its body is JSON: "application/json", any
 * case, optionally followed by parameters such as "; charset=utf-8". */
static bool is_json(appsrv_req_t *req)
{
    static const char type[] = "application/json";
    const size_t n = sizeof(type) - 1;
    appsrv_str_t ct = appsrv_req_header(req, "Content-Type");
    return ct.ptr != NULL && ct.len >= n && ascii_ieq(ct.ptr, type, n) &&
           (ct.len == n || ct.ptr[n] == ';' || ct.ptr[n] == ' ' || ct.ptr[n] == '\t');
}

/*
 * Parses a note from the request body: an object with exactly a string
 * "title" (1..MAX_TITLE bytes) and a string "body" (..MAX_TEXT bytes).
 * On success returns the parsed object (the caller json_decref()s it) and
 * points *title and *body into it. Otherwise returns NULL and res holds
 * the error (the handler returns *rc).
 */
static json_t *parse_note(appsrv_req_t *req, appsrv_res_t *res, const char **title,
                          const char **body, int *rc)
{
    char msg[256];
    json_error_t jerr;
    appsrv_str_t in = appsrv_req_body(req);

    if (!is_json(req)) {
        *rc = send_error(res, 415, "unsupported_media_type",
                         "send the note as Content-Type: application/json");
        return NULL;
    }
    /* Not NUL-terminated, and may hold anything: jansson takes a length. */
    json_t *root = json_loadb(in.ptr, in.len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(msg, sizeof(msg), "%s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        *rc = send_error(res, 400, "invalid_json", msg);
        return NULL;
    }
    const char *key;
    json_t *t = json_object_get(root, "title"), *b = json_object_get(root, "body"), *v;
    msg[0] = '\0';
    if (!json_is_object(root))
        snprintf(msg, sizeof(msg), "expected an object {\"title\": string, \"body\": string}");
    else if (!json_is_string(t) || json_string_length(t) == 0)
        snprintf(msg, sizeof(msg), "\"title\" must be a non-empty string");
    else if (json_string_length(t) > MAX_TITLE)
        snprintf(msg, sizeof(msg), "\"title\" is longer than %d bytes", MAX_TITLE);
    else if (!json_is_string(b))
        snprintf(msg, sizeof(msg), "\"body\" must be a string");
    else if (json_string_length(b) > MAX_TEXT)
        snprintf(msg, sizeof(msg), "\"body\" is longer than %d bytes", MAX_TEXT);
    else {
        json_object_foreach(root, key, v) {
            if (strcmp(key, "title") != 0 && strcmp(key, "body") != 0) {
                snprintf(msg, sizeof(msg), "unknown member \"%.64s\"", key);
                break;
            }
        }
    }
    if (msg[0] != '\0') {
        *rc = send_error(res, 400, "invalid_note", msg);
        json_decref(root);
        return NULL;
    }
    *title = json_string_value(t);
    *body = json_string_value(b);
    return root;
}

/*
 * The route's ":id" as a note id: decimal digits, no sign, no leading
 * zero, 1..MAX_ID. Anything else names no note (404).
 */
static bool parse_id(appsrv_str_t s, uint64_t *id)
{
    uint64_t v = 0;
    if (s.ptr == NULL || s.len == 0 || s.len > 16 || s.ptr[0] == '0')
        return false;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s.ptr[i] - '0'); /* 16 digits cannot overflow */
    }
    if (v > MAX_ID)
        return false;
    *id = v;
    return true;
}

/* Query parameter name as an integer in [min, max]; def when absent.
 * Returns -1 when present but not such a number. */
static long long query_num(appsrv_req_t *req, const char *name, long long min, long long max,
                           long long def)
{
    char buf[24];
    ssize_t n = appsrv_req_query_param(req, name, buf, sizeof(buf)); /* decoded */
    if (n == -ENOENT)
        return def;
    if (n <= 0 || n > 16)
        return -1; /* empty, too long (-ENOSPC) or a bad %-escape (-EINVAL) */
    long long v = 0;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
        v = v * 10 + (buf[i] - '0');
    }
    return v >= min && v <= max ? v : -1;
}

/* ----------------------------------------------------------------- store */

/* Caller holds the lock. The index of id, or of where it would go. */
static size_t lower_bound(const struct app *app, uint64_t id)
{
    size_t lo = 0, hi = app->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (app->notes[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Caller holds the lock. The note with id, or NULL. */
static struct note *find(struct app *app, uint64_t id)
{
    size_t i = lower_bound(app, id);
    return i < app->n && app->notes[i].id == id ? &app->notes[i] : NULL;
}

/* ------------------------------------------------------------- handlers */

static int notes_create(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    struct app *app = user;
    const char *title, *body;
    int rc = 0;
    if (!authorized(app, req, res, &rc))
        return rc;
    json_t *in = parse_note(req, res, &title, &body, &rc);
    if (in == NULL)
        return rc;

    /* Copies made outside the lock: the critical section only links them. */
    struct note note = {0, strdup(title), strdup(body)};
    if (note.title == NULL || note.body == NULL) {
        rc = -ENOMEM;
        goto free_note;
    }
    pthread_rwlock_wrlock(&app->lock);
    if (app->n == MAX_NOTES || app->last_id == MAX_ID) {
        pthread_rwlock_unlock(&app->lock);
        appsrv_res_set_reason(res, "Insufficient Storage"); /* not in the library's table */
        rc = send_error(res, 507, "store_full", "no room for another note");
        goto free_note;
    }
    if (app->n == app->cap) {
        size_t cap = app->cap ? app->cap * 2 : 64;
        struct note *grown = realloc(app->notes, cap * sizeof(*grown));
        if (grown == NULL) {
            pthread_rwlock_unlock(&app->lock);
            rc = -ENOMEM;
            goto free_note;
        }
        app->notes = grown;
        app->cap = cap;
    }
    note.id = ++app->last_id;
    app->notes[app->n++] = note; /* the largest id: the array stays sorted */
    pthread_rwlock_unlock(&app->lock);

    char location[64];
    snprintf(location, sizeof(location), "/v1/notes/%" PRIu64, note.id);
    rc = appsrv_res_add_header(res, "Location", location);
    if (rc == 0)
        rc = send_json(res, 201, note_json(note.id, title, body));
    json_decref(in);
    return rc;

free_note:
    free(note.title);
    free(note.body);
    json_decref(in);
    return rc;
}

static int notes_list(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    struct app *app = user;
    int rc = 0;
    if (!authorized(app, req, res, &rc))
        return rc;
    long long limit = query_num(req, "limit", 1, LIST_MAX, LIST_DEFAULT);
    long long after = query_num(req, "after", 0, (long long)MAX_ID, 0);
    if (limit < 0 || after < 0)
        return send_error(res, 400, "invalid_query",
                          "limit must be 1..100 and after a note id (or 0)");

    json_t *list = json_array();
    bool ok = list != NULL, more = false;
    uint64_t last = 0;
    /* Readers share the lock; json_t values are copies, safe after it. */
    pthread_rwlock_rdlock(&app->lock);
    size_t i = lower_bound(app, (uint64_t)after + 1);
    for (; ok && i < app->n && json_array_size(list) < (size_t)limit; i++) {
        const struct note *n = &app->notes[i];
        ok = json_array_append_new(list, note_json(n->id, n->title, n->body)) == 0;
        last = n->id;
    }
    more = i < app->n;
    pthread_rwlock_unlock(&app->lock);
    if (!ok) {
        json_decref(list);
        return -ENOMEM;
    }
    return send_json(res, 200,
                     json_pack("{s:o, s:o}", "notes", list, "next_after",
                               more ? json_integer((json_int_t)last) : json_null()));
}

static int notes_read(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    struct app *app = user;
    uint64_t id;
    int rc = 0;
    if (!authorized(app, req, res, &rc))
        return rc;
    if (!parse_id(appsrv_req_param(req, "id"), &id))
        return send_error(res, 404, "not_found", "no such note");

    pthread_rwlock_rdlock(&app->lock);
    const struct note *n = find(app, id);
    json_t *j = n != NULL ? note_json(n->id, n->title, n->body) : NULL; /* copies */
    pthread_rwlock_unlock(&app->lock);
    if (n == NULL)
        return send_error(res, 404, "not_found", "no such note");
    return send_json(res, 200, j);
}

static int notes_update(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    struct app *app = user;
    const char *title, *body;
    uint64_t id;
    int rc = 0;
    if (!authorized(app, req, res, &rc))
        return rc;
    if (!parse_id(appsrv_req_param(req, "id"), &id))
        return send_error(res, 404, "not_found", "no such note");
    json_t *in = parse_note(req, res, &title, &body, &rc);
    if (in == NULL)
        return rc;

    char *t = strdup(title), *b = strdup(body);
    if (t == NULL || b == NULL) {
        rc = -ENOMEM;
    } else {
        pthread_rwlock_wrlock(&app->lock);
        struct note *n = find(app, id);
        if (n != NULL) { /* swap: the old strings are freed outside the lock */
            char *old_t = n->title, *old_b = n->body;
            n->title = t, n->body = b;
            t = old_t, b = old_b;
        }
        pthread_rwlock_unlock(&app->lock);
        rc = n != NULL ? send_json(res, 200, note_json(id, title, body))
                       : send_error(res, 404, "not_found", "no such note");
    }
    free(t);
    free(b);
    json_decref(in);
    return rc;
}

static int notes_delete(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    struct app *app = user;
    struct note gone = {0, NULL, NULL};
    uint64_t id;
    int rc = 0;
    if (!authorized(app, req, res, &rc))
        return rc;
    if (!parse_id(appsrv_req_param(req, "id"), &id))
        return send_error(res, 404, "not_found", "no such note");

    pthread_rwlock_wrlock(&app->lock);
    struct note *n = find(app, id);
    if (n != NULL) {
        gone = *n;
        memmove(n, n + 1, (size_t)(app->notes + app->n - (n + 1)) * sizeof(*n));
        app->n--;
    }
    pthread_rwlock_unlock(&app->lock);
    if (gone.id == 0)
        return send_error(res, 404, "not_found", "no such note");
    free(gone.title);
    free(gone.body);
    return appsrv_res_set_status(res, 204); /* no body */
}

/* ------------------------------------------------------------------ main */

static appsrv_server_t *g_srv; /* for the signal handler only */

static void on_signal(int sig)
{
    (void)sig;
    appsrv_server_stop(g_srv); /* async-signal-safe */
}

/* A whole decimal port number, 0..65535; -1 otherwise. */
static int parse_port(const char *s)
{
    long v = 0;
    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || (v = v * 10 + (*s - '0')) > 65535)
            return -1;
    }
    return (int)v;
}

/* RFC 6750 §2.1 b64token: what a client can send after "Bearer ". */
static bool valid_token(const char *s)
{
    size_t n = strlen(s), i = 0;
    while (i < n && (strchr("-._~+/", s[i]) != NULL || (s[i] >= '0' && s[i] <= '9') ||
                     ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z')))
        i++;
    if (i == 0)
        return false;
    while (i < n && s[i] == '=')
        i++;
    return i == n && n <= 512;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? parse_port(argv[1]) : 8080;
    if (argc > 2 || port < 0) {
        fprintf(stderr, "usage: NOTES_API_TOKEN=TOKEN notes_api [PORT]   (0: a free port)\n");
        return 2;
    }
    const char *token = getenv("NOTES_API_TOKEN");
    if (token == NULL || !valid_token(token)) {
        fprintf(stderr, "notes_api: set NOTES_API_TOKEN to the bearer token clients must "
                        "send (1..512 characters of A-Z a-z 0-9 - . _ ~ + / then any '=')\n");
        return 2;
    }

    struct app app = {.token = token, .token_len = strlen(token)};
    int rc = -pthread_rwlock_init(&app.lock, NULL);
    if (rc < 0) {
        fprintf(stderr, "notes_api: %s\n", appsrv_strerror(rc));
        return 1;
    }
    /* jansson seeds its hash function on first use; do it before the
     * worker threads exist (jansson's "Thread safety" advice). */
    json_object_seed(0);

    appsrv_config_t cfg;
    appsrv_config_init(&cfg); /* the documented defaults, threads = CPUs */
    cfg.max_body = MAX_REQUEST;

    appsrv_server_t *srv = NULL;
    if ((rc = appsrv_server_new(&srv, &cfg)) < 0 ||
        (rc = appsrv_route(srv, "POST", "/v1/notes", notes_create, &app)) < 0 ||
        (rc = appsrv_route(srv, "GET", "/v1/notes", notes_list, &app)) < 0 ||
        (rc = appsrv_route(srv, "GET", "/v1/notes/:id", notes_read, &app)) < 0 ||
        (rc = appsrv_route(srv, "PUT", "/v1/notes/:id", notes_update, &app)) < 0 ||
        (rc = appsrv_route(srv, "DELETE", "/v1/notes/:id", notes_delete, &app)) < 0 ||
        (rc = appsrv_listen_http(srv, "127.0.0.1", port)) < 0) {
        fprintf(stderr, "notes_api: cannot start on 127.0.0.1 port %d: %s\n", port,
                appsrv_strerror(rc));
        goto out;
    }

    g_srv = srv;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    fprintf(stderr, "notes_api: listening on http://127.0.0.1:%d\n", rc);
    fflush(stderr);
    rc = appsrv_server_run(srv); /* until SIGINT/SIGTERM; 0 after the drain */
    if (rc < 0)
        fprintf(stderr, "notes_api: %s\n", appsrv_strerror(rc));

out:
    appsrv_server_free(srv); /* every handler has returned: app is ours again */
    for (size_t i = 0; i < app.n; i++) {
        free(app.notes[i].title);
        free(app.notes[i].body);
    }
    free(app.notes);
    pthread_rwlock_destroy(&app.lock);
    return rc < 0 ? 1 : 0;
}
