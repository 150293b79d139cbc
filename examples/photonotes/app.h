/* SPDX-License-Identifier: MIT */
/*
 * app.h - what the parts of photonotes share: the application state
 * (g_app), the database pool (dbpool.c), request jobs that run on it, the
 * JSON answers (json.c), authentication (api_auth.c), the live hub
 * (live.c) and the route tables of api_*.c. main.c fills g_app and wires
 * the routes; every other file reads it.
 */
#ifndef PHOTONOTES_APP_H
#define PHOTONOTES_APP_H

#include <appsrv.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* ------------------------------------------------------------ dbpool.c */
typedef struct dbpool dbpool_t;
typedef void (*db_job_fn)(store_conn_t *c, void *arg);

/* Starts nthreads threads, each with its own connection from vt->open(url)
 * (the first one also migrates the schema). Returns 0 or a negative errno;
 * on failure nothing runs. */
int dbpool_start(dbpool_t **out, const store_vt *vt, const char *url, int nthreads,
                 int max_queue);
/* Queues fn(conn, arg) for a database thread. Any thread. Returns 0, or
 * -EAGAIN when max_queue jobs wait already, -ESHUTDOWN after stop. */
int dbpool_submit(dbpool_t *p, db_job_fn fn, void *arg);
/* Runs what is queued, then joins the threads and closes their
 * connections. */
void dbpool_stop(dbpool_t *p);

/* ------------------------------------------------------------ app state */
struct app {
    appsrv_server_t *srv;
    const store_vt *vt;
    const char *db_url;
    dbpool_t *pool;
    int auth_slot;            /* appsrv_use() slot of the auth hook */
    int64_t session_ttl_ms;   /* lifetime of a bearer token */
    const char *instance;     /* X-Instance answer header (several instances) */
    const char *photo_dir;    /* where photo files live (shared by instances) */
};
extern struct app g_app;

int64_t now_ms(void);

/* ------------------------------------------------ request jobs (json.c) */
/*
 * A request answered on a database thread. The handler (loop thread)
 * validates what it can, fills a job and calls job_defer(); the pool
 * thread resolves the user (api_auth.c), runs run(), and sends res unless
 * run() returned JOB_KEEP (a stream it now owns).
 */
typedef struct job job_t;
typedef int (*job_run_fn)(store_conn_t *c, job_t *j);
#define JOB_KEEP 1

struct job {
    appsrv_req_t *req;
    appsrv_res_t *res;
    job_run_fn run;
    bool need_user;      /* resolve the bearer token first (401 if bad) */
    int64_t user;        /* the authenticated user, once resolved */
    int64_t id;          /* a route's :id */
    int64_t if_version;  /* If-Match (-1: "*") */
    int64_t cursor;      /* list: notes before this id */
    int limit;
    json_t *in;          /* the parsed request body, or NULL */
    char device[65];     /* X-Device-ID of the request ("" when absent) */
    void *ext;           /* run()'s own context */
};

/* Allocates a zeroed job for req/res. NULL when out of memory. */
job_t *job_new(appsrv_req_t *req, appsrv_res_t *res, job_run_fn run, bool need_user);
/* The request's X-Device-ID (1..64 of [A-Za-z0-9._-]) into out, or "". */
void device_id(const appsrv_req_t *req, char out[65]);
/* Hands j to the pool; returns what the handler returns (APPSRV_LATER,
 * or 0 with a 503 in res when the pool is full). */
int job_defer(job_t *j);

/* ------------------------------------------------------ answers (json.c) */
/* Each sets status and a JSON body (Cache-Control: no-store) and returns
 * 0 or a negative errno (a handler then answers 500). j is consumed. */
int reply_json(appsrv_res_t *res, int status, json_t *j);
/* {"error":{"status":S,"code":"...","message":"..."}} */
int reply_error(appsrv_res_t *res, int status, const char *code, const char *message);
/* 422 {"error":{..., "code":"validation_failed", "fields":{name: problem}}} */
int reply_invalid(appsrv_res_t *res, json_t *fields);
/* Parses the body as a JSON object into *out. Otherwise answers 415 (not
 * application/json) or 400 (not a JSON object) and returns the handler's
 * return value through *rc, with *out NULL. */
void parse_json_body(appsrv_req_t *req, appsrv_res_t *res, json_t **out, int *rc);
/* Reads a route's decimal :name into *v (1..2^53-1). false: 404 sent. */
bool param_id(appsrv_req_t *req, appsrv_res_t *res, const char *name, int64_t *v, int *rc);
json_t *note_json(const note_t *n);
/* The error responder: the library's own errors in the same JSON shape. */
int error_responder(const appsrv_error_t *err, appsrv_res_t *res, void *user);

/* ----------------------------------------------------------- api_auth.c */
int auth_routes(appsrv_server_t *srv);
/* The before hook: bearer token -> user in the request's data slot. */
int auth_hook(appsrv_req_t *req, appsrv_res_t *res, void *user);
/* On a db thread: resolves j's user (cache or sessions table). false:
 * res holds the 401. */
bool auth_resolve(store_conn_t *c, job_t *j);
/* The SHA-256 hex of req's bearer token; false when it has none. */
bool auth_token_hash(const appsrv_req_t *req, char hash[TOKEN_HASH_HEX + 1]);
/* On a db thread: the user of an unexpired session (and caches it).
 * 0 or -ENOENT or -EIO. */
int auth_lookup(store_conn_t *c, const char *hash, int64_t *user);
/* The user the hook found in its cache for req (0: none yet). */
int64_t auth_cached_user(const appsrv_req_t *req);
/* Drops a token hash from this instance's cache (logout elsewhere). */
void auth_forget(const char *token_hash);
void auth_cache_free(void);

/* ---------------------------------------------------------- api_notes.c */
int notes_routes(appsrv_server_t *srv);

/* --------------------------------------------------------- api_photos.c */
int photos_routes(appsrv_server_t *srv);
json_t *photo_json(const photo_t *p);
/* Removes photo id's file (after its row went). */
void photo_unlink(int64_t id);

/* --------------------------------------------------------------- live.c */
int live_routes(appsrv_server_t *srv);
/* Publishes a note event for user from a db thread: through the store's
 * notify (every instance) or straight to this process's subscribers.
 * type: "note.created", "note.updated", "note.deleted"; n NULL for a
 * deletion (id given). */
void live_note_event(store_conn_t *c, int64_t user, const char *type, const note_t *n,
                     int64_t id, const char *device);
/* "photo.added" / "photo.deleted": {"type","id":note,"photo":{...},"device"}. */
void live_photo_event(store_conn_t *c, int64_t user, const char *type, const photo_t *p,
                      const char *device);
/* A payload from another instance (the store's listener): "E <user> <json>"
 * fans out to local subscribers, "L <token hash>" forgets a session. */
void live_deliver(const char *payload);
/* Sends text to every subscriber of user in this process. Any thread. */
void live_publish_local(int64_t user, const char *text);

#endif
