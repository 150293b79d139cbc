/* SPDX-License-Identifier: MIT */
/*
 * tls.h - the TLS module's private seam. tls.c owns the public context
 * (appsrv_tls_t: certificates, SNI table, ticket keys, reloads) and hands
 * out generations of OpenSSL contexts; tls_transport.c is the
 * per-connection transport (handshake, records, close_notify) that
 * server.c attaches to HTTPS listeners. A build without OpenSSL
 * (make TLS=no) compiles tls_none.c instead: the same names, every
 * public call -ENOTSUP, and a transport that refuses to attach.
 */
#ifndef APPSRV_TLS_H
#define APPSRV_TLS_H

#include "common.h"
#include "transport.h"

/* The transport for HTTPS listeners; its attach step takes the
 * listener's appsrv_tls_t. */
extern const appsrv__transport_t appsrv__transport_tls;

/* 0 when tls can serve a listener, -EINVAL (NULL) or -ENOTSUP (built
 * without TLS). */
int appsrv__tls_usable(const appsrv_tls_t *tls);

#ifdef APPSRV_HAVE_TLS
#include <openssl/ssl.h>

/*
 * One generation of certificates: the default SSL_CTX and the SNI ones.
 * A reload or an SNI addition publishes a new generation; a handshake
 * holds the generation it started with (the SNI callback looks names up
 * in it) until it completes, so a swap never frees contexts under it.
 * An SSL_CTX outlives its generation while connections use it (SSL_new
 * and SSL_set_SSL_CTX take their own references).
 */
typedef struct appsrv__tls_gen appsrv__tls_gen_t;

/* The current generation, with a reference for the caller. Any thread. */
appsrv__tls_gen_t *appsrv__tls_gen_get(appsrv_tls_t *tls);
/* Drops a reference taken by appsrv__tls_gen_get(). Any thread. */
void appsrv__tls_gen_put(appsrv__tls_gen_t *g);
/* The generation's default context (what a new SSL is made from). */
SSL_CTX *appsrv__tls_gen_ctx(const appsrv__tls_gen_t *g);
/* The SSL ex_data index where a connection keeps its generation while it
 * handshakes (read by the SNI callback). */
int appsrv__tls_gen_index(void);
#endif

#endif /* APPSRV_TLS_H */
