/* SPDX-License-Identifier: MIT */
/* routes.h - the CLI's demo routes (routes.c), registered by main (appsrv.c). */
#ifndef APPSRV_CLI_ROUTES_H
#define APPSRV_CLI_ROUTES_H

#include <stdint.h>
#include <stdio.h>

#include <appsrv.h>

/* Runs call; when it returns an error, prints "appsrv: CALL: reason" and
 * returns 1 from the function it is in (main, or the routes_add_* below). */
#define CHECK(call)                                                            \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ < 0) {                                                         \
            fprintf(stderr, "appsrv: %s: %s\n", #call, appsrv_strerror(rc_));  \
            return 1;                                                          \
        }                                                                      \
    } while (0)

/* Once, before any request: the upload route's CRC-32 table. */
void routes_init(void);
/* After appsrv_server_run() returned: the room's member list. */
void routes_free(void);
/* The HTTP routes and WebSocket endpoints; max_upload is POST /upload's
 * body limit (--max-upload). Returns 0, or 1 after printing the call that
 * failed. */
int routes_add_http(appsrv_server_t *srv, uint64_t max_upload);
/* The line protocol's PING, ECHO and QUIT. Returns 0, or 1 as above. */
int routes_add_line(appsrv_server_t *srv);

#endif
