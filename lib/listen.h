/* SPDX-License-Identifier: MIT */
/*
 * listen.h - the server's listeners (listen.c): the calls server.c and
 * sworker.c make; the appsrv_listen_* calls themselves are public
 * (appsrv.h).
 */
#ifndef APPSRV_LISTEN_H
#define APPSRV_LISTEN_H

#include "loop.h"
#include "server_state.h"

/* Sizes the workers' block pools for the listeners added so far and the
 * given protocols (what appsrv_server_run() does first). Declared in
 * server.h too, for the tests and the fuzz driver. */
void appsrv__server_prepare(appsrv_server_t *srv);
/* Worker sw starts watching every listener (at run). 0 or -errno. */
int appsrv__listen_watch(appsrv__sworker_t *sw);
/* A graceful stop: sw lets go of the listeners (the last worker closes
 * each socket). */
void appsrv__listen_unwatch(appsrv__sworker_t *sw);
/* The accept timer's callback: listeners paused after EMFILE resume. */
void appsrv__listen_resume_cb(appsrv__loop_t *loop, appsrv__timer_t *t);

#endif /* APPSRV_LISTEN_H */
