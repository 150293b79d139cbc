/* SPDX-License-Identifier: MIT */
/*
 * test_transport_tls.c - unit tests of the TLS transport table
 * (lib/tls_transport.c) without a server or loop: the server side of a
 * socketpair driven through appsrv__transport_tls, an OpenSSL client on
 * the other end. Covers the non-blocking handshake, coalescing of small
 * iovecs into one record, writes retried after the socket filled (same
 * bytes from a new position), pending() while records are buffered, the
 * peer's close with and without close_notify, our close_notify, and the
 * info accessor. Built with TLS=no the suite is skipped.
 */
#include <criterion/criterion.h>

#ifndef APPSRV_HAVE_TLS
Test(transport_tls, skipped)
{
    cr_skip_test("built with TLS=no: no TLS transport to test");
}
#else

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "e2e.h"
#include "tls.h"
#include "tls_util.h"
#include "transport.h"

static tls_pki_t g_pki;
static appsrv_tls_t *g_tls;
static appsrv__tsock_t g_s; /* the server side */
static int g_cfd = -1;      /* the client side */
static SSL_CTX *g_cctx;
static SSL *g_c;

static void setup(void)
{
    cr_assert_eq(tls_pki_make(&g_pki), 0);
    cr_assert_eq(appsrv_tls_new(&g_tls, NULL, g_pki.chain, g_pki.key, NULL), 0);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    g_s = (appsrv__tsock_t){.fd = sv[0], .tp = &appsrv__transport_tls};
    g_cfd = sv[1];
    cr_assert_eq(g_s.tp->attach(&g_s, g_tls), 0);
    g_cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(g_cctx, SSL_VERIFY_NONE, NULL);
    g_c = SSL_new(g_cctx);
    SSL_set_fd(g_c, g_cfd);
    SSL_set_tlsext_host_name(g_c, "localhost");
    SSL_set_connect_state(g_c);
}

static void teardown(void)
{
    if (g_s.fd >= 0 && g_s.tp != NULL)
        g_s.tp->close(&g_s);
    SSL_free(g_c);
    SSL_CTX_free(g_cctx);
    if (g_cfd >= 0)
        close(g_cfd);
    g_cfd = -1;
    appsrv_tls_free(g_tls);
    tls_pki_remove(&g_pki);
}

/* Both sides step in turn (the fds are non-blocking) until done. */
static void handshake(void)
{
    int srv = 0, cli = 0;
    cr_assert_null(g_s.tp->info(&g_s, APPSRV__TINFO_VERSION), "info before the handshake");
    for (int i = 0; i < 100 && (srv != 1 || cli != 1); i++) {
        if (cli != 1) {
            cli = SSL_do_handshake(g_c);
            if (cli != 1) {
                int e = SSL_get_error(g_c, cli);
                cr_assert(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE,
                          "client handshake error %d", e);
            }
        }
        if (srv != 1) {
            srv = g_s.tp->handshake(&g_s);
            cr_assert_geq(srv, 0, "server handshake: %s", appsrv_strerror(srv));
        }
    }
    cr_assert(srv == 1 && cli == 1, "handshake did not finish (server %d client %d)", srv, cli);
    cr_expect_str_eq(g_s.tp->info(&g_s, APPSRV__TINFO_VERSION), "TLSv1.3");
    cr_expect_str_eq(g_s.tp->info(&g_s, APPSRV__TINFO_SNI), "localhost");
}

/* Client reads exactly n plaintext bytes (the fd is non-blocking). */
static void client_read(char *out, size_t n)
{
    size_t got = 0;
    int64_t end = e2e_now_ms() + 5000;
    while (got < n) {
        size_t k = 0;
        if (SSL_read_ex(g_c, out + got, n - got, &k) == 1) {
            got += k;
            continue;
        }
        int e = SSL_get_error(g_c, 0);
        ERR_clear_error();
        cr_assert_eq(e, SSL_ERROR_WANT_READ, "client read error %d after %zu bytes", e, got);
        cr_assert_eq(e2e_wait_readable(g_cfd, end), 0, "client waited for %zu more bytes", n - got);
    }
}

/* The TLS records waiting in the client's socket (peeked, not read). */
static int count_records(size_t *bytes)
{
    unsigned char buf[65536];
    ssize_t n = recv(g_cfd, buf, sizeof(buf), MSG_PEEK);
    int count = 0;
    size_t off = 0;
    while (n > 0 && off + 5 <= (size_t)n) {
        off += 5 + (size_t)((buf[off + 3] << 8) | buf[off + 4]);
        count++;
    }
    *bytes = n > 0 ? (size_t)n : 0;
    return count;
}

Test(transport_tls, small_iovecs_leave_in_one_record, .init = setup, .fini = teardown)
{
    handshake();
    char discard[4096];
    /* drain the session tickets the server sent after its Finished */
    size_t k;
    SSL_read_ex(g_c, discard, sizeof(discard), &k);
    ERR_clear_error();
    struct iovec iov[64];
    char parts[64][10];
    for (int i = 0; i < 64; i++) {
        memset(parts[i], 'a' + i % 26, sizeof(parts[i]));
        iov[i] = (struct iovec){parts[i], sizeof(parts[i])};
    }
    cr_assert_eq(g_s.tp->writev(&g_s, iov, 64), 640);
    size_t bytes;
    cr_expect_eq(count_records(&bytes), 1, "64 iovecs of 10 bytes made %d records (%zu bytes)",
                 count_records(&bytes), bytes);
    char got[640];
    client_read(got, sizeof(got));
    for (int i = 0; i < 64; i++)
        cr_assert(memcmp(got + i * 10, parts[i], 10) == 0, "iovec %d differs", i);
}

Test(transport_tls, writes_retried_after_the_socket_filled, .init = setup, .fini = teardown)
{
    handshake();
    int small = 4096;
    setsockopt(g_s.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    /* 2 MiB in iovecs of mixed sizes (small ones coalesced, big ones
     * direct), written from wherever the last call stopped */
    size_t total = 2u << 20;
    char *data = malloc(total), *got = malloc(total);
    cr_assert(data != NULL && got != NULL);
    e2e_fill_pattern(data, total, 5);
    struct iovec all[512];
    int niov = 0;
    size_t sizes[] = {7, 300, 40000, 5, 16384, 1, 100000, 2000};
    for (size_t off = 0; off < total; niov++) {
        size_t n = sizes[niov % 8];
        if (n > total - off)
            n = total - off;
        all[niov] = (struct iovec){data + off, n};
        off += n;
    }
    size_t sent = 0, rcvd = 0;
    int again = 0;
    int64_t end = e2e_now_ms() + 20000;
    while (rcvd < total && e2e_now_ms() < end) {
        if (sent < total) {
            /* the queue as conn.c presents it: from the first unsent byte */
            struct iovec iov[64];
            int n = 0;
            size_t skip = sent;
            for (int i = 0; i < niov && n < 64; i++) {
                if (skip >= all[i].iov_len) {
                    skip -= all[i].iov_len;
                    continue;
                }
                iov[n++] = (struct iovec){(char *)all[i].iov_base + skip, all[i].iov_len - skip};
                skip = 0;
            }
            ssize_t w = g_s.tp->writev(&g_s, iov, n);
            if (w == -EAGAIN)
                again++;
            else
                cr_assert_gt(w, 0, "writev: %s", appsrv_strerror((int)w));
            if (w > 0)
                sent += (size_t)w;
        }
        /* the client reads a little at a time */
        size_t k = 0;
        if (SSL_read_ex(g_c, got + rcvd, 3000, &k) == 1)
            rcvd += k;
        ERR_clear_error();
    }
    cr_assert_eq(rcvd, total, "received %zu of %zu bytes (sent %zu)", rcvd, total, sent);
    cr_expect_gt(again, 0, "the socket never filled: the retry path was not tested");
    cr_expect(memcmp(got, data, total) == 0, "stream differs");
    free(data);
    free(got);
}

Test(transport_tls, pending_while_records_are_buffered, .init = setup, .fini = teardown)
{
    handshake();
    size_t w;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(SSL_write_ex(g_c, "0123456789", 10, &w), 1);
    char buf[4];
    size_t got = 0;
    int reads = 0;
    while (got < 30) {
        ssize_t n = g_s.tp->read(&g_s, buf, sizeof(buf));
        cr_assert_gt(n, 0, "read after %zu bytes: %s", got, appsrv_strerror((int)n));
        got += (size_t)n;
        reads++;
        if (got < 30)
            cr_assert(g_s.tp->pending(&g_s), "not pending with %zu of 30 bytes read", got);
    }
    cr_expect_eq(g_s.tp->read(&g_s, buf, sizeof(buf)), -EAGAIN);
    cr_expect(!g_s.tp->pending(&g_s), "pending with the socket drained");
}

Test(transport_tls, peer_close_notify_is_eof, .init = setup, .fini = teardown)
{
    handshake();
    SSL_shutdown(g_c);
    char buf[64];
    ssize_t n;
    int64_t end = e2e_now_ms() + 2000;
    while ((n = g_s.tp->read(&g_s, buf, sizeof(buf))) == -EAGAIN && e2e_now_ms() < end)
        e2e_pause_ms(1);
    cr_expect_eq(n, 0, "close_notify read as %zd", n);
}

Test(transport_tls, peer_fin_without_close_notify_is_eof, .init = setup, .fini = teardown)
{
    handshake();
    shutdown(g_cfd, SHUT_WR);
    char buf[64];
    ssize_t n;
    int64_t end = e2e_now_ms() + 2000;
    while ((n = g_s.tp->read(&g_s, buf, sizeof(buf))) == -EAGAIN && e2e_now_ms() < end)
        e2e_pause_ms(1);
    cr_expect_eq(n, 0, "a bare FIN read as %zd, not an ordinary EOF", n);
}

Test(transport_tls, our_close_sends_close_notify, .init = setup, .fini = teardown)
{
    handshake();
    g_s.tp->close(&g_s);
    cr_expect_eq(g_s.fd, -1);
    char buf[64];
    size_t k;
    int r;
    int64_t end = e2e_now_ms() + 2000;
    do {
        r = SSL_read_ex(g_c, buf, sizeof(buf), &k);
    } while (r != 1 && SSL_get_error(g_c, r) == SSL_ERROR_WANT_READ &&
             e2e_wait_readable(g_cfd, end) == 0);
    cr_expect_eq(SSL_get_error(g_c, r), SSL_ERROR_ZERO_RETURN, "no close_notify (error %d)",
                 SSL_get_error(g_c, r));
    ERR_clear_error();
}

#endif /* APPSRV_HAVE_TLS */
