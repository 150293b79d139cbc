/* SPDX-License-Identifier: MIT */
/*
 * toolkit_host.c - the host of the application-toolkit benchmarks
 * (bench/toolkit.sh): one worker serving GET /plaintext ("Hello, World!")
 * and GET /data.json (a 16 KiB JSON document, the same bytes as the file
 * toolkit.sh gives nginx), with what the flags ask for:
 *   --hooks  the CORS hook (one allowed origin), request IDs, and a
 *            counting after hook: three hooks on every request
 *   --gzip   appsrv_gzip_use() at --level N (default 6)
 * Prints "PORT <n>" on stdout once listening; stops on SIGTERM/SIGINT.
 *
 * usage: toolkit_host -j JSON_FILE [--hooks] [--gzip] [--level N]
 */
#include <appsrv.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static appsrv_server_t *g_srv;
static char *g_json;
static size_t g_json_len;
static atomic_ulong g_count;

static int h_plain(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    return appsrv_res_set_body_ref(res, "Hello, World!", 13, NULL, NULL);
}

static int h_json(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "application/json");
    return appsrv_res_set_body_ref(res, g_json, g_json_len, NULL, NULL);
}

static void count_after(const appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)res, (void)user;
    atomic_fetch_add_explicit(&g_count, 1, memory_order_relaxed);
}

static void on_signal(int sig)
{
    (void)sig;
    appsrv_server_stop(g_srv);
}

static int load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    g_json = malloc(n > 0 ? (size_t)n : 1);
    g_json_len = g_json != NULL && n > 0 ? fread(g_json, 1, (size_t)n, f) : 0;
    fclose(f);
    return g_json_len == (size_t)n ? 0 : -1;
}

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_ < 0) {                                                                             \
            fprintf(stderr, "toolkit_host: %s: %s\n", #x, appsrv_strerror(rc_));                  \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    const char *json = NULL;
    bool hooks = false, gzip = false;
    int level = 6;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-j") == 0 && i + 1 < argc)
            json = argv[++i];
        else if (strcmp(argv[i], "--hooks") == 0)
            hooks = true;
        else if (strcmp(argv[i], "--gzip") == 0)
            gzip = true;
        else if (strcmp(argv[i], "--level") == 0 && i + 1 < argc)
            level = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: toolkit_host -j JSON_FILE [--hooks] [--gzip] [--level N]\n");
            return 2;
        }
    }
    if (json == NULL || load(json) < 0) {
        fprintf(stderr, "toolkit_host: cannot read the JSON file (-j)\n");
        return 2;
    }
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cfg.threads = 1;
    cfg.max_conns = 20000;
    cfg.request_ids = hooks;
    CHECK(appsrv_server_new(&g_srv, &cfg));
    CHECK(appsrv_route(g_srv, "GET", "/plaintext", h_plain, NULL));
    CHECK(appsrv_route(g_srv, "GET", "/data.json", h_json, NULL));
    if (hooks) {
        const char *origins[] = {"http://app.example"};
        appsrv_cors_t c = {.origins = origins, .norigins = 1, .max_age = 600};
        CHECK(appsrv_cors_use(g_srv, &c));
        CHECK(appsrv_use(g_srv, NULL, count_after, NULL));
    }
    if (gzip) {
        appsrv_gzip_opts_t o = {.level = level};
        CHECK(appsrv_gzip_use(g_srv, &o));
    }
    int port = appsrv_listen_http(g_srv, "127.0.0.1", 0);
    CHECK(port);
    printf("PORT %d\n", port);
    fflush(stdout);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    int rc = appsrv_server_run(g_srv);
    appsrv_server_free(g_srv);
    free(g_json);
    fprintf(stderr, "toolkit_host: %lu requests counted by the after hook\n",
            (unsigned long)atomic_load(&g_count));
    return rc < 0 ? 1 : 0;
}
