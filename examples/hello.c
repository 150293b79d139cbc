/* SPDX-License-Identifier: MIT */
/* hello.c - the smallest host program: one route, until Ctrl-C. Usage: hello [PORT] */
#include <appsrv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
static appsrv_server_t *srv;
static void on_signal(int sig) { (void)sig; appsrv_server_stop(srv); } /* async-signal-safe */
static int hello(appsrv_req_t *req, appsrv_res_t *res, void *user)
{
    (void)req, (void)user;
    appsrv_res_set_status(res, 200);
    appsrv_res_add_header(res, "Content-Type", "text/plain");
    return appsrv_res_set_body(res, "Hello, World!\n", 14); /* copied: 0 or -ENOMEM */
}

int main(int argc, char **argv)
{
    int rc = appsrv_server_new(&srv, NULL); /* NULL: the default config */
    if (rc == 0 && (rc = appsrv_route(srv, "GET", "/", hello, NULL)) == 0)
        rc = appsrv_listen_http(srv, "127.0.0.1", argc > 1 ? atoi(argv[1]) : 8080);
    if (rc > 0 && signal(SIGINT, on_signal) != SIG_ERR) { /* rc: the bound port */
        fprintf(stderr, "hello: listening on http://127.0.0.1:%d\n", rc);
        rc = appsrv_server_run(srv); /* blocks until on_signal stops it, then 0 */
    }
    if (rc < 0)
        fprintf(stderr, "hello: %s\n", appsrv_strerror(rc));
    appsrv_server_free(srv); /* NULL is a no-op */
    return rc < 0;
}
