/* SPDX-License-Identifier: MIT */
/*
 * api_notes.c - the notes API of one user: POST /v1/notes, GET /v1/notes
 * (cursor paging), GET/PUT/DELETE /v1/notes/:id. Owns validation (422 with
 * field names), the opaque list cursor, and the HTTP side of optimistic
 * concurrency: ETag is the note's version, PUT requires If-Match (428
 * without, 412 on a stale one; DELETE checks it when sent). Handlers
 * validate on the loop, then run on a database thread (job_defer); every
 * change is published to the user's other devices (live.c).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define MAX_TITLE 200
#define MAX_BODY (16 * 1024)
#define LIST_DEFAULT 20
#define LIST_MAX 100

static int set_etag(appsrv_res_t *res, int64_t version)
{
    char tag[32];
    snprintf(tag, sizeof(tag), "\"%lld\"", (long long)version);
    return appsrv_res_add_header(res, "ETag", tag);
}

/* A note answer: ETag + the note. */
static int reply_note(appsrv_res_t *res, int status, const note_t *n)
{
    int rc = set_etag(res, n->version);
    return rc < 0 ? rc : reply_json(res, status, note_json(n));
}

/* Checks {"title","body"}: NULL when fine, else the 422 fields. */
static json_t *check_note(json_t *in)
{
    json_t *fields = json_object();
    json_t *t = json_object_get(in, "title"), *b = json_object_get(in, "body");
    if (t == NULL)
        json_object_set_new(fields, "title", json_string("required"));
    else if (!json_is_string(t) || json_string_length(t) < 1 ||
             json_string_length(t) > MAX_TITLE || memchr(json_string_value(t), 0, json_string_length(t)))
        json_object_set_new(fields, "title", json_string("a string of 1 to 200 bytes"));
    if (b == NULL)
        json_object_set_new(fields, "body", json_string("required"));
    else if (!json_is_string(b) || json_string_length(b) > MAX_BODY ||
             memchr(json_string_value(b), 0, json_string_length(b)))
        json_object_set_new(fields, "body", json_string("a string of at most 16384 bytes"));
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v) {
        if (strcmp(key, "title") != 0 && strcmp(key, "body") != 0)
            json_object_set_new(fields, key, json_string("unknown field"));
    }
    if (json_object_size(fields) == 0) {
        json_decref(fields);
        return NULL;
    }
    return fields;
}

static const char *str(json_t *in, const char *key)
{
    return json_string_value(json_object_get(in, key));
}

/* Parses If-Match: "*" (-1), or one strong entity tag "N" (N >= 1).
 * Returns 0, -ENOENT (absent), -EINVAL (anything else: cannot match). */
static int if_match(appsrv_req_t *req, int64_t *version)
{
    appsrv_str_t h = appsrv_req_header(req, "If-Match");
    if (h.ptr == NULL)
        return -ENOENT;
    if (h.len == 1 && h.ptr[0] == '*') {
        *version = -1;
        return 0;
    }
    if (h.len < 3 || h.len > 18 || h.ptr[0] != '"' || h.ptr[h.len - 1] != '"')
        return -EINVAL;
    int64_t v = 0;
    for (size_t i = 1; i + 1 < h.len; i++) {
        if (h.ptr[i] < '0' || h.ptr[i] > '9')
            return -EINVAL;
        v = v * 10 + (h.ptr[i] - '0');
    }
    *version = v;
    return v >= 1 ? 0 : -EINVAL;
}

static int reply_stale(appsrv_res_t *res)
{
    return reply_error(res, 412, "version_mismatch",
                       "the note changed since you read it: fetch it and retry");
}

/* ---------------------------------------------------------------- create */

static int run_create(store_conn_t *c, job_t *j)
{
    note_t n = {0};
    int rc = g_app.vt->note_create(c, j->user, str(j->in, "title"), str(j->in, "body"),
                                   now_ms(), &n);
    if (rc < 0)
        return rc;
    char loc[64];
    snprintf(loc, sizeof(loc), "/v1/notes/%lld", (long long)n.id);
    rc = appsrv_res_add_header(j->res, "Location", loc);
    if (rc == 0)
        rc = reply_note(j->res, 201, &n);
    live_note_event(c, j->user, "note.created", &n, n.id, j->device);
    note_clear(&n);
    return rc;
}

/* Parses and validates a note body into j->in; false: res answered. */
static bool note_body(appsrv_req_t *req, appsrv_res_t *res, job_t *j, int *rc)
{
    parse_json_body(req, res, &j->in, rc);
    if (j->in == NULL)
        return false;
    json_t *bad = check_note(j->in);
    if (bad == NULL)
        return true;
    *rc = reply_invalid(res, bad);
    return false;
}

static int drop(job_t *j, int rc)
{
    json_decref(j->in);
    free(j);
    return rc;
}

static int on_create(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    int rc = 0;
    job_t *j = job_new(req, res, run_create, true);
    if (j == NULL)
        return -ENOMEM;
    return note_body(req, res, j, &rc) ? job_defer(j) : drop(j, rc);
}

/* ------------------------------------------------------------------ list */

static void cursor_encode(int64_t id, char out[64])
{
    char plain[32];
    int n = snprintf(plain, sizeof(plain), "n1:%lld", (long long)id);
    sodium_bin2base64(out, 64, (const unsigned char *)plain, (size_t)n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static bool cursor_decode(const char *s, int64_t *id)
{
    unsigned char plain[32];
    size_t n = 0;
    if (sodium_base642bin(plain, sizeof(plain) - 1, s, strlen(s), NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n < 4 || memcmp(plain, "n1:", 3) != 0)
        return false;
    plain[n] = '\0';
    char *end;
    long long v = strtoll((const char *)plain + 3, &end, 10);
    if (*end != '\0' || v < 1 || plain[3] == '0')
        return false;
    *id = v;
    return true;
}

static int run_list(store_conn_t *c, job_t *j)
{
    note_t notes[LIST_MAX + 1];
    size_t n = 0;
    int rc = g_app.vt->note_list(c, j->user, j->cursor, j->limit + 1, notes, &n);
    if (rc < 0)
        return rc;
    json_t *arr = json_array();
    size_t shown = n > (size_t)j->limit ? (size_t)j->limit : n;
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(arr, note_json(&notes[i]));
    json_t *next = json_null();
    if (n > shown) {
        char cur[64];
        cursor_encode(notes[shown - 1].id, cur);
        json_decref(next);
        next = json_string(cur);
    }
    for (size_t i = 0; i < n; i++)
        note_clear(&notes[i]);
    return reply_json(j->res, 200, json_pack("{s:o, s:o}", "notes", arr, "next_cursor", next));
}

static int on_list(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    char buf[128];
    json_t *fields = json_object();
    int64_t cursor = 0;
    long limit = LIST_DEFAULT;
    ssize_t n = appsrv_req_query_param(req, "limit", buf, sizeof(buf));
    if (n != -ENOENT) {
        char *end = buf;
        limit = n > 0 ? strtol(buf, &end, 10) : 0;
        if (n <= 0 || *end != '\0' || limit < 1 || limit > LIST_MAX)
            json_object_set_new(fields, "limit", json_string("an integer from 1 to 100"));
    }
    n = appsrv_req_query_param(req, "cursor", buf, sizeof(buf));
    if (n != -ENOENT && (n <= 0 || !cursor_decode(buf, &cursor)))
        json_object_set_new(fields, "cursor", json_string("not a cursor this server gave"));
    if (json_object_size(fields) > 0)
        return reply_invalid(res, fields);
    json_decref(fields);
    job_t *j = job_new(req, res, run_list, true);
    if (j == NULL)
        return -ENOMEM;
    j->cursor = cursor, j->limit = (int)limit;
    return job_defer(j);
}

/* ------------------------------------------------------------------ read */

static int run_read(store_conn_t *c, job_t *j)
{
    note_t n = {0};
    int rc = g_app.vt->note_get(c, j->user, j->id, &n);
    if (rc == -ENOENT)
        return reply_error(j->res, 404, "not_found", "no such note");
    if (rc < 0)
        return rc;
    char tag[32];
    snprintf(tag, sizeof(tag), "\"%lld\"", (long long)n.version);
    appsrv_str_t inm = appsrv_req_header(j->req, "If-None-Match");
    if (inm.ptr != NULL && inm.len == strlen(tag) && memcmp(inm.ptr, tag, inm.len) == 0) {
        rc = set_etag(j->res, n.version); /* 304: the copy the client has is current */
        if (rc == 0)
            rc = appsrv_res_set_status(j->res, 304);
    } else {
        rc = reply_note(j->res, 200, &n);
    }
    note_clear(&n);
    return rc;
}

/* A job for a route with :id; NULL with *rc set when the id is bad. */
static job_t *id_job(appsrv_req_t *req, appsrv_res_t *res, job_run_fn run, int *rc)
{
    int64_t id;
    if (!param_id(req, res, "id", &id, rc))
        return NULL;
    job_t *j = job_new(req, res, run, true);
    if (j == NULL)
        *rc = -ENOMEM;
    else
        j->id = id;
    return j;
}

static int on_read(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    int rc;
    job_t *j = id_job(req, res, run_read, &rc);
    return j != NULL ? job_defer(j) : rc;
}

/* ---------------------------------------------------------------- update */

static int run_update(store_conn_t *c, job_t *j)
{
    note_t n = {0};
    int rc = g_app.vt->note_update(c, j->user, j->id, j->if_version, str(j->in, "title"),
                                   str(j->in, "body"), now_ms(), &n);
    if (rc == -ENOENT)
        return reply_error(j->res, 404, "not_found", "no such note");
    if (rc == -ESTALE) {
        rc = set_etag(j->res, n.version); /* the current version */
        note_clear(&n);
        return rc < 0 ? rc : reply_stale(j->res);
    }
    if (rc < 0)
        return rc;
    rc = reply_note(j->res, 200, &n);
    live_note_event(c, j->user, "note.updated", &n, n.id, j->device);
    note_clear(&n);
    return rc;
}

/* Reads If-Match into j; false with res answered (428 when required and
 * absent, 412 when it cannot match). */
static bool precondition(appsrv_req_t *req, appsrv_res_t *res, job_t *j, bool required, int *rc)
{
    int m = if_match(req, &j->if_version);
    if (m == -ENOENT && !required) {
        j->if_version = -1;
        return true;
    }
    if (m == -ENOENT)
        *rc = reply_error(res, 428, "precondition_required",
                          "send If-Match with the ETag of the note you edited");
    else if (m < 0)
        *rc = reply_stale(res);
    return m == 0;
}

static int on_update(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    int rc;
    job_t *j = id_job(req, res, run_update, &rc);
    if (j == NULL)
        return rc;
    if (!precondition(req, res, j, true, &rc) || !note_body(req, res, j, &rc))
        return drop(j, rc);
    return job_defer(j);
}

/* ---------------------------------------------------------------- delete */

static int run_delete(store_conn_t *c, job_t *j)
{
    photo_t photos[MAX_PHOTOS_PER_NOTE];
    size_t nphotos = 0;
    /* Under the note lock, no photo of this note commits between the list
     * and the delete (its file would be left behind). */
    int rc = g_app.vt->note_lock(c, j->id);
    if (rc < 0)
        return rc;
    rc = g_app.vt->photo_list(c, j->user, j->id, photos, MAX_PHOTOS_PER_NOTE, &nphotos);
    if (rc == 0)
        rc = g_app.vt->note_delete(c, j->user, j->id, j->if_version);
    if (rc == 0)
        for (size_t i = 0; i < nphotos; i++) /* their rows went with the note */
            photo_unlink(photos[i].id);
    g_app.vt->note_unlock(c, j->id);
    if (rc == -ENOENT)
        return reply_error(j->res, 404, "not_found", "no such note");
    if (rc == -ESTALE)
        return reply_stale(j->res);
    if (rc < 0)
        return rc;
    live_note_event(c, j->user, "note.deleted", NULL, j->id, j->device);
    return appsrv_res_set_status(j->res, 204);
}

static int on_delete(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    int rc;
    job_t *j = id_job(req, res, run_delete, &rc);
    if (j == NULL)
        return rc;
    return precondition(req, res, j, false, &rc) ? job_defer(j) : drop(j, rc);
}

int notes_routes(appsrv_server_t *srv)
{
    int rc = appsrv_route(srv, "POST", "/v1/notes", on_create, NULL);
    if (rc == 0)
        rc = appsrv_route(srv, "GET", "/v1/notes", on_list, NULL);
    if (rc == 0)
        rc = appsrv_route(srv, "GET", "/v1/notes/:id", on_read, NULL);
    if (rc == 0)
        rc = appsrv_route(srv, "PUT", "/v1/notes/:id", on_update, NULL);
    if (rc == 0)
        rc = appsrv_route(srv, "DELETE", "/v1/notes/:id", on_delete, NULL);
    return rc;
}
