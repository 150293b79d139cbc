/* SPDX-License-Identifier: MIT */
/*
 * deploy_cli.c - the CLI under a service manager: which inherited socket
 * (systemd socket activation, start_server) serves HTTP and which the
 * line protocol, and the listening lines printed from the sockets'
 * addresses. Calls the public API only (appsrv_inherited_fds()).
 */
#include "deploy_cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <appsrv.h>

int inherited_roles(int *hfd, int *lfd)
{
    appsrv_inherited_t inh;
    *hfd = *lfd = -1;
    int n = appsrv_inherited_fds(&inh);
    if (n < 0) {
        fprintf(stderr, "appsrv: inherited sockets (LISTEN_FDS or SERVER_STARTER_PORT): %s\n",
                appsrv_strerror(n));
        return -1;
    }
    bool used[APPSRV_INHERITED_MAX] = {false};
    for (int i = 0; i < n; i++) {
        const char *name = inh.fds[i].name;
        int *slot = strcmp(name, "http") == 0 || strcmp(name, "https") == 0 ? hfd
                    : strcmp(name, "line") == 0                            ? lfd
                                                                           : NULL;
        if (slot != NULL && *slot < 0) {
            *slot = inh.fds[i].fd;
            used[i] = true;
        }
    }
    for (int i = 0; i < n; i++) {
        if (used[i])
            continue;
        int *slot = *hfd < 0 ? hfd : *lfd < 0 ? lfd : NULL;
        if (slot == NULL) {
            fprintf(stderr, "appsrv: inherited socket %d (%s) not used: closed\n",
                    inh.fds[i].fd, inh.fds[i].name);
            close(inh.fds[i].fd);
            continue;
        }
        *slot = inh.fds[i].fd;
    }
    return 0;
}

void print_listening_fd(const char *scheme, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
        } else if (ss.ss_family == AF_UNIX) {
            struct sockaddr_un *a = (struct sockaddr_un *)&ss;
            fprintf(stderr, "appsrv: listening on %s+unix://%s\n", scheme,
                    a->sun_path[0] != '\0' ? a->sun_path : "(abstract)");
            fflush(stderr);
            return;
        }
    }
    bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "appsrv: listening on %s://%s%s%s:%d\n", scheme, v6 ? "[" : "", host,
            v6 ? "]" : "", port);
    fflush(stderr);
}
