/* SPDX-License-Identifier: MIT */
/*
 * line_kv.c - a key-value service for custom TCP clients, on the line
 * protocol. The handlers are the same appsrv_handler_cb an HTTP route
 * takes: the command word is the route, the rest of the line (after one
 * space) is appsrv_req_body(), and the status, reason and body set on the
 * response become the reply line "CODE REASON[ BODY]".
 *
 *   SET <key> <value>   200 OK            (the value is the rest of the line)
 *   GET <key>           200 OK <value>    or 404 Not Found
 *   DEL <key>           200 OK            or 404 Not Found
 *   QUIT                200 OK BYE        then the server closes
 *
 * Bad arguments get 400 Bad Request, a full store 507 Insufficient Storage,
 * an unknown command 404 Not Found (the library's). Keys are one word of
 * printable bytes. Every worker thread runs these handlers at once: the
 * table sits behind one mutex, held only to link, unlink or copy an item.
 *
 * Usage: line_kv [PORT]   (default 9090; 0 picks a free port), then e.g.
 *   printf 'SET lang C11\nGET lang\n' | nc 127.0.0.1 9090
 */
#define _POSIX_C_SOURCE 200809L /* pthreads, sigaction */
#include <appsrv.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEY 250      /* bytes */
#define MAX_VALUE 8192   /* bytes */
#define MAX_ITEMS 100000 /* then SET of a new key gets 507 */
#define NBUCKETS 4096    /* a power of two */

struct item {
    struct item *next;
    size_t klen, vlen;
    char data[]; /* the key, then the value; not NUL-terminated */
};

struct store {
    pthread_mutex_t lock;
    size_t n;
    struct item *buckets[NBUCKETS];
};

/* FNV-1a: a fair spread for short keys. */
static size_t bucket_of(appsrv_str_t key)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < key.len; i++)
        h = (h ^ (unsigned char)key.ptr[i]) * 16777619u;
    return h & (NBUCKETS - 1);
}

/* The link that points at key's item, or at the NULL ending its chain.
 * Caller holds the lock. */
static struct item **find(struct store *st, appsrv_str_t key)
{
    struct item **link = &st->buckets[bucket_of(key)];
    while (*link != NULL &&
           ((*link)->klen != key.len || memcmp((*link)->data, key.ptr, key.len) != 0))
        link = &(*link)->next;
    return link;
}

/*
 * Splits a request body "KEY" or "KEY VALUE" at its first space. value.ptr
 * is NULL when there is no space. Returns false for a key that is empty,
 * too long, or holds a control byte.
 */
static bool split(appsrv_str_t body, appsrv_str_t *key, appsrv_str_t *value)
{
    const char *sp = memchr(body.ptr, ' ', body.len);
    *key = (appsrv_str_t){body.ptr, sp != NULL ? (size_t)(sp - body.ptr) : body.len};
    *value = (appsrv_str_t){NULL, 0};
    if (sp != NULL)
        *value = (appsrv_str_t){sp + 1, body.len - key->len - 1};
    if (key->len == 0 || key->len > MAX_KEY)
        return false;
    for (size_t i = 0; i < key->len; i++)
        if ((unsigned char)key->ptr[i] < 0x20 || key->ptr[i] == 0x7f)
            return false;
    return true;
}

/* A reply line with no payload: "400 Bad Request", "200 OK", ... */
static int status_only(appsrv_res_t *res, int status)
{
    return appsrv_res_set_status(res, status);
}

static int kv_set(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    struct store *st = user;
    appsrv_str_t key, value;
    /* A CR inside the value could never be sent back on one line. */
    if (!split(appsrv_req_body(req), &key, &value) || value.ptr == NULL ||
        memchr(value.ptr, '\r', value.len) != NULL)
        return status_only(res, 400);
    if (value.len > MAX_VALUE)
        return status_only(res, 413);

    /* Allocate before taking the lock: the critical section stays short. */
    struct item *it = malloc(sizeof(*it) + key.len + value.len);
    if (it == NULL)
        return -ENOMEM; /* the library answers 500 Internal Server Error */
    it->klen = key.len;
    it->vlen = value.len;
    memcpy(it->data, key.ptr, key.len);
    memcpy(it->data + key.len, value.ptr, value.len);

    pthread_mutex_lock(&st->lock);
    struct item **link = find(st, key), *old = *link;
    if (old == NULL && st->n >= MAX_ITEMS) {
        pthread_mutex_unlock(&st->lock);
        free(it);
        /* Not in the library's table of phrases: name it. */
        appsrv_res_set_reason(res, "Insufficient Storage");
        return status_only(res, 507);
    }
    it->next = old != NULL ? old->next : NULL;
    *link = it;
    if (old == NULL)
        st->n++;
    pthread_mutex_unlock(&st->lock);
    free(old);
    return status_only(res, 200);
}

static int kv_get(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    struct store *st = user;
    appsrv_str_t key, extra;
    if (!split(appsrv_req_body(req), &key, &extra) || extra.ptr != NULL)
        return status_only(res, 400);

    int rc;
    pthread_mutex_lock(&st->lock);
    const struct item *it = *find(st, key);
    if (it == NULL) {
        rc = status_only(res, 404);
    } else {
        /* A copy: the item may be replaced once the lock is released. */
        rc = appsrv_res_set_body(res, it->data + it->klen, it->vlen);
        if (rc == 0)
            rc = status_only(res, 200);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static int kv_del(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    struct store *st = user;
    appsrv_str_t key, extra;
    if (!split(appsrv_req_body(req), &key, &extra) || extra.ptr != NULL)
        return status_only(res, 400);

    pthread_mutex_lock(&st->lock);
    struct item **link = find(st, key), *it = *link;
    if (it != NULL) {
        *link = it->next;
        st->n--;
    }
    pthread_mutex_unlock(&st->lock);
    free(it);
    return status_only(res, it != NULL ? 200 : 404);
}

static int kv_quit(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_close(res); /* after this reply */
    appsrv_res_set_status(res, 200);
    return appsrv_res_set_body(res, "BYE", 3);
}

static void store_dispose(struct store *st)
{
    for (size_t b = 0; b < NBUCKETS; b++) {
        while (st->buckets[b] != NULL) {
            struct item *it = st->buckets[b];
            st->buckets[b] = it->next;
            free(it);
        }
    }
    pthread_mutex_destroy(&st->lock);
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

int main(int argc, char **argv)
{
    int port = argc > 1 ? parse_port(argv[1]) : 9090;
    if (argc > 2 || port < 0) {
        fprintf(stderr, "usage: line_kv [PORT]   (0 picks a free port)\n");
        return 2;
    }

    static struct store st; /* 32 KiB of buckets: not on the stack */
    pthread_mutex_init(&st.lock, NULL);

    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.max_line = 4 + MAX_KEY + 1 + MAX_VALUE; /* "SET " KEY " " VALUE; longer: 413, close */

    appsrv_server_t *srv;
    int rc = appsrv_server_new(&srv, &cfg);
    if (rc < 0) {
        fprintf(stderr, "line_kv: %s\n", appsrv_strerror(rc));
        store_dispose(&st);
        return 1;
    }
    /* Command words are case-sensitive; the user pointer reaches every handler. */
    if ((rc = appsrv_route_line(srv, "SET", kv_set, &st)) < 0 ||
        (rc = appsrv_route_line(srv, "GET", kv_get, &st)) < 0 ||
        (rc = appsrv_route_line(srv, "DEL", kv_del, &st)) < 0 ||
        (rc = appsrv_route_line(srv, "QUIT", kv_quit, NULL)) < 0 ||
        (rc = appsrv_listen_line(srv, "127.0.0.1", port)) < 0) {
        fprintf(stderr, "line_kv: cannot start on 127.0.0.1 port %d: %s\n", port,
                appsrv_strerror(rc));
        goto out;
    }

    g_srv = srv;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    fprintf(stderr, "line_kv: listening on line://127.0.0.1:%d\n", rc);
    fflush(stderr);
    rc = appsrv_server_run(srv); /* until SIGINT/SIGTERM; 0 after the drain */
    if (rc < 0)
        fprintf(stderr, "line_kv: %s\n", appsrv_strerror(rc));

out:
    appsrv_server_free(srv);
    store_dispose(&st);
    return rc < 0 ? 1 : 0;
}
