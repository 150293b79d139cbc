/* SPDX-License-Identifier: MIT */
/*
 * logfmt.h - the formatters of logfmt.c with a caller-kept cache: the
 * access-log file (alog.c) keeps one per worker so the time stamp is
 * formatted once a second and a keep-alive client's address once. The
 * public appsrv_log_format_* functions are the same code without one.
 */
#ifndef APPSRV_LOGFMT_H
#define APPSRV_LOGFMT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef struct appsrv__logfmt_time {
    int64_t sec;
    char clf[24]; /* "25/Nov/2026:12:34:56" */
    char iso[24]; /* "2026-11-25T12:34:56" */
    size_t clf_len, iso_len;
} appsrv__logfmt_time_t;

typedef struct appsrv__logfmt_cache {
    bool time_ok, host_ok;
    appsrv__logfmt_time_t time;
    char host_key[sizeof(((appsrv_addr_t *)0)->u)];
    char host[INET6_ADDRSTRLEN];
    size_t host_len;
    bool peer_ok;
    char peer_key[sizeof(((appsrv_addr_t *)0)->u)];
    char peer[INET6_ADDRSTRLEN + 16]; /* "host:port", "[v6]:port" */
    size_t peer_len;
} appsrv__logfmt_cache_t;

/* appsrv_log_format_combined()/_json() by format, with cache (zeroed
 * before first use; one thread at a time). */
size_t appsrv__log_format(const appsrv_log_entry_t *e, appsrv_log_format_t format, char *buf,
                          size_t cap, appsrv__logfmt_cache_t *cache);

#endif /* APPSRV_LOGFMT_H */
