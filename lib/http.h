/* SPDX-License-Identifier: MIT */
/*
 * http.h - the HTTP/1.1 protocol table (http.c) for connections accepted
 * on an HTTP listener; its listener data is the server's router. The
 * appsrv_route_ex() records the server keeps are http_body.h's.
 */
#ifndef APPSRV_HTTP_H
#define APPSRV_HTTP_H

#include "http_body.h"
#include "proto.h"

extern const appsrv__proto_t appsrv__http_proto;

#endif /* APPSRV_HTTP_H */
