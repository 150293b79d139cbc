/* SPDX-License-Identifier: MIT */
/*
 * main.c - photonotes: a backend for a notes app with live sync across a
 * user's devices, on libappsrv. Owns the command line, the server set-up
 * (HTTPS with appsrv_tls_new, CORS, JSON errors, access log, /metrics,
 * /health, /ready), signals, and the order of start and stop. Calls every
 * other part: dbpool.c (database threads over store.h), api_auth.c,
 * api_notes.c, live.c. See README.md for the API.
 *
 * Usage: photonotes [--host H] [--port P] [--db URL] [--tls-cert F --tls-key F] ...
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"

struct app g_app;

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const store_vt *store_select(const char *url, const char **path)
{
    bool pg = strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0 ||
              strstr(url, "dbname=") != NULL;
    *path = url;
    if (!pg) {
        if (strncmp(url, "sqlite:", 7) == 0)
            *path = url + 7;
        return &store_sqlite_vt;
    }
#ifdef HAVE_PG
    return &store_pg_vt;
#else
    return NULL;
#endif
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: photonotes [options]\n"
            "  --host HOST           address to listen on (127.0.0.1)\n"
            "  --port PORT           port (8443; 0: a free one)\n"
            "  --db URL              SQLite file (photonotes.db) or postgres://...\n"
            "                        (default: $PHOTONOTES_DB)\n"
            "  --tls-cert FILE       PEM certificate chain: serve HTTPS\n"
            "  --tls-key FILE        its PEM private key\n"
            "  --cors ORIGIN         allow a web client from ORIGIN (repeatable)\n"
            "  --access-log FILE     access log (\"-\": stderr)\n"
            "  --log-format FMT      combined (default) or json\n"
            "  --threads N           event-loop threads (default: CPUs)\n"
            "  --db-threads N        database threads (4)\n"
            "  --session-ttl SECONDS bearer token lifetime (2592000: 30 days)\n"
            "  --instance NAME       sent as X-Instance (to tell instances apart)\n"
            "  --photo-dir DIR       photo files (photos; shared by all instances)\n"
            "  --drain-delay MS      on SIGTERM, /ready answers 503 and serving goes on\n"
            "                        this long before the drain (0)\n"
            "  --no-gzip             do not gzip JSON answers and event streams\n");
}

static appsrv_server_t *g_srv;
static void on_signal(int sig)
{
    (void)sig;
    appsrv_server_stop(g_srv); /* async-signal-safe */
}

static void add_instance(const appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req;
    appsrv_res_add_header(res, "X-Instance", user);
}

static int text(appsrv_res_t *res, int status, const char *body)
{
    appsrv_res_set_status(res, status);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    return appsrv_res_set_body(res, body, strlen(body));
}

static int on_health(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    return text(res, 200, "ok\n");
}

/* Ready = take new work: 503 from the stop on, while --drain-delay keeps
 * serving, so a load balancer moves clients away before the listener
 * closes. (The database is checked at start-up.) */
static int on_ready(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    if (appsrv_server_draining(g_app.srv))
        return text(res, 503, "draining\n");
    return text(res, 200, "ready\n");
}

#define CHECK(call)                                                                           \
    do {                                                                                      \
        int rc_ = (call);                                                                     \
        if (rc_ < 0) {                                                                        \
            fprintf(stderr, "photonotes: %s: %s\n", #call, appsrv_strerror(rc_));             \
            goto out;                                                                         \
        }                                                                                     \
    } while (0)

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *db = getenv("PHOTONOTES_DB");
    const char *cert = NULL, *key = NULL, *access_log = NULL;
    const char *cors[16];
    size_t ncors = 0;
    int port = 8443, threads = 0, db_threads = 4, drain_delay = 0;
    bool gzip = true;
    long session_ttl = 30 * 86400;
    appsrv_log_format_t log_format = APPSRV_LOG_COMBINED;
    enum { O_HOST = 256, O_PORT, O_DB, O_CERT, O_KEY, O_CORS, O_LOG, O_LOGFMT, O_THREADS,
           O_DBTHREADS, O_TTL, O_INSTANCE, O_PHOTOS, O_DRAIN, O_NOGZIP, O_HELP };
    static const struct option opts[] = {
        {"host", required_argument, NULL, O_HOST},
        {"port", required_argument, NULL, O_PORT},
        {"db", required_argument, NULL, O_DB},
        {"tls-cert", required_argument, NULL, O_CERT},
        {"tls-key", required_argument, NULL, O_KEY},
        {"cors", required_argument, NULL, O_CORS},
        {"access-log", required_argument, NULL, O_LOG},
        {"log-format", required_argument, NULL, O_LOGFMT},
        {"threads", required_argument, NULL, O_THREADS},
        {"db-threads", required_argument, NULL, O_DBTHREADS},
        {"session-ttl", required_argument, NULL, O_TTL},
        {"instance", required_argument, NULL, O_INSTANCE},
        {"photo-dir", required_argument, NULL, O_PHOTOS},
        {"drain-delay", required_argument, NULL, O_DRAIN},
        {"no-gzip", no_argument, NULL, O_NOGZIP},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (o) {
        case O_HOST: host = optarg; break;
        case O_PORT: port = atoi(optarg); break;
        case O_DB: db = optarg; break;
        case O_CERT: cert = optarg; break;
        case O_KEY: key = optarg; break;
        case O_CORS:
            if (ncors == sizeof(cors) / sizeof(cors[0])) {
                fprintf(stderr, "photonotes: at most 16 --cors origins\n");
                return 2;
            }
            cors[ncors++] = optarg;
            break;
        case O_LOG: access_log = optarg; break;
        case O_LOGFMT:
            if (strcmp(optarg, "json") == 0)
                log_format = APPSRV_LOG_JSON;
            else if (strcmp(optarg, "combined") != 0) {
                fprintf(stderr, "photonotes: --log-format: combined or json\n");
                return 2;
            }
            break;
        case O_THREADS: threads = atoi(optarg); break;
        case O_DBTHREADS: db_threads = atoi(optarg); break;
        case O_TTL: session_ttl = atol(optarg); break;
        case O_INSTANCE: g_app.instance = optarg; break;
        case O_PHOTOS: g_app.photo_dir = optarg; break;
        case O_DRAIN: drain_delay = atoi(optarg); break;
        case O_NOGZIP: gzip = false; break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || port < 0 || port > 65535 || db_threads < 1 || db_threads > 64 ||
        session_ttl < 1 || threads < 0 || drain_delay < 0 || (cert == NULL) != (key == NULL)) {
        usage(stderr);
        return 2;
    }
    if (db == NULL || db[0] == '\0')
        db = "photonotes.db";
    if (g_app.photo_dir == NULL)
        g_app.photo_dir = "photos";
    if (sodium_init() < 0) {
        fprintf(stderr, "photonotes: libsodium failed to start\n");
        return 1;
    }
    const char *path;
    g_app.vt = store_select(db, &path);
    if (g_app.vt == NULL) {
        fprintf(stderr, "photonotes: %s: built without PostgreSQL (PG=no)\n", db);
        return 2;
    }
    g_app.db_url = path;
    g_app.session_ttl_ms = (int64_t)session_ttl * 1000;

    int status = 1;
    appsrv_tls_t *tls = NULL;
    dbpool_t *pool = NULL;
    bool listening = false;
    int rc = dbpool_start(&pool, g_app.vt, path, db_threads, 1024);
    if (rc < 0) {
        fprintf(stderr, "photonotes: database %s: %s\n", g_app.vt->name, strerror(-rc));
        return 1;
    }
    if (g_app.vt->listen_start != NULL &&
        (rc = g_app.vt->listen_start(path, live_deliver)) < 0) {
        fprintf(stderr, "photonotes: listener: %s\n", strerror(-rc));
        dbpool_stop(pool);
        return 1;
    }
    listening = g_app.vt->listen_start != NULL;

    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    if (threads > 0)
        cfg.threads = threads;
    cfg.max_body = 64 * 1024; /* JSON only, for now */
    cfg.request_ids = true;
    cfg.drain_delay_ms = drain_delay;
    CHECK(appsrv_server_new(&g_srv, &cfg));
    g_app.srv = g_srv;
    if (ncors > 0) {
        appsrv_cors_t c = {.origins = cors, .norigins = ncors, .max_age = 600,
                           .expose_headers = "ETag, Location, X-Request-ID",
                           .headers = "Authorization, Content-Type, If-Match, If-None-Match, X-Device-ID"};
        CHECK(appsrv_cors_use(g_srv, &c));
    }
    CHECK(appsrv_set_error_responder(g_srv, error_responder, NULL));
    if (g_app.instance != NULL)
        CHECK(appsrv_use(g_srv, NULL, add_instance, (void *)g_app.instance));
    CHECK(g_app.auth_slot = appsrv_use(g_srv, auth_hook, NULL, NULL));
    /* JSON and event streams; photos (images) are never compressed. */
    if (gzip && appsrv_gzip_available())
        CHECK(appsrv_gzip_use(g_srv, NULL));
    CHECK(appsrv_route(g_srv, "GET", "/health", on_health, NULL));
    CHECK(appsrv_route(g_srv, "GET", "/ready", on_ready, NULL));
    CHECK(appsrv_route_metrics(g_srv, "/metrics"));
    CHECK(auth_routes(g_srv));
    CHECK(notes_routes(g_srv));
    CHECK(live_routes(g_srv));
    CHECK(photos_routes(g_srv));
    if (access_log != NULL && strcmp(access_log, "-") == 0)
        CHECK(appsrv_access_log_fd(g_srv, STDERR_FILENO, log_format));
    else if (access_log != NULL)
        CHECK(appsrv_access_log_file(g_srv, access_log, log_format));
    if (cert != NULL) {
        CHECK(appsrv_tls_new(&tls, NULL, cert, key, NULL));
        CHECK(rc = appsrv_listen_https(g_srv, host, port, tls));
    } else {
        CHECK(rc = appsrv_listen_http(g_srv, host, port));
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "photonotes: listening on %s://%s%s%s:%d (db: %s)\n",
            tls != NULL ? "https" : "http", strchr(host, ':') ? "[" : "", host,
            strchr(host, ':') ? "]" : "", rc, g_app.vt->name);
    CHECK(appsrv_server_run(g_srv));
    status = 0;
out:
    appsrv_server_free(g_srv); /* every response and WebSocket is finished */
    if (listening)
        g_app.vt->listen_stop();
    dbpool_stop(pool);
    appsrv_tls_free(tls);
    auth_cache_free();
    return status;
}
