/* SPDX-License-Identifier: MIT */
/*
 * json.c - JSON answers and request jobs. Owns the error shape every
 * answer of photonotes uses ({"error":{"status","code","message"}}, also
 * for the library's own 404/405/413... through error_responder), the note
 * representation, body parsing (jansson), and the job plumbing: a handler
 * hands a job to dbpool.c, whose thread resolves the user (api_auth.c),
 * runs the job and finishes the deferred response with appsrv_res_send().
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"

static void free_text(void *data, void *ud)
{
    (void)ud;
    free(data);
}

int reply_json(appsrv_res_t *res, int status, json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL)
        return -ENOMEM;
    int rc = appsrv_res_set_status(res, status);
    if (rc == 0)
        rc = appsrv_res_add_header(res, "Content-Type", "application/json");
    if (rc == 0)
        rc = appsrv_res_add_header(res, "Cache-Control", "no-store");
    if (rc < 0) {
        free(text);
        return rc;
    }
    return appsrv_res_set_body_ref(res, text, strlen(text), free_text, NULL);
}

static json_t *error_object(int status, const char *code, const char *message)
{
    json_t *e = json_pack("{s:i, s:s, s:s}", "status", status, "code", code, "message",
                          message);
    if (e == NULL) /* message not UTF-8: leave it out */
        e = json_pack("{s:i, s:s}", "status", status, "code", code);
    return e;
}

int reply_error(appsrv_res_t *res, int status, const char *code, const char *message)
{
    return reply_json(res, status, json_pack("{s:o}", "error", error_object(status, code, message)));
}

int reply_invalid(appsrv_res_t *res, json_t *fields)
{
    json_t *e = error_object(422, "validation_failed", "some fields are invalid");
    if (e != NULL)
        json_object_set_new(e, "fields", fields);
    else
        json_decref(fields);
    return reply_json(res, 422, json_pack("{s:o}", "error", e));
}

int error_responder(const appsrv_error_t *err, appsrv_res_t *res, void *user)
{
    (void)user;
    json_t *j = json_pack("{s:o}", "error", error_object(err->status, err->code, err->message));
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL)
        return -ENOMEM;
    int rc = appsrv_res_add_header(res, "Content-Type", "application/json");
    if (rc == 0)
        rc = appsrv_res_set_body(res, text, strlen(text));
    free(text);
    return rc;
}

static bool is_json_type(appsrv_str_t ct)
{
    static const char type[] = "application/json";
    const size_t n = sizeof(type) - 1;
    return ct.ptr != NULL && ct.len >= n && strncasecmp(ct.ptr, type, n) == 0 &&
           (ct.len == n || ct.ptr[n] == ';' || ct.ptr[n] == ' ');
}

void parse_json_body(appsrv_req_t *req, appsrv_res_t *res, json_t **out, int *rc)
{
    *out = NULL;
    if (!is_json_type(appsrv_req_header(req, "Content-Type"))) {
        *rc = reply_error(res, 415, "unsupported_media_type", "send Content-Type: application/json");
        return;
    }
    appsrv_str_t in = appsrv_req_body(req);
    json_error_t jerr;
    json_t *root = json_loadb(in.ptr, in.len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        *rc = reply_error(res, 400, "invalid_json",
                          root == NULL ? jerr.text : "the body must be a JSON object");
        return;
    }
    *out = root;
}

bool param_id(appsrv_req_t *req, appsrv_res_t *res, const char *name, int64_t *v, int *rc)
{
    appsrv_str_t s = appsrv_req_param(req, name);
    int64_t x = 0;
    bool ok = s.ptr != NULL && s.len > 0 && s.len <= 16 && s.ptr[0] != '0';
    for (size_t i = 0; ok && i < s.len; i++) {
        ok = s.ptr[i] >= '0' && s.ptr[i] <= '9';
        x = x * 10 + (s.ptr[i] - '0');
    }
    if (ok && x <= 9007199254740991LL) {
        *v = x;
        return true;
    }
    *rc = reply_error(res, 404, "not_found", "no such note");
    return false;
}

json_t *note_json(const note_t *n)
{
    return json_pack("{s:I, s:s, s:s, s:I, s:I, s:I}", "id", (json_int_t)n->id, "title",
                     n->title, "body", n->body, "version", (json_int_t)n->version,
                     "created_at", (json_int_t)n->created_at, "updated_at",
                     (json_int_t)n->updated_at);
}

void note_clear(note_t *n)
{
    free(n->title);
    free(n->body);
    n->title = n->body = NULL;
}

/* ----------------------------------------------------------------- jobs */

job_t *job_new(appsrv_req_t *req, appsrv_res_t *res, job_run_fn run, bool need_user)
{
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->req = req, j->res = res, j->run = run, j->need_user = need_user;
    j->if_version = -1;
    device_id(req, j->device);
    return j;
}

void device_id(const appsrv_req_t *req, char out[65])
{
    appsrv_str_t dev = appsrv_req_header(req, "X-Device-ID");
    out[0] = '\0';
    if (dev.ptr == NULL || dev.len > 64)
        return;
    for (size_t i = 0; i < dev.len; i++) {
        char ch = dev.ptr[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return;
    }
    memcpy(out, dev.ptr, dev.len);
    out[dev.len] = '\0';
}

static void job_main(store_conn_t *c, void *arg)
{
    job_t *j = arg;
    int rc = 0;
    if (!j->need_user || auth_resolve(c, j))
        rc = j->run(c, j);
    if (rc < 0) /* a failure inside run(): the generic answer */
        reply_error(j->res, 500, "internal", "the server could not do that");
    json_decref(j->in);
    if (rc != JOB_KEEP)
        appsrv_res_send(j->res); /* APPSRV_ECANCELED: the client left; fine */
    free(j);
}

int job_defer(job_t *j)
{
    int rc = dbpool_submit(g_app.pool, job_main, j);
    if (rc == 0)
        return APPSRV_LATER;
    appsrv_res_t *res = j->res;
    json_decref(j->in);
    free(j);
    appsrv_res_add_header(res, "Retry-After", "1");
    return reply_error(res, 503, "busy", "the server is busy; retry");
}
