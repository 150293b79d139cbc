/* SPDX-License-Identifier: MIT */
/*
 * obs_util.h - helpers shared by the observability tests
 * (test_e2e_obs_*.c): run a parser program (python3, node, promtool) on
 * a file and capture its output, hex-encode bytes as the parsers print
 * them, make temporary files. Header-only (static functions), built on
 * e2e.h's spawn and bounded waits; never asserts.
 */
#ifndef APPSRV_TEST_OBS_UTIL_H
#define APPSRV_TEST_OBS_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e.h"

/* A fresh temporary file path (the file exists, empty). */
static inline void obs_tmpfile(char *path, size_t cap, const char *tag)
{
    snprintf(path, cap, "/tmp/appsrv-obs-%s-XXXXXX", tag);
    int fd = mkstemp(path);
    if (fd >= 0)
        close(fd);
}

/* Reads a whole file (NUL-terminated, malloc'd). NULL on failure. */
static inline char *obs_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/*
 * Runs argv (argv[0] a path, or looked up in PATH when search) with
 * stdout and stderr into one captured buffer (*out, malloc'd), at most
 * timeout_ms. Returns the exit status, -1 when it did not finish in time
 * (it is killed), -2 when it could not start.
 */
static inline int obs_run(char *const argv[], bool search, char **out, int timeout_ms)
{
    char path[64];
    obs_tmpfile(path, sizeof(path), "out");
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    *out = NULL;
    if (fd < 0)
        return -2;
    pid_t pid = e2e_spawn(argv, fd, fd, search);
    close(fd);
    if (pid < 0) {
        unlink(path);
        return -2;
    }
    int st = e2e_wait_child(pid, timeout_ms);
    if (st == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    *out = obs_slurp(path, NULL);
    unlink(path);
    if (*out == NULL)
        *out = strdup("");
    if (st == -1)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Whether an executable exists at path. */
static inline bool obs_have(const char *path)
{
    return access(path, X_OK) == 0;
}

/* Waits (bounded) until the server's metrics text holds line (a whole
 * line, e.g. "appsrv_deferred_responses 1"). Returns true when it did. */
static inline bool obs_wait_metric(appsrv_server_t *srv, const char *line, int timeout_ms)
{
    char want[256];
    snprintf(want, sizeof(want), "\n%s\n", line);
    int64_t end = e2e_now_ms() + timeout_ms;
    for (;;) {
        char *t;
        bool found = false;
        if (appsrv_metrics_format(srv, &t) > 0) {
            found = strstr(t, want) != NULL;
            free(t);
        }
        if (found)
            return true;
        if (e2e_now_ms() >= end)
            return false;
        e2e_pause_ms(2);
    }
}

/* Hex of n bytes as check_access_log.py prints them ("=" for empty). */
static inline void obs_hex(const void *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    const unsigned char *b = p;
    if (n == 0) {
        strcpy(out, "=");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

#endif /* APPSRV_TEST_OBS_UTIL_H */
