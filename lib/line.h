/* SPDX-License-Identifier: MIT */
/*
 * line.h - the line protocol's table (line.c) and its command routes,
 * which the server owns and hands to line listeners as their data.
 */
#ifndef APPSRV_LINE_H
#define APPSRV_LINE_H

#include <stddef.h>

#include "common.h"
#include "proto.h"

typedef struct appsrv__line_route {
    char *word;
    size_t word_len;
    appsrv_handler_cb handler;
    void *user;
} appsrv__line_route_t;

typedef struct appsrv__line_routes {
    appsrv__line_route_t *v;
    size_t n;
} appsrv__line_routes_t;

/* Adds a route for command (copied). Returns 0, -EINVAL, -EEXIST or
 * -ENOMEM. */
int appsrv__line_routes_add(appsrv__line_routes_t *t, const char *command,
                            appsrv_handler_cb handler, void *user);
void appsrv__line_routes_free(appsrv__line_routes_t *t);

extern const appsrv__proto_t appsrv__line_proto;

#endif /* APPSRV_LINE_H */
