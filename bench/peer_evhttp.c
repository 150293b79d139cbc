/* SPDX-License-Identifier: MIT */
/*
 * peer_evhttp.c - benchmark peer on libevent's evhttp, one thread.
 * GET /plaintext -> "Hello, World!" text/plain; POST /echo -> the body.
 * usage: peer_evhttp PORT   (binds 127.0.0.1:PORT; SIGINT/SIGTERM exit)
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

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>

static const char HELLO[] = "Hello, World!";

static void on_plaintext(struct evhttp_request *req, void *arg)
{
    (void)arg;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
        evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
        evhttp_send_error(req, 405, NULL);
        return;
    }
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
    evbuffer_add_reference(out, HELLO, sizeof(HELLO) - 1, NULL, NULL);
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_echo(struct evhttp_request *req, void *arg)
{
    (void)arg;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST &&
        evhttp_request_get_command(req) != EVHTTP_REQ_PUT) {
        evhttp_send_error(req, 405, NULL);
        return;
    }
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      ct ? ct : "application/octet-stream");
    /* Moves the body's chains, no copy. */
    evbuffer_add_buffer(evhttp_request_get_output_buffer(req),
                        evhttp_request_get_input_buffer(req));
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: peer_evhttp PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int port = atoi(argv[1]);

    /* Our own listening socket, for a deep backlog (10,000 idle clients). */
    int lfd = bench_listen(port);
    if (lfd < 0) {
        perror("peer_evhttp: listen");
        return 1;
    }

    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    if (base == NULL || http == NULL)
        return 1;
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                         EVHTTP_REQ_PUT);
    evhttp_set_max_body_size(http, 8 * 1024 * 1024);
    evhttp_set_timeout(http, 120);
    evhttp_set_cb(http, "/plaintext", on_plaintext, NULL);
    evhttp_set_cb(http, "/echo", on_echo, NULL);
    if (evhttp_accept_socket_with_handle(http, lfd) == NULL) {
        fprintf(stderr, "peer_evhttp: evhttp_accept_socket failed\n");
        return 1;
    }
    struct event *sint = evsignal_new(base, SIGINT, on_signal, base);
    struct event *sterm = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(sint, NULL);
    event_add(sterm, NULL);
    fprintf(stderr, "peer_evhttp: libevent %s listening on http://127.0.0.1:%d\n",
            event_get_version(), port);

    event_base_dispatch(base);

    event_free(sint);
    event_free(sterm);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
