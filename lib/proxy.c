/* SPDX-License-Identifier: MIT */
/*
 * proxy.c - connections behind a load balancer: the PROXY protocol
 * preamble (proxy.h). It reads the raw socket, before the transport (so a
 * TLS listener gets the header before the ClientHello): MSG_PEEK shows
 * what has arrived, proxy_proto.c parses it, and only the header's own
 * bytes are consumed, so nothing after it (the request, a ClientHello) is
 * taken from the transport. Called by conn.c through the preamble hook
 * that listen.c sets on a listener's connections.
 */
#include "proxy.h"

#include <errno.h>
#include <sys/socket.h>

#include "climit.h"
#include "proxy_proto.h"
#include "stats.h"

static int pp_read(appsrv__conn_t *c);

int appsrv__proxy_preamble(appsrv__conn_t *c)
{
    int r = pp_read(c);
    if (r < 0)
        appsrv__event(&c->w->stats, c->w->cfg, c->w->loop.now_ms, APPSRV__EV_PROTOCOL_ERROR,
                      APPSRV_LEVEL_INFO,
                      r == -EPROTO ? "bad PROXY protocol header" : appsrv_strerror(r), r, 0,
                      &c->peer);
    return r;
}

static void limit_release(appsrv__conn_t *c)
{
    appsrv__climit_conn_close(c->w->climit, appsrv__conn_client(c));
}

int appsrv__limit_preamble(appsrv__conn_t *c)
{
    bool counted;
    if (!appsrv__climit_conn_open(c->w->climit, appsrv__conn_client(c), c->w->loop.now_ms,
                                  &counted)) {
        appsrv__event(&c->w->stats, c->w->cfg, c->w->loop.now_ms, APPSRV__EV_CONN_REFUSED,
                      APPSRV_LEVEL_INFO, "per-client connection limit", -EDQUOT, 0,
                      appsrv__conn_client(c));
        return -EDQUOT;
    }
    if (counted)
        c->on_close = limit_release;
    return 1;
}

int appsrv__proxy_limit_preamble(appsrv__conn_t *c)
{
    int r = appsrv__proxy_preamble(c);
    if (r != 1)
        return r;
    return appsrv__limit_preamble(c);
}

static int pp_read(appsrv__conn_t *c)
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
