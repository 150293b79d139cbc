/* SPDX-License-Identifier: MIT */
/*
 * api_photos.c - photos attached to notes. Owns POST /v1/notes/:id/photos
 * (multipart/form-data, part "photo"), GET /v1/notes/:id/photos,
 * GET /v1/photos/:pid and DELETE /v1/photos/:pid, and the photo files in
 * g_app.photo_dir (one file per photo, named by its id). An upload is
 * decided before its body (appsrv_route_ex on_head: token, Content-Length,
 * Content-Type), then streamed: appsrv_req_body_stream pieces go through
 * the library's multipart parser straight into a temp file (a piece at a
 * time on the loop thread, never the whole body in memory) while
 * crypto_hash_sha256 runs over them; the type comes from the magic bytes.
 * A database thread then records it and renames the file into place,
 * under the note's lock (store.h note_lock) so a note delete cannot
 * leave the file behind.
 * Downloads are appsrv_res_file_fd (Range, ETag, 304) from a db thread.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"

#define MAX_PHOTO (25u * 1024 * 1024) /* bytes of one photo */
#define MAX_UPLOAD (MAX_PHOTO + 64 * 1024) /* the multipart body around it */

void photo_path(int64_t id, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%lld.photo", g_app.photo_dir, (long long)id);
}

void photo_unlink(int64_t id)
{
    char path[4096];
    photo_path(id, path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT)
        fprintf(stderr, "photonotes: unlink %s: %s\n", path, strerror(errno));
}

json_t *photo_json(const photo_t *p)
{
    char url[64];
    snprintf(url, sizeof(url), "/v1/photos/%lld", (long long)p->id);
    return json_pack("{s:I, s:I, s:s, s:I, s:s, s:I, s:s}", "id", (json_int_t)p->id, "note_id",
                     (json_int_t)p->note_id, "type", p->type, "size", (json_int_t)p->size,
                     "sha256", p->sha256, "created_at", (json_int_t)p->created_at, "url", url);
}

/* The type from the first bytes, or NULL: JPEG, PNG, WebP, HEIC/HEIF. */
static const char *sniff(const unsigned char *m, size_t n)
{
    static const char *const heic[] = {"heic", "heix", "hevc", "hevx", "heim", "heis",
                                       "mif1", "msf1"};
    if (n >= 3 && m[0] == 0xFF && m[1] == 0xD8 && m[2] == 0xFF)
        return "image/jpeg";
    if (n >= 8 && memcmp(m, "\x89PNG\r\n\x1a\n", 8) == 0)
        return "image/png";
    if (n >= 12 && memcmp(m, "RIFF", 4) == 0 && memcmp(m + 8, "WEBP", 4) == 0)
        return "image/webp";
    for (size_t i = 0; n >= 12 && memcmp(m + 4, "ftyp", 4) == 0 && i < 8; i++)
        if (memcmp(m + 8, heic[i], 4) == 0)
            return "image/heic";
    return NULL;
}

/* ---------------------------------------------------------------- upload */

enum { AUTH_PENDING, AUTH_OK, AUTH_BAD };

typedef struct upload {
    appsrv_req_t *req;
    appsrv_res_t *res;
    pthread_mutex_t lock; /* auth, paused, ended, finished: loop vs db thread */
    int auth;
    bool paused, ended, finished;
    int refs;            /* the body's, and a pending auth job's */
    int64_t user, note;
    char device[65];
    char token_hash[TOKEN_HASH_HEX + 1]; /* for the auth job: it never reads req */
    appsrv_multipart_t *mp;
    int fd;              /* the temp file, or -1 */
    bool have_photo, in_photo;
    char tmp[4096];
    crypto_hash_sha256_state sha;
    unsigned char magic[16];
    size_t nmagic;
    uint64_t size;
    int status;          /* the error to answer (0: none yet) */
    const char *code, *message;
} upload_t;

static void upload_unref(upload_t *u)
{
    pthread_mutex_lock(&u->lock);
    bool last = --u->refs == 0;
    pthread_mutex_unlock(&u->lock);
    if (!last)
        return;
    if (u->fd >= 0)
        close(u->fd);
    if (u->tmp[0] != '\0')
        unlink(u->tmp); /* renamed away on success: then a no-op */
    appsrv_multipart_free(u->mp);
    pthread_mutex_destroy(&u->lock);
    free(u);
}

static int fail(upload_t *u, int status, const char *code, const char *message)
{
    if (u->status == 0)
        u->status = status, u->code = code, u->message = message;
    return -1;
}

static int on_part(const appsrv_part_t *part, void *ud)
{
    upload_t *u = ud;
    u->in_photo = part->filename.ptr != NULL && strcmp(part->name.ptr, "photo") == 0;
    if (!u->in_photo)
        return 0; /* other fields are ignored */
    if (u->have_photo)
        return fail(u, 422, "validation_failed", "one photo per request");
    u->have_photo = true;
    unsigned char rnd[12];
    char hex[25];
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
    snprintf(u->tmp, sizeof(u->tmp), "%s/upload-%s.tmp", g_app.photo_dir, hex);
    u->fd = open(u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (u->fd < 0) {
        u->tmp[0] = '\0';
        return fail(u, 500, "storage", "cannot store the photo");
    }
    crypto_hash_sha256_init(&u->sha);
    return 0;
}

static int on_data(const appsrv_part_t *part, const void *data, size_t len, void *ud)
{
    (void)part;
    upload_t *u = ud;
    if (!u->in_photo)
        return 0;
    if (u->size + len > MAX_PHOTO)
        return fail(u, 413, "too_large", "a photo is at most 25 MiB");
    size_t take = len < sizeof(u->magic) - u->nmagic ? len : sizeof(u->magic) - u->nmagic;
    memcpy(u->magic + u->nmagic, data, take);
    u->nmagic += take;
    if (u->nmagic == sizeof(u->magic) && sniff(u->magic, u->nmagic) == NULL)
        return fail(u, 415, "unsupported_photo", "JPEG, PNG, HEIC or WebP only");
    crypto_hash_sha256_update(&u->sha, data, len);
    u->size += len;
    /* A piece of the connection's input block: the page cache takes it. */
    for (const char *p = data; len > 0;) {
        ssize_t w = write(u->fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return fail(u, 507, "storage", "cannot store the photo");
        p += w, len -= (size_t)w;
    }
    return 0;
}

static int on_part_end(const appsrv_part_t *part, void *ud)
{
    (void)part;
    upload_t *u = ud;
    u->in_photo = false;
    return 0;
}

/* Answers u's error (or ok's answer already in res) and lets go of res. */
static void upload_finish(upload_t *u)
{
    pthread_mutex_lock(&u->lock);
    bool already = u->finished;
    u->finished = true;
    pthread_mutex_unlock(&u->lock);
    if (already)
        return;
    if (u->status != 0)
        reply_error(u->res, u->status, u->code, u->message);
    appsrv_res_send(u->res); /* APPSRV_ECANCELED when the client left: fine */
}

/* On a db thread, with the whole photo in the temp file: record, rename. */
static void upload_commit(store_conn_t *c, upload_t *u)
{
    photo_t p = {.note_id = u->note, .size = (int64_t)u->size};
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&u->sha, digest);
    sodium_bin2hex(p.sha256, sizeof(p.sha256), digest, sizeof(digest));
    snprintf(p.type, sizeof(p.type), "%s", sniff(u->magic, u->nmagic));
    p.created_at = now_ms();
    char path[4096];
    photo_t have[MAX_PHOTOS_PER_NOTE];
    size_t n = 0;
    /* The data reaches the disk before the lock is taken; under the note
     * lock, the count, the row and the rename happen with no note delete
     * in between (which would list the photos before this row, or unlink
     * before this rename, and leave the file behind). */
    if (fsync(u->fd) != 0) {
        fail(u, 507, "storage", "cannot store the photo");
        upload_finish(u);
        return;
    }
    int rc = g_app.vt->note_lock(c, u->note);
    if (rc < 0) {
        fail(u, 500, "internal", "the photo could not be recorded");
        upload_finish(u);
        return;
    }
    rc = g_app.vt->photo_list(c, u->user, u->note, have, MAX_PHOTOS_PER_NOTE, &n);
    if (rc == 0 && n == MAX_PHOTOS_PER_NOTE)
        rc = -ENOSPC;
    if (rc == 0)
        rc = g_app.vt->photo_create(c, u->user, &p, p.created_at, &p.id);
    if (rc == -ENOSPC) {
        fail(u, 409, "too_many_photos", "a note has at most 32 photos");
    } else if (rc == -ENOENT) {
        fail(u, 404, "not_found", "no such note");
    } else if (rc < 0) {
        fail(u, 500, "internal", "the photo could not be recorded");
    } else {
        photo_path(p.id, path, sizeof(path));
        if (rename(u->tmp, path) != 0) {
            g_app.vt->photo_delete(c, u->user, p.id);
            fail(u, 507, "storage", "cannot store the photo");
        } else {
            u->tmp[0] = '\0';
            char loc[64];
            snprintf(loc, sizeof(loc), "/v1/photos/%lld", (long long)p.id);
            appsrv_res_add_header(u->res, "Location", loc);
            reply_json(u->res, 201, photo_json(&p));
            live_photo_event(c, u->user, "photo.added", &p, u->device);
        }
    }
    g_app.vt->note_unlock(c, u->note);
    upload_finish(u);
}

static void upload_commit_job(store_conn_t *c, void *arg)
{
    upload_commit(c, arg);
    upload_unref(arg);
}

/* The body ended well: checks what came, then commits on a db thread. */
static void body_complete(upload_t *u)
{
    int parts = appsrv_multipart_finish(u->mp);
    if (parts < 0)
        fail(u, 400, "invalid_multipart", appsrv_multipart_error(u->mp));
    else if (!u->have_photo)
        fail(u, 422, "validation_failed", "no file part named \"photo\"");
    else if (sniff(u->magic, u->nmagic) == NULL)
        fail(u, 415, "unsupported_photo", "JPEG, PNG, HEIC or WebP only");
    if (u->status != 0) {
        upload_finish(u);
        return;
    }
    pthread_mutex_lock(&u->lock);
    bool wait_auth = u->auth == AUTH_PENDING, bad = u->auth == AUTH_BAD;
    u->ended = true; /* the auth job commits once it knows */
    if (!wait_auth && !bad)
        u->refs++;
    pthread_mutex_unlock(&u->lock);
    if (bad) {
        fail(u, 401, "unauthorized", "the token is unknown, expired or logged out");
        upload_finish(u);
    } else if (!wait_auth && dbpool_submit(g_app.pool, upload_commit_job, u) != 0) {
        upload_unref(u);
        fail(u, 503, "busy", "the server is busy; retry");
        upload_finish(u);
    }
}

static int on_body(appsrv_req_t *req, const void *data, size_t len, int end, void *ud)
{
    (void)req;
    upload_t *u = ud;
    if (end != 0) {
        if (end == -EMSGSIZE) {
            fail(u, 413, "too_large", "a photo is at most 25 MiB");
        } else if (end == -ESHUTDOWN) { /* the server is stopping: retry elsewhere */
            appsrv_res_add_header(u->res, "Retry-After", "1");
            fail(u, 503, "shutting_down", "the server is restarting; retry the upload");
        } else if (end < 0) {
            fail(u, 400, "bad_body", "the body ended badly");
        }
        if (end > 0 && u->status == 0)
            body_complete(u);
        else
            upload_finish(u);
        upload_unref(u); /* the body's reference */
        return 0;
    }
    pthread_mutex_lock(&u->lock);
    int auth = u->auth;
    u->paused = auth == AUTH_PENDING;
    pthread_mutex_unlock(&u->lock);
    if (auth == AUTH_BAD)
        fail(u, 401, "unauthorized", "the token is unknown, expired or logged out");
    int rc = u->status == 0 ? appsrv_multipart_feed(u->mp, data, len) : -1;
    if (rc < 0 && u->status == 0)
        fail(u, 400, "invalid_multipart", appsrv_multipart_error(u->mp));
    if (u->status != 0) {
        upload_finish(u);
        upload_unref(u); /* no more body calls after a negative return */
        return -1;
    }
    /* Until the token is known, no more than this piece is taken. */
    return auth == AUTH_PENDING ? APPSRV_PAUSE : 0;
}

/* A token the hook's cache did not know, checked while the body waits. */
static void upload_auth_job(store_conn_t *c, void *arg)
{
    upload_t *u = arg;
    int64_t user = 0;
    /* u->req may be gone already (an early error answered it): only u's own
     * copy of the token hash is read here. */
    bool ok = auth_lookup(c, u->token_hash, &user) == 0;
    pthread_mutex_lock(&u->lock);
    u->auth = ok ? AUTH_OK : AUTH_BAD;
    u->user = user;
    bool commit = u->ended && !u->finished;
    if (u->paused && !u->finished && !u->ended)
        appsrv_req_body_resume(u->req); /* only posts: fine under our lock */
    u->paused = false;
    pthread_mutex_unlock(&u->lock);
    if (commit && ok) {
        upload_commit(c, u);
    } else if (commit) {
        fail(u, 401, "unauthorized", "the token is unknown, expired or logged out");
        upload_finish(u);
    }
    upload_unref(u);
}

/* Before any body byte: a token, a size and a type that can work. */
static int upload_head(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    char hash[TOKEN_HASH_HEX + 1], boundary[80];
    if (!auth_token_hash(req, hash)) {
        appsrv_res_add_header(res, "WWW-Authenticate", "Bearer realm=\"photonotes\"");
        reply_error(res, 401, "unauthorized", "a bearer token is required");
        return 401;
    }
    appsrv_str_t cl = appsrv_req_header(req, "Content-Length");
    if (cl.ptr != NULL && (cl.len > 12 || strtoull(cl.ptr, NULL, 10) > MAX_UPLOAD)) {
        reply_error(res, 413, "too_large", "a photo is at most 25 MiB");
        return 413;
    }
    if (appsrv_multipart_boundary(appsrv_req_header(req, "Content-Type"), boundary,
                                  sizeof(boundary)) < 0) {
        reply_error(res, 415, "unsupported_media_type",
                    "send multipart/form-data with the photo in a part named \"photo\"");
        return 415;
    }
    return 0;
}

static int upload_handler(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    int rc;
    int64_t note;
    if (!param_id(req, res, "id", &note, &rc))
        return rc;
    upload_t *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return -ENOMEM;
    u->req = req, u->res = res, u->note = note, u->fd = -1, u->refs = 1;
    pthread_mutex_init(&u->lock, NULL);
    device_id(req, u->device);
    static const appsrv_multipart_handlers_t h = {
        .on_part = on_part, .on_data = on_data, .on_part_end = on_part_end, .max_parts = 8};
    rc = appsrv_multipart_new(&u->mp, appsrv_req_header(req, "Content-Type"), &h, u);
    if (rc < 0) {
        upload_unref(u);
        return reply_error(res, 415, "unsupported_media_type", "send multipart/form-data");
    }
    u->user = auth_cached_user(req);
    u->auth = u->user > 0 ? AUTH_OK : AUTH_PENDING;
    if (u->auth == AUTH_PENDING && !auth_token_hash(req, u->token_hash))
        u->auth = AUTH_BAD; /* on_head saw a token: not reached */
    if (u->auth == AUTH_PENDING) {
        u->refs++;
        if (dbpool_submit(g_app.pool, upload_auth_job, u) != 0) {
            u->refs--;
            upload_unref(u);
            appsrv_res_add_header(res, "Retry-After", "1");
            return reply_error(res, 503, "busy", "the server is busy; retry");
        }
    }
    appsrv_req_body_stream(req, on_body, u);
    return APPSRV_LATER;
}

/* ------------------------------------------------- download, list, delete */

static int run_download(store_conn_t *c, job_t *j)
{
    photo_t p;
    int rc = g_app.vt->photo_get(c, j->user, j->id, &p);
    if (rc == -ENOENT)
        return reply_error(j->res, 404, "not_found", "no such photo");
    if (rc < 0)
        return rc;
    char path[4096];
    photo_path(p.id, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return reply_error(j->res, 404, "not_found", "the photo file is gone");
    /* Private to the user; may be kept, revalidated with the ETag. */
    appsrv_res_add_header(j->res, "Cache-Control", "private, no-cache");
    return appsrv_res_file_fd(j->res, j->req, fd, p.type); /* closes fd */
}

static int run_list(store_conn_t *c, job_t *j)
{
    photo_t p[MAX_PHOTOS_PER_NOTE];
    size_t n = 0;
    note_t note = {0};
    int rc = g_app.vt->note_get(c, j->user, j->id, &note);
    if (rc == -ENOENT)
        return reply_error(j->res, 404, "not_found", "no such note");
    note_clear(&note);
    if (rc == 0)
        rc = g_app.vt->photo_list(c, j->user, j->id, p, MAX_PHOTOS_PER_NOTE, &n);
    if (rc < 0)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, photo_json(&p[i]));
    return reply_json(j->res, 200, json_pack("{s:o}", "photos", arr));
}

static int run_delete(store_conn_t *c, job_t *j)
{
    photo_t p;
    int rc = g_app.vt->photo_get(c, j->user, j->id, &p);
    if (rc == 0)
        rc = g_app.vt->photo_delete(c, j->user, j->id);
    if (rc == -ENOENT)
        return reply_error(j->res, 404, "not_found", "no such photo");
    if (rc < 0)
        return rc;
    photo_unlink(p.id);
    live_photo_event(c, j->user, "photo.deleted", &p, j->device);
    return appsrv_res_set_status(j->res, 204);
}

static int id_route(appsrv_req_t *req, appsrv_res_t *res, const char *param, job_run_fn run)
{
    int rc;
    int64_t id;
    if (!param_id(req, res, param, &id, &rc))
        return rc;
    job_t *j = job_new(req, res, run, true);
    if (j == NULL)
        return -ENOMEM;
    j->id = id;
    return job_defer(j);
}

static int on_download(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    return id_route(req, res, "pid", run_download);
}

static int on_list(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    return id_route(req, res, "id", run_list);
}

static int on_delete(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    return id_route(req, res, "pid", run_delete);
}

int photos_routes(appsrv_server_t *srv)
{
    if (mkdir(g_app.photo_dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    const appsrv_route_opts_t up = {.on_head = upload_head, .max_body = MAX_UPLOAD,
                                    .stream_body = true};
    int rc = appsrv_route_ex(srv, "POST", "/v1/notes/:id/photos", upload_handler, &up, NULL);
    if (rc == 0)
        rc = appsrv_route(srv, "GET", "/v1/notes/:id/photos", on_list, NULL);
    if (rc == 0)
        rc = appsrv_route(srv, "GET", "/v1/photos/:pid", on_download, NULL);
    if (rc == 0)
        rc = appsrv_route(srv, "DELETE", "/v1/photos/:pid", on_delete, NULL);
    return rc;
}
