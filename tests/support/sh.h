/* SPDX-License-Identifier: MIT */
/*
 * sh.h - a shell runner for the tests: `sh -c cmd` in its own process
 * group with a deadline, its output captured, and a probe for commands on
 * the PATH. Built in every configuration (with or without TLS); plain C
 * (no Criterion, no libappsrv), on top of proc.h's bounded wait. Helpers
 * never assert: they return a status or a negative errno.
 */
#ifndef APPSRV_TEST_SH_H
#define APPSRV_TEST_SH_H

#include <stdbool.h>

/* Runs `sh -c cmd` (stdin /dev/null unless cmd redirects), waits at most
 * timeout_ms, then kills its whole process group. *out (may be NULL) gets
 * stdout+stderr, malloc'd and NUL-terminated; the caller frees it. Returns
 * the exit status (0..255, 128 + signal), -ETIMEDOUT or a negative errno.
 * The child gets SIGKILL if this process dies first. */
int e2e_sh(const char *cmd, int timeout_ms, char **out);
/* True when `command -v name` finds it. */
bool e2e_have(const char *name);

/* In sh_cr.c, for the Criterion suites only: e2e_sh() that fails the test
 * when cmd cannot run or outlives timeout_ms. Returns its exit status;
 * *out (may be NULL) as e2e_sh() gives it. */
int sh_run(const char *cmd, int timeout_ms, char **out);

#endif /* APPSRV_TEST_SH_H */
