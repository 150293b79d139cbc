/* SPDX-License-Identifier: MIT */
/*
 * trust.h - trusted proxies: a list of networks (CIDR, IPv4 and IPv6)
 * whose X-Forwarded-For and X-Forwarded-Proto are believed, and the walk
 * that finds the client in X-Forwarded-For. Pure: parsing and matching
 * over the caller's memory; the list is immutable once made (shared by
 * every worker without a lock).
 */
#ifndef APPSRV_TRUST_H
#define APPSRV_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "appsrv.h"

typedef struct appsrv__cidr {
    uint8_t v6;   /* 0: IPv4 (addr[0..3]), 1: IPv6 */
    uint8_t bits; /* prefix length */
    uint8_t addr[16];
} appsrv__cidr_t;

typedef struct appsrv__trust {
    size_t n;
    appsrv__cidr_t nets[];
} appsrv__trust_t;

/* Parses "CIDR[,CIDR...]" (spaces around items allowed; an address
 * without "/bits" is one host; host bits past the prefix are ignored).
 * Returns 0 and *out (free with free()), -EINVAL (empty, bad address or
 * prefix), -ENOMEM. */
int appsrv__trust_parse(const char *list, appsrv__trust_t **out);

/* True when a lies in one of t's networks (an IPv4-mapped IPv6 address
 * counts as its IPv4 address). */
bool appsrv__trust_has(const appsrv__trust_t *t, const appsrv_addr_t *a);

/* One X-Forwarded-For element: an IPv4 or IPv6 address, optionally
 * "[v6]", "[v6]:port" or "v4:port", surrounding spaces trimmed. The port
 * is dropped. False when it is not one. */
bool appsrv__trust_parse_addr(const char *p, size_t n, appsrv_addr_t *out);

/* The X-Forwarded-For walk: when *client (the connection's peer, or what
 * a PROXY header reported) is trusted, the elements of vals (the fields'
 * values in header order, so the list is their concatenation) are read
 * right to left, each becoming the client, until one is not trusted; a
 * malformed element stops the walk (the last good one stays). Returns
 * true when *client changed. */
bool appsrv__trust_walk(const appsrv__trust_t *t, const appsrv_str_t *vals, size_t nvals,
                        appsrv_addr_t *client);

#endif /* APPSRV_TRUST_H */
