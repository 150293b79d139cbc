/* SPDX-License-Identifier: MIT */
/*
 * tls_util.c - TLS test helpers (contract in tls_util.h): the openssl
 * command makes a PKI in a temp dir (through sh.h's shell runner), the
 * server start with an HTTPS listener, a blocking OpenSSL client and a
 * thread-per-connection plaintext-to-TLS relay. Uses the public API,
 * e2e.h, sh.h and OpenSSL; called by the test_e2e_tls*.c suites.
 */
#ifdef APPSRV_HAVE_TLS

#include "tls_util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* -------------------------------------------------------------------- PKI */

static const char PKI_SCRIPT[] =
    "set -e\n"
    "cd \"$1\"\n"
    "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \"$1\" "
    "2>/dev/null; }\n"
    "key ca.key\n"
    "openssl req -x509 -new -key ca.key -subj /CN=appsrv-test-root -days 2 -out ca.pem \\\n"
    "  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign\n"
    "key int.key\n"
    "openssl req -new -key int.key -subj /CN=appsrv-test-intermediate -out int.csr\n"
    "printf 'basicConstraints=critical,CA:TRUE,pathlen:0\\nkeyUsage=critical,keyCertSign,"
    "cRLSign\\n' > int.ext\n"
    "openssl x509 -req -in int.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \\\n"
    "  -extfile int.ext -out int.pem 2>/dev/null\n"
    "leaf() {\n"
    "  key $1.key\n"
    "  openssl req -new -key $1.key -subj /CN=$2 -out $1.csr\n"
    "  printf 'basicConstraints=CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
    "extendedKeyUsage=serverAuth\\nsubjectAltName=%s\\n' \"$3\" > $1.ext\n"
    "  openssl x509 -req -in $1.csr -CA int.pem -CAkey int.key -CAcreateserial -days 2 \\\n"
    "    -extfile $1.ext -out $1.crt 2>/dev/null\n"
    "  cat $1.crt int.pem > $1.pem\n"
    "}\n"
    "leaf leaf1 localhost-1 DNS:localhost,IP:127.0.0.1\n"
    "leaf leaf2 localhost-2 DNS:localhost,IP:127.0.0.1\n"
    "leaf alt alt.test 'DNS:alt.test,DNS:*.wild.test'\n"
    "openssl pkey -in leaf1.key -aes256 -passout pass:secret -out leaf1.enc.key\n";

int tls_pki_make(tls_pki_t *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->dir, sizeof(p->dir), "/tmp/appsrv-pki-XXXXXX");
    if (mkdtemp(p->dir) == NULL)
        return -errno;
    char script[128];
    snprintf(script, sizeof(script), "%s/make.sh", p->dir);
    FILE *f = fopen(script, "w");
    if (f == NULL)
        return -errno;
    fputs(PKI_SCRIPT, f);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "sh %s %s", script, p->dir);
    char *out = NULL;
    int rc = e2e_sh(cmd, 30000, &out);
    if (rc != 0)
        fprintf(stderr, "tls_pki_make: %s\n", out != NULL ? out : "?");
    free(out);
    if (rc != 0)
        return -EIO;
#define PKI_PATH(field, file) snprintf(p->field, sizeof(p->field), "%s/" file, p->dir)
    PKI_PATH(ca, "ca.pem");
    PKI_PATH(chain, "leaf1.pem");
    PKI_PATH(key, "leaf1.key");
    PKI_PATH(chain2, "leaf2.pem");
    PKI_PATH(key2, "leaf2.key");
    PKI_PATH(alt_chain, "alt.pem");
    PKI_PATH(alt_key, "alt.key");
    PKI_PATH(enc_key, "leaf1.enc.key");
#undef PKI_PATH
    return 0;
}

void tls_pki_remove(const tls_pki_t *p)
{
    if (p->dir[0] == '\0')
        return;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", p->dir);
    e2e_sh(cmd, 5000, NULL);
}

/* ----------------------------------------------------------------- server */

static void *server_thread(void *arg)
{
    e2e_server_t *s = arg;
    s->run_rc = appsrv_server_run(s->srv);
    atomic_store(&s->run_returned, true);
    return NULL;
}

int tls_server_start(e2e_server_t *s, const appsrv_config_t *cfg, const e2e_route_t *routes,
                     size_t n, appsrv_tls_t *tls, int *https_port)
{
    appsrv_config_t def;
    memset(s, 0, sizeof(*s));
    atomic_init(&s->run_returned, false);
    if (cfg == NULL) {
        appsrv_config_init(&def);
        def.threads = 1;
        cfg = &def;
    }
    int rc = appsrv_server_new(&s->srv, cfg);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n && rc >= 0; i++)
        rc = appsrv_route(s->srv, routes[i].method, routes[i].pattern, routes[i].handler,
                          routes[i].user);
    if (rc >= 0)
        rc = s->port = appsrv_listen_http(s->srv, "127.0.0.1", 0);
    if (rc >= 0)
        rc = *https_port = appsrv_listen_https(s->srv, "127.0.0.1", 0, tls);
    if (rc >= 0)
        rc = -pthread_create(&s->thread, NULL, server_thread, s);
    if (rc < 0) {
        appsrv_server_free(s->srv);
        s->srv = NULL;
        return rc;
    }
    s->thread_started = true;
    return 0;
}

/* ----------------------------------------------------------------- client */

static SSL_CTX *client_ctx(const char *cafile)
{
    /* OpenSSL's socket BIO writes with write(): an alert sent to a peer
     * that has gone would raise SIGPIPE and kill the test instead of
     * failing it. */
    signal(SIGPIPE, SIG_IGN);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return NULL;
    if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

static void set_timeouts(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static SSL *client_ssl(SSL_CTX *ctx, int fd, const char *sni, const char *alpn)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    SSL_set1_host(ssl, sni != NULL ? sni : "localhost");
    if (sni != NULL)
        SSL_set_tlsext_host_name(ssl, sni);
    unsigned char proto[64];
    const char *a = alpn != NULL ? alpn : "http/1.1";
    size_t al = strlen(a);
    if (al > 0 && al < sizeof(proto) - 1) {
        proto[0] = (unsigned char)al;
        memcpy(proto + 1, a, al);
        SSL_set_alpn_protos(ssl, proto, (unsigned)(al + 1));
    }
    SSL_set_fd(ssl, fd);
    return ssl;
}

int tls_client_open(tls_client_t *c, int port, const char *cafile, const char *sni,
                    const char *alpn, int timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->fd = appsrv_connect("127.0.0.1", port, timeout_ms);
    if (c->fd < 0)
        return c->fd;
    set_timeouts(c->fd, timeout_ms);
    c->ctx = client_ctx(cafile);
    c->ssl = c->ctx != NULL ? client_ssl(c->ctx, c->fd, sni, alpn) : NULL;
    int r = -1;
    if (c->ssl != NULL) {
        do { /* a signal (SIGCHLD of a test's shell) interrupts recv() */
            errno = 0;
            r = SSL_connect(c->ssl);
        } while (r != 1 && SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ && errno == EINTR);
    }
    if (r != 1) {
        int e = c->ssl != NULL ? SSL_get_error(c->ssl, r) : SSL_ERROR_SSL, err = errno;
        unsigned long code = ERR_peek_last_error();
        ERR_clear_error();
        tls_client_close(c);
        if (getenv("TLS_TEST_DEBUG") != NULL)
            fprintf(stderr, "tls_client_open: ssl error %d, errno %d, %s\n", e, err,
                    ERR_reason_error_string(code));
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return -ETIMEDOUT; /* SO_RCVTIMEO/SO_SNDTIMEO */
        if (e == SSL_ERROR_SYSCALL)
            return err == EAGAIN ? -ETIMEDOUT : err != 0 ? -err : -ECONNRESET;
        return -EPROTO;
    }
    return 0;
}

void tls_client_close(tls_client_t *c)
{
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    if (c->ctx != NULL)
        SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

/* SSL_read_ex with the reason of a failure: -ETIMEDOUT (SO_RCVTIMEO),
 * -ECONNRESET (EOF or reset), -EPROTO (a TLS alert or bad record). */
static int read_some(tls_client_t *c, char *p, size_t cap, size_t *n)
{
    int e, err;
    do { /* retried when a signal interrupted recv() */
        errno = 0;
        if (SSL_read_ex(c->ssl, p, cap, n) == 1)
            return 0;
        e = SSL_get_error(c->ssl, 0);
        err = errno;
    } while (e == SSL_ERROR_WANT_READ && err == EINTR);
    if (getenv("TLS_TEST_DEBUG") != NULL)
        fprintf(stderr, "tls read: ssl error %d, errno %d, %s\n", e, err,
                ERR_reason_error_string(ERR_peek_last_error()));
    ERR_clear_error();
    if (e == SSL_ERROR_SSL)
        return -EPROTO;
    if (e == SSL_ERROR_WANT_READ || err == EAGAIN)
        return -ETIMEDOUT;
    return -ECONNRESET;
}

int tls_client_request(tls_client_t *c, const char *req, int *status, char *body, size_t cap,
                       int timeout_ms)
{
    set_timeouts(c->fd, timeout_ms);
    size_t len = strlen(req), w = 0;
    int wr;
    do {
        errno = 0;
        wr = SSL_write_ex(c->ssl, req, len, &w);
    } while (wr != 1 && SSL_get_error(c->ssl, 0) == SSL_ERROR_WANT_WRITE && errno == EINTR);
    if (wr != 1 || w != len) {
        ERR_clear_error();
        return -EPIPE;
    }
    char buf[65536];
    size_t got = 0;
    int err;
    char *end = NULL;
    while (end == NULL) {
        size_t n = 0;
        if (got == sizeof(buf) - 1)
            return -EMSGSIZE;
        if ((err = read_some(c, buf + got, sizeof(buf) - 1 - got, &n)) < 0)
            return err;
        got += n;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    size_t head = (size_t)(end + 4 - buf);
    if (sscanf(buf, "HTTP/1.%*d %d", status) != 1)
        return -EPROTO;
    const char *cl = strcasestr(buf, "\r\ncontent-length:");
    size_t blen = cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
    while (got - head < blen) {
        size_t n = 0;
        if (got == sizeof(buf) - 1)
            return -EMSGSIZE;
        if ((err = read_some(c, buf + got, sizeof(buf) - 1 - got, &n)) < 0)
            return err;
        got += n;
    }
    if (body != NULL && cap > 0) {
        size_t k = blen < cap - 1 ? blen : cap - 1;
        memcpy(body, buf + head, k);
        body[k] = '\0';
    }
    return 0;
}

int tls_client_peer_cn(tls_client_t *c, char *buf, size_t cap)
{
    X509 *x = SSL_get1_peer_certificate(c->ssl);
    if (x == NULL)
        return -ENOENT;
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)cap);
    X509_free(x);
    return n < 0 ? -ENOENT : 0;
}

/* ------------------------------------------------------------------ relay */

typedef struct relay_conn {
    tls_relay_t *r;
    int cfd;
} relay_conn_t;

/* Waits for fd to be ready for events, or the relay's stop. */
static int wait_fd(tls_relay_t *r, int fd, short events)
{
    while (!atomic_load(&r->stop)) {
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, 50);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
    return -ECANCELED;
}

static int send_all(tls_relay_t *r, int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(r, fd, POLLOUT) < 0)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

static int ssl_write_all(tls_relay_t *r, SSL *ssl, int fd, const char *p, size_t n)
{
    while (n > 0) {
        size_t w = 0;
        if (SSL_write_ex(ssl, p, n, &w) == 1) {
            p += w;
            n -= w;
            continue;
        }
        int e = SSL_get_error(ssl, 0);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            if (wait_fd(r, fd, e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN) < 0)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

static void hard_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static void *relay_conn_main(void *arg)
{
    relay_conn_t rc = *(relay_conn_t *)arg;
    free(arg);
    tls_relay_t *r = rc.r;
    int cfd = rc.cfd;
    int sfd = appsrv_connect("127.0.0.1", r->tls_port, 2000);
    SSL *ssl = NULL;
    bool c_eof = false, c_reset = false;
    char buf[16384];
    if (sfd < 0)
        goto out;
    set_timeouts(sfd, 5000);
    ssl = client_ssl(r->ctx, sfd, "localhost", NULL);
    if (ssl == NULL || SSL_connect(ssl) != 1) {
        ERR_clear_error();
        atomic_fetch_add(&r->handshakes_failed, 1);
        goto out;
    }
    fcntl(sfd, F_SETFL, fcntl(sfd, F_GETFL) | O_NONBLOCK);
    fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) | O_NONBLOCK);
    while (!atomic_load(&r->stop)) {
        /* server -> client: everything OpenSSL can give now */
        for (;;) {
            size_t n = 0;
            if (SSL_read_ex(ssl, buf, sizeof(buf), &n) == 1) {
                if (send_all(r, cfd, buf, n) < 0)
                    goto out;
                continue;
            }
            int e = SSL_get_error(ssl, 0);
            int err = errno;
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                break;
            if (e == SSL_ERROR_SYSCALL && err == ECONNRESET) {
                hard_close(cfd);
                cfd = -1;
                goto out;
            }
            /* the server closed: FIN to the client, then wait for its
             * close (a reset now could destroy what it has not read) */
            shutdown(cfd, SHUT_WR);
            for (int i = 0; i < 40 && !atomic_load(&r->stop); i++) {
                struct pollfd p = {.fd = cfd, .events = POLLIN};
                if (poll(&p, 1, 50) > 0) {
                    ssize_t k = recv(cfd, buf, sizeof(buf), 0);
                    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
                        break;
                }
            }
            goto out;
        }
        struct pollfd p[2] = {{.fd = sfd, .events = POLLIN},
                              {.fd = c_eof ? -1 : cfd, .events = POLLIN}};
        if (poll(p, 2, 50) <= 0)
            continue;
        if (p[1].revents != 0) {
            ssize_t n = recv(cfd, buf, sizeof(buf), 0);
            if (n > 0) {
                if (ssl_write_all(r, ssl, sfd, buf, (size_t)n) < 0)
                    goto out;
            } else if (n == 0) {
                c_eof = true; /* half-close: close_notify, then FIN */
                SSL_shutdown(ssl);
                ERR_clear_error();
                shutdown(sfd, SHUT_WR);
            } else if (errno != EAGAIN && errno != EINTR) {
                c_reset = true;
                goto out;
            }
        }
    }
out:
    if (ssl != NULL)
        SSL_free(ssl);
    if (sfd >= 0) {
        if (c_reset)
            hard_close(sfd);
        else
            close(sfd);
    }
    if (cfd >= 0)
        close(cfd);
    atomic_fetch_sub(&r->live, 1);
    return NULL;
}

static void *relay_main(void *arg)
{
    tls_relay_t *r = arg;
    while (!atomic_load(&r->stop)) {
        struct pollfd p = {.fd = r->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = appsrv_accept(r->lfd, NULL, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
        relay_conn_t *rc = malloc(sizeof(*rc));
        pthread_t t;
        if (rc == NULL) {
            close(fd);
            continue;
        }
        *rc = (relay_conn_t){r, fd};
        atomic_fetch_add(&r->live, 1);
        if (pthread_create(&t, NULL, relay_conn_main, rc) != 0) {
            atomic_fetch_sub(&r->live, 1);
            free(rc);
            close(fd);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

int tls_relay_start(tls_relay_t *r, int tls_port, const char *cafile)
{
    memset(r, 0, sizeof(*r));
    atomic_init(&r->stop, false);
    atomic_init(&r->live, 0);
    atomic_init(&r->handshakes_failed, 0);
    r->tls_port = tls_port;
    r->ctx = client_ctx(cafile);
    if (r->ctx == NULL)
        return -EPROTO;
    r->lfd = appsrv_listen("127.0.0.1", 0, 128, 0);
    if (r->lfd < 0) {
        SSL_CTX_free(r->ctx);
        return r->lfd;
    }
    r->port = appsrv_local_port(r->lfd);
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        close(r->lfd);
        SSL_CTX_free(r->ctx);
        return -EAGAIN;
    }
    return 0;
}

void tls_relay_stop(tls_relay_t *r)
{
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    close(r->lfd);
    for (int i = 0; i < 200 && atomic_load(&r->live) > 0; i++)
        e2e_pause_ms(10);
    if (atomic_load(&r->live) == 0)
        SSL_CTX_free(r->ctx); /* else leaked on purpose: a thread may use it */
}

#endif /* APPSRV_HAVE_TLS */
