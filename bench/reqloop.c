/* SPDX-License-Identifier: MIT */
/*
 * reqloop.c - a fixed amount of load, for counting instructions per request.
 * Sends COUNT keep-alive requests to 127.0.0.1:PORT over ONE connection, one
 * at a time (send, read the whole answer, repeat), checks each is a 200 and
 * exits. A request that takes longer than 10 s fails the run.
 *
 * usage: reqloop -p PORT -n COUNT [-u PATH] [-b BODY_BYTES] [-x BODY] [-v]
 *   -b N > 0 sends POST PATH with an N-byte body instead of GET;
 *   -x BODY  every answer's body must be exactly BODY (Content-Length answers);
 *   -v       every answer's body must be the body sent (an echo).
 * Prints: REQLOOP count=.. seconds=..   exit 0 ok, 1 failure, 2 usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static const char *g_expect; /* required body, or NULL */
static size_t g_expect_len;

static int check(const char *buf, size_t head, size_t body_len)
{
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0)
        return -1;
    if (g_expect != NULL && (body_len != g_expect_len || memcmp(buf + head, g_expect, body_len) != 0))
        return -1;
    return 0;
}

/* Read one whole answer (Content-Length or chunked). Leftover bytes of a
 * following answer cannot occur: requests are sent one at a time. */
static int read_answer(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
        buf[got] = '\0';
        char *eoh = strstr(buf, "\r\n\r\n");
        if (eoh == NULL) {
            if (got >= cap - 1)
                return -1;
            continue;
        }
        size_t head = (size_t)(eoh - buf) + 4;
        const char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (cl != NULL && cl < eoh) {
            size_t want = head + strtoul(cl + 17, NULL, 10);
            if (want >= cap)
                return -1;
            if (got >= want)
                return check(buf, head, want - head);
        } else if (got >= 5 && memcmp(buf + got - 5, "0\r\n\r\n", 5) == 0) {
            /* chunked: decode in place, then check */
            size_t in = head, out = head;
            for (;;) {
                char *endp;
                size_t n = strtoul(buf + in, &endp, 16);
                char *crlf = strstr(endp, "\r\n");
                if (crlf == NULL)
                    return -1;
                in = (size_t)(crlf - buf) + 2;
                if (n == 0)
                    break;
                if (in + n + 2 > got)
                    return -1;
                memmove(buf + out, buf + in, n);
                out += n;
                in += n + 2;
            }
            return check(buf, head, out - head);
        }
        if (got >= cap - 1)
            return -1;
    }
}

int main(int argc, char **argv)
{
    int port = 0, opt, verify = 0;
    long count = 0, body = 0;
    const char *path = "/plaintext";
    while ((opt = getopt(argc, argv, "p:n:u:b:x:v")) != -1) {
        switch (opt) {
        case 'x': g_expect = optarg; g_expect_len = strlen(optarg); break;
        case 'v': verify = 1; break;
        case 'p': port = atoi(optarg); break;
        case 'n': count = atol(optarg); break;
        case 'u': path = optarg; break;
        case 'b': body = atol(optarg); break;
        default:
            fprintf(stderr, "usage: reqloop -p PORT -n COUNT [-u PATH] [-b BODY_BYTES] "
                            "[-x BODY] [-v]\n");
            return 2;
        }
    }
    if (port <= 0 || count < 0 || body < 0) {
        fprintf(stderr, "usage: reqloop -p PORT -n COUNT [-u PATH] [-b BODY_BYTES] [-x BODY] [-v]\n");
        return 2;
    }
    size_t cap = 4096 + (size_t)body;
    char *req = malloc(cap), *buf = malloc(cap + 4096);
    if (req == NULL || buf == NULL)
        return 1;
    size_t req_len;
    if (body > 0) {
        req_len = (size_t)snprintf(req, cap,
                                   "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   "Content-Type: application/octet-stream\r\n"
                                   "Content-Length: %ld\r\n\r\n",
                                   path, body);
        memset(req + req_len, 'a', (size_t)body);
        if (verify) {
            g_expect = req + req_len;
            g_expect_len = (size_t)body;
        }
        req_len += (size_t)body;
    } else {
        req_len = (size_t)snprintf(req, cap, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    }

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror("reqloop: connect");
        return 1;
    }
    double t0 = bench_now_s();
    for (long i = 0; i < count; i++) {
        if (send_all(fd, req, req_len) < 0 || read_answer(fd, buf, cap + 4096) < 0) {
            fprintf(stderr, "reqloop: request %ld of %ld failed\n", i + 1, count);
            return 1;
        }
    }
    printf("REQLOOP count=%ld seconds=%.3f\n", count, bench_now_s() - t0);
    close(fd);
    free(req);
    free(buf);
    return 0;
}
