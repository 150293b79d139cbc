/* SPDX-License-Identifier: MIT */
/*
 * table.c - the table-driven runner (contract in table.h): one loopback
 * connection per row, the response read by client.c, every check a
 * comparison that fills `why` instead of asserting.
 */
#include "table.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "appsrv.h"
#include "client.h"

#define ROW_MS   5000 /* the answer must arrive within */
#define CLOSE_MS 3000 /* then the close, for closing rows */
#define OPEN_MS  20   /* a keep-alive row: still open this long after */

static int failf(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return -1;
}

/* The checks of one answer (see table.h). */
static int check_resp(const e2e_row_t *row, const e2e_resp_t *r, char *why, size_t cap)
{
    char sl[200];
    e2e_status_line(r, sl, sizeof(sl));
    const char *reason = e2e_reason(row->status);
    if (r->major != 1 || r->minor != 1 || r->status != row->status ||
        (reason != NULL && strcmp(r->reason, reason) != 0))
        return failf(why, cap, "status line \"%s\", want %d %s", sl, row->status,
                     reason != NULL ? reason : "");
    if (e2e_resp_header_count(r, "Server") != 1 ||
        strcmp(e2e_resp_header(r, "Server"), "appsrv/" APPSRV_VERSION_STRING) != 0)
        return failf(why, cap, "\"%s\": not one \"Server: appsrv/%s\"", sl, APPSRV_VERSION_STRING);
    if (e2e_resp_header_count(r, "Date") != 1 || !e2e_is_imf_fixdate(e2e_resp_header(r, "Date")))
        return failf(why, cap, "\"%s\": not one IMF-fixdate Date", sl);
    int ncl = e2e_resp_header_count(r, "Content-Length");
    if (r->until_eof || ncl > 1 || (ncl == 0) == !r->chunked)
        return failf(why, cap, "\"%s\": framed by %d Content-Length%s", sl, ncl,
                     r->chunked ? " and chunked" : "");
    const char *body = row->body;
    if (body == NULL && row->close && row->status >= 400)
        body = reason;
    if (body != NULL) {
        size_t n = strlen(body);
        if (r->body_len != n || memcmp(r->body, body, n) != 0)
            return failf(why, cap, "\"%s\": body \"%.80s\" (%zu bytes), want \"%.80s\"", sl,
                         r->body, r->body_len, body);
    }
    if (row->ctype != NULL) {
        const char *ct = e2e_resp_header(r, "Content-Type");
        if (e2e_resp_header_count(r, "Content-Type") != 1 || strcmp(ct, row->ctype) != 0)
            return failf(why, cap, "\"%s\": Content-Type \"%s\", want \"%s\"", sl,
                         ct != NULL ? ct : "(none)", row->ctype);
    }
    if (row->close != e2e_resp_closes(r))
        return failf(why, cap, "\"%s\": Connection \"%s\", want %s", sl,
                     e2e_resp_header(r, "Connection") ? e2e_resp_header(r, "Connection") : "(none)",
                     row->close ? "close" : "no close");
    return 0;
}

int e2e_row_run(int port, const e2e_row_t *row, char *why, size_t cap)
{
    size_t len = row->len != 0 ? row->len : strlen(row->req);
    e2e_conn_t c;
    int rc = e2e_conn_open(&c, port);
    if (rc < 0)
        return failf(why, cap, "connect to port %d: %s", port, e2e_errname(rc));
    int src = e2e_send(&c, row->req, len);
    e2e_resp_t r;
    unsigned flags = strncmp(row->req, "HEAD ", 5) == 0 ? E2E_RESP_HEAD : 0;
    rc = e2e_read_response(&c, &r, ROW_MS, flags);
    if (rc < 0) {
        failf(why, cap, "no whole answer (%s)%s%s", e2e_errname(rc), src < 0 ? "; send: " : "",
              src < 0 ? e2e_errname(src) : "");
    } else if ((rc = check_resp(row, &r, why, cap)) == 0) {
        if (row->close) {
            long extra = e2e_wait_closed(&c, CLOSE_MS);
            if (extra != 0)
                rc = failf(why, cap, "after the answer: %s",
                           extra < 0 ? "no close within 3 s" : "more bytes before the close");
        } else if (!e2e_still_open(&c, OPEN_MS)) {
            rc = failf(why, cap, "keep-alive answer, then %s",
                       c.eof ? "the close" : "unexpected bytes");
        }
    }
    e2e_resp_free(&r);
    e2e_conn_close(&c);
    return rc < 0 ? -1 : 0;
}

long e2e_table_run(int port, const e2e_row_t *rows, size_t n, const e2e_row_t *probe, char *why,
                   size_t cap)
{
    char sub[512];
    for (size_t i = 0; i < n; i++) {
        if (e2e_row_run(port, &rows[i], sub, sizeof(sub)) < 0) {
            snprintf(why, cap, "row %zu (%s): %s", i, rows[i].comment, sub);
            return (long)i;
        }
        if (probe != NULL && e2e_row_run(port, probe, sub, sizeof(sub)) < 0) {
            snprintf(why, cap, "after row %zu (%s), the probe (%s): %s", i, rows[i].comment,
                     probe->comment, sub);
            return (long)i;
        }
    }
    return -1;
}
