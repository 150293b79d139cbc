/* SPDX-License-Identifier: MIT */
/*
 * transport_plain.c - the plain-socket transport: recv() and sendmsg()
 * with MSG_NOSIGNAL, EINTR retried, EAGAIN reported as -EAGAIN. No
 * handshake, no buffered bytes; file bodies go out with sendfile(2). Used by conn.c through the transport
 * table; server.c chooses it for cleartext listeners.
 */
#include "transport.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t plain_read(appsrv__tsock_t *s, void *buf, size_t len)
{
    ssize_t n;
    do
        n = recv(s->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static ssize_t plain_writev(appsrv__tsock_t *s, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)(uintptr_t)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n;
    do
        n = sendmsg(s->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

/* sendfile(2) has no MSG_NOSIGNAL: SIGPIPE is blocked in this thread
 * around the call, and one it raised (the peer is gone) is taken back
 * before the mask is restored (after an EPIPE or a short count, the
 * only times it can have been raised), so the host never sees it. A thread that
 * already blocks SIGPIPE is left as it is. */
static ssize_t plain_sendfile(appsrv__tsock_t *s, int fd, off_t off, size_t len)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    bool was_blocked = sigismember(&old, SIGPIPE) == 1;
    ssize_t n;
    do
        n = sendfile(s->fd, fd, &off, len);
    while (n < 0 && errno == EINTR);
    int err = errno;
    if (!was_blocked) {
        /* The peer may go mid-call: a short count can come with the
         * signal too. */
        if (n < 0 ? err == EPIPE : (size_t)n < len) {
            const struct timespec zero = {0, 0};
            while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
                ;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    return n < 0 ? -err : n;
}

static void plain_shutdown(appsrv__tsock_t *s)
{
    shutdown(s->fd, SHUT_WR);
}

static void plain_close(appsrv__tsock_t *s)
{
    /* close(2) also removes the fd from epoll: it is never dup'd. */
    close(s->fd);
    s->fd = -1;
}

const appsrv__transport_t appsrv__transport_plain = {
    .name = "plain",
    .attach = NULL,
    .handshake = NULL,
    .read = plain_read,
    .writev = plain_writev,
    .pending = NULL,
    .shutdown = plain_shutdown,
    .close = plain_close,
    .info = NULL,
    .sendfile = plain_sendfile,
};
