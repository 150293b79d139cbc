/* SPDX-License-Identifier: MIT */
/*
 * http.h - the HTTP/1.1 protocol table (http.c) for connections accepted
 * on an HTTP listener; its listener data is the server's router.
 */
#ifndef APPSRV_HTTP_H
#define APPSRV_HTTP_H

#include "proto.h"

extern const appsrv__proto_t appsrv__http_proto;

/* A route registered with appsrv_route_ex() (issue 16): the router's
 * handler is appsrv__route_ex_call and its user this record, so http.c
 * recognises such routes by their handler. Owned by the server. */
typedef struct appsrv__route_ex {
    appsrv_handler_cb handler;
    void *user;
    appsrv_route_opts_t opts;
    struct appsrv__route_ex *next;
} appsrv__route_ex_t;

int appsrv__route_ex_call(appsrv_req_t *req, appsrv_res_t *res, void *ex);

#endif /* APPSRV_HTTP_H */
