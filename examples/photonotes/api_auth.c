/* SPDX-License-Identifier: MIT */
/*
 * api_auth.c - accounts and sessions. Owns POST /v1/auth/register,
 * /v1/auth/login, /v1/auth/logout, the auth hook (appsrv_use) and this
 * instance's session cache. Passwords: libsodium crypto_pwhash_str
 * (Argon2id, INTERACTIVE limits), hashed and checked on the database
 * threads (about 0.1 s and 64 MiB each). Tokens: 32 random bytes sent as
 * 64 hex digits; only their SHA-256 is stored. The hook runs on the loop:
 * a token in the cache sets the user in the request's data slot; one that
 * is not is looked up by the job on a database thread (auth_resolve).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"

#define TOKEN_BYTES 32
#define CACHE_BUCKETS 1024
#define CACHE_MAX_PER_BUCKET 16
#define CACHE_TTL_MS 60000 /* a logout elsewhere reaches us by NOTIFY; this bounds it anyway */
#define PENDING ((void *)2) /* slot value: a token to check on a db thread */

/* ------------------------------------------------------- session cache */

typedef struct centry {
    char hash[TOKEN_HASH_HEX + 1];
    int64_t user, until_ms;
    struct centry *next;
} centry_t;

static struct {
    pthread_mutex_t lock;
    centry_t *b[CACHE_BUCKETS];
} g_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static unsigned bucket_of(const char *hash)
{
    unsigned v = 0;
    for (int i = 0; i < 8; i++)
        v = v * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
    return v % CACHE_BUCKETS;
}

static int64_t cache_get(const char *hash)
{
    int64_t user = 0, now = now_ms();
    pthread_mutex_lock(&g_cache.lock);
    for (centry_t *e = g_cache.b[bucket_of(hash)]; e != NULL; e = e->next)
        if (strcmp(e->hash, hash) == 0 && e->until_ms > now)
            user = e->user;
    pthread_mutex_unlock(&g_cache.lock);
    return user;
}

static void cache_put(const char *hash, int64_t user, int64_t expires_ms)
{
    centry_t *n = malloc(sizeof(*n));
    if (n == NULL)
        return; /* a cache: fine without */
    memcpy(n->hash, hash, sizeof(n->hash));
    n->user = user;
    int64_t cap = now_ms() + CACHE_TTL_MS;
    n->until_ms = expires_ms < cap ? expires_ms : cap;
    pthread_mutex_lock(&g_cache.lock);
    centry_t **pp = &g_cache.b[bucket_of(hash)];
    int count = 0;
    for (centry_t **q = pp; *q != NULL;) { /* drop the same hash and the overflow */
        if (strcmp((*q)->hash, hash) == 0 || ++count >= CACHE_MAX_PER_BUCKET) {
            centry_t *dead = *q;
            *q = dead->next;
            free(dead);
        } else {
            q = &(*q)->next;
        }
    }
    n->next = *pp;
    *pp = n;
    pthread_mutex_unlock(&g_cache.lock);
}

void auth_forget(const char *hash)
{
    pthread_mutex_lock(&g_cache.lock);
    for (centry_t **q = &g_cache.b[bucket_of(hash)]; *q != NULL;) {
        if (strcmp((*q)->hash, hash) == 0) {
            centry_t *dead = *q;
            *q = dead->next;
            free(dead);
        } else {
            q = &(*q)->next;
        }
    }
    pthread_mutex_unlock(&g_cache.lock);
}

void auth_cache_free(void)
{
    for (int i = 0; i < CACHE_BUCKETS; i++)
        while (g_cache.b[i] != NULL) {
            centry_t *e = g_cache.b[i];
            g_cache.b[i] = e->next;
            free(e);
        }
}

/* --------------------------------------------------------------- tokens */

static bool hex_token(const char *p, size_t len, unsigned char raw[TOKEN_BYTES])
{
    size_t n = 0;
    return len == 2 * TOKEN_BYTES &&
           sodium_hex2bin(raw, TOKEN_BYTES, p, len, NULL, &n, NULL) == 0 && n == TOKEN_BYTES;
}

/* Finds the token: "Authorization: Bearer T"; on the live endpoints also
 * a WebSocket subprotocol "bearer.T" or the query's token=T (browsers
 * cannot set headers on WebSocket or EventSource). Writes the SHA-256 hex
 * of the token to hash; false when none is there or it is malformed. */
static bool token_hash(const appsrv_req_t *req, char hash[TOKEN_HASH_HEX + 1])
{
    unsigned char raw[TOKEN_BYTES], digest[crypto_hash_sha256_BYTES];
    bool found = false;
    appsrv_str_t h = appsrv_req_header(req, "Authorization");
    if (h.ptr != NULL && h.len > 7 && strncasecmp(h.ptr, "Bearer ", 7) == 0)
        found = hex_token(h.ptr + 7, h.len - 7, raw);
    appsrv_str_t path = appsrv_req_path(req);
    bool live = (path.len == 8 && memcmp(path.ptr, "/v1/live", 8) == 0) ||
                (path.len == 10 && memcmp(path.ptr, "/v1/events", 10) == 0);
    if (!found && live) {
        appsrv_str_t p = appsrv_req_header(req, "Sec-WebSocket-Protocol");
        for (size_t i = 0; p.ptr != NULL && i < p.len && !found; i++) {
            if (i + 7 <= p.len && memcmp(p.ptr + i, "bearer.", 7) == 0 &&
                (i == 0 || p.ptr[i - 1] == ' ' || p.ptr[i - 1] == ','))
                found = i + 7 + 2 * TOKEN_BYTES <= p.len &&
                        hex_token(p.ptr + i + 7, 2 * TOKEN_BYTES, raw);
        }
    }
    if (!found && live) {
        char q[2 * TOKEN_BYTES + 2];
        ssize_t n = appsrv_req_query_param(req, "token", q, sizeof(q));
        found = n > 0 && hex_token(q, (size_t)n, raw);
    }
    if (!found)
        return false;
    crypto_hash_sha256(digest, raw, sizeof(raw));
    sodium_bin2hex(hash, TOKEN_HASH_HEX + 1, digest, sizeof(digest));
    return true;
}

static int reply_401(appsrv_res_t *res, const char *message)
{
    int rc = appsrv_res_add_header(res, "WWW-Authenticate", "Bearer realm=\"photonotes\"");
    return rc < 0 ? rc : reply_error(res, 401, "unauthorized", message);
}

static bool is_public(appsrv_str_t path)
{
    static const char *const open[] = {"/health", "/ready", "/metrics", "/v1/auth/register",
                                       "/v1/auth/login"};
    for (size_t i = 0; i < sizeof(open) / sizeof(open[0]); i++)
        if (path.len == strlen(open[i]) && memcmp(path.ptr, open[i], path.len) == 0)
            return true;
    return false;
}

int auth_hook(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    if (is_public(appsrv_req_path(req)))
        return 0;
    char hash[TOKEN_HASH_HEX + 1];
    if (!token_hash(req, hash)) {
        int rc = reply_401(res, "a bearer token is required");
        return rc < 0 ? rc : APPSRV_DONE;
    }
    int64_t uid = cache_get(hash);
    /* The user id, tagged so that 0 stays "no data": (id << 1) | 1. */
    appsrv_req_set_data(req, g_app.auth_slot,
                        uid > 0 ? (void *)(uintptr_t)(((uint64_t)uid << 1) | 1) : PENDING);
    return 0;
}

int64_t auth_cached_user(const appsrv_req_t *req)
{
    uintptr_t v = (uintptr_t)appsrv_req_data(req, g_app.auth_slot);
    return (v & 1) ? (int64_t)(v >> 1) : 0;
}

bool auth_token_hash(const appsrv_req_t *req, char hash[TOKEN_HASH_HEX + 1])
{
    return token_hash(req, hash);
}

int auth_lookup(store_conn_t *c, const char *hash, int64_t *user)
{
    int64_t expires = 0;
    int rc = g_app.vt->session_find(c, hash, now_ms(), user, &expires);
    if (rc == 0)
        cache_put(hash, *user, expires);
    return rc;
}

bool auth_resolve(store_conn_t *c, job_t *j)
{
    j->user = auth_cached_user(j->req);
    if (j->user > 0)
        return true;
    char hash[TOKEN_HASH_HEX + 1];
    int rc = token_hash(j->req, hash) ? auth_lookup(c, hash, &j->user) : -ENOENT;
    if (rc == 0)
        return true;
    if (rc == -ENOENT)
        reply_401(j->res, "the token is unknown, expired or logged out");
    else
        reply_error(j->res, 500, "internal", "the session store failed");
    return false;
}

/* ------------------------------------------------------------- handlers */

static json_t *check_credentials(json_t *in, const char **name, const char **pass)
{
    json_t *fields = json_object();
    *name = json_string_value(json_object_get(in, "username"));
    *pass = json_string_value(json_object_get(in, "password"));
    size_t nl = *name ? strlen(*name) : 0, pl = *pass ? strlen(*pass) : 0;
    bool name_ok = nl >= 3 && nl <= 32;
    for (size_t i = 0; name_ok && i < nl; i++) {
        char ch = (*name)[i];
        name_ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                  ch == '-' || ch == '.';
    }
    if (*name == NULL)
        json_object_set_new(fields, "username", json_string("required"));
    else if (!name_ok)
        json_object_set_new(fields, "username",
                            json_string("3 to 32 of a-z, 0-9, '_', '-', '.'"));
    if (*pass == NULL)
        json_object_set_new(fields, "password", json_string("required"));
    else if (pl < 8 || pl > 1024)
        json_object_set_new(fields, "password", json_string("8 to 1024 bytes"));
    if (json_object_size(fields) == 0) {
        json_decref(fields);
        return NULL;
    }
    return fields;
}

/* Register and login: parse and check {"username","password"} on the
 * loop (400/415/422 at once), then run on a database thread. */
static int credentials_handler(appsrv_req_t *req, appsrv_res_t *res, job_run_fn run)
{
    const char *name, *pass;
    json_t *in;
    int rc;
    parse_json_body(req, res, &in, &rc);
    if (in == NULL)
        return rc;
    json_t *bad = check_credentials(in, &name, &pass);
    job_t *j = bad == NULL ? job_new(req, res, run, false) : NULL;
    if (j == NULL) {
        json_decref(in);
        return bad != NULL ? reply_invalid(res, bad) : -ENOMEM;
    }
    j->in = in;
    return job_defer(j);
}

static json_t *user_json(int64_t id, const char *name)
{
    return json_pack("{s:I, s:s}", "id", (json_int_t)id, "username", name);
}

static int run_register(store_conn_t *c, job_t *j)
{
    const char *name = json_string_value(json_object_get(j->in, "username"));
    const char *pass = json_string_value(json_object_get(j->in, "password"));
    char hash[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(hash, pass, strlen(pass), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return -ENOMEM;
    int64_t id;
    int rc = g_app.vt->user_create(c, name, hash, now_ms(), &id);
    if (rc == -EEXIST)
        return reply_error(j->res, 409, "username_taken", "that username is taken");
    if (rc < 0)
        return rc;
    return reply_json(j->res, 201, json_pack("{s:o}", "user", user_json(id, name)));
}

/* A hash of a random password, checked when the user does not exist, so
 * that the answer takes as long as for a wrong password. */
static char g_dummy[crypto_pwhash_STRBYTES];
static pthread_once_t g_dummy_once = PTHREAD_ONCE_INIT;
static void make_dummy(void)
{
    unsigned char pw[16];
    randombytes_buf(pw, sizeof(pw));
    if (crypto_pwhash_str(g_dummy, (const char *)pw, sizeof(pw),
                          crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        g_dummy[0] = '\0';
}

static int run_login(store_conn_t *c, job_t *j)
{
    const char *name = json_string_value(json_object_get(j->in, "username"));
    const char *pass = json_string_value(json_object_get(j->in, "password"));
    char stored[MAX_PWHASH + 1];
    int64_t id = 0;
    int rc = g_app.vt->user_find(c, name, &id, stored);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    if (rc == -ENOENT) {
        pthread_once(&g_dummy_once, make_dummy);
        snprintf(stored, sizeof(stored), "%s", g_dummy);
    }
    bool ok = crypto_pwhash_str_verify(stored, pass, strlen(pass)) == 0 && rc == 0;
    if (!ok)
        return reply_error(j->res, 401, "invalid_credentials", "wrong username or password");

    unsigned char raw[TOKEN_BYTES], digest[crypto_hash_sha256_BYTES];
    char token[2 * TOKEN_BYTES + 1], hash[TOKEN_HASH_HEX + 1];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(token, sizeof(token), raw, sizeof(raw));
    crypto_hash_sha256(digest, raw, sizeof(raw));
    sodium_bin2hex(hash, sizeof(hash), digest, sizeof(digest));
    sodium_memzero(raw, sizeof(raw));
    int64_t now = now_ms(), expires = now + g_app.session_ttl_ms;
    rc = g_app.vt->session_create(c, id, hash, now, expires);
    if (rc < 0)
        return rc;
    cache_put(hash, id, expires);
    return reply_json(j->res, 200,
                      json_pack("{s:s, s:s, s:I, s:o}", "token", token, "token_type", "Bearer",
                                "expires_at", (json_int_t)expires, "user",
                                user_json(id, name)));
}

static int on_register(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    return credentials_handler(req, res, run_register);
}

static int on_login(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    return credentials_handler(req, res, run_login);
}

static int run_logout(store_conn_t *c, job_t *j)
{
    char hash[TOKEN_HASH_HEX + 1], note[TOKEN_HASH_HEX + 3];
    if (!token_hash(j->req, hash))
        return -EINVAL; /* the hook let it through: cannot happen */
    int rc = g_app.vt->session_delete(c, hash);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    auth_forget(hash);
    snprintf(note, sizeof(note), "L %s", hash);
    if (g_app.vt->notify != NULL) /* the other instances drop it too */
        g_app.vt->notify(c, note);
    return appsrv_res_set_status(j->res, 204);
}

static int on_logout(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)user;
    job_t *j = job_new(req, res, run_logout, true);
    return j != NULL ? job_defer(j) : -ENOMEM;
}

int auth_routes(appsrv_server_t *srv)
{
    int rc = appsrv_route(srv, "POST", "/v1/auth/register", on_register, NULL);
    if (rc == 0)
        rc = appsrv_route(srv, "POST", "/v1/auth/login", on_login, NULL);
    if (rc == 0)
        rc = appsrv_route(srv, "POST", "/v1/auth/logout", on_logout, NULL);
    return rc;
}
