/* SPDX-License-Identifier: MIT */
/*
 * helpers.h - small generic helpers shared by the Criterion tests: fd
 * accounting for leak checks, a monotonic clock, a loopback TCP pair.
 * The functions never assert (they may run off the main thread); callers
 * check the results.
 */
#ifndef APPSRV_TEST_HELPERS_H
#define APPSRV_TEST_HELPERS_H

#include <stdint.h>

/* The number of open file descriptors of this process (/proc/self/fd),
 * or -1 when it cannot be read. */
int open_fd_count(void);

/*
 * In a Criterion test body (criterion.h included): fails the test unless
 * the fd count equals fds_before, taken first thing in the test. Not in a
 * suite .fini: Criterion 2.4 reports assertions there but still passes the
 * test.
 */
#define assert_fd_count(fds_before)                                                                \
    cr_assert_eq(open_fd_count(), (fds_before), "fd leak: %d open at start, %d at end",            \
                 (fds_before), open_fd_count())

/* Milliseconds on CLOCK_MONOTONIC (arbitrary origin). */
int64_t mono_ms(void);

/*
 * A connected TCP pair over 127.0.0.1: *client from appsrv_connect(),
 * *server from appsrv_accept(), both blocking and close-on-exec.
 * Returns 0 or a negative appsrv error (nothing left open then).
 */
int tcp_pair(int *client, int *server);

#endif /* APPSRV_TEST_HELPERS_H */
