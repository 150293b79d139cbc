/* SPDX-License-Identifier: MIT */
/*
 * http.h - the HTTP/1.1 protocol table (http.c) for connections accepted
 * on an HTTP listener; its listener data is the server's router.
 */
#ifndef APPSRV_HTTP_H
#define APPSRV_HTTP_H

#include "proto.h"

extern const appsrv__proto_t appsrv__http_proto;

#endif /* APPSRV_HTTP_H */
