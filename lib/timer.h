/* SPDX-License-Identifier: MIT */
/*
 * timer.h - the public timers (appsrv_timer_*) and cross-thread tasks
 * (appsrv_loop_post) on a worker's loop. timer.c wraps loop.h's one-shot
 * heap timers (adding repeat and free-from-callback) and posts tasks
 * through the worker's completion queue (async.h). server.c calls
 * appsrv__timers_dispose() when a worker's loop has ended.
 */
#ifndef APPSRV_TIMER_H
#define APPSRV_TIMER_H

#include "common.h"
#include "worker.h"

/* Loop thread (or after it ended): frees the worker's remaining public
 * timers and the tasks still queued for it; later posts get
 * APPSRV_ESTATE. Idempotent. */
void appsrv__timers_dispose(appsrv__worker_t *w);

#endif /* APPSRV_TIMER_H */
