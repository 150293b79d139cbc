/* SPDX-License-Identifier: MIT */
/*
 * proxy_proto.h - the PROXY protocol header (version 1, text, and version
 * 2, binary) that a load balancer such as HAProxy sends before the
 * client's bytes to say who the client is (haproxy's proxy-protocol.txt).
 * A pure parser: no I/O, no state between calls; the caller hands it
 * every byte received so far and calls again with more when it asks.
 */
#ifndef APPSRV_PROXY_PROTO_H
#define APPSRV_PROXY_PROTO_H

#include <stddef.h>

#include "appsrv.h"

/* The longest header accepted: a v1 line is at most 107 bytes; a v2
 * header is 16 bytes plus at most APPSRV__PP_V2_MAX_LEN of addresses and
 * TLVs (larger is refused: a proxy sends far less). */
#define APPSRV__PP_V1_MAX     107
#define APPSRV__PP_V2_MAX_LEN 512
#define APPSRV__PP_MAX        (16 + APPSRV__PP_V2_MAX_LEN)

enum {
    APPSRV__PP_LOCAL = 0,   /* v2 LOCAL (a health check): the socket's own
                               addresses stand */
    APPSRV__PP_UNKNOWN = 1, /* v1 UNKNOWN, v2 PROXY with an unspecified or
                               AF_UNIX family: the socket's addresses stand */
    APPSRV__PP_PROXY = 2,   /* src and dst are the client's connection */
};

typedef struct appsrv__pp {
    int version;            /* 1 or 2 */
    int cmd;                /* APPSRV__PP_* */
    appsrv_addr_t src, dst; /* set for APPSRV__PP_PROXY only */
} appsrv__pp_t;

/* Parses the header at the start of buf[0..len). Returns its length
 * (> 0, bytes to consume; *out filled), 0 when buf is a valid prefix of a
 * header and more bytes are needed, or -EPROTO when buf cannot start a
 * valid header (anything not starting with the v1 or v2 signature, a bad
 * field, a header longer than the bounds above, a v2 datagram family). */
int appsrv__pp_parse(const void *buf, size_t len, appsrv__pp_t *out);

#endif /* APPSRV_PROXY_PROTO_H */
