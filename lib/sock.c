/* SPDX-License-Identifier: MIT */
/*
 * sock.c - the socket layer: resolve (getaddrinfo), listen, connect, accept,
 * recv and send-all with timeouts, address formatting. Calls only libc;
 * called by hosts directly and by the server layer. Invariants: every fd
 * it creates is close-on-exec from birth (SOCK_CLOEXEC, never a later
 * fcntl); it never raises SIGPIPE (MSG_NOSIGNAL); every wait is a poll()
 * bounded by a CLOCK_MONOTONIC deadline that EINTR does not extend; errno
 * is captured before close() can clobber it; nothing is printed.
 */
#include <appsrv.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#define LISTEN_FLAGS (APPSRV_LISTEN_NONBLOCK | APPSRV_LISTEN_REUSEPORT | APPSRV_LISTEN_V6ONLY)
#define NO_DEADLINE INT64_C(-1)

/* ----------------------------------------------------------------- time */

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The deadline timeout_ms from now, or NO_DEADLINE when timeout_ms < 0. */
static int64_t deadline_after(int timeout_ms)
{
    if (timeout_ms < 0)
        return NO_DEADLINE;
    return mono_ns() + (int64_t)timeout_ms * 1000000;
}

/*
 * Milliseconds left until deadline for poll(): -1 for none, 0 once passed.
 * Rounded up, so a poll() that times out has really reached the deadline.
 */
static int poll_ms_until(int64_t deadline)
{
    int64_t left;

    if (deadline == NO_DEADLINE)
        return -1;
    left = deadline - mono_ns();
    if (left <= 0)
        return 0;
    left = (left + 999999) / 1000000;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/*
 * Waits until fd is ready for events, or in an error or hang-up state (the
 * next I/O call reports which), or until deadline. Retries EINTR with the
 * time that is left. Returns 0, -ETIMEDOUT or -errno.
 */
static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int n;

    for (;;) {
        n = poll(&pfd, 1, poll_ms_until(deadline));
        if (n > 0)
            return (pfd.revents & POLLNVAL) ? -EBADF : 0;
        if (n == 0) {
            /* The clock is the judge, in case poll() ever wakes up early. */
            if (deadline != NO_DEADLINE && mono_ns() >= deadline)
                return -ETIMEDOUT;
            continue;
        }
        if (errno != EINTR)
            return -errno;
    }
}

/* -------------------------------------------------------------- resolve */

/* Maps a getaddrinfo() failure to an APPSRV_EAI_* code (errno for EAI_SYSTEM). */
static int map_gai_error(int gai, int saved_errno)
{
    switch (gai) {
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
        return APPSRV_EAI_ADDRFAMILY;
#endif
    case EAI_AGAIN:
        return APPSRV_EAI_AGAIN;
    case EAI_BADFLAGS:
        return APPSRV_EAI_BADFLAGS;
    case EAI_FAIL:
        return APPSRV_EAI_FAIL;
    case EAI_FAMILY:
        return APPSRV_EAI_FAMILY;
    case EAI_MEMORY:
        return APPSRV_EAI_MEMORY;
#ifdef EAI_NODATA
    case EAI_NODATA:
        return APPSRV_EAI_NODATA;
#endif
    case EAI_NONAME:
        return APPSRV_EAI_NONAME;
    case EAI_SERVICE:
        return APPSRV_EAI_SERVICE;
    case EAI_SOCKTYPE:
        return APPSRV_EAI_SOCKTYPE;
    case EAI_SYSTEM:
        return saved_errno > 0 ? -saved_errno : APPSRV_EAI_SYSTEM;
    default:
        return APPSRV_EAI_OTHER;
    }
}

/*
 * Resolves host:port for a TCP socket. The port is passed as a numeric
 * service so that no services database lookup happens. On success *res
 * owns a list the caller frees with freeaddrinfo().
 */
static int resolve(const char *host, int port, bool passive, struct addrinfo **res)
{
    struct addrinfo hints;
    char service[8];
    int gai;

    if (port < 0 || port > 65535)
        return -EINVAL;
    snprintf(service, sizeof service, "%d", port);

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    if (host && host[0] == '\0')
        host = NULL;
    /*
     * AI_PASSIVE with no host yields both wildcards in an order set by
     * gai.conf; the API promises IPv4 for "no host" and IPv6 only for "::".
     * Without AI_PASSIVE, no host means loopback, which suits connect.
     */
    if (passive && !host)
        host = "0.0.0.0";

    errno = 0;
    gai = getaddrinfo(host, service, &hints, res);
    if (gai != 0)
        return map_gai_error(gai, errno);
    return 0;
}

/* --------------------------------------------------------------- listen */

static int set_int_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

/* socket + options + bind + listen on one resolved address. */
static int listen_one(const struct addrinfo *ai, int backlog, unsigned flags)
{
    int type = ai->ai_socktype | SOCK_CLOEXEC;
    int fd, rc;

    if (flags & APPSRV_LISTEN_NONBLOCK)
        type |= SOCK_NONBLOCK;
    fd = socket(ai->ai_family, type, ai->ai_protocol);
    if (fd < 0)
        return -errno;

    /* Lets a restarted server bind while old connections sit in TIME_WAIT. */
    rc = set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc < 0)
        goto close_fd;
    if (flags & APPSRV_LISTEN_REUSEPORT) {
        rc = set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
        if (rc < 0)
            goto close_fd;
    }
    /* Set both ways so "::" does not depend on net.ipv6.bindv6only. */
    if (ai->ai_family == AF_INET6) {
        rc = set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, !!(flags & APPSRV_LISTEN_V6ONLY));
        if (rc < 0)
            goto close_fd;
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
        rc = -errno;
        goto close_fd;
    }
    return fd;

close_fd:
    close(fd);
    return rc;
}

int appsrv_listen(const char *host, int port, int backlog, unsigned flags)
{
    struct addrinfo *res, *ai;
    int rc;

    if (flags & ~LISTEN_FLAGS)
        return -EINVAL;
    if (backlog <= 0)
        backlog = SOMAXCONN;
    rc = resolve(host, port, true, &res);
    if (rc < 0)
        return rc;

    rc = -EADDRNOTAVAIL; /* only if the list were empty */
    for (ai = res; ai; ai = ai->ai_next) {
        rc = listen_one(ai, backlog, flags);
        if (rc >= 0)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

int appsrv_local_port(int fd)
{
    appsrv_addr_t addr;

    addr.len = sizeof addr.u;
    if (getsockname(fd, &addr.u.sa, &addr.len) < 0)
        return -errno;
    switch (addr.u.sa.sa_family) {
    case AF_INET:
        return ntohs(addr.u.in4.sin_port);
    case AF_INET6:
        return ntohs(addr.u.in6.sin6_port);
    default:
        return -EAFNOSUPPORT;
    }
}

/* -------------------------------------------------------------- connect */

static int set_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* Connects to one resolved address by deadline; returns a blocking fd. */
static int connect_one(const struct addrinfo *ai, int64_t deadline)
{
    socklen_t len = sizeof(int);
    int fd, rc, soerr = 0;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return -errno;

    /* EINTR on a non-blocking connect: the handshake goes on; wait for it. */
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            rc = -errno;
            goto close_fd;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc < 0)
            goto close_fd;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) {
            rc = -errno;
            goto close_fd;
        }
        if (soerr != 0) {
            rc = -soerr;
            goto close_fd;
        }
    }
    rc = set_blocking(fd);
    if (rc < 0)
        goto close_fd;
    return fd;

close_fd:
    close(fd);
    return rc;
}

int appsrv_connect(const char *host, int port, int timeout_ms)
{
    int64_t deadline = deadline_after(timeout_ms);
    struct addrinfo *res, *ai;
    int rc;

    rc = resolve(host, port, false, &res);
    if (rc < 0)
        return rc;

    /* One deadline for the whole call: the next address gets what is left. */
    rc = -EADDRNOTAVAIL; /* only if the list were empty */
    for (ai = res; ai; ai = ai->ai_next) {
        rc = connect_one(ai, deadline);
        if (rc >= 0 || (deadline != NO_DEADLINE && poll_ms_until(deadline) == 0))
            break;
    }
    freeaddrinfo(res);
    return rc;
}

/* --------------------------------------------------------------- accept */

int appsrv_accept(int lfd, appsrv_addr_t *peer, unsigned flags)
{
    int type = SOCK_CLOEXEC;
    int fd;

    if (flags & ~APPSRV_ACCEPT_NONBLOCK)
        return -EINVAL;
    if (flags & APPSRV_ACCEPT_NONBLOCK)
        type |= SOCK_NONBLOCK;
    if (peer)
        memset(peer, 0, sizeof *peer);

    for (;;) {
        if (peer) {
            peer->len = sizeof peer->u;
            fd = accept4(lfd, &peer->u.sa, &peer->len, type);
        } else {
            fd = accept4(lfd, NULL, NULL, type);
        }
        if (fd >= 0)
            return fd;
        /* ECONNABORTED: the peer reset before we got to it; take the next. */
        if (errno != EINTR && errno != ECONNABORTED)
            return -errno;
    }
}

/* ------------------------------------------------------------ recv/send */

/*
 * MSG_DONTWAIT makes the call behave the same on blocking and non-blocking
 * fds, and never block past the deadline when another thread took the
 * bytes that poll() saw.
 */
ssize_t appsrv_recv(int fd, void *buf, size_t len, int timeout_ms)
{
    int64_t deadline = deadline_after(timeout_ms);
    ssize_t n;
    int rc;

    for (;;) {
        n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        rc = wait_fd(fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
}

ssize_t appsrv_send_all(int fd, const void *buf, size_t len, int timeout_ms)
{
    const char *p = buf;
    size_t off = 0;
    int64_t deadline = 0;
    bool waiting = false;
    ssize_t n;
    int rc;

    if (len > SSIZE_MAX)
        return -EINVAL;
    while (off < len) {
        n = send(fd, p + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
            waiting = false; /* progress: the next wait gets a full timeout */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        /* A spurious wake-up does not restart the clock; only progress does. */
        if (!waiting) {
            deadline = deadline_after(timeout_ms);
            waiting = true;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)len;
}

/* ---------------------------------------------------------------- format */

int appsrv_addr_format(const appsrv_addr_t *addr, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    int n;

    if (!addr || (!buf && cap > 0))
        return -EINVAL;
    switch (addr->u.sa.sa_family) {
    case AF_INET:
        inet_ntop(AF_INET, &addr->u.in4.sin_addr, host, sizeof host);
        n = snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(addr->u.in4.sin_port));
        break;
    case AF_INET6:
        inet_ntop(AF_INET6, &addr->u.in6.sin6_addr, host, sizeof host);
        /* A link-local address means nothing without its interface. */
        if (addr->u.in6.sin6_scope_id != 0)
            n = snprintf(buf, cap, "[%s%%%u]:%u", host, (unsigned)addr->u.in6.sin6_scope_id,
                         (unsigned)ntohs(addr->u.in6.sin6_port));
        else
            n = snprintf(buf, cap, "[%s]:%u", host, (unsigned)ntohs(addr->u.in6.sin6_port));
        break;
    default:
        return -EAFNOSUPPORT;
    }
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= cap) {
        if (cap > 0)
            buf[0] = '\0'; /* never hand back a truncated address */
        return -ENOSPC;
    }
    return n;
}
