/* SPDX-License-Identifier: MIT */
/*
 * alog.h - the access-log file: one output (fd and format) per server,
 * one buffer per worker. The request path only formats into the worker's
 * buffer (req.c); the buffer is written when it passes a mark, from a loop
 * timer a short time after its first line, and when the worker stops.
 * server.c sets it up and flushes it at the end of a worker's run.
 */
#ifndef APPSRV_ALOG_H
#define APPSRV_ALOG_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "logfmt.h"
#include "loop.h"
#include "stats.h"

#define APPSRV__ALOG_CAP  (64 * 1024) /* a worker's buffer */
#define APPSRV__ALOG_MARK (32 * 1024) /* written at once past this */
#define APPSRV__ALOG_MS   100         /* a line waits at most this long */

typedef struct appsrv__alog {
    int fd;
    bool own_fd; /* opened by appsrv_access_log_file(): closed at free */
    appsrv_log_format_t format;
} appsrv__alog_t;

typedef struct appsrv__wlog {
    appsrv__timer_t timer; /* armed while the buffer holds lines */
    const appsrv__alog_t *log;
    appsrv__loop_t *loop;
    appsrv__stats_t *st;
    const appsrv_config_t *cfg;
    char *buf;
    size_t len;
    size_t lines; /* lines in buf */
    appsrv__logfmt_cache_t cache;
} appsrv__wlog_t;

/* Returns 0 or -ENOMEM. */
int appsrv__wlog_init(appsrv__wlog_t *wl, const appsrv__alog_t *log, appsrv__loop_t *loop,
                      appsrv__stats_t *st, const appsrv_config_t *cfg);
/* Formats e into the buffer (writing the buffer first when the line does
 * not fit). Loop thread. */
void appsrv__wlog_append(appsrv__wlog_t *wl, const appsrv_log_entry_t *e);
/* Writes the buffer out now. Loop thread (or after the loop stopped). */
void appsrv__wlog_flush(appsrv__wlog_t *wl);
/* Flushes, stops the timer, frees the buffer. */
void appsrv__wlog_dispose(appsrv__wlog_t *wl);

#endif /* APPSRV_ALOG_H */
