/* SPDX-License-Identifier: MIT */
/*
 * alog.c - a worker's access-log buffer (contract in alog.h): lines are
 * formatted by logfmt.c into a per-worker buffer on the loop thread and
 * written in batches with write(2), whole lines per call, so workers
 * sharing one O_APPEND file never split each other's lines. Called by
 * req.c per request and by server.c and sworker.c at start and stop;
 * the flush timer runs on the worker's loop.
 */
#include "alog.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A blocked output (a full pipe) is waited for this long per flush
 * before its lines are given up. */
#define WRITE_STALL_MS 5000

static void wlog_timer_cb(appsrv__loop_t *loop, appsrv__timer_t *t)
{
    (void)loop;
    appsrv__wlog_flush(appsrv__container_of(t, appsrv__wlog_t, timer));
}

int appsrv__wlog_init(appsrv__wlog_t *wl, const appsrv__alog_t *log, appsrv__loop_t *loop,
                      appsrv__stats_t *st, const appsrv_config_t *cfg)
{
    memset(wl, 0, sizeof(*wl));
    wl->buf = malloc(APPSRV__ALOG_CAP);
    if (wl->buf == NULL)
        return -ENOMEM;
    wl->timer.cb = wlog_timer_cb;
    wl->log = log;
    wl->loop = loop;
    wl->st = st;
    wl->cfg = cfg;
    return 0;
}

/* Writes p[0..len) whole. Returns 0 or a negative errno. */
static int write_all(int fd, const char *p, size_t len)
{
    int waited = 0;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && waited < WRITE_STALL_MS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            poll(&pfd, 1, 100);
            waited += 100;
            continue;
        }
        return n < 0 ? -errno : -EIO;
    }
    return 0;
}

static void lost(appsrv__wlog_t *wl, size_t lines, int err)
{
    appsrv__ctr_add(&wl->st->log_lost, lines);
    appsrv__event(wl->st, wl->cfg, wl->loop->now_ms, APPSRV__EV_ACCESS_LOG_ERROR,
                  APPSRV_LEVEL_ERROR, "access-log lines lost", err, 0, NULL);
}

void appsrv__wlog_flush(appsrv__wlog_t *wl)
{
    if (appsrv__timer_armed(&wl->timer))
        appsrv__timer_stop(wl->loop, &wl->timer);
    if (wl->len == 0)
        return;
    int rc = write_all(wl->log->fd, wl->buf, wl->len);
    if (rc < 0)
        lost(wl, wl->lines, rc);
    else
        appsrv__ctr_add(&wl->st->log_lines, wl->lines);
    wl->len = 0;
    wl->lines = 0;
}

static size_t format(appsrv__wlog_t *wl, const appsrv_log_entry_t *e, char *buf, size_t cap)
{
    return appsrv__log_format(e, wl->log->format, buf, cap, &wl->cache);
}

void appsrv__wlog_append(appsrv__wlog_t *wl, const appsrv_log_entry_t *e)
{
    size_t room = APPSRV__ALOG_CAP - wl->len;
    size_t n = format(wl, e, wl->buf + wl->len, room);
    if (n >= room) {
        /* Does not fit behind what is buffered: write that first. */
        appsrv__wlog_flush(wl);
        n = format(wl, e, wl->buf, APPSRV__ALOG_CAP);
        if (n >= APPSRV__ALOG_CAP) {
            /* A line longer than the buffer (huge hostile fields): its
             * own allocation and write. */
            char *big = malloc(n + 1);
            int rc = -ENOMEM;
            if (big != NULL) {
                format(wl, e, big, n + 1);
                rc = write_all(wl->log->fd, big, n);
                free(big);
            }
            if (rc < 0)
                lost(wl, 1, rc);
            else
                appsrv__ctr_add(&wl->st->log_lines, 1);
            return;
        }
    }
    wl->len += n;
    wl->lines++;
    if (wl->len >= APPSRV__ALOG_MARK)
        appsrv__wlog_flush(wl);
    else if (!appsrv__timer_armed(&wl->timer))
        appsrv__timer_start(wl->loop, &wl->timer, wl->loop->now_ms + APPSRV__ALOG_MS);
}

void appsrv__wlog_dispose(appsrv__wlog_t *wl)
{
    if (wl->buf == NULL)
        return;
    appsrv__wlog_flush(wl);
    free(wl->buf);
    wl->buf = NULL;
}
