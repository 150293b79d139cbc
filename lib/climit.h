/* SPDX-License-Identifier: MIT */
/*
 * climit.h - limits per client address: open connections, and a token
 * bucket of requests per second. One table shared by every worker under a
 * mutex (the limits hold across workers), of a fixed size: 4096 entries,
 * 512 sets of 8, so a flood of distinct addresses never grows memory.
 * Keys: an IPv4 address, or an IPv6 address's /64 (one host usually owns
 * a whole /64). Only used when a limit is configured.
 */
#ifndef APPSRV_CLIMIT_H
#define APPSRV_CLIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "appsrv.h"

typedef struct appsrv__climit appsrv__climit_t;

/* max_conns: per client, 0 none; rate: requests per second, 0 none;
 * burst: the bucket (0: max(1, rate)). Returns 0 or -ENOMEM. */
int appsrv__climit_new(appsrv__climit_t **out, int max_conns, double rate, double burst);
void appsrv__climit_free(appsrv__climit_t *t);

/* A connection from a opens: true when admitted (and counted, *counted
 * set; a full set admits untracked, *counted false), false when a already
 * has max_conns open. Any thread. */
bool appsrv__climit_conn_open(appsrv__climit_t *t, const appsrv_addr_t *a, uint64_t now_ms,
                              bool *counted);
/* A counted connection from a closed. Any thread. */
void appsrv__climit_conn_close(appsrv__climit_t *t, const appsrv_addr_t *a);
/* A request from a: 0 when its bucket has a token (taken), else the
 * seconds until it has one (>= 1: Retry-After). Any thread. */
int appsrv__climit_request(appsrv__climit_t *t, const appsrv_addr_t *a, uint64_t now_ms);

#endif /* APPSRV_CLIMIT_H */
