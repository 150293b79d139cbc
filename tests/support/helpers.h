/* SPDX-License-Identifier: MIT */
/*
 * helpers.h - the small generic helpers of the unit suites (test_sock.c,
 * test_error.c), kept under their old names on top of the toolkit: fd
 * accounting for leak checks (proc.h's probe), the monotonic clock, a
 * loopback TCP pair (e2e.c). The functions never assert (they may run off
 * the main thread); only assert_fd_count() does, for Criterion tests.
 */
#ifndef APPSRV_TEST_HELPERS_H
#define APPSRV_TEST_HELPERS_H

#include <stdint.h>

#include "proc.h"

/* The number of open file descriptors of this process, or -1. */
static inline int open_fd_count(void)
{
    return e2e_fd_count();
}

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
static inline int64_t mono_ms(void)
{
    return e2e_now_ms();
}

/*
 * A connected TCP pair over 127.0.0.1: *client from appsrv_connect(),
 * *server from appsrv_accept(), both blocking and close-on-exec.
 * Returns 0 or a negative appsrv error (nothing left open then).
 */
int tcp_pair(int *client, int *server);

#endif /* APPSRV_TEST_HELPERS_H */
