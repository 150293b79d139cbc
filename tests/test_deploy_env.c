/* SPDX-License-Identifier: MIT */
/*
 * test_deploy_env.c - deployment without a service manager in the loop:
 * the systemd (LISTEN_*) and start_server (SERVER_STARTER_PORT) parsers
 * with their bad inputs, adopting listening sockets (and refusing what is
 * not one), sd_notify datagrams to a path and an abstract socket, and the
 * draining flag. Criterion runs each test in its own process, so setenv
 * touches no other test. Loopback only.
 */
#include <appsrv.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "deploy.h"

TestSuite(deploy_env, .timeout = 10);

/* Descriptors at FIRST and after it stand for systemd's 3, 4, ... (the
 * test process's own 3, 4 belong to Criterion). */
#define FIRST 600

static int tcp_listener(void)
{
    int fd = appsrv_listen("127.0.0.1", 0, 16, 0);
    cr_assert_geq(fd, 0, "listen: %s", appsrv_strerror(fd));
    return fd;
}

/* n listening sockets at FIRST.., close-on-exec cleared (as inherited). */
static void place(int n)
{
    for (int i = 0; i < n; i++) {
        int fd = tcp_listener();
        cr_assert_eq(dup2(fd, FIRST + i), FIRST + i);
        close(fd);
    }
}

static bool cloexec(int fd)
{
    return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

static int parse(const char *pid, const char *fds, const char *names, const char *starter,
                 appsrv_inherited_t *out)
{
    return appsrv__inherited_parse(pid, fds, names, starter, getpid(), FIRST, out);
}

static char g_pid[16];
static const char *self(void)
{
    snprintf(g_pid, sizeof(g_pid), "%d", (int)getpid());
    return g_pid;
}

Test(deploy_env, nothing_inherited_is_zero)
{
    appsrv_inherited_t in;
    cr_assert_eq(parse(NULL, NULL, NULL, NULL, &in), 0);
    cr_assert_eq(in.n, 0);
    cr_assert_null(in.source);
}

Test(deploy_env, systemd_names_and_cloexec)
{
    place(2);
    appsrv_inherited_t in;
    cr_assert_eq(parse(self(), "2", "http:line", NULL, &in), 2);
    cr_assert_str_eq(in.source, "systemd");
    cr_assert_eq(in.fds[0].fd, FIRST);
    cr_assert_str_eq(in.fds[0].name, "http");
    cr_assert_eq(in.fds[1].fd, FIRST + 1);
    cr_assert_str_eq(in.fds[1].name, "line");
    cr_assert(cloexec(FIRST) && cloexec(FIRST + 1), "close-on-exec not set");
}

Test(deploy_env, systemd_without_names_is_unknown)
{
    place(1);
    appsrv_inherited_t in;
    cr_assert_eq(parse(self(), "1", NULL, NULL, &in), 1);
    cr_assert_str_eq(in.fds[0].name, "unknown");
}

Test(deploy_env, systemd_empty_name_allowed)
{
    place(2);
    appsrv_inherited_t in;
    cr_assert_eq(parse(self(), "2", ":line", NULL, &in), 2);
    cr_assert_str_eq(in.fds[0].name, "");
    cr_assert_str_eq(in.fds[1].name, "line");
}

Test(deploy_env, listen_pid_mismatch_is_ignored)
{
    place(1);
    appsrv_inherited_t in;
    char other[16];
    snprintf(other, sizeof(other), "%d", (int)getpid() + 1);
    cr_assert_eq(parse(other, "1", "http", NULL, &in), 0);
    cr_assert_eq(in.n, 0);
    cr_assert(!cloexec(FIRST), "a descriptor meant for another process was touched");
    /* Without LISTEN_PID, LISTEN_FDS alone means nothing either. */
    cr_assert_eq(parse(NULL, "1", NULL, NULL, &in), 0);
}

Test(deploy_env, bad_listen_fds_and_pid)
{
    appsrv_inherited_t in;
    const char *bad[] = {"", "x", "-1", "1x", " 1", "99999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(parse(self(), bad[i], NULL, NULL, &in), -EINVAL, "LISTEN_FDS=\"%s\"",
                     bad[i]);
    cr_assert_eq(parse("abc", "1", NULL, NULL, &in), -EINVAL);
    cr_assert_eq(parse("0", "1", NULL, NULL, &in), -EINVAL);
    cr_assert_eq(parse(self(), "17", NULL, NULL, &in), -E2BIG);
    cr_assert_eq(parse(self(), "0", NULL, NULL, &in), 0);
}

Test(deploy_env, names_count_mismatch)
{
    place(2);
    appsrv_inherited_t in;
    cr_assert_eq(parse(self(), "2", "http", NULL, &in), -EINVAL);
    cr_assert_eq(parse(self(), "2", "http:line:extra", NULL, &in), -EINVAL);
    cr_assert_eq(parse(self(), "1", "a:b", NULL, &in), -EINVAL);
    cr_assert_eq(parse(self(), "0", "a", NULL, &in), -EINVAL);
    char longname[200];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    cr_assert_eq(parse(self(), "1", longname, NULL, &in), -ENAMETOOLONG);
}

Test(deploy_env, closed_descriptor_is_ebadf)
{
    appsrv_inherited_t in;
    close(FIRST);
    cr_assert_eq(parse(self(), "1", NULL, NULL, &in), -EBADF);
}

Test(deploy_env, server_starter_forms)
{
    place(3);
    char v[256];
    snprintf(v, sizeof(v), "8080=%d;127.0.0.1:8081=%d;/run/a=b.sock=%d", FIRST, FIRST + 1,
             FIRST + 2);
    appsrv_inherited_t in;
    cr_assert_eq(parse(NULL, NULL, NULL, v, &in), 3);
    cr_assert_str_eq(in.source, "server_starter");
    cr_assert_str_eq(in.fds[0].name, "8080");
    cr_assert_eq(in.fds[0].fd, FIRST);
    cr_assert_str_eq(in.fds[1].name, "127.0.0.1:8081");
    cr_assert_eq(in.fds[1].fd, FIRST + 1);
    cr_assert_str_eq(in.fds[2].name, "/run/a=b.sock");
    cr_assert_eq(in.fds[2].fd, FIRST + 2);
    cr_assert(cloexec(FIRST + 2));
    /* systemd's variables win when they are this process's. */
    cr_assert_eq(parse(self(), "1", "http", v, &in), 1);
    cr_assert_str_eq(in.source, "systemd");
}

Test(deploy_env, server_starter_bad)
{
    place(1);
    appsrv_inherited_t in;
    const char *bad[] = {"", "8080", "=600", "8080=", "8080=x", "8080=600;", "8080=600;;"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_lt(parse(NULL, NULL, NULL, bad[i], &in), 0, "SERVER_STARTER_PORT=\"%s\"",
                     bad[i]);
    cr_assert_eq(parse(NULL, NULL, NULL, "8080=599", &in), -EBADF);
}

Test(deploy_env, public_call_unsets_the_variables)
{
    setenv("LISTEN_PID", "1", 1); /* not us: ignored */
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_FDNAMES", "http", 1);
    appsrv_inherited_t in;
    cr_assert_eq(appsrv_inherited_fds(&in), 0);
    cr_assert_null(getenv("LISTEN_PID"));
    cr_assert_null(getenv("LISTEN_FDS"));
    cr_assert_null(getenv("LISTEN_FDNAMES"));
    cr_assert_eq(appsrv_inherited_fds(NULL), -EINVAL);
}

/* ------------------------------------------------------ adopting sockets */

Test(deploy_env, listen_fd_takes_a_listening_socket)
{
    appsrv_server_t *srv;
    cr_assert_eq(appsrv_server_new(&srv, NULL), 0);
    int fd = tcp_listener();
    int port = appsrv_local_port(fd);
    cr_assert_eq(appsrv_listen_http_fd(srv, fd), port);
    int fl = fcntl(fd, F_GETFL);
    cr_assert(fl & O_NONBLOCK, "not made non-blocking");
    cr_assert(cloexec(fd));
    int lfd = tcp_listener();
    cr_assert_gt(appsrv_listen_line_fd(srv, lfd), 0);
    appsrv_server_free(srv); /* closes both: owned */
    cr_assert_eq(fcntl(fd, F_GETFD), -1, "the server did not close the adopted socket");
    cr_assert_eq(fcntl(lfd, F_GETFD), -1);
}

Test(deploy_env, listen_fd_unix_socket_is_port_0)
{
    appsrv_server_t *srv;
    cr_assert_eq(appsrv_server_new(&srv, NULL), 0);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "appsrv-test-%d", (int)getpid());
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 4), 0);
    cr_assert_eq(appsrv_listen_http_fd(srv, fd), 0);
    appsrv_server_free(srv);
}

Test(deploy_env, listen_fd_refuses_what_is_not_a_listener)
{
    appsrv_server_t *srv;
    cr_assert_eq(appsrv_server_new(&srv, NULL), 0);
    cr_assert_eq(appsrv_listen_http_fd(srv, -1), -EBADF);
    cr_assert_eq(appsrv_listen_http_fd(srv, 599), -EBADF);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(appsrv_listen_http_fd(srv, p[0]), -ENOTSOCK);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    cr_assert_eq(appsrv_listen_line_fd(srv, udp), -EINVAL);
    int tcp = socket(AF_INET, SOCK_STREAM, 0); /* not listening */
    cr_assert_eq(appsrv_listen_http_fd(srv, tcp), -EINVAL);
    cr_assert_eq(appsrv_listen_http_fd(NULL, tcp), -EINVAL);
    cr_assert_eq(appsrv_listen_https_fd(srv, tcp, NULL), appsrv_tls_available() ? -EINVAL : -ENOTSUP);
    /* Refused descriptors stay the caller's, open. */
    cr_assert_neq(fcntl(p[0], F_GETFD), -1);
    cr_assert_neq(fcntl(udp, F_GETFD), -1);
    cr_assert_neq(fcntl(tcp, F_GETFD), -1);
    close(p[0]), close(p[1]), close(udp), close(tcp);
    appsrv_server_free(srv);
}

/* ----------------------------------------------------------- sd_notify */

static int notify_socket(char *name, size_t cap, bool abstract)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    socklen_t len;
    if (abstract) {
        snprintf(name, cap, "@appsrv-notify-%d", (int)getpid());
        memcpy(a.sun_path + 1, name + 1, strlen(name) - 1);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
    } else {
        snprintf(name, cap, "/tmp/appsrv-notify-%d.sock", (int)getpid());
        unlink(name);
        strcpy(a.sun_path, name);
        len = sizeof(a);
    }
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, len), 0, "bind %s: %s", name, strerror(errno));
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    cr_assert_gt(n, 0, "no datagram within 2 s (waiting for %s): %s", want, strerror(errno));
    buf[n] = '\0';
    cr_assert_str_eq(buf, want);
}

Test(deploy_env, sd_notify_path_and_abstract)
{
    char name[108];
    cr_assert_eq(appsrv_sd_notify("READY=1"), 0, "NOTIFY_SOCKET unset: nothing to do");
    for (int abstract = 0; abstract < 2; abstract++) {
        int fd = notify_socket(name, sizeof(name), abstract);
        setenv("NOTIFY_SOCKET", name, 1);
        cr_assert_eq(appsrv_sd_notify("READY=1"), 1);
        expect_datagram(fd, "READY=1");
        cr_assert_eq(appsrv_sd_notify("STOPPING=1\nSTATUS=draining"), 1);
        expect_datagram(fd, "STOPPING=1\nSTATUS=draining");
        close(fd);
        if (!abstract)
            unlink(name);
    }
    cr_assert_eq(appsrv_sd_notify(""), -EINVAL);
    cr_assert_eq(appsrv_sd_notify(NULL), -EINVAL);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    cr_assert_eq(appsrv_sd_notify("READY=1"), -EINVAL);
    setenv("NOTIFY_SOCKET", "/nonexistent/appsrv.sock", 1);
    cr_assert_eq(appsrv_sd_notify("READY=1"), -ENOENT);
}

Test(deploy_env, draining_flag_and_config_ranges)
{
    appsrv_config_t cfg;
    appsrv_config_init(&cfg);
    cr_assert_eq(cfg.drain_delay_ms, 0);
    cr_assert_eq(cfg.drain_idle_grace_ms, 250);
    cfg.drain_delay_ms = -1;
    appsrv_server_t *srv;
    cr_assert_eq(appsrv_server_new(&srv, &cfg), -EINVAL);
    cfg.drain_delay_ms = 0;
    cfg.drain_idle_grace_ms = -1;
    cr_assert_eq(appsrv_server_new(&srv, &cfg), -EINVAL);
    cfg.drain_idle_grace_ms = 0;
    cr_assert_eq(appsrv_server_new(&srv, &cfg), 0);
    cr_assert(!appsrv_server_draining(srv));
    appsrv_server_stop(srv);
    cr_assert(appsrv_server_draining(srv));
    cr_assert(!appsrv_server_draining(NULL));
    appsrv_server_free(srv);
}
