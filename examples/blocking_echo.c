/* SPDX-License-Identifier: MIT */
/*
 * blocking_echo.c - the classic blocking "accept, recv, process, send_all"
 * line-protocol server, one client at a time, on the public socket layer
 * alone. Usage: blocking_echo [host] [port] (default 127.0.0.1 0).
 * Every wait is bounded (TICK_MS), so SIGINT/SIGTERM, which only set a
 * flag, are noticed promptly although the library retries EINTR.
 */
#define _POSIX_C_SOURCE 200809L /* sigaction, poll with a plain -std=c11 */

#include <appsrv.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LINE 65536 /* longer lines get 413 and a close */
#define TICK_MS 250

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int reply(int fd, const char *text, size_t len)
{
    return appsrv_send_all(fd, text, len, 5000) < 0 ? -1 : 0;
}

/* Answers one line (without "\r\n"); returns -1 when the client must go. */
static int answer(int fd, const char *line, size_t len)
{
    static char out[MAX_LINE + 16];
    const char *sp = memchr(line, ' ', len);
    size_t cmd_len = sp ? (size_t)(sp - line) : len;

    if (len > MAX_LINE) {
        reply(fd, "413 Payload Too Large\n", 22);
        return -1;
    }
    if (len == 0)
        return reply(fd, "400 Bad Request\n", 16);
    if (cmd_len == 4 && memcmp(line, "PING", 4) == 0)
        return reply(fd, "200 OK PONG\n", 12);
    if (cmd_len == 4 && memcmp(line, "QUIT", 4) == 0) {
        reply(fd, "200 OK BYE\n", 11);
        return -1;
    }
    if (cmd_len == 4 && memcmp(line, "ECHO", 4) == 0) {
        size_t n = (size_t)sprintf(out, "200 OK"); /* + " <text>" if any */

        memcpy(out + n, line + cmd_len, len - cmd_len);
        n += len - cmd_len;
        out[n++] = '\n';
        return reply(fd, out, n);
    }
    return reply(fd, "404 Not Found\n", 14);
}

/* Serves one client until it quits, closes, fails, or we are told to stop. */
static void serve(int fd)
{
    static char buf[MAX_LINE + 2]; /* the longest line, '\r' and '\n' */
    size_t used = 0;

    while (!stop) {
        ssize_t n = appsrv_recv(fd, buf + used, sizeof buf - used, TICK_MS);
        char *start = buf, *nl;

        if (n == -ETIMEDOUT)
            continue;
        if (n <= 0)
            return; /* 0: the client closed; < 0: an error */
        /* Only the new bytes can hold a '\n': the kept prefix had none. */
        nl = memchr(buf + used, '\n', (size_t)n);
        used += (size_t)n;
        for (; nl; nl = memchr(start, '\n', (size_t)(buf + used - start))) {
            size_t len = (size_t)(nl - start);

            if (len > 0 && start[len - 1] == '\r')
                len--;
            if (answer(fd, start, len) < 0)
                return;
            start = nl + 1;
        }
        used -= (size_t)(start - buf); /* keep the partial line for later */
        memmove(buf, start, used);
        if (used == sizeof buf) { /* full, and still no '\n' */
            reply(fd, "413 Payload Too Large\n", 22);
            return;
        }
    }
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    long port = 0;
    char *end, name[64];
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART */
    appsrv_addr_t addr = {.len = sizeof addr.u};
    int lfd, cfd;

    if (argc > 2)
        port = strtol(argv[2], &end, 10);
    if (argc > 3 || (argc > 2 && (end == argv[2] || *end != '\0' || port < 0 || port > 65535))) {
        fprintf(stderr, "usage: blocking_echo [host] [port]\n");
        return 2;
    }
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* Non-blocking, so a client that leaves between poll() and accept()
     * cannot leave us stuck in accept(). */
    lfd = appsrv_listen(host, (int)port, 0, APPSRV_LISTEN_NONBLOCK);
    if (lfd < 0) {
        fprintf(stderr, "blocking_echo: %s: %s\n", host, appsrv_strerror(lfd));
        return 1;
    }
    getsockname(lfd, &addr.u.sa, &addr.len);
    appsrv_addr_format(&addr, name, sizeof name);
    fprintf(stderr, "blocking_echo: listening on %s\n", name);
    fflush(stderr);

    while (!stop) {
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};

        if (poll(&pfd, 1, TICK_MS) <= 0)
            continue; /* the tick, or EINTR from our signal */
        cfd = appsrv_accept(lfd, NULL, 0);
        if (cfd == -EAGAIN)
            continue; /* the client left first */
        if (cfd < 0) {
            poll(NULL, 0, TICK_MS); /* e.g. -EMFILE: back off, do not spin */
            continue;
        }
        serve(cfd);
        close(cfd);
    }
    close(lfd);
    return 0;
}
