/* SPDX-License-Identifier: MIT */
/*
 * proxy.c - connections behind a load balancer: the PROXY protocol
 * preamble (proxy.h). It reads the raw socket, before the transport (so a
 * TLS listener gets the header before the ClientHello): MSG_PEEK shows
 * what has arrived, proxy_proto.c parses it, and only the header's own
 * bytes are consumed, so nothing after it (the request, a ClientHello) is
 * taken from the transport. Called by conn.c through the preamble hook
 * that server.c sets on a listener's connections.
 */
#include "proxy.h"

#include <errno.h>
#include <sys/socket.h>

#include "proxy_proto.h"

int appsrv__proxy_preamble(appsrv__conn_t *c)
{
    unsigned char buf[APPSRV__PP_MAX];
    ssize_t n;
    do
        n = recv(c->sock.fd, buf, sizeof(buf), MSG_PEEK);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    if (n == 0)
        return -ECONNRESET;
    appsrv__pp_t pp;
    int r = appsrv__pp_parse(buf, (size_t)n, &pp);
    if (r < 0)
        return r;
    if (r == 0)
        return (size_t)n == sizeof(buf) ? -EPROTO : 0;
    ssize_t m;
    do
        m = recv(c->sock.fd, buf, (size_t)r, 0);
    while (m < 0 && errno == EINTR);
    if (m != r)
        return m < 0 ? -errno : -EIO;
    if (pp.cmd == APPSRV__PP_PROXY) {
        c->client = pp.src;
        c->has_client = true;
    }
    return 1;
}
