/* SPDX-License-Identifier: MIT */
/*
 * sworker.h - the server's worker threads (sworker.c): the calls server.c
 * makes; appsrv_server_run(), appsrv_server_stop() and
 * appsrv_server_draining() are public (appsrv.h).
 */
#ifndef APPSRV_SWORKER_H
#define APPSRV_SWORKER_H

#include "server_state.h"

/* A worker of a new server (its fields that name the server are set):
 * its timers, loop and completion queue. 0 or -errno, nothing to dispose. */
int appsrv__sworker_init(appsrv__sworker_t *sw);
/* Whether requests need an access-log or metrics entry: one flag per
 * worker, set again whenever the access log or metrics change. */
void appsrv__sworker_obs_update(appsrv_server_t *srv);
/* One loop pass of sw (max_wait_ms as epoll_wait's): I/O, then the closed
 * connections' memory, then the drain deadline. Returns the events. */
int appsrv__sworker_pass(appsrv__sworker_t *sw, int max_wait_ms);

#endif /* APPSRV_SWORKER_H */
