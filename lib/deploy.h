/* SPDX-License-Identifier: MIT */
/*
 * deploy.h - private entry points of deploy.c for unit tests: the
 * inherited-socket parser with the environment values and the first
 * descriptor number passed in (systemd's is 3).
 */
#ifndef APPSRV_DEPLOY_H
#define APPSRV_DEPLOY_H

#include <sys/types.h>

#include "common.h"

/* What appsrv_inherited_fds() does, from these values (NULL: unset)
 * instead of the environment, with systemd's descriptors numbered from
 * first_fd. Touches no environment variable. */
int appsrv__inherited_parse(const char *listen_pid, const char *listen_fds,
                            const char *listen_fdnames, const char *starter_port, pid_t self,
                            int first_fd, appsrv_inherited_t *out);

#endif /* APPSRV_DEPLOY_H */
