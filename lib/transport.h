/* SPDX-License-Identifier: MIT */
/*
 * transport.h - the seam under a connection: a table of byte-stream
 * operations over one socket. conn.c reads, writes, shuts down and closes
 * only through it, so a transport that is not a bare socket (TLS: a
 * handshake, records, buffered plaintext) plugs in without conn.c
 * knowing. The plain-socket transport is transport_plain.c.
 *
 * Return conventions (the same for every transport): read returns bytes
 * (> 0), 0 at the peer's orderly end, -EAGAIN when nothing is available
 * now, or -errno; writev returns bytes taken (> 0), -EAGAIN when the
 * transport cannot take any now, or -errno. Neither blocks or raises
 * SIGPIPE. Loop thread only.
 */
#ifndef APPSRV_TRANSPORT_H
#define APPSRV_TRANSPORT_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common.h"

typedef struct appsrv__tsock appsrv__tsock_t;

/* What appsrv__transport_t.info reports (request accessors). */
enum { APPSRV__TINFO_VERSION = 0, APPSRV__TINFO_CIPHER, APPSRV__TINFO_SNI };

typedef struct appsrv__transport {
    const char *name;
    /* At accept, before any other operation: makes the per-connection
     * state (s->data) from the listener's ldata. Returns 0 or -errno (the
     * caller then closes with s->data NULL). NULL: nothing to make. */
    int (*attach)(appsrv__tsock_t *s, void *ldata);
    /* Advances a handshake. Returns 1 when done (bytes may flow), 0 when
     * it waits for the socket (readable or writable: the connection
     * watches both), or -errno. NULL: no handshake. */
    int (*handshake)(appsrv__tsock_t *s);
    ssize_t (*read)(appsrv__tsock_t *s, void *buf, size_t len);
    ssize_t (*writev)(appsrv__tsock_t *s, const struct iovec *iov, int iovcnt);
    /* True when a read may make progress without a new EPOLLIN edge:
     * plaintext or records already buffered, the socket not known to be
     * drained, or a read that waited for the socket to become writable.
     * conn.c asks after a short read and on EPOLLOUT. NULL: never. */
    bool (*pending)(const appsrv__tsock_t *s);
    /* Ends our sending side (FIN, or close_notify then FIN). Best effort. */
    void (*shutdown)(appsrv__tsock_t *s);
    /* Releases the transport's state and closes the fd. */
    void (*close)(appsrv__tsock_t *s);
    /* A NUL-terminated fact about the secured session (APPSRV__TINFO_*),
     * or NULL when it has none (yet, or any more). NULL op: a cleartext
     * transport. */
    const char *(*info)(const appsrv__tsock_t *s, int what);
    /* Sends up to len bytes of the file fd from offset off straight from
     * the page cache (sendfile(2)): bytes sent (> 0), 0 when the file
     * ended early, -EAGAIN, or -errno (-EINVAL/-ENOSYS: this file cannot
     * be sent so; the caller falls back to pread + writev). NULL: the
     * transport cannot (TLS without kTLS): conn.c always falls back. */
    ssize_t (*sendfile)(appsrv__tsock_t *s, int fd, off_t off, size_t len);
} appsrv__transport_t;

/* A connection's socket as its transport sees it. */
struct appsrv__tsock {
    int fd;
    const appsrv__transport_t *tp;
    void *data; /* the transport's per-connection state (NULL: plain) */
};

/* Plain TCP (or any stream socket): recv/sendmsg with MSG_NOSIGNAL. */
extern const appsrv__transport_t appsrv__transport_plain;

#endif /* APPSRV_TRANSPORT_H */
