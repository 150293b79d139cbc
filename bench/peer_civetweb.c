/* SPDX-License-Identifier: MIT */
/*
 * peer_civetweb.c - benchmark peer on civetweb with ONE worker thread.
 * GET /plaintext -> "Hello, World!" text/plain; POST /echo -> the body.
 *
 * civetweb is thread-per-connection: a worker serves one connection until
 * it closes. With one worker, a kept-alive connection would hold the only
 * worker and starve every other client, so keep-alive stays off (civetweb's
 * own default): every response closes its connection.
 *
 * usage: peer_civetweb PORT   (binds 127.0.0.1:PORT; SIGINT/SIGTERM exit)
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <civetweb.h>

#include "common.h"

#define MAX_BODY (8 * 1024 * 1024)

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int on_plaintext(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (strcmp(ri->request_method, "GET") != 0 && strcmp(ri->request_method, "HEAD") != 0) {
        mg_send_http_error(conn, 405, "%s", "Method Not Allowed");
        return 405;
    }
    mg_send_http_ok(conn, "text/plain", 13);
    mg_write(conn, "Hello, World!", 13);
    return 200;
}

static int on_echo(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (strcmp(ri->request_method, "POST") != 0 && strcmp(ri->request_method, "PUT") != 0) {
        mg_send_http_error(conn, 405, "%s", "Method Not Allowed");
        return 405;
    }
    long long cl = ri->content_length;
    if (cl < 0 || cl > MAX_BODY) {
        mg_send_http_error(conn, cl < 0 ? 411 : 413, "%s", "bad body");
        return cl < 0 ? 411 : 413;
    }
    char *body = malloc(cl > 0 ? (size_t)cl : 1);
    if (body == NULL) {
        mg_send_http_error(conn, 500, "%s", "out of memory");
        return 500;
    }
    long long got = 0;
    while (got < cl) {
        int n = mg_read(conn, body + got, (size_t)(cl - got));
        if (n <= 0)
            break;
        got += n;
    }
    const char *ct = mg_get_header(conn, "Content-Type");
    mg_send_http_ok(conn, ct ? ct : "application/octet-stream", got);
    mg_write(conn, body, (size_t)got);
    free(body);
    return 200;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: peer_civetweb PORT\n");
        return 2;
    }
    bench_stop_signals(on_signal);

    char ports[64];
    snprintf(ports, sizeof(ports), "127.0.0.1:%d", atoi(argv[1]));
    const char *options[] = {
        "listening_ports", ports,
        "num_threads", "1",
        "enable_keep_alive", "no",
        "listen_backlog", "4096",
        "connection_queue", "1024",
        "request_timeout_ms", "30000",
        NULL,
    };
    mg_init_library(0);
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    struct mg_context *ctx = mg_start(&cb, NULL, options);
    if (ctx == NULL) {
        fprintf(stderr, "peer_civetweb: mg_start failed\n");
        return 1;
    }
    mg_set_request_handler(ctx, "/plaintext$", on_plaintext, NULL);
    mg_set_request_handler(ctx, "/echo$", on_echo, NULL);
    fprintf(stderr, "peer_civetweb: civetweb %s listening on http://%s\n", mg_version(), ports);

    while (!g_stop)
        pause();

    mg_stop(ctx);
    mg_exit_library();
    return 0;
}
