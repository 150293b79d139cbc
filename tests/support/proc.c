/* SPDX-License-Identifier: MIT */
/*
 * proc.c - clocks, the fd/RSS probe, the process spawner and the appsrv
 * CLI launcher (contract in proc.h). Plain C for every test program:
 * never asserts, every wait is a poll() with a deadline.
 */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ----------------------------------------------------------------- clock */

int64_t e2e_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t e2e_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void e2e_pause_ms(int ms)
{
    int64_t end = e2e_now_ms() + ms;
    for (;;) {
        int64_t left = end - e2e_now_ms();
        if (left <= 0)
            return;
        poll(NULL, 0, (int)left);
    }
}

bool e2e_valgrind(void)
{
    const char *v = getenv("APPSRV_VALGRIND");
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

bool e2e_under_asan(void)
{
    return UNDER_ASAN;
}

int e2e_slow_factor(void)
{
    return e2e_valgrind() ? 10 : UNDER_ASAN ? 3 : 1;
}

void e2e_fill_pattern(void *buf, size_t len, uint32_t seed)
{
    unsigned char *p = buf;
    uint32_t x = seed ? seed : 0x9e3779b9u;
    for (size_t i = 0; i < len; i++) {
        if ((i & 3) == 0) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
        }
        p[i] = (unsigned char)(x >> ((i & 3) * 8));
    }
}

/* --------------------------------------------------------- fd/RSS probe */

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int e2e_fd_count(void)
{
    int n = count_dir("/proc/self/fd");
    return n < 0 ? -1 : n - 1; /* the directory's own fd */
}

int e2e_fd_count_pid(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    return count_dir(path);
}

long e2e_rss_kib(pid_t pid)
{
    char path[64], line[256];
    if (pid == 0)
        snprintf(path, sizeof(path), "/proc/self/status");
    else
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

/* --------------------------------------------------------------- spawner */

pid_t e2e_spawn(char *const argv[], int out_fd, int err_fd, bool search)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int null = open("/dev/null", O_RDWR);
        if (null < 0)
            _exit(127);
        if (dup2(null, 0) < 0 || dup2(out_fd >= 0 ? out_fd : null, 1) < 0 ||
            dup2(err_fd >= 0 ? err_fd : null, 2) < 0)
            _exit(127);
        if (null > 2)
            close(null);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGPIPE, &dfl, NULL);
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGTERM, &dfl, NULL);
        sigemptyset(&dfl.sa_mask);
        sigprocmask(SIG_SETMASK, &dfl.sa_mask, NULL);
        if (search)
            execvp(argv[0], argv);
        else
            execve(argv[0], argv, environ);
        _exit(127);
    }
    return pid;
}

int e2e_wait_child(pid_t pid, int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -1;
        if (e2e_now_ms() >= end)
            return -1;
        poll(NULL, 0, 10);
    }
}

/* Reads what k's pipe holds now; closes it at EOF. */
static int sink_read(e2e_sink_t *k)
{
    while (k->fd >= 0) {
        if (k->cap - k->len < 4096) {
            size_t ncap = k->cap ? k->cap * 2 : 8192;
            char *b = realloc(k->buf, ncap);
            if (b == NULL)
                return -ENOMEM;
            k->buf = b;
            k->cap = ncap;
        }
        ssize_t n = read(k->fd, k->buf + k->len, k->cap - k->len - 1);
        if (n > 0) {
            k->len += (size_t)n;
            k->buf[k->len] = '\0';
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        close(k->fd); /* EOF or error */
        k->fd = -1;
    }
    return 0;
}

static void sink_free(e2e_sink_t *k)
{
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
    free(k->buf);
    k->buf = NULL;
    k->len = k->cap = 0;
}

/* A pipe for one output: the read end non-blocking for us, the write end
 * blocking for the child. */
static int sink_pipe(e2e_sink_t *k, int *child_end)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    k->fd = p[0];
    k->buf = calloc(1, 1);
    k->cap = k->buf != NULL ? 1 : 0;
    *child_end = p[1];
    return 0;
}

int e2e_proc_spawn(e2e_proc_t *p, char *const argv[], unsigned flags)
{
    memset(p, 0, sizeof(*p));
    p->out.fd = p->err.fd = -1;
    int ofd = -1, efd = -1, rc = 0;
    if ((flags & E2E_PROC_OUT) && (rc = sink_pipe(&p->out, &ofd)) < 0)
        goto fail;
    if ((flags & E2E_PROC_ERR) && (rc = sink_pipe(&p->err, &efd)) < 0)
        goto fail;
    pid_t pid = e2e_spawn(argv, ofd, efd, (flags & E2E_PROC_SEARCH) != 0);
    if (pid < 0) {
        rc = (int)pid;
        goto fail;
    }
    p->pid = pid;
    if (ofd >= 0)
        close(ofd);
    if (efd >= 0)
        close(efd);
    return 0;

fail:
    if (ofd >= 0)
        close(ofd);
    if (efd >= 0)
        close(efd);
    sink_free(&p->out);
    sink_free(&p->err);
    return rc;
}

int e2e_proc_pump(e2e_proc_t *p)
{
    int a = sink_read(&p->out), b = sink_read(&p->err);
    return a < 0 ? a : b;
}

/* Reaps the child when it has exited (non-blocking). */
static void proc_reap(e2e_proc_t *p)
{
    if (p->exited || p->pid <= 0)
        return;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        p->status = st;
        p->exited = true;
    }
}

/* One bounded wait for output (or a 10 ms slice to re-check waitpid). */
static void proc_poll(e2e_proc_t *p, int left_ms)
{
    struct pollfd pfd[2];
    nfds_t n = 0;
    if (p->out.fd >= 0)
        pfd[n++] = (struct pollfd){.fd = p->out.fd, .events = POLLIN};
    if (p->err.fd >= 0)
        pfd[n++] = (struct pollfd){.fd = p->err.fd, .events = POLLIN};
    poll(pfd, n, left_ms < 10 ? left_ms : 10);
    e2e_proc_pump(p);
}

int e2e_proc_wait(e2e_proc_t *p, int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    for (;;) {
        e2e_proc_pump(p);
        proc_reap(p);
        if (p->exited && p->out.fd < 0 && p->err.fd < 0)
            return 0;
        int64_t left = end - e2e_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        proc_poll(p, (int)left);
    }
}

int e2e_proc_wait_err(e2e_proc_t *p, bool (*pred)(const char *err, void *ud), void *ud,
                      int timeout_ms)
{
    int64_t end = e2e_now_ms() + timeout_ms;
    for (;;) {
        e2e_proc_pump(p);
        if (pred(p->err.buf != NULL ? p->err.buf : "", ud))
            return 0;
        proc_reap(p);
        if (p->exited && p->err.fd < 0)
            return -ECHILD;
        int64_t left = end - e2e_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        proc_poll(p, (int)left);
    }
}

int e2e_proc_stop(e2e_proc_t *p, int sig, int timeout_ms)
{
    if (p->pid > 0 && !p->exited)
        kill(p->pid, sig);
    int rc = e2e_proc_wait(p, timeout_ms);
    if (rc < 0 && !p->exited && p->pid > 0) {
        kill(p->pid, SIGKILL); /* our own child, by its pid */
        if (waitpid(p->pid, &p->status, 0) == p->pid)
            p->exited = true;
    }
    return rc;
}

void e2e_proc_free(e2e_proc_t *p)
{
    if (p->pid > 0 && !p->exited) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
    }
    p->pid = 0;
    sink_free(&p->out);
    sink_free(&p->err);
}

/* ------------------------------------------------------------ appsrv CLI */

const char *e2e_bin_path(void)
{
    const char *b = getenv("APPSRV_BIN");
    return b != NULL && *b != '\0' ? b : "build/appsrv";
}

int e2e_listen_port(const char *log, const char *scheme, const char *host)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "appsrv: listening on %s://%s:", scheme, host);
    size_t plen = strlen(prefix);
    for (const char *p = log; p != NULL && *p != '\0';) {
        if (strncmp(p, prefix, plen) == 0) {
            const char *d = p + plen, *q = d;
            long port = 0;
            while (*q >= '0' && *q <= '9' && q - d < 6)
                port = port * 10 + (*q++ - '0');
            if (q > d && *q == '\n' && port > 0 && port < 65536)
                return (int)port;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

typedef struct listen_want {
    const char *host;
    bool line;
} listen_want_t;

static bool have_listen_lines(const char *err, void *ud)
{
    const listen_want_t *w = ud;
    return e2e_listen_port(err, "http", w->host) > 0 &&
           (!w->line || e2e_listen_port(err, "line", w->host) > 0);
}

int e2e_appsrv_start(e2e_proc_t *p, const char *const args[], unsigned flags,
                     const char *shown_host, int *http_port, int *line_port, int timeout_ms)
{
    char *argv[40];
    size_t n = 0;
    argv[n++] = (char *)e2e_bin_path();
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 39; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    int rc = e2e_proc_spawn(p, argv, (flags & E2E_PROC_OUT) | E2E_PROC_ERR);
    if (rc < 0)
        return rc;
    listen_want_t w = {shown_host, line_port != NULL};
    rc = e2e_proc_wait_err(p, have_listen_lines, &w, timeout_ms);
    if (rc < 0)
        return rc;
    *http_port = e2e_listen_port(p->err.buf, "http", shown_host);
    if (line_port != NULL)
        *line_port = e2e_listen_port(p->err.buf, "line", shown_host);
    return 0;
}

void e2e_strip_valgrind_lines(char *s)
{
    char *w = s;
    for (char *p = s; *p != '\0';) {
        char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) + 1 : strlen(p);
        bool vg = p[0] == '=' && p[1] == '=' && p[2] >= '0' && p[2] <= '9';
        if (!vg) {
            memmove(w, p, len);
            w += len;
        }
        p += len;
    }
    *w = '\0';
}
