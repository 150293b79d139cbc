/* SPDX-License-Identifier: MIT */
/*
 * deploy.c - what a service manager hands the process: listening sockets
 * inherited through systemd's socket activation (sd_listen_fds(3):
 * LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES) or Server::Starter's
 * SERVER_STARTER_PORT ("addr=fd;addr=fd"), and the readiness protocol
 * (sd_notify(3): one datagram to NOTIFY_SOCKET). Without libsystemd: the
 * protocols are a few environment variables and one sendto(). Calls libc
 * only; sworker.c calls appsrv_sd_notify() at run and at drain.
 */
#include "deploy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A whole decimal number in [0, max], or -1. */
static long parse_dec(const char *s, size_t len, long max)
{
    long v = 0;
    if (len == 0 || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

/* The descriptor is open: set close-on-exec (not passed to children). */
static int adopt_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return -errno;
    return 0;
}

static int set_name(appsrv_inherited_fd_t *e, const char *s, size_t len)
{
    if (len >= sizeof(e->name))
        return -ENAMETOOLONG;
    memcpy(e->name, s, len);
    e->name[len] = '\0';
    return 0;
}

static int parse_systemd(const char *fds, const char *names, int first_fd,
                         appsrv_inherited_t *out)
{
    long n = parse_dec(fds, strlen(fds), 1L << 20);
    if (n < 0)
        return -EINVAL;
    if (n > APPSRV_INHERITED_MAX)
        return -E2BIG;
    /* Names, when given, are one per descriptor (an empty one is
     * allowed); otherwise systemd's default "unknown". */
    const char *p = names;
    for (long i = 0; i < n; i++) {
        appsrv_inherited_fd_t *e = &out->fds[i];
        e->fd = first_fd + (int)i;
        const char *end = p != NULL ? strchr(p, ':') : NULL;
        size_t len = p == NULL ? 0 : end != NULL ? (size_t)(end - p) : strlen(p);
        if (p != NULL && (end == NULL) != (i == n - 1))
            return -EINVAL; /* fewer or more names than descriptors */
        int rc = p != NULL ? set_name(e, p, len) : set_name(e, "unknown", 7);
        if (rc < 0)
            return rc;
        if (p != NULL)
            p = end != NULL ? end + 1 : NULL;
    }
    if (n == 0 && names != NULL && names[0] != '\0')
        return -EINVAL;
    for (long i = 0; i < n; i++) {
        int rc = adopt_cloexec(out->fds[i].fd);
        if (rc < 0)
            return rc;
    }
    out->n = (int)n;
    out->source = "systemd";
    return (int)n;
}

/* "8080=3;127.0.0.1:8081=4;/run/app.sock=5" */
static int parse_starter(const char *s, appsrv_inherited_t *out)
{
    int n = 0;
    for (;;) { /* an empty entry (";;", a trailing ';') is an error */
        const char *end = strchr(s, ';');
        size_t len = end != NULL ? (size_t)(end - s) : strlen(s);
        /* A path may hold '=': the descriptor follows the last one. */
        const char *eq = NULL;
        for (size_t i = len; i > 0 && eq == NULL; i--)
            if (s[i - 1] == '=')
                eq = s + i - 1;
        if (eq == NULL || eq == s)
            return -EINVAL;
        if (n == APPSRV_INHERITED_MAX)
            return -E2BIG;
        long fd = parse_dec(eq + 1, (size_t)(s + len - eq - 1), 1L << 30);
        if (fd < 0)
            return -EINVAL;
        appsrv_inherited_fd_t *e = &out->fds[n];
        e->fd = (int)fd;
        int rc = set_name(e, s, (size_t)(eq - s));
        if (rc < 0)
            return rc;
        n++;
        if (end == NULL)
            break;
        s = end + 1;
    }
    for (int i = 0; i < n; i++) {
        int rc = adopt_cloexec(out->fds[i].fd);
        if (rc < 0)
            return rc;
    }
    out->n = n;
    out->source = "server_starter";
    return n;
}

int appsrv__inherited_parse(const char *listen_pid, const char *listen_fds,
                            const char *listen_fdnames, const char *starter_port, pid_t self,
                            int first_fd, appsrv_inherited_t *out)
{
    if (out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < APPSRV_INHERITED_MAX; i++)
        out->fds[i].fd = -1;
    if (listen_pid != NULL && listen_fds != NULL) {
        long pid = parse_dec(listen_pid, strlen(listen_pid), 0x7fffffffL);
        if (pid <= 0)
            return -EINVAL;
        /* Meant for another process (a parent passed them through). */
        if ((pid_t)pid != self)
            return 0;
        return parse_systemd(listen_fds, listen_fdnames, first_fd, out);
    }
    if (starter_port != NULL)
        return parse_starter(starter_port, out);
    return 0;
}

int appsrv_inherited_fds(appsrv_inherited_t *out)
{
    int rc = appsrv__inherited_parse(getenv("LISTEN_PID"), getenv("LISTEN_FDS"),
                                     getenv("LISTEN_FDNAMES"), getenv("SERVER_STARTER_PORT"),
                                     getpid(), 3, out);
    /* Read once: children do not see them (sd_listen_fds(3) with
     * unset_environment). */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return rc;
}

/* ----------------------------------------------------------- sd_notify */

int appsrv_sd_notify(const char *state)
{
    if (state == NULL || state[0] == '\0')
        return -EINVAL;
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0')
        return 0;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sun.sun_path))
        return -EINVAL;
    memcpy(sun.sun_path, path, len);
    if (path[0] == '@')
        sun.sun_path[0] = '\0'; /* abstract namespace */
    socklen_t slen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                                 (path[0] == '/' ? 1 : 0));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, slen);
    int rc = n < 0 ? -errno : 1;
    close(fd);
    return rc;
}
