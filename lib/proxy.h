/* SPDX-License-Identifier: MIT */
/*
 * proxy.h - a connection behind a load balancer: the PROXY protocol
 * preamble step (conn.h's preamble hook) that reads the header from the
 * socket before any transport byte and records the client's address.
 */
#ifndef APPSRV_PROXY_H
#define APPSRV_PROXY_H

#include "conn.h"

/* The preamble of a listener with proxy_protocol: peeks at the socket,
 * consumes exactly the PROXY header once it is whole, and sets
 * c->client. Returns 1, 0 (more bytes needed), or -EPROTO (no or a bad
 * header), -ECONNRESET (the peer closed first), -errno. */
int appsrv__proxy_preamble(appsrv__conn_t *c);
/* max_conns_per_client (climit.h): counts the connection against its
 * client (appsrv__conn_client()) and uncounts it at close; -EDQUOT when
 * the client is at its limit. After the PROXY header in the second. */
int appsrv__limit_preamble(appsrv__conn_t *c);
int appsrv__proxy_limit_preamble(appsrv__conn_t *c);

#endif /* APPSRV_PROXY_H */
