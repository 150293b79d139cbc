/* SPDX-License-Identifier: MIT */
/*
 * proc.h - processes and clocks for the tests: the monotonic clock, the
 * fd/RSS probe (/proc/PID/fd, /proc/PID/status), the one process spawner
 * (fork + exec with stdout/stderr captured through pipes, every wait
 * bounded) and the launcher of the appsrv CLI that reads its "listening
 * on" lines. Used by the Criterion suites and tests/adversarial/; plain C
 * (no Criterion, no libappsrv): functions return errors, never assert.
 */
#ifndef APPSRV_TEST_PROC_H
#define APPSRV_TEST_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ----------------------------------------------------------------- clock */

/* Milliseconds / microseconds on CLOCK_MONOTONIC. */
int64_t e2e_now_ms(void);
uint64_t e2e_now_us(void);
/* Sleeps ms with poll() (no signals needed). */
void e2e_pause_ms(int ms);
/* True when APPSRV_VALGRIND is set (and not "0"): scale big sizes down. */
bool e2e_valgrind(void);
/* True in an AddressSanitizer build. */
bool e2e_under_asan(void);
/* How much looser timing bounds get: 10 under valgrind, 3 under ASan,
 * else 1 (everything runs that many times slower). */
int e2e_slow_factor(void);
/* A deterministic, non-periodic byte pattern for body checks. */
void e2e_fill_pattern(void *buf, size_t len, uint32_t seed);

/* --------------------------------------------------------- fd/RSS probe */

/* Open fds of this process, not counting the probe's own, or -1. */
int e2e_fd_count(void);
/* Open fds of process pid (/proc/PID/fd), or -1 when it is gone. */
int e2e_fd_count_pid(pid_t pid);
/* VmRSS of pid in KiB (/proc/PID/status; 0: this process), or -1. */
long e2e_rss_kib(pid_t pid);

/* --------------------------------------------------------------- spawner */

/*
 * fork + exec argv[0] with stdin from /dev/null and stdout/stderr on
 * out_fd/err_fd (-1: /dev/null), default signal dispositions and an empty
 * mask. With search, argv[0] is looked up in PATH (execvp); without, it
 * is a path (execve). The child gets SIGKILL when this process dies, so a
 * test killed by its timeout never leaves it behind. Returns its pid or a
 * negative errno (fork failed); an exec failure is exit status 127.
 */
pid_t e2e_spawn(char *const argv[], int out_fd, int err_fd, bool search);
/* Waits (bounded, polling waitpid) for pid. Returns its wait status, or
 * -1 when it has not exited within timeout_ms. */
int e2e_wait_child(pid_t pid, int timeout_ms);

/* What a child wrote to one pipe so far, NUL-terminated. */
typedef struct e2e_sink {
    int fd; /* read end, non-blocking; -1 once at EOF */
    char *buf;
    size_t len, cap;
} e2e_sink_t;

/* A spawned child with its stdout and/or stderr captured. */
typedef struct e2e_proc {
    pid_t pid; /* 0 once reaped */
    int status;
    bool exited;
    e2e_sink_t out, err;
} e2e_proc_t;

#define E2E_PROC_OUT    0x1u /* capture stdout (else /dev/null) */
#define E2E_PROC_ERR    0x2u /* capture stderr (else /dev/null) */
#define E2E_PROC_SEARCH 0x4u /* argv[0] looked up in PATH */

/* Spawns argv. Returns 0 or a negative errno (nothing left open then). */
int e2e_proc_spawn(e2e_proc_t *p, char *const argv[], unsigned flags);
/* Reads what the pipes hold now (they must never fill up). Returns -ENOMEM
 * or 0. */
int e2e_proc_pump(e2e_proc_t *p);
/* Waits up to timeout_ms (from now) until the child has exited and its
 * pipes are at EOF, pumping meanwhile. Returns 0 (p->status holds the wait
 * status) or -ETIMEDOUT (the child still runs). */
int e2e_proc_wait(e2e_proc_t *p, int timeout_ms);
/* Waits until pred(captured stderr) holds, the child dies or timeout_ms
 * passes. Returns 0, -ECHILD (exited first) or -ETIMEDOUT. */
int e2e_proc_wait_err(e2e_proc_t *p, bool (*pred)(const char *err, void *ud), void *ud,
                      int timeout_ms);
/* sig, then e2e_proc_wait(timeout_ms); SIGKILL and reap when it overran.
 * Returns 0 (p->status valid) or -ETIMEDOUT. */
int e2e_proc_stop(e2e_proc_t *p, int sig, int timeout_ms);
/* SIGKILL (this child only, by pid) when still running, reap, close the
 * pipes and free the buffers. */
void e2e_proc_free(e2e_proc_t *p);

/* ------------------------------------------------------------ appsrv CLI */

/* The CLI under test: $APPSRV_BIN, else build/appsrv. */
const char *e2e_bin_path(void);
/* PORT of a whole "appsrv: listening on SCHEME://HOST:PORT\n" line in log,
 * or -1 when there is none (yet). */
int e2e_listen_port(const char *log, const char *scheme, const char *host);
/*
 * Spawns e2e_bin_path() with args (NULL-terminated, argv[0] excluded),
 * stderr captured (and stdout with E2E_PROC_OUT in flags), and waits up to
 * timeout_ms for its listening lines as shown_host ("127.0.0.1", "[::1]"):
 * *http_port, and *line_port unless line_port is NULL. Returns 0, or
 * -ECHILD / -ETIMEDOUT with the child still in p (its stderr says why; the
 * caller frees it).
 */
int e2e_appsrv_start(e2e_proc_t *p, const char *const args[], unsigned flags,
                     const char *shown_host, int *http_port, int *line_port, int timeout_ms);
/* Drops valgrind's own "==PID== ..." lines from s (it shares stderr). */
void e2e_strip_valgrind_lines(char *s);

#endif /* APPSRV_TEST_PROC_H */
