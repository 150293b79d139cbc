/* SPDX-License-Identifier: MIT */
/* deploy_cli.h - the CLI's use of inherited listening sockets (deploy_cli.c). */
#ifndef APPSRV_DEPLOY_CLI_H
#define APPSRV_DEPLOY_CLI_H

/* Reads the inherited sockets (appsrv_inherited_fds()) and picks the HTTP
 * and line ones: by name ("http" or "https", "line"), else in order (the
 * first unnamed is HTTP, the second line). *hfd and *lfd stay -1 when
 * there is none. Returns 0, or -1 after printing why. */
int inherited_roles(int *hfd, int *lfd);

/* "appsrv: listening on SCHEME://HOST:PORT" from the socket's own
 * address (getsockname), or SCHEME+unix://PATH. */
void print_listening_fd(const char *scheme, int fd);

#endif
