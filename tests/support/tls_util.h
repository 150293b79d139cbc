/* SPDX-License-Identifier: MIT */
/*
 * tls_util.h - helpers for the TLS end-to-end tests (test_e2e_tls*.c): a
 * throw-away PKI made with the openssl command (root CA, intermediate,
 * leaves), the shell runner of sh.h under its older names, an
 * in-process server with both an HTTP and an HTTPS listener, a blocking
 * OpenSSL client, and a relay that lets the plaintext e2e client (e2e.h)
 * run the same scenarios over TLS. Built only with TLS (APPSRV_HAVE_TLS);
 * like e2e.h, helpers never assert and return 0 or a negative errno.
 */
#ifndef APPSRV_TEST_TLS_UTIL_H
#define APPSRV_TEST_TLS_UTIL_H

#ifdef APPSRV_HAVE_TLS

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "e2e.h"
#include "sh.h"

/* Files of the test PKI, all under dir. "localhost" leaves carry
 * DNS:localhost and IP:127.0.0.1; alt covers alt.test and *.wild.test. */
typedef struct tls_pki {
    char dir[64];
    char ca[128];                      /* root CA: the trust anchor */
    char chain[128], key[128];         /* leaf CN=localhost-1 + intermediate */
    char chain2[128], key2[128];       /* leaf CN=localhost-2 + intermediate */
    char alt_chain[128], alt_key[128]; /* leaf CN=alt.test + intermediate */
    char enc_key[128];                 /* key of chain, encrypted: "secret" */
} tls_pki_t;

/* Makes the PKI in a new temp dir (about 0.2 s). Returns 0 or -EIO. */
int tls_pki_make(tls_pki_t *p);
void tls_pki_remove(const tls_pki_t *p);

/* The shell runner and the PATH probe are sh.h's e2e_sh() and e2e_have()
 * (built with or without TLS); these names stay for the TLS suites. */
static inline int tls_sh(const char *cmd, int timeout_ms, char **out)
{
    return e2e_sh(cmd, timeout_ms, out);
}
static inline bool tls_have(const char *name)
{
    return e2e_have(name);
}

/* e2e_server_start() plus an HTTPS listener with tls: s->port is the
 * HTTP port, *https_port the HTTPS one. */
int tls_server_start(e2e_server_t *s, const appsrv_config_t *cfg, const e2e_route_t *routes,
                     size_t n, appsrv_tls_t *tls, int *https_port);

/* A blocking TLS client that verifies against cafile (host "localhost"). */
typedef struct tls_client {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
} tls_client_t;

/* Connects and handshakes within timeout_ms. sni NULL: none (and the
 * certificate must name localhost; else it must name sni); alpn NULL:
 * "http/1.1". Returns 0, or a negative errno: -ETIMEDOUT, -ECONNRESET,
 * -EPROTO (a TLS failure; its reason on stderr with TLS_TEST_DEBUG set). */
int tls_client_open(tls_client_t *c, int port, const char *cafile, const char *sni,
                    const char *alpn, int timeout_ms);
void tls_client_close(tls_client_t *c);
/* Sends req and reads one Content-Length response: status and body
 * (NUL-terminated, truncated to cap). Returns 0 or a negative errno. */
int tls_client_request(tls_client_t *c, const char *req, int *status, char *body, size_t cap,
                       int timeout_ms);
/* The subject CN of the server's certificate, into buf. */
int tls_client_peer_cn(tls_client_t *c, char *buf, size_t cap);

/* A plaintext-to-TLS relay on 127.0.0.1:port: each accepted connection
 * gets a TLS connection to tls_port (verified with cafile) and bytes both
 * ways; a client FIN becomes close_notify + FIN, a client reset a reset,
 * and the server's close a FIN to the client. */
typedef struct tls_relay {
    int lfd, port, tls_port;
    SSL_CTX *ctx;
    pthread_t thread;
    atomic_bool stop;
    atomic_int live; /* connection threads running */
    atomic_int handshakes_failed;
} tls_relay_t;

int tls_relay_start(tls_relay_t *r, int tls_port, const char *cafile);
/* Stops accepting, ends every connection (bounded), frees. */
void tls_relay_stop(tls_relay_t *r);

#endif /* APPSRV_HAVE_TLS */
#endif /* APPSRV_TEST_TLS_UTIL_H */
