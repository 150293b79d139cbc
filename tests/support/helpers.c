/* SPDX-License-Identifier: MIT */
/*
 * helpers.c - shared test helpers (see helpers.h). Generic on purpose:
 * module-specific fixtures stay in their test_<module>.c.
 */
#include "helpers.h"

#include <appsrv.h>

#include <dirent.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>

int open_fd_count(void)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0;

    if (!dir)
        return -1;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] != '.')
            n++;
    }
    closedir(dir);
    return n - 1; /* the directory's own fd */
}

int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tcp_pair(int *client, int *server)
{
    int lfd, cfd, sfd, rc;

    lfd = appsrv_listen("127.0.0.1", 0, 1, 0);
    if (lfd < 0)
        return lfd;
    rc = appsrv_local_port(lfd);
    if (rc < 0)
        goto close_listener;
    cfd = appsrv_connect("127.0.0.1", rc, 5000);
    if (cfd < 0) {
        rc = cfd;
        goto close_listener;
    }
    sfd = appsrv_accept(lfd, NULL, 0);
    if (sfd < 0) {
        rc = sfd;
        close(cfd);
        goto close_listener;
    }
    close(lfd);
    *client = cfd;
    *server = sfd;
    return 0;

close_listener:
    close(lfd);
    return rc;
}
