/* SPDX-License-Identifier: MIT */
/*
 * peer_mhd.c - benchmark peer on GNU libmicrohttpd, one polling thread
 * (MHD's internal epoll thread; the main thread only waits for a signal).
 * GET /plaintext -> "Hello, World!" text/plain; POST /echo -> the body.
 * usage: peer_mhd PORT   (binds 127.0.0.1:PORT; SIGINT/SIGTERM exit)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#include <microhttpd.h>

#define MAX_BODY (8 * 1024 * 1024)

static volatile sig_atomic_t g_stop;
static struct MHD_Response *g_hello; /* built once, shared by every reply */
static int g_seen;                   /* con_cls marker: headers seen, no body */

struct body {
    char *data;
    size_t len, cap;
};

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static enum MHD_Result reply_code(struct MHD_Connection *conn, unsigned code)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)cls, (void)version;
    if (strcmp(url, "/plaintext") == 0) {
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return reply_code(conn, 405);
        /* Answer on the second call, as MHD's docs do: a response queued
         * on the first call (body not yet consumed) makes MHD close the
         * connection, which would turn keep-alive off. */
        if (*con_cls == NULL) {
            *con_cls = &g_seen;
            return MHD_YES;
        }
        *con_cls = NULL;
        return MHD_queue_response(conn, MHD_HTTP_OK, g_hello);
    }
    if (strcmp(url, "/echo") != 0)
        return reply_code(conn, 404);
    if (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0)
        return reply_code(conn, 405);

    struct body *b = *con_cls;
    if (b == NULL) { /* first call: headers only */
        b = calloc(1, sizeof(*b));
        if (b == NULL)
            return MHD_NO;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        size_t want = cl ? strtoul(cl, NULL, 10) : 0;
        if (want > MAX_BODY)
            want = MAX_BODY;
        b->cap = want > 0 ? want : 4096;
        b->data = malloc(b->cap);
        if (b->data == NULL) {
            free(b);
            return MHD_NO;
        }
        *con_cls = b;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        if (b->len + n > MAX_BODY)
            return MHD_NO;
        if (b->len + n > b->cap) {
            size_t cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n;
            char *nd = realloc(b->data, cap);
            if (nd == NULL)
                return MHD_NO;
            b->data = nd;
            b->cap = cap;
        }
        memcpy(b->data + b->len, upload_data, n);
        b->len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }
    /* Body complete: hand the buffer to MHD, which frees it. */
    struct MHD_Response *r =
        MHD_create_response_from_buffer(b->len, b->data, MHD_RESPMEM_MUST_FREE);
    b->data = NULL;
    if (r == NULL)
        return MHD_NO;
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    MHD_add_response_header(r, "Content-Type", ct ? ct : "application/octet-stream");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    struct body *b = *con_cls;
    if (b != NULL && *con_cls != (void *)&g_seen) {
        free(b->data);
        free(b);
        *con_cls = NULL;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: peer_mhd PORT\n");
        return 2;
    }
    int port = atoi(argv[1]);
    bench_stop_signals(on_signal);

    static const char hello[] = "Hello, World!";
    g_hello = MHD_create_response_from_buffer(sizeof(hello) - 1, (void *)hello,
                                              MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(g_hello, "Content-Type", "text/plain");

    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
        NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)16000, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)120, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "peer_mhd: MHD_start_daemon failed\n");
        return 1;
    }
    fprintf(stderr, "peer_mhd: libmicrohttpd %s listening on http://127.0.0.1:%d\n",
            MHD_get_version(), port);
    while (!g_stop)
        pause();
    MHD_stop_daemon(d);
    MHD_destroy_response(g_hello);
    return 0;
}
