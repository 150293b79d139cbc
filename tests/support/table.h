/* SPDX-License-Identifier: MIT */
/*
 * table.h - the table-driven runner: rows of "raw request bytes ->
 * expected status, expected close, comment", each sent on its own real
 * loopback connection to a server (in-process or the CLI) and checked the
 * way README "Server behaviour and limits" words it. The error and limit suites and the CLI suites use
 * it through expect.h (E2E_EXPECT_TABLE, E2E_EXPECT_STATUS). Plain C:
 * it reports the first failing row, it never asserts.
 */
#ifndef APPSRV_TEST_TABLE_H
#define APPSRV_TEST_TABLE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * One row. Every answer must be "HTTP/1.1 <status> <reason>" (appsrv's
 * reason phrase for the status), carry one Server and one IMF-fixdate
 * Date, and be framed by exactly one Content-Length or chunked.
 *  - close: the answer says "Connection: close" and the server then
 *    closes without another byte; otherwise it does neither and the
 *    connection stays open.
 *  - body: the exact body; NULL: for a closing answer >= 400 (an error
 *    the library sent itself) the reason phrase, else not checked.
 *  - ctype: the exact Content-Type, or NULL (not checked).
 */
typedef struct e2e_row {
    const char *req; /* raw request bytes */
    size_t len;      /* their count; 0: strlen(req) */
    int status;
    bool close;
    const char *comment; /* what it checks; names the test it replaced */
    const char *body;
    const char *ctype;
} e2e_row_t;

/* A literal with its exact length (NUL bytes included). */
#define E2E_RAW(lit) (lit), (sizeof(lit) - 1)

/*
 * Runs row against 127.0.0.1:port on a new connection. Returns 0, or -1
 * with why (what was seen) filled in.
 */
int e2e_row_run(int port, const e2e_row_t *row, char *why, size_t cap);

/*
 * Runs rows[0..n) in order; after each one, when probe is not NULL, probe
 * too on a new connection (the server survived). Returns -1 when all
 * passed, else the index of the first failing row (why says what went
 * wrong, the probe's failure included).
 */
long e2e_table_run(int port, const e2e_row_t *rows, size_t n, const e2e_row_t *probe, char *why,
                   size_t cap);

#endif /* APPSRV_TEST_TABLE_H */
