/* SPDX-License-Identifier: MIT */
/*
 * test_sock.c - the socket layer over real loopback sockets (127.0.0.1 and
 * ::1 only): listen flags and errors, accept, connect, recv/send timeouts,
 * send-all to slow, closed and stalled peers, address formatting. Every
 * test ends with as many open fds as it started with (assert_fd_count).
 * Timing asserts are one-sided (a timeout never fires early): the machine
 * is noisy, so nothing asserts how late.
 */
#include <appsrv.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "helpers.h"

TestSuite(sock, .timeout = 10);

/* ---------------------------------------------------------------- helpers */

static bool is_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);

    cr_assert_geq(fl, 0);
    return (fl & FD_CLOEXEC) != 0;
}

static bool is_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    cr_assert_geq(fl, 0);
    return (fl & O_NONBLOCK) != 0;
}

static int int_opt(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;

    cr_assert_eq(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

static appsrv_addr_t local_addr(int fd)
{
    appsrv_addr_t a;

    memset(&a, 0, sizeof a);
    a.len = sizeof a.u;
    cr_assert_eq(getsockname(fd, &a.u.sa, &a.len), 0);
    return a;
}

/* A port that nothing listens on (just freed; a race with others is
 * possible in principle, not on a test machine's loopback in practice). */
static int closed_port(void)
{
    int lfd = appsrv_listen("127.0.0.1", 0, 0, 0);
    int port;

    cr_assert_geq(lfd, 0, "listen: %s", appsrv_strerror(lfd));
    port = appsrv_local_port(lfd);
    close(lfd);
    return port;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ----------------------------------------------------------------- listen */

Test(sock, listen_ipv4_port0)
{
    const int fds = open_fd_count();
    int lfd = appsrv_listen("127.0.0.1", 0, 0, 0);
    appsrv_addr_t a;

    cr_assert_geq(lfd, 0, "listen: %s", appsrv_strerror(lfd));
    cr_assert_gt(appsrv_local_port(lfd), 0);
    cr_assert_leq(appsrv_local_port(lfd), 65535);
    a = local_addr(lfd);
    cr_assert_eq(a.u.sa.sa_family, AF_INET);
    cr_assert_eq(a.u.in4.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    cr_assert(is_cloexec(lfd));
    cr_assert_not(is_nonblock(lfd));
    cr_assert_neq(int_opt(lfd, SOL_SOCKET, SO_REUSEADDR), 0);
    cr_assert_eq(int_opt(lfd, SOL_SOCKET, SO_ACCEPTCONN), 1);
    close(lfd);
    assert_fd_count(fds);
}

Test(sock, listen_ipv6_loopback_v6only)
{
    const int fds = open_fd_count();
    int lfd = appsrv_listen("::1", 0, 16, APPSRV_LISTEN_V6ONLY);
    int port, cfd, sfd;
    appsrv_addr_t peer;
    char text[64], want[64];

    cr_assert_geq(lfd, 0, "listen: %s", appsrv_strerror(lfd));
    port = appsrv_local_port(lfd);
    cr_assert_gt(port, 0);
    cr_assert_eq(local_addr(lfd).u.sa.sa_family, AF_INET6);
    cr_assert_eq(int_opt(lfd, IPPROTO_IPV6, IPV6_V6ONLY), 1);

    cfd = appsrv_connect("::1", port, 5000);
    cr_assert_geq(cfd, 0, "connect: %s", appsrv_strerror(cfd));
    sfd = appsrv_accept(lfd, &peer, 0);
    cr_assert_geq(sfd, 0, "accept: %s", appsrv_strerror(sfd));
    cr_assert_eq(peer.u.sa.sa_family, AF_INET6);
    cr_assert_gt(appsrv_addr_format(&peer, text, sizeof text), 0);
    snprintf(want, sizeof want, "[::1]:%d", appsrv_local_port(cfd));
    cr_assert_str_eq(text, want);
    close(sfd);
    close(cfd);
    close(lfd);
    assert_fd_count(fds);
}

/* Without V6ONLY, "::" is dual-stack whatever net.ipv6.bindv6only says. */
Test(sock, listen_ipv6_any_dual_stack)
{
    const int fds = open_fd_count();
    int lfd = appsrv_listen("::", 0, 0, 0);
    appsrv_addr_t a;
    int cfd, sfd;

    cr_assert_geq(lfd, 0, "listen: %s", appsrv_strerror(lfd));
    a = local_addr(lfd);
    cr_assert_eq(a.u.sa.sa_family, AF_INET6);
    cr_assert(IN6_IS_ADDR_UNSPECIFIED(&a.u.in6.sin6_addr));
    cr_assert_eq(int_opt(lfd, IPPROTO_IPV6, IPV6_V6ONLY), 0);

    cfd = appsrv_connect("127.0.0.1", appsrv_local_port(lfd), 5000);
    cr_assert_geq(cfd, 0, "connect over IPv4: %s", appsrv_strerror(cfd));
    sfd = appsrv_accept(lfd, NULL, 0);
    cr_assert_geq(sfd, 0, "accept: %s", appsrv_strerror(sfd));
    close(sfd);
    close(cfd);
    close(lfd);
    assert_fd_count(fds);
}

/* NULL and "" both mean 0.0.0.0 (IPv4 only), reachable over 127.0.0.1. */
Test(sock, listen_empty_or_null_host_is_ipv4_any)
{
    const int fds = open_fd_count();
    const char *hosts[] = {"", NULL};

    for (size_t i = 0; i < 2; i++) {
        int lfd = appsrv_listen(hosts[i], 0, 0, 0);
        appsrv_addr_t a;
        int cfd, sfd;

        cr_assert_geq(lfd, 0, "listen: %s", appsrv_strerror(lfd));
        a = local_addr(lfd);
        cr_assert_eq(a.u.sa.sa_family, AF_INET);
        cr_assert_eq(a.u.in4.sin_addr.s_addr, htonl(INADDR_ANY));
        cfd = appsrv_connect("127.0.0.1", appsrv_local_port(lfd), 5000);
        cr_assert_geq(cfd, 0, "connect: %s", appsrv_strerror(cfd));
        sfd = appsrv_accept(lfd, NULL, 0);
        cr_assert_geq(sfd, 0, "accept: %s", appsrv_strerror(sfd));
        close(sfd);
        close(cfd);
        close(lfd);
    }
    assert_fd_count(fds);
}

/* An invalid host name: glibc rejects it before sending any DNS query, so
 * the test stays on this machine (traffic only to loopback). */
#define BAD_HOST "a..b"

Test(sock, listen_bad_host_is_eai_noname)
{
    const int fds = open_fd_count();
    int rc = appsrv_listen(BAD_HOST, 0, 0, 0);

    /* A machine without a reachable resolver cannot say "no such name". */
    if (rc == APPSRV_EAI_AGAIN)
        cr_skip_test("resolver unavailable: %s", appsrv_strerror(rc));
    cr_assert_eq(rc, APPSRV_EAI_NONAME, "got %d (%s)", rc, appsrv_errname(rc));
    cr_assert_str_eq(appsrv_strerror(rc), "host or service not known");
    cr_assert_str_eq(appsrv_errname(rc), "APPSRV_EAI_NONAME");
    assert_fd_count(fds);
}

Test(sock, bad_port_is_einval)
{
    const int fds = open_fd_count();
    cr_assert_eq(appsrv_listen("127.0.0.1", 70000, 0, 0), -EINVAL);
    cr_assert_eq(appsrv_listen("127.0.0.1", 65536, 0, 0), -EINVAL);
    cr_assert_eq(appsrv_listen("127.0.0.1", -1, 0, 0), -EINVAL);
    cr_assert_eq(appsrv_connect("127.0.0.1", 70000, 100), -EINVAL);
    cr_assert_eq(appsrv_connect("127.0.0.1", -1, 100), -EINVAL);
    assert_fd_count(fds);
}

Test(sock, unknown_flags_are_einval)
{
    const int fds = open_fd_count();
    cr_assert_eq(appsrv_listen("127.0.0.1", 0, 0, 0x80u), -EINVAL);
    cr_assert_eq(appsrv_accept(0, NULL, 0x80u), -EINVAL);
    assert_fd_count(fds);
}

Test(sock, listen_address_in_use)
{
    const int fds = open_fd_count();
    int lfd = appsrv_listen("127.0.0.1", 0, 0, 0);
    int port, rc;

    cr_assert_geq(lfd, 0, "listen: %s", appsrv_strerror(lfd));
    port = appsrv_local_port(lfd);
    rc = appsrv_listen("127.0.0.1", port, 0, 0);
    cr_assert_eq(rc, -EADDRINUSE, "got %d (%s)", rc, appsrv_errname(rc));
    /* One side asking for SO_REUSEPORT is not enough. */
    rc = appsrv_listen("127.0.0.1", port, 0, APPSRV_LISTEN_REUSEPORT);
    cr_assert_eq(rc, -EADDRINUSE, "got %d (%s)", rc, appsrv_errname(rc));
    close(lfd);
    assert_fd_count(fds);
}

Test(sock, listen_reuseport_twice)
{
    const int fds = open_fd_count();
    int a = appsrv_listen("127.0.0.1", 0, 0, APPSRV_LISTEN_REUSEPORT);
    int b;

    cr_assert_geq(a, 0, "listen: %s", appsrv_strerror(a));
    cr_assert_eq(int_opt(a, SOL_SOCKET, SO_REUSEPORT), 1);
    b = appsrv_listen("127.0.0.1", appsrv_local_port(a), 0, APPSRV_LISTEN_REUSEPORT);
    cr_assert_geq(b, 0, "second listen: %s", appsrv_strerror(b));
    cr_assert_eq(appsrv_local_port(b), appsrv_local_port(a));
    close(b);
    close(a);
    assert_fd_count(fds);
}

Test(sock, local_port_errors)
{
    const int fds = open_fd_count();
    int p[2];

    cr_assert_eq(appsrv_local_port(-1), -EBADF);
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(appsrv_local_port(p[0]), -ENOTSOCK);
    close(p[0]);
    close(p[1]);
    assert_fd_count(fds);
}

/* ----------------------------------------------------------------- accept */

Test(sock, accept_fills_peer_and_sets_cloexec)
{
    const int fds = open_fd_count();
    int lfd = appsrv_listen("127.0.0.1", 0, 0, 0);
    int cfd, sfd;
    appsrv_addr_t peer;
    char text[64], want[64];

    cr_assert_geq(lfd, 0, "listen: %s", appsrv_strerror(lfd));
    cfd = appsrv_connect("127.0.0.1", appsrv_local_port(lfd), 5000);
    cr_assert_geq(cfd, 0, "connect: %s", appsrv_strerror(cfd));
    sfd = appsrv_accept(lfd, &peer, 0);
    cr_assert_geq(sfd, 0, "accept: %s", appsrv_strerror(sfd));

    cr_assert_eq(peer.u.sa.sa_family, AF_INET);
    cr_assert_eq(peer.len, sizeof(struct sockaddr_in));
    cr_assert_gt(appsrv_addr_format(&peer, text, sizeof text), 0);
    snprintf(want, sizeof want, "127.0.0.1:%d", appsrv_local_port(cfd));
    cr_assert_str_eq(text, want);

    cr_assert(is_cloexec(lfd));
    cr_assert(is_cloexec(cfd));
    cr_assert(is_cloexec(sfd));
    cr_assert_not(is_nonblock(cfd), "appsrv_connect returns a blocking fd");
    cr_assert_not(is_nonblock(sfd));
    close(sfd);
    close(cfd);
    close(lfd);
    assert_fd_count(fds);
}

Test(sock, accept_nonblock_flag_and_null_peer)
{
    const int fds = open_fd_count();
    int lfd = appsrv_listen("127.0.0.1", 0, 0, 0);
    int cfd, sfd;

    cr_assert_geq(lfd, 0, "listen: %s", appsrv_strerror(lfd));
    cfd = appsrv_connect("127.0.0.1", appsrv_local_port(lfd), 5000);
    cr_assert_geq(cfd, 0, "connect: %s", appsrv_strerror(cfd));
    sfd = appsrv_accept(lfd, NULL, APPSRV_ACCEPT_NONBLOCK);
    cr_assert_geq(sfd, 0, "accept: %s", appsrv_strerror(sfd));
    cr_assert(is_nonblock(sfd));
    cr_assert(is_cloexec(sfd));
    close(sfd);
    close(cfd);
    close(lfd);
    assert_fd_count(fds);
}

Test(sock, accept_nonblocking_listener_nothing_pending)
{
    const int fds = open_fd_count();
    int lfd = appsrv_listen("127.0.0.1", 0, 0, APPSRV_LISTEN_NONBLOCK);
    appsrv_addr_t peer;

    cr_assert_geq(lfd, 0, "listen: %s", appsrv_strerror(lfd));
    cr_assert(is_nonblock(lfd));
    cr_assert(is_cloexec(lfd));
    cr_assert_eq(appsrv_accept(lfd, &peer, 0), -EAGAIN);
    cr_assert_eq(appsrv_accept(lfd, NULL, APPSRV_ACCEPT_NONBLOCK), -EAGAIN);
    close(lfd);
    assert_fd_count(fds);
}

Test(sock, accept_bad_fd)
{
    const int fds = open_fd_count();
    cr_assert_eq(appsrv_accept(-1, NULL, 0), -EBADF);
    assert_fd_count(fds);
}

/* ---------------------------------------------------------------- connect */

Test(sock, connect_refused)
{
    const int fds = open_fd_count();
    int rc = appsrv_connect("127.0.0.1", closed_port(), 5000);

    cr_assert_eq(rc, -ECONNREFUSED, "got %d (%s)", rc, appsrv_errname(rc));
    assert_fd_count(fds);
}

Test(sock, connect_bad_host)
{
    const int fds = open_fd_count();
    int rc = appsrv_connect(BAD_HOST, 80, 1000);

    if (rc == APPSRV_EAI_AGAIN)
        cr_skip_test("resolver unavailable: %s", appsrv_strerror(rc));
    cr_assert_eq(rc, APPSRV_EAI_NONAME, "got %d (%s)", rc, appsrv_errname(rc));
    assert_fd_count(fds);
}

/*
 * With the accept queue full (backlog 1, nobody accepting), the kernel
 * drops further SYNs, so the next connect can only time out.
 */
Test(sock, connect_timeout_when_backlog_full)
{
    const int fds = open_fd_count();
    int lfd = appsrv_listen("127.0.0.1", 0, 1, 0);
    int clients[32], n = 0, rc = 0, port;
    int64_t t0 = 0, elapsed = 0;

    cr_assert_geq(lfd, 0, "listen: %s", appsrv_strerror(lfd));
    port = appsrv_local_port(lfd);
    while (n < 32) {
        t0 = mono_ms();
        rc = appsrv_connect("127.0.0.1", port, 200);
        elapsed = mono_ms() - t0;
        if (rc < 0)
            break;
        clients[n++] = rc;
    }
    for (int i = 0; i < n; i++)
        close(clients[i]);
    close(lfd);
    if (rc >= 0)
        cr_skip_test("this kernel queued 32 connections on backlog 1");
    cr_assert_eq(rc, -ETIMEDOUT, "got %d (%s)", rc, appsrv_errname(rc));
    cr_assert_geq(elapsed, 200, "returned after %lld ms", (long long)elapsed);
    assert_fd_count(fds);
}

/* ------------------------------------------------------------------- recv */

Test(sock, recv_timeout_fires_not_early)
{
    const int fds = open_fd_count();
    int cfd, sfd, rc = tcp_pair(&cfd, &sfd);
    char buf[16];
    int64_t t0, elapsed;

    cr_assert_eq(rc, 0, "pair: %s", appsrv_strerror(rc));
    t0 = mono_ms();
    cr_assert_eq(appsrv_recv(cfd, buf, sizeof buf, 150), -ETIMEDOUT);
    elapsed = mono_ms() - t0;
    cr_assert_geq(elapsed, 150, "returned after %lld ms", (long long)elapsed);

    /* 0: do not wait at all. */
    cr_assert_eq(appsrv_recv(cfd, buf, sizeof buf, 0), -ETIMEDOUT);

    /* Data already there is returned whatever the timeout. */
    cr_assert_eq(appsrv_send_all(sfd, "hello", 5, 1000), 5);
    cr_assert_eq(appsrv_recv(cfd, buf, sizeof buf, 1000), 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    close(sfd);
    close(cfd);
    assert_fd_count(fds);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* Signals without SA_RESTART interrupt poll(); the deadline must hold. */
Test(sock, recv_eintr_keeps_deadline)
{
    const int fds = open_fd_count();
    int cfd, sfd, rc = tcp_pair(&cfd, &sfd);
    struct sigaction sa, old;
    struct itimerval every_20ms = {{0, 20000}, {0, 20000}}, off = {{0, 0}, {0, 0}};
    char buf[16];
    int64_t t0, elapsed;
    ssize_t n;

    cr_assert_eq(rc, 0, "pair: %s", appsrv_strerror(rc));
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGALRM, &sa, &old), 0);
    alarms = 0;
    cr_assert_eq(setitimer(ITIMER_REAL, &every_20ms, NULL), 0);

    t0 = mono_ms();
    n = appsrv_recv(cfd, buf, sizeof buf, 300);
    elapsed = mono_ms() - t0;

    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    cr_assert_eq(n, -ETIMEDOUT, "got %zd (%s)", n, appsrv_errname((int)n));
    cr_assert_geq(elapsed, 300, "returned after %lld ms", (long long)elapsed);
    cr_assert_gt(alarms, 0, "no signal arrived during the wait");
    close(sfd);
    close(cfd);
    assert_fd_count(fds);
}

Test(sock, recv_returns_zero_on_peer_close)
{
    const int fds = open_fd_count();
    int cfd, sfd, rc = tcp_pair(&cfd, &sfd);
    char buf[16];

    cr_assert_eq(rc, 0, "pair: %s", appsrv_strerror(rc));
    cr_assert_eq(appsrv_send_all(sfd, "bye", 3, 1000), 3);
    close(sfd);
    cr_assert_eq(appsrv_recv(cfd, buf, sizeof buf, 5000), 3);
    cr_assert_eq(appsrv_recv(cfd, buf, sizeof buf, 5000), 0);
    cr_assert_eq(appsrv_recv(cfd, buf, sizeof buf, -1), 0);
    close(cfd);
    assert_fd_count(fds);
}

Test(sock, recv_on_nonblocking_fd_waits)
{
    const int fds = open_fd_count();
    int lfd = appsrv_listen("127.0.0.1", 0, 0, 0);
    int cfd, sfd;
    char buf[16];

    cr_assert_geq(lfd, 0, "listen: %s", appsrv_strerror(lfd));
    cfd = appsrv_connect("127.0.0.1", appsrv_local_port(lfd), 5000);
    cr_assert_geq(cfd, 0, "connect: %s", appsrv_strerror(cfd));
    sfd = appsrv_accept(lfd, NULL, APPSRV_ACCEPT_NONBLOCK);
    cr_assert_geq(sfd, 0, "accept: %s", appsrv_strerror(sfd));

    cr_assert_eq(appsrv_recv(sfd, buf, sizeof buf, 50), -ETIMEDOUT, "not -EAGAIN");
    cr_assert_eq(appsrv_send_all(cfd, "ping", 4, 1000), 4);
    cr_assert_eq(appsrv_recv(sfd, buf, sizeof buf, 5000), 4);
    cr_assert_eq(memcmp(buf, "ping", 4), 0);
    close(sfd);
    close(cfd);
    close(lfd);
    assert_fd_count(fds);
}

/* --------------------------------------------------------------- send_all */

#define BIG_LEN ((size_t)32 << 20)

struct slow_reader {
    int fd;
    const unsigned char *want; /* what the sender sends; read-only meanwhile */
    size_t want_len;
    size_t got;
    ssize_t mismatch_at; /* -1: every byte matched */
    ssize_t last_rc;
};

/* Reads in 16 KiB pieces with a 1 ms nap every 256 KiB (~0.2 s of naps in
 * all), so the sender keeps meeting a full socket buffer. No asserts off the main
 * thread: results go back in the struct. */
static void *slow_reader_main(void *arg)
{
    struct slow_reader *r = arg;
    unsigned char buf[16384];
    unsigned reads = 0;

    while (r->got < r->want_len) {
        ssize_t n = appsrv_recv(r->fd, buf, sizeof buf, 5000);

        r->last_rc = n;
        if (n <= 0)
            break;
        if ((size_t)n > r->want_len - r->got) {
            r->mismatch_at = (ssize_t)r->want_len; /* more than was sent */
            break;
        }
        if (r->mismatch_at < 0 && memcmp(buf, r->want + r->got, (size_t)n) != 0) {
            for (ssize_t i = 0; r->mismatch_at < 0; i++) {
                if (buf[i] != r->want[r->got + (size_t)i])
                    r->mismatch_at = (ssize_t)r->got + i;
            }
        }
        r->got += (size_t)n;
        if (++reads % 16 == 0)
            sleep_ms(1);
    }
    return NULL;
}

Test(sock, send_all_32mib_to_slow_reader)
{
    const int fds = open_fd_count();
    int cfd, sfd, rc = tcp_pair(&cfd, &sfd);
    unsigned char *data = malloc(BIG_LEN);
    struct slow_reader r = {.want = data, .want_len = BIG_LEN, .mismatch_at = -1};
    pthread_t th;
    ssize_t n;
    char extra;

    cr_assert_eq(rc, 0, "pair: %s", appsrv_strerror(rc));
    cr_assert_not_null(data);
    /* Not periodic in 256 or any buffer size: a lost or repeated piece shows. */
    for (size_t i = 0; i < BIG_LEN; i++)
        data[i] = (uint8_t)(((uint32_t)i * 2654435761u) >> 24);
    r.fd = sfd;
    cr_assert_eq(pthread_create(&th, NULL, slow_reader_main, &r), 0);

    n = appsrv_send_all(cfd, data, BIG_LEN, 5000);
    cr_assert_eq(pthread_join(th, NULL), 0);
    free(data);
    cr_assert_eq(n, (ssize_t)BIG_LEN, "send_all: %zd (%s)", n, appsrv_errname((int)n));
    cr_assert_eq(r.got, BIG_LEN, "reader got %zu bytes, last rc %zd", r.got, r.last_rc);
    cr_assert_eq(r.mismatch_at, -1, "first wrong byte at %zd", r.mismatch_at);

    /* Nothing more than what was sent. */
    close(cfd);
    cr_assert_eq(appsrv_recv(sfd, &extra, 1, 5000), 0);
    close(sfd);
    assert_fd_count(fds);
}

/* SIGPIPE stays at its default action: if the library raised it, the test
 * process would die and Criterion would report a crash. */
Test(sock, send_all_to_closed_peer_no_sigpipe)
{
    const int fds = open_fd_count();
    int cfd, sfd, rc = tcp_pair(&cfd, &sfd);
    static char chunk[65536];
    sigset_t pipe_set;
    ssize_t n = 0;

    cr_assert_eq(rc, 0, "pair: %s", appsrv_strerror(rc));
    cr_assert_neq(signal(SIGPIPE, SIG_DFL), SIG_ERR);
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    cr_assert_eq(sigprocmask(SIG_UNBLOCK, &pipe_set, NULL), 0);

    close(sfd);
    /* The first sends may land in the buffer; the peer's RST ends it. */
    for (int i = 0; i < 400; i++) {
        n = appsrv_send_all(cfd, chunk, sizeof chunk, 1000);
        if (n < 0)
            break;
        sleep_ms(5);
    }
    cr_assert(n == -EPIPE || n == -ECONNRESET, "got %zd (%s)", n, appsrv_errname((int)n));
    /* And again, now that the connection is known dead. */
    n = appsrv_send_all(cfd, chunk, sizeof chunk, 1000);
    cr_assert(n == -EPIPE || n == -ECONNRESET, "got %zd (%s)", n, appsrv_errname((int)n));
    close(cfd);
    assert_fd_count(fds);
}

Test(sock, send_all_times_out_when_peer_never_reads)
{
    const int fds = open_fd_count();
    int lfd = appsrv_listen("127.0.0.1", 0, 0, 0);
    int small = 4096, cfd, sfd;
    size_t len = (size_t)16 << 20;
    char *data = calloc(1, len);
    int64_t t0, elapsed;
    ssize_t n;

    cr_assert_geq(lfd, 0, "listen: %s", appsrv_strerror(lfd));
    cr_assert_not_null(data);
    /* Set on the listener so the accepted socket starts with a small window. */
    cr_assert_eq(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    cfd = appsrv_connect("127.0.0.1", appsrv_local_port(lfd), 5000);
    cr_assert_geq(cfd, 0, "connect: %s", appsrv_strerror(cfd));
    cr_assert_eq(setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    sfd = appsrv_accept(lfd, NULL, 0);
    cr_assert_geq(sfd, 0, "accept: %s", appsrv_strerror(sfd));

    t0 = mono_ms();
    n = appsrv_send_all(cfd, data, len, 200);
    elapsed = mono_ms() - t0;
    free(data);
    cr_assert_eq(n, -ETIMEDOUT, "got %zd (%s)", n, appsrv_errname((int)n));
    cr_assert_geq(elapsed, 200, "returned after %lld ms", (long long)elapsed);
    close(sfd);
    close(cfd);
    close(lfd);
    assert_fd_count(fds);
}

Test(sock, send_all_zero_bytes)
{
    const int fds = open_fd_count();
    int cfd, sfd, rc = tcp_pair(&cfd, &sfd);

    cr_assert_eq(rc, 0, "pair: %s", appsrv_strerror(rc));
    cr_assert_eq(appsrv_send_all(cfd, "", 0, 0), 0);
    close(sfd);
    close(cfd);
    assert_fd_count(fds);
}

/* ----------------------------------------------------------- addr_format */

Test(sock, addr_format)
{
    const int fds = open_fd_count();
    appsrv_addr_t a;
    char buf[64];

    memset(&a, 0, sizeof a);
    a.u.in4.sin_family = AF_INET;
    a.u.in4.sin_port = htons(80);
    cr_assert_eq(inet_pton(AF_INET, "1.2.3.4", &a.u.in4.sin_addr), 1);
    a.len = sizeof a.u.in4;
    cr_assert_eq(appsrv_addr_format(&a, buf, sizeof buf), 10);
    cr_assert_str_eq(buf, "1.2.3.4:80");

    /* Exactly enough room needs the NUL too. */
    cr_assert_eq(appsrv_addr_format(&a, buf, 11), 10);
    cr_assert_eq(appsrv_addr_format(&a, buf, 10), -ENOSPC);
    cr_assert_str_eq(buf, "", "no truncated address is left in buf");
    cr_assert_eq(appsrv_addr_format(&a, buf, 4), -ENOSPC);
    cr_assert_eq(appsrv_addr_format(&a, NULL, 0), -ENOSPC);

    memset(&a, 0, sizeof a);
    a.u.in6.sin6_family = AF_INET6;
    a.u.in6.sin6_port = htons(8080);
    a.u.in6.sin6_addr = in6addr_loopback;
    a.len = sizeof a.u.in6;
    cr_assert_eq(appsrv_addr_format(&a, buf, sizeof buf), 10);
    cr_assert_str_eq(buf, "[::1]:8080");
    cr_assert_eq(appsrv_addr_format(&a, buf, 3), -ENOSPC);

    memset(&a, 0, sizeof a);
    a.u.sa.sa_family = AF_UNIX;
    cr_assert_eq(appsrv_addr_format(&a, buf, sizeof buf), -EAFNOSUPPORT);
    assert_fd_count(fds);
}
