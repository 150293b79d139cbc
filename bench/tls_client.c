/* SPDX-License-Identifier: MIT */
/*
 * tls_client.c - the TLS scenarios of bench/run.sh that wrk cannot run.
 *
 *   -m full    C threads, each a loop for S seconds: connect, full TLS
 *              handshake (no session offered), GET PATH with
 *              "Connection: close", read the answer, close.
 *   -m resume  the same, each connection resuming the session (ticket)
 *              the previous one of its thread received.
 *   -m idle    opens N connections (at most 64 handshaking at once), one
 *              GET each, then leaves them open and idle; prints the
 *              server's VmRSS growth (process tree of -P PID) per
 *              connection.
 *
 * usage: tls_client -p PORT -m full|resume|idle [-c C] [-d S] [-n N]
 *                   [-P PID] [-u PATH]
 * Prints one line: "TLSC mode=.. count=.. errors=.. secs=.. resumed=.." or
 * "TLSIDLE n=.. answered=.. rss_before_kb=.. rss_after_kb=..
 * kib_per_conn=..". The protocol, suite and group come from OpenSSL's
 * configuration (run.sh sets OPENSSL_CONF: TLS 1.3, AES-128-GCM, X25519).
 * The certificate is not verified: the server is ours, on 127.0.0.1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static int g_port = 0, g_conc = 4, g_secs = 3, g_n = 5000;
static long g_pid = 0;
static const char *g_mode = "full", *g_path = "/plaintext";
static SSL_CTX *g_ctx;
static atomic_long g_count, g_errors, g_resumed;
static atomic_bool g_stop;

static int tcp_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One request on ssl; reads until the answer's end (close or length). */
static int request(SSL *ssl, bool close_after)
{
    char req[256], buf[4096];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n", g_path,
                     close_after ? "Connection: close\r\n" : "");
    size_t w;
    if (SSL_write_ex(ssl, req, (size_t)n, &w) != 1)
        return -1;
    size_t got = 0;
    for (;;) {
        size_t r = 0;
        if (SSL_read_ex(ssl, buf + got, sizeof(buf) - 1 - got, &r) != 1)
            return got > 0 && close_after ? 0 : -1;
        got += r;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL) {
            char *cl = strcasestr(buf, "content-length:");
            if (cl != NULL && (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10) <= got)
                return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? 0 : -1;
        }
        if (got == sizeof(buf) - 1)
            return -1;
    }
}

static void *loop_main(void *arg)
{
    (void)arg;
    bool resume = strcmp(g_mode, "resume") == 0;
    SSL_SESSION *sess = NULL;
    while (!atomic_load(&g_stop)) {
        int fd = tcp_connect();
        SSL *ssl = fd >= 0 ? SSL_new(g_ctx) : NULL;
        int ok = -1;
        if (ssl != NULL) {
            SSL_set_fd(ssl, fd);
            SSL_set_tlsext_host_name(ssl, "localhost");
            if (resume && sess != NULL)
                SSL_set_session(ssl, sess);
            if (SSL_connect(ssl) == 1 && request(ssl, true) == 0) {
                ok = 0;
                if (SSL_session_reused(ssl))
                    atomic_fetch_add(&g_resumed, 1);
                if (resume) {
                    /* TLS 1.3 tickets arrive after the handshake: by now
                     * the answer has been read, so the ticket too. */
                    SSL_SESSION *s = SSL_get1_session(ssl);
                    if (s != NULL) {
                        SSL_SESSION_free(sess);
                        sess = s;
                    }
                }
            }
            SSL_shutdown(ssl);
            SSL_free(ssl);
        }
        if (fd >= 0)
            close(fd);
        ERR_clear_error();
        atomic_fetch_add(ok == 0 ? &g_count : &g_errors, 1);
    }
    SSL_SESSION_free(sess);
    return NULL;
}

static int run_idle(void)
{
    bench_raise_nofile();
    SSL **ssl = calloc((size_t)g_n, sizeof(*ssl));
    int *fds = calloc((size_t)g_n, sizeof(*fds));
    if (ssl == NULL || fds == NULL)
        return 1;
    usleep(200000);
    long before = bench_rss_tree_kb(g_pid);
    double t0 = bench_now_s();
    int answered = 0;
    for (int i = 0; i < g_n; i++) {
        fds[i] = tcp_connect();
        if (fds[i] < 0)
            continue;
        ssl[i] = SSL_new(g_ctx);
        SSL_set_fd(ssl[i], fds[i]);
        if (SSL_connect(ssl[i]) == 1 && request(ssl[i], false) == 0)
            answered++;
        ERR_clear_error();
    }
    double setup = bench_now_s() - t0;
    usleep(500000);
    long after = bench_rss_tree_kb(g_pid);
    printf("TLSIDLE n=%d answered=%d rss_before_kb=%ld rss_after_kb=%ld kib_per_conn=%.2f "
           "setup_s=%.1f\n",
           g_n, answered, before, after, answered > 0 ? (double)(after - before) / answered : 0.0,
           setup);
    for (int i = 0; i < g_n; i++) {
        if (ssl[i] != NULL)
            SSL_free(ssl[i]);
        if (fds[i] >= 0)
            close(fds[i]);
    }
    free(ssl);
    free(fds);
    return 0;
}

int main(int argc, char **argv)
{
    int ch;
    while ((ch = getopt(argc, argv, "p:m:c:d:n:P:u:")) != -1) {
        switch (ch) {
        case 'p':
            g_port = atoi(optarg);
            break;
        case 'm':
            g_mode = optarg;
            break;
        case 'c':
            g_conc = atoi(optarg);
            break;
        case 'd':
            g_secs = atoi(optarg);
            break;
        case 'n':
            g_n = atoi(optarg);
            break;
        case 'P':
            g_pid = atol(optarg);
            break;
        case 'u':
            g_path = optarg;
            break;
        default:
            fprintf(stderr, "usage: tls_client -p PORT -m full|resume|idle [-c C] [-d S] [-n N] "
                            "[-P PID] [-u PATH]\n");
            return 2;
        }
    }
    if (g_port <= 0 || g_conc < 1 || g_conc > 256)
        return 2;
    g_ctx = SSL_CTX_new(TLS_client_method());
    if (g_ctx == NULL)
        return 1;
    SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);
    if (strcmp(g_mode, "idle") == 0)
        return run_idle();
    if (strcmp(g_mode, "full") != 0 && strcmp(g_mode, "resume") != 0)
        return 2;
    pthread_t th[256];
    double t0 = bench_now_s();
    for (int i = 0; i < g_conc; i++)
        pthread_create(&th[i], NULL, loop_main, NULL);
    while (bench_now_s() - t0 < g_secs)
        usleep(10000);
    atomic_store(&g_stop, true);
    for (int i = 0; i < g_conc; i++)
        pthread_join(th[i], NULL);
    double secs = bench_now_s() - t0;
    printf("TLSC mode=%s count=%ld errors=%ld secs=%.3f resumed=%ld\n", g_mode,
           atomic_load(&g_count), atomic_load(&g_errors), secs, atomic_load(&g_resumed));
    return 0;
}
